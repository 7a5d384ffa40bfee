"""Ctrl-C that is not lost.

Python turns SIGINT into a ``KeyboardInterrupt`` raised in the main thread at the next bytecode it runs. When that
bytecode belongs to a finaliser (an object's ``__del__`` or a weak-reference callback run by the garbage collector in
the middle of a long loop), the exception is printed as "Exception ignored in ..." and dropped: the command goes on as
if nothing had happened, finishes its work and exits with 0. The command line installs :func:`install`, whose handler
also sets a flag, and the long loops (a template's analysis, a video's frames) call :func:`check` once per frame, which
raises the interrupt again where it cannot be dropped.

SIGTERM (``timeout``, ``kill``, ``docker stop``) is handled the same way with :class:`Terminated`, a
``KeyboardInterrupt``: what a Ctrl-C cleans up (a half-written output's temporary file, the frame workers) is cleaned
up, where Python's default would end the process on the spot and leave them behind.

Example:
    >>> restore = install()
    >>> check()  # nothing requested: returns
    >>> restore()
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

__all__ = ["Terminated", "install", "check", "requested"]

_REQUESTED = threading.Event()
_TERMINATED = threading.Event()


class Terminated(KeyboardInterrupt):
    """SIGTERM received: a ``KeyboardInterrupt`` (cleaned up as a Ctrl-C is); the command line exits with 143."""


def _handler(signum, frame) -> None:
    _REQUESTED.set()
    if signum == getattr(signal, "SIGTERM", None):
        _TERMINATED.set()
        raise Terminated
    raise KeyboardInterrupt


def _clear() -> None:
    _REQUESTED.clear()
    _TERMINATED.clear()


def install() -> Callable[[], None]:
    """Handle SIGINT with a handler that records the request and raises ``KeyboardInterrupt``, as Python's own does,
    and SIGTERM with one that raises :class:`Terminated`.

    Only from the main thread, and only while a signal has Python's default handler (an ignored SIGINT stays ignored,
    another handler stays in place). Clears an earlier request.

    Returns:
        a function that puts the previous handlers back (and clears the request).
    """
    _clear()
    if threading.current_thread() is not threading.main_thread():
        return _clear
    defaults = {"SIGINT": signal.default_int_handler, "SIGTERM": signal.SIG_DFL}
    previous = {}
    for name, default in defaults.items():
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) is default:
            previous[sig] = default
            signal.signal(sig, _handler)

    def restore() -> None:
        for sig, handler in previous.items():
            if signal.getsignal(sig) is _handler:
                signal.signal(sig, handler)
        _clear()

    return restore


def requested() -> bool:
    """Whether SIGINT or SIGTERM was received since :func:`install`."""
    return _REQUESTED.is_set()


def check() -> None:
    """Raise ``KeyboardInterrupt`` (:class:`Terminated` for SIGTERM) when a signal was received since :func:`install`
    (again, if the first one was dropped).

    Raises:
        KeyboardInterrupt: an interrupt was requested.
    """
    if _TERMINATED.is_set():
        raise Terminated
    if _REQUESTED.is_set():
        raise KeyboardInterrupt
