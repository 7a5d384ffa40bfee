"""Frame workers in separate processes, for a video swap on a machine with many cores.

A video swap makes its frames on worker threads beside decoding and encoding. NumPy, SciPy and OpenCV release the
interpreter's lock inside their calls, but the engine and compose stage run enough Python between those calls that
threads stop helping after about two: on a 16-core machine one swap made about 23 frames a second with 2, 8 or 15
threads. :class:`FrameWorkers` runs the per-face work (:func:`saswap.pipelines.image.make_face`: the engine and the
compose stage on the aligned crop, and the result warped back into frame coordinates) in separate Python processes
instead; cutting the crop out of the frame and blending the result in stay in the calling process, so a worker receives
and returns a face-sized message per face, never a whole frame.

The workers are started as ``python -c "...; saswap.pipelines.workers.main()"`` and fed pickled messages over their standard input
and output. This is not :mod:`multiprocessing`: its spawned processes re-import the caller's main module, which would
require every script that swaps a video to guard its entry point (``if __name__ == "__main__":``); forked ones are
unsafe once threads (the codecs', OpenCV's) are running. Each worker holds its own copy of the engine, the compositor
and the prepared source (or every source of a swap with one per person, each face's message naming its own), sent once
when it starts; the results are the same as on threads (the same code on the same
inputs, every worker's linear algebra and OpenCV on one thread). Only the pipeline's own processes read these messages
(pickle is not safe for data from elsewhere).

:class:`AnalysisWorkers` does the same for a template's analysis (:func:`~saswap.pipelines.video.precompute_template`):
each worker holds its own face analyzer, engine and compositor, and detects the faces of a frame, or describes the
faces it is given (alignment, 3D fit, occlusion and person masks); tracking, smoothing and the cache's writing stay
in the calling process, in frame order.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
import traceback
from typing import IO, Any

from saswap.errors import SaSwapError

__all__ = ["AnalysisWorkers", "FrameWorkers", "picklable"]

logger = logging.getLogger(__name__)

_HEADER = struct.Struct("<Q")
#: Environment variable through which a worker learns its parent's ``sys.path`` (the package may be run from a
#: source tree the worker's interpreter would not otherwise find).
_PATH_VAR = "SASWAP_WORKER_PATH"
#: A worker's first lines: its parent's module path, then :func:`main`.
_BOOT = (
    "import os, sys; sys.path[:0] = [p for p in os.environ['SASWAP_WORKER_PATH'].split(os.pathsep) if p not in sys.path]; "
    "from saswap.pipelines.workers import main; sys.exit(main())"
)
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def _send(stream: IO[bytes], obj: Any, data: bytes | None = None) -> None:
    """Send ``obj`` (or its pickle ``data``, made once for several workers)."""
    if data is None:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def _recv(stream: IO[bytes]) -> Any:
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError
    (size,) = _HEADER.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


def picklable(*objects: Any) -> bool:
    """Whether ``objects`` can be sent to a worker process: they pickle, and nothing in them is defined in the
    caller's main module (a script's or a notebook's own engine class: a worker's main module is not the caller's).
    An engine holding an ONNX Runtime session does not pickle."""
    try:
        data = pickle.dumps(objects, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - any failure means: not in a process
        return False
    return not _uses_main(data)


def _uses_main(data: bytes) -> bool:
    """Whether a pickle refers to anything in ``__main__``."""
    import pickletools

    strings: list[str] = []
    for op, arg, _ in pickletools.genops(data):
        if op.name == "GLOBAL" and str(arg).split(" ", 1)[0] in ("__main__", "__mp_main__"):
            return True
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
            strings.append(str(arg))
        elif op.name == "STACK_GLOBAL" and len(strings) >= 2 and strings[-2] in ("__main__", "__mp_main__"):
            return True
    return False


class _RemoteTraceback(Exception):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


class _Workers:
    """``n`` worker processes, each holding what ``init`` sends it (its ``role``: what it does with a message).

    :meth:`_call` may be called from ``n`` threads at once, each call taking an idle worker. Use it as a context
    manager (or call :meth:`close`): the workers exit when their input closes, also when this process dies.

    Raises:
        SaSwapError: a worker could not start or load what it was sent.
    """

    def __init__(self, n: int, init: dict[str, Any], threads: int = 1) -> None:
        if n < 1:
            raise ValueError(f"{type(self).__name__} needs at least one worker, got {n}")
        env = dict(os.environ)
        env[_PATH_VAR] = os.pathsep.join(p for p in sys.path if p)
        env.update({name: str(max(1, int(threads))) for name in _THREAD_VARS})
        options: dict[str, Any] = (
            {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if os.name == "nt" else {"start_new_session": True}
        )  # Ctrl-C reaches the swap, which closes the workers; not the workers themselves
        self._procs: list[subprocess.Popen] = []
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        self._broken: set[int] = set()  # workers out of step with their messages (a call broken off): never used again
        self._stopped: set[int] = set()  # those of them stopped here (the others had exited by themselves)
        data = pickle.dumps({**init, "threads": max(1, int(threads))}, protocol=pickle.HIGHEST_PROTOCOL)  # once for all
        if _uses_main(data):
            raise SaSwapError("the engine or the compositor is defined in the main module: it cannot be sent to a worker")
        try:
            for _ in range(int(n)):
                self._procs.append(
                    subprocess.Popen(
                        [sys.executable, "-c", _BOOT],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        env=env,
                        **options,
                    )  # fmt: skip
                )
            for proc in self._procs:  # all of them start (import) at once; each reads its message when ready
                try:
                    _send(proc.stdin, None, data)
                except OSError:
                    pass  # the worker is gone: its exit code is reported below
            for proc in self._procs:
                message = self._reply(proc)  # (it exited: raised here)
                try:
                    _result(message, self._what)
                except Exception as err:  # what the worker raised loading what it was sent (a model, a class)
                    raise SaSwapError(f"a {self._what} process (pid {proc.pid}) could not start: {err}") from err
                self._idle.put(proc)
        except BaseException:
            self.close()
            raise

    def _reply(self, proc: subprocess.Popen) -> tuple:
        """The worker's next message (raises when it has none: it exited)."""
        try:
            return _recv(proc.stdout)
        except (EOFError, OSError):
            try:
                code = proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            raise SaSwapError(
                f"a {self._what} process (pid {proc.pid}) exited with code {code}; its error is printed above"
            ) from None

    _what = "worker"  # what the messages call a worker
    _job = "job"  # and what it makes

    def _call(self, message: Any) -> Any:
        """Send ``message`` to an idle worker and return its reply's value. An error the worker raised is raised here
        with the worker's traceback as its cause; the worker goes on."""
        proc = self._idle.get()
        try:
            if proc.pid in self._broken:
                if proc.pid in self._stopped:
                    raise SaSwapError(f"a {self._what} process (pid {proc.pid}) was stopped in the middle of a {self._job}")
                raise SaSwapError(f"a {self._what} process (pid {proc.pid}) exited with code {proc.poll()}")
            try:
                try:
                    _send(proc.stdin, message)
                except OSError:
                    pass  # the worker is gone: its exit code is reported by _reply
                reply = self._reply(proc)
            except BaseException:
                # interrupted between the job and its reply, or no reply: the worker's next reply would answer this
                # job, so it is never asked again
                self._broken.add(proc.pid)
                if proc.poll() is None:  # still running, out of step: stopped here
                    self._stopped.add(proc.pid)
                    proc.kill()
                raise
            return _result(reply, self._what)
        finally:
            self._idle.put(proc)

    def close(self) -> None:
        """Stop the workers (each finishes the job it is doing), killing any that does not exit within 10 s."""
        for proc in self._procs:
            try:
                proc.stdin.close()
            except OSError:
                pass
        for proc in self._procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        self._procs = []

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FrameWorkers(_Workers):
    """``n`` worker processes that make faces (engine + compose stage; with ``engine_here``, the compose stage alone)
    for one source, or for several (one per person: each face job names its own, :attr:`~saswap.pipelines.image.
    FaceJob.source`).

    :meth:`make_faces` is what :meth:`SaSwapPipeline.swap_frame`'s ``make_faces`` takes; it may be called from
    ``n`` threads at once, each call taking an idle worker. Use it as a context manager (or call :meth:`close`):
    the workers exit when their input closes, also when this process dies.

    Args:
        n: worker processes.
        engine, compositor: the pipeline's (pickled into each worker once; the engine not, with ``engine_here``).
        source: the prepared :class:`~saswap.engines.base.SourceFace`, or a list of them (sent to each worker once).
        shape_strength: as for the swap.
        enhance: face enhancer name or path (loaded in each worker), or None.
        threads: threads of each worker's BLAS, OpenMP and OpenCV.
        engine_here: keep the engine in this process (an engine on a GPU: one copy, its device shared by the threads
            that call :meth:`make_faces`) and send the workers only the compose stage, with each face the engine made.

    Raises:
        SaSwapError: a worker could not start or load what it was sent.
    """

    _what = "frame worker"
    _job = "face"

    def __init__(
        self, n: int, engine, compositor, source, shape_strength: float = 1.0, enhance: str | None = None,
        threads: int = 1, engine_here: bool = False,
    ) -> None:  # fmt: skip
        self._engine_here = bool(engine_here)
        if engine_here:  # the engine stays in this process (on a GPU); the workers compose
            self._engine, self._source, self._strength = engine, source, shape_strength
            # one face at a time on the device: concurrent calls gain nothing there (measured: eight threads at once
            # waited on each other) and some backends (MPS) do not allow them
            self._engine_lock = threading.Lock()
            init = {"role": "compose", "compositor": compositor, "enhance": enhance}
        else:
            init = {"role": "faces", "engine": engine, "compositor": compositor, "source": source,
                    "shape_strength": shape_strength, "enhance": enhance}  # fmt: skip
        super().__init__(n, init, threads)

    def make_faces(self, jobs: list[tuple]) -> list[tuple]:
        """Make one face per job ``(crop, crop_face, data, transform, frame_size, weight, source)``; returns what
        :func:`~saswap.pipelines.image.make_face` returns for each. With ``engine_here`` the engine makes the faces on
        the calling thread and the workers compose them. An error the worker raised is raised here with the worker's
        traceback as its cause; the worker goes on."""
        if not self._engine_here:
            return self._call(jobs)
        from saswap.pipelines.image import FaceJob, engine_face

        made, seconds = [], []
        for job in jobs:
            with self._engine_lock:
                result, engine_s = engine_face(self._engine, FaceJob(*job), self._source, self._strength)
            made.append(result)
            seconds.append(engine_s)
        composed = self._call([(*job, result) for job, result in zip(jobs, made)])
        return [
            (placed, engine_s, compose_s, boundary)
            for (placed, _, compose_s, boundary), engine_s in zip(composed, seconds)
        ]


class AnalysisWorkers(_Workers):
    """``n`` worker processes that analyse a template's frames (:class:`~saswap.pipelines.analysis.TargetAnalyzer`):
    each with its own face analyzer (made from ``analyzer``: the backend's name and its keyword arguments, see
    :meth:`~saswap.pipelines.analysis.TargetAnalyzer.analyzer_spec`), engine and compositor.

    ``engine`` is what the analysis needs of the swap engine (:meth:`~saswap.engines.base.SwapEngine.for_analysis`).
    :meth:`detect` and :meth:`analyse` may be called from ``n`` threads at once. The results are those of the calling
    process's own analyzer on the same frame up to floating-point rounding (the same code and models; every worker's
    maths on ``threads`` threads, so a least-squares fit may differ in its last digits).

    Raises:
        SaSwapError: a worker could not start or load what it was sent.
    """

    _what = "template analysis worker"
    _job = "frame"

    def __init__(self, n: int, engine, compositor, analyzer: tuple[str, dict[str, Any]], threads: int = 1) -> None:
        super().__init__(n, {"role": "analysis", "engine": engine, "compositor": compositor, "analyzer": analyzer}, threads)

    def detect(self, image, turn: int = 0) -> list:
        """The faces of a frame, largest first (:meth:`TargetAnalyzer.detect`)."""
        return self._call(("detect", image, turn))

    def upright_scores(self, image):
        """:meth:`TargetAnalyzer.upright_scores` of a frame."""
        return self._call(("upright", image))

    def analyse(
        self, image, faces: list, index: int = 0, pts: int | None = None, time: float = 0.0,
        crop_size: int | None = None,
    ):  # fmt: skip
        """The :class:`~saswap.pipelines.analysis.FrameAnalysis` of a frame whose faces are given (described for the
        engine's ``crop_size``-px crop; None: its own)."""
        return self._call(("analyse", image, faces, index, pts, time, crop_size))


def _result(message: tuple, what: str = "worker") -> Any:
    """A worker's reply: its value, or the error it reports, raised with its traceback as the cause."""
    if message[0] == "error":
        _, text, error = message
        if error is None:  # an exception that does not pickle: its traceback as text
            raise SaSwapError(f"a {what} process failed:\n{text}")
        raise error from _RemoteTraceback(text)
    return message[1]


def _error(exc: BaseException) -> tuple[str, str, BaseException | None]:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - an exception that does not survive pickling is sent as text
        return "error", text, None
    return "error", text, exc


def _enhancer(name: str | None):
    """The face enhancer a worker loads (None: none)."""
    if not name:
        return None
    from saswap.enhance import FaceEnhancer

    return FaceEnhancer.from_pretrained(name)


def _faces_role(init: dict[str, Any]):
    """A frame worker's job handler: engine + compose stage per face."""
    from saswap.pipelines.image import FaceJob, make_face

    engine, compositor, source = init["engine"], init["compositor"], init["source"]
    shape_strength = init["shape_strength"]
    enhancer = _enhancer(init["enhance"])

    def handle(jobs: list[tuple]) -> list[tuple]:
        return [make_face(engine, compositor, enhancer, FaceJob(*job), source, shape_strength) for job in jobs]

    return handle


def _analysis_role(init: dict[str, Any]):
    """A template analysis worker's job handler: ``("detect", image, turn)``, ``("upright", image)`` or ``("analyse",
    image, faces, index, pts, time)``."""
    from functools import partial

    from saswap.face.analyzer import FaceAnalyzer
    from saswap.face.parsing import set_threads
    from saswap.pipelines.analysis import TargetAnalyzer

    set_threads(init["threads"])
    backend, kwargs = init["analyzer"]
    analyzer = TargetAnalyzer(init["engine"], init["compositor"], partial(FaceAnalyzer, backend, **kwargs))
    analyzer.analyzer  # noqa: B018 - loaded now: a model that does not load is reported when the worker starts
    sized = {analyzer.engine.crop_size: analyzer}  # the analysis for other crop sizes (crop_size="auto")

    def at(size: int | None) -> TargetAnalyzer:
        if size is None:
            return analyzer
        if size not in sized:
            sized[size] = analyzer.resized(size)
        return sized[size]

    def handle(message: tuple) -> Any:
        kind, image, *rest = message
        if kind == "detect":
            return analyzer.detect(image, *rest)
        if kind == "upright":
            return analyzer.upright_scores(image)
        faces, index, pts, time_, size = rest
        return at(size)(image, faces, index=index, pts=pts, time=time_)

    return handle


def _compose_role(init: dict[str, Any]):
    """A frame worker's job handler when the engine computes in the calling process: the compose stage per face."""
    from saswap.pipelines.image import FaceJob, compose_face

    compositor = init["compositor"]
    enhancer = _enhancer(init["enhance"])

    def handle(jobs: list[tuple]) -> list[tuple]:
        return [compose_face(compositor, enhancer, FaceJob(*job), result) for *job, result in jobs]

    return handle


_ROLES = {"faces": _faces_role, "analysis": _analysis_role, "compose": _compose_role}


def _serve(inp: IO[bytes], out: IO[bytes]) -> int:
    try:
        init = _recv(inp)
    except EOFError:
        return 0
    except Exception as exc:  # noqa: BLE001 - what was sent does not load here: reported to the parent
        _send(out, _error(exc))
        return 1
    try:
        import cv2

        cv2.setNumThreads(init["threads"])
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(init["threads"])
        handle = _ROLES[init["role"]](init)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        _send(out, _error(exc))
        return 1
    _send(out, ("ok", os.getpid()))
    while True:
        try:
            message = _recv(inp)
        except EOFError:
            return 0
        try:
            value = handle(message)
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
            _send(out, _error(exc))
            continue
        _send(out, ("ok", value))


def main() -> int:
    """A worker's entry point: messages on standard input, replies on standard output (anything else the worker
    prints goes to standard error)."""
    if hasattr(signal, "SIGINT"):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    if sys.stderr is not None:  # (none under pythonw)
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    else:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    try:
        return _serve(sys.stdin.buffer, out)
    except BrokenPipeError:  # the parent went away
        return 0
