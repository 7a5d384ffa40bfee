"""Training: the data module on real faces, an overfit run (losses fall by half), the LightningCLI
debug recipe on CPU, and resuming from a checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, data_path

L = pytest.importorskip("lightning")
pytest.importorskip("jsonargparse")

from saswap.models import AttributeEncoder, FlowEstimator, FusionGenerator, IdentityEncoder, MultiScaleDiscriminator  # noqa: E402
from saswap.training import FacePairsDataModule, SaSwapSystem  # noqa: E402

PHOTOS = ["sberswap__beckham.jpg", "deepface__img2.jpg", "sadtalker__happy.png", "face_recognition__obama.jpg"]


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faces")
    for name in PHOTOS:
        os.symlink(data_path("images", name), folder / name)
    return folder


def _tiny_system(**kwargs) -> SaSwapSystem:
    torch.manual_seed(0)
    enc = AttributeEncoder(block_out_channels=(16, 32, 64))
    return SaSwapSystem(
        IdentityEncoder(layers=(1, 1, 1, 1), block_out_channels=(8, 16, 16, 32), embed_dim=32, input_size=32),
        enc,
        FusionGenerator(
            embed_dim=32, attr_channels=enc.attr_channels, block_out_channels=(64, 32, 16, 16), deform_levels=(1, 2)
        ),
        FlowEstimator(num_keypoints=68, image_size=64, feature_size=16, block_out_channels=(16, 32)),
        MultiScaleDiscriminator(num_scales=2, block_out_channels=(16, 32)),
        **kwargs,
    )


def test_data_module_items(photo_folder, tmp_path):
    dm = FacePairsDataModule(
        str(photo_folder), image_size=64, batch_size=2, same_identity_ratio=0.5, cache_dir=str(tmp_path)
    )
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.records) == len(PHOTOS) and len({r.identity for r in dm.records}) == len(PHOTOS)
    items = [dm.dataset[i] for i in range(len(dm.dataset))]
    for item in items:
        assert item["target"].shape == (3, 64, 64) and -1 <= item["target"].min() and item["target"].max() <= 1
        assert item["keypoints"].shape == (68, 2) and item["keypoints"].abs().max() < 1.2
        assert item["target_arcface"].shape == (2, 3)
        if item["same"] == 1:
            assert torch.equal(item["source"], item["target"]) and item["motion"].abs().max() == 0
        else:
            assert item["motion"].abs().max() > 0
    assert 0 < np.mean([float(i["same"]) for i in items]) < 1 or len(items) < 4
    with pytest.raises(Exception, match="not found"):
        FacePairsDataModule(str(tmp_path / "missing")).prepare_data()


@pytest.mark.slow
def test_overfit_losses_fall_by_half(photo_folder, tmp_path):
    dm = FacePairsDataModule(
        str(photo_folder), image_size=64, batch_size=4, same_identity_ratio=1.0, cache_dir=str(tmp_path), epoch_length=4
    )
    system = _tiny_system(lambda_adv=0.1, occluder_p=0.0, augment=False, lr_g=1e-3, lr_d=1e-3)
    history: list[tuple[float, float]] = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            m = trainer.callback_metrics
            history.append((float(m["train/rec"]), float(m["train/id"])))

    trainer = L.Trainer(
        max_steps=80,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Record()],
    )
    trainer.fit(system, dm)
    assert len(history) == 40 and trainer.global_step == 80  # two optimisers: two steps per batch
    first, last = np.mean(history[:3], axis=0), np.mean(history[-3:], axis=0)
    assert last[0] <= 0.5 * first[0], f"reconstruction loss {first[0]:.4f} -> {last[0]:.4f}"
    assert last[1] <= 0.5 * first[1], f"identity loss {first[1]:.4f} -> {last[1]:.4f}"
    assert not system.identity_encoder.training  # the frozen encoder stays in eval mode


def test_debug_recipe_runs_and_resumes(tmp_path):
    from saswap.training.cli import train_main

    videos = data_path("videos")
    common = [
        "--config", str(ROOT / "recipes" / "debug-tiny.yaml"), "--data.root", str(videos), "--data.frames_per_video", "1",
        "--data.max_files", "6", "--data.cache_dir", str(tmp_path / "cache"), "--trainer.default_root_dir", str(tmp_path),
        "--trainer.logger.init_args.save_dir", str(tmp_path), "--trainer.callbacks.init_args.every_n_train_steps", "4",
    ]  # fmt: skip
    cli = train_main(["fit", *common, "--trainer.max_steps", "4"])
    assert cli.trainer.global_step == 4
    ckpt = Path(cli.trainer.checkpoint_callback.last_model_path)
    assert ckpt.is_file()
    resumed = train_main(["fit", *common, "--trainer.max_steps", "8", "--ckpt_path", str(ckpt)])
    assert resumed.trainer.global_step == 8  # continued from step 4, not from 0
    assert resumed.model.flow_estimator.image_size == 64  # linked to data.image_size


def test_keypoint_loss_uses_the_regressor(photo_folder, tmp_path):
    """With a keypoint regressor, the 3D-keypoint loss enters the generator's objective and has gradients."""

    class TinyRegressor(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(48, 136))

        def forward(self, x):
            return torch.tanh(self.net(x)).view(-1, 68, 2)

    dm = FacePairsDataModule(
        str(photo_folder), image_size=64, batch_size=2, same_identity_ratio=0.0, cache_dir=str(tmp_path)
    )
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    system = _tiny_system(keypoint_regressor=TinyRegressor(), occluder_p=0.0, augment=False)
    system.train()
    prepared = system._prepare(batch)
    total, logs, _ = system.generator_losses(prepared)
    assert "kp" in logs and logs["kp"] > 0
    total.backward()
    assert system.generator.to_rgb.weight.grad is not None
    assert all(p.grad is None for p in system.keypoint_regressor.parameters())  # frozen


def test_full_recipe_parses(capsys):
    from saswap.training.cli import train_main

    with pytest.raises(SystemExit) as exc:
        train_main(
            [
                "fit",
                "--config",
                str(ROOT / "recipes" / "saswap-256.yaml"),
                "--data.root",
                "/data/faces",
                "--print_config",
            ]
        )
    assert exc.value.code == 0
    printed = capsys.readouterr().out
    assert "saswap.models.FusionGenerator" in printed and "saswap.losses.ContextualLoss" in printed
    assert "image_size: 256" in printed
    assert "class_path: saswap.models.SFaceEncoder" in printed and "embed_dim: 128" in printed


def test_sface_is_a_frozen_identity_encoder_of_the_system(photo_folder, tmp_path):
    """The recipes' default encoder in the system: the identity loss is SFace's, gradients reach the
    generator and never SFace; the generator takes its 128-D embeddings."""
    from saswap.models import SFaceEncoder

    dm = FacePairsDataModule(
        str(photo_folder), image_size=64, batch_size=1, same_identity_ratio=0.0, cache_dir=str(tmp_path)
    )
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    torch.manual_seed(0)
    enc = AttributeEncoder(block_out_channels=(16, 32, 64))
    system = SaSwapSystem(
        SFaceEncoder(),
        enc,
        FusionGenerator(
            embed_dim=128, attr_channels=enc.attr_channels, block_out_channels=(32, 16, 16, 16), deform_levels=(1,)
        ),
        FlowEstimator(num_keypoints=68, image_size=64, feature_size=16, block_out_channels=(16, 32)),
        MultiScaleDiscriminator(num_scales=1, block_out_channels=(16,)),
        occluder_p=0.0,
        augment=False,
    ).train()
    assert not system.identity_encoder.training
    prepared = system._prepare(batch)
    assert prepared["source_embed"].shape == (1, 128)
    total, logs, _ = system.generator_losses(prepared)
    assert 0 < float(logs["id"].detach()) <= 2
    total.backward()
    assert system.generator.to_rgb.weight.grad is not None
    assert all(p.grad is None for p in system.identity_encoder.parameters())


def test_same_identity_pairs_come_from_the_same_video(tmp_path):
    """Frames of one video form one identity; same-identity pairs draw the source from it."""
    videos = data_path("videos")
    dm = FacePairsDataModule(
        str(videos), image_size=64, frames_per_video=3, max_files=3, same_identity_ratio=1.0, cache_dir=str(tmp_path)
    )
    dm.prepare_data()
    dm.setup("fit")
    ds = dm.dataset
    assert len({r.identity for r in dm.records}) == 3 and len(dm.records) >= 6
    different_frames = 0
    for i in range(len(ds)):
        item = ds[i]
        target = dm.records[i % len(dm.records)]
        src = next(
            r
            for r in dm.records
            if torch.equal(torch.from_numpy(r.crop).permute(2, 0, 1).float() / 127.5 - 1, item["source"])
        )
        assert src.identity == target.identity
        different_frames += src is not target
        assert float(item["same"]) == float(src is target)
    assert different_frames > 0


def test_data_root_and_crop_size_are_checked_before_the_model_is_built(tmp_path):
    from saswap.errors import SaSwapError
    from saswap.training.cli import train_main

    recipe = str(ROOT / "recipes" / "saswap-256.yaml")
    with pytest.raises(SaSwapError, match="^--data.root is required: the folder of training photos and videos$"):
        train_main(["fit", "--config", recipe])  # the recipe's root: ???
    with pytest.raises(SaSwapError, match=f"^{tmp_path / 'none'}: training data folder not found$"):
        train_main(["fit", "--config", recipe, "--data.root", str(tmp_path / "none")])
    with pytest.raises(SaSwapError, match=r"^--data.image_size 192: must be a multiple of 128 \(the attribute encoder"):
        train_main(["fit", "--config", recipe, "--data.root", str(tmp_path), "--data.image_size", "192"])
    tiny = str(ROOT / "recipes" / "debug-tiny.yaml")
    with pytest.raises(SaSwapError, match=r"63: must be a multiple of 16 .*feature_size 16\) and at least 32, e.g. 32"):
        train_main(["fit", "--config", tiny, "--data.root", str(tmp_path), "--data.image_size", "63"])
    with pytest.raises(SaSwapError, match="^--data.root is required"):
        FacePairsDataModule("???")
    with pytest.raises(SaSwapError, match="at least 32"):
        FacePairsDataModule(str(tmp_path), image_size=16)
