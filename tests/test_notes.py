"""Warnings collected per swap (``saswap.notes``)."""

from __future__ import annotations

import logging
import threading

from saswap.notes import collect_warnings


def test_a_jobs_warnings_are_collected_from_its_own_thread_only():
    log = logging.getLogger("saswap.pipelines.image")
    with collect_warnings() as notes:
        log.warning("%s: the source face is turned %d degrees", "me.jpg", 33)
        log.info("not a warning")
        other = threading.Thread(target=log.warning, args=("another visitor's photo",))
        other.start()
        other.join()
        logging.getLogger("elsewhere").warning("not SaSwap's")
        log.error("the reference matches no face")
    log.warning("after the job")
    assert notes == ["me.jpg: the source face is turned 33 degrees", "the reference matches no face"]
    assert not any(type(h).__name__ == "_Collect" for h in logging.getLogger("saswap").handlers)
