"""Streaming video I/O: probing, reading, atomic writing with timing, rotation, colour and audio kept."""

from __future__ import annotations

import json
import logging
import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from av.video.reformatter import Interpolation
from conftest import data_path

from saswap.errors import InvalidVideoError
from saswap.videoio import (
    DEFAULT_BFRAMES,
    VIDEO_TAG_KEY,
    VideoInfo,
    VideoReader,
    VideoWriter,
    _coded_box,  # the display -> coded box mapping under rotation
    is_video_file,
    probe_video,
    read_video_tag,
)

REAL = ("videos", "liveportrait__d8.mp4")


def _pattern(i: int, w: int, h: int) -> np.ndarray:
    """A smooth frame with a moving square, so every frame differs and compresses realistically."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), np.full_like(xx, 90)], -1).astype(np.uint8)
    s = max(4, min(w, h) // 4)
    x0 = (i * 3) % max(1, w - s)
    img[h // 4 : h // 4 + s, x0 : x0 + s] = (240, 30, 200)
    return img


def make_clip(
    path: Path,
    w: int = 64,
    h: int = 48,
    n: int = 10,
    fps: int = 30,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    rotation: int = 0,
    audio_seconds: float = 0.0,
    video: bool = True,
    options: dict[str, str] | None = None,
    faststart: bool = False,
    sar: Fraction | None = None,
    audio_streams: int = 1,
) -> Path:
    """Write a synthetic clip with PyAV; ``rotation`` is clockwise degrees, ``pts`` in ``time_base``."""
    opts = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=opts) as c:
        vs = None
        if video:
            vs = c.add_stream(codec, rate=fps)
            vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
            fast = {"preset": "ultrafast"} if codec.startswith("libx26") else {}
            vs.options = {**fast, **(options or {})}
            if time_base is not None:
                vs.time_base = time_base
                vs.codec_context.time_base = time_base
            if rotation:
                vs.set_display_rotation(-rotation)
            if sar is not None:
                vs.codec_context.sample_aspect_ratio = sar
        audio = [c.add_stream("aac", rate=44100) for _ in range(audio_streams if audio_seconds else 0)]
        for aus in audio:
            aus.codec_context.layout = "mono"
        for aus in audio:
            t = np.arange(int(audio_seconds * 44100)) / 44100
            samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for k in range(0, len(samples), 1024):
                frame = av.AudioFrame.from_ndarray(samples[None, k : k + 1024], format="fltp", layout="mono")
                frame.sample_rate, frame.pts = 44100, k
                c.mux(aus.encode(frame))
            c.mux(aus.encode(None))
        if vs is not None:
            for i in range(n if video else 0):
                frame = av.VideoFrame.from_ndarray(_pattern(i, w, h), format="rgb24")
                if pts is not None:
                    frame.pts, frame.time_base = pts[i], time_base
                c.mux(vs.encode(frame))
            c.mux(vs.encode(None))
    return path


EXACT = Interpolation.BILINEAR | Interpolation.FULL_CHR_H_INT | Interpolation.ACCURATE_RND


def decode_all(path: Path, limit: int | None = None) -> tuple[list[np.ndarray], list[int]]:
    """Coded-orientation RGB frames (swscale's exact conversion) and pts, decoded with plain PyAV."""
    images, pts = [], []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            if limit is not None and len(images) >= limit:
                break
            images.append(frame.reformat(format="rgb24", interpolation=EXACT).to_ndarray())
            pts.append(frame.pts)
    return images, pts


def audio_packets(path: Path) -> list[av.Packet]:
    with av.open(str(path)) as c:
        return [p for p in c.demux(audio=0) if p.size]


# ------------------------------------------------------------------------------------------ probing


def test_probe_synthetic(tmp_path):
    clip = make_clip(tmp_path / "a.mp4", 64, 48, n=12, fps=24)
    info = probe_video(clip)
    assert isinstance(info, VideoInfo)
    assert (info.width, info.height, info.fps, info.frame_count) == (64, 48, 24.0, 12)
    assert info.duration == pytest.approx(0.5, abs=0.05)
    assert (info.rotation, info.has_audio, info.audio_codec) == (0, False, None)
    assert (info.codec, info.pix_fmt, info.bit_depth) == ("h264", "yuv420p", 8)
    assert json.loads(json.dumps(info.to_dict()))["path"] == str(clip)


def test_probe_real_clip():
    info = probe_video(data_path(*REAL))
    assert (info.width, info.height, info.fps, info.rotation) == (480, 480, 30.0, 0)
    assert info.has_audio and info.audio_codec == "aac"
    assert info.frame_count == 275


# ------------------------------------------------------------------------------------------ round trip


@pytest.mark.parametrize("size", [(64, 48), (641, 479)])
def test_round_trip_keeps_count_fps_size_duration(tmp_path, size):
    w, h = size
    clip = make_clip(tmp_path / "in.mkv", w, h, n=8, fps=25, codec="libvpx-vp9" if w % 2 else "libx264")
    out = tmp_path / "out.mp4"
    with VideoReader(clip) as reader, VideoWriter(out, like=reader) as writer:
        for frame in reader:
            assert frame.image.shape == (h, w, 3) and frame.image.flags.c_contiguous
            writer.write(frame.image, frame)
    assert writer.frames_written == 8
    a, b = probe_video(clip), probe_video(out)
    assert (b.width, b.height, b.fps, b.frame_count) == (w, h, 25.0, 8)
    assert b.duration == pytest.approx(a.duration, abs=0.05)
    images, _ = decode_all(out)
    assert len(images) == 8 and images[0].shape == (h, w, 3)  # decoded size exactly the input size
    if w % 2:
        assert b.pix_fmt == "yuv444p"  # H.264 cannot code odd sizes in 4:2:0
    src, _ = decode_all(clip)
    assert np.abs(images[3].astype(int) - src[3]).mean() < 3


def test_writer_without_like_and_tag(tmp_path):
    out = tmp_path / "new.mp4"
    tag = {"synthetic": True, "generator": "saswap"}
    with VideoWriter(out, width=96, height=64, fps=29.97, metadata={VIDEO_TAG_KEY: json.dumps(tag)}) as writer:
        for i in range(5):
            writer.write(_pattern(i, 96, 64))
    info = probe_video(out)
    assert (info.width, info.height, info.frame_count) == (96, 64, 5)
    assert info.fps == pytest.approx(29.97, abs=1e-3)
    assert read_video_tag(out) == tag
    with av.open(str(out)) as c:
        assert c.metadata["comment"] == "saswap:" + json.dumps(tag)
    images, _ = decode_all(out)
    assert np.abs(images[2].astype(int) - _pattern(2, 96, 64)).mean() < 3  # colours kept (BT.709 both ways)


def test_read_video_tag_mkv_and_none(tmp_path):
    out = tmp_path / "tagged.mkv"
    with VideoWriter(out, width=32, height=32, fps=10, metadata={VIDEO_TAG_KEY: '{"v": 1}'}) as writer:
        writer.write(np.zeros((32, 32, 3), np.uint8))
    assert read_video_tag(out) == {"v": 1}  # Matroska upper-cases keys
    assert read_video_tag(make_clip(tmp_path / "plain.mp4")) is None
    with pytest.raises(InvalidVideoError, match="no such file"):
        read_video_tag(tmp_path / "missing.mp4")


def test_vfr_pts_kept(tmp_path):
    tb = Fraction(1, 1000)
    pts = [0, 33, 50, 120, 130, 200, 260, 270, 400, 433]
    clip = make_clip(tmp_path / "vfr.mp4", pts=pts, time_base=tb, options={"bf": "0"})
    _, got_in = decode_all(clip)
    with av.open(str(clip)) as c:
        in_tb = c.streams.video[0].time_base
    assert [Fraction(p) * in_tb for p in got_in] == [Fraction(p) * tb for p in pts]  # the clip really is VFR
    out = tmp_path / "out.mp4"
    with VideoReader(clip) as reader, VideoWriter(out, like=reader) as writer:
        times = []
        for frame in reader:
            times.append(frame.time)
            writer.write(None, frame)
    assert times == pytest.approx([p / 1000 for p in pts])
    _, got = decode_all(out)
    with av.open(str(out)) as c:
        out_tb = c.streams.video[0].time_base
    assert [Fraction(p) * out_tb for p in got] == [Fraction(p) * tb for p in pts]


def test_exact_and_fast_rgb(tmp_path):
    clip = make_clip(tmp_path / "a.mp4", 96, 64, n=3)
    with VideoReader(clip) as reader:
        frame = next(reader)
    raw = frame.raw
    planes = [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width].astype(float) for p in raw.planes]
    y = (planes[0] - 16) * 255 / 219
    u, v = ((p.repeat(2, 0).repeat(2, 1) - 128) * 255 / 224 for p in planes[1:])
    reference = np.stack([y + 1.402 * v, y - 0.344136 * u - 0.714136 * v, y + 1.772 * u], -1)  # BT.601, limited
    reference = np.clip(reference, 0, 255)  # chroma taken per 2x2 block here, interpolated by the reader
    assert abs((frame.image - reference).mean()) < 0.2  # unbiased
    with VideoReader(clip, exact_rgb=False) as reader:
        fast = next(reader)
    np.testing.assert_array_equal(fast.image, fast.raw.to_ndarray(format="rgb24"))  # PyAV's default conversion
    assert (fast.image - reference).mean() < -0.5  # which is darker


# ------------------------------------------------------------------------------------------ rotation


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_coded_box_matches_rot90(rotation):
    rng = np.random.default_rng(rotation)
    display = rng.integers(0, 255, (30, 50))
    coded = np.rot90(display, k=rotation // 90)
    x1, y1, x2, y2 = 7, 3, 41, 19
    cx1, cy1, cx2, cy2 = _coded_box((x1, y1, x2, y2), rotation, 50, 30)
    np.testing.assert_array_equal(coded[cy1:cy2, cx1:cx2], np.rot90(display[y1:y2, x1:x2], k=rotation // 90))


def test_rotation_kept_and_box_in_display_coordinates(tmp_path):
    clip = make_clip(tmp_path / "rot.mp4", 64, 48, n=6, rotation=90)
    info = probe_video(clip)
    assert (info.rotation, info.width, info.height) == (90, 48, 64)
    coded, _ = decode_all(clip)
    out = tmp_path / "out.mp4"
    box = (10, 20, 30, 44)  # x1, y1, x2, y2 in the upright (48 wide, 64 high) picture
    with VideoReader(clip) as reader, VideoWriter(out, like=reader, crf=0) as writer:
        for frame in reader:
            assert frame.image.shape == (64, 48, 3)
            np.testing.assert_array_equal(frame.image, np.rot90(coded[frame.index], k=-1))  # upright
            image = frame.image.copy()
            image[20:44, 10:30] = (0, 255, 0)
            writer.write(image, frame, box=box) if frame.index else writer.write(None, frame)
    got = probe_video(out)
    assert (got.rotation, got.width, got.height, got.frame_count) == (90, 48, 64, 6)
    with VideoReader(out) as reader:
        frames = list(reader)
    upright_in = np.rot90(coded[2], k=-1).astype(int)
    changed = frames[2].image.astype(int)
    outside = np.ones((64, 48), bool)
    outside[18:46, 8:32] = False  # the box widened by 2 px (chroma upsampling reaches 1 px beyond it)
    assert np.abs(changed - upright_in)[outside].max() <= 1
    assert np.abs(changed[22:42, 12:28] - (0, 255, 0)).max() <= 3
    np.testing.assert_array_equal(frames[0].image, np.rot90(coded[0], k=-1))  # pass-through, lossless


def test_anamorphic_frames_are_read_in_square_pixels_and_pasted_back(tmp_path):
    """A 48x48 clip of pixels 4/3 wide is shown 64x48: frames come out 64x48, so a face keeps its true shape, and a
    pasted box lands on the coded pixels under it while every other coded pixel stays as it was."""
    clip = make_clip(tmp_path / "in.mp4", 48, 48, n=3, sar=Fraction(4, 3))
    info = probe_video(clip)
    assert (info.width, info.height, info.pixel_aspect) == (64, 48, pytest.approx(4 / 3))
    coded, _ = decode_all(clip)
    out = tmp_path / "out.mp4"
    with VideoReader(clip) as reader, VideoWriter(out, like=reader, crf=0) as writer:
        assert reader.sample_aspect == Fraction(4, 3)
        for frame in reader:
            assert frame.image.shape == (48, 64, 3)
            stretched = cv2.resize(coded[frame.index], (64, 48), interpolation=cv2.INTER_CUBIC)
            assert np.abs(frame.image.astype(int) - stretched).max() <= 1
            image = frame.image.copy()
            image[12:30, 16:40] = (0, 255, 0)  # display x 16..40 = coded x 12..30
            mask = np.zeros((48, 64), bool)
            mask[12:30, 16:40] = True
            writer.write(image, frame, box=(8, 8, 48, 36), mask=mask)
    got, _ = decode_all(out)
    outside = np.ones((48, 48), bool)
    outside[10:32, 10:32] = False  # the changed coded pixels, widened by chroma sharing and resampling
    for before, after in zip(coded, got):
        assert np.abs(after.astype(int) - before)[outside].max() <= 1
        assert np.abs(after[14:28, 14:28].astype(int) - (0, 255, 0)).max() <= 8  # green through limited-range YUV


@pytest.mark.parametrize(("coded", "sar"), [((48, 36), Fraction(4, 3)), ((32, 30), Fraction(15, 16)), ((44, 30), Fraction(32, 27))])
def test_an_anamorphic_box_is_resampled_as_the_whole_picture_would_be(tmp_path, coded, sar):
    """The writer resamples only the square-pixel region over a pasted box, from corners where the two pixel grids
    meet: every box equals that box of the whole picture resampled (4:3 pixels, d9's 15:16, NTSC's 32:27, whose
    52-wide square picture of 44 coded columns meets the coded grid every 11 columns)."""
    clip = make_clip(tmp_path / "in.mp4", *coded, n=1, sar=sar)
    rng = np.random.default_rng(0)
    with VideoReader(clip) as reader:
        writer = VideoWriter(tmp_path / "out.mp4", like=reader)
        image = rng.integers(0, 256, (writer.height, writer.width, 3), dtype=np.uint8)
        whole = cv2.resize(image, writer._coded, interpolation=cv2.INTER_AREA)
        (cw, ch), (gx, gy) = writer._coded, writer._grid
        for _ in range(20):
            x1, x2 = sorted(rng.integers(0, cw // gx, 2) * gx)
            y1, y2 = sorted(rng.integers(0, ch // gy, 2) * gy)
            x2, y2 = min(cw, x2 + gx), min(ch, y2 + gy)
            np.testing.assert_array_equal(writer._coded_part(image, x1, y1, x2, y2), whole[y1:y2, x1:x2])
        writer.abort()


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_anamorphic_pixel_shape_kept(tmp_path, suffix):
    """A clip of non-square pixels (480x480 coded, shown 640x480) keeps its sample aspect ratio, or a player
    would show the swapped video squeezed; square-pixel clips get none written."""
    clip = make_clip(tmp_path / "in.mp4", 48, 48, n=4, sar=Fraction(4, 3))
    plain = make_clip(tmp_path / "plain.mp4", 48, 48, n=4)
    for src, want in ((clip, Fraction(4, 3)), (plain, None)):
        out = tmp_path / f"out_{src.stem}{suffix}"
        with VideoReader(src) as reader, VideoWriter(out, like=reader) as writer:
            for frame in reader:
                writer.write(frame.image, frame)
        with av.open(str(out)) as c:
            got = c.streams.video[0].sample_aspect_ratio
        assert (got if got and got != 1 else None) == want, (src.name, suffix, got)


def test_a_picture_that_changes_size_mid_stream_is_scaled_to_the_first_size(tmp_path, caplog):
    """A call or screen recording changes its picture size mid-stream (VP9 key frames of a new size): frames come out
    at the first frame's size, the output keeps one size and every frame, and the change is said once per file."""
    first = make_clip(tmp_path / "a.webm", 64, 48, n=6, codec="libvpx-vp9")
    second = make_clip(tmp_path / "b.webm", 32, 24, n=6, codec="libvpx-vp9")
    clip = tmp_path / "changes.webm"
    with av.open(str(first)) as a, av.open(str(second)) as b, av.open(str(clip), "w") as out:
        stream = out.add_stream_from_template(a.streams.video[0])
        last = 0
        for packet in a.demux(a.streams.video[0]):
            if packet.size:
                packet.stream, last = stream, max(last, packet.pts)
                out.mux(packet)
        step = round(1 / (30 * a.streams.video[0].time_base))
        for packet in b.demux(b.streams.video[0]):
            if packet.size:
                packet.pts, packet.dts, packet.stream = packet.pts + last + step, packet.dts + last + step, stream
                out.mux(packet)
    small, _ = decode_all(second)
    result = tmp_path / "out.mp4"
    with caplog.at_level(logging.WARNING, logger="saswap"):
        for _ in range(2):  # a second reader of the file (as a swap's analysis and its writing pass) says nothing
            with VideoReader(clip) as reader, VideoWriter(result, like=reader, crf=0) as writer:
                frames = list(reader)
                for frame in frames:
                    writer.write(None if frame.index % 2 else frame.image, frame)
    said = [r for r in caplog.records if "changes size from 64x48 to 32x24 at 0.20 s" in r.getMessage()]
    assert len(said) == 1
    assert [f.image.shape for f in frames] == [(48, 64, 3)] * 12
    scaled = cv2.resize(small[3], (64, 48), interpolation=cv2.INTER_LINEAR)
    assert np.abs(frames[9].image.astype(int) - scaled).mean() < 6  # the same picture, scaled up
    info = probe_video(result)
    assert (info.width, info.height, info.frame_count) == (64, 48, 12)
    with av.open(str(result)) as c:
        planes = [f.to_ndarray() for f in c.decode(video=0)]  # YUV 4:2:0, (48 * 3 / 2, 64)
    assert all(p.shape == (72, 64) for p in planes)
    for i in (7, 9, 11):  # passed through at the first size, losslessly
        np.testing.assert_array_equal(planes[i], frames[i].raw.to_ndarray())


def test_only_the_first_audio_stream_is_kept_and_said(tmp_path, caplog):
    clip = make_clip(tmp_path / "in.mkv", n=6, audio_seconds=0.3, audio_streams=2)
    out = tmp_path / "out.mp4"
    with caplog.at_level(logging.WARNING, logger="saswap"):
        with VideoReader(clip) as reader, VideoWriter(out, like=reader) as writer:
            for frame in reader:
                writer.write(frame.image, frame)
    with av.open(str(out)) as c:
        assert len(c.streams.audio) == 1
    assert any("2 audio streams; only the first (aac) is kept" in r.getMessage() for r in caplog.records)


def test_surround_audio_keeps_its_channels_when_re_encoded(tmp_path):
    """5.1 AAC into WebM is re-encoded to Opus in 5.1, not folded down to stereo."""
    clip = make_clip(tmp_path / "in.mp4", n=15, audio_seconds=0.0)
    surround = tmp_path / "surround.mp4"
    with av.open(str(clip)) as src, av.open(str(surround), "w") as out:
        video = out.add_stream_from_template(src.streams.video[0])
        audio = out.add_stream("aac", rate=48000)
        audio.codec_context.layout = "5.1"
        for packet in src.demux(src.streams.video[0]):
            if packet.size:
                packet.stream = video
                out.mux(packet)
        for k in range(0, 24000, 1024):
            samples = np.tile(0.3 * np.sin(np.arange(k, k + 1024) / 10.0), (6, 1)).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="5.1")
            frame.sample_rate, frame.pts = 48000, k
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
    result = tmp_path / "out.webm"
    with VideoReader(surround) as reader, VideoWriter(result, like=reader) as writer:
        for frame in reader:
            writer.write(None, frame)
    with av.open(str(result)) as c:
        stream = c.streams.audio[0]
        assert (stream.codec_context.name, stream.codec_context.layout.nb_channels) == ("opus", 6)


def test_webm_reencodes_audio_to_opus(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", n=15, audio_seconds=0.5)
    out = tmp_path / "out.webm"
    with VideoReader(clip) as reader, VideoWriter(out, like=reader) as writer:  # VP9 + Opus: AAC cannot go in WebM
        for frame in reader:
            writer.write(frame.image, frame)
    info = probe_video(out)
    assert (info.codec, info.audio_codec, info.frame_count) == ("vp9", "opus", 15)
    with pytest.raises(InvalidVideoError, match="WebM holds only VP8, VP9 or AV1"):
        VideoWriter(tmp_path / "x.webm", width=32, height=32, fps=10, codec="libx264")


# ------------------------------------------------------------------------------------------ pass-through


def test_passthrough_crf0_bit_exact_and_box(tmp_path):
    src = data_path(*REAL)
    out = tmp_path / "pass.mp4"
    box = (201, 151, 331, 297)  # odd coordinates on purpose
    with VideoReader(src, end=20 / 30) as reader, VideoWriter(out, like=reader, crf=0, audio=False) as writer:
        inputs = []
        for frame in reader:
            inputs.append(frame.image)
            if frame.index % 3 == 0:
                writer.write(None, frame)
            elif frame.index % 3 == 1:  # unchanged box: a YUV -> RGB -> YUV round trip of the box only
                writer.write(frame.image, frame, box=box)
            else:
                image = frame.image.copy()
                image[151:297, 201:331] = 255 - image[151:297, 201:331]
                writer.write(image, frame, box=box)
    assert len(inputs) == 20
    with VideoReader(out) as reader:
        outputs = [f.image.astype(int) for f in reader]
    assert len(outputs) == 20
    outside = np.ones((480, 480), bool)
    outside[148:300, 198:334] = False
    for i, (a, b) in enumerate(zip(inputs, outputs)):
        diff = np.abs(b - a)
        if i % 3 == 0:
            assert diff.max() == 0  # lossless and no RGB round trip at all
        else:
            assert diff[outside].max() <= 1
        if i % 3 == 1:
            assert diff[151:297, 201:331].max() <= 3 and diff[151:297, 201:331].mean() < 0.2
        if i % 3 == 2:
            assert np.abs(b[155:293, 205:327] - (255 - a[155:293, 205:327])).mean() < 2


def test_box_with_mask_changes_only_masked_pixels(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", 96, 64, n=3)
    out = tmp_path / "out.mp4"
    mask = np.zeros((64, 96), np.uint8)
    mask[20:30, 40:50] = 1  # even-aligned, so no chroma sample is shared with unmasked pixels
    with VideoReader(clip) as reader, VideoWriter(out, like=reader, crf=0) as writer:
        inputs = []
        for frame in reader:
            inputs.append(frame.image)
            writer.write(np.zeros_like(frame.image), frame, box=(10, 10, 80, 50), mask=mask)
        with pytest.raises(InvalidVideoError, match=r"mask must have shape \(64, 96\)"):
            writer.write(frame.image, frame, box=(10, 10, 80, 50), mask=mask[:10])
    with VideoReader(out) as reader:
        outputs = [f.image.astype(int) for f in reader]
    assert len(outputs) == 3
    keep = np.ones((64, 96), bool)
    keep[18:32, 38:52] = False  # the mask and a 2-pixel ring (chroma interpolation)
    for a, b in zip(inputs, outputs):
        assert np.abs(b - a)[keep].max() <= 1  # black image inside the box, but unmasked: unchanged
        assert b[22:28, 42:48].max() <= 3  # masked: black


def test_high_bit_depth_and_444_input_written_as_8bit_420(tmp_path):
    for pix_fmt, depth in (("yuv420p10le", 10), ("yuv444p", 8)):
        clip = make_clip(tmp_path / f"{pix_fmt}.mkv", 64, 48, n=4, pix_fmt=pix_fmt)
        info = probe_video(clip)
        assert (info.pix_fmt, info.bit_depth) == (pix_fmt, depth)
        out = tmp_path / f"{pix_fmt}-out.mp4"
        with VideoReader(clip) as reader, VideoWriter(out, like=reader) as writer:
            for frame in reader:
                assert frame.image.dtype == np.uint8 and frame.image.shape == (48, 64, 3)
                assert np.abs(frame.image.astype(int) - _pattern(frame.index, 64, 48)).mean() < 3
                writer.write(None if frame.index % 2 else frame.image, frame)
        got = probe_video(out)
        assert (got.pix_fmt, got.bit_depth, got.frame_count) == ("yuv420p", 8, 4)
        images, _ = decode_all(out)
        assert np.abs(images[1].astype(int) - _pattern(1, 64, 48)).mean() < 4


# ------------------------------------------------------------------------------------------ audio


def test_audio_copied_without_reencoding(tmp_path):
    clip = make_clip(tmp_path / "av.mp4", n=30, audio_seconds=1.0)
    out = tmp_path / "out.mp4"
    with VideoReader(clip) as reader, VideoWriter(out, like=reader) as writer:
        for frame in reader:
            writer.write(frame.image, frame)
    info = probe_video(out)
    assert info.has_audio and info.audio_codec == "aac"
    a, b = audio_packets(clip), audio_packets(out)
    assert abs(len(a) - len(b)) <= 1 and len(b) >= 40
    assert [bytes(p) for p in a[:5]] == [bytes(p) for p in b[:5]]  # the very same AAC packets


def test_audio_and_video_trimmed(tmp_path):
    clip = make_clip(tmp_path / "av.mp4", n=90, audio_seconds=3.0)
    out = tmp_path / "cut.mp4"
    with VideoReader(clip, start=1.0, end=2.0) as reader, VideoWriter(out, like=reader) as writer:
        times = []
        for frame in reader:
            times.append(frame.time)
            writer.write(None, frame)
    assert len(times) == 30 and times[0] == pytest.approx(1.0) and times[-1] < 2.0
    _, pts = decode_all(out)
    assert pts[0] == 0 and len(pts) == 30
    packets = audio_packets(out)
    with av.open(str(out)) as c:
        atb = c.streams.audio[0].time_base
    starts = [float(p.pts * atb) for p in packets]
    assert 0 <= min(starts) < 0.03 and max(starts) < 1.0
    assert 40 <= len(packets) <= 45  # one second of 1024-sample AAC packets at 44.1 kHz
    src = {bytes(p) for p in audio_packets(clip)}
    assert all(bytes(p) in src for p in packets)  # copied, not re-encoded


def test_real_clip_first_frames_with_audio(tmp_path):
    src = data_path(*REAL)
    out = tmp_path / "out.mp4"
    with VideoReader(src, end=20 / 30) as reader, VideoWriter(out, like=reader) as writer:
        for frame in reader:
            writer.write(frame.image, frame)
    info = probe_video(out)
    assert (info.width, info.height, info.fps, info.frame_count) == (480, 480, 30.0, 20)
    assert info.audio_codec == "aac"
    assert 25 <= len(audio_packets(out)) <= 31  # 2/3 s of 1024-sample packets at 44.1 kHz


# ------------------------------------------------------------------------------------------ bad input


def test_bad_inputs(tmp_path):
    with pytest.raises(InvalidVideoError, match=r"missing\.mp4: no such file"):
        probe_video(tmp_path / "missing.mp4")
    with pytest.raises(InvalidVideoError, match="is a folder"):
        probe_video(tmp_path)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(InvalidVideoError, match=r"empty\.mp4: the file is empty"):
        VideoReader(tmp_path / "empty.mp4")
    (tmp_path / "text.mp4").write_text("not a video at all\n" * 20)
    with pytest.raises(InvalidVideoError, match=r"text\.mp4: not a video file"):
        probe_video(tmp_path / "text.mp4")
    audio_only = make_clip(tmp_path / "audio.mp4", video=False, audio_seconds=0.5)
    with pytest.raises(InvalidVideoError, match=r"audio\.mp4: no video stream \(audio only\)"):
        probe_video(audio_only)
    zero = make_clip(tmp_path / "zero.mkv", n=0, audio_seconds=0.5)  # a video stream without frames
    with pytest.raises(InvalidVideoError, match=r"zero\.mkv: .*zero frames"):
        probe_video(zero)
    from PIL import Image

    Image.fromarray(_pattern(0, 32, 32)).save(tmp_path / "still.png")
    os.replace(tmp_path / "still.png", tmp_path / "still.mp4")
    with pytest.raises(InvalidVideoError, match=r"still\.mp4: is an image file"):
        probe_video(tmp_path / "still.mp4")


def test_bad_ranges(tmp_path):
    clip = make_clip(tmp_path / "a.mp4")
    with pytest.raises(InvalidVideoError, match="must be before end"):
        VideoReader(clip, start=0.2, end=0.1)
    with pytest.raises(ValueError, match=">= 0"):
        VideoReader(clip, start=-1.0)
    with pytest.raises(InvalidVideoError, match="past the end"):
        VideoReader(clip, start=5.0)


def test_truncated_with_index_at_front_decodes_up_to_the_cut(tmp_path, caplog):
    clip = make_clip(tmp_path / "full.mp4", 160, 120, n=60, faststart=True)
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with VideoReader(cut) as reader:
        n = sum(1 for _ in reader)
    assert 5 <= n < 60


def test_corrupt_data_mid_file_stops_with_a_warning(tmp_path, caplog):
    clip = make_clip(tmp_path / "full.mp4", 160, 120, n=60, faststart=True)
    data = bytearray(clip.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 4000] = np.random.default_rng(0).integers(0, 255, 4000, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    with caplog.at_level("WARNING", logger="saswap.videoio"), VideoReader(bad) as reader:
        n = sum(1 for _ in reader)
    assert 5 <= n < 60
    assert "bad.mp4: decoding stopped after" in caplog.text


def test_truncated_real_clip_is_a_clear_error(tmp_path):
    data = data_path(*REAL).read_bytes()  # its index (moov) is at the end: half a file has none
    cut = tmp_path / "half.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidVideoError, match=r"half\.mp4: truncated or corrupt"):
        probe_video(cut)


def test_writer_errors_name_the_file(tmp_path, monkeypatch):
    with pytest.raises(InvalidVideoError, match=r"out\.avi: unsupported video format .*\.mp4"):
        VideoWriter(tmp_path / "out.avi", width=32, height=32, fps=10)
    with pytest.raises(InvalidVideoError, match=r"out\.mp4: unknown or unavailable video encoder 'nope'.*libx264"):
        VideoWriter(tmp_path / "out.mp4", width=32, height=32, fps=10, codec="nope")
    with pytest.raises(InvalidVideoError, match="does not exist"):
        VideoWriter(tmp_path / "no" / "out.mp4", width=32, height=32, fps=10)
    with VideoWriter(tmp_path / "out.mp4", width=32, height=32, fps=10) as writer:
        with pytest.raises(InvalidVideoError, match=r"out\.mp4: expected an RGB uint8 image of shape \(32, 32, 3\)"):
            writer.write(np.zeros((32, 32, 3), np.float32))
        writer.write(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(InvalidVideoError, match="no frame was written"):
        VideoWriter(tmp_path / "empty.mp4", width=32, height=32, fps=10).close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]

    import saswap.videoio as videoio

    def refuse(folder, name):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(videoio, "_create_temporary", refuse)
    with pytest.raises(InvalidVideoError, match=r"denied\.mp4: cannot write to .*Permission denied"):
        VideoWriter(tmp_path / "denied.mp4", width=32, height=32, fps=10)


def test_unwritable_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as a user who can write into read-only folders (root)")
        with pytest.raises(InvalidVideoError, match=r"out\.mp4: cannot write to"):
            VideoWriter(folder / "out.mp4", width=32, height=32, fps=10)
    finally:
        folder.chmod(0o700)


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_exception_inside_with_leaves_no_file(tmp_path, error):
    clip = make_clip(tmp_path / "in.mp4", audio_seconds=0.4)
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(error):
        with VideoReader(clip) as reader, VideoWriter(folder / "out.mp4", like=reader) as writer:
            for frame in reader:
                writer.write(frame.image, frame)
                if frame.index == 5:
                    raise error()
    assert list(folder.iterdir()) == []


# ------------------------------------------------------------------------------------------ detection


def test_is_video_file(tmp_path):
    clip = make_clip(tmp_path / "a.mp4")
    assert is_video_file(clip)
    renamed = tmp_path / "a.bin"
    renamed.write_bytes(clip.read_bytes())
    assert is_video_file(renamed)
    from PIL import Image

    Image.fromarray(_pattern(0, 32, 32)).save(tmp_path / "p.png")
    os.replace(tmp_path / "p.png", tmp_path / "p.mp4")
    assert not is_video_file(tmp_path / "p.mp4")
    (tmp_path / "t.mp4").write_text("hello")
    assert not is_video_file(tmp_path / "t.mp4")
    assert not is_video_file(tmp_path / "missing.mp4")
    assert not is_video_file(make_clip(tmp_path / "sound.mp4", video=False, audio_seconds=0.3))


def test_an_animated_gif_is_a_video_and_a_gif_is_written_with_its_timing_loop_and_tag(tmp_path):
    """An animated GIF (a meme template) is read as a video, a one-frame GIF stays a picture; :class:`GifWriter` keeps
    each frame's own duration (a variable one too), the loop count and the provenance tag, and leaves nothing on an
    error."""
    from PIL import Image

    from saswap.videoio import GifWriter, open_video_writer

    frames = [Image.fromarray(_pattern(i, 48, 32)) for i in range(5)]
    durations = [40, 40, 120, 40, 60]  # ms: one frame held three times as long
    frames[0].save(tmp_path / "in.gif", save_all=True, append_images=frames[1:], duration=durations, loop=3)
    frames[0].save(tmp_path / "still.gif")
    assert is_video_file(tmp_path / "in.gif") and not is_video_file(tmp_path / "still.gif")
    with pytest.raises(InvalidVideoError, match="is an image file"):
        probe_video(tmp_path / "still.gif")
    assert probe_video(tmp_path / "in.gif").frame_count == 5
    tag = {"synthetic": True, "generator": "saswap"}
    with VideoReader(tmp_path / "in.gif") as reader:
        writer = open_video_writer(tmp_path / "out.gif", like=reader, metadata={VIDEO_TAG_KEY: json.dumps(tag)})
        assert isinstance(writer, GifWriter)
        with writer:
            for frame in reader:
                writer.write(255 - frame.image if frame.index == 2 else None, frame)
    out = Image.open(tmp_path / "out.gif")
    assert out.n_frames == 5 and out.info["loop"] == 3
    read = []
    for k in range(5):
        out.seek(k)
        read.append(out.info["duration"])
        picture = np.asarray(out.convert("RGB"), np.int16)
        expected = _pattern(k, 48, 32).astype(np.int16)
        expected = 255 - expected if k == 2 else expected
        assert np.abs(picture - expected).mean() < 6  # 256 colours a frame, dithered
    assert read == durations
    assert read_video_tag(tmp_path / "out.gif") == tag
    with pytest.raises(RuntimeError), GifWriter(tmp_path / "bad.gif", width=48, height=32, fps=25) as writer:
        writer.write(_pattern(0, 48, 32))
        raise RuntimeError("stop")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.gif", "out.gif", "still.gif"]
    sticker = []  # a transparent GIF: a square on a clear background, moving
    for i in range(3):
        frame = np.zeros((32, 48, 4), np.uint8)
        frame[8:24, 4 + 8 * i : 20 + 8 * i] = (200, 60, 30, 255)
        sticker.append(Image.fromarray(frame, "RGBA"))
    sticker[0].save(tmp_path / "sticker.gif", save_all=True, append_images=sticker[1:], duration=50, disposal=2)
    with VideoReader(tmp_path / "sticker.gif") as reader, GifWriter(tmp_path / "moved.gif", like=reader) as writer:
        for frame in reader:
            writer.write(None, frame)
    moved = Image.open(tmp_path / "moved.gif")
    for k in range(3):
        moved.seek(k)
        alpha = np.asarray(moved.convert("RGBA"))[..., 3]
        assert np.array_equal(alpha > 0, np.asarray(sticker[k])[..., 3] > 0), k  # clear where the template was
    with GifWriter(tmp_path / "fast.gif", width=48, height=32, fps=60) as writer:  # a 60-fps video written as GIF
        for i in range(12):
            writer.write(_pattern(i, 48, 32))
    fast = Image.open(tmp_path / "fast.gif")
    kept = []
    for k in range(fast.n_frames):
        fast.seek(k)
        kept.append(fast.info["duration"])
    assert min(kept) >= 20 and sum(kept) == 200 and fast.n_frames < 12  # none shown slowed down; the length kept
    import saswap.videoio as videoio

    videoio.GIF_MEMORY_LIMIT, limit = 3 * 48 * 32, videoio.GIF_MEMORY_LIMIT  # room for three frames
    try:
        with pytest.raises(InvalidVideoError, match="long.gif: too long for a GIF: 4 frames of 48x32"):
            with GifWriter(tmp_path / "long.gif", width=48, height=32, fps=25) as writer:
                for i in range(4):
                    writer.write(_pattern(i, 48, 32))
    finally:
        videoio.GIF_MEMORY_LIMIT = limit
    assert not (tmp_path / "long.gif").exists()


def test_every_entry_point_writes_videos_at_one_default_quality():
    """The swap's default crf is written out where importing PyAV is avoided: all must agree with DEFAULT_CRF."""
    import inspect

    from saswap.cli import build_parser
    from saswap.pipelines.batch import BatchSettings
    from saswap.pipelines.image import SaSwapPipeline
    from saswap.pipelines.video import swap_video
    from saswap.videoio import DEFAULT_CRF, VideoWriter

    defaults = {
        "swap_video": inspect.signature(swap_video).parameters["crf"].default,
        "SaSwapPipeline.swap_video": inspect.signature(SaSwapPipeline.swap_video).parameters["crf"].default,
        "VideoWriter": inspect.signature(VideoWriter).parameters["crf"].default,
        "BatchSettings": BatchSettings.__dataclass_fields__["crf"].default,
    }
    parser = build_parser()
    actions = parser._subparsers._group_actions
    subs = {c: next(a for a in actions if c in a.choices).choices[c] for c in ("swap", "batch")}
    defaults["saswap batch --crf"] = subs["batch"].get_default("crf")
    # swap's option is None when not given (a photo's swap names the video options given): swap_video's default applies
    assert subs["swap"].get_default("crf") is None
    assert defaults == {k: DEFAULT_CRF for k in defaults}


@pytest.mark.parametrize("codec", ["libx264", "libx265"])
def test_writer_codes_p_frames_only_by_default(tmp_path, codec):
    """No B-frames by default (their coarser quantisation made a swapped face pump in tone); bframes=None gives
    the encoder its own choice, which uses them on a real talking head."""
    import collections

    clip = data_path("videos", "liveportrait__d5.mp4")
    kinds = {}
    for bframes in (DEFAULT_BFRAMES, None):
        out = tmp_path / f"{bframes}.mp4"
        with VideoReader(clip, end=1.0) as reader, VideoWriter(out, like=reader, codec=codec, bframes=bframes) as writer:
            for frame in reader:
                writer.write(frame.image)
        with av.open(str(out)) as container:
            kinds[bframes] = collections.Counter(int(f.pict_type) for f in container.decode(video=0))
    b_frame = int(av.video.frame.PictureType.B)
    assert DEFAULT_BFRAMES == 0 and kinds[0][b_frame] == 0 and sum(kinds[0].values()) == 30
    assert kinds[None][b_frame] >= 10


def test_writer_rejects_a_bad_bframes_value(tmp_path):
    with pytest.raises(InvalidVideoError, match="bframes"):
        VideoWriter(tmp_path / "x.mp4", width=64, height=48, fps=25, bframes=-1)
    assert not list(tmp_path.iterdir())


def test_writer_rejects_a_crf_beyond_its_encoders_range(tmp_path):
    """x264 takes 0-51 (60 was passed on, silently), VP9 0-63."""
    with pytest.raises(InvalidVideoError, match=r"x.mp4: crf must lie in \[0, 51\] for libx264"):
        VideoWriter(tmp_path / "x.mp4", width=64, height=48, fps=25, crf=60)
    assert not list(tmp_path.iterdir())
    with VideoWriter(tmp_path / "y.webm", width=64, height=48, fps=25, crf=60) as writer:
        writer.write(np.zeros((48, 64, 3), np.uint8))
    assert (tmp_path / "y.webm").is_file()


def _avi_with_mp3(path: Path, n: int = 24, fps: int = 24) -> Path:
    """H.264 with B-frames and MP3 audio in AVI (what some cameras and old tools write)."""
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        vs.options = {"preset": "ultrafast", "bframes": "2"}
        aus = c.add_stream("libmp3lame", rate=44100)
        aus.codec_context.layout = "mono"
        t = np.arange(int(n / fps * 44100)) / 44100
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for k in range(0, len(samples), 1152):
            frame = av.AudioFrame.from_ndarray(samples[None, k : k + 1152], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 44100, k
            for p in aus.encode(frame):
                c.mux(p)
        for p in aus.encode(None):
            c.mux(p)
        for i in range(n):
            for p in vs.encode(av.VideoFrame.from_ndarray(_pattern(i, 64, 48), format="rgb24")):
                c.mux(p)
        for p in vs.encode(None):
            c.mux(p)
    return path


@pytest.mark.skipif("libmp3lame" not in av.codecs_available, reason="this PyAV build has no MP3 encoder")
@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_avi_with_b_frames_and_mp3_audio(tmp_path, suffix):
    """AVI stores no presentation times: the decoder labels a B-frame clip's frames (in display order) with decode-order
    times, late by its reordering delay; its MP3 audio (decoder "mp3float") was re-encoded with colliding timestamps,
    which the muxer refused (a traceback). Now the labels are put back in order and the delay taken off, MP3 is copied
    into MP4 and re-encoded (to Opus) for WebM."""
    clip = _avi_with_mp3(tmp_path / "in.avi")
    with VideoReader(clip) as reader:
        stamps = [f.time for f in reader]
    assert stamps == pytest.approx([i / 24 for i in range(24)], abs=1e-6)
    with VideoReader(clip, start=0.5) as reader:  # a trimmed read: the same clock
        assert [f.time for f in reader] == pytest.approx([i / 24 for i in range(12, 24)], abs=1e-6)
    out = tmp_path / f"out{suffix}"
    with VideoReader(clip) as reader, VideoWriter(out, like=reader) as writer:
        for frame in reader:
            writer.write(frame.image, frame)
    info = probe_video(out)
    assert info.frame_count == 24 and info.has_audio
    assert info.audio_codec in (("mp3float", "mp3") if suffix == ".mp4" else ("opus", "libopus"))
    assert abs(info.duration - 1.0) < 0.1
