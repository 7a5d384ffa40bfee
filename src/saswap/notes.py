"""What a swap warned about, collected for whoever shows its result.

SaSwap reports problems that do not stop a swap (a source photo turned away from the camera, a small source face, a
reference photo that matches no face closely) as log warnings. A command line shows them as they come; the web app
and batch jobs run many swaps side by side, so each collects its own and shows them with its result.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collect_warnings"]


@contextmanager
def collect_warnings(name: str = "saswap") -> Iterator[list[str]]:
    """Within the block, the warnings that logger ``name`` and its children give *on this thread* (their messages,
    in order), for a caller to show beside its result (the web app's page, a batch job's record): a source photo
    turned away from the camera, a small source face, a reference matching no face closely. Other threads' warnings
    (another visitor's job, another batch job) are left out; every warning is still logged as usual.

    Example:
        >>> with collect_warnings() as notes:
        ...     logging.getLogger("saswap.example").warning("%s: the source face is small", "me.jpg")
        >>> notes
        ['me.jpg: the source face is small']
    """
    messages: list[str] = []
    thread = threading.get_ident()

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.thread == thread:
                messages.append(record.getMessage())

    handler = _Collect(logging.WARNING)
    target = logging.getLogger(name)
    target.addHandler(handler)
    try:
        yield messages
    finally:
        target.removeHandler(handler)
