"""Acceptance measures of the face parser (issue 13, part 1).

- **occluder kept**: an occluder is kept when fewer than 20% of its pixels change by more than 20
  levels (:func:`occluder_kept`, on a swap's output); on a parser's mask alone, when fewer than 20% of
  its pixels are called swappable face (:func:`occluder_kept_by_mask`: the compose stage changes only
  those);
- **skin wrongly kept**: the share of visible face skin (labelled swappable, not covered by an
  occluder) that the parser calls non-swappable (:func:`skin_wrongly_kept`);
- **per-class IoU** (:func:`confusion_counts`);
- **ms per 256-px crop** (:func:`ms_per_crop`).

:func:`heldout_cases` builds the evaluation cases: held-out faces (:data:`HELDOUT_FILES`) with one
held-out occluder kind each (:data:`HELDOUT_OCCLUDER_KINDS`); hands are drawn in the face's own tone.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = [
    "ParsingCase",
    "ParsingReport",
    "calibrate_threshold",
    "confusion_counts",
    "evaluate_parser",
    "heldout_cases",
    "ms_per_crop",
    "occluder_kept",
    "occluder_kept_by_mask",
    "paste_on_face",
    "skin_wrongly_kept",
]


def occluder_kept(before: np.ndarray, after: np.ndarray, mask: np.ndarray, levels: int = 20, share: float = 0.2) -> bool:
    """Whether a swap kept an occluder: fewer than ``share`` of its pixels change by more than ``levels``.

    Args:
        before: the image with the occluder, uint8 (H, W, 3).
        after: the swap's output, uint8 (H, W, 3).
        mask: the occluder's pixels, bool (H, W).
        levels: a pixel changes when a channel differs by more than this.
        share: the most changed share of the occluder's pixels that still counts as kept.

    Example:
        >>> a = np.zeros((4, 4, 3), np.uint8); b = a.copy(); b[0, 0] = 200
        >>> occluder_kept(a, b, np.ones((4, 4), bool))
        True
    """
    from saswap.eval.swap_metrics import changed_share

    changed = changed_share(before, after, mask, levels)  # checks the shapes; NaN for an empty mask
    if np.isnan(changed):
        raise ValueError("the occluder mask is empty")
    return changed < share


def occluder_kept_by_mask(keep: np.ndarray, mask: np.ndarray, share: float = 0.2) -> bool:
    """Whether a parser keeps an occluder: fewer than ``share`` of its pixels are outside ``keep``.

    Args:
        keep: pixels the swap must leave alone (not swappable face), bool (H, W).
        mask: the occluder's pixels, bool (H, W).
        share: the most swappable share of the occluder that still counts as kept.

    Example:
        >>> keep = np.ones((4, 4), bool); keep[0] = False
        >>> occluder_kept_by_mask(keep, np.ones((4, 4), bool)), occluder_kept_by_mask(keep, keep)
        (False, True)
    """
    if keep.shape != mask.shape:
        raise ValueError(f"keep {keep.shape} and mask {mask.shape} differ in shape")
    if not mask.any():
        raise ValueError("the occluder mask is empty")
    return float((~keep[mask]).mean()) < share


def paste_on_face(
    image: np.ndarray, face, kind: str, rng: np.random.Generator, tone: tuple[int, int, int] | None = None, size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Paste an occluder of ``kind`` over a face of a whole photo, where it would go on an aligned crop.

    The occluder is drawn and placed in the face's FFHQ-aligned crop of side ``size``
    (:func:`~saswap.face.alignment.ffhq_transform`, as for the parser's training), then carried into the
    photo by the inverse alignment, so it has the same size and place relative to the face at any
    resolution.

    Args:
        image: RGB uint8 (H, W, 3).
        face: the :class:`~saswap.face.types.Face` to cover.
        kind: a name in :data:`~saswap.eval.occluder_kinds.OCCLUDER_KINDS`.
        rng: random generator.
        tone: skin-toned kinds are drawn in exactly this tone (e.g. the face's own); None: random tones.
        size: side of the aligned crop the occluder is drawn for.

    Returns:
        (the photo with the occluder, the occluder's opaque pixels bool (H, W)).
    """
    import cv2

    from saswap.eval.occluder_kinds import draw_occluder
    from saswap.face.alignment import ffhq_transform, transform_face
    from saswap.face.masks import face_region_masks
    from saswap.training.parsing_data import _place, label_face

    M = ffhq_transform(face.keypoints, size)
    aligned = transform_face(face, M)
    regions = face_region_masks(aligned.landmarks[:468].astype(np.float64), (size, size))
    label = label_face(regions, np.zeros((size, size), np.float32), 0.0)
    rgba = draw_occluder(kind, rng, size, face_tone=tone, tone=tone)
    cx, cy = _place(kind, aligned.keypoints, label, size, rng)
    canvas = np.zeros((size, size, 4), np.uint8)
    h, w = rgba.shape[:2]
    x0, y0 = int(round(cx - w / 2)), int(round(cy - h / 2))
    xs, ys = max(0, x0), max(0, y0)
    xe, ye = min(size, x0 + w), min(size, y0 + h)
    if xe > xs and ye > ys:
        canvas[ys:ye, xs:xe] = rgba[ys - y0 : ye - y0, xs - x0 : xe - x0]
    H, W = image.shape[:2]
    a = canvas[..., 3:4].astype(np.float32) / 255.0
    premult = np.concatenate([canvas[..., :3] * a, a * 255.0], axis=-1)  # no dark fringe where it is resampled
    back = cv2.warpAffine(premult, M, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=(0, 0, 0, 0))
    alpha = back[..., 3:4] / 255.0
    out = np.clip(image * (1 - alpha) + back[..., :3] + 0.5, 0, 255).astype(np.uint8)
    return out, back[..., 3] >= 128


def skin_wrongly_kept(keep: np.ndarray, visible_face: np.ndarray) -> float:
    """Share of the visible face (swappable, not occluded) that the parser would keep.

    Example:
        >>> keep = np.zeros((4, 4), bool); keep[0, :2] = True
        >>> skin_wrongly_kept(keep, np.ones((4, 4), bool))
        0.125
    """
    if keep.shape != visible_face.shape:
        raise ValueError(f"keep {keep.shape} and visible_face {visible_face.shape} differ in shape")
    n = int(visible_face.sum())
    return float(keep[visible_face].sum()) / n if n else 0.0


def confusion_counts(pred: torch.Tensor, label: torch.Tensor, num_classes: int, ignore_index: int = 255) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class intersection and union counts (for IoU = inter / union), float64 (num_classes,) each.

    Example:
        >>> i, u = confusion_counts(torch.tensor([[0, 1]]), torch.tensor([[0, 0]]), 2)
        >>> i.tolist(), u.tolist()
        ([1.0, 0.0], [2.0, 1.0])
    """
    if pred.shape != label.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and label {tuple(label.shape)} differ in shape")
    valid = label != ignore_index
    p, t = pred[valid].long(), label[valid].long()
    inter = torch.bincount(t[p == t], minlength=num_classes)[:num_classes].double()
    area_p = torch.bincount(p, minlength=num_classes)[:num_classes].double()
    area_t = torch.bincount(t, minlength=num_classes)[:num_classes].double()
    return inter, area_p + area_t - inter


@dataclass
class ParsingCase:
    """One evaluation case: image uint8 (S, S, 3), labels uint8 (S, S), occluder pixels bool (S, S),
    the occluder's kind, the source file, and whether the occluder is a hand in the face's own tone."""

    image: np.ndarray
    label: np.ndarray
    occluded: np.ndarray
    kind: str
    source: str
    skin_toned: bool


def heldout_cases(
    records: Sequence, image_size: int = 256, kinds: Sequence[str] | None = None, seed: int = 0, ignore_outline: int = 0
) -> list[ParsingCase]:
    """One case per held-out face and held-out occluder kind (skin-toned kinds in the face's own tone).

    Args:
        records: held-out :class:`~saswap.training.parsing_data.ParsingRecord` s.
        image_size: side of the cases.
        kinds: occluder kinds (default :data:`~saswap.eval.occluder_kinds.HELDOUT_OCCLUDER_KINDS`).
        seed: random seed (cases are the same for the same records and seed).
        ignore_outline: label the band of this half-width along the visible face's mesh-made outline
            :data:`~saswap.training.parsing_data.IGNORE_INDEX`, so it is left out of every figure but the
            occluders kept (the same images either way).

    Returns:
        the cases whose occluder lands in the crop (an occluder pasted off the image is dropped).
    """
    from saswap.eval.occluder_kinds import HELDOUT_OCCLUDER_KINDS, OCCLUDER_KINDS
    from saswap.training.parsing_data import compose_sample

    kinds = HELDOUT_OCCLUDER_KINDS if kinds is None else tuple(kinds)
    cases = []
    for r, rec in enumerate(records):
        for k, kind in enumerate(kinds):
            rng = np.random.default_rng((seed, r, k))
            image, label, occluded, _ = compose_sample(
                rec,
                image_size,
                [kind],
                rng,
                occluder_p=1.0,
                max_occluders=1,
                jitter=False,
                photometric=0.5,
                hand_tone="face",
                ignore_outline=ignore_outline,
            )
            if occluded.sum() >= 20:
                cases.append(ParsingCase(image, label, occluded, kind, rec.source, OCCLUDER_KINDS[kind].skin))
    return cases


@dataclass
class ParsingReport:
    """Figures of a parser on evaluation cases.

    Attributes:
        cases: number of cases.
        occluder_kept: share of occluders kept (:func:`occluder_kept_by_mask`).
        occluder_kept_by_kind: the same per kind.
        occluder_kept_by_source: the same per source file.
        skin_toned_kept: the same over hands in the face's own tone.
        skin_wrongly_kept: mean share of visible face the parser would keep.
        iou: per-class IoU over all cases, for the classes present in their labels.
        miou: mean of those IoUs.
        ms_per_crop: milliseconds per 256-px crop (batch 1, this machine), or None when not measured.
    """

    cases: int
    occluder_kept: float
    occluder_kept_by_kind: dict[str, float]
    occluder_kept_by_source: dict[str, float]
    skin_toned_kept: float
    skin_wrongly_kept: float
    iou: dict[str, float]
    miou: float
    ms_per_crop: float | None = None
    failures: list[str] = field(default_factory=list)


def _covered(logits: torch.Tensor, swap_idx: list[int]) -> np.ndarray:
    """The compose stage's reading of a parser's logits (B, K, H, W): the summed probability of the classes a swap may
    not change, (B, H, W)."""
    return (1.0 - torch.softmax(logits, 1)[:, swap_idx].sum(1)).numpy()


def _batches(parser: torch.nn.Module, cases: Sequence[ParsingCase], batch_size: int):
    """The cases in chunks of ``batch_size`` with the parser's logits for each chunk (call under ``no_grad``)."""
    for start in range(0, len(cases), batch_size):
        chunk = cases[start : start + batch_size]
        x = torch.from_numpy(np.stack([c.image for c in chunk])).permute(0, 3, 1, 2).float() / 255.0
        yield chunk, parser(x)


def _visible_face(case: ParsingCase, swap_idx: list[int]) -> np.ndarray:
    """The case's visible face: labelled a class a swap may change and not under its pasted occluder, bool (H, W)."""
    return np.isin(case.label, swap_idx) & ~case.occluded


@torch.no_grad()
def evaluate_parser(
    parser: torch.nn.Module, cases: Sequence[ParsingCase], batch_size: int = 16, threshold: float | None = None
) -> ParsingReport:
    """Run a :class:`~saswap.models.FaceParser` (in eval mode) over cases and measure it.

    Args:
        parser: the parser.
        cases: the cases (:func:`heldout_cases`).
        batch_size: cases per forward pass.
        threshold: ``None``: a pixel is kept when its most likely class is not one a swap may change (argmax);
            a number in (0, 1): when the summed probability of those other classes exceeds it, as the compose
            stage decides (``Compositor(occlusion_threshold=)``; before its outline rule, ``face_cover``). Two
            trainings of one recipe can differ more in where their decision lies than in how well they separate, so
            compare parsers over several thresholds.
            The IoUs are always the argmax's.
    """
    from saswap.models.face_parser import SWAPPABLE_CLASSES

    if not cases:
        raise ValueError("no evaluation cases")
    if threshold is not None and not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie in (0, 1), got {threshold}")
    parser.eval()
    classes = parser.classes
    swap_idx = [classes.index(c) for c in SWAPPABLE_CLASSES]
    k = parser.num_classes
    inter = torch.zeros(k, dtype=torch.float64)
    union = torch.zeros(k, dtype=torch.float64)
    area = torch.zeros(k, dtype=torch.float64)
    kept: dict[str, list[bool]] = {}
    by_source: dict[str, list[bool]] = {}
    skin_kept: list[bool] = []
    wrong: list[float] = []
    failures: list[str] = []
    for chunk, logits in _batches(parser, cases, batch_size):
        pred = logits.argmax(1)
        if threshold is None:
            keep_all = ~np.isin(pred.numpy(), swap_idx)
        else:
            keep_all = _covered(logits, swap_idx) > threshold
        labels = torch.from_numpy(np.stack([c.label for c in chunk]).astype(np.int64))
        i, u = confusion_counts(pred, labels, k)
        inter += i
        union += u
        area += torch.bincount(labels[labels < k].flatten(), minlength=k)[:k].double()
        for c, keep in zip(chunk, keep_all, strict=True):
            ok = occluder_kept_by_mask(keep, c.occluded)
            kept.setdefault(c.kind, []).append(ok)
            by_source.setdefault(c.source, []).append(ok)
            if c.skin_toned:
                skin_kept.append(ok)
            if not ok:
                failures.append(f"{c.source}:{c.kind}")
            wrong.append(skin_wrongly_kept(keep, _visible_face(c, swap_idx)))
    iou = (inter / union.clamp(min=1)).tolist()
    present = [j for j in range(k) if area[j] > 0]  # classes in the labels
    all_kept = [v for vals in kept.values() for v in vals]
    return ParsingReport(
        cases=len(cases),
        occluder_kept=float(np.mean(all_kept)),
        occluder_kept_by_kind={kind: float(np.mean(v)) for kind, v in kept.items()},
        occluder_kept_by_source={src: float(np.mean(v)) for src, v in sorted(by_source.items())},
        skin_toned_kept=float(np.mean(skin_kept)) if skin_kept else float("nan"),
        skin_wrongly_kept=float(np.mean(wrong)),
        iou={classes[j]: iou[j] for j in present},
        miou=float(np.mean([iou[j] for j in present])),
        failures=failures,
    )


@torch.no_grad()
def calibrate_threshold(
    parser: torch.nn.Module,
    cases: Sequence[ParsingCase],
    rate: float,
    thresholds: Sequence[float] = tuple(np.round(np.arange(0.5, 0.951, 0.05), 2)),
    batch_size: int = 16,
) -> tuple[float, dict[float, float]]:
    """A parser's operating point: the lowest threshold at which it keeps at most ``rate`` of the visible face of
    ``cases`` (the compose stage's rule, :func:`evaluate_parser` with ``threshold``).

    Two trainings of one recipe differ more in where their decision lies than in how well they separate
    (``benchmarks/RESULTS.md``, stop 48), so a retrained parser is brought to the rate of the weights it would replace,
    measured on cases made from the *training* files (``FaceParsingDataModule.records(held_out=False)``): the held-out
    files stay for judging it. The lowest such threshold keeps the most of what covers a face. Record the result with
    the weights (``export_parser(..., covered_threshold=)``).

    Args:
        parser: the parser (put in eval mode).
        cases: evaluation cases (:func:`heldout_cases` of training records).
        rate: the largest mean share of the visible face the parser may keep (:func:`skin_wrongly_kept`).
        thresholds: the candidates, each in (0, 1).
        batch_size: cases per forward pass.

    Returns:
        the threshold (the largest candidate when none reaches the rate), and each candidate's rate.
    """
    from saswap.models.face_parser import SWAPPABLE_CLASSES

    if not cases:
        raise ValueError("no calibration cases")
    candidates = sorted(float(t) for t in thresholds)
    if not candidates or not all(0.0 < t < 1.0 for t in candidates):
        raise ValueError(f"thresholds must be non-empty and lie in (0, 1), got {list(thresholds)}")
    parser.eval()
    swap_idx = [parser.classes.index(c) for c in SWAPPABLE_CLASSES]
    rates: dict[float, list[float]] = {t: [] for t in candidates}
    for chunk, logits in _batches(parser, cases, batch_size):
        covered = _covered(logits, swap_idx)  # one pass for every candidate
        for c, cov in zip(chunk, covered, strict=True):
            visible = _visible_face(c, swap_idx)
            for t in candidates:
                rates[t].append(skin_wrongly_kept(cov > t, visible))
    mean = {t: float(np.mean(v)) for t, v in rates.items()}
    chosen = next((t for t in candidates if mean[t] <= rate), candidates[-1])
    return chosen, mean


@torch.no_grad()
def ms_per_crop(parser: torch.nn.Module, size: int = 256, repeats: int = 20) -> float:
    """Median milliseconds of one forward pass on a (1, 3, size, size) crop (after 3 warm-up runs)."""
    parser.eval()
    x = torch.rand(1, parser.in_channels, size, size)
    for _ in range(3):
        parser(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        parser(x)
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))
