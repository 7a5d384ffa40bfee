"""Sample photos that ship inside installed dependencies, for demos and the README's first command.

SaSwap ships no photos of people itself; these come from the wheels of packages it depends on.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from saswap.errors import InvalidImageError

__all__ = ["SAMPLES", "sample_path", "load_sample", "make_sample_video"]

#: name -> (package, path inside the package)
SAMPLES: dict[str, tuple[str, str]] = {
    "t1": ("insightface", "data/images/t1.jpg"),  # six people, group photo
    "tom_hanks": ("insightface", "data/images/Tom_Hanks_54745.png"),
    "mask_white": ("insightface", "data/images/mask_white.jpg"),
}


def sample_path(name: str) -> Path:
    """Path of a sample photo shipped in an installed package (see :data:`SAMPLES`).

    Example:
        >>> sample_path("t1").name
        't1.jpg'
    """
    if name not in SAMPLES:
        raise InvalidImageError(f"sample:{name}: unknown sample; choose one of {sorted([*SAMPLES, 'astronaut'])}")
    package, rel = SAMPLES[name]
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise InvalidImageError(f"sample:{name}: the package {package!r} that ships it is not installed")
    path = Path(spec.origin).parent / rel
    if not path.is_file():
        raise InvalidImageError(f"sample:{name}: {path} is missing from the installed {package}")
    return path


def load_sample(name: str) -> np.ndarray:
    """RGB uint8 array of a sample photo (``"astronaut"`` comes from scikit-image when installed)."""
    from saswap.io import load_image

    if name == "astronaut":
        try:
            from skimage import data
        except ImportError:
            raise InvalidImageError("sample:astronaut: needs scikit-image (pip install scikit-image)") from None
        return np.ascontiguousarray(data.astronaut())
    return load_image(sample_path(name))


def make_sample_video(
    path: str | os.PathLike,
    name: str = "t1",
    seconds: float = 2.0,
    fps: float = 15.0,
    width: int = 640,
    height: int = 360,
    crf: int | None = None,
) -> Path:
    """Write a short template video made from a sample photo: a slow pan across it with a gentle zoom.

    No video ships in SaSwap's dependencies, so this makes one that needs no download: a camera moving
    left to right over the photo (faces enter and leave the frame at its edges) and closing in by a
    tenth. It is a real H.264 file like any other template (``saswap swap --target``, the template cache),
    but its faces do not talk or turn: use it to try the video path, not to judge temporal stability.

    Args:
        path: the video to write (.mp4, .mov, .mkv or .webm); written atomically.
        name: a sample photo (:data:`SAMPLES`, or ``"astronaut"``).
        seconds: duration.
        fps: frame rate.
        width, height: the video's size (even numbers for 4:2:0).
        crf: encoder quality (None: the writer's default).

    Returns:
        the written path.

    Example:
        >>> import tempfile
        >>> from saswap.videoio import probe_video
        >>> out = make_sample_video(Path(tempfile.mkdtemp()) / "pan.mp4", seconds=0.4, fps=10, width=160, height=90)
        >>> info = probe_video(out); (info.width, info.height, info.frame_count, info.fps)
        (160, 90, 4, 10.0)
    """
    import cv2

    from saswap.videoio import VideoWriter

    if seconds <= 0 or fps <= 0:
        raise ValueError(f"seconds and fps must be positive, got {seconds} and {fps}")
    if width < 2 or height < 2 or width % 2 or height % 2:
        raise ValueError(f"width and height must be even and at least 2, got {width}x{height}")
    image = load_sample(name)
    h, w = image.shape[:2]
    count = max(1, round(seconds * fps))
    aspect = width / height
    # the window: as tall as allows a pan of a quarter of its width or more, within the photo
    win_h0 = min(0.9 * h, w / (aspect * 1.25))
    writer_kwargs = {} if crf is None else {"crf": crf}
    with VideoWriter(path, width=width, height=height, fps=fps, audio=False, **writer_kwargs) as writer:
        for i in range(count):
            t = i / (count - 1) if count > 1 else 0.0
            win_h = win_h0 * (1.0 - 0.1 * t)
            win_w = win_h * aspect
            x0 = t * (w - win_w)
            y0 = (h - win_h) / 2.0
            s = width / win_w
            M = np.array([[s, 0.0, -x0 * s], [0.0, s, -y0 * s]], np.float64)
            writer.write(
                cv2.warpAffine(image, M, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
            )
    return Path(path)
