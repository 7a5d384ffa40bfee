"""MediaPipe graphs used by the default face analysis backend (models ship inside the wheel).

The face detector runs through ``mediapipe.solutions.face_detection`` (full- and short-range
BlazeFace). The 478-point face mesh runs through a small custom graph around MediaPipe's
``FaceLandmarkCpu`` subgraph, so that the region of interest is ours: we can run it on faces found
anywhere (small faces, tiles, rotated faces, tracked regions), not only where MediaPipe's own
short-range detector looks.
"""

from __future__ import annotations

import os

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import contextlib  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402

import numpy as np  # noqa: E402

from saswap.errors import SaSwapError  # noqa: E402

__all__ = ["MeshGraph", "BlazeFaceDetector", "PersonSegmenter", "mediapipe_version"]

_GRAPH = """
input_stream: "image"
input_stream: "roi"
output_stream: "landmarks"
node {
  calculator: "FaceLandmarkCpu"
  input_stream: "IMAGE:image"
  input_stream: "ROI:roi"
  input_side_packet: "WITH_ATTENTION:with_attention"
  output_stream: "LANDMARKS:landmarks"
}
"""


_QUIET_LOCK = threading.Lock()
_QUIET = {"depth": 0, "fd": -1, "saved": -1}


@contextlib.contextmanager
def quiet_native_stderr():
    """Silence what MediaPipe's C++ core writes to file descriptor 2 while a graph runs.

    TFLite and absl print notices (delegates, feedback tensors, projection hints) straight to the
    process's stderr, which would bury the one-line messages of the command line. Python-level errors
    are unaffected: they are raised after the descriptor is restored. ``SASWAP_NATIVE_LOGS=1`` keeps
    the native messages (for debugging MediaPipe itself).

    Nested and concurrent uses (threads) share one redirection: the first to enter silences the
    descriptor, the last to leave restores it.
    """
    if os.environ.get("SASWAP_NATIVE_LOGS"):
        yield
        return
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (pytest capture, notebooks)
        yield
        return
    with _QUIET_LOCK:
        if _QUIET["depth"] == 0:
            sys.stderr.flush()
            saved = os.dup(fd)
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), fd)
            _QUIET.update(fd=fd, saved=saved)
        _QUIET["depth"] += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _QUIET["depth"] -= 1
            if _QUIET["depth"] == 0:
                os.dup2(_QUIET["saved"], _QUIET["fd"])
                os.close(_QUIET["saved"])


def _import_mediapipe():
    try:
        import mediapipe  # noqa: F401
        from mediapipe.python.solutions import face_detection  # noqa: F401
    except ImportError as err:  # pragma: no cover - depends on the environment
        from saswap.interrupts import check

        check()  # a Ctrl-C that came while the extension loaded fails its import as "initialization failed"
        raise SaSwapError(
            "the mediapipe backend needs mediapipe 0.10.14-0.10.21 (later releases no longer ship the face "
            f"detector and face mesh models): pip install 'mediapipe==0.10.21' ({err})"
        ) from None
    return mediapipe


def mediapipe_version() -> str:
    return _import_mediapipe().__version__


class MeshGraph:
    """MediaPipe's 478-point face mesh (with attention: lips, eyes and irises refined) on a given ROI.

    Convention:
        ``roi`` is (cx, cy, size, angle) in pixels and radians: a square of side ``size`` centred at
        (cx, cy), rotated by ``angle`` (counter-clockwise in MediaPipe's convention, y pointing down).
        Output landmarks are (478, 3) in pixels; z is depth in the same scale as x (smaller is nearer).
    """

    def __init__(self) -> None:
        _import_mediapipe()
        from google.protobuf import text_format
        from mediapipe.framework import calculator_pb2
        from mediapipe.framework.formats import rect_pb2
        from mediapipe.python.solution_base import SolutionBase

        config = text_format.Parse(_GRAPH, calculator_pb2.CalculatorGraphConfig())
        self._rect_cls = rect_pb2.NormalizedRect
        with quiet_native_stderr():
            self._graph = SolutionBase(graph_config=config, side_inputs={"with_attention": True}, outputs=["landmarks"])
            # the graph's threads open its models (and log about it) after the constructor returns: one run
            # on a blank image while the log is silenced (every graph here is stateless: results unchanged)
            self._graph.process({"image": np.zeros((64, 64, 3), np.uint8), "roi": self._rect_cls(x_center=0.5, y_center=0.5, width=1.0, height=1.0)})

    def __call__(self, image: np.ndarray, roi: tuple[float, float, float, float]) -> np.ndarray | None:
        h, w = image.shape[:2]
        cx, cy, size, angle = roi
        rect = self._rect_cls(x_center=cx / w, y_center=cy / h, width=size / w, height=size / h, rotation=float(angle))
        with quiet_native_stderr():
            out = self._graph.process({"image": image, "roi": rect}).landmarks
        if out is None:
            return None
        pts = np.array([(p.x * w, p.y * h, p.z * w) for p in out.landmark], dtype=np.float32)
        return pts

    def close(self) -> None:
        self._graph.close()


class BlazeFaceDetector:
    """MediaPipe BlazeFace, full-range and short-range models, on one RGB image.

    Returns boxes (N, 4) as x1, y1, x2, y2 in pixels, scores (N,) and the six BlazeFace keypoints
    (N, 6, 2): image-left eye, image-right eye, nose tip, mouth centre, image-left ear, image-right ear.
    """

    def __init__(self, min_score: float = 0.6) -> None:
        _import_mediapipe()
        from mediapipe.python.solutions import face_detection

        self.min_score = float(min_score)
        with quiet_native_stderr():
            self._full = face_detection.FaceDetection(model_selection=1, min_detection_confidence=min_score)
            self._short = face_detection.FaceDetection(model_selection=0, min_detection_confidence=min_score)
            blank = np.zeros((64, 64, 3), np.uint8)  # see MeshGraph: models opened (and their logs) now
            self._full.process(blank)
            self._short.process(blank)

    def __call__(
        self, image: np.ndarray, x0: float = 0.0, y0: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        h, w = image.shape[:2]
        boxes, scores, kps = [], [], []
        with quiet_native_stderr():
            results = [self._full.process(image), self._short.process(image)]
        for result in results:
            for det in result.detections or []:
                if det.score[0] < self.min_score:  # MediaPipe's weighted NMS can average below its threshold
                    continue
                rel = det.location_data.relative_bounding_box
                boxes.append(
                    [
                        x0 + rel.xmin * w,
                        y0 + rel.ymin * h,
                        x0 + (rel.xmin + rel.width) * w,
                        y0 + (rel.ymin + rel.height) * h,
                    ]
                )
                scores.append(det.score[0])
                kps.append([[x0 + k.x * w, y0 + k.y * h] for k in det.location_data.relative_keypoints])
        if not boxes:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 6, 2), np.float32)
        return np.asarray(boxes, np.float32), np.asarray(scores, np.float32), np.asarray(kps, np.float32)

    def close(self) -> None:
        self._full.close()
        self._short.close()


class PersonSegmenter:
    """MediaPipe's selfie segmentation (the general 256x256 model): how likely each pixel shows a person.

    Used to tell a turned face's silhouette from the background behind it, which a face mesh's outline
    only approximates (the nose, lips and chin of a profile). Returns float32 (H, W) in [0, 1].
    """

    def __init__(self, landscape: bool = False) -> None:
        _import_mediapipe()
        from mediapipe.python.solutions import selfie_segmentation

        with quiet_native_stderr():
            self._graph = selfie_segmentation.SelfieSegmentation(model_selection=int(bool(landscape)))
            self._graph.process(np.zeros((64, 64, 3), np.uint8))  # see MeshGraph

    def __call__(self, image: np.ndarray) -> np.ndarray:
        with quiet_native_stderr():
            mask = self._graph.process(np.ascontiguousarray(image)).segmentation_mask
        return np.clip(np.asarray(mask, np.float32), 0.0, 1.0)

    def close(self) -> None:
        self._graph.close()
