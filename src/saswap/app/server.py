"""The SaSwap web app: upload a photo, choose a target image, video or template, swap, watch, download.

Built with Gradio on :class:`~saswap.pipelines.image.SaSwapPipeline`. ``saswap app`` (or :func:`launch`)
starts it; :func:`build_app` returns the ``gr.Blocks`` page. The same functions are API endpoints for
``gradio_client``: ``/detect_faces``, ``/swap`` (image or video target, or a template by name) and
``/templates``.

Privacy: faces are personal data. The app binds to 127.0.0.1 unless told otherwise, makes no network
request of its own (Gradio's analytics and version check off, no share link, the theme's fonts served
by the app itself, Hugging Face Hub offline), keeps uploads and results in one temporary folder that is
removed when it stops (Gradio's own temporary folder too: :data:`_GRADIO_FOLDER`), and serves a visitor's files
to that visitor only (:mod:`saswap.app.isolation`).
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

# Before gradio (and huggingface_hub) are imported: no usage analytics, no version check, no telemetry.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"  # the app never downloads: engines and enhancers must be local

#: Gradio reads ``GRADIO_TEMP_DIR`` once, when it is imported, for the folder of what it writes outside an app's
#: uploads: an empty ``vibe_edit_history`` folder each time a page is built (for its vibe editor, which the app never
#: turns on), a visitor's screen recordings. Left to itself that is ``<tmp>/gradio``, shared by every Gradio app of
#: the computer, where the empty folder stayed behind; here it is a folder of this process's own, removed when its
#: last app stops (:meth:`RunningApp.close`) or the process ends. None where gradio was imported first or
#: ``GRADIO_TEMP_DIR`` was set: Gradio then keeps the folder it was given.
_GRADIO_FOLDER: Path | None = None
if "gradio" not in sys.modules and not os.environ.get("GRADIO_TEMP_DIR"):
    _GRADIO_FOLDER = Path(tempfile.gettempdir()) / f"saswap-gradio-{secrets.token_hex(8)}"  # Gradio makes it
    os.environ["GRADIO_TEMP_DIR"] = str(_GRADIO_FOLDER)
    atexit.register(shutil.rmtree, _GRADIO_FOLDER, True)

import contextlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

from saswap.app.isolation import VisitorFiles, VisitorIsolation, visitor_token  # noqa: E402
from saswap.app.jobs import Job, JobBoard, JobCancelled  # noqa: E402
from saswap.app.templates import Template, find_templates  # noqa: E402
from saswap.errors import SaSwapError  # noqa: E402
from saswap.notes import collect_warnings  # noqa: E402

__all__ = ["AppSettings", "SaSwapApp", "RunningApp", "build_app", "launch"]

logger = logging.getLogger(__name__)

_running = 0  # apps of this process started by launch() and not closed yet
_running_lock = threading.Lock()


def _count_running(change: int) -> None:
    """Count this process's running apps; once none runs, remove Gradio's folder (:data:`_GRADIO_FOLDER`; Gradio
    makes it again for a page built later)."""
    global _running
    with _running_lock:
        _running += change
        if _running == 0 and _GRADIO_FOLDER is not None:
            shutil.rmtree(_GRADIO_FOLDER, ignore_errors=True)

_LARGEST, _ALL, _REFERENCE = "0", "all", "reference"
_SECOND = "second person's photo"
_IMAGE_TYPES = ["image"]
_TARGET_TYPES = ["image", "video"]


@dataclass
class AppSettings:
    """What ``saswap app`` is started with.

    Attributes:
        templates: folder of template videos (those with a precomputed template cache are offered).
        cache_dir: the template cache folder (default: ``$SASWAP_CACHE`` or the user cache folder).
        engines: zoo names or model folders offered in the engine choice; the first is the default.
        enhance: a face enhancer (ONNX file, folder or known name, present locally) for the "enhance"
            switch; None leaves the switch off.
        max_video_seconds: longest uploaded video accepted.
        max_upload_mb: largest uploaded file accepted, in megabytes.
        max_image_mp: largest uploaded photo accepted, in megapixels (a small file can hold a huge, blank picture
            that takes the swap queue for half a minute).
        tone_lock: the compose stage's ``tone_lock`` for every swap (:class:`~saswap.compose.Compositor`; 0 off).
        crop_size: the aligned crop every swap is made in, as ``saswap swap --crop-size`` takes it (None: the
            engine's own; ``"auto"``: sized to the face). The template folder's caches are those precomputed
            with the same ``--crop-size``.
        occlusion: the compose stage's ``occlusion`` for every swap, as ``saswap swap --occlusion`` takes it
            (``"parser"``, ``"rules"``, ``"off"`` or a face parser's folder; None: the engine's own). The template
            folder's caches are those precomputed with the same ``--occlusion``.
        harmonize: the compose stage's ``harmonize`` for every swap, as ``saswap swap --harmonize`` takes it (``"off"``
            or a tone harmoniser's folder; None: the engine's own).
    """

    templates: Path | None = None
    cache_dir: Path | None = None
    engines: tuple[str, ...] = ("saswap-geometric",)
    enhance: str | None = None
    max_video_seconds: float = 60.0
    max_upload_mb: float = 50.0
    max_image_mp: float = 50.0
    tone_lock: float = 0.0
    crop_size: int | str | None = None
    occlusion: str | None = None
    harmonize: str | None = None

    def __post_init__(self) -> None:
        from saswap.pipelines.image import check_compose, check_crop_size

        if not self.engines:
            raise SaSwapError("give at least one engine")
        self.crop_size = check_crop_size(self.crop_size)
        if not 0.0 <= self.tone_lock <= 1.0:
            raise SaSwapError(f"--tone-lock must lie between 0 and 1, got {self.tone_lock}")
        if self.max_video_seconds <= 0 or self.max_upload_mb <= 0 or self.max_image_mp <= 0:
            raise SaSwapError("--max-video-seconds, --max-upload-mb and --max-image-mp must be positive")
        self.engines = tuple(dict.fromkeys(self.engines))
        if self.occlusion is not None or self.harmonize is not None:  # a missing model folder: said at start
            check_compose(self.compose())

    def compose(self) -> dict[str, Any] | None:
        """The compose stage's options every swap is made with (None: the engine's own)."""
        from saswap.pipelines.image import compose_options

        return compose_options(self.tone_lock, self.occlusion, self.harmonize)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def _bad(message: str) -> gr.Error:
    """An error shown in the page (a toast that stays until closed) and returned to API clients."""
    return gr.Error(message, duration=None, title="Cannot do that", print_exception=False)


def _draw_numbered(image: np.ndarray, faces: list, max_side: int = 768) -> np.ndarray:
    """A copy of ``image``, at most ``max_side`` pixels on its longer side, with each face boxed and numbered
    (1 = largest)."""
    import cv2

    h, w = image.shape[:2]
    scale = min(1.0, max_side / float(max(h, w)))
    out = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else image.copy()
    thick = max(2, round(max(out.shape[:2]) / 300))
    for i, face in enumerate(faces):
        x1, y1, x2, y2 = (np.asarray(face.box, np.float64) * scale).round().astype(int)
        colour = (255, 196, 0) if i == 0 else (0, 200, 255)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thick, cv2.LINE_AA)
        label = str(i + 1)
        font_scale = max(0.6, min(2.0, (y2 - y1) / 90.0))
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thick)
        ty = max(th + base + 2, y1)
        cv2.rectangle(out, (x1, ty - th - base - 4), (x1 + tw + 8, ty), colour, -1)
        cv2.putText(out, label, (x1 + 4, ty - base - 2), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), thick, cv2.LINE_AA)
    return out


def _safe_stem(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem).strip("._") or "result"
    return stem[:60]


def _tag_summary(tag: dict[str, Any] | None) -> str:
    """The tag for the page: a readable line, then the JSON as it is stored in the file."""
    if tag is None:
        return "no provenance tag found in the file"
    details = ", ".join(f"{k} {v}" for k, v in sorted(tag.items()) if k not in ("synthetic", "generator", "note", "app"))
    return f"SYNTHETIC - made with saswap ({details})\n{json.dumps(tag, sort_keys=True)}"


@dataclass
class _Target:
    """The chosen target: an uploaded image or video, or a template."""

    kind: str  # "image" or "video"
    path: str
    name: str
    template: bool = False
    frame: int | None = 0  # a video's preview frame: its first with a face (its faces are the numbered ones); None:
    time: float = 0.0  # not looked for yet (an API swap); that frame's time, seconds


@dataclass
class _Session:
    folders: list[Path] = field(default_factory=list)
    token: str | None = None  # the visitor's cookie


class SaSwapApp:
    """The app's state and its handlers (one per page event and API endpoint).

    Args:
        settings: :class:`AppSettings`.
        workdir: the app's temporary folder (uploads, results, caches of uploaded videos).
    """

    def __init__(self, settings: AppSettings, workdir: Path) -> None:
        from saswap.face import FaceAnalyzer

        self.settings = settings
        self.workdir = Path(workdir)
        self.files = VisitorFiles(self.workdir / "gradio")
        self.private = self.workdir / "private"
        self.private.mkdir(parents=True, exist_ok=True)
        self.board = JobBoard()
        self._pipes: dict[str, Any] = {}
        self._pipe_lock = threading.Lock()
        self._run_lock = threading.Lock()  # the pipelines' models are not thread-safe: one swap at a time
        self._detector = FaceAnalyzer()
        self._detect_lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._sessions_lock = threading.Lock()
        self.templates: list[Template] = []
        self.templates_skipped: list[str] = []
        if settings.enhance:
            from saswap.enhance import FaceEnhancer

            FaceEnhancer.from_pretrained(settings.enhance)  # a missing enhancer fails at start, not on a visitor
        default = self.pipeline(settings.engines[0])  # loaded now: a broken engine fails at start, not on a visitor
        default.crop_size_for([], settings.crop_size)  # so does a crop size the engine cannot work on
        if settings.templates is not None:
            self.templates, self.templates_skipped = find_templates(
                settings.templates, default, settings.cache_dir, self.files.public / "thumbs", settings.crop_size,
                settings.occlusion,
            )  # fmt: skip

    # -- shared helpers ---------------------------------------------------------------------------
    def pipeline(self, engine: str):
        """The pipeline of an engine (loaded once, on first use)."""
        from saswap.pipelines.image import SaSwapPipeline

        if engine not in self.settings.engines:
            raise SaSwapError(f"engine {engine!r} is not offered here (choose one of {', '.join(self.settings.engines)})")
        with self._pipe_lock:
            if engine not in self._pipes:
                try:
                    self._pipes[engine] = SaSwapPipeline.from_pretrained(engine, compose=self.settings.compose())
                except SaSwapError as err:
                    raise SaSwapError(f"the engine {engine!r} cannot be loaded: {err}") from None
            return self._pipes[engine]

    def _token(self, request: gr.Request | None) -> str | None:
        """The visitor's cookie (every request has one: :class:`VisitorIsolation` adds it when missing)."""
        headers = getattr(request, "headers", None) if request is not None else None
        return visitor_token(headers.get("cookie")) if headers is not None else None

    def _session(self, request: gr.Request | None) -> str:
        return getattr(request, "session_hash", None) or "anonymous"

    def _own(self, token: str | None, path: str | None, role: str) -> str:
        """The path of an input file the visitor may use (uploaded in their session), or an error."""
        if not path:
            raise _bad(f"Please upload the {role} first.")
        path = str(path)
        name = Path(path).name
        if not self.files.guarded(path) or not self.files.owns(token, path) or not os.path.isfile(path):
            raise _bad(f"{name}: this file is not part of your session; upload the {role} again.")
        size = os.path.getsize(path)
        if size > self.settings.max_upload_bytes:
            raise _bad(
                f"{name}: {size / 1048576:.1f} MB is larger than this app accepts "
                f"({self.settings.max_upload_mb:g} MB, set with --max-upload-mb)."
            )
        return path

    def _clean(self, message: str, names: dict[str, str]) -> str:
        """An error message for the page: input paths replaced by the file names, no server paths."""
        for path, name in sorted(names.items(), key=lambda kv: -len(kv[0])):
            message = message.replace(path, name)
        return message.replace(str(self.workdir), "…")

    def _new_folder(self, token: str | None, request: gr.Request | None) -> Path:
        folder = self.files.new_job_folder(token or "anonymous-visitor-without-cookie")
        with self._sessions_lock:
            session = self._sessions.setdefault(self._session(request), _Session())
            session.folders.append(folder)
            session.token = token
        return folder

    def _detect(self, image: np.ndarray) -> list:
        with self._detect_lock:
            return self._detector(image, turn="auto")  # numbered as a swap of the photo numbers them

    def _face_picture(self, target: _Target, index: int, folder: Path, name: str = "reference-face.png") -> Path:
        """A picture of face ``index`` of a video's preview frame (its first frame with a face, numbered as the preview
        numbers them), or of an image, cut out with a margin so that it is the largest face there: the reference photo
        that makes the swap follow that person (:meth:`~saswap.pipelines.image.SaSwapPipeline.swap_video`'s
        ``reference``). A video's ``face_index`` counts people by their face area over the whole video, not one frame's
        faces."""
        from saswap.io import save_image
        from saswap.videoio import VideoReader

        image, faces = None, []
        if target.kind == "image":
            image = self._load_image(target.path, "target")
            faces = self._detect(image)
        elif target.frame is None:  # an API swap: the preview frame is looked for now
            shown = self._video_preview(target.path)
            if shown is not None:
                image, _, _, faces = shown
        else:
            with VideoReader(target.path) as reader:
                image = next((frame.image for frame in reader if frame.index >= target.frame), None)
            faces = self._detect(image) if image is not None else []
        if index >= len(faces):
            where = "the image" if target.kind == "image" else "the preview frame"
            raise _bad(f"{target.name}: face {index + 1} was chosen, but {where} has {len(faces)} face(s)")
        x0, y0, x1, y1 = (float(v) for v in faces[index].box)
        margin = 0.6 * max(x1 - x0, y1 - y0)
        h, w = image.shape[:2]
        left, top = int(max(0, x0 - margin)), int(max(0, y0 - margin))
        right, bottom = int(min(w, x1 + margin)), int(min(h, y1 + margin))
        path = folder / name
        save_image(np.ascontiguousarray(image[top:bottom, left:right]), path)
        return path

    def _load_image(self, path: str, role: str) -> np.ndarray:
        from PIL import Image

        from saswap.io import load_image

        try:  # the size from the header, before the picture is decoded (what Pillow cannot open, load_image judges)
            with Image.open(path) as im:
                w, h = im.size
        except Exception:  # noqa: BLE001
            w = h = 0
        limit = self.settings.max_image_mp
        if w * h > limit * 1e6:
            raise _bad(
                f"{Path(path).name}: the {role} is {w}×{h} pixels ({w * h / 1e6:.0f} megapixels); this app accepts "
                f"photos up to {limit:g} megapixels (set with --max-image-mp). Make it smaller and upload it again."
            )
        try:
            return load_image(path)
        except SaSwapError as err:
            raise _bad(self._clean(f"The {role} cannot be used: {err}", {path: Path(path).name})) from None

    def _video_preview(self, path: str) -> tuple[np.ndarray, int, float, list] | None:
        """A video's first frame with a face (its picture, index, time and faces), looked for in the first frame and
        then every quarter of a second, at most 48 times; the first frame (no faces) when none has a face; None when no
        frame decodes."""
        from saswap.videoio import VideoReader

        first = None
        with VideoReader(path) as reader:
            step = max(1, round(reader.info.fps / 4))
            tries = 0
            for frame in reader:
                if first is None:
                    first = (frame.image, frame.index, frame.time, [])
                if frame.index % step:
                    continue
                faces = self._detect(frame.image)
                if faces:
                    return frame.image, frame.index, frame.time, faces
                tries += 1
                if tries >= 48:
                    break
        return first

    def _read_target(self, path: str, preview: bool = True) -> tuple[str, np.ndarray, str, int | None, float, Any]:
        """(kind, preview frame, one line about it, the frame's index and time, its faces or None when not looked for)
        of an uploaded target, or an error for the page. A video's preview frame is its first frame with a face (with
        ``preview`` False: its first frame, the index None, nothing detected)."""
        from saswap.videoio import VideoReader, is_video_file, probe_video

        name = Path(path).name
        if is_video_file(path):
            try:
                info = probe_video(path)
            except SaSwapError as err:
                raise _bad(self._clean(f"The target video cannot be used: {err}", {path: name})) from None
            limit = self.settings.max_video_seconds
            if info.duration > limit:
                raise _bad(
                    f"{name}: the video is {info.duration:.1f} s long; this app accepts videos up to {limit:g} s "
                    "(set with --max-video-seconds). Trim it and upload it again."
                )
            try:
                if preview:
                    shown = self._video_preview(path)
                else:
                    with VideoReader(path) as reader:
                        first = next(iter(reader), None)
                    shown = None if first is None else (first.image, None, 0.0, None)
            except SaSwapError as err:
                raise _bad(self._clean(f"The target video cannot be used: {err}", {path: name})) from None
            if shown is None:
                raise _bad(f"{name}: no frame of this video could be decoded.")
            line = f"video · {info.duration:.1f} s · {info.width}×{info.height} · {info.fps:.0f} fps"
            return "video", shown[0], line, shown[1], shown[2], shown[3]
        image = self._load_image(path, "target")
        return "image", image, f"image · {image.shape[1]}×{image.shape[0]}", 0, 0.0, None

    def _preview(self, token: str | None, request: gr.Request | None, image: np.ndarray, faces: list) -> str:
        from saswap.io import save_image

        folder = self._new_folder(token, request)
        path = folder / "faces.jpg"
        save_image(_draw_numbered(image, faces), path)
        return str(path)

    @staticmethod
    def _face_choices(n: int, video: bool = False, second: bool = False) -> list[tuple[str, str]]:
        if second:  # the second person of a couple: a face of the preview (a video's person is followed from it)
            choices = [(f"The person of face {i + 1}" if video else f"Face {i + 1}", str(i)) for i in range(n)]
            return [*choices, ("The person in a reference photo", _REFERENCE)]
        if video:  # the faces are those of the first frame; the swap follows a person through the video
            choices = [("The main person (most on screen)" if n > 1 else "The person found", _LARGEST)]
            choices += [(f"The person of face {i + 1}", str(i)) for i in range(1, n)]
        else:
            choices = [("Face 1 (largest)" if n > 1 else "The face found", _LARGEST)]
            choices += [(f"Face {i + 1}", str(i)) for i in range(1, n)]
        if n > 1:
            choices.append(("All faces", _ALL))
        choices.append(("The person in a reference photo", _REFERENCE))
        return choices

    # -- page events ------------------------------------------------------------------------------
    def on_source(self, path: str | None, request: gr.Request):
        """A source photo was uploaded (or cleared): show the face that will be used."""
        return self._source_face(path, request, "source photo")

    def on_second_source(self, path: str | None, request: gr.Request):
        """The second person's photo was uploaded (or cleared): show the face that will be used."""
        return self._source_face(path, request, _SECOND)

    def _source_face(self, path: str | None, request: gr.Request, role: str):
        if not path:
            return None
        token = self._token(request)
        path = self._own(token, path, role)
        image = self._load_image(path, role)
        faces = self._detect(image)
        if not faces:
            raise _bad(
                f"{Path(path).name}: no face found in this photo. Use a photo where one face is clearly visible, "
                "facing the camera."
            )
        return self._preview(token, request, image, faces[:1])

    def _target_outputs(self, target: _Target, image: np.ndarray, line: str, token, request, faces=None):
        faces = self._detect(image) if faces is None else faces
        if not faces:
            raise _bad(f"{target.name}: no face found in this {'video' if target.kind == 'video' else 'image'}.")
        preview = self._preview(token, request, image, faces)
        where = ""
        if target.kind == "video":
            where = " in the first frame" if target.frame == 0 else f" at {target.time:.1f} s (the first with a face)"
        info = f"**{target.name}** — {line} — {len(faces)} face{'s' if len(faces) != 1 else ''} found{where}"
        video = target.kind == "video"
        choices = self._face_choices(len(faces), video=video)
        second = gr.update(choices=self._face_choices(len(faces), video, second=True),
                           value="1" if len(faces) > 1 else _REFERENCE)  # fmt: skip
        return target, preview, info, gr.update(choices=choices, value=_LARGEST), second

    def on_target(self, path: str | None, request: gr.Request):
        """A target image or video was uploaded: show its faces, numbered, and offer them."""
        if not path:
            second = gr.update(choices=self._face_choices(1, second=True), value=_REFERENCE)
            return None, None, "", gr.update(choices=self._face_choices(1), value=_LARGEST), second
        token = self._token(request)
        path = self._own(token, path, "target")
        kind, image, line, index, when, faces = self._read_target(path)
        target = _Target(kind, path, Path(path).name, False, index, when)
        return self._target_outputs(target, image, line, token, request, faces)

    def on_template(self, evt: gr.SelectData, request: gr.Request):
        """A template was picked in the gallery."""
        template = self.templates[int(evt.index)]
        image, index, when, faces = self._video_preview(str(template.path))
        line = f"template · {template.duration:.1f} s · {template.width}×{template.height}"
        target = _Target("video", str(template.path), template.name, True, index, when)
        return self._target_outputs(target, image, line, self._token(request), request, faces)

    def on_choice(self, choice: str):
        return gr.update(visible=choice == _REFERENCE)

    def on_swap(self, source, target: _Target | None, choice, reference, strength, engine, enhance, second_source,
                second_choice, second_reference, request: gr.Request,
                progress: gr.Progress = gr.Progress()) -> Iterator[tuple]:  # fmt: skip
        """Run a swap and stream its progress into the page; the result, its tag and the download at the end.
        An error is shown twice: as a message that stays until closed, and in the status line (the event itself
        ends normally, so the status line keeps it)."""
        keep = (gr.skip(), gr.skip(), gr.skip(), gr.skip())
        try:
            if target is None:
                raise _bad("Please upload a target image or video, or pick a template, first.")
            job, kind, out = self._start(self._token(request), request, source, target, choice, reference, strength,
                                         engine, enhance, (second_source, second_choice, second_reference))  # fmt: skip
        except gr.Error as err:
            gr.Warning(err.message, duration=None, title="Not started")
            yield (f"**Not started:** {err.message}", *keep)
            return
        is_video = kind == "video"
        yield (
            "**Working:** starting…", gr.update(value=None, visible=not is_video),
            gr.update(value=None, visible=is_video), "", gr.update(value=None, interactive=False),
        )  # fmt: skip
        for line in self._watch(job, progress):
            yield (line, *keep)
        try:
            path, tag = self._finish(job, out)
        except gr.Error as err:
            gr.Warning(err.message, duration=None, title="Stopped")
            yield (f"**Stopped:** {err.message}", *keep)
            return
        took = job.result.get("seconds", 0.0)
        notes = "".join(f"\n\n**Note:** {note}" for note in job.result.get("notes", []))
        yield (
            f"**Done** in {took:.1f} s. The file is tagged as synthetic (right); download it with the button.{notes}",
            gr.update(value=path if not is_video else None, visible=not is_video),
            gr.update(value=path if is_video else None, visible=is_video),
            _tag_summary(tag),
            gr.update(value=path, interactive=True),
        )

    def on_cancel(self, request: gr.Request) -> str:
        """Stop this session's running job (its partial output is removed)."""
        stopped = self.board.cancel(self._session(request))
        return "**Cancelled**; nothing was kept." if stopped else "Nothing is running."

    def on_unload(self, request: gr.Request) -> None:
        """The visitor closed the page: stop their job and remove their results and previews, and, once no other
        page of theirs is open, their uploads (those no other visitor uploaded too) and the caches of their videos."""
        session = self._session(request)
        self.board.cancel(session)
        token = self._token(request)
        with self._sessions_lock:
            record = self._sessions.pop(session, None)
            open_elsewhere = any(s.token == token for s in self._sessions.values())
        for folder in record.folders if record else ():
            shutil.rmtree(folder, ignore_errors=True)
        if token is None or open_elsewhere:
            return
        for path in self.files.release(token):
            with contextlib.suppress(OSError):
                os.unlink(path)
                parent = Path(path).parent
                if parent != self.files.root and self.files.guarded(parent):
                    parent.rmdir()  # Gradio's folder of that one upload, when nothing else is in it
        shutil.rmtree(self.private / "caches" / VisitorFiles.digest(token), ignore_errors=True)

    # -- API endpoints ----------------------------------------------------------------------------
    def api_detect_faces(self, image: str | None, request: gr.Request):
        """Find the faces of an image: (the image with numbered boxes, a list of faces with box and score)."""
        token = self._token(request)
        path = self._own(token, image, "image")
        kind, frame, _, _, _, faces = self._read_target(path)
        faces = self._detect(frame) if faces is None else faces
        listing = [
            {"index": i, "box": [round(float(v), 1) for v in f.box], "score": round(float(f.score), 3)}
            for i, f in enumerate(faces)
        ]
        return self._preview(token, request, frame, faces), {"kind": kind, "faces": listing}

    def api_swap(self, source, target, template, faces, reference, shape_strength, engine, enhance,
                 second_source=None, second_faces=None, second_reference=None, request: gr.Request = None,
                 progress: gr.Progress = gr.Progress()):  # fmt: skip
        """Swap the source's face into an uploaded target image or video, or into a template by name.

        ``faces`` is "0" (the largest face; "1", "2"... the next ones), "all", or "reference" (the face most
        like the ``reference`` photo's). In a video, "0" is the main person (the most on screen) and "1", "2"... the
        person of that face of its first frame with a face, all through the video. Two people (a couple): a
        ``second_source`` photo replaces the face ``second_faces`` names ("1" unless told; "reference": the person in
        ``second_reference``), and ``faces`` the first; in a video each of them is the person of that face of its
        first frame with a face. Yields progress while a video is made; the last output is (the result file, its
        provenance tag)."""
        token = self._token(request)
        if template:
            match = [t for t in self.templates if t.name == template]
            if not match:
                names = ", ".join(t.name for t in self.templates) or "none"
                raise _bad(f"{template}: no such template (available: {names})")
            chosen = _Target("video", str(match[0].path), match[0].name, True, None)  # preview looked for if needed
        else:
            path = self._own(token, target, "target")
            kind, *_ = self._read_target(path, preview=False)
            chosen = _Target(kind, path, Path(path).name, False, None)
        job, _, out = self._start(token, request, source, chosen, str(faces or _LARGEST), reference, shape_strength,
                                  engine, enhance, (second_source, second_faces, second_reference))  # fmt: skip
        def update(line: str) -> tuple[None, dict[str, Any]]:
            return None, {"status": line, "stage": job.stage, "done": job.done_frames, "total": job.total_frames}

        for line in self._watch(job, progress):
            yield update(line)
        if job.finished and job.error is None and job.total_frames:
            # the end state too: a short video can finish between two of the watcher's half-second updates
            yield update("**Working:** " + job.describe())
        path, tag = self._finish(job, out)
        yield path, tag

    def api_templates(self) -> list[dict[str, Any]]:
        """The templates offered: name, duration, size."""
        return [
            {"name": t.name, "duration": round(t.duration, 2), "width": t.width, "height": t.height}
            for t in self.templates
        ]

    # -- jobs -------------------------------------------------------------------------------------
    def _start(self, token, request, source, target: _Target, choice, reference, strength, engine, enhance,
               second=(None, None, None)):  # fmt: skip
        """Check every input, then start the swap on its own thread: (the job, "image"/"video", the output).
        ``second``: the second person of a couple, (their photo, which face it replaces, a reference photo), or
        ``(None, ...)``."""
        source = self._own(token, source, "source photo")
        self._load_image(source, "source photo")
        second_source, second_choice, second_reference = second
        if second_source:
            second_source = self._own(token, second_source, _SECOND)
            self._load_image(second_source, _SECOND)
        if not target.template:
            self._own(token, target.path, "target")
        choice = str(choice or _LARGEST)
        face_index, all_faces, ref = None, False, None
        if choice == _ALL:
            all_faces = True
        elif choice == _REFERENCE:
            ref = self._own(token, reference, "reference photo")
            self._load_image(ref, "reference photo")
        elif choice.isdigit():
            face_index = int(choice)
        else:
            raise _bad(f"faces: {choice!r} is not a face choice (use 0, 1, ..., 'all' or 'reference')")
        second_index, second_ref = None, None
        if second_source:
            second_choice = str(second_choice or "1")
            if all_faces:
                raise _bad("'All faces' puts your photo into every face; with a second person's photo, choose the face "
                           "each photo replaces")  # fmt: skip
            if second_choice == _REFERENCE:
                second_ref = self._own(token, second_reference, "second person's reference photo")
                self._load_image(second_ref, "second person's reference photo")
            elif second_choice.isdigit():
                second_index = int(second_choice)
                if second_index == face_index:
                    raise _bad(f"both photos would replace face {second_index + 1}; choose a different face for each")
            else:
                raise _bad(f"second faces: {second_choice!r} is not a face choice (use 0, 1, ... or 'reference')")
        try:
            strength = float(strength)
        except (TypeError, ValueError):
            raise _bad(f"shape strength: {strength!r} is not a number") from None
        if not 0.0 <= strength <= 1.0:
            raise _bad(f"shape strength must lie between 0 and 1, got {strength}")
        engine = engine or self.settings.engines[0]
        if engine not in self.settings.engines:
            raise _bad(f"engine {engine!r} is not offered here (choose one of {', '.join(self.settings.engines)})")
        enhancer = None
        if enhance:
            if not self.settings.enhance:
                raise _bad("Face enhancement is not set up on this server (start the app with --enhance MODEL).")
            enhancer = self.settings.enhance
        names = {source: Path(source).name, target.path: target.name}
        for photo in (ref, second_source, second_ref):
            if photo:
                names[photo] = Path(photo).name
        folder = self._new_folder(token, request)
        sources: str | list[str] = source
        if second_source:  # a couple: two sources, each with the face it replaces
            sources = [source, second_source]
            picks = [(face_index, ref), (second_index, second_ref)]
            if target.kind == "image" and ref is None and second_ref is None:
                face_index = [face_index, second_index]
            else:  # references for both: a numbered face is the person whose face it is (a video's: all through it)
                refs = []
                for n, (index, photo) in enumerate(picks, 1):
                    if photo is None:
                        photo = str(self._face_picture(target, index, folder, f"person-{n}.png"))
                        names[photo] = f"face {index + 1} of {target.name}"
                    refs.append(photo)
                ref, face_index = refs, None
        elif target.kind == "video" and face_index:
            # a numbered face of the first frame: the person whose face it is, all through the video
            ref, face_index = str(self._face_picture(target, face_index, folder)), None
            names[ref] = f"face {int(choice) + 1} of {target.name}"
        session = self._session(request)
        if target.kind == "image":
            out = folder / f"swapped-{_safe_stem(target.name)}.png"
        else:
            out = folder / f"swapped-{_safe_stem(target.name)}.mp4"
        cache_dir = self.settings.cache_dir if target.template else self.private / "caches" / folder.parent.name

        def work(report) -> dict[str, Any]:
            with self._run_lock:  # a cancelled job's thread stops at its next frame; the next job waits for it
                with collect_warnings() as notes:  # shown beside the result (a turned or small face in the photo)
                    result = run(report)
            result["notes"] = [self._clean(m, names) for m in dict.fromkeys(notes)]
            return result

        def run(report) -> dict[str, Any]:
            t0 = time.perf_counter()
            report("loading the engine", 0, None)
            pipe = self.pipeline(engine)
            if isinstance(sources, list):
                report("analysing your photos", 0, None)
                prepared = [pipe.prepare_source(photo)[0] for photo in sources]
            else:
                report("analysing your photo", 0, None)
                prepared, _ = pipe.prepare_source(sources)
            if target.kind == "image":
                report("swapping the face", 0, None)
                result = pipe(prepared, target.path, shape_strength=strength, face_index=face_index,
                              all_faces=all_faces, reference=ref, enhance=enhancer,
                              crop_size=self.settings.crop_size)  # fmt: skip
                report("writing the result", 0, None)
                result.save(out, app=True)
                return {"seconds": time.perf_counter() - t0, "faces": len(result.faces)}
            video = pipe.swap_video(
                prepared, target.path, out, shape_strength=strength, face_index=face_index, all_faces=all_faces,
                reference=ref, enhance=enhancer, cache=True, cache_dir=cache_dir, progress=report,
                crop_size=self.settings.crop_size, tag={"app": True},
            )  # fmt: skip
            return {"seconds": time.perf_counter() - t0, "frames": video.frames}

        job = Job(work, folder=folder)
        job.names = names  # type: ignore[attr-defined]
        self.board.put(session, job)
        job.session = session  # type: ignore[attr-defined]
        return job.start(), target.kind, out

    def _watch(self, job: Job, progress: gr.Progress | None) -> Iterator[str]:
        """Lines describing the job while it runs (twice a second); the job is cancelled when the watcher
        is closed (the request was cancelled or the page left)."""
        try:
            while not job.wait(0.5):
                job.poll()
                if progress is not None and job.total_frames:
                    try:
                        progress((job.done_frames, job.total_frames), desc=job.label, unit="frames")
                    except Exception:  # noqa: BLE001 - progress display is best effort
                        pass
                yield "**Working:** " + job.describe() + " (press Cancel to stop)"
        finally:
            if not job.finished:
                job.cancel()

    def _finish(self, job: Job, out: Path) -> tuple[str, dict[str, Any] | None]:
        """The result file and the tag read back from it, or the job's error for the page."""
        from saswap.provenance import read_tag
        from saswap.videoio import read_video_tag

        self.board.drop(getattr(job, "session", ""), job)
        if isinstance(job.error, JobCancelled):
            raise _bad("The swap was cancelled; nothing was kept.")
        if job.error is not None:
            if isinstance(job.error, SaSwapError):
                raise _bad(self._clean(str(job.error), getattr(job, "names", {})))
            raise _bad(
                f"Something went wrong ({type(job.error).__name__}); nothing was kept. "
                "The server's log has the details."
            )
        tag = read_video_tag(out) if out.suffix == ".mp4" else read_tag(out)
        return str(out), tag

    # -- page -------------------------------------------------------------------------------------
    def blocks(self) -> gr.Blocks:
        """The page and the API endpoints."""
        s = self.settings
        limits = (
            f"Uploads up to {s.max_upload_mb:g} MB; videos up to {s.max_video_seconds:g} s. Your files stay on "
            "this server, are visible to you alone, and are deleted when you close the page or the app stops."
        )
        with gr.Blocks(title="SaSwap — face swap", analytics_enabled=False, fill_width=False) as demo:
            gr.Markdown(
                "# SaSwap face swap\n"
                "Put the face from **your photo** into a **target** image or video: **1** upload your photo, "
                "**2** upload a target (or pick a template), **3** choose which face to replace, **4** press "
                "**Swap faces**. Every result is marked as synthetic inside the file."
            )
            target_state = gr.State(None)
            with gr.Row(equal_height=False):
                with gr.Column(scale=1, min_width=260):
                    gr.Markdown("### 1 · Your photo")
                    source = gr.File(
                        label="Photo with the face to use (JPG, PNG, WebP)", file_types=_IMAGE_TYPES, type="filepath",
                        height=150, elem_id="source-file",
                    )  # fmt: skip
                    source_view = gr.Image(
                        label="The face that will be used", interactive=False, height=260, elem_id="source-view",
                        buttons=[],
                    )  # fmt: skip
                with gr.Column(scale=1, min_width=260):
                    gr.Markdown("### 2 · Target")
                    with gr.Tabs():
                        with gr.Tab("Upload an image or video"):
                            target = gr.File(
                                label="Image or video whose face is replaced", file_types=_TARGET_TYPES,
                                type="filepath", height=150, elem_id="target-file",
                            )  # fmt: skip
                        if self.templates:
                            with gr.Tab("Pick a template"):
                                gallery = gr.Gallery(
                                    value=[(str(t.thumbnail), t.caption) for t in self.templates],
                                    label="Template videos (ready to use)", columns=3, height=220,
                                    allow_preview=False, elem_id="templates",
                                )  # fmt: skip
                    target_view = gr.Image(
                        label="Faces found (numbered, 1 = largest)", interactive=False, height=260,
                        elem_id="target-view", buttons=[],
                    )  # fmt: skip
                    target_info = gr.Markdown(elem_id="target-info")
                with gr.Column(scale=1, min_width=260):
                    gr.Markdown("### 3 · Options")
                    choice = gr.Radio(
                        choices=self._face_choices(1), value=_LARGEST, label="Which face to replace",
                        elem_id="face-choice",
                    )  # fmt: skip
                    reference = gr.File(
                        label="Reference photo of the person to replace", file_types=_IMAGE_TYPES, type="filepath",
                        visible=False, height=150, elem_id="reference-file",
                    )  # fmt: skip
                    with gr.Accordion("Second person (optional)", open=False, elem_id="second-person"):
                        gr.Markdown(
                            "For a picture or video of two people: a photo for the second one, and the face it "
                            "replaces (your photo above takes the face chosen above). In a video, each is the person "
                            "whose face you chose in the preview, followed all through it."
                        )
                        second_source = gr.File(
                            label="Photo with the second person's new face", file_types=_IMAGE_TYPES,
                            type="filepath", height=120, elem_id="second-source-file",
                        )  # fmt: skip
                        second_view = gr.Image(
                            label="The face that will be used", interactive=False, height=160,
                            elem_id="second-source-view", buttons=[],
                        )  # fmt: skip
                        second_choice = gr.Radio(
                            choices=self._face_choices(1, second=True), value=_REFERENCE,
                            label="Which face the second photo replaces", elem_id="second-face-choice",
                        )  # fmt: skip
                        second_reference = gr.File(
                            label="Reference photo of the second person to replace", file_types=_IMAGE_TYPES,
                            type="filepath", visible=True, height=120, elem_id="second-reference-file",
                        )  # fmt: skip
                    strength = gr.Slider(
                        0.0, 1.0, value=1.0, step=0.05, label="Face shape",
                        info="0 keeps the target's face shape, 1 takes the shape of your face", elem_id="strength",
                    )  # fmt: skip
                    engine = gr.Dropdown(
                        choices=list(s.engines), value=s.engines[0], label="Engine", elem_id="engine",
                        info="saswap-geometric needs no weights and runs on the CPU",
                    )  # fmt: skip
                    enhance = gr.Checkbox(
                        value=False, label="Enhance the face", interactive=bool(s.enhance), elem_id="enhance",
                        info=(f"sharpen the new face with {Path(s.enhance).name}" if s.enhance
                              else "off: the server was started without --enhance"),
                    )  # fmt: skip
                    with gr.Row():
                        swap = gr.Button("Swap faces", variant="primary", elem_id="swap")
                        cancel = gr.Button("Cancel", variant="stop", elem_id="cancel")
            gr.Markdown("### 4 · Result")
            status = gr.Markdown(
                "Upload your photo and a target, then press **Swap faces**. One swap runs at a time: while another "
                "visitor's runs, yours waits, and its place in the queue shows on the result.",
                elem_id="status",
            )
            with gr.Row(equal_height=False):
                with gr.Column(scale=2):
                    result_image = gr.Image(
                        label="Result", interactive=False, type="filepath", height=420, elem_id="result-image",
                        buttons=["download", "fullscreen"],
                    )  # fmt: skip
                    result_video = gr.Video(label="Result", interactive=False, visible=False, height=420,
                                            elem_id="result-video")  # fmt: skip
                with gr.Column(scale=1, min_width=240):
                    tag = gr.Textbox(
                        label="Provenance tag (read back from the result file)", lines=4, interactive=False,
                        elem_id="tag",
                    )  # fmt: skip
                    download = gr.DownloadButton("Download the result", value=None, interactive=False,
                                                 elem_id="download")  # fmt: skip
            gr.Markdown(limits, elem_id="limits")

            private = {"api_visibility": "private"}
            source.change(self.on_source, source, source_view, concurrency_id="detect", **private)
            second_source.change(self.on_second_source, second_source, second_view, concurrency_id="detect", **private)
            target_outputs = [target_state, target_view, target_info, choice, second_choice]
            target.change(self.on_target, target, target_outputs, concurrency_id="detect", **private)
            if self.templates:
                gallery.select(self.on_template, None, target_outputs, concurrency_id="detect", **private)
            choice.change(self.on_choice, choice, reference, queue=False, **private)
            second_choice.change(self.on_choice, second_choice, second_reference, queue=False, **private)
            run = swap.click(
                self.on_swap,
                [source, target_state, choice, reference, strength, engine, enhance, second_source, second_choice,
                 second_reference],
                [status, result_image, result_video, tag, download], concurrency_limit=1, concurrency_id="swap",
                show_progress_on=[result_image, result_video], **private,
            )  # fmt: skip
            cancel.click(self.on_cancel, None, status, cancels=[run], queue=False, **private)
            demo.unload(self.on_unload)

            # the API: the same functions for scripts (gradio_client)
            with gr.Column(visible=False):
                a_image = gr.File(label="image", type="filepath")
                a_preview = gr.File(label="faces drawn")
                a_faces = gr.JSON(label="faces")
                a_source = gr.File(label="source", type="filepath")
                a_target = gr.File(label="target", type="filepath")
                a_template = gr.Textbox(label="template")
                a_choice = gr.Textbox(label="faces", value=_LARGEST)
                a_reference = gr.File(label="reference", type="filepath")
                a_strength = gr.Number(label="shape_strength", value=1.0)
                a_engine = gr.Textbox(label="engine", value=s.engines[0])
                a_enhance = gr.Checkbox(label="enhance", value=False)
                a_second_source = gr.File(label="second_source", type="filepath")
                a_second_choice = gr.Textbox(label="second_faces", value="1")
                a_second_reference = gr.File(label="second_reference", type="filepath")
                a_result = gr.File(label="result")
                a_tag = gr.JSON(label="tag")
                a_templates = gr.JSON(label="templates")
                a_button = gr.Button(visible=False)
            a_button.click(self.api_detect_faces, a_image, [a_preview, a_faces], api_name="detect_faces",
                           concurrency_id="detect")  # fmt: skip
            a_button.click(
                self.api_swap,
                [a_source, a_target, a_template, a_choice, a_reference, a_strength, a_engine, a_enhance,
                 a_second_source, a_second_choice, a_second_reference],
                [a_result, a_tag], api_name="swap", concurrency_limit=1, concurrency_id="swap",
            )  # fmt: skip
            a_button.click(self.api_templates, None, a_templates, api_name="templates", queue=False)
        demo.queue(default_concurrency_limit=1)
        return demo


def build_app(settings: AppSettings | None = None, workdir: str | os.PathLike | None = None) -> gr.Blocks:
    """The web app's page (a ``gr.Blocks``); its :class:`SaSwapApp` is ``blocks.saswap``.

    Gradio's upload folder is set to ``workdir/gradio`` (the process's ``GRADIO_TEMP_DIR``). Serve it with
    :func:`launch`, which adds the visitor isolation and removes ``workdir`` when the app stops.

    Args:
        settings: :class:`AppSettings` (defaults when None).
        workdir: the app's temporary folder (a new one when None).
    """
    settings = settings or AppSettings()
    workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="saswap-app-"))
    os.environ["GRADIO_TEMP_DIR"] = str(workdir / "gradio")
    os.environ["GRADIO_EXAMPLES_CACHE"] = str(workdir / "examples")
    state = SaSwapApp(settings, workdir)
    demo = state.blocks()
    demo.saswap = state  # type: ignore[attr-defined]
    return demo


@dataclass
class RunningApp:
    """A started app (from :func:`launch` with ``block=False``).

    Attributes:
        blocks: the Gradio page.
        url: where it is served.
        workdir: its temporary folder (removed by :meth:`close`).
    """

    blocks: gr.Blocks
    url: str
    workdir: Path
    _open: bool = field(default=True, init=False, repr=False)

    def close(self) -> None:
        """Stop the server, cancel running jobs and remove the temporary folder (and Gradio's, once no other app of
        the process runs)."""
        state: SaSwapApp | None = getattr(self.blocks, "saswap", None)
        if state is not None:
            state.board.cancel_all()
        try:
            self.blocks.close()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
            if self._open:
                self._open = False
                _count_running(-1)


def launch(
    settings: AppSettings | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    *,
    block: bool = True,
    quiet: bool = False,
) -> RunningApp:
    """Start the web app.

    Args:
        settings: :class:`AppSettings`.
        host: the address to bind (127.0.0.1: this computer only; 0.0.0.0: every network interface).
        port: the TCP port.
        block: serve until Ctrl-C / SIGTERM, then stop and clean up; with False, return at once (call
            :meth:`RunningApp.close`).
        quiet: print nothing.

    Returns:
        :class:`RunningApp` (after the server stopped, when ``block``).
    """
    from starlette.middleware import Middleware

    workdir = Path(tempfile.mkdtemp(prefix="saswap-app-"))
    _count_running(+1)
    try:
        demo = build_app(settings, workdir)
        state: SaSwapApp = demo.saswap  # type: ignore[attr-defined]
        theme = gr.themes.Default(
            font=[gr.themes.LocalFont("Source Sans Pro"), "ui-sans-serif", "system-ui", "sans-serif"],
            font_mono=[gr.themes.LocalFont("IBM Plex Mono"), "ui-monospace", "monospace"],
        )
        _, url, _ = demo.launch(
            server_name=host, server_port=port, share=False, inbrowser=False, prevent_thread_lock=True,
            quiet=True, show_error=False, max_file_size=state.settings.max_upload_bytes, ssr_mode=False,
            theme=theme, footer_links=["api", "settings"], enable_monitoring=False, pwa=False, mcp_server=False,
            app_kwargs={"middleware": [Middleware(VisitorIsolation, files=state.files)]},
            # Gradio refuses to take in dot-named uploads (".me.jpg") that lie within the working folder (an app
            # started in "/"), unless allowed; the upload folder is the app's own, guarded by VisitorIsolation
            allowed_paths=[str(state.files.root)],
        )  # fmt: skip
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        _count_running(-1)
        raise
    running = RunningApp(demo, url, workdir)
    if not block:
        return running
    if not quiet:
        print(f"SaSwap web app on {url} (Ctrl-C to stop)", flush=True)
        for line in state.templates_skipped:
            print(f"  template left out: {line}", flush=True)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C and SIGTERM stop the app cleanly (also where a shell started it with SIGINT ignored)
        previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        running.close()
        if not quiet:
            print("SaSwap web app stopped; its temporary files are removed", flush=True)
    return running


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt

