"""Jobs of the web app: a swap runs on its own thread, reports progress, and can be cancelled.

A page (or API client) watches its job by polling it; when the watcher goes away (the request was
cancelled, the browser tab closed) the job stops by itself at its next progress report. A job that
fails or is cancelled removes its output folder, so it leaves no file.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from saswap.errors import SaSwapError

__all__ = ["Job", "JobBoard", "JobCancelled"]

logger = logging.getLogger(__name__)


#: The video pipeline's progress stages, as the page words them (the first two only when the video has no
#: template cache yet).
_STAGES = {
    "analysing template": "step 1 of 3, finding the faces in the video",
    "caching template": "step 2 of 3, preparing the video",
    "swapping": "swapping the faces",
}


class JobCancelled(SaSwapError):
    """The job was cancelled (by its visitor, or because nobody watched it any more)."""


class Job:
    """One swap on a worker thread.

    Args:
        work: called on the job's thread as ``work(report)``; ``report(stage, done, total)`` records progress
            and raises :class:`JobCancelled` once the job is cancelled. Its return value is :attr:`result`.
        folder: the job's output folder, removed when the job fails or is cancelled.
        stale_after: seconds without a :meth:`poll` after which the job cancels itself.

    Example:
        >>> job = Job(lambda report: 6 * 7)
        >>> job.start().wait(5.0), job.result
        (True, 42)
    """

    def __init__(self, work: Callable[[Callable[[str, int, int | None], None]], Any], folder: Path | None = None,
                 stale_after: float = 30.0) -> None:  # fmt: skip
        self.work = work
        self.folder = folder
        self.stale_after = float(stale_after)
        self.stage = "waiting"
        self.done_frames = 0
        self.total_frames: int | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self._stage_started = time.monotonic()
        self._last_poll = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="saswap-app-job", daemon=True)

    # -- control ----------------------------------------------------------------------------------
    def start(self) -> Job:
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the job to stop at its next progress report (a finished job is not changed)."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the job to end; True when it has."""
        return self._finished.wait(timeout)

    def poll(self) -> None:
        """Tell the job that someone still watches it."""
        self._last_poll = time.monotonic()

    # -- progress ---------------------------------------------------------------------------------
    def report(self, stage: str, done: int, total: int | None) -> None:
        """The progress callback handed to the work (see :data:`saswap.pipelines.video.ProgressCallback`)."""
        if self._cancel.is_set():
            raise JobCancelled("cancelled")
        if time.monotonic() - self._last_poll > self.stale_after:
            self._cancel.set()
            raise JobCancelled("nobody is waiting for the result any more")
        if stage != self.stage:
            self.stage = stage
            self._stage_started = time.monotonic()
        self.done_frames, self.total_frames = int(done), (None if total is None else int(total))

    def eta(self) -> float | None:
        """Seconds left in the current stage, from its pace so far (None when unknown)."""
        if not self.total_frames or self.done_frames <= 0:
            return None
        elapsed = time.monotonic() - self._stage_started
        return elapsed / self.done_frames * max(self.total_frames - self.done_frames, 0)

    @property
    def label(self) -> str:
        """The current stage, in the page's words."""
        if self.stage.startswith("swapping "):
            return _STAGES["swapping"]
        return _STAGES.get(self.stage, self.stage)

    def describe(self) -> str:
        """One line for the page: the stage, frames done and the time left.

        Example:
            >>> job = Job(lambda report: None)
            >>> job.report("caching template", 0, 80)
            >>> job.describe()
            'step 2 of 3, preparing the video: 0 / 80 frames (0%)'
        """
        label = self.label
        if self.total_frames:
            pct = 100.0 * self.done_frames / self.total_frames
            text = f"{label}: {self.done_frames} / {self.total_frames} frames ({pct:.0f}%)"
            eta = self.eta()
            if eta is not None:
                text += f", about {eta:.0f} s left" + ("" if label == _STAGES["swapping"] else " in this step")
            return text
        return f"{label}…"

    # -- thread -----------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self.result = self.work(self.report)
            if self._cancel.is_set():
                raise JobCancelled("cancelled")
        except BaseException as err:  # noqa: BLE001 - handed to the watcher
            self.error = err
            self.result = None
            if self.folder is not None:
                shutil.rmtree(self.folder, ignore_errors=True)
            if not isinstance(err, SaSwapError):
                logger.exception("web app job failed")
        finally:
            self._finished.set()


class JobBoard:
    """The running job of each session, so a cancel request finds it."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def put(self, session: str, job: Job) -> None:
        with self._lock:
            self._jobs[session] = job

    def drop(self, session: str, job: Job) -> None:
        with self._lock:
            if self._jobs.get(session) is job:
                del self._jobs[session]

    def cancel(self, session: str) -> bool:
        """Cancel the session's running job; False when it has none."""
        with self._lock:
            job = self._jobs.get(session)
        if job is None or job.finished:
            return False
        job.cancel()
        return True

    def cancel_all(self) -> None:
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel()
