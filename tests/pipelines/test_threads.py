"""The swap paths run their linear algebra on the calling thread (saswap.pipelines.threads)."""

from __future__ import annotations

import numpy as np  # noqa: F401  (loads numpy's BLAS)
import scipy.linalg  # noqa: F401  (and scipy's)
from threadpoolctl import threadpool_info, threadpool_limits

from saswap.pipelines.threads import blas_threads


def _blas() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_blas_threads_limits_every_blas_library_and_restores_them():
    with threadpool_limits(2, user_api="blas"):  # as on a 2-core machine, whatever the environment asks
        before = _blas()
        assert before and max(before) == 2, before
        with blas_threads(1):
            assert _blas() == [1] * len(before)
        assert _blas() == before
