"""Provenance tags, the zoo registry, and the ONNX face enhancer (with a tiny model built here)."""

from __future__ import annotations

import numpy as np
import pytest

from saswap.errors import InvalidImageError, ModelNotFoundError


@pytest.mark.parametrize("ext", ["png", "jpg", "webp"])
def test_tag_round_trip(tmp_path, ext):
    from saswap.provenance import make_tag, read_tag, save_tagged

    path = tmp_path / f"out.{ext}"
    save_tagged(np.zeros((16, 16, 3), np.uint8), path, make_tag(engine="geometric"))
    tag = read_tag(path)
    assert tag is not None and tag["synthetic"] is True and tag["engine"] == "geometric"


def test_untagged_and_bad_files(tmp_path):
    from PIL import Image

    from saswap.provenance import read_tag, save_tagged

    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    assert read_tag(plain) is None
    with pytest.raises(InvalidImageError, match="no such file"):
        read_tag(tmp_path / "missing.png")
    with pytest.raises(InvalidImageError, match="unsupported output format"):
        save_tagged(np.zeros((8, 8, 3), np.uint8), tmp_path / "x.bmp")


def test_zoo_registry():
    from saswap.zoo import ZooEntry, get_entry, list_models, register

    assert {"saswap-256", "saswap-tiny-test", "saswap-geometric"} <= set(list_models())
    assert get_entry("saswap-256").recipe == "recipes/saswap-256.yaml"
    with pytest.raises(ValueError, match="already registered"):
        register(ZooEntry(name="saswap-256", engine="saswap"))


def _tiny_enhancer(path, size=32):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    # y = 0.5 * x (a "restorer" that darkens: easy to check)
    node = helper.make_node("Mul", ["input", "half"], ["output"])
    half = helper.make_tensor("half", TensorProto.FLOAT, [1], [0.5])
    graph = helper.make_graph(
        [node], "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, size, size])], [half],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_enhancer_from_local_onnx(tmp_path):
    from saswap.enhance import FaceEnhancer

    _tiny_enhancer(tmp_path / "tiny.onnx")
    enh = FaceEnhancer.from_pretrained(tmp_path)
    crop = np.full((64, 64, 3), 255, np.uint8)
    out = enh(crop)
    assert out.shape == crop.shape and abs(int(out[10, 10, 0]) - 191) <= 2  # (1 * 0.5 + 1) * 127.5
    mask = np.zeros((64, 64), np.float32)
    mask[:, :32] = 1
    mixed = enh.enhance_crop(crop, mask)
    assert mixed[5, 5, 0] < 200 and mixed[5, 60, 0] == 255  # only inside the mask


def test_enhancer_unknown_name():
    from saswap.enhance import FaceEnhancer

    with pytest.raises(ModelNotFoundError, match="not an enhancer file"):
        FaceEnhancer.from_pretrained("nope-enhancer")


def test_enhancer_that_is_no_onnx_model_is_a_clear_error(tmp_path):
    from saswap.enhance import FaceEnhancer

    photo = tmp_path / "photo.png"  # a file, but not an ONNX model: onnxruntime's own error was a traceback
    photo.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(ModelNotFoundError, match=r"photo\.png: not a usable ONNX enhancer model \("):
        FaceEnhancer.from_pretrained(photo)


def test_a_video_swap_reports_an_unusable_enhancer_before_the_template_analysis(tmp_path, monkeypatch):
    """An enhancer file that is no ONNX model was found at the first face, after the whole template's analysis."""
    from conftest import data_path

    import saswap.pipelines.video as video
    from saswap import SaSwapPipeline

    def no_analysis(*args, **kwargs):
        raise AssertionError("the template was analysed before the enhancer was loaded")

    monkeypatch.setattr(video, "precompute_template", no_analysis)
    bad = tmp_path / "restorer.onnx"
    bad.write_text("not a model")
    pipe = SaSwapPipeline.from_pretrained("saswap-geometric")
    with pytest.raises(ModelNotFoundError, match=r"restorer\.onnx: not a usable ONNX enhancer model"):
        pipe.swap_video(data_path("images", "sberswap__beckham.jpg"), data_path("videos", "liveportrait__d0.mp4"),
                        tmp_path / "out.mp4", enhance=str(bad), cache_dir=tmp_path / "cache", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["restorer.onnx"]


def test_a_video_swap_loads_its_enhancer_once_and_lets_it_go_for_worker_processes(tmp_path, monkeypatch):
    """Checked before the analysis, the enhancer is the one the frame threads use (not loaded twice); when worker
    processes make the frames, each loads its own, and the pipeline's copy is let go."""
    from conftest import data_path, read_video

    import saswap.enhance as enhance
    from saswap import SaSwapPipeline

    _tiny_enhancer(tmp_path / "tiny.onnx")
    loads = []
    real = enhance.FaceEnhancer.__init__

    def counted(self, *args, **kwargs):
        loads.append(1)
        real(self, *args, **kwargs)

    monkeypatch.setattr(enhance.FaceEnhancer, "__init__", counted)
    pipe = SaSwapPipeline.from_pretrained("saswap-geometric")
    clip, source = data_path("videos", "liveportrait__d0.mp4"), data_path("images", "sberswap__beckham.jpg")
    name = str(tmp_path / "tiny.onnx")
    settings = {"enhance": name, "end": 0.2, "cache_dir": tmp_path / "cache", "progress": False}
    threads = pipe.swap_video(source, clip, tmp_path / "threads.mp4", workers=1, processes=False, **settings)
    assert threads.faces_swapped > 0 and len(loads) == 1 and list(pipe._enhancers) == [name]

    pipe._enhancers.clear()
    processes = pipe.swap_video(source, clip, tmp_path / "processes.mp4", workers=2, processes=True, **settings)
    assert processes.faces_swapped == threads.faces_swapped
    assert len(loads) == 2 and pipe._enhancers == {}  # loaded here once to check it, then let go
    a, _ = read_video(tmp_path / "threads.mp4")
    b, _ = read_video(tmp_path / "processes.mp4")
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))  # the workers' enhancer was used
