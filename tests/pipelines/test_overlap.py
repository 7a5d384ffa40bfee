"""Decoding ahead and encoding behind on threads of their own: order kept, errors raised where the swap runs,
nothing left running when the block ends."""

from __future__ import annotations

import threading
import time

import pytest

from saswap.pipelines.overlap import InOrder, Prefetch


def test_prefetch_keeps_order_and_raises_the_sources_error_in_the_consumer():
    def items():
        yield from range(3)
        raise ValueError("truncated file")

    seen = []
    with pytest.raises(ValueError, match="truncated file"), Prefetch(items(), ahead=1) as it:
        for x in it:
            seen.append(x)
    assert seen == [0, 1, 2]


def test_prefetch_stops_reading_when_the_consumer_leaves():
    read = []
    closed = threading.Event()

    def items():
        for i in range(1000):
            assert not closed.is_set(), "read after the source was closed"
            read.append(i)
            time.sleep(0.001)
            yield i

    with pytest.raises(RuntimeError), Prefetch(items(), ahead=2) as it:
        for x in it:
            if x == 5:
                raise RuntimeError("the swap failed")
    closed.set()  # what the caller closes next (the video file): the thread has stopped
    n = len(read)
    time.sleep(0.05)
    assert len(read) == n < 20


def test_in_order_runs_calls_in_order_and_raises_a_failure_at_the_next_submit():
    done = []

    def write(x):
        if x == 3:
            raise OSError("disk full")
        time.sleep(0.002)
        done.append(x)

    with pytest.raises(OSError, match="disk full"), InOrder(write, behind=2) as encode:
        for x in range(50):
            encode.submit(x)
    assert done == [0, 1, 2]  # nothing after the failure


def test_in_order_drops_what_is_left_when_the_block_fails():
    done = []
    gate = threading.Event()

    def write(x):
        gate.wait()
        time.sleep(0.05)  # each call takes long against the raise below
        done.append(x)

    with pytest.raises(KeyboardInterrupt), InOrder(write, behind=8) as encode:
        for x in range(5):
            encode.submit(x)
        gate.set()
        raise KeyboardInterrupt
    assert len(done) <= 1  # at most the call under way


def test_in_order_without_a_thread_calls_at_once():
    done = []

    def write(x):
        if x == 2:
            raise OSError("disk full")
        done.append((x, threading.current_thread() is threading.main_thread()))

    with InOrder(write, thread=False) as encode:
        encode.submit(0)
        assert done == [(0, True)]  # made in submit, on the caller's thread
        encode.submit(1)
        with pytest.raises(OSError, match="disk full"):
            encode.submit(2)
    assert done == [(0, True), (1, True)]
