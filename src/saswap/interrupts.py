"""Ctrl-C that is not lost.

Python turns SIGINT into a ``KeyboardInterrupt`` raised in the main thread at the next bytecode it runs. When that
bytecode belongs to a finaliser (an object's ``__del__`` or a weak-reference callback run by the garbage collector in
the middle of a long loop), the exception is printed as "Exception ignored in ..." and dropped: the command goes on as
if nothing had happened, finishes its work and exits with 0. The command line installs :func:`install`, whose handler
also sets a flag, and the long loops (a template's analysis, a video's frames) call :func:`check` once per frame, which
raises the interrupt again where it cannot be dropped.

Example:
    >>> restore = install()
    >>> check()  # nothing requested: returns
    >>> restore()
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

__all__ = ["install", "check", "requested"]

_REQUESTED = threading.Event()


def _handler(signum, frame) -> None:
    _REQUESTED.set()
    raise KeyboardInterrupt


def install() -> Callable[[], None]:
    """Handle SIGINT with a handler that records the request and raises ``KeyboardInterrupt``, as Python's own does.

    Only from the main thread, and only while SIGINT has Python's default handler (an ignored SIGINT stays ignored,
    another handler stays in place). Clears an earlier request.

    Returns:
        a function that puts the previous handler back (and clears the request).
    """
    _REQUESTED.clear()
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGINT"):
        return _REQUESTED.clear
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:
        return _REQUESTED.clear
    signal.signal(signal.SIGINT, _handler)

    def restore() -> None:
        if signal.getsignal(signal.SIGINT) is _handler:
            signal.signal(signal.SIGINT, previous)
        _REQUESTED.clear()

    return restore


def requested() -> bool:
    """Whether SIGINT was received since :func:`install`."""
    return _REQUESTED.is_set()


def check() -> None:
    """Raise ``KeyboardInterrupt`` when SIGINT was received since :func:`install` (again, if the first one was dropped).

    Raises:
        KeyboardInterrupt: an interrupt was requested.
    """
    if _REQUESTED.is_set():
        raise KeyboardInterrupt
