"""The template cache file: round trip, and every kind of damage detected (never silently used)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from saswap.face.types import Face
from saswap.pipelines.analysis import FrameAnalysis, TargetFace, smooth_tracks
from saswap.pipelines.cache import CacheError, CacheWriter, TemplateCache, cache_path, default_cache_dir


def _face(x: float, track: int = 0) -> Face:
    rng = np.random.default_rng(int(x * 10) + track)
    lm = rng.random((478, 3)).astype(np.float32) * 10 + x
    return Face(
        box=np.array([x, x, x + 50, x + 60], np.float32), score=0.9, keypoints=lm[:5, :2].copy(), landmarks=lm,
        landmarks_68=lm[:68, :2].copy(), pose=np.array([1, 2, 3], np.float32), track_id=track,
    )  # fmt: skip


def _write(path, n=5, settings=None, video_hash="abc"):
    writer = CacheWriter(path, {"video": {"sha256": video_hash}, "settings": settings or {"s": 1}})
    for i in range(n):
        occ = np.zeros((64, 64), np.uint8)
        occ[i : i + 10, 5:20] = 1
        tf = TargetFace(_face(float(i)), np.array([[1.0, 0, -i], [0, 1.0, 0]]), {"occlusion": occ})
        writer.add(FrameAnalysis(i, 1000 * i, i / 30, [tf], shot_cut=(i == 3)))
    return writer.close()


def test_round_trip(tmp_path):
    path = _write(tmp_path / "t.stc")
    cache = TemplateCache.open(path, "abc", {"s": 1})
    assert len(cache) == 5 and cache.header["frames"] == 5
    frames = list(cache.frames())
    assert [f.index for f in frames] == list(range(5)) and [f.pts for f in frames] == [0, 1000, 2000, 3000, 4000]
    assert [f.shot_cut for f in frames] == [False, False, False, True, False]
    f2 = frames[2].faces[0]
    assert np.array_equal(f2.face.landmarks, _face(2.0).landmarks)
    assert f2.data["occlusion"].dtype == np.uint8 and int(f2.data["occlusion"].sum()) == 150
    assert np.allclose(f2.transform, [[1, 0, -2], [0, 1, 0]])
    assert [f.index for f in cache.frames(3)] == [3, 4]
    assert cache.position_of(4000, 0) == 4
    assert not list(tmp_path.glob(".*tmp")), "the temporary file was left behind"
    # printed in one line (the dataclass's repr printed the header and every frame's index entry)
    assert repr(cache) == f"TemplateCache({str(path)!r}, frames=5, saswap_version={cache.header['saswap_version']!r})"
    assert repr(f2.face).startswith("Face(box=[") and "478 landmarks, track_id=" in repr(f2.face)
    assert "\n" not in repr(f2.face)


@pytest.mark.parametrize("damage", ["flip", "truncate", "version", "magic", "empty"])
def test_damage_is_detected(tmp_path, damage):
    path = _write(tmp_path / "t.stc")
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x40
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "version":
        data[8:12] = struct.pack("<I", 99)
    elif damage == "magic":
        data[:4] = b"JUNK"
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    with pytest.raises(CacheError, match=str(path.name)):
        TemplateCache.open(path)


def test_other_saswap_version_video_or_settings_is_stale(tmp_path, monkeypatch):
    path = _write(tmp_path / "t.stc")
    with pytest.raises(CacheError, match="another video"):
        TemplateCache.open(path, "zzz", {"s": 1})
    with pytest.raises(CacheError, match="other analysis settings"):
        TemplateCache.open(path, "abc", {"s": 2})
    import saswap.pipelines.cache as cache_module

    monkeypatch.setattr(cache_module, "__version__", "9.9.9")
    with pytest.raises(CacheError, match="made by saswap"):
        TemplateCache.open(path, "abc", {"s": 1})


def test_failed_write_leaves_nothing(tmp_path):
    writer = CacheWriter(tmp_path / "t.stc", {})
    writer.add(FrameAnalysis(0, 0, 0.0, []))
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_cache_location(tmp_path, monkeypatch):
    monkeypatch.setenv("SASWAP_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("SASWAP_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x" / "saswap" / "templates"
    a = cache_path(tmp_path, "ab" * 32, {"crop": 384})
    assert a != cache_path(tmp_path, "ab" * 32, {"crop": 256}) and a != cache_path(tmp_path, "cd" * 32, {"crop": 384})
    assert a.parent == tmp_path and a.suffix == ".stc" and a.name.startswith("ab" * 12 + "-")


def test_two_way_smoothing_has_no_lag():
    """A face moving at constant speed with jitter: the two-way smoothing removes jitter without the
    forward filter's lag (the live tracker's One-Euro filter trails the motion)."""
    from saswap.face.temporal import FaceSmoother

    rng = np.random.default_rng(0)
    n = 60
    truth = np.arange(n) * 2.0 + 100
    frames = [[_face(0.0)] for _ in range(n)]
    for t in range(n):
        f = frames[t][0]
        f.landmarks[:, :2] = f.landmarks[:, :2] * 0 + truth[t] + rng.normal(0, 1.5, (478, 2))
        f.landmarks_68[:] = f.landmarks[:68, :2]
        f.landmarks_68[36], f.landmarks_68[45] = [truth[t] - 30, 0], [truth[t] + 30, 0]  # eye distance 60
    smooth = smooth_tracks(frames, 30.0, [False] * n)
    live = FaceSmoother(30.0)
    forward = [live(frames[t][0]) for t in range(n)]
    mid = slice(10, n - 10)
    err_two_way = np.array([smooth[t][0].landmarks[:, 0].mean() - truth[t] for t in range(n)])[mid]
    err_forward = np.array([forward[t].landmarks[:, 0].mean() - truth[t] for t in range(n)])[mid]
    raw_jitter = np.std(np.diff([frames[t][0].landmarks[100, 0] for t in range(n)], 2))
    jitter = np.std(np.diff([smooth[t][0].landmarks[100, 0] for t in range(n)], 2))
    assert abs(err_two_way.mean()) < 0.3 * abs(err_forward.mean()), (err_two_way.mean(), err_forward.mean())
    assert jitter < 0.5 * raw_jitter


def test_a_lock_file_this_user_may_not_write_is_locked_read_only(tmp_path, monkeypatch):
    """In a shared cache folder the lock file another user made cannot be opened for writing: the lock is taken
    through a read-only handle, and it still keeps out a second holder."""
    fcntl = pytest.importorskip("fcntl")
    from saswap.pipelines import cache

    path = tmp_path / "x.stc"
    lock = tmp_path / "x.stc.lock"
    lock.write_bytes(b"")
    modes = []

    def guarded_open(file, mode="r", *args, **kwargs):
        modes.append(mode)
        if mode != "rb":
            raise PermissionError(13, "Permission denied", str(file))
        return open(file, mode, *args, **kwargs)

    monkeypatch.setattr(cache, "open", guarded_open, raising=False)
    with cache.writer_lock(path):
        with open(lock, "rb") as other, pytest.raises(BlockingIOError):
            fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert modes == ["a+b", "rb"]
    with open(lock, "rb") as other:  # released
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
