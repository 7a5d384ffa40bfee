"""Face parser training: self-labelled data on real photos, the split, a few steps that lower the loss,
the recipe through LightningCLI, and the acceptance measures on constructed cases."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, data_path

pytest.importorskip("lightning")
pytest.importorskip("jsonargparse")

from saswap.eval.occluder_kinds import (  # noqa: E402
    HELDOUT_OCCLUDER_KINDS,
    OCCLUDER_KINDS,
    TRAIN_OCCLUDER_KINDS,
    draw_occluder,
)
from saswap.eval.parsing import (  # noqa: E402
    ParsingCase,
    calibrate_threshold,
    confusion_counts,
    evaluate_parser,
    heldout_cases,
    occluder_kept,
    skin_wrongly_kept,
)
from saswap.models import FACE_PARSER_CLASSES, FaceParser  # noqa: E402
from saswap.training.parser_system import FaceParserSystem, dice_loss, label_boundary  # noqa: E402
from saswap.training.parsing_data import (  # noqa: E402
    HELDOUT_FILES,
    FaceParsingDataset,
    build_parsing_cache,
    compose_sample,
    load_records,
    split_files,
)

TRAIN_PHOTO = "face_recognition__obama.jpg"
HELD_PHOTO = "sberswap__beckham.jpg"
CLS = {n: i for i, n in enumerate(FACE_PARSER_CLASSES)}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parser_photos")
    for name in (TRAIN_PHOTO, HELD_PHOTO):
        os.symlink(data_path("images", name), folder / name)
    cache = tmp_path_factory.mktemp("parser_cache")
    files = sorted(folder.iterdir())
    records = load_records(build_parsing_cache(files, cache, size=128), files)
    return folder, cache, records


def test_split_is_disjoint_and_names_real_occluded_photos():
    assert not set(HELDOUT_OCCLUDER_KINDS) & set(TRAIN_OCCLUDER_KINDS)
    assert set(HELDOUT_OCCLUDER_KINDS) | set(TRAIN_OCCLUDER_KINDS) == set(OCCLUDER_KINDS)
    assert any(OCCLUDER_KINDS[k].skin for k in HELDOUT_OCCLUDER_KINDS)  # a held-out hand
    for name in ("insightface__mask.png", "face_recognition__lin-manuel-miranda.png", "insightface__Teresa_Williams_0001_1k.jpg"):
        assert name in HELDOUT_FILES
    train, held = split_files([Path(TRAIN_PHOTO), Path(HELD_PHOTO)])
    assert [p.name for p in train] == [TRAIN_PHOTO] and [p.name for p in held] == [HELD_PHOTO]


def test_labels_of_a_real_photo(photos):
    from saswap.face.masks import polygon_mask
    from saswap.face.topology import region_loop

    _, cache, records = photos
    rec = next(r for r in records if r.source == TRAIN_PHOTO)
    assert rec.crop.shape == (128, 128, 3) and rec.label.shape == (128, 128)
    lips_poly = polygon_mask(rec.mesh[list(region_loop("LIPS")), :2], (128, 128)) > 0
    lips = rec.label == CLS["lips"]
    assert lips.sum() > 20 and lips_poly[lips].mean() == 1.0  # the lips lie inside the mesh's lip outline
    skin = rec.label == CLS["skin"]
    assert skin.sum() > 0.15 * 128 * 128 and skin[64, 64]  # the face's centre (nose) is skin
    assert (rec.label == CLS["eyes"]).sum() > 10 and (rec.label == CLS["brows"]).sum() > 10
    assert rec.label[2, 2] in (CLS["background"], CLS["hair"])
    assert len(list(cache.glob("*.npz"))) == 2  # one cache file per source
    # a pasted occluder's pixels are labelled with its class, the rest keeps the mesh's labels
    rng = np.random.default_rng(0)
    image, label, occluded, kinds = compose_sample(rec, 128, ["phone"], rng, occluder_p=1.0, max_occluders=1, jitter=False, photometric=0)
    assert kinds == ["phone"] and occluded.sum() > 100
    assert (label[occluded] == CLS["occluder"]).all() and np.array_equal(label[~occluded], rec.label[~occluded])
    assert np.abs(image[occluded].astype(int) - rec.crop[occluded].astype(int)).max() > 0
    _, label, occluded, _ = compose_sample(rec, 128, ["glasses_frame"], rng, occluder_p=1.0, max_occluders=1, jitter=False, photometric=0)
    assert (label[occluded] == CLS["glasses"]).all()


def test_skin_toned_hands_can_take_the_face_tone():
    tone = (150, 100, 80)
    hand = draw_occluder("hand_fist", np.random.default_rng(1), 128, tone=tone)
    opaque = hand[..., 3] == 255
    median = np.median(hand[opaque][:, :3], axis=0)
    assert np.abs(median - np.array(tone)).max() < 25
    with pytest.raises(KeyError, match="unknown occluder kind"):
        draw_occluder("umbrella", np.random.default_rng(0), 64)


def test_a_few_steps_lower_the_loss(photos):
    _, _, records = photos
    ds = FaceParsingDataset(records, image_size=64, length=8, occluder_p=1.0, seed=0)
    batch = {k: torch.stack([ds[i][k] for i in range(8)]) for k in ("image", "label", "occluded")}
    assert batch["image"].shape == (8, 3, 64, 64) and batch["label"].max() < len(FACE_PARSER_CLASSES)
    torch.manual_seed(0)
    system = FaceParserSystem(FaceParser(block_out_channels=(8, 16, 32)))
    opt = torch.optim.AdamW(system.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss, _, _ = system._losses(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.6 * losses[0], losses[::8]


def test_a_seeded_training_run_draws_the_same_items(photos):
    from torch.utils.data import DataLoader

    _, _, records = photos
    ds = FaceParsingDataset(records, image_size=32, length=6, occluder_p=1.0)  # a training set: no fixed seed

    def epochs(seed):  # as the recipe loads it: shuffled, in a worker process that lives across epochs
        torch.manual_seed(seed)
        loader = DataLoader(ds, batch_size=3, shuffle=True, num_workers=1, persistent_workers=True)
        return [torch.cat([b["image"] for b in loader]) for _ in range(2)]

    a, b, c = epochs(0), epochs(0), epochs(1)
    assert all(map(torch.equal, a, b))  # seed_everything makes the run repeat, epoch by epoch
    assert not torch.equal(a[0], a[1]) and not torch.equal(a[0], c[0])  # and each epoch, each seed draws anew


def test_dice_loss_errors_and_range():
    logits = torch.randn(2, 3, 4, 4)
    label = torch.randint(0, 3, (2, 4, 4))
    assert 0 <= float(dice_loss(logits, label)) <= 1
    with pytest.raises(ValueError, match="expected logits"):
        dice_loss(logits, label[0])


def test_boundary_weight_makes_outline_mistakes_cost_more():
    from saswap.training.parsing_data import IGNORE_INDEX

    label = torch.zeros(1, 16, 16, dtype=torch.long)
    label[:, :, 8:] = 1  # skin | occluder, a vertical outline between columns 7 and 8
    label[:, :2] = IGNORE_INDEX  # an ignored band marks no outline of its own
    band = label_boundary(label, 2)
    assert band[0, 2:, 6:10].eq(1).all() and band[0, 2:, :6].eq(0).all() and band[0, 2:, 10:].eq(0).all()
    assert band[0, :2].eq(0).all()
    with pytest.raises(ValueError, match="boundary_weight"):
        FaceParserSystem(FaceParser(block_out_channels=(8, 16)), boundary_weight=-1.0)

    class Fixed(torch.nn.Module):  # a parser whose logits the test sets
        num_classes, classes = 2, ("skin", "occluder")

        def __init__(self, logits):
            super().__init__()
            self.logits = logits

        def forward(self, image):
            return self.logits

    right = torch.stack([(label == 0).float(), (label == 1).float()], 1) * 4.0 - 2.0

    def ce(weight, wrong_cols):
        logits = right.clone()
        logits[:, :, 2:, wrong_cols] = logits[:, :, 2:, wrong_cols].flip(1)  # these columns called the other class
        system = FaceParserSystem(Fixed(logits), boundary_weight=weight, boundary_radius=2, lambda_dice=0.0)
        return float(system._losses({"image": torch.zeros(1, 3, 16, 16), "label": label})[0])

    # with no weight a wrong column costs the same wherever it lies; with it, a wrong column on the outline costs more
    assert ce(0.0, [7]) == pytest.approx(ce(0.0, [1]), rel=1e-5)
    assert ce(2.0, [7]) > 1.5 * ce(2.0, [1])
    assert ce(2.0, []) == pytest.approx(ce(0.0, []), rel=1e-5)


def test_recipe_runs_through_lightning_cli(photos, tmp_path):
    from saswap.training.parser_cli import train_parser_main

    folder, cache, _ = photos
    cli = train_parser_main(
        [
            "fit", "--config", str(ROOT / "recipes" / "face-parser.yaml"),
            "--data.roots", f"[{folder}]", "--data.cache_dir", str(cache), "--data.cache_size", "128",
            "--data.image_size", "64", "--data.batch_size", "2", "--data.epoch_length", "4", "--data.num_workers", "0",
            "--model.parser.init_args.block_out_channels", "[4, 8, 16]",
            "--trainer.max_steps", "2", "--trainer.val_check_interval", "2",
            "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path),
        ]
    )  # fmt: skip
    assert cli.trainer.global_step == 2
    metrics = cli.trainer.callback_metrics
    assert "val/miou" in metrics and 0 <= float(metrics["val/occluder_kept"]) <= 1
    assert len(cli.datamodule.val_set.records) >= 1 and cli.datamodule.val_set.records[0].source == HELD_PHOTO
    # the checkpoint exports to a save_pretrained folder that needs no Lightning
    from saswap.errors import SaSwapError
    from saswap.training.parser_system import export_parser

    folder = export_parser(cli.trainer.checkpoint_callback.last_model_path, tmp_path / "exported")
    loaded = FaceParser.from_pretrained(folder).eval()
    assert loaded.image_size == 64  # the size it was trained at, not the constructor's default
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded(x), cli.model.parser.eval()(x))
    from saswap.face.parsing import FaceParsing

    assert (folder / "model.onnx").is_file() and FaceParsing(folder).backend == "onnx"  # what runs at swap time
    assert FaceParsing(folder).image_size == 64
    with pytest.raises(SaSwapError, match="not empty"):
        export_parser(cli.trainer.checkpoint_callback.last_model_path, folder)
    # the weights' operating point travels in their config, and the compose stage and source cleaning read it
    from saswap.compose import Compositor

    assert loaded.covered_threshold == 0.5 and FaceParsing(folder).threshold == 0.5
    calibrated = export_parser(cli.trainer.checkpoint_callback.last_model_path, tmp_path / "calibrated", 0.7)
    assert FaceParser.from_pretrained(calibrated).covered_threshold == 0.7 and FaceParsing(calibrated).threshold == 0.7
    assert Compositor(occlusion=str(calibrated)).occlusion_threshold == 0.7
    assert Compositor(occlusion=str(calibrated), occlusion_threshold=0.6).occlusion_threshold == 0.6  # asked for
    assert Compositor(occlusion="off").occlusion_threshold == 0.5
    with pytest.raises(ValueError, match="covered_threshold"):
        export_parser(cli.trainer.checkpoint_callback.last_model_path, tmp_path / "bad", 1.0)


def test_measures_on_constructed_cases(photos):
    before = np.zeros((8, 8, 3), np.uint8)
    mask = np.zeros((8, 8), bool)
    mask[:4] = True
    after = before.copy()
    after[0, :6] = 50  # 6 of the occluder's 32 pixels change: under 20%
    assert occluder_kept(before, after, mask)
    after[1] = 50  # 14 of 32 change
    assert not occluder_kept(before, after, mask)
    with pytest.raises(ValueError, match="empty"):
        occluder_kept(before, after, np.zeros((8, 8), bool))
    assert skin_wrongly_kept(np.zeros((8, 8), bool), ~mask) == 0.0
    i, u = confusion_counts(torch.tensor([[1, 1, 2]]), torch.tensor([[1, 2, 2]]), 3)
    assert (i / u.clamp(min=1)).tolist() == [0.0, 0.5, 0.5]

    _, _, records = photos
    held = [r for r in records if r.source == HELD_PHOTO]
    cases = heldout_cases(held, image_size=64)
    assert {c.kind for c in cases} <= set(HELDOUT_OCCLUDER_KINDS) and any(c.skin_toned for c in cases)

    class Oracle(torch.nn.Module):
        """Answers each case's own labels: every occluder kept, no visible skin kept."""

        classes, num_classes, in_channels = FACE_PARSER_CLASSES, len(FACE_PARSER_CLASSES), 3

        def __init__(self, labels):
            super().__init__()
            self.labels = labels

        def forward(self, x):
            lab = torch.from_numpy(np.stack(self.labels[: len(x)]).astype(np.int64))
            self.labels = self.labels[len(x) :]
            return torch.nn.functional.one_hot(lab, self.num_classes).permute(0, 3, 1, 2).float()

    report = evaluate_parser(Oracle([c.label for c in cases]), cases)
    assert report.cases == len(cases) and report.occluder_kept == 1.0 and report.skin_wrongly_kept == 0.0
    assert report.miou == 1.0 and report.skin_toned_kept == 1.0
    # a parser that calls everything skin keeps no occluder and no skin
    wrong = [ParsingCase(c.image, np.full_like(c.label, CLS["skin"]), c.occluded, c.kind, c.source, c.skin_toned) for c in cases]
    report = evaluate_parser(Oracle([c.label for c in wrong]), cases)
    assert report.occluder_kept == 0.0 and report.failures

    class Hesitant(torch.nn.Module):
        """Every pixel: occluder with probability 0.6, skin 0.4."""

        classes, num_classes, in_channels = FACE_PARSER_CLASSES, len(FACE_PARSER_CLASSES), 3

        def forward(self, x):
            p = torch.full((len(x), self.num_classes, *x.shape[2:]), 1e-9)
            p[:, CLS["occluder"]], p[:, CLS["skin"]] = 0.6, 0.4
            return p.log()

    # argmax and the compose stage's threshold 0.5 keep every pixel; at 0.7 none is kept
    for threshold in (None, 0.5):
        report = evaluate_parser(Hesitant(), cases, threshold=threshold)
        assert report.occluder_kept == 1.0 and report.skin_wrongly_kept == 1.0
    report = evaluate_parser(Hesitant(), cases, threshold=0.7)
    assert report.occluder_kept == 0.0 and report.skin_wrongly_kept == 0.0 and report.miou < 1.0
    with pytest.raises(ValueError, match="threshold"):
        evaluate_parser(Hesitant(), cases, threshold=1.0)

    # its operating point: at most half the visible face kept needs a threshold above its 0.6; none reaches 0 of a
    # face always covered with probability 1, and the largest candidate is then returned
    chosen, rates = calibrate_threshold(Hesitant(), cases, 0.5, thresholds=(0.9, 0.5, 0.55, 0.65))
    assert chosen == 0.65 and rates[0.55] == 1.0 and rates[0.65] == 0.0 and rates[0.9] == 0.0

    class Hair(Hesitant):
        """Every pixel: hair, surely."""

        def forward(self, x):
            p = torch.full((len(x), self.num_classes, *x.shape[2:]), 1e-9)
            p[:, CLS["hair"]] = 1.0
            return p.log()

    chosen, rates = calibrate_threshold(Hair(), cases, 0.0)
    assert chosen == max(rates) == 0.95 and all(r == 1.0 for r in rates.values())
    with pytest.raises(ValueError, match="thresholds"):
        calibrate_threshold(Hesitant(), cases, 0.1, thresholds=(0.5, 1.0))


def test_non_commercial_files_never_train(tmp_path):
    for name in ("a.jpg", "b.jpg", HELD_PHOTO):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "MANIFEST.tsv").write_text(
        "file\tsource_repo\tlicense\n"
        "a.jpg\tx/y\tMIT\n"
        "b.jpg\tx/y\tCC-BY-NC-4.0\n"
        f"{HELD_PHOTO}\tx/y\tCC-BY-NC-4.0\n"
    )
    train, held = split_files(sorted(tmp_path.glob("*.jpg")))
    assert [p.name for p in train] == ["a.jpg"]  # b.jpg is non-commercial
    assert [p.name for p in held] == [HELD_PHOTO]  # measured on, never trained on
    # a manifest one folder up names files by their relative path
    sub = tmp_path / "images"
    sub.mkdir()
    (sub / "c.jpg").write_bytes(b"x")
    (tmp_path / "MANIFEST.tsv").write_text("file\tlicense\nimages/c.jpg\tCC-BY-NC-SA-4.0\n")
    from saswap.errors import SaSwapError

    with pytest.raises(SaSwapError, match=r"0 usable photo or video found \(1 more marked non-commercial"):
        split_files([sub / "c.jpg"])  # no file of HELDOUT_FILES, and none that may train


def test_training_labels_ignore_uncertain_pixels(photos):
    from saswap.training.parsing_data import IGNORE_INDEX, outline_band, unsure_face_pixels

    rec = photos[2][0]
    face = np.isin(rec.label, [CLS[c] for c in ("skin", "eyes", "brows", "lips", "mouth")])
    band = outline_band(rec.label, 2)
    # a thin band along the face's outline: every band pixel is within 2 px of the outline
    assert 0 < band.sum() < 0.3 * face.sum()
    inner = face & ~band
    assert inner.sum() > 0.6 * face.sum()
    unsure = unsure_face_pixels(rec.crop, rec.mesh, rec.label)
    assert not (unsure & ~face).any() and unsure.sum() < 0.5 * face.sum()
    rng = np.random.default_rng(3)
    image, label, occluded, kinds = compose_sample(
        rec, 128, ["phone"], rng, occluder_p=1.0, max_occluders=1, jitter=False, ignore_outline=1
    )
    assert (label == IGNORE_INDEX).any()
    assert (label[occluded] == CLS["occluder"]).all()  # pasted occluders keep their exact labels


def test_split_without_the_fixed_names_holds_out_whole_files_by_a_hash_of_the_name(caplog):
    """A user's own folder (no HELDOUT_FILES name): about 1 in 8 whole files held out, the same every run, logged."""
    from saswap.errors import SaSwapError

    files = [Path(f"mine/clip{i}.mp4") for i in range(8)] + [Path(f"mine/photo{i}.jpg") for i in range(8)]
    with caplog.at_level("INFO", logger="saswap.training.parsing_data"):
        train, held = split_files(files)
    assert held and train and not set(train) & set(held) and set(train) | set(held) == set(files)
    assert len(held) <= 4 and split_files(list(reversed(files))) == (sorted(train, key=files.index)[::-1], held[::-1])
    assert all(p.name in caplog.text for p in held) and "holding out" in caplog.text
    more_train, more_held = split_files(files + [Path("mine/extra.jpg")])
    assert set(held) <= set(more_held) and set(train) <= set(more_train) | {Path("mine/extra.jpg")}
    assert [len(s) for s in split_files(files[:2])] == [1, 1]  # two files: one of them held out
    with pytest.raises(SaSwapError, match=r"^mine: 1 usable photo or video found; training needs at least 2 \(one"):
        split_files(files[:1])
    # the shared data set's fixed names keep today's split exactly
    assert split_files(files + [Path(HELD_PHOTO)]) == (files, [Path(HELD_PHOTO)])


def test_data_module_splits_a_users_own_folder(photos, tmp_path):
    from saswap.errors import SaSwapError
    from saswap.training.parsing_data import FaceParsingDataModule

    _, cache, _ = photos
    folder = tmp_path / "mine"
    folder.mkdir()
    for name in (TRAIN_PHOTO, "face_recognition__obama2.jpg"):  # no name of HELDOUT_FILES
        os.symlink(data_path("images", name), folder / name)
    dm = FaceParsingDataModule(root=str(folder), cache_dir=str(cache), cache_size=128, image_size=64, epoch_length=2)
    dm.setup("fit")
    train, val = {r.source for r in dm.train_set.records}, {r.source for r in dm.val_set.records}
    assert len(train) == len(val) == 1 and not train & val and len(dm.val_set) >= 1
    with pytest.raises(SaSwapError, match="^--data.root is required: the folder of training photos and videos$"):
        FaceParsingDataModule(root="???")
    with pytest.raises(SaSwapError, match=f"^{tmp_path / 'none'}: training data folder not found$"):
        FaceParsingDataModule(root=str(tmp_path / "none"))
    with pytest.raises(SaSwapError, match="at least 32"):
        FaceParsingDataModule(image_size=16)


def test_cli_checks_the_crop_size_against_the_parser_before_building_it():
    from saswap.errors import SaSwapError
    from saswap.training.parser_cli import train_parser_main

    recipe = str(ROOT / "recipes" / "face-parser.yaml")
    with pytest.raises(SaSwapError, match=r"--data.image_size 48: must be a multiple of 32 \(the face parser's 5 halv"):
        train_parser_main(["fit", "--config", recipe, "--data.image_size", "48"])
    with pytest.raises(SaSwapError, match="--data.image_size 40: must be a multiple of 16"):
        train_parser_main(["fit", "--config", recipe, "--data.image_size", "40",
                           "--model.parser.init_args.block_out_channels", "[4, 8, 8, 8]"])  # fmt: skip
