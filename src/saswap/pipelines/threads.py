"""How the swap paths share the CPU: their own worker threads, each running the linear algebra on itself.

The swap's linear algebra is small (a 3x3 system per mesh triangle, a thin-plate spline over a few hundred
keypoints, 3DMM fits): a BLAS thread pool gains nothing on it. Beside the video pipeline's worker threads and
the codec's, OpenBLAS's own threads (one per core by default, spinning while they wait) take the cores from
them: on a 2-core machine with the cores busy, one frame's batched triangle solve took 350 ms instead of
0.4 ms, and 3 s of 720p video took 36 s to swap instead of 11 s.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["blas_threads"]


@contextmanager
def blas_threads(limit: int = 1) -> Iterator[None]:
    """Within the block, the BLAS libraries loaded in this process (OpenBLAS, MKL, for numpy and scipy) use at
    most ``limit`` threads each; their settings are restored after it. Process-wide: it also holds for
    threads started inside the block.

    Example:
        >>> import numpy as np
        >>> with blas_threads(1):
        ...     float(np.linalg.solve(np.eye(3), np.ones(3)).sum())
        3.0
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=max(1, int(limit)), user_api="blas"):
        yield
