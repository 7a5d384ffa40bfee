"""Sample photos from installed packages, and the template video made from one."""

from __future__ import annotations

import numpy as np
import pytest

from saswap.errors import InvalidImageError
from saswap.samples import load_sample, make_sample_video
from saswap.videoio import probe_video, sample_frames


def test_sample_video_pans_across_the_photo(tmp_path):
    out = make_sample_video(tmp_path / "pan.mp4", "t1", seconds=1.0, fps=8, width=320, height=180)
    info = probe_video(out)
    assert (info.width, info.height, info.frame_count, info.fps) == (320, 180, 8, 8.0)
    first, middle, last = (f.astype(np.float32) for f in sample_frames(out, 3))
    assert np.abs(first - last).mean() > 20  # the camera moved across the photo
    # each frame is a window of the photo: its colours are the photo's (not a blank or a border)
    photo = load_sample("t1").astype(np.float32)
    assert abs(middle.mean() - photo.mean()) < 25
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically


def test_sample_video_shows_the_photo_s_faces(tmp_path):
    from saswap.face import FaceAnalyzer

    out = make_sample_video(tmp_path / "pan.mp4", "t1", seconds=0.5, fps=4)
    analyzer = FaceAnalyzer()
    counts = [len(analyzer(frame)) for frame in sample_frames(out, 2)]
    assert all(3 <= c <= 6 for c in counts), counts  # the group photo's people, some at the window's edge


@pytest.mark.parametrize("kwargs", [{"width": 321}, {"height": 0}, {"seconds": 0}, {"fps": -1}])
def test_sample_video_bad_settings(tmp_path, kwargs):
    with pytest.raises(ValueError):
        make_sample_video(tmp_path / "pan.mp4", **kwargs)
    assert not list(tmp_path.iterdir())


def test_sample_video_unknown_photo(tmp_path):
    with pytest.raises(InvalidImageError, match="sample:nobody"):
        make_sample_video(tmp_path / "pan.mp4", "nobody")
    assert not list(tmp_path.iterdir())
