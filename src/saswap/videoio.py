"""Streaming video reading and writing with PyAV.

Convention:
    Frames inside SaSwap are RGB ``uint8`` arrays of shape (H, W, 3), C-contiguous and *upright*:
    the stream's display rotation is already applied, so (W, H) is the display size that
    :class:`VideoInfo` reports. A video is never held in memory: :class:`VideoReader` decodes one
    frame at a time and :class:`VideoWriter` encodes one frame at a time.

    ``VideoInfo.rotation`` is the clockwise angle (0, 90, 180 or 270) by which a player turns the
    coded picture for display, the value of the legacy ``rotate`` tag that phones write (a portrait
    phone clip is typically 1920x1080 coded with rotation 90, and reads as 1080x1920 frames here).
    Mirrored display matrices are not supported (their rotation part is used).

    Times are seconds from the start of the video stream (its ``start_time``), so the first frame
    of a file is at about 0 s; ``start``/``end`` of a reader use the same clock.

    YUV -> RGB is swscale's exact conversion (interpolated chroma, correct rounding), not the
    faster default of ``frame.to_ndarray(format="rgb24")``, which is about 1 level too dark;
    ``VideoReader(..., exact_rgb=False)`` chooses the fast one.

How the writer keeps the input's properties:
    * Timing: each output frame carries the pts of the input frame it came from (variable frame
      rate kept), in the input's time base; a reader trimmed with ``start`` is shifted so that its
      first frame is at 0.
    * Rotation: frames are turned back to the coded orientation and the output stream gets the
      same display matrix (``VideoStream.set_display_rotation``, PyAV >= 17).
    * Colour: the input's matrix (BT.601/BT.709/...), range and tags are used for every RGB -> YUV
      conversion and written on the output stream, so colours do not shift. 10-bit, HDR or 4:4:4
      input is written as 8-bit 4:2:0 by default (HDR transfer tags are kept, no tone mapping).
    * Odd sizes: H.264/H.265 cannot code an odd width or height in 4:2:0 (their cropping works in
      2-pixel units), so for an odd size these encoders switch to ``yuv444p`` (a warning is
      logged) and the decoded size stays exactly the input size. VP9, AV1 and MPEG-4 keep 4:2:0.
    * Audio: the input's audio packets are copied without re-encoding when the container accepts
      the codec (AAC into MP4/MOV/MKV), otherwise re-encoded (AAC, or Opus for WebM; surround
      layouts kept where the encoder takes them); only the packets inside the reader's
      ``[start, end)`` are kept, shifted like the video. Only the first audio stream is kept (a
      warning names the others' count).
    * Pixel shape: an anamorphic video (non-square pixels, e.g. 1440x1080 coded and shown as
      1920x1080) is read as frames of square pixels, the size a player shows (the longer way
      stretched, no side shrunk), so a face has its true shape for analysis and swapping; the
      writer resamples the changed pixels back to the coded grid and writes the input's sample
      aspect ratio on the output stream.
    * Pass-through: a frame written with ``image=None`` re-encodes the decoded input frame as it
      was, and a frame written with a ``box`` (and optionally a ``mask``) changes only that box
      (masked pixels) of the YUV planes, so with ``crf=0`` the output decodes bit-exactly to the
      input elsewhere.
    * Provenance: ``metadata={"saswap": json}`` is stored under the ``saswap`` key and as the
      standard ``comment`` ``"saswap:{json}"``; :func:`read_video_tag` reads either.

The output file appears atomically: it is written to a temporary file in the output folder and
renamed by :meth:`VideoWriter.close`; on an error, ``abort()`` or an exception (KeyboardInterrupt
included) inside the ``with`` block the temporary file is deleted and no output exists.
"""

from __future__ import annotations

import collections
import heapq
import json
import logging
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import cv2
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

from saswap.errors import InvalidVideoError
from saswap.io import _create_temporary, file_identity, picture_header

__all__ = [
    "VideoInfo",
    "VideoFrame",
    "probe_video",
    "is_video_file",
    "sample_frames",
    "VideoReader",
    "VideoWriter",
    "GifWriter",
    "open_video_writer",
    "read_video_tag",
    "VIDEO_TAG_KEY",
    "DEFAULT_CRF",
    "DEFAULT_BFRAMES",
]

#: The encoder quality a swap writes at by default (x264/x265 constant rate factor). A swap re-encodes the whole
#: template, and the new face is new content to quantise in every frame: at 18 the encoder's frame-to-frame noise
#: on the face made its skin tone flicker 2.2-2.4x as much as the template's on two talking heads, at 14 1.6-1.7x
#: (files ~1.9x the size; benchmarks/RESULTS.md). See also :data:`DEFAULT_BFRAMES`.
DEFAULT_CRF = 14

#: B-frames x264/x265 may use by default (0: P-frames only). B-frames are quantised more coarsely than the
#: P-frames between them, and on a swapped face, new content in every frame, that alternation of quality
#: shows as tone pumping: P-frames only took the face skin's frame-to-frame colour change on 18 talking heads
#: from a median 1.42x the template's to 1.11x at the same crf, for files ~23% larger and ~15% faster encoding
#: (benchmarks/RESULTS.md; part of it is the encoder smoothing small changes over time, which it does to any
#: content). None keeps the encoder's own default (up to 3 for x264 and 4 for x265 at most presets).
DEFAULT_BFRAMES = 0

logger = logging.getLogger(__name__)

#: Container metadata key of the SaSwap provenance tag (a JSON object).
VIDEO_TAG_KEY = "saswap"

_CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
#: The speed presets of libx264 and libx265, fastest first (the same names for both).
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")

# Video encoders SaSwap knows how to tune (crf, preset); any other available encoder is accepted as is.
_TUNED_CODECS = ("libx264", "libx265", "libsvtav1", "libaom-av1", "libvpx-vp9", "mpeg4")
_WEBM_VIDEO = {"libvpx", "libvpx-vp9", "libsvtav1", "libaom-av1", "av1", "vp8", "vp9"}
# H.264/H.265 code odd sizes only without chroma subsampling.
_EVEN_ONLY_420 = {"libx264", "libx265", "h264_nvenc", "hevc_nvenc", "h264_qsv", "hevc_qsv"}
# Audio codecs each container takes without re-encoding (None: any codec).
_AUDIO_COPY: dict[str, frozenset[str] | None] = {
    "mp4": frozenset({"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}),
    "mov": frozenset({"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_f32le"}),
    "matroska": None,
    "webm": frozenset({"opus", "vorbis"}),
}
# AVColorSpace values -> swscale colour matrices (unspecified or unknown: swscale's BT.601 default).
_SWS_MATRIX = {1: "ITU709", 4: "FCC", 5: "ITU601", 6: "ITU601", 7: "SMPTE240M", 9: "BT2020", 10: "BT2020"}
_EPS = 1e-6
# swscale's default YUV -> RGB path (what ``frame.to_ndarray(format="rgb24")`` uses) is fast but about
# 1.2 levels too dark, with nearest-neighbour chroma; these flags give the exact conversion with
# interpolated chroma (unbiased: an unchanged box survives RGB -> YUV -> RGB within 2 levels, 0.1 on
# average), at about 3 ms per 720p frame instead of 0.4 ms.
_TO_RGB = Interpolation.BILINEAR | Interpolation.FULL_CHR_H_INT | Interpolation.ACCURATE_RND
_TO_RGB_FAST = Interpolation.BILINEAR
_TO_YUV = Interpolation.BILINEAR | Interpolation.ACCURATE_RND


# --------------------------------------------------------------------------------------------- probing


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, as SaSwap sees it.

    Attributes:
        path: the file.
        width: display width in pixels (after rotation, and in square pixels for an anamorphic video), the
            width of frames from :class:`VideoReader`.
        height: display height in pixels (the same).
        fps: average frame rate.
        frame_count: frames in the video stream, from the container header when present, else
            ``round(duration * fps)`` (an estimate).
        duration: seconds of the video stream.
        rotation: clockwise display rotation of the coded picture, 0, 90, 180 or 270.
        has_audio: whether the file has an audio stream.
        audio_codec: the first audio stream's codec (e.g. ``"aac"``), or None.
        codec: the video codec (e.g. ``"h264"``).
        pix_fmt: the decoded pixel format (e.g. ``"yuv420p"``, ``"yuv420p10le"``).
        bit_depth: bits per sample of the decoded frames (8, 10, 12, ...).
        pixel_aspect: the coded picture's sample aspect ratio (width of a pixel over its height; 1.0: square
            pixels).
    """

    path: Path
    width: int
    height: int
    fps: float
    frame_count: int
    duration: float
    rotation: int
    has_audio: bool
    audio_codec: str | None
    codec: str
    pix_fmt: str
    bit_depth: int
    pixel_aspect: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-able dict (``path`` as a string).

        Example:
            >>> info = VideoInfo(Path("a.mp4"), 64, 48, 30.0, 3, 0.1, 0, False, None, "h264", "yuv420p", 8)
            >>> info.to_dict()["path"], info.to_dict()["width"]
            ('a.mp4', 64)
        """
        out = asdict(self)
        out["path"] = str(self.path)
        return out


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InvalidVideoError(f"{path}: no such file")
    if path.is_dir():
        raise InvalidVideoError(f"{path}: is a folder, not a video file")
    if path.stat().st_size == 0:
        raise InvalidVideoError(f"{path}: the file is empty (0 bytes)")


def _gif_frames(path: Path) -> int:
    """Frames of a GIF file (1 when Pillow cannot tell)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return int(getattr(im, "n_frames", 1))
    except (OSError, ValueError, SyntaxError):
        return 1


def _is_still_image(path: Path, container: av.container.InputContainer | None = None) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head.startswith((b"GIF87a", b"GIF89a")):
        return _gif_frames(path) < 2  # an animated GIF is a video (a meme template), a single-frame one a picture
    if picture_header(head):  # PNG, JPEG, BMP, TIFF, WebP, and HEIF/HEIC or AVIF photos in their ISO-BMFF box
        return True
    if container is not None:
        name = container.format.name
        return name.startswith("image2") or name.endswith("_pipe")
    return False


def _container_kind(path: Path) -> str | None:
    """The container a file's first bytes announce (MP4/MOV, Matroska/WebM, AVI), or None."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free"):
        return "MP4/MOV"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "Matroska/WebM"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "AVI"
    return None


def _open_input(path: Path) -> av.container.InputContainer:
    """Open ``path`` for reading; every failure is an :class:`InvalidVideoError` naming the file."""
    _check_file(path)
    try:
        container = av.open(str(path), mode="r")
    except av.error.FFmpegError:
        kind = _container_kind(path)
        if kind is not None:
            raise InvalidVideoError(f"{path}: truncated or corrupt {kind} file (its index is unreadable)") from None
        raise InvalidVideoError(f"{path}: not a video file (or an unsupported or corrupt container)") from None
    except OSError as err:
        raise InvalidVideoError(f"{path}: cannot be read ({err.strerror or err})") from None
    if _is_still_image(path, container):
        container.close()
        raise InvalidVideoError(f"{path}: is an image file (PNG, JPEG, GIF, BMP, WebP, HEIC, AVIF...), not a video")
    return container


def _video_stream(container: av.container.InputContainer, path: Path) -> av.VideoStream:
    streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        has_audio = bool(container.streams.audio)
        container.close()
        raise InvalidVideoError(f"{path}: no video stream" + (" (audio only)" if has_audio else ""))
    return streams[0]


def _first_frame(container: av.container.InputContainer, stream: av.VideoStream, path: Path) -> av.VideoFrame:
    try:
        for frame in container.decode(stream):
            return frame
    except (av.error.FFmpegError, ValueError) as err:
        raise InvalidVideoError(f"{path}: no frame can be decoded (corrupt or truncated video: {err})") from None
    raise InvalidVideoError(f"{path}: the video stream has zero frames")


def _clockwise_rotation(frame: av.VideoFrame, path: Path) -> int:
    clockwise = -frame.rotation % 360  # PyAV gives counter-clockwise degrees in [-180, 180]
    rotation = round(clockwise / 90) * 90 % 360
    if min(abs(clockwise - rotation), 360 - abs(clockwise - rotation)) > 1:
        logger.warning("%s: display rotation of %s degrees rounded to %d", path, clockwise, rotation)
    return int(rotation)


def _frame_rate(stream: av.VideoStream) -> Fraction | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return Fraction(rate)
    return None


def _tag_duration(metadata: Mapping[str, str]) -> float:
    """Seconds from a Matroska ``DURATION`` stream tag (``HH:MM:SS.fffffffff``), or 0."""
    text = {k.upper(): v for k, v in metadata.items()}.get("DURATION", "")
    try:
        h, m, sec = text.split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    except ValueError:
        return 0.0


def _pixel_aspect(stream: av.VideoStream) -> Fraction | None:
    """A video stream's sample aspect ratio where its pixels are not square (within 1:4 to 4:1), else None."""
    sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    if not sar or sar == 1 or not Fraction(1, 4) <= sar <= 4:
        return None
    return Fraction(sar)


def _square_size(width: int, height: int, sar: Fraction | None) -> tuple[int, int]:
    """The size of a coded (width, height) picture of sample aspect ratio ``sar`` in square pixels.

    The side the pixels are short along is stretched; no side shrinks, so no detail is lost.

    Example:
        >>> _square_size(1440, 1080, Fraction(4, 3)), _square_size(720, 480, Fraction(8, 9)), _square_size(64, 48, None)
        ((1920, 1080), (720, 540), (64, 48))
    """
    if sar is None:
        return width, height
    if sar > 1:
        return round(width * sar), height
    return width, round(height / sar)


def _coded_size(width: int, height: int, sar: Fraction | None) -> tuple[int, int]:
    """The coded size whose square-pixel size (:func:`_square_size`) is (width, height).

    Example:
        >>> _coded_size(1920, 1080, Fraction(4, 3)), _coded_size(720, 540, Fraction(8, 9))
        ((1440, 1080), (720, 480))
    """
    if sar is None:
        return width, height
    if sar > 1:
        return round(width / sar), height
    return width, round(height * sar)


def _info_from(container: av.container.InputContainer, stream: av.VideoStream, path: Path) -> VideoInfo:
    first = _first_frame(container, stream, path)
    rotation = _clockwise_rotation(first, path)
    tb = stream.time_base or Fraction(1, 90000)
    duration = float(stream.duration * tb) if stream.duration else _tag_duration(stream.metadata)
    if duration <= 0 and container.duration:
        duration = container.duration / av.time_base
    rate = _frame_rate(stream)
    frames = int(stream.frames or 0)
    if rate is None:
        if frames > 0 and duration > 0:
            rate = Fraction(frames / duration).limit_denominator(1001)
        else:
            raise InvalidVideoError(f"{path}: the video stream has no frame rate")
    fps = float(rate)
    if frames <= 0:
        frames = max(1, round(duration * fps))
    if duration <= 0:
        duration = frames / fps
    audio = container.streams.audio
    fmt = first.format
    sar = _pixel_aspect(stream)
    w, h = _square_size(first.width, first.height, sar)
    if rotation in (90, 270):
        w, h = h, w
    return VideoInfo(
        path=path,
        width=w,
        height=h,
        fps=fps,
        frame_count=frames,
        duration=duration,
        rotation=rotation,
        has_audio=bool(audio),
        audio_codec=audio[0].codec_context.name if audio else None,
        codec=stream.codec_context.name,
        pix_fmt=fmt.name,
        bit_depth=max((c.bits for c in fmt.components), default=8),
        pixel_aspect=float(sar or 1),
    )


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Read a video's size, rate, length, rotation and codecs (decodes its first frame only).

    Args:
        path: a video file.

    Returns:
        the :class:`VideoInfo` of the file.

    Raises:
        InvalidVideoError: no such file, a folder, an empty file, not a video (or an image file), no
            video stream (audio only), or zero decodable frames; the message names the file.

    Example:
        >>> probe_video("no/such/clip.mp4")
        Traceback (most recent call last):
        ...
        saswap.errors.InvalidVideoError: no/such/clip.mp4: no such file
    """
    path = Path(path)
    container = _open_input(path)
    try:
        stream = _video_stream(container, path)
        return _info_from(container, stream, path)
    finally:
        container.close()


def sample_frames(path: str | os.PathLike, count: int) -> list[np.ndarray]:
    """Up to ``count`` frames spread evenly over a video, as decoded (coded orientation), RGB uint8.

    Convention:
        Frame indices ``linspace(0, total - 1, min(count, total))`` rounded; the video is decoded once
        (twice when the container does not state its frame count: once to count, kept in memory).

    Args:
        path: a video file.
        count: how many frames at most.

    Returns:
        the frames, each of shape (H, W, 3), in video order.

    Example:
        >>> import tempfile, pathlib
        >>> clip = pathlib.Path(tempfile.mkdtemp()) / "c.mp4"
        >>> with av.open(str(clip), "w") as c:
        ...     s = c.add_stream("libx264", rate=10); s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        ...     for i in range(9):
        ...         for p in s.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), format="rgb24")):
        ...             c.mux(p)
        ...     for p in s.encode():
        ...         c.mux(p)
        >>> [f.shape for f in sample_frames(clip, 3)]
        [(48, 64, 3), (48, 64, 3), (48, 64, 3)]
    """
    with av.open(str(path)) as container:
        total = container.streams.video[0].frames or 0
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)] if not total else None
    if frames is None:
        wanted = set(np.linspace(0, total - 1, min(count, total)).round().astype(int).tolist())
        frames = []
        with av.open(str(path)) as container:
            for i, f in enumerate(container.decode(video=0)):
                if i in wanted:
                    frames.append(f.to_ndarray(format="rgb24"))
        return frames
    idx = np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)
    return [frames[i] for i in idx]


def is_video_file(path: str | os.PathLike) -> bool:
    """Whether a file is a video, judged by its content, not its extension.

    Convention:
        True when PyAV opens the file and it has a video stream that is not a single still image
        (PNG/JPEG/BMP/WebP files, single-frame GIFs and image demuxers give False; an animated GIF is a video).
        Never raises; nothing is decoded.

    Args:
        path: any path.

    Returns:
        True for a video file.

    Example:
        >>> is_video_file("no/such/clip.mp4")
        False
    """
    path = Path(path)
    try:
        if not path.is_file() or path.stat().st_size == 0 or _is_still_image(path):
            return False
        with av.open(str(path), mode="r") as container:
            if _is_still_image(path, container):
                return False
            return any(not s.disposition & av.stream.Disposition.attached_pic for s in container.streams.video)
    except (av.error.FFmpegError, OSError, ValueError):
        return False


def read_video_tag(path: str | os.PathLike) -> dict[str, Any] | None:
    """The SaSwap provenance tag stored in a video's container metadata.

    Convention:
        The tag is a JSON object under the key :data:`VIDEO_TAG_KEY` (``"saswap"``; Matroska
        upper-cases it) or in the ``comment`` as ``"saswap:{json}"``; either is accepted.

    Args:
        path: a video file.

    Returns:
        the tag as a dict, or None when the video has none (or it is not valid JSON).

    Raises:
        InvalidVideoError: the file is missing or not a readable video.

    Example:
        >>> read_video_tag("no/such/clip.mp4")
        Traceback (most recent call last):
        ...
        saswap.errors.InvalidVideoError: no/such/clip.mp4: no such file
    """
    path = Path(path)
    container = _open_input(path)
    try:
        metadata = {k.lower(): v for k, v in container.metadata.items()}
        if container.format.name == "gif":  # FFmpeg's GIF demuxer does not read the comment extension
            metadata.setdefault("comment", _gif_comment(path))
    finally:
        container.close()
    candidates = []
    if VIDEO_TAG_KEY in metadata:
        candidates.append(metadata[VIDEO_TAG_KEY])
    comment = metadata.get("comment")
    if isinstance(comment, str) and comment.startswith(f"{VIDEO_TAG_KEY}:"):
        candidates.append(comment[len(VIDEO_TAG_KEY) + 1 :])
    for text in candidates:
        try:
            tag = json.loads(text)
        except ValueError:
            continue
        if isinstance(tag, dict):
            return tag
    if candidates:
        logger.warning("%s: the %r metadata is not a JSON object; ignored", path, VIDEO_TAG_KEY)
    return None


def _gif_comment(path: Path) -> str | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            comment = im.info.get("comment")
    except (OSError, ValueError, SyntaxError):
        return None
    return comment.decode("utf-8", "replace") if isinstance(comment, bytes) else comment


# --------------------------------------------------------------------------------------------- reading


#: Files whose mid-stream size change was warned about (one warning per file, however many readers open it).
_SIZE_CHANGE_SAID: set[tuple[str, int, int]] = set()


@dataclass
class VideoFrame:
    """One decoded frame.

    Attributes:
        index: 0-based index among the frames yielded by this reader.
        pts: presentation timestamp in the stream's time base (None when the file has none).
        time: seconds from the start of the video stream.
        image: RGB uint8 image, shape (H, W, 3), C-contiguous, upright (display orientation). It
            does not share memory with ``raw``.
        raw: the decoded frame in coded orientation and pixel format, for bit-exact pass-through
            by :meth:`VideoWriter.write` (scaled to the first frame's size where the picture changed size
            mid-stream).
    """

    index: int
    pts: int | None
    time: float
    image: np.ndarray
    raw: av.VideoFrame


def _check_range(path: Path, start: float | None, end: float | None) -> None:
    for name, value in (("start", start), ("end", end)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidVideoError(f"{path}: {name} must be a finite number of seconds, got {value!r}")
        if value < 0:
            raise InvalidVideoError(f"{path}: {name} must be >= 0 seconds, got {value}")
    if start is not None and end is not None and not start < end:
        raise InvalidVideoError(f"{path}: start ({start} s) must be before end ({end} s)")


#: Frames an AVI's timestamps are put back in order over (more than any encoder's B-frame reordering).
_REORDER_WINDOW = 16


def _display_ordered(frames: Iterator[av.VideoFrame]) -> Iterator[tuple[av.VideoFrame, int | None]]:
    """Frames (in display order) with their timestamps sorted: each frame takes the smallest label not yet given
    among the frames decoded so far and the next :data:`_REORDER_WINDOW`.

    Example:
        >>> class F:  # a decoded frame's pts
        ...     def __init__(self, pts): self.pts = pts
        >>> [p for _, p in _display_ordered(iter(F(p) for p in [0, 2, 1, 5, 4, 3, 9, 7, 8]))]
        [0, 1, 2, 3, 4, 5, 7, 8, 9]
    """
    pending: collections.deque = collections.deque()
    labels: list[int] = []
    for frame in frames:
        pending.append(frame)
        if frame.pts is not None:
            heapq.heappush(labels, frame.pts)
        if len(pending) > _REORDER_WINDOW:
            yield pending.popleft(), heapq.heappop(labels) if labels else None
    while pending:
        yield pending.popleft(), heapq.heappop(labels) if labels else None


class VideoReader:
    """Decode a video frame by frame, as upright RGB images.

    Convention:
        A context manager and a one-pass iterator over :class:`VideoFrame`. Memory does not grow
        with the video's length. Frames with ``start <= time < end`` are yielded: the reader seeks
        to the keyframe before ``start`` and decodes forward. A truncated or corrupt file yields
        the frames before the damage (a warning is logged); if no frame decodes at all the
        iteration raises :class:`InvalidVideoError`. 10-bit, HDR and 4:4:4 input is converted to
        8-bit RGB with the stream's colour matrix and range.

    Args:
        path: the video file.
        start: first second to read (None: from the beginning).
        end: second to stop before (None: to the end).
        threads: decode with frame and slice threads (``thread_type="AUTO"``), so decoding runs
            beside the caller's work; False decodes on one thread.
        exact_rgb: convert YUV to RGB exactly (interpolated chroma, correct rounding); False uses
            swscale's fast path (3-4x faster reading at 720p, about 1 level darker, blockier chroma
            edges), as ``frame.to_ndarray(format="rgb24")`` does.

    Attributes:
        info: the file's :class:`VideoInfo`.
        time_base: the video stream's time base (unit of :attr:`VideoFrame.pts`).
        stream: the PyAV video stream.
        container: the PyAV input container.
        sample_aspect: the coded picture's sample aspect ratio where its pixels are not square (frames are then
            stretched to square pixels, the size :attr:`info` reports), else None.
        first_pts: pts of the first frame yielded (None before it); a trimmed writer shifts by it.

    Example:
        >>> VideoReader("clip.mp4", start=3.0, end=1.0)
        Traceback (most recent call last):
        ...
        saswap.errors.InvalidVideoError: clip.mp4: start (3.0 s) must be before end (1.0 s)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        start: float | None = None,
        end: float | None = None,
        threads: bool = True,
        *,
        exact_rgb: bool = True,
    ) -> None:
        self.path = Path(path)
        _check_range(self.path, start, end)
        self.start = None if start is None or start == 0 else float(start)
        self.end = None if end is None else float(end)
        self.container = _open_input(self.path)
        try:
            self.stream = _video_stream(self.container, self.path)
            self.info = _info_from(self.container, self.stream, self.path)
            if self.start is not None and self.start >= self.info.duration + 1.0 / self.info.fps:
                raise InvalidVideoError(
                    f"{self.path}: start ({self.start} s) is past the end of the video ({self.info.duration:.3f} s)"
                )
            # Reopen so decoding starts clean (the probe above consumed the first packets).
            self.container.close()
            self.container = _open_input(self.path)
            self.stream = _video_stream(self.container, self.path)
        except BaseException:
            self.container.close()
            raise
        self.time_base: Fraction = self.stream.time_base or Fraction(1, 90000)
        self.sample_aspect: Fraction | None = _pixel_aspect(self.stream)
        rotated = self.info.rotation in (90, 270)
        self._square = (self.info.height, self.info.width) if rotated else (self.info.width, self.info.height)
        self._coded = _coded_size(*self._square, self.sample_aspect)  # the first frame's size
        self._resized = False  # whether a frame of another size was met (and scaled to the first's)
        self.origin_pts: int = self.stream.start_time if self.stream.start_time is not None else 0
        self.first_pts: int | None = None
        if threads:
            self.stream.codec_context.thread_type = "AUTO"
        else:
            self.stream.codec_context.thread_count = 1
        self._rgb = VideoReformatter()
        self._rgb_flags = _TO_RGB if exact_rgb else _TO_RGB_FAST
        self._frames: Iterator[VideoFrame] | None = None
        self._closed = False

    # iteration -------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[VideoFrame]:
        return self

    def __next__(self) -> VideoFrame:
        if self._closed:
            raise StopIteration
        if self._frames is None:
            self._frames = self._generate()
        return next(self._frames)

    def _to_image(self, frame: av.VideoFrame) -> np.ndarray:
        rgb = self._rgb.reformat(frame, format="rgb24", interpolation=self._rgb_flags)
        image = rgb.to_ndarray()  # a view on the converted frame's buffer (line padding included)
        if rgb is frame:  # the decoder already gave RGB: never share memory with ``raw``
            image = image.copy()
        if (image.shape[1], image.shape[0]) != self._square:  # non-square pixels: stretched to square ones
            image = cv2.resize(image, self._square, interpolation=cv2.INTER_CUBIC)
        if self.info.rotation:
            image = np.rot90(image, k=-self.info.rotation // 90)
        return np.ascontiguousarray(image)

    def _decoded(self) -> Iterator[av.VideoFrame]:
        """Decoded frames; decoding errors after the first frame end the stream with a warning."""
        count = 0
        try:
            for packet in self.container.demux(self.stream):
                for frame in packet.decode():
                    count += 1
                    yield frame
        except (av.error.FFmpegError, ValueError) as err:
            if count == 0:
                raise InvalidVideoError(f"{self.path}: no frame can be decoded (corrupt or truncated: {err})") from None
            logger.warning(
                "%s: decoding stopped after %d frames (corrupt or truncated data: %s)", self.path, count, err
            )

    def _avi_delay(self) -> int:
        """How much later than the stream's start an AVI's first frame is labelled (its decoder's reordering delay)."""
        labels = []
        which = [s.index for s in self.container.streams.video].index(self.stream.index)
        try:
            with av.open(str(self.path)) as probe:
                for frame in probe.decode(probe.streams.video[which]):
                    if frame.pts is not None:
                        labels.append(frame.pts)
                    if len(labels) > _REORDER_WINDOW:
                        break
        except (av.error.FFmpegError, ValueError):
            pass
        return max(0, min(labels) - self.origin_pts) if labels else 0

    def _generate(self) -> Iterator[VideoFrame]:
        tb = self.time_base
        fps = self.info.fps
        eps = float(tb) / 2 + _EPS
        if self.start is not None:
            target = self.origin_pts + int(self.start / tb)
            try:
                self.container.seek(target, stream=self.stream, backward=True, any_frame=False)
            except av.error.FFmpegError as err:
                raise InvalidVideoError(f"{self.path}: cannot seek to {self.start} s ({err})") from None
        index = 0
        decoded = 0
        # AVI stores no presentation times: with B-frames the decoder labels its frames, which come out in display
        # order, with the decode order's times (1, 3, 2, 6, 5, ...). The labels are the right times in the wrong
        # order, so a short window puts them back in order (a dropped frame's gap stays).
        # The labels are late by the encoder's reordering delay (the first frame is labelled 1 or 2): measured on
        # the file's first frames, whatever span is read.
        if self.container.format.name == "avi":
            delay = self._avi_delay()
            frames = ((f, None if p is None else p - delay) for f, p in _display_ordered(self._decoded()))
        else:
            frames = ((f, f.pts) for f in self._decoded())
        for frame, pts in frames:
            decoded += 1
            time = float((pts - self.origin_pts) * tb) if pts is not None else (decoded - 1) / fps
            if self.start is not None and time < self.start - eps:
                continue
            if self.end is not None and time >= self.end - eps:
                break
            if self.first_pts is None:
                self.first_pts = pts if pts is not None else self.origin_pts
            if (frame.width, frame.height) != self._coded:
                frame = self._same_size(frame, time)
            yield VideoFrame(index=index, pts=pts, time=time, image=self._to_image(frame), raw=frame)
            index += 1
        if index == 0:
            if decoded == 0:
                raise InvalidVideoError(f"{self.path}: no frame can be decoded (empty, corrupt or truncated video)")
            raise InvalidVideoError(f"{self.path}: no frame between {self.start or 0} s and {self.end} s")

    def _same_size(self, frame: av.VideoFrame, time: float) -> av.VideoFrame:
        """A frame whose picture changed size mid-stream (a screen or call recording), scaled to the first frame's
        size as ffmpeg does, so the output keeps one size; said once."""
        cw, ch = self._coded
        if not self._resized:
            self._resized = True
            try:
                key = file_identity(self.path)
            except OSError:
                key = (str(self.path), 0, 0)
            if key in _SIZE_CHANGE_SAID:  # another reader of this file (the analysis pass's) said it already
                logger.info("%s: the picture changes size at %.2f s; scaled to %dx%d", self.path, time, cw, ch)
            else:
                _SIZE_CHANGE_SAID.add(key)
                logger.warning(
                    "%s: the picture changes size from %dx%d to %dx%d at %.2f s; such frames are scaled to %dx%d",
                    self.path, cw, ch, frame.width, frame.height, time, cw, ch,
                )  # fmt: skip
        scaled = frame.reformat(width=cw, height=ch, interpolation=Interpolation.BICUBIC)
        scaled.pts, scaled.time_base = frame.pts, frame.time_base
        scaled.colorspace, scaled.color_range = frame.colorspace, frame.color_range
        return scaled

    # lifetime ----------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the file (idempotent)."""
        if not self._closed:
            self._closed = True
            if self._frames is not None:
                self._frames.close()  # type: ignore[attr-defined]
            self.container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        i = self.info
        return f"VideoReader({str(self.path)!r}, {i.width}x{i.height}, {i.fps:.3f} fps, {i.frame_count} frames)"


# --------------------------------------------------------------------------------------------- writing


def _plane_array(plane: Any, width: int, height: int) -> np.ndarray:
    """A writable (height, width) uint8 view on a video plane, without its line padding."""
    buf = np.frombuffer(plane, np.uint8)
    return buf[: plane.line_size * height].reshape(height, plane.line_size)[:, :width]


def _plane_sizes(fmt: av.VideoFormat, width: int, height: int) -> list[tuple[int, int]]:
    cw, ch = fmt.chroma_width(width), fmt.chroma_height(height)
    return [(width, height), (cw, ch), (cw, ch)]


def _coded_box(
    box: tuple[int, int, int, int], rotation: int, width: int, height: int
) -> tuple[int, int, int, int] | None:
    """Map a display-space box (x1, y1, x2, y2), clipped to (width, height), to coded space."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, x2 = max(0, x1), min(width, x2)
    y1, y2 = max(0, y1), min(height, y2)
    if x1 >= x2 or y1 >= y2:
        return None
    if rotation == 90:
        return y1, width - x2, y2, width - x1
    if rotation == 180:
        return width - x2, height - y2, width - x1, height - y1
    if rotation == 270:
        return height - y2, x1, height - y1, x2
    return x1, y1, x2, y2


def _block_any(mask: np.ndarray, sx: int, sy: int) -> np.ndarray:
    """Whether any pixel of each ``sx`` x ``sy`` block is set (a chroma sample's footprint).

    Example:
        >>> _block_any(np.eye(4, dtype=bool)[:3], 2, 2).astype(int).tolist()
        [[1, 0], [0, 1]]
    """
    if sx == 1 and sy == 1:
        return mask
    h, w = mask.shape
    padded = np.asarray(mask, bool)
    if h % sy or w % sx:
        padded = np.zeros((-(-h // sy) * sy, -(-w // sx) * sx), bool)
        padded[:h, :w] = mask
    # an OR over the block's strided views: ~20x faster than .any() over the reshaped blocks' axes
    out = padded[0::sy, 0::sx].copy()
    for dy in range(sy):
        for dx in range(sx):
            if dy or dx:
                out |= padded[dy::sy, dx::sx]
    return out


def _resolve_codec(codec: str | None, fmt: str, path: Path) -> str:
    if codec is None:
        codec = "libvpx-vp9" if fmt == "webm" else "libx264"
    try:
        ok = av.Codec(codec, "w").type == "video"
    except (av.error.FFmpegError, ValueError, KeyError):
        ok = False
    if not ok:
        offered = [c for c in _TUNED_CODECS + ("ffv1", "prores_ks", "libvpx") if c in av.codecs_available]
        raise InvalidVideoError(
            f"{path}: unknown or unavailable video encoder {codec!r}; this PyAV build offers {', '.join(offered)}"
        )
    if fmt == "webm" and codec not in _WEBM_VIDEO:
        raise InvalidVideoError(
            f"{path}: WebM holds only VP8, VP9 or AV1 video, not {codec!r}; use --codec libvpx-vp9 (codec='libvpx-vp9')"
        )
    return codec


def _encoder_options(
    codec: str, crf: int | None, preset: str | None, threads: bool, bframes: int | None = DEFAULT_BFRAMES
) -> dict[str, str]:
    opts: dict[str, str] = {}
    if codec in ("libx264", "libx265"):
        if crf is not None:
            opts["crf"] = str(crf)
        if preset is not None:
            opts["preset"] = preset
        if codec == "libx265":
            params = ["log-level=error"] + (["lossless=1"] if crf == 0 else [])
            if not threads:
                params.append("pools=1:frame-threads=1")
            if bframes is not None:
                params.append(f"bframes={int(bframes)}")
            opts["x265-params"] = ":".join(params)
        else:
            if not threads:
                opts["threads"] = "1"
            if bframes is not None:
                opts["bf"] = str(int(bframes))
    elif codec == "libvpx-vp9":
        if crf is not None:
            opts.update({"crf": str(min(crf, 63)), "b": "0"})
            if crf == 0:
                opts["lossless"] = "1"
        opts["row-mt"] = "1"
        opts["deadline"] = "realtime" if preset in ("ultrafast", "superfast", "veryfast") else "good"
        opts["cpu-used"] = "8" if preset in ("ultrafast", "superfast", "veryfast") else "4"
    elif codec in ("libsvtav1", "libaom-av1"):
        if crf is not None:
            opts["crf"] = str(min(crf, 63))
        if preset is not None and preset.isdigit():
            opts["preset" if codec == "libsvtav1" else "cpu-used"] = preset
        elif codec == "libsvtav1":
            opts["preset"] = "10" if preset in ("ultrafast", "superfast", "veryfast") else "8"
    return opts


class _AtomicOutput:
    """An output file written beside its final name and renamed into place when finished (:meth:`_publish`), deleted
    otherwise (:meth:`_discard`); a ``with`` block closes it, or aborts it on an exception. Subclasses set ``path`` and
    call :meth:`_create`, and define ``close`` and ``abort``."""

    path: Path
    _tmp: Path | None = None

    def _create(self) -> None:
        folder = self.path.parent if str(self.path.parent) else Path(".")
        if self.path.is_dir():
            raise InvalidVideoError(f"{self.path}: is a folder; give a file name for the output video")
        if not folder.is_dir():
            raise InvalidVideoError(f"{self.path}: output folder {folder} does not exist")
        try:
            fd, self._tmp = _create_temporary(folder, self.path.name)
            os.close(fd)
        except OSError as err:
            raise InvalidVideoError(f"{self.path}: cannot write to {folder} ({err.strerror or err})") from None

    def _publish(self) -> None:
        assert self._tmp is not None
        if self.path.exists():  # replacing a file keeps its permissions, as writing into it would
            os.chmod(self._tmp, self.path.stat().st_mode & 0o7777)
        os.replace(self._tmp, self.path)
        self._tmp = None

    def _discard(self) -> None:
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None

    def close(self) -> None:  # pragma: no cover - defined by the subclasses
        raise NotImplementedError

    def abort(self) -> None:  # pragma: no cover - defined by the subclasses
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()


def _size_and_rate(path: Path, like, width, height, fps) -> tuple[int, int, float]:
    """A writer's display size and frame rate: the ``like`` reader's, or the given ones checked (not both)."""
    if like is not None:
        if width is not None or height is not None or fps is not None:
            raise InvalidVideoError(f"{path}: give either like= or width/height/fps, not both")
        return like.info.width, like.info.height, like.info.fps
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InvalidVideoError(f"{path}: {name} must be a positive integer, got {value!r}")
    if isinstance(fps, bool) or not isinstance(fps, (int, float, Fraction)) or not 0 < fps < 10_000:
        raise InvalidVideoError(f"{path}: fps must be a positive number, got {fps!r}")
    return int(width), int(height), fps


def _encodes_layout(codec: str, rate: int, layout: av.AudioLayout) -> bool:
    """Whether the audio encoder ``codec`` opens for a channel layout (AAC and libopus take 5.1 and 7.1; a layout
    one cannot code is re-encoded in the encoder's default, stereo)."""
    if layout.nb_channels <= 2:
        return True
    try:
        probe = av.CodecContext.create(codec, "w")
        probe.sample_rate, probe.layout = rate, layout
        probe.format = probe.codec.audio_formats[0]
        probe.open()
        return True
    except (av.error.FFmpegError, ValueError, TypeError):
        return False


class VideoWriter(_AtomicOutput):
    """Write frames to a new video file, atomically.

    Convention:
        Frames are RGB uint8 (H, W, 3) upright images of the display size. The file is written to
        a temporary file in the output folder and renamed by :meth:`close`; on an exception in the
        ``with`` block, or :meth:`abort`, the temporary file is deleted and nothing is left.
        With ``like`` the output mirrors that reader's input: display size, frame rate, time base,
        per-frame pts (variable frame rate kept; a reader trimmed with ``start`` is shifted so its
        first frame is at 0), rotation, pixel aspect ratio (anamorphic video), colour matrix and range,
        and audio.

    Args:
        path: output path ending in .mp4, .mov, .mkv or .webm.
        like: the reader whose input this output mirrors, or None.
        width: display width in pixels when ``like`` is None.
        height: display height in pixels when ``like`` is None.
        fps: frame rate when ``like`` is None.
        codec: video encoder (``"libx264"``, ``"libx265"``, ``"libsvtav1"``, ``"libvpx-vp9"``,
            ``"mpeg4"`` or any encoder PyAV offers); None means libx264 (libvpx-vp9 for .webm).
        crf: constant rate factor (0 is lossless for libx264, libx265 and VP9; for MPEG-4 it maps to
            the quantiser ``1 + crf // 6``); None keeps the encoder's default.
        preset: speed preset for libx264/libx265 (SVT-AV1: a number, or a x264 name mapped to one).
        bframes: most consecutive B-frames for libx264/libx265 (:data:`DEFAULT_BFRAMES`, 0: P-frames only, which
            keeps a swapped face from pumping in tone); None keeps the encoder's default. Other encoders ignore it.
        pix_fmt: output pixel format, 8-bit 4:2:0 by default whatever the input was (odd sizes with
            H.264/H.265 switch to ``yuv444p``, see the module notes).
        audio: copy the ``like`` reader's audio (re-encoded only when the container cannot hold it).
        metadata: container metadata; ``{"saswap": json}`` also writes ``comment = "saswap:" + json``.
        threads: let the encoder use threads.

    Attributes:
        frames_written: frames passed to :meth:`write` so far.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "grey.mp4"
        >>> with VideoWriter(out, width=64, height=48, fps=25) as writer:
        ...     for _ in range(3):
        ...         writer.write(np.full((48, 64, 3), 128, np.uint8))
        >>> info = probe_video(out); (info.width, info.height, info.frame_count, info.fps)
        (64, 48, 3, 25.0)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        like: VideoReader | None = None,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        codec: str | None = None,
        crf: int | None = DEFAULT_CRF,
        preset: str | None = "veryfast",
        bframes: int | None = DEFAULT_BFRAMES,
        pix_fmt: str = "yuv420p",
        audio: bool = True,
        metadata: Mapping[str, str] | None = None,
        threads: bool = True,
    ) -> None:
        self.path = Path(path)
        self.frames_written = 0
        self._closed = False
        self._tmp: Path | None = None
        self._container: av.container.OutputContainer | None = None
        self._audio_in: av.container.InputContainer | None = None
        self._audio_out: Any = None
        self._audio_pending: av.Packet | None = None
        fmt = _CONTAINERS.get(self.path.suffix.lower())
        if fmt is None:
            raise InvalidVideoError(
                f"{self.path}: unsupported video format {self.path.suffix!r}; use one of {', '.join(_CONTAINERS)}"
            )
        self._format = fmt
        codec = _resolve_codec(codec, fmt, self.path)
        if crf is not None and (isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 63):
            raise InvalidVideoError(f"{self.path}: crf must be an integer in [0, 63] or None, got {crf!r}")
        if crf is not None and codec in ("libx264", "libx265") and crf > 51:
            raise InvalidVideoError(f"{self.path}: crf must lie in [0, 51] for {codec} (51 is its worst), got {crf}")
        if codec in ("libx264", "libx265") and preset is not None and preset not in X264_PRESETS:
            raise InvalidVideoError(
                f"{self.path}: {preset!r} is not a {codec} preset; use one of {', '.join(X264_PRESETS)} "
                "(faster ones make larger files)"
            )
        if bframes is not None and (
            isinstance(bframes, bool) or not isinstance(bframes, int) or not 0 <= bframes <= 16
        ):
            raise InvalidVideoError(f"{self.path}: bframes must be an integer in [0, 16] or None, got {bframes!r}")
        tag = self._metadata(metadata)

        # geometry and timing -----------------------------------------------------------------
        self._like = like
        width, height, fps = _size_and_rate(self.path, like, width, height, fps)
        if like is not None:
            rotation = like.info.rotation
            rate = _frame_rate(like.stream) or Fraction(fps).limit_denominator(1001)
            time_base = like.time_base
        else:
            rotation, rate = 0, Fraction(fps).limit_denominator(1001)
            time_base = 1 / rate
        self.width, self.height, self.fps, self.rotation = width, height, float(rate), rotation
        self.time_base = Fraction(time_base)
        # (w, h) of the upright picture turned to the coded orientation, and of the coded picture: they differ for
        # non-square pixels, whose frames are read stretched to square ones
        self._square = (height, width) if rotation in (90, 270) else (width, height)
        self._sar: Fraction | None = getattr(like, "sample_aspect", None)
        self._coded = _coded_size(*self._square, self._sar)
        self._frame_ticks = max(1, round(1 / (rate * self.time_base)))  # one frame in time-base units
        self._shift: int | None = None
        self._last_pts: int | None = None

        # pixel format and colour ---------------------------------------------------------------
        formats = [f.name for f in av.Codec(codec, "w").video_formats or ()]
        try:
            out_fmt = av.VideoFormat(pix_fmt)
        except (ValueError, av.error.FFmpegError):
            raise InvalidVideoError(f"{self.path}: unknown pixel format {pix_fmt!r}") from None
        cw, ch = self._coded
        odd = cw % 2 or ch % 2
        subsampled = out_fmt.chroma_width(2) != 2 or out_fmt.chroma_height(2) != 2
        if odd and subsampled and codec in _EVEN_ONLY_420:
            if "yuv444p" in formats:
                logger.warning(
                    "%s: %s cannot code the odd size %dx%d in %s; writing yuv444p to keep the size exact",
                    self.path, codec, cw, ch, pix_fmt,
                )  # fmt: skip
                out_fmt = av.VideoFormat("yuv444p")
        if formats and out_fmt.name not in formats:
            raise InvalidVideoError(
                f"{self.path}: {codec} cannot write pixel format {out_fmt.name!r}; it takes {', '.join(formats)}"
            )
        self.pix_fmt = out_fmt.name
        self._out_fmt = out_fmt
        self._sizes = _plane_sizes(out_fmt, cw, ch)
        self._sub = (2 if out_fmt.chroma_width(2) == 1 else 1, 2 if out_fmt.chroma_height(2) == 1 else 1)
        # a pasted box's corners in coded pixels lie on multiples of these: whole chroma samples, and (non-square
        # pixels) where the coded and square-pixel grids meet, so a box is resampled as the whole picture would be
        (cw, ch), (sw, sh) = self._coded, self._square
        self._grid = (math.lcm(self._sub[0], cw // math.gcd(cw, sw)), math.lcm(self._sub[1], ch // math.gcd(ch, sh)))
        self._bytes = (max(c.bits for c in out_fmt.components) + 7) // 8  # per sample, for box pasting
        self._planar = len(out_fmt.components) == 3 and len({c.plane for c in out_fmt.components}) == 3
        if like is not None:
            cc = like.stream.codec_context
            colour = (int(cc.colorspace), int(cc.color_range), int(cc.color_primaries), int(cc.color_trc))
        else:
            colour = (1, 1, 1, 1)  # BT.709 matrix, limited range, BT.709 primaries and transfer
        self._colour = colour
        self._matrix = _SWS_MATRIX.get(colour[0], "ITU601")
        self._range = 2 if colour[1] == 2 else 1
        self._to_yuv = VideoReformatter()
        self._box_to_yuv = VideoReformatter()
        self._base_fmt = VideoReformatter()

        # output container ---------------------------------------------------------------------
        self._create()
        try:
            options = {"movflags": "+faststart+use_metadata_tags"} if fmt in ("mp4", "mov") else {}
            self._container = av.open(str(self._tmp), mode="w", format=fmt, options=options)
            self._container.metadata.update(tag)
            self._setup_video(codec, rate, crf, preset, bframes, threads)
            self._setup_audio(audio)
        except BaseException as err:
            self.abort()
            if isinstance(err, av.error.FFmpegError):
                raise InvalidVideoError(f"{self.path}: cannot set up the {codec} encoder ({err})") from None
            raise

    def _metadata(self, metadata: Mapping[str, str] | None) -> dict[str, str]:
        tag = dict(metadata or {})
        for key, value in tag.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise InvalidVideoError(
                    f"{self.path}: metadata keys and values must be strings, got {key!r}: {value!r}"
                )
        if VIDEO_TAG_KEY in tag:
            try:
                if not isinstance(json.loads(tag[VIDEO_TAG_KEY]), dict):
                    raise ValueError
            except ValueError:
                raise InvalidVideoError(f"{self.path}: metadata[{VIDEO_TAG_KEY!r}] must be a JSON object") from None
            tag.setdefault("comment", f"{VIDEO_TAG_KEY}:{tag[VIDEO_TAG_KEY]}")
        return tag

    def _setup_video(
        self, codec: str, rate: Fraction, crf: int | None, preset: str | None, bframes: int | None, threads: bool
    ) -> None:
        assert self._container is not None
        stream = self._container.add_stream(codec, rate=rate)
        cw, ch = self._coded
        stream.width, stream.height = cw, ch
        stream.pix_fmt = self.pix_fmt
        stream.time_base = self.time_base
        cc = stream.codec_context
        cc.time_base = self.time_base
        cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = self._colour
        cc.color_range = self._range
        if threads:
            cc.thread_type = "AUTO"
        else:
            cc.thread_count = 1
        stream.options = _encoder_options(codec, crf, preset, threads, bframes)
        if codec == "mpeg4" and crf is not None:
            cc.qscale = True
            cc.global_quality = (1 + crf // 6) * 118  # FF_QP2LAMBDA
        if self.rotation:
            stream.set_display_rotation(-self.rotation)  # PyAV takes counter-clockwise degrees
        if self._sar is not None:
            cc.sample_aspect_ratio = self._sar  # non-square pixels (anamorphic video) keep their display shape
        cc.open()  # now, so a bad option or size fails here rather than at the first frame
        self._stream = stream

    def _setup_audio(self, audio: bool) -> None:
        like = self._like
        if not audio or like is None or not like.info.has_audio:
            return
        assert self._container is not None
        self._audio_in = av.open(str(like.path), mode="r")
        src = self._audio_in.streams.audio[0]
        if len(self._audio_in.streams.audio) > 1:
            logger.warning(
                "%s: %s has %d audio streams; only the first (%s) is kept",
                self.path, like.path, len(self._audio_in.streams.audio), src.codec_context.name,
            )  # fmt: skip
        allowed = _AUDIO_COPY[self._format]
        self._audio_src = src
        codec = src.codec_context.codec
        # the format's name, not its decoder's (an MP3 stream's decoder is "mp3float")
        self._audio_copy = allowed is None or getattr(codec, "canonical_name", codec.name) in allowed
        if self._audio_copy:
            self._audio_out = self._container.add_stream_from_template(src)
        else:
            name = "aac"
            rate = src.codec_context.sample_rate or 48000
            if self._format == "webm":
                name = "libopus" if "libopus" in av.codecs_available else "opus"
                rate = 48000
            self._audio_out = self._container.add_stream(name, rate=rate)
            layout = src.codec_context.layout
            if layout is not None and _encodes_layout(name, rate, layout):  # 5.1 stays 5.1; else the default
                self._audio_out.codec_context.layout = layout
            logger.info("%s: re-encoding %s audio to %s for %s", self.path, src.codec_context.name, name, self._format)
        self._audio_packets: Iterator[av.Packet] | None = None
        self._audio_window: tuple[float, float] = (-math.inf, math.inf)
        self._audio_shift = 0  # in the input audio time base

    # audio -----------------------------------------------------------------------------------
    def _start_audio(self) -> None:
        """Fix the audio window from the reader's trimming and position the audio demuxer."""
        like = self._like
        assert like is not None and self._audio_in is not None
        vtb = like.time_base
        atb = self._audio_src.time_base
        lo, hi = -math.inf, math.inf
        if like.start is not None:
            lo = float(self._shift * vtb)  # type: ignore[operator]
            self._audio_shift = round(self._shift * vtb / atb)  # type: ignore[operator]
            try:
                self._audio_in.seek(max(0, int(lo / atb)), stream=self._audio_src, backward=True)
            except av.error.FFmpegError:
                pass  # decode from the beginning; packets before the window are skipped anyway
        if like.end is not None:
            hi = float(like.origin_pts * vtb) + like.end
        self._audio_window = (lo, hi)
        self._audio_packets = iter(self._audio_in.demux(self._audio_src))

    def _pump_audio(self, until: float) -> None:
        """Mux the input's audio packets up to ``until`` seconds (absolute input time)."""
        if self._audio_out is None:
            return
        if self._audio_packets is None:
            self._start_audio()
        assert self._audio_packets is not None and self._container is not None
        lo, hi = self._audio_window
        atb = self._audio_src.time_base
        while True:
            pending = self._audio_pending
            if pending is None:
                try:
                    pending = next(self._audio_packets)
                except StopIteration:
                    self._audio_out_done()
                    return
                except av.error.FFmpegError as err:
                    logger.warning("%s: audio copy stopped early (%s)", self.path, err)
                    self._audio_out_done()
                    return
            if pending.pts is None:
                if pending.size == 0 and not self._audio_copy:  # flush the audio decoder at the end
                    self._encode_audio(pending)
                self._audio_pending = None
                continue
            t = float(pending.pts * atb)
            if t > until:
                self._audio_pending = pending
                return
            self._audio_pending = None
            if t < lo - _EPS:
                continue
            if t >= hi - _EPS:
                self._audio_out_done()
                return
            if self._audio_copy:
                pending.pts -= self._audio_shift
                if pending.dts is not None:
                    pending.dts -= self._audio_shift
                pending.stream = self._audio_out
                self._container.mux(pending)
            else:
                self._encode_audio(pending)

    def _encode_audio(self, packet: av.Packet) -> None:
        assert self._container is not None
        for frame in packet.decode():
            if frame.sample_rate:
                # in samples: the encoder cuts frames to its own size (1,024 for AAC against MP3's 1,152), and in a
                # coarse input time base (an AVI's, one tick per MP3 frame) the pieces' timestamps collided
                if frame.pts is not None:
                    t = (frame.pts - self._audio_shift) * frame.time_base
                    frame.pts = int(round(t * frame.sample_rate))
                frame.time_base = Fraction(1, frame.sample_rate)
            self._container.mux(self._audio_out.encode(frame))

    def _audio_out_done(self) -> None:
        self._audio_packets = iter(())
        self._audio_pending = None

    # frames ----------------------------------------------------------------------------------
    def _check_image(self, image: np.ndarray) -> None:
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.shape != (self.height, self.width, 3):
            got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise InvalidVideoError(
                f"{self.path}: expected an RGB uint8 image of shape ({self.height}, {self.width}, 3), got {got}"
            )

    def _coded_part(self, image: np.ndarray, x1: int = 0, y1: int = 0, x2: int | None = None, y2: int | None = None):
        """The coded box (x1, y1, x2, y2) of an upright display image (or mask), turned to the coded orientation.

        For non-square pixels only the square-pixel region over the box is resampled to coded pixels (INTER_AREA). The
        box's corners must lie on :attr:`_grid` (where the two pixel grids meet), which makes the part equal to that
        box of the whole picture resampled."""
        cw, ch = self._coded
        x2, y2 = cw if x2 is None else x2, ch if y2 is None else y2
        turned = np.rot90(image, k=self.rotation // 90) if self.rotation else image
        if self._coded == self._square:
            return turned[y1:y2, x1:x2]
        sw, sh = self._square
        region = turned[y1 * sh // ch : y2 * sh // ch, x1 * sw // cw : x2 * sw // cw]
        if region.dtype != np.uint8:  # a mask: every coded pixel a changed one touches stays non-zero
            region = (region > 0).astype(np.uint8) * 255
        return cv2.resize(np.ascontiguousarray(region), (x2 - x1, y2 - y1), interpolation=cv2.INTER_AREA)

    def _rgb_to_yuv(self, rgb: np.ndarray, reformatter: VideoReformatter) -> av.VideoFrame:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        return reformatter.reformat(
            frame, format=self._out_fmt, dst_colorspace=self._matrix, dst_color_range=self._range, interpolation=_TO_YUV
        )

    def _base(self, raw: av.VideoFrame) -> av.VideoFrame:
        cw, ch = self._coded
        if (raw.width, raw.height) != (cw, ch):
            raise InvalidVideoError(
                f"{self.path}: the input frame is {raw.width}x{raw.height} (coded), the output is {cw}x{ch}; "
                "pass frames from the reader given as like="
            )
        if raw.format.name == self.pix_fmt:
            return raw
        matrix = _SWS_MATRIX.get(int(raw.colorspace), "ITU601")
        rng = 2 if int(raw.color_range) == 2 else 1
        return self._base_fmt.reformat(
            raw, format=self._out_fmt, src_colorspace=matrix, dst_colorspace=self._matrix,
            src_color_range=rng, dst_color_range=self._range, interpolation=_TO_YUV,
        )  # fmt: skip

    def _paste(
        self, base: av.VideoFrame, image: np.ndarray, box: tuple[int, int, int, int], mask: np.ndarray | None = None
    ) -> av.VideoFrame:
        """A copy of ``base`` whose YUV inside ``box`` (display coordinates) comes from ``image``; with
        ``mask``, only where the mask is non-zero (chroma: every chroma sample any changed pixel shares)."""
        if not self._planar:
            raise InvalidVideoError(f"{self.path}: a box can only be pasted into planar YUV, not {self.pix_fmt}")
        cw, ch = self._coded
        coded = _coded_box(box, self.rotation, self.width, self.height)
        if coded is None:  # the box lies outside the picture
            return base
        x1, y1, x2, y2 = coded
        if self._coded != self._square:  # square -> coded pixels, every coded pixel the box touches
            fx, fy = cw / self._square[0], ch / self._square[1]
            x1, y1 = math.floor(x1 * fx), math.floor(y1 * fy)
            x2, y2 = min(cw, math.ceil(x2 * fx)), min(ch, math.ceil(y2 * fy))
        sx, sy = self._sub
        gx, gy = self._grid  # widen to whole chroma samples (and to where the pixel grids meet)
        x1, y1 = x1 - x1 % gx, y1 - y1 % gy
        x2, y2 = min(cw, x2 + (-x2) % gx), min(ch, y2 + (-y2) % gy)
        patch = self._rgb_to_yuv(self._coded_part(image, x1, y1, x2, y2), self._box_to_yuv)
        changed = None
        if mask is not None:
            changed = self._coded_part(np.asarray(mask), x1, y1, x2, y2) > 0
        out = av.VideoFrame(cw, ch, self.pix_fmt)
        nb = self._bytes
        for i, (w, h) in enumerate(self._sizes):
            dst = _plane_array(out.planes[i], w * nb, h)
            dst[...] = _plane_array(base.planes[i], w * nb, h)
            px, py = (x1, y1) if i == 0 else (x1 // sx, y1 // sy)
            pw, ph = patch.planes[i].width, patch.planes[i].height
            src = _plane_array(patch.planes[i], pw * nb, ph)
            if changed is None:
                dst[py : py + ph, px * nb : (px + pw) * nb] = src
                continue
            m = changed if i == 0 else _block_any(changed, sx, sy)[:ph, :pw]
            if nb > 1:
                m = np.repeat(m, nb, axis=1)
            np.copyto(dst[py : py + ph, px * nb : (px + pw) * nb], src, where=m)
        out.colorspace, out.color_range = base.colorspace, base.color_range
        out.color_primaries, out.color_trc = base.color_primaries, base.color_trc
        return out

    def _next_pts(self, frame: VideoFrame | None) -> int:
        like = self._like
        if self._shift is None:  # a reader trimmed with ``start`` starts the output at 0
            trimmed = like is not None and like.start is not None and like.first_pts is not None
            self._shift = like.first_pts if trimmed else 0  # type: ignore[union-attr]
        if frame is not None and like is not None and frame.pts is not None:
            pts = frame.pts - self._shift
        else:
            pts = 0 if self._last_pts is None else self._last_pts + self._frame_ticks
        if self._last_pts is not None and pts <= self._last_pts:
            logger.warning(
                "%s: frame %d has pts %d, not after the previous %d; written at %d",
                self.path, self.frames_written, pts, self._last_pts, self._last_pts + 1,
            )  # fmt: skip
            pts = self._last_pts + 1
        return pts

    def write(
        self,
        image: np.ndarray | None,
        frame: VideoFrame | None = None,
        box: tuple[int, int, int, int] | None = None,
        mask: np.ndarray | None = None,
    ) -> None:
        """Encode one frame.

        Convention:
            ``image=None`` re-encodes ``frame.raw`` as decoded (no RGB round trip). With ``box``
            (x1, y1, x2, y2 in display pixels, clipped to the frame), only that box of ``image``
            (widened to even coordinates for 4:2:0) replaces the YUV of ``frame.raw``; every other
            pixel stays bit-exact. Otherwise the whole ``image`` is converted with the output's
            colour matrix. ``frame.raw``'s pts and picture type are overwritten.

        Args:
            image: RGB uint8 upright image, shape (H, W, 3) of the display size, or None.
            frame: the input frame this output frame corresponds to (its pts is kept).
            box: the changed region of ``image``; needs ``frame``.
            mask: with ``box``, where ``image`` changed, shape (H, W) (non-zero = changed): only those pixels
                (and the chroma samples they share, for 4:2:0) take ``image``'s YUV; the rest of the box
                stays bit-exact too.

        Raises:
            InvalidVideoError: a wrong image shape or dtype, a missing frame, a writer already
                closed, or an encoding failure.
        """
        if self._closed or self._container is None:
            raise InvalidVideoError(f"{self.path}: the writer is closed")
        if image is None and frame is None:
            raise InvalidVideoError(f"{self.path}: write() needs an image, or the input frame to pass through")
        if box is not None and (image is None or frame is None):
            raise InvalidVideoError(f"{self.path}: a box needs both the image and the input frame it changes")
        if image is not None:
            self._check_image(image)
        if box is not None and len(box) != 4:
            raise InvalidVideoError(f"{self.path}: box must be (x1, y1, x2, y2), got {box!r}")
        if image is None:  # pass-through
            out = self._base(frame.raw)  # type: ignore[union-attr]
        elif box is not None:  # only the box changes
            if mask is not None and np.shape(mask) != (self.height, self.width):
                raise InvalidVideoError(
                    f"{self.path}: mask must have shape ({self.height}, {self.width}), got {np.shape(mask)}"
                )
            out = self._paste(self._base(frame.raw), image, box, mask)  # type: ignore[union-attr]
        else:
            out = self._rgb_to_yuv(self._coded_part(image), self._to_yuv)
        pts = self._next_pts(frame)
        out.pts = pts
        out.time_base = self.time_base
        out.pict_type = 0  # let the encoder choose (a decoded frame carries I/P/B types)
        try:
            self._container.mux(self._stream.encode(out))
        except av.error.FFmpegError as err:
            raise InvalidVideoError(f"{self.path}: encoding frame {self.frames_written} failed ({err})") from None
        self._last_pts = pts
        self.frames_written += 1
        if self._audio_out is not None:
            self._pump_audio(float((pts + (self._shift or 0)) * self.time_base) + 0.5)

    # lifetime ----------------------------------------------------------------------------------
    def close(self) -> None:
        """Flush the encoder, copy the remaining audio and rename the file into place.

        Raises:
            InvalidVideoError: no frame was written, or finishing the file failed (then no file is left).
        """
        if self._closed:
            return
        try:
            if self.frames_written == 0:
                raise InvalidVideoError(f"{self.path}: no frame was written; the video would be empty")
            assert self._container is not None and self._tmp is not None
            try:
                self._container.mux(self._stream.encode(None))
                if self._audio_out is not None:
                    self._pump_audio(math.inf)
                    if not self._audio_copy:
                        self._container.mux(self._audio_out.encode(None))
                self._container.close()
            except av.error.FFmpegError as err:
                raise InvalidVideoError(f"{self.path}: finishing the video failed ({err})") from None
            self._container = None
            self._publish()
        except BaseException:
            self.abort()
            raise
        finally:
            self._closed = True
            if self._audio_in is not None:
                self._audio_in.close()
                self._audio_in = None

    def abort(self) -> None:
        """Stop writing and delete the temporary file; no output is left (idempotent)."""
        self._closed = True
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # the file is deleted anyway
                pass
            self._container = None
        if self._audio_in is not None:
            self._audio_in.close()
            self._audio_in = None
        self._discard()

    def __enter__(self) -> VideoWriter:
        return self

    def __del__(self) -> None:
        if getattr(self, "_tmp", None) is not None:
            try:
                logger.warning("%s: VideoWriter was never closed; the unfinished video is deleted", self.path)
                self.abort()
            except Exception:  # interpreter shutdown: nothing more can be done
                pass

    def __repr__(self) -> str:
        return f"VideoWriter({str(self.path)!r}, {self.width}x{self.height}, {self.fps:.3f} fps, {self.pix_fmt})"


#: The most bytes of frames a :class:`GifWriter` holds before it writes the file (one byte a pixel).
GIF_MEMORY_LIMIT = 2 * 2**30
#: The shortest frame a :class:`GifWriter` writes, in hundredths of a second (browsers slow shorter ones down).
GIF_MIN_TICKS = 2
#: The palette entry a :class:`GifWriter` keeps for transparent pixels (a transparent template's).
GIF_CLEAR = 255


class GifWriter(_AtomicOutput):
    """Write frames to an animated GIF, atomically: what :class:`VideoWriter` does for a video, for a ``.gif`` output.

    Convention:
        Each frame is quantised to its own 256-colour palette (median cut, Floyd-Steinberg dithering) and kept, as
        one byte a pixel, until :meth:`close` writes the file (GIFs are short: 10 s of 480x480 at 25 fps is 58 MB;
        more than :data:`GIF_MEMORY_LIMIT` is an error that names the file);
        the file is written to a temporary file in the output folder and renamed, and on an exception in the
        ``with`` block, or :meth:`abort`, nothing is left. With ``like`` each frame lasts until the next one's
        timestamp (GIF counts in hundredths of a second: a template's own GIF timing is kept; a frame that would last
        less than :data:`GIF_MIN_TICKS` is left out, as from a 60-fps video, and the one before it lasts on), the last
        until the template's end (or as long as the one before it); the loop count is ``loop`` (0: for ever), by
        default the ``like`` reader's own GIF's. The ``metadata`` tag (``{"saswap": json}``) is written in the GIF's
        comment extension as ``"saswap:" + json``, where :func:`read_video_tag` reads it. The same :meth:`write` as
        :class:`VideoWriter` (a box and a mask are accepted, and the whole image is taken). A GIF has no audio. A
        transparent template (a sticker) stays transparent where its decoded frame (``frame.raw``) was.

    Args:
        path: output path ending in .gif.
        like: the reader whose input this output mirrors (size and timing), or None.
        width, height, fps: the size and frame rate when ``like`` is None.
        metadata: container metadata (only :data:`VIDEO_TAG_KEY` is kept).
        loop: times the animation repeats (0: for ever); None: as the ``like`` reader's GIF, else 0.
        **ignored: the video encoder's settings (codec, crf, preset, ...), which a GIF has none of.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "grey.gif"
        >>> with GifWriter(out, width=64, height=48, fps=25) as writer:
        ...     for level in (64, 128, 192):
        ...         writer.write(np.full((48, 64, 3), level, np.uint8))
        >>> info = probe_video(out); (info.width, info.height, info.frame_count)
        (64, 48, 3)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        like: VideoReader | None = None,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        metadata: Mapping[str, str] | None = None,
        loop: int | None = None,
        **ignored: Any,
    ) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() != ".gif":
            raise InvalidVideoError(f"{self.path}: a GIF writer needs a .gif output")
        width, height, fps = _size_and_rate(self.path, like, width, height, fps)
        self.width, self.height, self.fps = width, height, float(fps)
        self._end = float(like.info.duration) if like is not None and like.info.duration else None
        if loop is None:
            loop = _gif_loop(like.path) if like is not None else 0
        self.loop = int(loop)
        tag = dict(metadata or {}).get(VIDEO_TAG_KEY)
        self._comment = f"{VIDEO_TAG_KEY}:{tag}" if tag is not None else None
        self.frames_written = 0
        self._frames: list[Any] = []
        self._times: list[float] = []
        self._clear = False  # a frame has transparent pixels
        self._closed = False
        self._create()

    def write(
        self,
        image: np.ndarray | None,
        frame: VideoFrame | None = None,
        box: tuple[int, int, int, int] | None = None,
        mask: np.ndarray | None = None,
    ) -> None:
        """Add one frame: ``image`` (RGB uint8 (H, W, 3)), or ``frame``'s own picture when ``image`` is None."""
        from PIL import Image

        if self._closed:
            raise InvalidVideoError(f"{self.path}: the writer is closed")
        if image is None:
            if frame is None:
                raise InvalidVideoError(f"{self.path}: write() needs an image, or the input frame to pass through")
            image = frame.image
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.shape != (self.height, self.width, 3):
            raise InvalidVideoError(
                f"{self.path}: frames must be uint8 ({self.height}, {self.width}, 3), got {image.dtype} {image.shape}"
            )
        if (self.frames_written + 1) * self.width * self.height > GIF_MEMORY_LIMIT:
            raise InvalidVideoError(
                f"{self.path}: too long for a GIF: {self.frames_written + 1} frames of {self.width}x{self.height} "
                f"would hold more than {GIF_MEMORY_LIMIT / 2**30:.0f} GiB until written; write a video (.mp4), or a "
                "shorter span (--start/--end)"
            )
        picture = Image.fromarray(np.ascontiguousarray(image), "RGB")
        clear = _transparent(frame)
        if clear is None:
            self._frames.append(picture.quantize(256, Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG))
        else:  # a template with alpha (a GIF sticker) stays transparent where it was: palette entry 255, in no frame
            # a colour (an opaque frame's 256th colour would turn transparent in a file that has transparency)
            quantised = picture.quantize(255, Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG)
            indices = np.array(quantised)
            indices[clear] = GIF_CLEAR
            palette = (quantised.getpalette() or [])[: 3 * GIF_CLEAR]
            out = Image.fromarray(indices, "P")
            out.putpalette(palette + [0] * (3 * 256 - len(palette)))
            if clear.any():
                out.info["transparency"] = GIF_CLEAR
                self._clear = True
            self._frames.append(out)
        step = 1.0 / self.fps
        when = frame.time if frame is not None and frame.time is not None else None
        if when is None or (self._times and when <= self._times[-1]):
            when = self._times[-1] + step if self._times else 0.0
        self._times.append(float(when))
        self.frames_written += 1

    def close(self) -> None:
        """Write the GIF and rename it into place.

        Raises:
            InvalidVideoError: no frame was written, or writing failed (then no file is left).
        """
        if self._closed:
            return
        try:
            if not self._frames:
                raise InvalidVideoError(f"{self.path}: no frame was written; the GIF would be empty")
            times = np.asarray(self._times, np.float64)
            last = float(times[-1] - times[-2]) if len(times) > 1 else 1.0 / self.fps
            if self._end is not None and 0.0 < self._end - times[-1] <= 3.0 * last:
                last = self._end - times[-1]  # the template's last frame: as long as it lasts there
            # whole hundredths of a second, rounded on the running time so that the length stays the template's
            ticks = np.round(np.append(times, times[-1] + last) * 100.0).astype(np.int64)
            # Browsers show a frame shorter than 2 hundredths for a tenth of a second (a 60-fps clip would play at a
            # fifth of its speed): such a frame is left out and the one before it lasts until the next one kept.
            kept = [0]
            for i in range(1, len(times)):
                if ticks[i] - ticks[kept[-1]] >= GIF_MIN_TICKS:
                    kept.append(i)
            ends = [ticks[k] for k in kept[1:]] + [ticks[-1]]
            durations = [int(max(1, end - ticks[k])) * 10 for k, end in zip(kept, ends)]  # milliseconds
            frames = [self._frames[k] for k in kept]
            extra: dict[str, Any] = {"comment": self._comment.encode()} if self._comment else {}
            if self._clear:  # each frame drawn on a cleared canvas, so that earlier frames do not show through
                extra.update(transparency=GIF_CLEAR, disposal=2)
            try:
                frames[0].save(
                    self._tmp, format="GIF", save_all=True, append_images=frames[1:], duration=durations,
                    loop=self.loop, optimize=False, **{"disposal": 1, **extra},
                )  # fmt: skip
            except (OSError, ValueError) as err:
                raise InvalidVideoError(f"{self.path}: writing the GIF failed ({err})") from None
            self._publish()
        except BaseException:
            self.abort()
            raise
        finally:
            self._closed = True
            self._frames = []

    def abort(self) -> None:
        """Stop writing and delete the temporary file; no output is left (idempotent)."""
        self._closed = True
        self._frames = []
        self._discard()

    def __enter__(self) -> GifWriter:
        return self

    def __repr__(self) -> str:
        return f"GifWriter({str(self.path)!r}, {self.width}x{self.height}, {self.fps:.3f} fps)"


def _transparent(frame: VideoFrame | None) -> np.ndarray | None:
    """Where a decoded frame in a format with alpha (a GIF's) is transparent, bool (H, W); None for a format without."""
    raw = getattr(frame, "raw", None)
    if raw is None or not raw.format.name.startswith(("bgra", "rgba", "argb", "abgr", "yuva")):
        return None
    if (raw.width, raw.height) != frame.image.shape[1::-1]:  # a turned picture: not a GIF's
        return None
    return raw.to_ndarray(format="rgba")[..., 3] < 128


def _gif_loop(path: Path) -> int:
    """The loop count of a GIF file (0: for ever, also for anything else)."""
    from PIL import Image

    try:
        with open(path, "rb") as fh:
            if not fh.read(6).startswith(b"GIF"):
                return 0
        with Image.open(path) as im:
            return int(im.info.get("loop", 0))
    except (OSError, ValueError, SyntaxError):
        return 0


def open_video_writer(path: str | os.PathLike, **kwargs: Any) -> VideoWriter | GifWriter:
    """A :class:`GifWriter` for a ``.gif`` path, else a :class:`VideoWriter` (same arguments)."""
    if Path(path).suffix.lower() == ".gif":
        return GifWriter(path, **kwargs)
    return VideoWriter(path, **kwargs)
