"""Tone harmoniser training: self-supervised samples from real photos (mask, colour and light changes, the
parser's split), the validation measures, a few steps that lower the loss, the recipe through LightningCLI
and the export, and the ``saswap train-harmonizer`` command."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch
from conftest import ROOT, data_path

pytest.importorskip("lightning")
pytest.importorskip("jsonargparse")

from saswap.face.colour import delta_e  # noqa: E402
from saswap.models import FACE_PARSER_CLASSES, ToneHarmonizer  # noqa: E402
from saswap.training.harmonize_data import (  # noqa: E402
    ToneHarmonizationDataModule,
    ToneHarmonizationDataset,
    harmonization_sample,
    jittered_face_mask,
    perturb_tone,
    recolour_scene,
)
from saswap.training.harmonizer_system import (  # noqa: E402
    ToneHarmonizerSystem,
    border_colour_step,
    lab_l1_loss,
    mean_delta_e,
    tone_delta_e,
)
from saswap.training.parsing_data import build_parsing_cache, load_records  # noqa: E402

TRAIN_PHOTO = "face_recognition__obama.jpg"
HELD_PHOTO = "sberswap__beckham.jpg"
TINY = dict(grid_size=4, luma_bins=2, block_out_channels=(8, 16), work_size=16)
SKIN = FACE_PARSER_CLASSES.index("skin")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("harmonizer_photos")
    for name in (TRAIN_PHOTO, HELD_PHOTO):
        os.symlink(data_path("images", name), folder / name)
    cache = tmp_path_factory.mktemp("harmonizer_cache")
    files = sorted(folder.iterdir())
    records = load_records(build_parsing_cache(files, cache, size=128, frames_per_video=24), files)
    return folder, cache, records


@pytest.fixture
def one_thread():
    """Tiny tensors: one thread (two threads wait on each other when other jobs keep the cores busy)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _uint8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


def test_a_sample_changes_the_face_and_nothing_else(photos):
    rec = next(r for r in photos[2] if r.source == TRAIN_PHOTO)
    s = harmonization_sample(rec, 128, np.random.default_rng(0), flip=False, scene=0.0)
    image, mask, target = s["image"], s["mask"], s["target"]
    assert image.shape == target.shape == (128, 128, 3) and mask.shape == (128, 128)
    assert np.array_equal(_uint8(target), rec.crop)  # the target is the original crop
    face = np.isin(rec.label, [FACE_PARSER_CLASSES.index(c) for c in ("skin", "eyes", "brows", "lips", "mouth")])
    assert mask[face].mean() > 0.9 and mask[64, 64] == 1.0  # the visible face (its centre, the nose) is in the mask
    assert 0.1 < ((mask > 0) & (mask < 1)).sum() / (mask > 0.5).sum() < 0.8  # a soft edge, not a soft blob
    assert mask[rec.label == FACE_PARSER_CLASSES.index("background")].mean() < 0.1
    inside, outside = mask > 0.99, mask == 0
    de_in = delta_e(_uint8(image[inside]), _uint8(target[inside])).mean()
    assert de_in > 2.0, de_in  # the face's colour and light changed measurably...
    assert np.array_equal(image[outside], target[outside])  # ...and nothing outside the mask did
    assert np.array_equal(s["skin"], rec.label == SKIN)
    # the jitter moves the edge: two draws give two different masks around one face
    a, b = (jittered_face_mask(rec.label, np.random.default_rng(i)) for i in (1, 2))
    inner = cv2.erode(face.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0  # 7 px inside the face's edge
    assert np.abs(a - b).max() > 0.5 and inner.sum() > 1000
    assert a[inner].min() > 0.999 and b[inner].min() > 0.999  # only the edge moves
    with pytest.raises(ValueError, match="expected an image"):
        perturb_tone(target, mask[:10], np.random.default_rng(0))


def test_scene_recolouring_and_an_eroded_mask(photos):
    """The whole crop is recoloured alike in input and target (a face's tone must be read from its surroundings,
    not remembered per person); an eroded mask leaves a ring of the face's own skin around it."""
    rec = next(r for r in photos[2] if r.source == TRAIN_PHOTO)
    s = harmonization_sample(rec, 128, np.random.default_rng(4), flip=False, max_erode=0.06, min_strength=0.2)
    crop = rec.crop.astype(np.float32) / 255
    assert np.abs(s["target"] - crop).mean() > 0.01  # the scene changed...
    outside = s["mask"] == 0
    assert np.array_equal(s["image"][outside], s["target"][outside])  # ...alike in input and target
    face = np.isin(rec.label, [FACE_PARSER_CLASSES.index(c) for c in ("skin", "eyes", "brows", "lips", "mouth")])
    eroded = [jittered_face_mask(rec.label, np.random.default_rng(i), max_dilate=0.0, max_erode=0.06) for i in range(6)]
    assert max(float((m[face] < 0.5).mean()) for m in eroded) > 0.1  # some draws leave the face's rim outside
    near = cv2.dilate(face.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0  # 4 px beyond the face's edge
    assert all(float(m[~near].max()) < 0.5 for m in eroded)  # no draw reaches beyond the edge's jitter
    x = np.random.default_rng(0).uniform(0.1, 0.9, (16, 16, 3)).astype(np.float32)
    assert np.array_equal(recolour_scene(x, np.random.default_rng(0), 0.0), x)


def test_dataset_is_seeded_flips_and_keeps_the_split(photos, tmp_path):
    folder, cache, records = photos
    ds = ToneHarmonizationDataset(records, image_size=64, length=4, seed=3)
    a, b = ds[1], ds[1]
    assert a["image"].shape == (3, 64, 64) and a["mask"].shape == (1, 64, 64) and a["skin"].dtype == torch.bool
    assert all(torch.equal(a[k], b[k]) for k in a)  # a seeded item is the same every time
    assert not torch.equal(ds[0]["image"], ds[2]["image"])
    train = ToneHarmonizationDataset(records, image_size=64, length=4)  # no seed: a new draw each call, from torch's
    torch.manual_seed(5)
    first = [train[1]["image"], train[1]["image"]]
    torch.manual_seed(5)
    again = [train[1]["image"], train[1]["image"]]
    assert not torch.equal(*first) and all(map(torch.equal, first, again))  # so a seeded training run repeats
    rec = records[0]
    targets = [_uint8(harmonization_sample(rec, 128, np.random.default_rng(i), scene=0.0)["target"]) for i in range(8)]
    flips = {bool(np.array_equal(t, rec.crop[:, ::-1])) for t in targets}
    assert all(np.array_equal(t, rec.crop) or np.array_equal(t, rec.crop[:, ::-1]) for t in targets)
    assert flips == {True, False}
    # the parser's split: the held-out photo only validates; a non-commercial file never trains
    dm = ToneHarmonizationDataModule(roots=[str(folder)], cache_dir=str(cache), cache_size=128, image_size=64)
    assert {r.source for r in dm.records(False)} == {TRAIN_PHOTO}
    assert {r.source for r in dm.records(True)} == {HELD_PHOTO}
    nc = tmp_path / "nc"
    nc.mkdir()
    for name in (TRAIN_PHOTO, HELD_PHOTO):
        os.symlink(folder / name, nc / name)
    (nc / "MANIFEST.tsv").write_text(f"file\tlicense\n{TRAIN_PHOTO}\tCC-BY-NC-4.0\n")
    dm = ToneHarmonizationDataModule(roots=[str(nc)], cache_dir=str(cache), cache_size=128, image_size=64)
    assert dm.records(False) == [] and {r.source for r in dm.records(True)} == {HELD_PHOTO}


def test_measures_on_constructed_cases():
    x = torch.full((2, 3, 16, 16), 0.5)
    m = torch.zeros(2, 1, 16, 16)
    m[..., 4:12, 4:12] = 1
    y = x.clone()
    y[0][:, m[0, 0] > 0] = 0.7  # image 0: the face is brighter; image 1 unchanged
    de = mean_delta_e(y, x, m)
    assert de[0] > 10 and de[1] == 0
    assert torch.allclose(tone_delta_e(y, x, m), de, atol=1e-4)  # a flat change: mean ΔE == tone ΔE
    step = border_colour_step(y, m, 2)
    assert step[0] > 10 and step[1] < 1e-3
    # a grey change moves only L*: the L1 over L*, a*, b* is the ΔE, averaged over both images' masks
    assert abs(float(lab_l1_loss(y, x, m)) - float(de.mean())) < 1e-2 and float(lab_l1_loss(y, x, 1 - m)) == 0
    assert border_colour_step(x, torch.ones(2, 1, 16, 16)).isnan().all()  # no edge, no step
    with pytest.raises(ValueError, match="weight of shape"):
        mean_delta_e(y, x, m[:, :, :8])
    with pytest.raises(ValueError, match="RGB images of one shape"):
        lab_l1_loss(y, x[:1], m)


def test_a_few_steps_lower_the_loss_and_the_skin_delta_e(photos, one_thread):
    _, _, records = photos
    ds = ToneHarmonizationDataset(records, image_size=48, length=4, seed=0)
    batch = {k: torch.stack([ds[i][k] for i in range(4)]) for k in ("image", "mask", "target", "skin")}
    torch.manual_seed(0)
    system = ToneHarmonizerSystem(ToneHarmonizer(**TINY), lambda_smooth=0.1)
    skin = (batch["skin"].unsqueeze(1) & (batch["mask"] > 0.5)).float()
    before = mean_delta_e(batch["image"], batch["target"], skin).nanmean()
    opt = torch.optim.AdamW(system.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        loss, _, _ = system._losses(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0], losses[::4]
    system.eval()
    with torch.no_grad():
        after = mean_delta_e(system(batch["image"], batch["mask"]), batch["target"], skin).nanmean()
    assert after < before, (float(before), float(after))


def test_recipe_runs_through_lightning_cli(photos, tmp_path, one_thread):
    from saswap.errors import SaSwapError
    from saswap.training.harmonizer_cli import train_harmonizer_main
    from saswap.training.harmonizer_system import export_harmonizer

    folder, cache, _ = photos
    cli = train_harmonizer_main(
        [
            "fit", "--config", str(ROOT / "recipes" / "tone-harmonizer.yaml"),
            "--data.roots", f"[{folder}]", "--data.cache_dir", str(cache), "--data.cache_size", "128",
            "--data.image_size", "64", "--data.batch_size", "2", "--data.epoch_length", "4", "--data.num_workers", "0",
            "--model.harmonizer.init_args.block_out_channels", "[4, 8]", "--model.harmonizer.init_args.work_size", "32",
            "--model.harmonizer.init_args.grid_size", "4",
            "--trainer.max_steps", "2", "--trainer.val_check_interval", "2",
            "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path),
        ]
    )  # fmt: skip
    assert cli.trainer.global_step == 2
    metrics = cli.trainer.callback_metrics
    assert float(metrics["val/skin_delta_e_input"]) > 1.0  # the held-out face was changed measurably
    for name in ("val/skin_delta_e", "val/tone_delta_e", "val/border_step", "val/border_step_excess"):
        assert torch.isfinite(metrics[name]), name
    assert {r.source for r in cli.datamodule.val_set.records} == {HELD_PHOTO}
    assert {r.source for r in cli.datamodule.train_set.records} == {TRAIN_PHOTO}
    # the checkpoint exports to a save_pretrained folder that needs no Lightning
    out = export_harmonizer(cli.trainer.checkpoint_callback.last_model_path, tmp_path / "exported")
    loaded = ToneHarmonizer.from_pretrained(out).eval()
    assert loaded.image_size == 64 and loaded.grid_size == 4
    x, m = torch.rand(1, 3, 64, 64), torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded.harmonize(x, m), cli.model.harmonizer.eval().harmonize(x, m))
    with pytest.raises(SaSwapError, match="not empty"):
        export_harmonizer(cli.trainer.checkpoint_callback.last_model_path, out)


def test_train_harmonizer_command_takes_its_own_help_and_recipe(capsys):
    from saswap.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["train-harmonizer", "--help"])  # LightningCLI's help, not "unrecognized arguments"
    assert exc.value.code == 0 and "saswap train-harmonizer" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["train-harmonizer", "fit", "--config", str(ROOT / "recipes" / "tone-harmonizer.yaml"), "--print_config"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "ToneHarmonizer" in out and "lambda_smooth" in out


def test_non_face_records_are_refused(photos):
    from saswap.errors import SaSwapError

    rec = photos[2][0]
    empty = type(rec)(rec.crop, np.zeros_like(rec.label), rec.keypoints, rec.mesh, rec.tone, rec.source)
    with pytest.raises(SaSwapError, match="no face records with a visible face"):
        ToneHarmonizationDataset([empty])


def test_data_module_splits_a_users_own_folder(photos, tmp_path):
    """Photos without the shared data set's held-out names: one of the two is held out, whole, not "no face records"."""
    from saswap.errors import SaSwapError

    _, cache, _ = photos
    folder = tmp_path / "mine"
    folder.mkdir()
    os.symlink(data_path("images", TRAIN_PHOTO), folder / TRAIN_PHOTO)
    dm = ToneHarmonizationDataModule(root=str(folder), cache_dir=str(cache), cache_size=128, image_size=64)
    with pytest.raises(SaSwapError, match=f"^{folder}: 1 usable photo or video found; training needs at least 2"):
        dm.setup("fit")
    os.symlink(data_path("images", "face_recognition__obama2.jpg"), folder / "face_recognition__obama2.jpg")
    dm = ToneHarmonizationDataModule(root=str(folder), cache_dir=str(cache), cache_size=128, image_size=64)
    dm.setup("fit")
    train, val = {r.source for r in dm.train_set.records}, {r.source for r in dm.val_set.records}
    assert len(train) == len(val) == 1 and not train & val
    with pytest.raises(SaSwapError, match="^--data.root is required"):
        ToneHarmonizationDataModule(root="???")
