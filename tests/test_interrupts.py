"""Ctrl-C is not lost when Python drops it in a finaliser (``saswap.interrupts``)."""

from __future__ import annotations

import os
import signal
import sys

import pytest

from saswap import interrupts


def test_an_interrupt_dropped_in_a_finaliser_is_raised_again(monkeypatch):
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not Python's default handler in this test run")

    class Dropper:
        def __del__(self):
            # the handler runs here, inside a finaliser: Python prints its KeyboardInterrupt and drops it
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass

    dropped = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: dropped.append(info.exc_type))  # what Python would print
    restore = interrupts.install()
    try:
        interrupts.check()  # nothing yet
        dropper = Dropper()
        del dropper  # no KeyboardInterrupt comes out of this line
        assert dropped == [KeyboardInterrupt] and interrupts.requested()
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()  # the long loops call this once per frame: the command stops after all
    finally:
        restore()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler and not interrupts.requested()
    interrupts.check()


def test_a_ctrl_c_that_fails_an_import_is_still_a_ctrl_c(monkeypatch):
    """A SIGINT while mediapipe's extension loads makes its import fail ("initialization failed"): the command then
    said that mediapipe is missing and exited 2. With an interrupt requested it is the interrupt again; without one,
    the message about the missing package."""
    import builtins

    from saswap import interrupts
    from saswap.errors import SaSwapError
    from saswap.face._mediapipe import _import_mediapipe

    real = builtins.__import__

    def failing(name, *args, **kwargs):
        if name == "mediapipe":
            raise ImportError("initialization failed")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", failing)
    restore = interrupts.install()
    try:
        with pytest.raises(SaSwapError, match="initialization failed"):
            _import_mediapipe()
        interrupts._REQUESTED.set()  # as the handler does
        with pytest.raises(KeyboardInterrupt):
            _import_mediapipe()
    finally:
        restore()


def test_sigterm_raises_terminated_and_its_handler_is_put_back():
    """SIGTERM becomes :class:`~saswap.interrupts.Terminated` (a ``KeyboardInterrupt``, so what a Ctrl-C cleans up is
    cleaned up), and :func:`~saswap.interrupts.check` raises it again; the default handler comes back after."""
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        pytest.skip("SIGTERM is not the default handler in this test run")
    restore = interrupts.install()
    try:
        with pytest.raises(interrupts.Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs at the next bytecode
                pass
        assert interrupts.requested()
        with pytest.raises(interrupts.Terminated):
            interrupts.check()
    finally:
        restore()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL and not interrupts.requested()
    assert issubclass(interrupts.Terminated, KeyboardInterrupt)
