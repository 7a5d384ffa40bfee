"""Self-supervised tone harmonisation data (issue 13, part 2): the face parser's cached face crops with the
colour and light of their visible face changed, to be restored from what surrounds it.

Each sample starts from a real aligned crop (:func:`saswap.training.parsing_data.build_parsing_cache`, the
same files, cache and held-out split as the face parser; non-commercial files never train). The mask is the
crop's visible face (:data:`~saswap.models.face_parser.SWAPPABLE_CLASSES`), dilated a little, its edge
jittered by a smooth random field and softened. Inside the mask the colour and light change
(:func:`perturb_tone`): per-channel gains (white balance), brightness, gamma, a smooth low-frequency
shading field (a gradient or a few Gaussian blobs), and a blur or noise that the surroundings do not have.
The target is the original crop, first recoloured as a whole (:func:`recolour_scene`, the same change for input
and target): a face's true colour then cannot be remembered per person from the few people of the training
files, only read from what surrounds it (without it the model learned the training people's own tones and did
nothing for held-out faces).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from saswap.errors import SaSwapError
from saswap.models.face_parser import FACE_PARSER_CLASSES, SWAPPABLE_CLASSES
from saswap.training.data import check_data_root, check_image_size
from saswap.training.parsing_data import (
    ParsingRecord,
    build_parsing_cache,
    face_records,
    item_rng,
    source_files,
    split_records,
)

__all__ = [
    "ToneHarmonizationDataModule",
    "ToneHarmonizationDataset",
    "harmonization_sample",
    "jittered_face_mask",
    "perturb_tone",
    "recolour_scene",
    "shading_field",
]

logger = logging.getLogger(__name__)

_FACE_IDS = [FACE_PARSER_CLASSES.index(c) for c in SWAPPABLE_CLASSES]
_SKIN_ID = FACE_PARSER_CLASSES.index("skin")


def _visible_face(record: ParsingRecord, min_fraction: float = 0.02) -> bool:
    """Whether the record's visible face covers at least ``min_fraction`` of its crop."""
    return bool(np.isin(record.label, _FACE_IDS).mean() >= min_fraction)


def _smooth_noise(shape: tuple[int, int], rng: np.random.Generator, cells: int) -> np.ndarray:
    """Smooth random field in [-1, 1]: uniform noise on a ``cells`` x ``cells`` lattice, upsampled bicubically."""
    coarse = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    return np.clip(cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC), -1, 1)


def jittered_face_mask(
    label: np.ndarray,
    rng: np.random.Generator | None = None,
    max_dilate: float = 0.02,
    edge_jitter: float = 0.015,
    soften: float = 0.01,
    max_erode: float = 0.0,
) -> np.ndarray:
    """Soft mask of the visible face in a labelled crop, dilated a little with a randomly jittered edge.

    Args:
        label: class indices (:data:`~saswap.models.face_parser.FACE_PARSER_CLASSES`), uint8 (S, S).
        rng: random generator; ``None`` gives the plain mask (no dilation or jitter, softened only).
        max_dilate: largest dilation, a fraction of S (drawn uniformly from ``-max_erode`` to it).
        edge_jitter: largest shift of the edge by the smooth random field, a fraction of S.
        soften: Gaussian sigma of the edge's softening, a fraction of S (0: hard edge).
        max_erode: largest erosion, a fraction of S: the mask then leaves a ring of the face's own skin
            around it, as a swap's mask (the mesh's face region) leaves the target's forehead, temples and jaw.

    Returns:
        float32 (S, S) in [0, 1].

    Example:
        >>> lab = np.zeros((32, 32), np.uint8); lab[8:24, 8:24] = 1  # skin
        >>> m = jittered_face_mask(lab, np.random.default_rng(0))
        >>> float(m[16, 16]), float(m[0, 0]), bool(((m > 0) & (m < 1)).any())
        (1.0, 0.0, True)
    """
    if label.ndim != 2:
        raise ValueError(f"expected labels of shape (S, S), got {label.shape}")
    size = label.shape[0]
    face = np.isin(label, _FACE_IDS).astype(np.float32)
    if rng is not None:
        r = int(round(rng.uniform(-max_erode, max_dilate) * size))
        if r > 0:
            face = cv2.dilate(face, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
        elif r < 0:
            face = cv2.erode(face, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (1 - 2 * r, 1 - 2 * r)))
        # a signed distance to the edge (pixels), moved by a smooth field: the edge wanders, the inside stays
        inside = cv2.distanceTransform((face > 0.5).astype(np.uint8), cv2.DIST_L2, 3)
        outside = cv2.distanceTransform((face <= 0.5).astype(np.uint8), cv2.DIST_L2, 3)
        shift = _smooth_noise(label.shape, rng, int(rng.integers(3, 8))) * edge_jitter * size
        face = ((inside - outside + shift) > 0).astype(np.float32)
    sigma = soften * size
    if sigma > 0:
        face = cv2.GaussianBlur(face, (0, 0), sigma)
    return np.clip(face, 0, 1)


def shading_field(size: int, rng: np.random.Generator, strength: float = 0.35) -> np.ndarray:
    """A smooth, low-frequency multiplicative shading field: a linear gradient or 1-3 Gaussian blobs.

    Args:
        size: side S.
        rng: random generator.
        strength: largest change of brightness (fraction; the field lies in ``[1 - strength, 1 + strength]``).

    Returns:
        float32 (S, S), positive.

    Example:
        >>> f = shading_field(64, np.random.default_rng(0))
        >>> f.shape, bool(0.6 <= f.min() and f.max() <= 1.4)
        ((64, 64), True)
    """
    gy, gx = np.mgrid[:size, :size].astype(np.float32) / size - 0.5
    if rng.random() < 0.5:
        ang = rng.uniform(0, 2 * np.pi)
        field = (np.cos(ang) * gx + np.sin(ang) * gy) * 2 * rng.uniform(-1, 1)
    else:
        field = np.zeros((size, size), np.float32)
        for _ in range(int(rng.integers(1, 4))):
            cx, cy = rng.uniform(-0.4, 0.4, 2)
            sigma = rng.uniform(0.12, 0.35)
            field += rng.uniform(-1, 1) * np.exp(-((gx - cx) ** 2 + (gy - cy) ** 2) / (2 * sigma**2))
    return (1 + strength * np.clip(field, -1, 1)).astype(np.float32)


def recolour_scene(image: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Change the colour of a whole image, as another camera, white balance or light would: per-channel gains
    (log-normal, sigma 0.12 x strength), brightness (x 0.7-1.35), gamma (exponent e^[-0.25, 0.25]) and
    saturation (x 0.7-1.3), each scaled by ``strength``.

    Args:
        image: RGB float32 (S, S, 3) in [0, 1].
        rng: random generator.
        strength: scales every change (0: the image unchanged).

    Returns:
        float32 (S, S, 3) in [0, 1].

    Example:
        >>> x = np.random.default_rng(0).uniform(0.2, 0.8, (8, 8, 3)).astype(np.float32)
        >>> bool(np.array_equal(recolour_scene(x, np.random.default_rng(1), 0.0), x))
        True
        >>> bool(np.abs(recolour_scene(x, np.random.default_rng(1)) - x).mean() > 0.01)
        True
    """
    s = float(strength)
    if s == 0:
        return image
    gains = np.exp(rng.normal(0, 0.12 * s, 3)) * np.exp(rng.uniform(np.log(0.7), np.log(1.35)) * s)
    x = np.clip(image * gains.astype(np.float32), 0, 1) ** np.float32(np.exp(rng.uniform(-0.25, 0.25) * s))
    grey = (x * np.array([0.299, 0.587, 0.114], np.float32)).sum(-1, keepdims=True)
    x = grey + (x - grey) * np.float32(np.exp(rng.uniform(np.log(0.7), np.log(1.3)) * s))
    return np.clip(x, 0, 1).astype(np.float32)


def perturb_tone(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Change the colour and light of an image inside a soft mask.

    Per-channel gains (white balance, log-normal, sigma 0.08 x strength), brightness (x 0.75-1.3), gamma
    (exponent e^[-0.3, 0.3]), a shading field (:func:`shading_field`), then, each half of the time, a blur
    (sigma 0.5-1.5 px) or noise (sigma 0.005-0.025) that the rest of the image does not have. The changed
    image is blended in by the mask: ``image + mask * (changed - image)``.

    Args:
        image: RGB float32 (S, S, 3) in [0, 1].
        mask: float32 (S, S) in [0, 1].
        rng: random generator.
        strength: scales every change (0: none).

    Returns:
        float32 (S, S, 3) in [0, 1].

    Example:
        >>> x = np.full((32, 32, 3), 0.5, np.float32); m = np.zeros((32, 32), np.float32); m[8:24, 8:24] = 1
        >>> y = perturb_tone(x, m, np.random.default_rng(1))
        >>> bool(np.abs(y - x)[m == 1].mean() > 0.01), bool((y[m == 0] == x[m == 0]).all())
        (True, True)
    """
    if image.ndim != 3 or image.shape[2] != 3 or mask.shape != image.shape[:2]:
        raise ValueError(f"expected an image (S, S, 3) and a mask (S, S), got {image.shape} and {mask.shape}")
    if image.dtype != np.float32:
        raise TypeError(f"expected a float32 image in [0, 1], got {image.dtype}")
    s = float(strength)
    gains = np.exp(rng.normal(0, 0.08 * s, 3)) * np.exp(rng.uniform(np.log(0.75), np.log(1.3)) * s)
    x = np.clip(image * gains.astype(np.float32), 0, 1) ** np.float32(np.exp(rng.uniform(-0.3, 0.3) * s))
    x = x * shading_field(image.shape[0], rng, 0.35 * s)[..., None]
    if rng.random() < 0.5 * min(s, 1.0):
        x = cv2.GaussianBlur(x, (0, 0), float(rng.uniform(0.5, 1.5)))
    if rng.random() < 0.5 * min(s, 1.0):
        x = x + rng.normal(0, rng.uniform(0.005, 0.025), x.shape).astype(np.float32)
    x = np.clip(x, 0, 1)
    return (image + mask[..., None] * (x - image)).astype(np.float32)


def harmonization_sample(
    record: ParsingRecord,
    image_size: int,
    rng: np.random.Generator,
    flip: bool = True,
    strength: float = 1.0,
    max_dilate: float = 0.02,
    edge_jitter: float = 0.015,
    max_erode: float = 0.0,
    min_strength: float = 1.0,
    scene: float = 1.0,
) -> dict[str, np.ndarray]:
    """One self-supervised sample from a cached face.

    Args:
        record: the cached face (crop and labels).
        image_size: output side S (the crop is resized by area, the labels by nearest neighbour).
        rng: random generator.
        flip: mirror the crop half of the time.
        strength: strength of the colour and light change (:func:`perturb_tone`).
        max_dilate, edge_jitter, max_erode: see :func:`jittered_face_mask`.
        min_strength: each sample's strength is drawn uniformly from ``min_strength`` x ``strength`` to
            ``strength`` (1: always ``strength``; lower: some faces need little change, as most swaps do).
        scene: strength of the whole crop's recolouring (:func:`recolour_scene`; 0: the original crop).

    Returns:
        ``image`` (the changed crop, float32 (S, S, 3)), ``mask`` (float32 (S, S)), ``target`` (the crop,
        recoloured as a whole, float32 (S, S, 3)), ``skin`` (bool (S, S), the skin label).
    """
    crop, label = record.crop, record.label
    if crop.shape[0] != image_size:
        crop = cv2.resize(crop, (image_size, image_size), interpolation=cv2.INTER_AREA)
        label = cv2.resize(label, (image_size, image_size), interpolation=cv2.INTER_NEAREST)
    if flip and rng.random() < 0.5:
        crop, label = crop[:, ::-1], label[:, ::-1]
    target = recolour_scene(np.ascontiguousarray(crop).astype(np.float32) / 255.0, rng, scene)
    label = np.ascontiguousarray(label)
    mask = jittered_face_mask(label, rng, max_dilate, edge_jitter, max_erode=max_erode)
    image = perturb_tone(target, mask, rng, strength * rng.uniform(min(min_strength, 1.0), 1.0))
    return {"image": image, "mask": mask, "target": target, "skin": label == _SKIN_ID}


class ToneHarmonizationDataset(Dataset):
    """Cached faces whose visible face changes colour and light on the fly (:func:`harmonization_sample`).

    Each item: ``image`` (the changed crop) and ``target`` (the original) float (3, S, S) in [0, 1], ``mask``
    float (1, S, S) in [0, 1] (the region to restore), ``skin`` bool (S, S).

    Args:
        records: cached faces; those whose visible face covers under 2% of the crop are left out.
        image_size: output side S.
        length: items per epoch (records are cycled; each item is drawn anew).
        flip, strength, max_dilate, edge_jitter, max_erode, min_strength, scene: see
            :func:`harmonization_sample`.
        seed: when given, item ``i`` is the same every time (evaluation); else random per call, drawn from torch's
            generator (:func:`~saswap.training.parsing_data.item_rng`), so a seeded training run is repeatable.
    """

    def __init__(
        self,
        records: Sequence[ParsingRecord],
        image_size: int = 256,
        length: int | None = None,
        flip: bool = True,
        strength: float = 1.0,
        max_dilate: float = 0.02,
        edge_jitter: float = 0.015,
        seed: int | None = None,
        max_erode: float = 0.0,
        min_strength: float = 1.0,
        scene: float = 1.0,
    ) -> None:
        kept = [r for r in records if _visible_face(r)]
        if not kept:
            raise SaSwapError(
                f"no face records with a visible face ({len(records)} records): the cache holds no usable face "
                "(check the data folders)"
            )
        self.records = kept
        self.image_size = int(image_size)
        self.length = length or len(self.records)
        self.kw = dict(
            flip=flip,
            strength=strength,
            max_dilate=max_dilate,
            edge_jitter=edge_jitter,
            max_erode=max_erode,
            min_strength=min_strength,
            scene=scene,
        )
        self.seed = seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = item_rng(self.seed, index)
        s = harmonization_sample(self.records[index % len(self.records)], self.image_size, rng, **self.kw)
        return {
            "image": torch.from_numpy(s["image"]).permute(2, 0, 1).contiguous(),
            "mask": torch.from_numpy(s["mask"])[None],
            "target": torch.from_numpy(s["target"]).permute(2, 0, 1).contiguous(),
            "skin": torch.from_numpy(s["skin"]),
        }


class ToneHarmonizationDataModule(L.LightningDataModule):
    """Tone harmonisation data: training over the face parser's training files, validation over its held-out
    files with a fixed seed, no flips and the same changes. The crops are the face parser's cache (the same
    ``cache_dir``, ``cache_size`` and ``frames_per_video`` reuse it).

    The split is the face parser's (:func:`~saswap.training.parsing_data.split_files`), of whole files, photos
    and videos alike (every frame of a video on one side): the files named in
    :data:`~saswap.training.parsing_data.HELDOUT_FILES` when any is present (the shared data set), else about
    one file in eight, chosen by a stable hash of its name (at least one; the held-out files are logged). So
    the folders need at least 2 usable photos or videos, each with a face.

    Args:
        roots: folders of photos and/or videos (files inside them and in their person sub-folders,
            :func:`~saswap.training.parsing_data.source_files`).
        cache_dir: where the labelled crops are cached (shared with the face parser).
        image_size: side of the training crops (at least 32; the harmoniser pools any side to its ``work_size``).
        cache_size: side of the cached crops.
        frames_per_video: frames taken evenly from each video.
        batch_size: batch size.
        num_workers: data loader workers.
        epoch_length: training items per epoch.
        val_per_record: validation samples per held-out face.
        strength: strength of the colour and light change (:func:`perturb_tone`).
        max_dilate: largest dilation of the mask, a fraction of the crop side.
        edge_jitter: largest shift of the mask's edge, a fraction of the crop side.
        max_erode: largest erosion of the mask, a fraction of the crop side (:func:`jittered_face_mask`).
        min_strength: lowest share of ``strength`` a sample is drawn with (:func:`harmonization_sample`).
        scene: strength of the whole crop's recolouring (:func:`recolour_scene`).
        root: one folder of photos and/or videos; when given it replaces ``roots`` (``--data.root DIR``, as
            for ``saswap train``).
    """

    def __init__(
        self,
        roots: Sequence[str] = ("../shared/data/images", "../shared/data/videos"),
        cache_dir: str = "outputs/cache/face-parser",
        image_size: int = 256,
        cache_size: int = 256,
        frames_per_video: int = 24,
        batch_size: int = 8,
        num_workers: int = 0,
        epoch_length: int = 2000,
        val_per_record: int = 1,
        strength: float = 1.0,
        max_dilate: float = 0.02,
        edge_jitter: float = 0.015,
        max_erode: float = 0.04,
        min_strength: float = 0.2,
        scene: float = 1.0,
        root: str | None = None,
    ) -> None:
        super().__init__()
        check_image_size(image_size)
        if root is not None:
            check_data_root(root)
        self.save_hyperparameters()
        self.roots = [root] if root is not None else list(roots)
        self.train_set: ToneHarmonizationDataset | None = None
        self.val_set: ToneHarmonizationDataset | None = None

    def files(self) -> list[Path]:
        """The source files under ``roots``, sorted."""
        return source_files(self.roots)

    def prepare_data(self) -> None:
        hp = self.hparams
        build_parsing_cache(self.files(), Path(hp.cache_dir), hp.cache_size, hp.frames_per_video)

    def records(self, held_out: bool) -> list[ParsingRecord]:
        """Cached faces of the training (``held_out=False``; non-commercial files left out) or held-out files."""
        hp = self.hparams
        return face_records(self.roots, hp.cache_dir, hp.cache_size, hp.frames_per_video, held_out)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        hp = self.hparams
        train, held = split_records(self.roots, hp.cache_dir, hp.cache_size, hp.frames_per_video)
        held = [r for r in held if _visible_face(r)]
        logger.info("tone harmonisation data: %d training faces, %d held-out faces", len(train), len(held))
        kw = dict(
            strength=hp.strength,
            max_dilate=hp.max_dilate,
            edge_jitter=hp.edge_jitter,
            max_erode=hp.max_erode,
            min_strength=hp.min_strength,
            scene=hp.scene,
        )
        self.train_set = ToneHarmonizationDataset(train, hp.image_size, hp.epoch_length, flip=True, **kw)
        n_val = len(held) * hp.val_per_record
        self.val_set = ToneHarmonizationDataset(held, hp.image_size, n_val, flip=False, seed=0, **kw)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.train_set,
            batch_size=self.hparams.batch_size,
            shuffle=True,
            num_workers=self.hparams.num_workers,
            drop_last=True,
            persistent_workers=self.hparams.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.hparams.batch_size, num_workers=0)
