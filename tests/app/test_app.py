"""The web app (``saswap app``): API through gradio_client, visitor isolation, errors, templates, video
progress / queue / cancel, no outbound network, and a real browser (headless Chromium)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, own_source_nearer, write_video

from saswap import cli

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent


# -- helpers and fixtures -------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_clip(source: Path, out: Path, frames: int) -> Path:
    """The first ``frames`` frames of a video, re-encoded (a short clip for a quick test)."""
    import av

    with av.open(str(source)) as src, av.open(str(out), "w") as dst:
        stream = src.streams.video[0]
        enc = dst.add_stream("libx264", rate=int(round(float(stream.average_rate))))
        enc.width, enc.height, enc.pix_fmt = stream.codec_context.width, stream.codec_context.height, "yuv420p"
        for i, frame in enumerate(src.decode(video=0)):
            if i >= frames:
                break
            rgb = np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
            for packet in enc.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                dst.mux(packet)
        for packet in enc.encode():
            dst.mux(packet)
    return out


@pytest.fixture(scope="module")
def data() -> Path:
    if not (DATA / "images").is_dir() or not (DATA / "videos").is_dir():
        pytest.skip(f"test data folder {DATA} is absent (set SASWAP_TEST_DATA)")
    return DATA


@pytest.fixture(scope="module")
def running(data, tmp_path_factory):
    """The app on a free port with a template folder (one precomputed 12-frame template, one without a cache),
    limits of 3 s per video and 2 MB per upload. Its temporary folder must be gone after it stops."""
    pytest.importorskip("gradio", reason="the web app needs gradio (pip install 'saswap[app]')")
    from saswap.app import AppSettings, launch
    from saswap.pipelines.image import SaSwapPipeline

    root = tmp_path_factory.mktemp("app")
    templates, cache = root / "templates", root / "cache"
    templates.mkdir()
    clip = write_clip(data / "videos" / "liveportrait__d5.mp4", templates / "talking.mp4", 12)
    SaSwapPipeline.from_pretrained("saswap-geometric").precompute(clip, cache, progress=False)
    write_clip(data / "videos" / "liveportrait__d7.mp4", templates / "no-cache.mp4", 6)
    settings = AppSettings(templates=templates, cache_dir=cache, max_video_seconds=3.0, max_upload_mb=2.0)
    app = launch(settings, port=free_port(), block=False)
    yield app
    app.close()
    assert not app.workdir.exists(), "the app's temporary folder outlived it"


def client(running, tmp_path=None):
    from gradio_client import Client

    return Client(running.url, verbose=False, download_files=str(tmp_path) if tmp_path else False)


def swap_args(source, target=None, template="", faces="0", reference=None, strength=1.0, second=None):
    """The ``/swap`` endpoint's arguments; ``second``: the second person of a couple, (photo, faces, reference)."""
    from gradio_client import handle_file

    def upload(path):
        return handle_file(str(path)) if path else None

    args = (upload(source), upload(target), template, faces, upload(reference), strength, "saswap-geometric", False)
    if second is None:  # the arguments as they were before couples: the API takes the rest as their defaults
        return args
    photo, second_faces, second_reference = second
    return (*args, upload(photo), second_faces, upload(second_reference))


# -- command line ---------------------------------------------------------------------------------
def test_cli_app_defaults_bind_loopback():
    args = cli.build_parser().parse_args(["app"])
    assert (args.host, args.port, args.templates) == ("127.0.0.1", 7860, None)
    assert (args.max_video_seconds, args.max_upload_mb, args.max_image_mp) == (60.0, 50.0, 50.0)
    assert args.func is cli._cmd_app


def test_the_apps_tone_lock_reaches_every_swap(tmp_path):
    pytest.importorskip("gradio", reason="the web app needs gradio (pip install 'saswap[app]')")
    from saswap.app.server import AppSettings, SaSwapApp
    from saswap.errors import SaSwapError

    assert cli.build_parser().parse_args(["app", "--tone-lock", "0.5"]).tone_lock == 0.5
    with pytest.raises(SaSwapError, match="--tone-lock"):
        AppSettings(tone_lock=1.5)
    app = SaSwapApp(AppSettings(tone_lock=0.5), tmp_path)
    assert app.pipeline("saswap-geometric").compositor.tone_lock == 0.5
    assert SaSwapApp(AppSettings(), tmp_path / "plain").pipeline("saswap-geometric").compositor.tone_lock == 0.0


def test_the_apps_crop_size_reaches_its_templates_and_swaps(data, tmp_path):
    # templates precomputed for the crop are offered; the others are left out with the command that makes them
    pytest.importorskip("gradio", reason="the web app needs gradio (pip install 'saswap[app]')")
    from saswap.app import AppSettings, launch
    from saswap.errors import SaSwapError
    from saswap.pipelines.image import SaSwapPipeline
    from saswap.provenance import read_tag

    assert cli.build_parser().parse_args(["app", "--crop-size", "auto"]).crop_size == "auto"
    with pytest.raises(SaSwapError, match="crop size"):
        AppSettings(crop_size="big")
    templates, cache = tmp_path / "templates", tmp_path / "cache"
    templates.mkdir()
    sized = write_clip(data / "videos" / "liveportrait__d5.mp4", templates / "sized.mp4", 3)
    plain = write_clip(data / "videos" / "liveportrait__d7.mp4", templates / "plain.mp4", 3)
    pipe = SaSwapPipeline.from_pretrained("saswap-geometric")
    pipe.precompute(sized, cache, progress=False, crop_size=448)
    pipe.precompute(plain, cache, progress=False)
    (templates / "notes.txt").write_text("which clip is which")
    (templates / "cut.mp4").write_bytes(sized.read_bytes()[:2000])  # a copy stopped early
    app = launch(AppSettings(templates=templates, cache_dir=cache, crop_size=448), port=free_port(), block=False)
    try:
        state = app.blocks.saswap
        assert [t.name for t in state.templates] == ["sized.mp4"]
        skipped = state.templates_skipped
        assert any("plain.mp4" in m and "--crop-size 448" in m for m in skipped), skipped
        assert sum(m.startswith(("notes.txt: not a video", "cut.mp4: not a video")) for m in skipped) == 2, skipped
        images = data / "images"
        result, tag = client(app, tmp_path).predict(
            *swap_args(images / "face_recognition__obama.jpg", images / "deepface__img2.jpg"), api_name="/swap"
        )
        assert tag["crop_size"] == 448 and read_tag(result) == tag
        result, tag = client(app, tmp_path).predict(
            *swap_args(images / "face_recognition__obama.jpg", template="sized.mp4"), api_name="/swap"
        )
        assert tag["crop_size"] == 448 and tag["media"] == "video"
    finally:
        app.close()


def test_the_apps_occlusion_and_harmoniser_reach_its_templates_swaps_and_tags(data, tmp_path, capsys):
    """As ``saswap swap`` takes them: a missing folder stops the app at start (one line, exit 2); every swap uses them
    and its tag records them (a folder by its name); the template folder offers the videos precomputed with the same
    --occlusion, and their swaps use those caches."""
    pytest.importorskip("gradio", reason="the web app needs gradio (pip install 'saswap[app]')")
    from saswap.app import AppSettings, launch
    from saswap.models import ToneHarmonizer
    from saswap.provenance import read_tag

    args = cli.build_parser().parse_args(["app", "--occlusion", "rules", "--harmonize", "off"])
    assert (args.occlusion, args.harmonize) == ("rules", "off")
    for option, kind in (("--occlusion", "face parser"), ("--harmonize", "tone harmoniser")):
        assert cli.main(["app", "--port", str(free_port()), option, str(tmp_path / "absent")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"saswap: error: {tmp_path / 'absent'}: no {kind} there") and err.count("\n") == 1, err
    tone = tmp_path / "my-tone"
    ToneHarmonizer(grid_size=4, luma_bins=2, block_out_channels=(8, 16), work_size=32, image_size=64).save_pretrained(
        tone
    )
    templates, cache = tmp_path / "templates", tmp_path / "cache"
    templates.mkdir()
    ruled = write_clip(data / "videos" / "liveportrait__d5.mp4", templates / "ruled.mp4", 3)
    plain = write_clip(data / "videos" / "liveportrait__d7.mp4", templates / "plain.mp4", 3)
    assert cli.main(["precompute", str(ruled), "--cache-dir", str(cache), "--occlusion", "rules", "-q"]) == 0
    assert cli.main(["precompute", str(plain), "--cache-dir", str(cache), "-q"]) == 0
    caches = sorted(cache.iterdir())
    settings = AppSettings(templates=templates, cache_dir=cache, occlusion="rules", harmonize=str(tone))
    app = launch(settings, port=free_port(), block=False)
    try:
        state = app.blocks.saswap
        assert [t.name for t in state.templates] == ["ruled.mp4"]
        assert any(m.startswith("plain.mp4") and "--occlusion rules" in m for m in state.templates_skipped)
        images = data / "images"
        source = images / "face_recognition__obama.jpg"
        result, tag = client(app, tmp_path).predict(*swap_args(source, images / "deepface__img2.jpg"), api_name="/swap")
        assert (tag["occlusion"], tag["harmonize"]) == ("rules", "my-tone") and read_tag(result) == tag
        assert str(tmp_path) not in json.dumps(tag)
        result, tag = client(app, tmp_path).predict(*swap_args(source, template="ruled.mp4"), api_name="/swap")
        assert (tag["occlusion"], tag["harmonize"], tag["media"]) == ("rules", "my-tone", "video")
        assert sorted(cache.iterdir()) == caches  # the precomputed cache served the swap: none was made again
    finally:
        app.close()


def test_cli_app_without_gradio_says_how_to_install(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    assert cli.main(["app"]) == 2
    assert "pip install 'saswap[app]'" in capsys.readouterr().err


# -- API (gradio_client) --------------------------------------------------------------------------
def test_image_swap_through_the_api_is_tagged(running, data, tmp_path):
    from saswap.provenance import read_tag

    c = client(running, tmp_path)
    images = data / "images"
    result, tag = c.predict(*swap_args(images / "face_recognition__obama.jpg", images / "deepface__img2.jpg"),
                            api_name="/swap")  # fmt: skip
    assert tag["synthetic"] is True and tag["generator"] == "saswap" and tag["shape_strength"] == 1.0
    assert read_tag(result) == tag  # the downloaded file carries the tag shown
    preview, faces = c.predict(__import__("gradio_client").handle_file(str(images / "insightface__t1.jpg")),
                               api_name="/detect_faces")  # fmt: skip
    assert faces["kind"] == "image" and len(faces["faces"]) >= 5 and Path(preview).is_file()


def test_a_photo_whose_name_starts_with_a_dot_is_swapped_wherever_the_app_was_started(running, data, tmp_path,
                                                                                      monkeypatch):
    # Gradio refuses dot-named files inside the working folder; the app's upload folder is its own to serve
    from saswap.provenance import read_tag

    monkeypatch.chdir("/")  # a service or a container started in the root folder: the upload folder lies within it
    hidden = tmp_path / ".me.jpg"
    shutil.copy(data / "images" / "face_recognition__obama.jpg", hidden)
    result, tag = client(running, tmp_path).predict(*swap_args(hidden, data / "images" / "deepface__img2.jpg"),
                                                    api_name="/swap")  # fmt: skip
    assert tag["synthetic"] is True and read_tag(result) == tag


def test_one_visitors_files_are_not_reachable_from_another(running, data):
    import gradio as gr
    import httpx

    alice, bob = client(running), client(running)
    images = data / "images"
    result, _ = alice.predict(*swap_args(images / "face_recognition__obama.jpg", images / "deepface__img2.jpg"),
                              api_name="/swap")  # fmt: skip
    url = result["url"]
    assert result["path"].startswith(str(running.workdir))
    assert httpx.get(url, cookies=alice.cookies).status_code == 200
    assert httpx.get(url, cookies=bob.cookies).status_code == 404
    assert httpx.get(url).status_code == 404  # no cookie at all
    state = running.blocks.saswap
    alice_token = alice.cookies["saswap_visitor"]
    uploads = sorted(state.files._uploads[alice_token])
    assert uploads, "alice's uploads were not recorded"
    upload_url = running.url + "gradio_api/file=" + uploads[0]
    assert httpx.get(upload_url, cookies=bob.cookies).status_code == 404
    assert httpx.get(upload_url, cookies=alice.cookies).status_code == 200
    with pytest.raises(gr.Error, match="not part of your session"):  # bob cannot swap with alice's upload either
        state._own(bob.cookies["saswap_visitor"], uploads[0], "source photo")


@pytest.fixture(scope="module")
def bad_files(data, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    from PIL import Image

    ramp = np.tile(np.linspace(0, 255, 320, dtype=np.uint8)[None, :, None], (240, 1, 3))
    Image.fromarray(ramp).save(folder / "no_face.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG " * 20)
    (folder / "big.png").write_bytes(os.urandom(int(2.5 * 1024 * 1024)))
    Image.new("RGB", (8000, 7000), (128, 128, 128)).save(folder / "huge.png")  # a small file, a huge picture
    assert (folder / "huge.png").stat().st_size < 2 * 1024 * 1024
    return {"no_face": folder / "no_face.png", "broken": folder / "broken.jpg", "big": folder / "big.png",
            "huge": folder / "huge.png", "long": data / "videos" / "liveportrait__d5.mp4"}  # fmt: skip


@pytest.mark.parametrize(
    "role, bad, message",
    [
        ("source", "no_face", "no_face.png: no face found"),
        ("source", "broken", "broken.jpg"),
        ("target", "broken", "broken.jpg"),
        ("target", "long", "liveportrait__d5.mp4: the video is 4.9 s long; this app accepts videos up to 3 s"),
        ("target", "big", "exceeds the maximum file size of 2097152 bytes"),
        ("target", "huge", "huge.png: the target is 8000×7000 pixels (56 megapixels); this app accepts photos up to 50"),
        ("reference", None, "Please upload the reference photo first."),
    ],
)
def test_bad_input_gives_a_clear_message(running, data, bad_files, role, bad, message):
    from gradio_client.exceptions import AppError

    good = data / "images" / "face_recognition__obama.jpg"
    if role == "reference":  # "the person in a reference photo" without the photo
        args = swap_args(good, data / "images" / "insightface__t1.jpg", faces="reference")
    else:
        args = swap_args(bad_files[bad], good) if role == "source" else swap_args(good, bad_files[bad])
    with pytest.raises(Exception) as info:
        client(running).predict(*args, api_name="/swap")
    text = str(info.value)
    assert message in text
    assert "Traceback" not in text and str(running.workdir) not in text
    if bad != "big":  # the upload limit is Gradio's own (refused before the app sees the file)
        assert isinstance(info.value, AppError)


def test_templates_are_listed_and_swapped(running, data, tmp_path):
    from saswap.videoio import probe_video, read_video_tag

    c = client(running, tmp_path)
    listed = c.predict(api_name="/templates")
    assert [t["name"] for t in listed] == ["talking.mp4"]  # the one without a cache is left out
    job = c.submit(*swap_args(data / "images" / "face_recognition__obama.jpg", template="talking.mp4"),
                   api_name="/swap")  # fmt: skip
    result, tag = job.result(timeout=120)
    assert tag["synthetic"] is True and tag["media"] == "video" and tag["app"] is True  # as the app's photos are
    assert tag["note"] == "synthetic video, made with saswap"
    assert read_video_tag(result) == tag
    assert probe_video(result).frame_count == 12
    updates = [o[1] for o in job.outputs()[:-1]]
    assert any(u["total"] == 12 and u["done"] > 0 for u in updates), updates  # frames done of frames
    assert (updates[-1]["done"], updates[-1]["total"]) == (12, 12), updates  # the end state, however fast the swap


def test_a_numbered_face_of_a_video_is_that_persons_swap(running, data, tmp_path):
    """A video's faces are numbered on its first frame with a face: choosing face 2 swaps the person whose face that
    is, in every frame, and no one else. Here the video starts with frames without a face (the preview is the first
    frame with one), and face 2 is the smaller there and the larger after it: the swap's own face index, which counts
    people by their face area over the whole video, would take the other person."""
    import av
    import cv2

    from saswap.face import FaceAnalyzer

    def frames(name, sides):
        with av.open(str(data / "videos" / name)) as c:
            pictures = [f.to_ndarray(format="rgb24") for _, f in zip(range(12), c.decode(video=0))]
        out = []
        for picture, side in zip(pictures, sides):  # the person shown at ``side`` px in a 320-px square
            small = cv2.resize(picture, (side, side), interpolation=cv2.INTER_AREA)
            pad = (320 - side) // 2
            out.append(cv2.copyMakeBorder(small, pad, 320 - side - pad, pad, 320 - side - pad, cv2.BORDER_REPLICATE))
        return out

    shrinking, growing = [320 - 12 * t for t in range(12)], [min(320, 250 + 14 * t) for t in range(12)]
    left, right = frames("liveportrait__d8.mp4", shrinking), frames("liveportrait__d18.mp4", growing)
    blank = [np.full((320, 640, 3), 128, np.uint8)] * 6
    pictures = blank + [np.hstack(pair) for pair in zip(left, right)]
    clip = write_video(tmp_path / "two.mp4", pictures)
    from gradio_client import handle_file

    c = client(running, tmp_path)
    _, listed = c.predict(handle_file(str(clip)), api_name="/detect_faces")
    assert listed["kind"] == "video" and len(listed["faces"]) == 2  # found after the blank frames
    with av.open(str(clip)) as v:
        shown = [f.to_ndarray(format="rgb24") for f in v.decode(video=0)][8]  # looked at every quarter second
    faces = FaceAnalyzer()(shown)
    assert len(faces) == 2
    chosen = 0 if (faces[1].box[0] + faces[1].box[2]) / 2 < 320 else 1  # the half of the frame where face 2 is
    result, _ = c.predict(*swap_args(data / "images" / "sberswap__mark.jpg", clip, faces="1"), api_name="/swap")
    with av.open(str(clip)) as a, av.open(str(result)) as b:
        diffs = [np.abs(x.to_ndarray(format="rgb24").astype(int) - y.to_ndarray(format="rgb24").astype(int)).max(axis=2)
                 for x, y in zip(a.decode(video=0), b.decode(video=0))]  # fmt: skip
    assert len(diffs) == 18
    changed = [d > 20 for d in diffs]  # more than the encoder's noise
    halves = [(m[:, 320 * chosen : 320 * chosen + 320].mean(), m[:, 320 * (1 - chosen) : 320 * (2 - chosen)].mean())
              for m in changed]  # fmt: skip
    assert all(mine > 0.02 and other < 0.001 for mine, other in halves[6:]), halves
    assert all(mine < 0.001 and other < 0.001 for mine, other in halves[:6]), halves


def _judged(*photos: Path):
    """``own_source_nearer``'s arguments for a picture and its faces swapped with ``photos`` in order (dlib judges)."""
    from saswap.face import FaceAnalyzer
    from saswap.face.identity import DlibEmbedder
    from saswap.io import load_image

    judge, analyzer = DlibEmbedder(), FaceAnalyzer()
    identities = [judge.raw(image, analyzer(image)[0]) for image in (load_image(p) for p in photos)]
    return lambda picture, faces: (judge, picture, faces, identities)


def test_a_couple_photo_takes_a_photo_for_each_person(running, data, tmp_path, dlib_models):
    """A second person's photo and the face it replaces: each face of a two-person photo takes its own source (dlib's
    judge), the tag says two sources; a face chosen twice, or 'all faces' with a second photo, is refused."""
    from saswap.face import FaceAnalyzer
    from saswap.io import load_image, save_image

    images = data / "images"
    target = images / "face_recognition__two_people.jpg"
    first, second = images / "sberswap__beckham.jpg", images / "sberswap__mark.jpg"
    c = client(running, tmp_path)
    result, tag = c.predict(*swap_args(first, target, faces="0", second=(second, "1", None)), api_name="/swap")
    assert tag["sources"] == 2 and tag["synthetic"] is True
    before, after = load_image(target), load_image(result)
    faces = FaceAnalyzer()(before)
    assert len(faces) == 2
    for face in faces:
        x0, y0, x1, y1 = (int(v) for v in face.box)
        changed = np.abs(after[y0:y1, x0:x1].astype(int) - before[y0:y1, x0:x1].astype(int)).max(axis=2) > 20
        assert changed.mean() > 0.2
    assert all(own_source_nearer(*_judged(first, second)(after, faces)))  # face 1 (largest): the first photo
    # the same person chosen by a reference photo for the second photo: the same result's faces
    reference = tmp_path / "reference.png"
    x0, y0, x1, y1 = (int(v) for v in faces[1].box)
    save_image(before[max(0, y0 - 40) : y1 + 40, max(0, x0 - 40) : x1 + 40], reference)
    by_reference, tag = c.predict(*swap_args(first, target, faces="0", second=(second, "reference", reference)),
                                  api_name="/swap")  # fmt: skip
    assert tag["sources"] == 2
    assert np.abs(load_image(by_reference).astype(int) - after.astype(int)).max() <= 2
    for faces_, second_faces, message in [("1", "1", "both photos would replace face 2"),
                                          ("all", "1", "with a second person's photo, choose the face each photo")]:
        with pytest.raises(Exception, match=message):
            c.predict(*swap_args(first, target, faces=faces_, second=(second, second_faces, None)), api_name="/swap")


def test_a_couple_video_takes_a_photo_for_each_person(running, data, tmp_path, dlib_models):
    """Two people side by side in a video, a photo for each (faces 1 and 2 of its first frame): both change in every
    frame, each by their own photo (dlib's judge), and the tag says two sources."""
    import av
    import cv2

    from saswap.face import FaceAnalyzer
    from saswap.videoio import read_video_tag

    def frames(name):
        with av.open(str(data / "videos" / name)) as v:
            return [f.to_ndarray(format="rgb24") for _, f in zip(range(8), v.decode(video=0))]

    left, right = frames("liveportrait__d8.mp4"), frames("liveportrait__d18.mp4")
    pictures = [np.hstack([cv2.resize(x, (320, 320), interpolation=cv2.INTER_AREA),
                           cv2.resize(y, (256, 256), interpolation=cv2.INTER_AREA)[np.r_[0:256, [255] * 64]]])
                for x, y in zip(left, right)]  # fmt: skip
    clip = write_video(tmp_path / "two.mp4", pictures)
    first, second = data / "images" / "sberswap__beckham.jpg", data / "images" / "sberswap__mark.jpg"
    result, tag = client(running, tmp_path).predict(*swap_args(first, clip, faces="0", second=(second, "1", None)),
                                                    api_name="/swap")  # fmt: skip
    assert tag["sources"] == 2 and read_video_tag(result)["sources"] == 2
    with av.open(str(clip)) as a, av.open(str(result)) as b:
        pairs = zip(a.decode(video=0), b.decode(video=0))
        shown = [(x.to_ndarray(format="rgb24"), y.to_ndarray(format="rgb24")) for x, y in pairs]
    changed = [np.abs(x.astype(int) - y.astype(int)).max(axis=2) > 20 for x, y in shown]
    assert len(changed) == 8
    assert all(m[:, :320].mean() > 0.02 and m[:, 320:].mean() > 0.02 for m in changed), [
        (m[:, :320].mean(), m[:, 320:].mean()) for m in changed]
    before, after = shown[4]
    faces = sorted(FaceAnalyzer()(before), key=lambda f: f.box[0])  # left (face 1, the larger), right
    assert all(own_source_nearer(*_judged(first, second)(after, faces)))


def test_a_visitor_leaving_takes_their_uploads_and_video_caches_along(running):
    """Closing the page removes the visitor's uploads (not one another visitor uploaded too: Gradio keeps one copy of
    identical files) and their videos' caches, once no other page of theirs is open."""
    from types import SimpleNamespace

    state = running.blocks.saswap
    alice, bob = "a" * 43, "b" * 43
    root = state.files.root
    own, shared = root / "up-alice" / "me.jpg", root / "up-both" / "same.jpg"
    for path in (own, shared):
        path.parent.mkdir()
        path.write_bytes(b"photo")
    state.files.add_upload(alice, own)
    state.files.add_upload(alice, shared)
    state.files.add_upload(bob, shared)
    caches = state.private / "caches" / state.files.digest(alice)
    caches.mkdir(parents=True)
    (caches / "x.stc").write_bytes(b"cache")

    def page(token, session):
        return SimpleNamespace(session_hash=session, headers={"cookie": f"saswap_visitor={token}"})

    folders = [state._new_folder(alice, page(alice, s)) for s in ("tab-1", "tab-2")]
    state.on_unload(page(alice, "tab-1"))  # another page of hers is still open: only this page's results go
    assert not folders[0].exists() and folders[1].exists() and own.exists() and caches.exists()
    state.on_unload(page(alice, "tab-2"))
    assert not folders[1].exists() and not own.exists() and not own.parent.exists() and not caches.exists()
    assert shared.exists() and state.files.owns(bob, shared) and not state.files.owns(alice, own)
    state.on_unload(page(bob, "tab-3"))
    assert not shared.exists()


def test_video_progress_queue_and_cancel(running, data, tmp_path):
    from gradio_client.utils import Status

    clip = write_clip(data / "videos" / "liveportrait__d8.mp4", tmp_path / "clip.mp4", 75)  # 2.5 s
    images = data / "images"
    alice, bob = client(running), client(running)
    long_job = alice.submit(*swap_args(images / "face_recognition__obama.jpg", clip), api_name="/swap")
    deadline = time.monotonic() + 60
    while not any(isinstance(o, (list, tuple)) and o[1] and o[1].get("done") for o in long_job.outputs()):
        assert time.monotonic() < deadline, "no progress reported"
        time.sleep(0.2)
    progress = [o[1] for o in long_job.outputs() if o[1]][-1]
    assert "frames" in progress["status"] and progress["total"]
    queued = bob.submit(*swap_args(images / "sberswap__mark.jpg", images / "deepface__img2.jpg"), api_name="/swap")
    seen = None
    while time.monotonic() < deadline:
        status = queued.status()
        if status.code == Status.IN_QUEUE and status.rank is not None:
            seen = status
            break
        time.sleep(0.1)
    assert seen is not None and seen.queue_size >= 1, "the second request did not wait in the queue"
    results = running.blocks.saswap.files.results_folder(alice.cookies["saswap_visitor"])
    long_job.cancel()
    result, tag = queued.result(timeout=120)  # runs once the first one stopped
    assert tag["synthetic"] is True
    deadline = time.monotonic() + 30
    while list(results.rglob("*.mp4")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not list(results.rglob("*")), f"a cancelled job left files: {list(results.rglob('*'))}"


# -- no network of its own ------------------------------------------------------------------------
def test_runs_in_a_network_namespace_without_outbound_connections(data, tmp_path):
    pytest.importorskip("gradio", reason="the web app needs gradio (pip install 'saswap[app]')")
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("unshare / ip are not installed")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here (unshare -n: {probe.stderr.decode().strip()})")
    images = data / "images"
    env = {**os.environ, "TMPDIR": str(tmp_path), "HF_HUB_OFFLINE": "0"}  # the app must go offline by itself
    script = (
        f"ip link set lo up && exec {sys.executable} {HERE / 'offline_check.py'} {free_port()} "
        f"{images / 'face_recognition__obama.jpg'} {images / 'deepface__img2.jpg'}"
    )
    done = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["page"] == 200 and report["theme"] == 200
    assert isinstance(report["swap_tag"], dict) and report["swap_tag"]["synthetic"] is True, report["swap_tag"]
    assert report["outbound"] == [], f"the app tried to reach the network: {report['outbound']}"
    assert report["exit"] == 0 and report["left"] == []  # SIGTERM stops it and removes its temporary folders


# -- a real browser -------------------------------------------------------------------------------
def _browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.skip("no Chromium and chromedriver installed (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1400"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def test_browser_image_swap(running, data, bad_files, tmp_path):
    """Load the page, upload a source and a target, swap, check the result image's file carries the tag,
    check a bad upload shows its message, and that the page fetched nothing from outside the app.
    Screenshots go to ``tmp_path/screenshots`` (and ``$SASWAP_APP_SHOTS`` when set)."""
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from saswap.provenance import read_tag

    shots = tmp_path / "screenshots"
    shots.mkdir()
    driver = _browser()
    images = data / "images"

    def shot(name: str) -> None:
        driver.save_screenshot(str(shots / f"{name}.png"))
        if os.environ.get("SASWAP_APP_SHOTS"):
            Path(os.environ["SASWAP_APP_SHOTS"]).mkdir(parents=True, exist_ok=True)
            shutil.copy(shots / f"{name}.png", Path(os.environ["SASWAP_APP_SHOTS"]) / f"{name}.png")

    def upload(elem_id: str, path: Path) -> None:
        # (a section just opened renders its inputs a moment later)
        field = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f"#{elem_id} input[type=file]"))
        field[0].send_keys(str(path))

    try:
        wait = WebDriverWait(driver, 120)
        driver.get(running.url)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#swap"))
        assert "your photo" in driver.find_element(By.TAG_NAME, "body").text.lower()
        shot("01_page")
        upload("source-file", images / "face_recognition__obama.jpg")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#source-view img"))
        upload("target-file", images / "deepface__img2.jpg")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#target-view img"))
        wait.until(lambda d: "1 face found" in d.find_element(By.CSS_SELECTOR, "#target-info").text)
        shot("02_uploaded")
        driver.find_element(By.CSS_SELECTOR, "#swap").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#result-image img"))
        wait.until(lambda d: "SYNTHETIC" in d.find_element(By.CSS_SELECTOR, "#tag textarea").get_attribute("value"))
        shot("03_result")
        src = driver.find_element(By.CSS_SELECTOR, "#result-image img").get_attribute("src")
        driver.set_script_timeout(60)
        encoded = driver.execute_async_script(
            "const done = arguments[1]; fetch(arguments[0]).then(r => r.arrayBuffer()).then(b => {"
            " const a = new Uint8Array(b); let s = ''; for (let i = 0; i < a.length; i += 8192)"
            " s += String.fromCharCode.apply(null, a.subarray(i, i + 8192)); done(btoa(s)); });",
            src,
        )  # fmt: skip
        result = tmp_path / "from_browser.png"
        result.write_bytes(base64.b64decode(encoded))
        tag = read_tag(result)
        assert tag is not None and tag["synthetic"] is True and tag["app"] is True
        assert httpx.get(src).status_code == 404  # the same URL without the browser's cookie: refused
        assert "Note:" not in driver.find_element(By.CSS_SELECTOR, "#status").text

        driver.get(running.url)  # a fresh page, then a broken file as the source
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#source-file input[type=file]"))
        served = Path(urllib.parse.unquote(src.split("file=", 1)[1]))
        assert served.is_relative_to(running.workdir)
        deadline = time.monotonic() + 30  # the old page's session ended: its results are removed
        while served.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not served.exists(), "a closed page's result was kept"

        # a couple: a second person's photo for face 2 of a two-person photo (the choice offered once it is uploaded)
        driver.get(running.url)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#source-file input[type=file]"))
        upload("source-file", images / "sberswap__beckham.jpg")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#source-view img"))
        upload("target-file", images / "face_recognition__two_people.jpg")
        wait.until(lambda d: "2 faces found" in d.find_element(By.CSS_SELECTOR, "#target-info").text)
        driver.find_element(By.CSS_SELECTOR, "#second-person button").click()  # open the section
        upload("second-source-file", images / "sberswap__mark.jpg")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#second-source-view img"))
        checked = driver.find_element(By.CSS_SELECTOR, "#second-face-choice input:checked")
        assert checked.get_attribute("value") == "1"  # face 2: the other face of the photo
        shot("05_couple")
        driver.find_element(By.CSS_SELECTOR, "#swap").click()
        wait.until(lambda d: "sources 2" in d.find_element(By.CSS_SELECTOR, "#tag textarea").get_attribute("value"))
        driver.execute_script("document.querySelector('#status').scrollIntoView()")
        shot("06_couple_result")
        driver.get(running.url)  # a fresh page for the next swap
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#source-file input[type=file]"))

        # a small face in an old photo: the swap's warning is shown under the result, with the file's name only
        upload("source-file", images / "gfpgan__10045.png")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#source-view img"))
        upload("target-file", images / "deepface__img2.jpg")
        wait.until(lambda d: "1 face found" in d.find_element(By.CSS_SELECTOR, "#target-info").text)
        driver.find_element(By.CSS_SELECTOR, "#swap").click()
        wait.until(lambda d: "Done" in d.find_element(By.CSS_SELECTOR, "#status").text)
        status = driver.find_element(By.CSS_SELECTOR, "#status").text
        shot("03_note")
        assert "Note: gfpgan__10045.png: the source face is small" in status, status
        assert str(running.workdir) not in status and "/tmp" not in status

        driver.get(running.url)  # a fresh page again
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#source-file input[type=file]"))
        upload("source-file", bad_files["broken"])
        wait.until(lambda d: "broken.jpg" in d.find_element(By.TAG_NAME, "body").text
                   and "cannot be used" in d.find_element(By.TAG_NAME, "body").text)  # fmt: skip
        shot("04_bad_upload")
        body = driver.find_element(By.TAG_NAME, "body").text
        assert "Traceback" not in body
        driver.find_element(By.CSS_SELECTOR, "#swap").click()  # no target yet: said in the status line too
        wait.until(lambda d: "Please upload a target" in d.find_element(By.CSS_SELECTOR, "#status").text)

        requested = set()
        for entry in driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                requested.add(message["params"]["request"]["url"])
        outside = [u for u in requested if not u.startswith((running.url.rstrip("/"), "data:", "blob:"))]
        assert requested and outside == [], f"the page fetched from outside the app: {outside}"
    except Exception:
        shot("failure")  # what the page showed when the test failed
        raise
    finally:
        driver.quit()
    assert sorted(p.name for p in shots.iterdir()) == ["01_page.png", "02_uploaded.png", "03_note.png", "03_result.png",
                                                       "04_bad_upload.png", "05_couple.png", "06_couple_result.png"]
