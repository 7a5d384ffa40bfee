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
