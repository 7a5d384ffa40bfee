"""The web app's template folder: videos whose template caches were precomputed, each with a thumbnail."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from saswap.errors import SaSwapError

__all__ = ["Template", "find_templates"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Template:
    """A template video the app offers.

    Attributes:
        name: the file name, shown under the thumbnail and used by the API.
        path: the video file.
        thumbnail: a small JPEG of its first frame.
        duration: seconds.
        width, height: frame size in pixels.
    """

    name: str
    path: Path
    thumbnail: Path
    duration: float
    width: int
    height: int

    @property
    def caption(self) -> str:
        return f"{self.name} · {self.duration:.1f} s"


def _thumbnail(frame: np.ndarray, path: Path, width: int = 320) -> None:
    import cv2

    from saswap.io import save_image

    h, w = frame.shape[:2]
    scale = width / float(w)
    small = cv2.resize(frame, (width, max(1, round(h * scale))), interpolation=cv2.INTER_AREA) if scale < 1 else frame
    save_image(small, path)


def find_templates(
    folder: str | os.PathLike, pipe, cache_dir: str | os.PathLike | None, thumbs: Path,
    crop_size: int | str | None = None, occlusion: str | None = None,
) -> tuple[list[Template], list[str]]:  # fmt: skip
    """The videos of ``folder`` whose template cache (for ``pipe``'s engine, compose stage and ``crop_size``) is
    present and valid.

    Args:
        folder: the template folder (not searched recursively).
        pipe: the :class:`~saswap.pipelines.image.SaSwapPipeline` whose analysis settings key the caches.
        cache_dir: the template cache folder (default: :func:`~saswap.pipelines.cache.default_cache_dir`).
        thumbs: folder for the thumbnails (created).
        crop_size: the crop the caches were made for, as ``saswap precompute --crop-size`` took it (None: the
            engine's own).
        occlusion: the ``--occlusion`` ``pipe`` was made with (None: not given), for the command a file left out
            names (the caches are keyed by ``pipe``'s own).

    Returns:
        (the templates, sorted by name; one line per file left out, saying why).

    Raises:
        SaSwapError: ``folder`` is not a folder.
    """
    from saswap.pipelines.cache import CacheError, TemplateCache, cache_path, default_cache_dir, file_sha256
    from saswap.pipelines.video import cache_settings
    from saswap.videoio import VideoReader, is_video_file, probe_video

    folder = Path(folder)
    if not folder.is_dir():
        raise SaSwapError(f"{folder}: the template folder does not exist or is not a folder")
    cache_folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    settings = cache_settings(pipe, crop_size)
    hint = "".join(f" --{k} {v}" for k, v in (("crop-size", crop_size), ("occlusion", occlusion)) if v is not None)
    thumbs.mkdir(parents=True, exist_ok=True)
    found, skipped = [], []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        if not is_video_file(path):  # a photo, a note, a broken or truncated video: said, so it is not missed
            skipped.append(f"{path.name}: not a video that can be read (no video stream could be opened in it)")
            continue
        try:
            info = probe_video(path)
            digest = file_sha256(path)
            TemplateCache.open(cache_path(cache_folder, digest, settings), digest, settings)
        except CacheError:
            run = f"saswap precompute {path}{hint}"
            skipped.append(f"{path.name}: no valid template cache in {cache_folder} (run '{run}')")
            continue
        except SaSwapError as err:
            skipped.append(f"{path.name}: {err}")
            continue
        thumb = thumbs / f"{len(found):03d}.jpg"
        with VideoReader(path) as reader:
            first = next(iter(reader), None)
        if first is None:
            skipped.append(f"{path.name}: no frame could be decoded")
            continue
        _thumbnail(first.image, thumb)
        found.append(Template(path.name, path, thumb, info.duration, info.width, info.height))
    for line in skipped:
        logger.warning("template left out: %s", line)
    return found, skipped
