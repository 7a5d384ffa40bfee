"""Self-labelled face parsing data: aligned face crops of the shared photos and video frames, per-pixel
labels from the 478-point mesh and the person segmentation, and occluders pasted on the fly with known masks.

Labels (:data:`saswap.models.face_parser.FACE_PARSER_CLASSES`) come from:

- ``skin``: the mesh's camera-facing triangles (:func:`saswap.face.masks.face_region_masks` ``face``),
  nose and nostrils included;
- ``eyes``, ``brows``, ``lips``, ``mouth`` (inside the inner lip line): the mesh's regions;
- ``hair``: MediaPipe's person segmentation outside the face, above the mouth's height in the aligned
  crop (so ears and hair beside the face count as hair; neck and body below count as background);
- ``background``: everything else (pixels beyond the source image's edge too, black in the crop, even where
  the mesh reaches there);
- ``occluder``, ``glasses``, ``hair``: the pasted occluders' opaque pixels
  (:mod:`saswap.eval.occluder_kinds`).

Not labelled by hand, so real glasses, hands or beards in a source photo keep the mesh's label (skin or
eyes); the real occluded photos are held out of training (:data:`HELDOUT_FILES`).

The mesh and segmentation run once per source file; crops and labels are cached as ``.npz`` files.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from saswap.errors import SaSwapError
from saswap.eval.occluder_kinds import (
    HELDOUT_OCCLUDER_KINDS,
    OCCLUDER_KINDS,
    TRAIN_OCCLUDER_KINDS,
    draw_occluder,
    paste_rgba,
)
from saswap.models.face_parser import FACE_PARSER_CLASSES
from saswap.training.data import (
    VIDEO_EXTS,
    check_data_root,
    check_image_size,
    media_files,
    non_commercial_files,
    person_of,
)
from saswap.videoio import sample_frames

__all__ = [
    "HELDOUT_FILES",
    "IGNORE_INDEX",
    "REAL_OCCLUDED_FILES",
    "FaceParsingDataModule",
    "FaceParsingDataset",
    "ParsingRecord",
    "build_parsing_cache",
    "face_records",
    "item_rng",
    "source_files",
    "label_face",
    "outline_band",
    "unsure_face_pixels",
    "split_files",
    "split_records",
    "HELDOUT_FRACTION",
]

logger = logging.getLogger(__name__)

#: Label of pixels the loss ignores.
IGNORE_INDEX = 255

#: Source files (by name) held out of training: whole photos and whole videos. The first three are
#: real occluded photos (a face mask, a microphone, a hand); a person in several files is held out in all of
#: them (liveportrait's ``d9`` photo and video; sadtalker's three photos of one woman).
HELDOUT_FILES: frozenset[str] = frozenset(
    {
        "insightface__mask.png",
        "face_recognition__lin-manuel-miranda.png",
        "insightface__Teresa_Williams_0001_1k.jpg",
        "face_recognition__obama_partial_face.jpg",
        "3ddfav2__emma.jpg",
        "deepface__img2.jpg",
        "dlib__bald_guys.jpg",
        "facenet-pytorch__shea_whigham_1.jpg",
        "gfpgan__Adele_crop.png",
        "insightface__happy.png",
        "liveportrait__d9.jpg",
        "liveportrait__s11.jpg",
        "sadtalker__sad.png",
        "sadtalker__happy.png",
        "sadtalker__happy1.png",
        "sberswap__beckham.jpg",
        "simswap__james.jpg",
        "liveportrait__d9.mp4",
        "video-retalking__3.mp4",
        "sadtalker__WDA_AlexandriaOcasioCortez_000.mp4",
        "facenet-pytorch__video.mp4",
    }
)

#: Held-out photos with real occluders (a face mask, a microphone, a hand over the face): their mesh labels
#: call the occluder skin, so they are looked at (benchmarks/bench_parser.py), not scored against labels.
REAL_OCCLUDED_FILES: tuple[str, ...] = (
    "insightface__mask.png",
    "face_recognition__lin-manuel-miranda.png",
    "insightface__Teresa_Williams_0001_1k.jpg",
)

_CLS = {name: i for i, name in enumerate(FACE_PARSER_CLASSES)}


#: Without any :data:`HELDOUT_FILES` name among the files, about one file in this many is held out.
HELDOUT_FRACTION = 8


def _name_hash(path: Path) -> int:
    """A stable hash of a file's name (the same on every machine and run, unlike ``hash()``)."""
    return int(hashlib.sha1(path.name.encode()).hexdigest()[:12], 16)


def _key_hash(key: str) -> int:
    """:func:`_name_hash` of a split group: a person folder's name, or ``"\\0" + a file's name`` for a loose file
    (hashed by its name alone, so a flat folder splits as it always did)."""
    return _name_hash(Path(key[1:] if key.startswith("\0") else key))


def _group_of(path: Path, roots: Sequence[Path]) -> str | None:
    """The person folder a file lies in under the first of ``roots`` that holds it (:func:`~saswap.training.data.
    person_of`), or None for a file directly inside a root (or under none of them)."""
    root = next((r for r in roots if path.is_relative_to(r)), None)
    return None if root is None else person_of(path, root)


def split_files(
    files: Sequence[Path], roots: Sequence[str | Path] | None = None
) -> tuple[list[Path], list[Path]]:
    """Split source files into (train, held out), whole files only: every frame of a video, like a photo, falls
    on one side.

    - When any file is named in :data:`HELDOUT_FILES` (the shared data set), exactly those files are held out
      (the shipped models' recorded figures depend on this split).
    - Otherwise (a user's own photos and videos) the files whose name hashes (SHA-1) to 0 modulo
      :data:`HELDOUT_FRACTION` are held out: about one in eight, the same files on every run and machine, and a
      file keeps its side when others are added. At least one file is held out and at least one trains; which
      files were held out is logged.
    - Files in sub-folders of ``roots`` (``root/<person>/...``, the layout ``saswap train`` reads identities from)
      are held out a whole sub-folder at a time, chosen by a hash of the sub-folder's name, so one person's
      photos and videos all fall on one side (a file directly inside a root is its own group). With fewer than
      two person folders the files are split one by one, and the log says a person may then land on both sides.
      Where no group hashes to the held-out side (or every one does), the smallest group is held out.

    Files that a ``MANIFEST.tsv`` beside them marks non-commercial
    (:func:`~saswap.training.data.non_commercial_files`) never train the Apache-2.0 weights: they are left out of
    the training set (a held-out one of :data:`HELDOUT_FILES` is still measured on).

    Raises:
        SaSwapError: no :data:`HELDOUT_FILES` name is present and fewer than 2 usable (not non-commercial) files.

    Example:
        >>> split_files([Path("a.jpg"), Path("insightface__mask.png")])
        ([PosixPath('a.jpg')], [PosixPath('insightface__mask.png')])
        >>> split_files([Path("a.jpg"), Path("b.mp4")])  # no HELDOUT_FILES name: one file of two held out
        ([PosixPath('b.mp4')], [PosixPath('a.jpg')])
        >>> files = [Path("d/ann/1.jpg"), Path("d/ann/2.jpg"), Path("d/bob/1.jpg")]
        >>> split_files(files, roots=["d"])  # one person's files on one side
        ([PosixPath('d/ann/1.jpg'), PosixPath('d/ann/2.jpg')], [PosixPath('d/bob/1.jpg')])
    """
    files = [Path(f) for f in files]
    excluded = non_commercial_files(files)
    if excluded:
        logger.info("left out of training (non-commercial licence): %s", ", ".join(sorted(f.name for f in excluded)))
    if any(f.name in HELDOUT_FILES for f in files):
        train = [f for f in files if f.name not in HELDOUT_FILES and f not in excluded]
        held = [f for f in files if f.name in HELDOUT_FILES]
        return train, held
    usable = [f for f in files if f not in excluded]
    if len(usable) < 2:
        folders = ", ".join(sorted({str(f.parent) for f in files})) or "the data folders"
        found = f"{len(usable)} usable photo or video found" + (
            f" ({len(excluded)} more marked non-commercial in MANIFEST.tsv)" if excluded else ""
        )
        raise SaSwapError(f"{folders}: {found}; training needs at least 2 (one is held out for validation)")
    paths = [Path(r) for r in roots or ()]
    folder = {f: _group_of(f, paths) for f in usable}
    by_folder = len({g for g in folder.values() if g is not None}) >= 2  # two people at least (loose files aside)
    groups: dict[str, list[Path]] = {}
    for f in usable:
        # by person folder; a file outside them (every file, without two person folders) by its name, keyed so that
        # no folder name can match (files of one name, in two roots, go together)
        key = folder[f] if by_folder and folder[f] is not None else f"\0{f.name}"
        groups.setdefault(key, []).append(f)
    held_keys = {k for k in groups if _key_hash(k) % HELDOUT_FRACTION == 0}
    if not held_keys or len(held_keys) == len(groups):  # keep one group on each side: the smallest held out
        held_keys = {min(groups, key=lambda k: (len(groups[k]), _key_hash(k)))}
    held_set = {f for k in held_keys for f in groups[k]}
    train = [f for f in usable if f not in held_set]
    held = [f for f in usable if f in held_set]
    if by_folder:
        names = sorted(k for k in held_keys if not k.startswith("\0"))
        loose = len(held_keys) - len(names)
        logger.info(
            "no file named in HELDOUT_FILES: holding out %d of %d files for validation, whole person folders (1 in %d "
            "by a hash of the folder's name): %s%s",
            len(held), len(usable), HELDOUT_FRACTION, ", ".join(names) or "none",
            f", and {loose} file(s) outside the person folders" if loose else "",
        )  # fmt: skip
    else:
        logger.info(
            "no file named in HELDOUT_FILES: holding out %d of %d files for validation (1 in %d by a hash of the name)"
            "%s: %s",
            len(held), len(usable), HELDOUT_FRACTION,
            "; one person folder only, so a person may land on both sides" if any(folder.values()) else "",
            ", ".join(f.name for f in held),
        )  # fmt: skip
    return train, held


def label_face(
    regions: dict[str, np.ndarray], person: np.ndarray, mouth_y: float, face_dilate: int = 3
) -> np.ndarray:
    """Per-pixel class labels of one aligned face crop.

    Args:
        regions: :func:`saswap.face.masks.face_region_masks` of the crop's mesh, each (S, S).
        person: person probability from the segmentation, float (S, S) in [0, 1].
        mouth_y: the mouth's row in the crop; person pixels outside the face above it are hair.
        face_dilate: person pixels this close to the face (pixels) stay background, not hair (the
            mesh's outline and the segmentation disagree by a few pixels).

    Returns:
        uint8 (S, S) of indices into :data:`FACE_PARSER_CLASSES`.

    Example:
        >>> z = np.zeros((8, 8), np.float32)
        >>> face = z.copy(); face[2:6, 2:6] = 1
        >>> regions = {"face": face, "eyes": z, "brows": z, "lips": z, "mouth": z}
        >>> lab = label_face(regions, np.ones((8, 8), np.float32), mouth_y=4, face_dilate=0)
        >>> int(lab[3, 3]), int(lab[0, 0]), int(lab[7, 0])  # skin, hair, background
        (1, 7, 0)
    """
    shape = regions["face"].shape
    if person.shape != shape:
        raise ValueError(f"person mask {person.shape} and face regions {shape} differ in shape")
    label = np.zeros(shape, np.uint8)
    face = regions["face"] > 0.5
    near = cv2.dilate(face.astype(np.uint8), np.ones((2 * face_dilate + 1,) * 2, np.uint8)) > 0
    rows = np.arange(shape[0])[:, None] < mouth_y
    label[(person > 0.5) & ~near & rows] = _CLS["hair"]
    label[face] = _CLS["skin"]
    for name in ("brows", "eyes", "lips", "mouth"):  # later ones win (the mouth lies inside the lips)
        label[regions[name] > 0.5] = _CLS[name]
    return label


def outline_band(label: np.ndarray, radius: int) -> np.ndarray:
    """Pixels within ``radius`` of the outline of the visible face (swappable classes) in mesh-made labels.

    There the mesh's outline and the person segmentation disagree by a few pixels, so training ignores
    them (:data:`IGNORE_INDEX`); the compose stage takes the face's outline from the mesh anyway and asks
    the parser only what covers the face inside it. Pasted occluders are labelled after the band is cut, so
    their outlines, which are exact, stay supervised.

    Args:
        label: class indices, uint8 (S, S).
        radius: half-width of the band in pixels (0: no band).

    Returns:
        bool (S, S).

    Example:
        >>> lab = np.zeros((7, 7), np.uint8); lab[2:5, 2:5] = 1
        >>> band = outline_band(lab, 1)
        >>> bool(band[3, 3]), bool(band[2, 2]), bool(band[1, 1]), bool(band[0, 0])
        (False, True, True, False)
    """
    if radius <= 0:
        return np.zeros(label.shape, bool)
    face = np.isin(label, [_CLS[c] for c in ("skin", "eyes", "brows", "lips", "mouth")]).astype(np.uint8)
    kernel = np.ones((2 * radius + 1,) * 2, np.uint8)
    return (cv2.dilate(face, kernel) > 0) & ~(cv2.erode(face, kernel, borderType=cv2.BORDER_REPLICATE) > 0)


def unsure_face_pixels(crop: np.ndarray, mesh: np.ndarray, label: np.ndarray, grow: int = 2) -> np.ndarray:
    """Face pixels of a real photo that may be covered by something: where the colour and texture rules of
    :mod:`saswap.face.masks` see glasses, hair, a hand or an object over the face.

    The mesh labels such pixels face (its real glasses, a fringe, a hand are "skin"); training ignores
    them, so the parser learns what covers a face only from the pasted occluders, whose masks are known,
    and is never taught that real glasses are skin. The rules also fire on some shadows and beards: those
    pixels are left out too, not labelled anything.

    Args:
        crop: RGB uint8 (S, S, 3).
        mesh: the crop's 478-point mesh, (478, 3) or (478, 2), crop pixels.
        label: the crop's labels (:func:`label_face`).
        grow: the rules' pixels are grown by this many pixels (their outlines are loose).

    Returns:
        bool (S, S), inside the visible face only.
    """
    from saswap.face.masks import face_region_masks, glasses_mask, skin_occlusion_mask

    shape = crop.shape[:2]
    regions = face_region_masks(np.asarray(mesh, np.float64)[:468], shape)
    pts = np.asarray(mesh, np.float64)[:, :2]
    eye = max(float(np.linalg.norm(pts[33] - pts[263])), 1.0)  # outer eye corners of the mesh
    rules = np.maximum(skin_occlusion_mask(crop, regions), glasses_mask(crop, regions, eye)) > 0.5
    if grow > 0:
        rules = cv2.dilate(rules.astype(np.uint8), np.ones((2 * grow + 1,) * 2, np.uint8)) > 0
    face = np.isin(label, [_CLS[c] for c in ("skin", "eyes", "brows", "lips", "mouth")])
    return rules & face


@dataclass
class ParsingRecord:
    """One cached face: crop (S, S, 3) uint8, labels (S, S) uint8, five keypoints (5, 2) and the mesh
    (478, 3) in crop pixels, the face's skin tone (3,) uint8, and its source file's name."""

    crop: np.ndarray
    label: np.ndarray
    keypoints: np.ndarray
    mesh: np.ndarray
    tone: np.ndarray
    source: str


def _cache_file(cache_dir: Path, path: Path, size: int, frames_per_video: int) -> Path:
    digest = hashlib.sha1(f"{path.resolve()}|{size}|{frames_per_video}|v2".encode()).hexdigest()[:16]
    return cache_dir / f"{path.stem}_{digest}.npz"


def build_parsing_cache(
    files: Sequence[Path],
    cache_dir: Path,
    size: int = 256,
    frames_per_video: int = 8,
    max_faces: int = 4,
    min_eye_distance: float = 30.0,
) -> list[Path]:
    """Analyse each file once (mesh + person segmentation) and cache its labelled face crops.

    Args:
        files: photos and videos.
        cache_dir: folder of the ``.npz`` files (one per source file; existing ones are reused).
        size: crop side (FFHQ-style alignment, :func:`saswap.face.alignment.ffhq_transform`).
        frames_per_video: frames taken evenly from each video.
        max_faces: largest faces kept per image.
        min_eye_distance: smaller faces (pixels between the outer eye corners) are skipped.

    Returns:
        the cache files, one per source file (possibly holding no face).
    """
    from tqdm import tqdm

    from saswap.face import FaceAnalyzer
    from saswap.face._mediapipe import PersonSegmenter
    from saswap.face.alignment import ffhq_transform, transform_face, warp_face
    from saswap.face.masks import face_region_masks
    from saswap.io import load_image

    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    outs = [_cache_file(cache_dir, Path(p), size, frames_per_video) for p in files]
    todo = [(Path(p), o) for p, o in zip(files, outs) if not o.exists()]
    if not todo:
        return outs
    analyzer, segmenter = FaceAnalyzer(), PersonSegmenter()
    try:
        for path, out in tqdm(todo, desc="face parsing cache", unit="file"):
            try:
                frames = sample_frames(path, frames_per_video) if path.suffix.lower() in VIDEO_EXTS else [load_image(path)]
            except Exception as err:  # noqa: BLE001 - a broken file is skipped, not fatal
                logger.warning("skipping %s: %s", path, err)
                frames = []
            arrays: dict[str, list] = {k: [] for k in ("crop", "label", "keypoints", "mesh", "tone")}
            for frame in frames:
                person_full = segmenter(frame)
                for face in analyzer(frame, max_faces=max_faces):
                    if face.eye_distance < min_eye_distance:
                        continue
                    M = ffhq_transform(face.keypoints, size)
                    crop = warp_face(frame, M, size, border=cv2.BORDER_CONSTANT)
                    person = warp_face(person_full, M, size, border=cv2.BORDER_CONSTANT)
                    aligned = transform_face(face, M)
                    regions = face_region_masks(aligned.landmarks, (size, size))
                    mouth_y = float(aligned.keypoints[3:5, 1].mean())
                    label = label_face(regions, person, mouth_y)
                    # beyond the photo's edge the crop is black, whatever the mesh says: background
                    inside = warp_face(np.ones(frame.shape[:2], np.uint8), M, size, border=cv2.BORDER_CONSTANT) > 0
                    label[~inside] = _CLS["background"]
                    skin = regions["reference"] > 0.5
                    if skin.sum() < 20:
                        skin = label == _CLS["skin"]
                    tone = np.median(crop[skin], axis=0) if skin.any() else np.array([200, 150, 120])
                    arrays["crop"].append(crop)
                    arrays["label"].append(label)
                    arrays["keypoints"].append(aligned.keypoints.astype(np.float32))
                    arrays["mesh"].append(aligned.landmarks.astype(np.float32))
                    arrays["tone"].append(np.asarray(tone, np.uint8))
            tmp = out.with_suffix(".tmp.npz")
            empty = {"crop": (0, size, size, 3), "label": (0, size, size), "keypoints": (0, 5, 2), "mesh": (0, 478, 3)}
            np.savez_compressed(
                tmp,
                **{
                    k: (np.asarray(v) if v else np.zeros(empty.get(k, (0, 3)), np.float32 if k in ("keypoints", "mesh") else np.uint8))
                    for k, v in arrays.items()
                },
            )
            tmp.replace(out)
    finally:
        analyzer.close()
        segmenter.close()
    return outs


def load_records(cache_files: Sequence[Path], sources: Sequence[Path]) -> list[ParsingRecord]:
    """Records of the cached files (``sources[i]`` is the file ``cache_files[i]`` was made from)."""
    records = []
    for cache, src in zip(cache_files, sources):
        with np.load(cache) as z:
            for i in range(len(z["crop"])):
                records.append(
                    ParsingRecord(z["crop"][i], z["label"][i], z["keypoints"][i], z["mesh"][i], z["tone"][i], Path(src).name)
                )
    return records


def source_files(roots: Sequence[str | Path]) -> list[Path]:
    """The photos and videos inside each of ``roots`` and their sub-folders (``root/<person>/...``, as ``saswap
    train`` reads them; hidden folders such as a ``.saswap-cache`` left out), sorted per folder.

    Raises:
        SaSwapError: a folder is missing, or none holds a photo or video.
    """
    files: list[Path] = []
    for root in roots:
        check_data_root(root, "--data.roots")
        files += media_files(root)
    if not files:
        raise SaSwapError(f"{', '.join(str(r) for r in roots)}: no photos or videos found")
    return files


def face_records(
    roots: Sequence[str | Path], cache_dir: str | Path, cache_size: int, frames_per_video: int, held_out: bool
) -> list[ParsingRecord]:
    """The cached, labelled faces of the training files (``held_out=False``; non-commercial files left out,
    :func:`split_files`) or of the held-out files under ``roots`` (the cache is built where missing)."""
    train, held = split_files(source_files(roots), roots)
    files = held if held_out else train
    return load_records(build_parsing_cache(files, Path(cache_dir), cache_size, frames_per_video), files)


def split_records(
    roots: Sequence[str | Path], cache_dir: str | Path, cache_size: int, frames_per_video: int
) -> tuple[list[ParsingRecord], list[ParsingRecord]]:
    """The cached, labelled faces of the training and of the held-out files under ``roots`` (:func:`split_files`;
    the cache is built where missing).

    Raises:
        SaSwapError: too few files to split, or no face found in the training or in the held-out files.
    """
    train, held = split_files(source_files(roots), roots)
    records = []
    for files, what in ((train, "training"), (held, "held-out")):
        recs = load_records(build_parsing_cache(files, Path(cache_dir), cache_size, frames_per_video), files)
        if not recs:
            names = ", ".join(f.name for f in files) or "none"
            raise SaSwapError(
                f"{', '.join(str(r) for r in roots)}: no usable face found in the {what} files ({names}); each side "
                "needs a photo or video with a face at least 30 pixels between the eyes"
            )
        records.append(recs)
    return records[0], records[1]


def _place(kind: str, keypoints: np.ndarray, label: np.ndarray, size: int, rng: np.random.Generator) -> tuple[float, float]:
    """Where an occluder of ``kind`` goes on a crop with these keypoints (crop pixels) and labels."""
    place = OCCLUDER_KINDS[kind].place
    eyes = keypoints[:2].mean(0)
    mouth = keypoints[3:5].mean(0)
    jitter = rng.normal(0, 0.04 * size, 2)
    if place == "eyes":
        return tuple(eyes + rng.normal(0, 0.01 * size, 2))
    if place == "forehead":
        return tuple(eyes + (eyes - mouth) * rng.uniform(0.3, 0.9) + jitter)
    if place == "lower":
        return tuple(mouth + (mouth - eyes) * rng.uniform(0.0, 0.35) + jitter)
    ys, xs = np.nonzero((label > 0) & (label <= _CLS["mouth"]))
    if len(xs) == 0:
        return (size / 2, size / 2)
    i = int(rng.integers(len(xs)))
    return (float(xs[i]), float(ys[i]))


def _photometric(image: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Random light (a gradient), colour balance, gamma, blur and noise."""
    h, w = image.shape[:2]
    x = image.astype(np.float32) / 255.0
    gy, gx = np.mgrid[:h, :w].astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(ang) * (gx / w - 0.5) + np.sin(ang) * (gy / h - 0.5)) * rng.uniform(0, 0.8) * strength
    x = x * (1 + ramp[..., None]) * (1 + rng.uniform(-0.08, 0.08, 3) * strength)
    x = np.clip(x, 0, 1) ** np.exp(rng.uniform(-0.3, 0.3) * strength)
    if rng.random() < 0.3 * strength:
        x = cv2.GaussianBlur(x, (0, 0), float(rng.uniform(0.4, 1.2)))
    if rng.random() < 0.5 * strength:
        x = x + rng.normal(0, rng.uniform(0.005, 0.03), x.shape).astype(np.float32)
    return np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)


def compose_sample(
    record: ParsingRecord,
    image_size: int,
    kinds: Sequence[str],
    rng: np.random.Generator,
    occluder_p: float = 0.8,
    max_occluders: int = 2,
    jitter: bool = True,
    photometric: float = 1.0,
    hand_tone: str = "random",
    ignore_outline: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """One training or evaluation sample from a cached face.

    Args:
        record: the cached face.
        image_size: output side.
        kinds: occluder kinds to draw from.
        rng: random generator.
        occluder_p: probability of pasting at least one occluder.
        max_occluders: most occluders pasted.
        jitter: random flip, rotation (+-10 degrees), scale (0.9-1.1) and shift of the crop.
        photometric: strength of the random light, colour, blur and noise (0 disables).
        hand_tone: ``"random"`` (the face's own tone 40% of the time) or ``"face"`` (always the face's own).
        ignore_outline: pixels within this distance of the visible face's mesh-made outline and not covered
            by a pasted occluder are labelled :data:`IGNORE_INDEX` (:func:`outline_band`).

    Returns:
        (image uint8 (S, S, 3), labels uint8 (S, S), occluder pixels bool (S, S) (every pasted
        occluder, glasses and hair strands included), the kinds pasted).
    """
    size = record.crop.shape[0]
    s = image_size / size
    M = np.array([[s, 0, 0], [0, s, 0]], np.float64)
    if jitter:
        c = image_size / 2
        R = cv2.getRotationMatrix2D((c, c), float(rng.uniform(-10, 10)), float(rng.uniform(0.9, 1.1)))
        R[:, 2] += rng.uniform(-0.05, 0.05, 2) * image_size
        M = np.vstack([R, [0, 0, 1]]) @ np.vstack([M, [0, 0, 1]])
        M = M[:2]
        if rng.random() < 0.5:
            M = np.array([[-1, 0, image_size], [0, 1, 0]], np.float64) @ np.vstack([M, [0, 0, 1]])
    image = cv2.warpAffine(record.crop, M, (image_size, image_size), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    label = cv2.warpAffine(record.label, M, (image_size, image_size), flags=cv2.INTER_NEAREST, borderValue=0)
    kps = record.keypoints.astype(np.float64) @ M[:, :2].T + M[:, 2]
    if M[0, 0] < 0:  # a flip swaps the subject's left and right
        kps = kps[[1, 0, 2, 4, 3]]
    band = outline_band(label, ignore_outline) if ignore_outline > 0 else None
    occluded = np.zeros(label.shape, bool)
    pasted: list[str] = []
    if kinds and rng.random() < occluder_p:
        for _ in range(int(rng.integers(1, max_occluders + 1))):
            kind = str(kinds[int(rng.integers(len(kinds)))])
            tone = tuple(int(v) for v in record.tone)
            rgba = draw_occluder(kind, rng, image_size, face_tone=tone, tone=tone if hand_tone == "face" else None)
            image, mask = paste_rgba(image, rgba, _place(kind, kps, label, image_size, rng))
            label[mask] = _CLS[OCCLUDER_KINDS[kind].label]
            occluded |= mask
            pasted.append(kind)
    if band is not None:  # after placing the occluders (the same places with or without the band)
        label[band & ~occluded] = IGNORE_INDEX
    if photometric > 0:
        image = _photometric(image, rng, photometric)
    return image, label, occluded, pasted


def item_rng(seed: int | None, index: int) -> np.random.Generator:
    """The random generator of one item of a data set.

    Args:
        seed: a fixed seed: item ``index`` is then the same every time (evaluation sets). None (training sets): a
            new draw for every call, seeded from torch's generator, so that ``seed_everything`` (the recipes'
            ``seed_everything:``) makes a training run repeatable. In a DataLoader worker, torch's generator is
            the worker's own, which PyTorch seeds from the main process's generator.
        index: the item's index.

    Returns:
        a numpy generator.

    Example:
        >>> _ = torch.manual_seed(0); a = item_rng(None, 3).random()
        >>> _ = torch.manual_seed(0); bool(a == item_rng(None, 3).random() != item_rng(None, 3).random())
        True
        >>> bool(item_rng(7, 3).random() == item_rng(7, 3).random())
        True
    """
    if seed is not None:
        return np.random.default_rng((seed, index))
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,))))


class FaceParsingDataset(Dataset):
    """Cached faces with occluders pasted on the fly.

    Each item: ``image`` float (3, S, S) in [0, 1], ``label`` int64 (S, S) (indices into
    :data:`FACE_PARSER_CLASSES`), ``occluded`` bool (S, S) (pasted occluders' pixels).

    Args:
        records: cached faces.
        image_size: output side S.
        kinds: occluder kinds to paste (default: :data:`TRAIN_OCCLUDER_KINDS`).
        length: items per epoch (records are cycled; each item is drawn anew).
        occluder_p, max_occluders, jitter, photometric, hand_tone, ignore_outline: see :func:`compose_sample`.
        seed: when given, item ``i`` is the same every time (evaluation); else random per call, drawn from torch's
            generator (:func:`item_rng`), so a seeded training run is repeatable.
    """

    def __init__(
        self,
        records: Sequence[ParsingRecord],
        image_size: int = 128,
        kinds: Sequence[str] | None = None,
        length: int | None = None,
        occluder_p: float = 0.8,
        max_occluders: int = 2,
        jitter: bool = True,
        photometric: float = 1.0,
        hand_tone: str = "random",
        ignore_outline: int = 0,
        seed: int | None = None,
    ) -> None:
        if not records:
            raise SaSwapError("no face records: the cache holds no face (check the data folders)")
        kinds = TRAIN_OCCLUDER_KINDS if kinds is None else tuple(kinds)
        unknown = [k for k in kinds if k not in OCCLUDER_KINDS]
        if unknown:
            raise SaSwapError(f"unknown occluder kinds {unknown}; choose from {sorted(OCCLUDER_KINDS)}")
        self.records = list(records)
        self.image_size = image_size
        self.kinds = kinds
        self.length = length or len(self.records)
        self.kw = dict(
            occluder_p=occluder_p,
            max_occluders=max_occluders,
            jitter=jitter,
            photometric=photometric,
            hand_tone=hand_tone,
            ignore_outline=ignore_outline,
        )
        self.seed = seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = item_rng(self.seed, index)
        rec = self.records[index % len(self.records)]
        image, label, occluded, _ = compose_sample(rec, self.image_size, self.kinds, rng, **self.kw)
        return {
            "image": torch.from_numpy(image).permute(2, 0, 1).float() / 255.0,
            "label": torch.from_numpy(label.astype(np.int64)),
            "occluded": torch.from_numpy(occluded),
        }


class FaceParsingDataModule(L.LightningDataModule):
    """Face parsing data: training on :data:`TRAIN_OCCLUDER_KINDS` over the training files, validation on
    :data:`HELDOUT_OCCLUDER_KINDS` over the held-out files, fixed seed.

    The split is of whole files, photos and videos alike (every frame of a video on one side,
    :func:`split_files`): the files named in :data:`HELDOUT_FILES` when any is present (the shared data
    set), else about one file in eight, chosen by a stable hash of its name (at least one; the held-out
    files are logged). So the folders need at least 2 usable photos or videos, each with a face.

    Args:
        roots: folders of photos and/or videos (files inside them and in their person sub-folders,
            :func:`~saswap.training.parsing_data.source_files`).
        cache_dir: where the labelled crops are cached.
        image_size: side of the training crops (the cache holds ``cache_size`` crops); at least 32, and a
            multiple of the parser's ``2 ** len(block_out_channels)`` (checked by the training CLI).
        cache_size: side of the cached crops.
        frames_per_video: frames taken evenly from each video.
        batch_size: batch size.
        num_workers: data loader workers.
        epoch_length: training items per epoch.
        val_per_record: validation samples per held-out face.
        occluder_p: probability of pasting occluders on a training item.
        max_occluders: most occluders on one item.
        ignore_unsure: training labels ignore the face pixels where the colour rules see something over a
            real photo's face (:func:`unsure_face_pixels`); validation labels keep them.
        ignore_outline: half-width, in pixels at 256 px (scaled to ``image_size``), of the band along the
            visible face's mesh-made outline that the training loss ignores (:func:`outline_band`);
            validation labels keep it.
        root: one folder of photos and/or videos; when given it replaces ``roots`` (``--data.root DIR``, as
            for ``saswap train``).
    """

    def __init__(
        self,
        roots: Sequence[str] = ("../shared/data/images", "../shared/data/videos"),
        cache_dir: str = "outputs/cache/face-parser",
        image_size: int = 128,
        cache_size: int = 256,
        frames_per_video: int = 8,
        batch_size: int = 16,
        num_workers: int = 0,
        epoch_length: int = 2000,
        val_per_record: int = 2,
        occluder_p: float = 0.8,
        max_occluders: int = 2,
        ignore_unsure: bool = False,
        ignore_outline: int = 0,
        root: str | None = None,
    ) -> None:
        super().__init__()
        check_image_size(image_size)
        if root is not None:
            check_data_root(root)
        self.save_hyperparameters()
        self.roots = [root] if root is not None else list(roots)
        self.train_set: FaceParsingDataset | None = None
        self.val_set: FaceParsingDataset | None = None

    def files(self) -> list[Path]:
        """The source files under ``roots``, sorted."""
        return source_files(self.roots)

    def prepare_data(self) -> None:
        build_parsing_cache(self.files(), Path(self.hparams.cache_dir), self.hparams.cache_size, self.hparams.frames_per_video)

    def records(self, held_out: bool) -> list[ParsingRecord]:
        """Cached faces of the training (``held_out=False``) or held-out files."""
        hp = self.hparams
        return face_records(self.roots, hp.cache_dir, hp.cache_size, hp.frames_per_video, held_out)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        hp = self.hparams
        train, held = split_records(self.roots, hp.cache_dir, hp.cache_size, hp.frames_per_video)
        if hp.ignore_unsure:
            for rec in train:
                rec.label = rec.label.copy()
                rec.label[unsure_face_pixels(rec.crop, rec.mesh, rec.label)] = IGNORE_INDEX
        held = [r for r in held if r.source not in REAL_OCCLUDED_FILES]  # their labels miss the occluder
        logger.info("face parsing data: %d training faces, %d held-out faces", len(train), len(held))
        self.train_set = FaceParsingDataset(
            train,
            hp.image_size,
            TRAIN_OCCLUDER_KINDS,
            hp.epoch_length,
            hp.occluder_p,
            hp.max_occluders,
            ignore_outline=int(round(hp.ignore_outline * hp.image_size / 256)) if hp.ignore_outline else 0,
        )
        self.val_set = FaceParsingDataset(
            held,
            hp.image_size,
            HELDOUT_OCCLUDER_KINDS,
            len(held) * hp.val_per_record,
            occluder_p=1.0,
            max_occluders=1,
            jitter=False,
            photometric=0.5,
            seed=0,
        )

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
