"""Decoding and encoding beside the rest of a video swap, each on a thread of its own.

With frames made by worker processes, a swap's own process does the serial part: decode a frame, read its
analysis, hand out the faces, paste them back, steady the tone, encode. On a 16-core machine that part capped one
swap at about 41 frames a second while the workers waited. :class:`Prefetch` decodes ahead on a thread and
:class:`InOrder` encodes behind on another; PyAV and the encoder release the interpreter's lock while they work, so
the three overlap. Frames stay in order, so the output does not change.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["InOrder", "Prefetch", "ordered_map"]

_END = object()


def _join(thread: threading.Thread) -> None:
    """Wait for ``thread`` to end, also through a Ctrl-C (raised once it has ended): what it reads from or writes to
    is closed right after."""
    interrupted = None
    while thread.is_alive():
        try:
            thread.join()
        except KeyboardInterrupt as exc:
            interrupted = exc
    if interrupted is not None:
        raise interrupted


class Prefetch:
    """Iterates ``items`` on a thread of its own, up to ``ahead`` items ahead of the consumer.

    Use it as a context manager around the iteration: leaving the block (also by an exception) stops the thread
    and waits for it, so whatever ``items`` reads from (a video file) may be closed right after. An exception
    raised by ``items`` is raised where the consumer iterates.

    Example:
        >>> with Prefetch(range(5), ahead=2) as frames:
        ...     [x * 10 for x in frames]
        [0, 10, 20, 30, 40]
    """

    def __init__(self, items: Iterable, ahead: int = 4, name: str = "saswap-prefetch") -> None:
        self._items = items
        self._queue: queue.Queue = queue.Queue(max(1, int(ahead)))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put((item, None)):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._put((_END, exc))
            return
        self._put((_END, None))

    def __enter__(self) -> Prefetch:
        self._thread.start()
        return self

    def __iter__(self) -> Iterator:
        while True:
            item, exc = self._queue.get()
            if exc is not None:
                raise exc
            if item is _END:
                return
            yield item

    def __exit__(self, *exc) -> None:
        self._stop.set()
        _join(self._thread)


class InOrder:
    """Runs ``fn(*args)`` for each :meth:`submit`, in order, on a thread of its own, at most ``behind`` calls
    behind the caller.

    :meth:`close` (or leaving the ``with`` block without an exception) waits for every call; leaving it with an
    exception drops the calls not yet made. An exception raised by ``fn`` is raised by the next :meth:`submit`
    or by :meth:`close`, and no later call is made. With ``thread=False`` each call is made at once, in
    :meth:`submit`, on the caller's thread (for a process meant to use one core).

    Example:
        >>> out = []
        >>> with InOrder(out.append) as encode:
        ...     for x in range(4):
        ...         encode.submit(x)
        >>> out
        [0, 1, 2, 3]
    """

    def __init__(
        self, fn: Callable[..., Any], behind: int = 4, name: str = "saswap-in-order", thread: bool = True
    ) -> None:
        self._fn = fn
        self._queue: queue.Queue = queue.Queue(max(1, int(behind)))
        self._error: BaseException | None = None
        self._dropped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        if thread:
            self._thread.start()
        else:
            self.submit = fn  # type: ignore[method-assign]

    def _run(self) -> None:
        while True:
            args = self._queue.get()
            if args is _END:
                return
            if self._error is not None or self._dropped.is_set():
                continue  # after a failure, or when dropped: the rest is not made
            try:
                self._fn(*args)
            except BaseException as exc:  # noqa: BLE001 - raised in the caller
                self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            self._dropped.set()
            raise error

    def submit(self, *args: Any) -> None:
        self._raise()
        self._queue.put(args)

    def close(self, drop: bool = False) -> None:
        """Wait for the calls submitted (``drop``: only for the one being made) and stop the thread; raises what a
        call raised, unless dropping."""
        if drop:
            self._dropped.set()
        if self._thread.is_alive():
            self._queue.put(_END)
            _join(self._thread)
        if not drop:
            self._raise()

    def __enter__(self) -> InOrder:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(drop=exc_type is not None)


def ordered_map(fn: Callable[[Any], Any], items: Iterable, threads: int, ahead: int | None = None) -> Iterator[tuple]:
    """``(item, fn(item))`` for each item, in order, with ``fn`` run on ``threads`` threads, at most ``ahead``
    (default: twice ``threads``) items in flight; ``threads`` 0 runs each call on the caller's thread, when its
    item is reached.

    ``items`` is iterated on the caller's thread, one item at a time as room frees up, so a generator that reads a
    video or keeps state in frame order stays in order. Closing the iterator early (an exception in the loop) waits
    for the calls in flight and drops the rest; an exception raised by ``fn`` is raised where its item's result is due.

    Example:
        >>> [r for _, r in ordered_map(lambda x: x * x, range(6), threads=3)]
        [0, 1, 4, 9, 16, 25]
    """
    if threads <= 0:
        for item in items:
            yield item, fn(item)
        return
    from concurrent.futures import ThreadPoolExecutor

    ahead = max(1, int(ahead) if ahead is not None else 2 * int(threads))
    pending: deque = deque()
    with ThreadPoolExecutor(int(threads), thread_name_prefix="saswap-map") as pool:
        try:
            for item in items:
                pending.append((item, pool.submit(fn, item)))
                if len(pending) >= ahead:
                    first, future = pending.popleft()
                    yield first, future.result()
            while pending:
                first, future = pending.popleft()
                yield first, future.result()
        finally:
            for _, future in pending:
                future.cancel()
