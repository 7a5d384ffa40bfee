"""The template cache: a template video's per-frame analysis, computed once and reused by every swap.

Format (version :data:`FORMAT_VERSION`), one file per template and analysis settings::

    b"SASWAPTC"                 magic, 8 bytes
    u32 format version          little-endian (all integers are)
    records                     per frame: u32 length, u32 CRC-32, a zlib-compressed
                                :meth:`FrameAnalysis.to_bytes` record (streamed: memory does not grow
                                with the template's length)
    u32 n, header               n bytes of UTF-8 JSON: saswap version, the video's content hash and
                                properties, the analysis settings, frame count, tracks
                                (each with its identity embedding, when an embedder was there),
                                the engine's crop size the faces are described for (``crop_size``)
    u32 m, index                m bytes of JSON: [[pts, offset], ...] in frame order
    b"SASWAPEND"                9 bytes
    u64 header offset
    32 bytes                    SHA-256 of every byte before it

A file is found by its name, ``<video hash>-<settings hash>.stc``: the SHA-256 of the video's bytes and
of the analysis settings plus the SaSwap version and format version. Opening checks the magic, the
versions, the key, the trailer and the whole file's SHA-256; a record's CRC is checked again when it is
read. Anything wrong (truncated, flipped bytes, another version, other settings) is reported as a
warning and the cache is rebuilt, never silently used.

Files are written to a temporary name in the cache folder and renamed when complete, so a reader sees
either the whole file or none; a lock file serialises writers of the same template (a second process
waits and then finds the finished cache). A folder that cannot be written means no cache, with a warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import struct
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from saswap import __version__
from saswap.errors import SaSwapError
from saswap.pipelines.analysis import FrameAnalysis

__all__ = [
    "FORMAT_VERSION",
    "CacheError",
    "default_cache_dir",
    "file_sha256",
    "cache_path",
    "TemplateCache",
    "CacheWriter",
    "writer_lock",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_MAGIC = b"SASWAPTC"
_END = b"SASWAPEND"
_TRAILER = len(_END) + 8 + 32


class CacheError(SaSwapError):
    """A template cache file is unusable (corrupt, truncated, stale or of another version)."""


def default_cache_dir() -> Path:
    """Where template caches live: ``$SASWAP_CACHE``, else the platform's user cache folder + ``saswap/templates``.

    Linux: ``$XDG_CACHE_HOME`` or ``~/.cache``; macOS: ``~/Library/Caches``; Windows: ``%LOCALAPPDATA%``.
    """
    env = os.environ.get("SASWAP_CACHE")
    if env:
        return Path(env).expanduser()
    if sys.platform == "darwin":
        base = Path("~/Library/Caches").expanduser()
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "saswap" / "templates"


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes (the template's content hash)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def settings_key(settings: dict[str, Any]) -> str:
    """Hex SHA-256 of the analysis settings with the SaSwap and format versions.

    Example:
        >>> settings_key({"a": 1}) == settings_key({"a": 1}) != settings_key({"a": 2})
        True
    """
    payload = json.dumps({"settings": settings, "saswap": __version__, "format": FORMAT_VERSION}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def cache_path(cache_dir: str | os.PathLike, video_hash: str, settings: dict[str, Any]) -> Path:
    """The cache file of a template (by content hash) under the given analysis settings."""
    return Path(cache_dir) / f"{video_hash[:24]}-{settings_key(settings)[:16]}.stc"


@dataclass
class TemplateCache:
    """An opened, verified template cache (read-only; records are read on demand).

    Attributes:
        path: the cache file.
        header: its JSON header (``saswap_version``, ``video``, ``settings``, ``frames``, ``tracks``, ...).
        index: frame order -> (pts, offset of its record).
    """

    path: Path
    header: dict[str, Any]
    index: list[tuple[int | None, int]]

    def __repr__(self) -> str:
        """One line (the dataclass's own printed the whole header and every frame's index entry)."""
        video = self.header.get("video") or {}
        name = video.get("name") if isinstance(video, dict) else None
        about = f"video={name!r}, " if name else ""
        return (
            f"TemplateCache({str(self.path)!r}, {about}frames={len(self.index)}, "
            f"saswap_version={self.header.get('saswap_version')!r})"
        )

    @classmethod
    def open(cls, path: str | os.PathLike, video_hash: str | None = None, settings: dict[str, Any] | None = None):
        """Open and verify a cache file.

        Raises:
            CacheError: missing, truncated, corrupt, of another format or SaSwap version, or made for another
                video or other settings; the message says which.
        """
        path = Path(path)
        try:
            size = path.stat().st_size
            with open(path, "rb") as fh:
                data_head = fh.read(12)
                if len(data_head) < 12 or data_head[:8] != _MAGIC:
                    raise CacheError(f"{path}: not a SaSwap template cache (bad magic)")
                (version,) = struct.unpack("<I", data_head[8:12])
                if version != FORMAT_VERSION:
                    raise CacheError(f"{path}: cache format {version}, this SaSwap reads format {FORMAT_VERSION}")
                if size < 12 + _TRAILER:
                    raise CacheError(f"{path}: truncated cache file ({size} bytes)")
                fh.seek(size - _TRAILER)
                trailer = fh.read(_TRAILER)
                if trailer[: len(_END)] != _END:
                    raise CacheError(f"{path}: truncated cache file (no end marker)")
                (header_at,) = struct.unpack("<Q", trailer[len(_END) : len(_END) + 8])
                digest = trailer[len(_END) + 8 :]
                fh.seek(0)
                h = hashlib.sha256()
                remaining = size - 32
                while remaining > 0:
                    block = fh.read(min(1 << 20, remaining))
                    if not block:
                        break
                    h.update(block)
                    remaining -= len(block)
                if h.digest() != digest:
                    raise CacheError(f"{path}: corrupt cache file (checksum mismatch)")
                fh.seek(header_at)
                (n,) = struct.unpack("<I", fh.read(4))
                header = json.loads(fh.read(n))
                (m,) = struct.unpack("<I", fh.read(4))
                index = [(p, int(o)) for p, o in json.loads(fh.read(m))]
        except FileNotFoundError:
            raise CacheError(f"{path}: no such cache file") from None
        except (OSError, ValueError, struct.error) as err:
            raise CacheError(f"{path}: unreadable cache file ({err})") from None
        if header.get("saswap_version") != __version__:
            raise CacheError(f"{path}: made by saswap {header.get('saswap_version')}, this is saswap {__version__}")
        if video_hash is not None and header.get("video", {}).get("sha256") != video_hash:
            raise CacheError(f"{path}: made for another video (content hash differs)")
        if settings is not None and header.get("settings") != json.loads(json.dumps(settings)):
            raise CacheError(f"{path}: made with other analysis settings")
        if len(index) != header.get("frames"):
            raise CacheError(f"{path}: index holds {len(index)} frames, header says {header.get('frames')}")
        return cls(path, header, index)

    def __len__(self) -> int:
        return len(self.index)

    def frames(self, start: int = 0) -> Iterator[FrameAnalysis]:
        """The frames' analyses in order, from frame ``start``; each record's CRC is checked."""
        if start >= len(self.index):
            return
        with open(self.path, "rb") as fh:
            fh.seek(self.index[start][1])
            for _ in range(start, len(self.index)):
                head = fh.read(8)
                if len(head) < 8:
                    raise CacheError(f"{self.path}: truncated record")
                length, crc = struct.unpack("<II", head)
                payload = fh.read(length)
                if len(payload) != length or zlib.crc32(payload) != crc:
                    raise CacheError(f"{self.path}: corrupt record (CRC mismatch)")
                yield FrameAnalysis.from_bytes(payload)

    def position_of(self, pts: int | None, index: int) -> int:
        """Frame order of the frame with this pts (or this index when the video has no pts)."""
        if not hasattr(self, "_by_pts"):
            self._by_pts = {p: i for i, (p, _) in enumerate(self.index) if p is not None}
        if pts is not None and pts in self._by_pts:
            return self._by_pts[pts]
        return index


class CacheWriter:
    """Writes a template cache atomically: records are streamed to a temporary file in the cache folder,
    which :meth:`close` completes and renames into place.

    Args:
        path: the final cache file.
        header: the JSON header (more keys may be added to :attr:`header` before :meth:`close`).
    """

    def __init__(self, path: str | os.PathLike, header: dict[str, Any]) -> None:
        from saswap.io import _create_temporary

        self.path = Path(path)
        self.header = dict(header)
        self.index: list[list] = []
        fd, self._tmp = _create_temporary(self.path.parent, self.path.name)
        self._fh = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self._offset = 0
        self._done = False
        self._put(_MAGIC + struct.pack("<I", FORMAT_VERSION))

    def _put(self, b: bytes) -> None:
        self._hash.update(b)
        self._fh.write(b)
        self._offset += len(b)

    def add(self, frame: FrameAnalysis) -> None:
        """Append the next frame's analysis."""
        try:
            payload = frame.to_bytes()
            self.index.append([frame.pts, self._offset])
            self._put(struct.pack("<II", len(payload), zlib.crc32(payload)) + payload)
        except BaseException:
            self.abort()
            raise

    def close(self) -> Path:
        """Write the header, index and trailer and rename the file into place; returns its path."""
        try:
            self.header["frames"] = len(self.index)
            self.header["saswap_version"] = __version__
            self.header["format"] = FORMAT_VERSION
            header_at = self._offset
            head = json.dumps(self.header, sort_keys=True).encode()
            table = json.dumps(self.index, separators=(",", ":")).encode()
            self._put(struct.pack("<I", len(head)) + head + struct.pack("<I", len(table)) + table)
            self._put(_END + struct.pack("<Q", header_at))
            self._fh.write(self._hash.digest())
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            os.replace(self._tmp, self.path)
            self._done = True
            return self.path
        finally:
            if not self._done:
                self.abort()

    def abort(self) -> None:
        """Remove the temporary file; nothing is left behind."""
        with contextlib.suppress(OSError):
            self._fh.close()
        with contextlib.suppress(OSError):
            self._tmp.unlink()


@contextlib.contextmanager
def writer_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` + ``.lock`` (POSIX ``flock``; no-op where unavailable), so one process
    builds a template's cache while others wait for it. A lock file another user made in a shared cache folder,
    which this user may not write, is locked through a read-only handle (``flock`` needs no write access)."""
    try:
        import fcntl
    except ImportError:  # Windows: the atomic rename still keeps readers safe
        yield
        return
    lock = path.with_name(path.name + ".lock")
    try:
        fh = open(lock, "a+b")  # noqa: SIM115 - closed below
    except PermissionError:
        fh = open(lock, "rb")  # noqa: SIM115 - closed below
    with fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
