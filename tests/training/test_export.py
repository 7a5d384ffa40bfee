"""Export to the zoo format and ONNX; the exported model loads without Lightning and swaps faces."""

from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np
import pytest
import torch
from conftest import data_path

from saswap.errors import SaSwapError

pytest.importorskip("lightning")
onnxruntime = pytest.importorskip("onnxruntime")

from test_training import _tiny_system  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from saswap.training.export import export_system

    out = tmp_path_factory.mktemp("export") / "model"
    system = _tiny_system()
    export_system(system, out)
    return system, out


def test_zoo_layout(exported):
    _, out = exported
    index = json.loads((out / "model_index.json").read_text())
    assert index["engine"] == "saswap" and index["image_size"] == 64 and index["onnx"] == "saswap.onnx"
    for name in ("identity_encoder", "attribute_encoder", "generator", "flow_estimator"):
        assert (out / name / "config.json").is_file() and (out / name / "model.safetensors").is_file()
    # readable by others as any file the user makes (a temporary folder is 0o700, safetensors writes 0o600)
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask
    assert (out / "generator" / "model.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask


def test_onnx_matches_pytorch(exported):
    from saswap.training.export import SaSwapInference

    system, out = exported
    model = SaSwapInference(system.attribute_encoder, system.generator_ema, system.flow_estimator).eval()
    torch.manual_seed(1)
    feeds = {
        "target": torch.rand(1, 3, 64, 64) * 2 - 1, "id_embed": torch.randn(1, 32), "keypoints": torch.rand(1, 68, 2) * 2 - 1,
        "motion": torch.randn(1, 68, 2) * 3, "strength": torch.ones(1),
    }  # fmt: skip
    with torch.no_grad():
        expected = model(*feeds.values()).numpy()
    session = onnxruntime.InferenceSession(str(out / "saswap.onnx"))
    got = session.run(None, {k: v.numpy() for k, v in feeds.items()})[0]
    assert np.abs(got - expected).max() < 1e-3


def test_export_refuses_a_non_empty_folder(exported, tmp_path):
    from saswap.errors import SaSwapError
    from saswap.training.export import export_system

    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(SaSwapError, match="not empty"):
        export_system(exported[0], tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_exported_model_swaps_through_the_pipeline(exported, analyzer):
    from saswap import SaSwapPipeline
    from saswap.io import load_image

    _, out = exported
    pipe = SaSwapPipeline.from_pretrained(out, analyzer=analyzer)
    assert pipe.engine.name == "saswap" and pipe.engine.crop_size == 64
    target = load_image(data_path("images", "sadtalker__happy.png"))
    result = pipe(data_path("images", "sberswap__beckham.jpg"), target)
    mask = result.masks[0]
    assert mask.max() > 0.99 and np.array_equal(result.image[mask == 0], target[mask == 0])
    assert (
        np.abs(result.image[mask > 0.99].astype(int) - target[mask > 0.99].astype(int)).mean() > 1
    )  # the face changed


def test_hub_id_resolves_offline_from_the_local_cache(exported, tmp_path, monkeypatch, analyzer):
    """A Hub id loads from a Hugging Face cache laid out on disk, with the network off."""
    import shutil

    from saswap import SaSwapPipeline
    from saswap.errors import ModelNotFoundError

    _, out = exported
    cache = tmp_path / "hub"
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = cache / "models--saswap-test--tiny"
    shutil.copytree(out, repo_dir / "snapshots" / revision)
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(revision)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    pipe = SaSwapPipeline.from_pretrained("saswap-test/tiny", analyzer=analyzer)
    assert pipe.engine.name == "saswap"
    with pytest.raises(ModelNotFoundError, match="no such local model folder, and with HF_HUB_OFFLINE set it is not"):
        SaSwapPipeline.from_pretrained("saswap-test/absent", analyzer=analyzer)


def test_a_missing_folder_named_like_a_hub_id_says_both_when_the_hub_is_out_of_reach(monkeypatch, analyzer):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    from saswap import SaSwapPipeline
    from saswap.errors import ModelNotFoundError

    def unreachable(*a, **k):  # what huggingface_hub raises with no network
        raise LocalEntryNotFoundError("cannot reach the Hub")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    with pytest.raises(ModelNotFoundError, match=r"outputs/my-modle: no such local model folder, and the Hugging Face "
                                                 r"Hub could not be reached .*download the model on a machine"):
        SaSwapPipeline.from_pretrained("outputs/my-modle", analyzer=analyzer)


@pytest.mark.parametrize(
    "damage, message",
    [
        ("no-component", r"generator: the generator component's folder is missing"),
        ("no-weights", r"generator: no model.safetensors \(the model folder is incomplete"),
        ("no-config", r"generator: no config.json"),
        ("cut-weights", r"generator: cannot be loaded \(SafetensorError"),
        ("bad-index", r"model_index.json: not a readable JSON file"),
        ("list-index", r"model_index.json: expected a JSON object, got list"),
        ("no-components", r"model_index.json: its 'components' must name"),
    ],
)
def test_a_damaged_model_folder_is_named_and_never_looked_up_online(exported, tmp_path, monkeypatch, analyzer, damage,
                                                                     message):
    import huggingface_hub

    from saswap import SaSwapPipeline
    from saswap.errors import ModelNotFoundError

    _, out = exported
    folder = tmp_path / "model"
    shutil.copytree(out, folder)
    index = folder / "model_index.json"
    if damage == "no-component":
        shutil.rmtree(folder / "generator")
    elif damage == "no-weights":
        (folder / "generator" / "model.safetensors").unlink()
    elif damage == "no-config":
        (folder / "generator" / "config.json").unlink()
    elif damage == "cut-weights":
        weights = folder / "generator" / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:5])
    elif damage == "bad-index":
        index.write_text(index.read_text()[:-5])
    elif damage == "list-index":
        index.write_text("[]")
    else:
        index.write_text(json.dumps({k: v for k, v in json.loads(index.read_text()).items() if k != "components"}))

    def online(*a, **k):
        raise AssertionError("a local folder was looked up on the Hub")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", online)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", online)
    with pytest.raises(ModelNotFoundError, match=message):
        SaSwapPipeline.from_pretrained(str(folder), analyzer=analyzer)


def test_cli_swaps_with_the_exported_weights(exported, tmp_path, capsys):
    from saswap.cli import main
    from saswap.provenance import read_tag

    _, folder = exported
    out = tmp_path / "neural.png"
    args = [
        "swap",
        "-s",
        str(data_path("images", "sberswap__beckham.jpg")),
        "-t",
        str(data_path("images", "sadtalker__happy.png")),
    ]
    assert main([*args, "-o", str(out), "--engine", "saswap", "--weights", str(folder)]) == 0
    tag = read_tag(out)
    assert tag["engine"] == "saswap" and tag["model"] == "model" and str(folder.parent) not in str(tag)


def test_the_neural_engine_moves_between_devices_and_reads_its_cached_fit(exported, analyzer, monkeypatch):
    """``pipe.to(device)`` moves the networks (a device torch cannot use is a clear error, the engine left on the CPU);
    the target's 3DMM fit is part of its analysis (a template cache's), and the swap reads it instead of fitting again."""
    from saswap import SaSwapPipeline
    from saswap.engines import neural
    from saswap.errors import SaSwapError
    from saswap.io import load_image

    _, out = exported
    pipe = SaSwapPipeline.from_pretrained(out, analyzer=analyzer)
    assert pipe.to("cpu") is pipe and pipe.device == "cpu" and pipe.engine.on_cpu
    if not torch.cuda.is_available():
        with pytest.raises(SaSwapError, match="cannot move to 'cuda'"):
            pipe.to("cuda")
        assert pipe.device == "cpu"
    target = load_image(data_path("images", "sadtalker__happy.png"))
    analysis = pipe.target_analyzer(target)
    assert {"fit_shape", "fit_expr", "fit_rotation"} <= set(analysis.faces[0].data)
    fits = []
    real = neural.fit_morphable
    monkeypatch.setattr(neural, "fit_morphable", lambda *a, **k: fits.append(1) or real(*a, **k))
    source = pipe.prepare_source(data_path("images", "sberswap__beckham.jpg"))[0]
    fits.clear()
    out_image = target.copy()
    pipe.swap_frame(out_image, target, analysis, source)
    assert fits == [] and not np.array_equal(out_image, target)  # swapped, from the cached fit alone
    tf = analysis.faces[0]
    crop = pipe.engine.align(target, tf.face)[0]
    pipe.engine.swap(crop, tf.crop_face, source, 1.0, {})  # an analysis without the fit (an older cache): fitted here
    assert fits == [1]


def test_engines_that_compute_on_the_cpu_alone_refuse_another_device():
    from saswap import SaSwapPipeline
    from saswap.errors import SaSwapError

    pipe = SaSwapPipeline.from_pretrained("saswap-geometric")
    assert pipe.to("cpu").device == "cpu"
    with pytest.raises(SaSwapError, match="computes on the CPU only"):
        pipe.to("cuda:0")


def test_the_neural_engine_sends_its_analysis_without_the_networks(exported, analyzer):
    """A template's analysis workers get a stand-in with the alignment and the 3DMM fit, not the networks."""
    import pickle

    from saswap import SaSwapPipeline
    from saswap.io import load_image

    _, out = exported
    pipe = SaSwapPipeline.from_pretrained(out, analyzer=analyzer)
    view = pipe.engine.for_analysis()
    sent = pickle.dumps(view)
    assert len(sent) < len(pickle.dumps(pipe.engine))
    import subprocess
    import sys

    loaded = subprocess.run(  # a worker that loads it does not import torch
        [sys.executable, "-c", "import pickle, sys; pickle.loads(sys.stdin.buffer.read()); print('torch' in sys.modules)"],
        input=sent, capture_output=True, check=True,
    )  # fmt: skip
    assert loaded.stdout.strip() == b"False"
    assert pipe.engine.config()["morphable_model"]  # the fit's model is part of a template cache's key
    target = load_image(data_path("images", "sadtalker__happy.png"))
    face = analyzer(target)[0]
    assert np.array_equal(view.alignment(face), pipe.engine.alignment(face)) and view.crop_size == pipe.engine.crop_size
    crop, face_c, _ = pipe.engine.align(target, face)
    a, b = view.analyze_target(crop, face_c), pipe.engine.analyze_target(crop, face_c)
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)


def _parser_checkpoint(path, image_size=64):
    """A checkpoint laid out as LightningCLI writes a FaceParserSystem's (class path, init args, trained size)."""
    from saswap.models import FaceParser

    torch.manual_seed(0)
    parser = FaceParser(block_out_channels=(4, 8, 16), image_size=image_size)
    spec = {"class_path": "saswap.models.FaceParser", "init_args": {"block_out_channels": [4, 8, 16]}}
    torch.save(
        {
            "state_dict": {f"parser.{k}": v for k, v in parser.state_dict().items()},
            "hyper_parameters": {"parser": spec}, "datamodule_hyper_parameters": {"image_size": image_size},
        },
        path,
    )  # fmt: skip
    return parser.eval()


def _harmonizer_checkpoint(path):
    from saswap.models.tone_harmonizer import ToneHarmonizer

    torch.manual_seed(0)
    model = ToneHarmonizer(block_out_channels=(4, 8, 8), work_size=64, image_size=64)
    init = {"block_out_channels": [4, 8, 8], "work_size": 64}
    spec = {"class_path": "saswap.models.ToneHarmonizer", "init_args": init}
    torch.save(
        {
            "state_dict": {f"harmonizer.{k}": v for k, v in model.state_dict().items()},
            "hyper_parameters": {"harmonizer": spec}, "datamodule_hyper_parameters": {"image_size": 64},
        },
        path,
    )  # fmt: skip
    return model.eval()


def test_saswap_export_tells_each_kind_of_checkpoint_apart(exported, tmp_path, capsys):
    """One command exports the swap model, a face parser or a tone harmoniser, by what the checkpoint holds, and says
    how to use it."""
    from saswap.cli import main
    from saswap.face.parsing import FaceParsing
    from saswap.models import FaceParser
    from saswap.models.tone_harmonizer import ToneHarmonizer

    parser = _parser_checkpoint(tmp_path / "parser.ckpt")
    assert main(["export", str(tmp_path / "parser.ckpt"), str(tmp_path / "p"), "--covered-threshold", "0.7"]) == 0
    out = capsys.readouterr().out
    assert "exported the face parser" in out and f"saswap swap --occlusion {tmp_path / 'p'}" in out
    loaded = FaceParser.from_pretrained(tmp_path / "p")
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded.eval()(x), parser(x)) and loaded.covered_threshold == 0.7
    assert FaceParsing(tmp_path / "p").backend == "onnx"  # the ONNX copy the compose stage runs

    harmonizer = _harmonizer_checkpoint(tmp_path / "tone.ckpt")
    assert main(["export", str(tmp_path / "tone.ckpt"), str(tmp_path / "h")]) == 0
    assert "saswap swap --harmonize" in capsys.readouterr().out
    loaded = ToneHarmonizer.from_pretrained(tmp_path / "h").eval()
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), harmonizer.state_dict().values()))
    # a parser's setting is refused for another model, before anything is written
    code = main(["export", str(tmp_path / "tone.ckpt"), str(tmp_path / "h2"), "--covered-threshold", "0.6"])
    assert code == 2 and "a face parser's setting" in capsys.readouterr().err and not (tmp_path / "h2").exists()


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", r"nope.ckpt: no such checkpoint"),
        ("text", r"notes.ckpt: not a training checkpoint \(torch cannot read it: "),
        ("other", r"other.ckpt: not a checkpoint of saswap's training \(none of SaSwapSystem"),
        ("to-a-file", r"taken.txt: exists and is not a folder"),
        ("not-empty", r"full: output folder exists and is not empty"),
        ("under-a-file", r"taken.txt/model: cannot write its folder \(.*taken.txt is a file, not a folder\)"),
        ("wrong-shapes", r"parser.ckpt: its parser weights do not fit the FaceParser"),
    ],
)
def test_saswap_export_bad_input_one_line_and_nothing_written(tmp_path, capsys, case, message):
    from saswap.cli import main

    _parser_checkpoint(tmp_path / "parser.ckpt")
    (tmp_path / "notes.ckpt").write_text("hello")
    torch.save({"state_dict": {"encoder.weight": torch.zeros(1)}}, tmp_path / "other.ckpt")
    (tmp_path / "taken.txt").write_text("keep")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("keep")
    ckpt, out = {
        "missing": ("nope.ckpt", "out"), "text": ("notes.ckpt", "out"), "other": ("other.ckpt", "out"),
        "to-a-file": ("parser.ckpt", "taken.txt"), "not-empty": ("parser.ckpt", "full"),
        "under-a-file": ("parser.ckpt", "taken.txt/model"), "wrong-shapes": ("parser.ckpt", "out"),
    }[case]  # fmt: skip
    if case == "wrong-shapes":  # hyper-parameters that describe another network than the weights
        ckpt_data = torch.load(tmp_path / "parser.ckpt", weights_only=False)
        ckpt_data["hyper_parameters"]["parser"]["init_args"]["block_out_channels"] = [8, 8, 16]
        torch.save(ckpt_data, tmp_path / "parser.ckpt")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main(["export", str(tmp_path / ckpt), str(tmp_path / out)]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and err.count("\n") == 1 and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no half-made folder, nothing changed


def test_saswap_export_writes_the_swap_model_from_its_checkpoint(tmp_path, capsys):
    import lightning

    from saswap.cli import main

    system = _tiny_system()
    torch.save(
        {
            "state_dict": system.state_dict(), "hyper_parameters": dict(system.hparams),
            "pytorch-lightning_version": lightning.__version__,
        },
        tmp_path / "swap.ckpt",
    )  # fmt: skip
    assert main(["export", str(tmp_path / "swap.ckpt"), str(tmp_path / "zoo"), "--no-onnx"]) == 0
    out = capsys.readouterr().out
    assert "exported the SaSwap swap model" in out and f"saswap swap --weights {tmp_path / 'zoo'}" in out
    index = json.loads((tmp_path / "zoo" / "model_index.json").read_text())
    assert index["engine"] == "saswap" and "onnx" not in index and not (tmp_path / "zoo" / "saswap.onnx").exists()
    from saswap.models import FusionGenerator

    generator = FusionGenerator.from_pretrained(tmp_path / "zoo" / "generator")
    ema = system.generator_ema.state_dict().values()
    assert all(torch.equal(a, b) for a, b in zip(generator.state_dict().values(), ema))


def test_exported_parser_and_harmonizer_serve_a_swap_from_the_command_line(tmp_path, capsys):
    """What a user trains is used by name of its folder: the target's cover and the source's cleaning (parser), the
    tone (harmoniser); the tag records the folders by name, never the user's paths."""
    from PIL import Image

    from saswap import SaSwapPipeline
    from saswap.cli import main
    from saswap.pipelines.batch import BatchSettings
    from saswap.provenance import read_tag

    _parser_checkpoint(tmp_path / "parser.ckpt")
    _harmonizer_checkpoint(tmp_path / "tone.ckpt")
    assert main(["export", str(tmp_path / "parser.ckpt"), str(tmp_path / "my-parser")]) == 0
    assert main(["export", str(tmp_path / "tone.ckpt"), str(tmp_path / "my-tone")]) == 0
    source, target = data_path("images", "sberswap__beckham.jpg"), data_path("images", "sadtalker__happy.png")
    common = ["swap", "-s", str(source), "-t", str(target)]
    assert main([*common, "-o", str(tmp_path / "default.png")]) == 0
    assert main([*common, "-o", str(tmp_path / "mine.png"), "--occlusion", str(tmp_path / "my-parser"),
                 "--harmonize", str(tmp_path / "my-tone")]) == 0  # fmt: skip
    tag = read_tag(tmp_path / "mine.png")
    assert tag["occlusion"] == "my-parser" and tag["harmonize"] == "my-tone" and str(tmp_path) not in str(tag)
    assert not {"occlusion", "harmonize"} & set(read_tag(tmp_path / "default.png"))
    a, b = (np.asarray(Image.open(tmp_path / n), np.int16) for n in ("default.png", "mine.png"))
    assert np.abs(a - b).max() > 10  # an untrained parser and harmoniser change the picture
    pipe = SaSwapPipeline.from_pretrained("saswap-geometric", compose={"occlusion": str(tmp_path / "my-parser")})
    assert pipe.engine.clean_source == str(tmp_path / "my-parser") == pipe.compositor.occlusion
    rules = SaSwapPipeline.from_pretrained("saswap-geometric", compose={"occlusion": "rules"})
    assert rules.engine.clean_source == "saswap-face-parser" and rules.compositor.occlusion == "rules"
    capsys.readouterr()
    assert main([*common, "-o", str(tmp_path / "x.png"), "--occlusion", str(tmp_path / "absent")]) == 2
    assert "absent: no face parser there" in capsys.readouterr().err and not (tmp_path / "x.png").exists()
    # a batch takes them too, and a missing folder stops it before any job
    assert BatchSettings(occlusion=str(tmp_path / "my-parser")).compose() == {"occlusion": str(tmp_path / "my-parser")}
    with pytest.raises(SaSwapError, match="no tone harmoniser there"):
        BatchSettings(harmonize=str(tmp_path / "absent"))
