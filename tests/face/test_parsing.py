"""The shipped face parser at run time: loading, probabilities on real crops, occluders kept by real swaps."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import data_path

from saswap.errors import ModelNotFoundError
from saswap.face.parsing import (
    DEFAULT_FACE_PARSER,
    FaceParsing,
    default_face_parsing,
    face_parser_path,
    occlusion_method,
)


def test_shipped_weights_card_and_zoo_entry():
    from saswap.models import FaceParser
    from saswap.zoo import get_entry

    folder = face_parser_path()
    weights = folder / "model.safetensors"
    assert weights.stat().st_size <= 5 * 1024 * 1024  # the budget for shipped weights
    card = (folder / "README.md").read_text()
    assert "Apache-2.0" in card and "recipes/face-parser.yaml" in card
    config = json.loads((folder / "config.json").read_text())
    parser = FaceParser.from_pretrained(DEFAULT_FACE_PARSER)
    assert parser.classes[-1] == "occluder" and parser.image_size == config["image_size"] == get_entry(DEFAULT_FACE_PARSER).image_size
    assert get_entry(DEFAULT_FACE_PARSER).engine == "parser" and get_entry(DEFAULT_FACE_PARSER).published


def test_clear_errors(tmp_path):
    from saswap import SaSwapPipeline

    with pytest.raises(ModelNotFoundError, match="no face parser there"):
        FaceParsing(tmp_path)
    with pytest.raises(ModelNotFoundError, match="not a swap engine"):
        SaSwapPipeline.from_pretrained(DEFAULT_FACE_PARSER)
    assert occlusion_method("parser") == DEFAULT_FACE_PARSER and occlusion_method(None) == "off"
    assert occlusion_method(str(tmp_path)) == str(tmp_path)


class _Torch(FaceParsing):
    backend = "torch"


def test_the_shipped_onnx_copy_is_the_shipped_weights(analyzer):
    """The parser runs in ONNX Runtime (no torch import at start-up); its ONNX copy was made from the shipped weights
    and gives their probabilities."""
    from saswap.face.parsing import ONNX_DIGEST_KEY, ONNX_FILE
    from saswap.io import load_image

    folder = face_parser_path()
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(folder / ONNX_FILE)).metadata_props}
    import hashlib

    assert meta[ONNX_DIGEST_KEY] == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    image = load_image(data_path("images", "face_recognition__obama.jpg"))
    face = analyzer(image)[0]
    parsing = FaceParsing()
    assert parsing.backend == "onnx"
    a, b = parsing.probabilities(image, face.keypoints), _Torch().probabilities(image, face.keypoints)
    from saswap.face.parsing import _OnnxParser

    assert isinstance(parsing.model, _OnnxParser) and not isinstance(_Torch().model, _OnnxParser)
    assert np.abs(a - b).max() < 1e-4 and (a.argmax(-1) == b.argmax(-1)).mean() > 0.9999
    # another input size than the copy was made for: torch
    assert FaceParsing(image_size=128).backend == "torch" and FaceParsing(image_size=256).backend == "onnx"


def test_an_onnx_copy_is_written_and_a_stale_one_refused(tmp_path):
    from saswap.face.parsing import ONNX_FILE, write_onnx
    from saswap.models import FaceParser

    rng = np.random.default_rng(0)
    crop = rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)
    keypoints = np.array([[33, 40], [63, 40], [48, 55], [36, 70], [60, 70]], np.float64)
    folders = []
    import torch

    with torch.random.fork_rng():
        for seed in (0, 1):
            torch.manual_seed(seed)
            folder = tmp_path / f"p{seed}"
            FaceParser(block_out_channels=(4, 8), image_size=32).eval().save_pretrained(folder)
            folders.append(folder)
    assert FaceParsing(folders[0]).backend == "torch"  # no copy yet
    write_onnx(folders[0])
    import os

    umask = os.umask(0)
    os.umask(umask)
    assert (folders[0] / ONNX_FILE).stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file
    assert sorted(p.name for p in folders[0].iterdir()) == ["README.md", "config.json", ONNX_FILE, "model.safetensors"]
    parsing = FaceParsing(folders[0])
    assert parsing.backend == "onnx" and parsing.image_size == 32
    assert np.abs(parsing.probabilities(crop, keypoints) - _Torch(folders[0]).probabilities(crop, keypoints)).max() < 1e-5
    (folders[1] / ONNX_FILE).write_bytes((folders[0] / ONNX_FILE).read_bytes())  # another parser's copy
    with pytest.raises(ModelNotFoundError, match="was not made from"):
        FaceParsing(folders[1]).probabilities(crop, keypoints)


def test_swaps_start_without_torch(tmp_path):
    """Preparing the source (face analysis, the parser's source cleaning), an image swap and a video swap with its
    template analysed on the way (the target's parsing too; a cached swap parses nothing) import no torch (about a
    second of start-up)."""
    import os
    import subprocess
    import sys

    code = (
        "import sys; from saswap import SaSwapPipeline; p = SaSwapPipeline(); "
        f"s, _ = p.prepare_source({str(data_path('images', 'sberswap__beckham.jpg'))!r}); "
        f"p(s, {str(data_path('images', 'face_recognition__obama.jpg'))!r}); "
        f"p.swap_video(s, {str(data_path('videos', 'liveportrait__d8.mp4'))!r}, {str(tmp_path / 'o.mp4')!r}, "
        "cache=False, end=0.2, progress=False); "
        "print('torch' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_probabilities_on_a_real_face(analyzer):
    from saswap.face.masks import face_region_masks
    from saswap.io import load_image

    image = load_image(data_path("images", "face_recognition__obama.jpg"))
    face = analyzer(image)[0]
    parsing = default_face_parsing()
    probs = parsing.probabilities(image, face.keypoints)
    assert probs.shape == image.shape[:2] + (9,)
    assert np.allclose(probs.sum(-1), 1.0, atol=1e-3)
    regions = face_region_masks(face.landmarks[:468, :2].astype(np.float64), image.shape[:2])
    covered = parsing.covered(image, face.keypoints)
    # an unoccluded face: its cheeks and forehead are visible face, the photo's corner is not
    assert float(np.median(covered[regions["reference"] > 0.5])) < 0.2
    assert covered[0, 0] > 0.9 and covered[-1, -1] > 0.9
    # without background, only glasses, hair and occluders count: the corner is then free
    assert parsing.covered(image, face.keypoints, background=False)[0, 0] < covered[0, 0]


@pytest.mark.slow
def test_swap_keeps_a_skin_toned_fist_and_a_microphone(analyzer):
    """Held-out occluder kinds on a held-out photo: the parser keeps them; with occlusion off they are painted over."""
    from saswap import SaSwapPipeline
    from saswap.compose import Compositor
    from saswap.eval.parsing import occluder_kept, paste_on_face
    from saswap.io import load_image

    target = load_image(data_path("images", "sadtalker__happy.png"))  # held out of the parser's training
    source = load_image(data_path("images", "face_recognition__obama.jpg"))
    face = analyzer(target)[0]
    parser_pipe = SaSwapPipeline.from_pretrained("saswap-geometric", compositor=Compositor(occlusion="parser"))
    off_pipe = SaSwapPipeline(parser_pipe.engine, compositor=Compositor(occlusion="off"), analyzer=parser_pipe.analyzer)
    prepared, _ = parser_pipe.prepare_source(source)
    lost_without = 0
    for seed, kind in enumerate(("microphone", "hand_fist")):
        tone = tuple(int(v) for v in np.median(target[int(face.box[1]) : int(face.box[3]), int(face.box[0]) : int(face.box[2])].reshape(-1, 3), 0))
        occluded, mask = paste_on_face(target, face, kind, np.random.default_rng(seed), tone=tone)
        assert mask.sum() > 200
        out = parser_pipe(prepared, occluded).image
        assert occluder_kept(occluded, out, mask), kind
        changed = (np.abs(out.astype(int) - occluded.astype(int)) > 20).any(-1)
        assert changed.sum() > 2000  # the face itself was swapped
        lost_without += not occluder_kept(occluded, off_pipe(prepared, occluded).image, mask)
    assert lost_without >= 1  # the check can fail: without occlusion handling an occluder is painted over


def test_cache_key_names_the_method_and_weights():
    from saswap.compose import Compositor

    a, b = Compositor(occlusion="parser").config()["occlusion"], Compositor(occlusion="rules").config()["occlusion"]
    assert a.startswith("parser:") and len(a.split(":")[1]) == 12 and a.split(":")[2] == FaceParsing().backend
    assert b == "rules"
    assert Compositor(occlusion=False).config()["occlusion"] == "off"
