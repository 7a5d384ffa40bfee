"""The compose stage: what happens after an engine, the same for every engine.

An engine only makes the face (:class:`~saswap.engines.base.EngineOutput`: the face's shading detail or
its pixels, the target crop under the new face shape, where its face is valid, and what must stay the
target's for expression). The compositor decides what the swap may change and how it meets the target:

1. **What may change** — the face region of the (moved) face mesh, times the engine's support, minus
   what the engine keeps (mouth interior, eyes), minus what covers the target's face (hands, masks,
   microphones, glasses frames, hair: ``occlusion``, computed from the target alone by the face parser,
   :class:`~saswap.face.parsing.FaceParsing`, or by the colour rules of :mod:`saswap.face.masks`), and
   on a strongly turned face minus the background (:attr:`TargetFace.person`).
2. **Tone and light** — the face's shading detail over the target's local skin colour and lighting
   (:func:`~saswap.face.colour.apply_detail`), then a Poisson-style membrane so the face meets the
   target's skin exactly along its border (:func:`~saswap.face.blending.membrane_correction`) while its
   cheeks and lower forehead keep the target's skin tone (``tone_anchor``).
3. **Blend** — a thin soft mask, Laplacian-pyramid blending band by band, the coarse bands' tint kept to
   a band around the face; pixels outside the changed region stay bit-for-bit the target's.
4. **Paste-back** — :func:`paste_back` puts the composed crop into the frame through the inverse
   alignment, touching only pixels whose mask is non-zero.

Everything the compositor needs from the target alone (occlusion and person masks) comes from
:meth:`Compositor.analyze_target`, so a template cache stores it once per frame.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, NamedTuple

import cv2
import numpy as np

from saswap.face.alignment import invert_affine, transform_points, transform_scale, warp_back
from saswap.face.blending import blend_offset, membrane_correction
from saswap.face.colour import apply_detail, masked_blur, shading_detail
from saswap.face.deform import warp_by_flow
from saswap.face.masks import (
    closed_eye_lashes,
    dilate_disk,
    face_region_masks,
    feather,
    glasses_mask,
    skin_occlusion_mask,
)
from saswap.face.types import Face

__all__ = [
    "Compositor", "ComposedFace", "paste_back", "place_back", "blend_placed", "is_grey", "border_taper", "entering_cover",
    "in_front_of", "face_cover", "PROFILE_YAW",
]

#: Degrees of yaw beyond which a face counts as turned: the person segmentation then decides where the
#: face meets the background (the mesh's outline only approximates a profile's nose, lips and chin).
PROFILE_YAW = 35.0


def is_grey(image: np.ndarray, where: np.ndarray, tolerance: float = 4.0) -> bool:
    """Whether ``image`` is black and white over ``where``: its channels differ by at most ``tolerance``
    grey levels in 99% of those pixels (compression leaves a little colour noise in grey photos).

    Example:
        >>> is_grey(np.full((4, 4, 3), 90, np.uint8), np.ones((4, 4), bool))
        True
    """
    r, g, b = cv2.split(np.ascontiguousarray(image, np.uint8))
    spread = cv2.max(cv2.max(cv2.absdiff(r, g), cv2.absdiff(g, b)), cv2.absdiff(r, b))  # max - min of the three
    coloured = spread > tolerance
    if where.any():
        return bool(np.count_nonzero(coloured & where) <= 0.01 * np.count_nonzero(where))
    return bool(np.count_nonzero(coloured) <= 0.01 * coloured.size)


def border_taper(shape: tuple[int, int], margin: int) -> np.ndarray:
    """1 inside the crop, 0 on its outermost ``margin`` pixels, a linear ramp over the next ``margin``.

    Example:
        >>> t = border_taper((16, 16), 2)
        >>> float(t[0, 0]), float(t[8, 8])
        (0.0, 1.0)
    """
    h, w = shape
    y = np.minimum(np.arange(h), np.arange(h)[::-1]).astype(np.float32)
    x = np.minimum(np.arange(w), np.arange(w)[::-1]).astype(np.float32)
    ramp = lambda d: np.clip((d - margin) / margin, 0.0, 1.0)  # noqa: E731
    return np.outer(ramp(y), ramp(x)).astype(np.float32)


#: How many times :attr:`ComposedFace.boundary` is averaged down from the crop (2: 192 cells across a 384-px crop). The
#: membrane's offset changes most along the face's outline, within a few pixels; averaged down 4 times, the smoothed
#: video kept part of that flicker (``video-retalking__1``: 0.102 against 0.087 ΔE per frame; 0.090 at full size).
BOUNDARY_REDUCTION = 2

#: The paste-back adds grain finer than a crop pixel (:attr:`Compositor.fine_detail`) when the crop has fewer pixels per
#: frame pixel than this (the frame is more than 25% sharper than the crop).
FINE_DETAIL_SCALE = 0.8

#: The grain's finest scale, crop pixels (its noise is blurred this much first): blobs about a pore's size rather than
#: single-pixel noise.
GRAIN_INNER = 0.6

#: The least factor :attr:`Compositor.coarse_texture` lowers a new face's coarser skin texture by: stubble and creases
#: are part of who a face is, so at most half of them goes (set once, not tuned; ``benchmarks/RESULTS.md``, stop 85).
COARSE_TEXTURE_FLOOR = 0.5


@functools.lru_cache(maxsize=8)
def face_grain(shape: tuple[int, int], sigma: float, inner: float = 0.0, seed: int = 0) -> np.ndarray:
    """Grain for a face: white noise of a fixed ``seed``, blurred by a Gaussian of ``inner`` pixels (0: not), less its
    Gaussian low-pass of ``sigma`` pixels, scaled to a mean absolute value of 1; float32 ``shape``, read-only (cached).
    Drawn in a face's aligned coordinates, it stays on the face from frame to frame, as pores do, and carries nothing
    of any photo (no edge of a target's glasses, wrinkles or moles).

    Example:
        >>> g = face_grain((64, 64), 2.0)
        >>> round(float(np.abs(g).mean()), 3), bool(abs(float(g.mean())) < 0.05), g is face_grain((64, 64), 2.0)
        (1.0, True, True)
    """
    noise = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    if inner > 0:
        noise = cv2.GaussianBlur(noise, (0, 0), inner)
    band = cv2.subtract(noise, cv2.GaussianBlur(noise, (0, 0), max(float(sigma), 0.5)))
    band /= np.float32(max(float(np.abs(band).mean()), 1e-6))
    band.setflags(write=False)
    return band


def _robust_spread(values: np.ndarray) -> float:
    """1.4826 times the median absolute value: a noise's standard deviation, which edges and outliers hardly move."""
    return 1.4826 * float(np.median(np.abs(values)))


def _inner_skin(skin: np.ndarray, eye: float) -> tuple[np.ndarray, np.ndarray]:
    """A skin mask shrunk by 0.04 eye-corner distances from the features (bool) and that, feathered (float32): where
    grain goes (:attr:`Compositor.fine_detail`), with no edge of an eye, brow, lip or nostril in it."""
    margin = max(1.0, 0.04 * eye)
    r = int(np.ceil(margin))
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    inner = cv2.erode((skin > 0.5).astype(np.uint8), disk)
    return inner > 0, cv2.GaussianBlur(inner.astype(np.float32), (0, 0), margin / 2.0)


@dataclass
class ComposedFace:
    """The composed crop.

    Attributes:
        image: RGB uint8 (S, S, 3): the target crop with the new face; equal to the target crop wherever
            ``mask`` is 0.
        mask: float32 (S, S) in [0, 1]: where the crop changed (blend weight for paste-back).
        boundary: what the boundary membrane added to the crop (its offset times the face's blend weight), averaged
            down :data:`BOUNDARY_REDUCTION` times, in channels 0-2, and that blend weight averaged down alike in
            channel 3: float32 (S / 2, S / 2, 4), levels and [0, 1]; None when the membrane is off or the engine
            blends by itself. A video swap smooths the offset along each face's track
            (:class:`~saswap.pipelines.video.ToneStabiliser`): the membrane is decided frame by frame from the
            samples along the face's outline, and is most of what would otherwise flicker. The weight says where
            each frame's offset holds (its face), so that the frames around one count only where their faces were.
        fine: where the paste-back adds grain finer than a crop pixel, float32 (S, S) in [0, 1], at most ``mask``;
            None when the crop is about as sharp as the frame (:attr:`Compositor.fine_detail`).
    """

    image: np.ndarray
    mask: np.ndarray
    boundary: np.ndarray | None = None
    fine: np.ndarray | None = None


class Compositor:
    """Masks, tone, boundary correction and blending for every engine.

    Args:
        occlusion: keep whatever covers the target's face (hands, masks, microphones, glasses, hair), as
            the face parser sees it (``"parser"`` or True: the shipped ``saswap-face-parser``; or a
            parser's folder), by the colour and texture rules (``"rules"``), or not at all (``"off"``,
            False). See :func:`~saswap.face.parsing.occlusion_method`.
        occlusion_threshold: with a parser, a pixel is covered when the parser's probability that it is
            not visible face exceeds this (higher keeps less of the target). None: the parser's own operating point
            (:attr:`~saswap.face.parsing.FaceParsing.threshold`, from its config; 0.5, its most likely reading, for
            the shipped weights).
        silhouette: on a strongly turned target (beyond :data:`PROFILE_YAW`), MediaPipe's person
            segmentation (shipped in the wheel, 3-5 ms on the crop) decides where the face meets the
            background: the mesh's outline only approximates a profile's nose, lips and chin, and the
            background inside it is then neither painted over nor taken as the target's skin tone.
        relight_scale: size of the lighting transfer's low-pass, in eye-corner distances: the target's skin
            tone and broad lighting are taken at this scale, the face's own shading (eye sockets,
            cheekbones: identity) below it.
        edge: width of the soft mask edge, in eye-corner distances (thin: the membrane already removes
            colour steps, and every pixel of a wide edge is a mix with the target's face).
        membrane: after relighting, add the smooth colour offset (a Poisson-style membrane,
            :func:`~saswap.face.blending.membrane_correction`) that makes the face meet the target's skin
            exactly along its border: no colour step, and the skin tone follows the target's where the
            low-pass relighting alone misses it (shading gradients towards the outline).
        membrane_scale: how far the membrane spreads into the face, in eye-corner distances.
        tone_anchor: the membrane also holds the face's tone on the target's reference skin (cheeks and lower
            forehead, where both faces show skin): there its samples are the difference of the two faces'
            low-passes at ``relight_scale``, so the tone of the face's middle is the target's, and what differs
            along the outline (a source's beard or shaded jaw there, a target lit from the side) fades out
            between the outline and the cheeks instead of shifting the whole face. Without it the face's middle
            took the outline samples' median offset: bearded sources left pale cheeks on pale targets, and
            side-lit targets came out over-bright (see ``benchmarks/RESULTS.md``).
        tone_lock: how much of the remaining difference between the target's median skin colour and the new face's,
            over the reference skin both show, a second membrane removes (pinned at zero along the outline, so the
            border keeps the first membrane's match); 0 (the default) off, 1 all of it. The low-pass anchors above
            match means at the relighting's scale; a source's deep eye sockets or darker skin between them still
            move the face's middle off the target's tone (the benchmark's skin tone 4.8 ΔE). At 1 the benchmark's
            tone falls to 2.2 ΔE and the held-out pairs' to 1.6, but the dlib judge finds fewer outputs closer to
            their source (a face's skin tone is part of what it reads as identity; ``benchmarks/RESULTS.md``):
            for uses where looking like the target's light matters more. Needs ``membrane``.
        blend_levels: Laplacian pyramid levels of the blend (seamless edges).
        harmonize: after the blend, match the new face's colour and light to what surrounds it with the learned
            tone harmoniser (``"harmonizer"`` or True: the shipped ``saswap-tone-harmonizer``; or a harmoniser's
            folder; ``"off"``: no). See :mod:`saswap.compose.harmonizer`.
        hair_edge: softness of the edge where hair (or background) kept over the face meets the new face: the
            Gaussian sigma of that edge, in eye-corner distances (0: as sharp as an object's outline).
        highlight_knee: where the relit face's brightest channel exceeds this (linear light), the pixel rolls off
            towards white keeping its hue (:func:`~saswap.face.colour.highlight_roll_off`), instead of each channel
            clipping (a source's highlight on a bright target turned white or yellow); None clips.
        blur_match: blur the new face as much as the target's face is blurred (motion blur, a soft or small
            target face): the blur of each face's strongest edges (:func:`~saswap.face.blur.edge_blur`), the
            target's measured from the target alone (cached), and the new face blurred by the difference when it is
            sharper. A face that is softer than its target is left as it is.
        texture_match: lower the new face's fine skin texture (pores, stubble, grain:
            :func:`~saswap.face.blur.fine_texture` below :data:`~saswap.face.blur.TEXTURE_SCALE` eye-corner distances)
            to its target's, over the skin (eyes, brows and lips keep their detail but for a soft band along their
            edges), never raising it. A source
            photo's crisp pores on a smooth target (a soft photo, a beauty filter, a compressed video) read as
            pasted on; in a video, a face with more texture than its template is also read less steadily by a
            landmark detector (sharpening a template alone raised its measured jitter 1.2-1.7x, see
            ``benchmarks/RESULTS.md``). The target's reading is cached with its analysis.
        coarse_texture: with ``texture_match``, also lower the band above the fine one, from
            :data:`~saswap.face.blur.TEXTURE_SCALE` up to this many eye-corner distances (stubble, creases, the
            grain of a compressed source), towards the target's own reading of that band (the target under the new
            face's shape, over the same skin), by at most :data:`COARSE_TEXTURE_FLOOR`; never raising it. On a smooth
            template (a phone's beauty filter, a soft video) a source's stubble and creases stay 2-3x as textured
            as the face around them after the fine match. Off (0) by default: at 0.05 the held-out portrait clips
            read steadier by dlib (5 -> 7 of 9 swaps within the jitter bar) and the photos' skin tone came closer,
            but the benchmark's clips no steadier (MediaPipe 52 -> 51, dlib 48 -> 49 of 54 within the bar), one more
            swap above the tone-flicker bar and one profile pair no longer closer to its source
            (``benchmarks/RESULTS.md``, stop 85).
        fine_detail: give a new face that is smoother than its target the target's grain (the raising half of
            ``texture_match``, which only lowers). A smooth source photo (a beauty filter, a soft or small face) on a
            textured target, or any face drawn in the aligned crop and enlarged into a target face larger than the
            crop (a high-resolution photo or video), reads as pasted on: a smooth face in a sharp picture. Grain is
            added over the new face's skin, away from its features, at two scales: within the crop, up to the target's
            robust spread of the fine band (:meth:`_raise_texture`, with ``texture_match``'s reading), and, where the
            frame is more than 25% sharper than the crop, finer than a crop pixel, as strong as the frame's own detail
            of that band (:func:`fine_band`, at the paste-back). The grain is noise of a fixed seed drawn in the
            face's aligned coordinates (:func:`face_grain`): it moves with the face like pores, is the same in every
            frame of a video, and carries nothing of the target's pixels (copying the target's own fine band brought
            the edges of its glasses along). Measured in ``benchmarks/RESULTS.md``.
    """

    def __init__(
        self,
        occlusion: bool | str = "parser",
        occlusion_threshold: float | None = None,
        silhouette: bool = True,
        relight_scale: float = 0.6,
        edge: float = 0.03,
        membrane: bool = True,
        membrane_scale: float = 1.0,
        tone_anchor: bool = True,
        blend_levels: int = 4,
        harmonize: bool | str = "off",
        hair_edge: float = 0.03,
        highlight_knee: float | None = None,
        blur_match: bool = True,
        texture_match: bool = True,
        coarse_texture: float = 0.0,
        fine_detail: bool = True,
        tone_lock: float = 0.0,
    ) -> None:
        from saswap.compose.harmonizer import harmonize_method
        from saswap.face.parsing import occlusion_method

        for name, value in (("relight_scale", relight_scale), ("membrane_scale", membrane_scale)):
            if not value > 0:
                raise ValueError(f"{name} must be above 0, got {value}")
        checked = (("edge", edge), ("hair_edge", hair_edge), ("blend_levels", blend_levels))
        for name, value in (*checked, ("coarse_texture", coarse_texture)):
            if not value >= 0:
                raise ValueError(f"{name} must be 0 or above, got {value}")
        self.occlusion = occlusion_method(occlusion)
        if occlusion_threshold is None:  # the parser's own operating point (a config read; the weights load later)
            from saswap.face.parsing import DEFAULT_COVERED_THRESHOLD, default_face_parsing

            occlusion_threshold = DEFAULT_COVERED_THRESHOLD
            if self.occlusion not in ("off", "rules"):
                occlusion_threshold = default_face_parsing(self.occlusion).threshold
        if not 0.0 < occlusion_threshold < 1.0:
            raise ValueError(f"occlusion_threshold must lie in (0, 1), got {occlusion_threshold}")
        if highlight_knee is not None and not 0.0 < highlight_knee < 1.0:
            raise ValueError(f"highlight_knee must lie in (0, 1) or be None, got {highlight_knee}")
        self.occlusion_threshold = float(occlusion_threshold)
        self.silhouette = bool(silhouette)
        self.relight_scale = float(relight_scale)
        self.edge = float(edge)
        self.membrane = bool(membrane)
        self.membrane_scale = float(membrane_scale)
        self.tone_anchor = bool(tone_anchor)
        self.blend_levels = int(blend_levels)
        self.harmonize = harmonize_method(harmonize)
        self.hair_edge = float(hair_edge)
        self.highlight_knee = None if highlight_knee is None else float(highlight_knee)
        self.blur_match = bool(blur_match)
        self.texture_match = bool(texture_match)
        self.coarse_texture = float(coarse_texture)
        self.fine_detail = bool(fine_detail)
        if not 0.0 <= tone_lock <= 1.0:
            raise ValueError(f"tone_lock must lie in [0, 1], got {tone_lock}")
        self.tone_lock = float(tone_lock)
        self._segmenter = None

    def __getstate__(self) -> dict[str, Any]:  # sent to worker processes without the segmentation model
        state = dict(self.__dict__)
        state["_segmenter"] = None
        return state

    @classmethod
    def split_config(cls, config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Split one engine config (a model folder's ``config``, a benchmark's ``--config``) into the
        engine's keyword arguments and the compositor's; ``relight_scale`` goes to both.

        Example:
            >>> Compositor.split_config({"membrane": False, "source_eyes": True, "relight_scale": 1.0})
            ({'source_eyes': True, 'relight_scale': 1.0}, {'membrane': False, 'relight_scale': 1.0})
        """
        import inspect

        keys = set(inspect.signature(cls).parameters)
        engine = {k: v for k, v in config.items() if k not in keys or k == "relight_scale"}
        compose = {k: v for k, v in config.items() if k in keys}
        return engine, compose

    def config(self) -> dict[str, Any]:
        """The constructor's arguments (JSON-able; part of a template cache's key: a parser is named with
        its weights' digest and what runs them, ONNX Runtime or torch)."""
        occlusion = self.occlusion
        if occlusion not in ("off", "rules"):
            from saswap.face.parsing import default_face_parsing

            parsing = default_face_parsing(occlusion)
            occlusion = f"parser:{parsing.digest}:{parsing.backend}"
        harmonize = self.harmonize
        if harmonize != "off":
            from saswap.compose.harmonizer import default_tone_harmonization

            harmonize = f"harmonizer:{default_tone_harmonization(harmonize).digest}"
        return {
            "occlusion": occlusion,
            "occlusion_threshold": self.occlusion_threshold,
            "silhouette": self.silhouette,
            "relight_scale": self.relight_scale,
            "edge": self.edge,
            "membrane": self.membrane,
            "membrane_scale": self.membrane_scale,
            "tone_anchor": self.tone_anchor,
            "tone_lock": self.tone_lock,
            "blend_levels": self.blend_levels,
            "harmonize": harmonize,
            "hair_edge": self.hair_edge,
            "highlight_knee": self.highlight_knee,
            "blur_match": self.blur_match,
            "texture_match": self.texture_match,
            "coarse_texture": self.coarse_texture,
            "fine_detail": self.fine_detail,
        }

    # -- target-only analysis -----------------------------------------------------------------------
    def analyze_target(self, crop: np.ndarray, face: Face) -> dict[str, np.ndarray]:
        """What the compositor needs from an aligned target crop alone (cached per template frame).

        Returns:
            ``{"occlusion": uint8 (S, S) 0/1}`` (what covers the face) when ``occlusion`` is on, with a parser
            also ``{"occluder": uint8 (S, S) 0/1}`` (the part of it that objects in front of the face cover, in
            islands that overlap the face, :func:`in_front_of`: it stays where it is when the shape flow moves the
            face), and
            ``{"person": float16 (S, S) in [0, 1]}`` (person-versus-background probability) for a turned face
            when ``silhouette`` is on, ``{"blur": float32 (1,)}`` (:func:`~saswap.face.blur.edge_blur` of the
            visible inner face; NaN when it has too few edges) with ``blur_match``, and ``{"texture": float32
            (1,)}`` (:func:`~saswap.face.blur.fine_texture` of the visible skin; NaN when too little of it shows)
            with ``texture_match``.
        """
        out: dict[str, np.ndarray] = {}
        regions = None
        if self.occlusion == "rules":
            regions = face_region_masks(face.landmarks[:468].astype(np.float64), crop.shape[:2])
            eye = max(face.eye_distance, 1.0)
            occluded = np.maximum(skin_occlusion_mask(crop, regions), glasses_mask(crop, regions, eye))
            out["occlusion"] = (occluded > 0.5).astype(np.uint8)
        elif self.occlusion != "off":
            from saswap.face.parsing import SWAPPABLE_CLASSES, default_face_parsing

            parsing = default_face_parsing(self.occlusion)
            maps = parsing.group_probabilities(
                crop,
                face.keypoints,
                {
                    "covered": tuple(c for c in parsing.classes if c not in SWAPPABLE_CLASSES),
                    "objects": ("occluder", "glasses"),
                    "glasses": ("glasses",),
                },
            )
            covered, objects, glasses = maps["covered"], maps["objects"], maps["glasses"]
            regions = face_region_masks(face.landmarks[:468].astype(np.float64), crop.shape[:2])
            cover = face_cover(covered > self.occlusion_threshold, glasses > 0.5, face, regions["face"] > 0.5)
            out["occlusion"] = cover.astype(np.uint8)
            # covered mostly by objects in front of the face (not hair or background), in islands over the face:
            # they do not move with the face's shape
            objects = (objects >= 0.5 * covered) & (out["occlusion"] > 0)
            out["occluder"] = in_front_of(objects, regions["face"] > 0.5).astype(np.uint8)
        if self.silhouette and abs(float(face.pose[0])) >= PROFILE_YAW:
            out["person"] = self._person(crop).astype(np.float16)
        if self.blur_match:
            from saswap.face.blur import blur_region, edge_blur

            if regions is None:
                regions = face_region_masks(face.landmarks[:468].astype(np.float64), crop.shape[:2])
            region = blur_region(regions["face"], face.eye_distance) & (out.get("occlusion", 0) == 0)
            blur = edge_blur(crop, region)
            out["blur"] = np.array([np.nan if blur is None else blur], np.float32)
        if self.texture_match:
            from saswap.face.blur import TEXTURE_SCALE, blur_region, fine_texture

            if regions is None:
                regions = face_region_masks(face.landmarks[:468].astype(np.float64), crop.shape[:2])
            eye = max(face.eye_distance, 1.0)
            region = blur_region(regions["skin"], eye) & (out.get("occlusion", 0) == 0)
            texture = fine_texture(crop, region, TEXTURE_SCALE * eye)
            out["texture"] = np.array([np.nan if texture is None else texture], np.float32)
        if self.tone_lock > 0:
            out["tone"] = self._skin_tone(crop, face, out.get("occlusion"), regions)
        return out

    @staticmethod
    def _skin_tone(crop: np.ndarray, face: Face, occlusion: np.ndarray | None, regions=None) -> np.ndarray:
        """The median RGB colour of the target's visible reference skin (cheeks, nose bridge and lower forehead
        that nothing covers), float32 (3,); NaN where fewer than 20 pixels of it show."""
        if regions is None:
            regions = face_region_masks(face.landmarks[:468].astype(np.float64), crop.shape[:2])
        sel = (regions["reference"] > 0.5) & (regions["skin"] > 0.5)
        if occlusion is not None:
            sel &= occlusion <= 0.5
        if np.count_nonzero(sel) < 20:
            return np.full(3, np.nan, np.float32)
        return np.median(crop[sel], axis=0).astype(np.float32)

    def _person(self, image: np.ndarray) -> np.ndarray:
        if self._segmenter is None:
            from saswap.face._mediapipe import PersonSegmenter

            self._segmenter = PersonSegmenter()
        return self._segmenter(image)

    # -- compose --------------------------------------------------------------------------------------
    def __call__(
        self, target: np.ndarray, face: Face, analysis: dict[str, np.ndarray], result, scale: float | None = None
    ) -> ComposedFace:
        """Compose an engine's face into the aligned target crop.

        Args:
            target: aligned target crop, RGB uint8 (S, S, 3).
            face: the target face in crop coordinates.
            analysis: from :meth:`analyze_target` for this crop (or read from a template cache).
            result: the engine's :class:`~saswap.engines.base.EngineOutput`.
            scale: crop pixels per frame pixel of the crop's alignment, when the crop goes back into a frame (the
                blur match then allows for the resampling of the paste-back); None: the crop is the result.

        Returns:
            :class:`ComposedFace`.
        """
        if result.mask is not None:  # an engine that blends by itself (a reference baseline)
            return ComposedFace(image=result.image, mask=result.mask.astype(np.float32))
        shape = target.shape[:2]
        eye = max(face.eye_distance, 1.0)
        flow, back = result.flow, result.back
        moving = flow is not None
        base = result.base if result.base is not None else target
        mesh_t = face.landmarks[:468].astype(np.float64)
        moved_mesh = mesh_t if result.landmarks is None else np.asarray(result.landmarks, np.float64)[:468]
        regions = result.regions if result.regions is not None else face_region_masks(moved_mesh, shape)
        support = result.support if result.support is not None else np.ones(shape, np.float32)
        src_skin = result.source_skin if result.source_skin is not None else regions["skin"]

        # 1. what may change: what covers the target's face and, on a turned face, its silhouette. Objects in
        # front of the face (a hand, a mask, a microphone, glasses) stay where they are in the target; hair and
        # background move with the head's outline (the shape flow's moved geometry).
        occluded = analysis.get("occlusion")
        occluded = np.zeros(shape, np.float32) if occluded is None else occluded.astype(np.float32)
        pinned = analysis.get("occluder")
        pinned = np.zeros(shape, np.float32) if pinned is None or not moving else pinned.astype(np.float32)
        movable = occluded * (1.0 - pinned)
        if moving:
            movable = warp_by_flow(movable, flow, back)
            covered = np.maximum(warp_by_flow(occluded, flow, back), pinned)
        else:
            covered = occluded
        occluded = np.maximum(movable, pinned)
        tgt_skin = regions["skin"] * (1.0 - (covered > 0.5))
        person = analysis.get("person")
        if person is not None and self.silhouette and abs(float(face.pose[0])) >= PROFILE_YAW:
            person = person.astype(np.float32)
            if moving:
                person = warp_by_flow(person, flow, back)
            tgt_skin = tgt_skin * (person > 0.5)
            support = support * np.clip((person - 0.2) / 0.5, 0.0, 1.0)

        # 2. tone and light from the target, over skin only
        if result.detail is not None:
            detail = result.detail
        else:  # a generated face: its own detail over its skin, in its (the target's) geometry
            detail = shading_detail(result.image, regions["skin"], self.relight_scale * eye)
        relit = apply_detail(detail, base, tgt_skin, sigma=self.relight_scale * eye, highlight_knee=self.highlight_knee)
        kept = result.keep if result.keep is not None else np.zeros(shape, np.float32)
        keep = np.maximum(kept, (occluded > 0.5).astype(np.float32))
        membrane = None
        if self.membrane:
            before = relit
            tone = analysis.get("tone")
            if self.tone_lock > 0 and tone is None:  # a template cached without the lock has none
                tone = self._skin_tone(target, face, analysis.get("occlusion"))
            relit = self._match_boundary(relit, base, regions, support > 0.5, src_skin, tgt_skin, keep, eye, tone)
            membrane = cv2.subtract(relit, before, dtype=cv2.CV_32F)

        # 3. blend
        edge = max(2.0, self.edge * eye)
        face_mask = feather(regions["face"] * support, edge)
        keep_soft = np.clip(cv2.GaussianBlur(keep, (0, 0), edge * 0.15 + 0.5) * 1.5, 0, 1)
        if self.hair_edge > 0 and movable.any():
            # hair (and background) kept over the face meets it with a soft edge: strands fade into the new skin
            # instead of ending in a cut line (objects in front of the face keep their sharp outline)
            loose = ((movable > 0.5) & (pinned < 0.5)).astype(np.float32)
            soft = np.clip(cv2.GaussianBlur(loose, (0, 0), max(0.5, self.hair_edge * eye)) * 1.5, 0, 1)
            keep_soft = np.maximum(keep_soft, soft)
        alpha = face_mask * (1.0 - keep_soft)
        # Beyond the face's outline the relit image is no face (the target's skin colour spread into
        # its hair and background, plus the membrane's extrapolated offset): the blend's coarse bands
        # would carry it back across the edge as a band of another colour (a moved forehead). There the
        # foreground is the target itself; the holes (eyes, mouth, occluders) keep the relit face.
        relit = np.where((face_mask > 0)[..., None], relit, base)
        if self.blur_match and "blur" in analysis:
            target_blur = float(np.asarray(analysis["blur"]).reshape(-1)[0])
            relit = self._match_blur(relit, target_blur, regions, covered, keep, eye, scale)
        if self.texture_match and "texture" in analysis:
            target_texture = float(np.asarray(analysis["texture"]).reshape(-1)[0])
            relit = self._match_texture(relit, target_texture, regions, covered, keep, eye, scale, base)
        offset = blend_offset(relit, base, alpha, levels=self.blend_levels)
        # The coarse bands spill a faint tint beyond the face: keep it to a band of a quarter eye
        # distance around the face, fading out, and away from the crop's border.
        reach = max(2.0, 0.25 * eye)
        region = dilate_disk(alpha > 0, reach)
        border = border_taper(shape, margin=max(4, shape[0] // 48))
        taper = feather(region, reach / 2) * border
        # The coarse bands must not tint what stays the target's (occluders, mouth interior) either.
        weight = (1.0 - keep_soft) * taper
        out = cv2.add(base.astype(np.float32), cv2.multiply(offset, cv2.merge([weight] * 3)))
        out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
        if self.harmonize != "off":
            # the learned tone match: the new face's colour and light from what surrounds it (the target's hair,
            # neck, background and whatever stays the target's), a smooth colour transform of its own pixels
            from saswap.compose.harmonizer import default_tone_harmonization

            out = default_tone_harmonization(self.harmonize)(out, alpha * taper, face.keypoints)
        grey = is_grey(target, regions["face"] > 0.5)
        if grey:
            # A black-and-white photo stays one: the face's detail carries its own colour ratios.
            out = np.repeat(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)

        changed = taper
        if moving:
            magnitude = np.hypot(flow[..., 0], flow[..., 1])
            changed = np.maximum(changed, np.clip(magnitude / 0.5, 0, 1) * border)
            if pinned.any():  # objects in front of the face stay the target's own pixels, unmoved
                pin = np.clip(cv2.GaussianBlur(pinned, (0, 0), edge * 0.15 + 0.5) * 1.5, 0, 1)[..., None]
                out = np.clip(out * (1 - pin) + target * pin + 0.5, 0, 255).astype(np.uint8)
        out[changed == 0] = target[changed == 0]  # outside the mask, the crop is the target's
        fine = None
        if self.fine_detail and scale is not None and 0.0 < scale < FINE_DETAIL_SCALE:
            fine = np.minimum(self._fine_weight(regions, alpha, eye), changed)
        boundary = None
        if membrane is not None:
            membrane = cv2.multiply(membrane, cv2.merge([alpha.astype(np.float32)] * 3))
            if grey:  # what shows of it in a black-and-white output is its grey
                membrane = cv2.merge([cv2.cvtColor(membrane, cv2.COLOR_RGB2GRAY)] * 3)
            small = (max(1, shape[1] // BOUNDARY_REDUCTION), max(1, shape[0] // BOUNDARY_REDUCTION))
            weight = cv2.resize(alpha.astype(np.float32), small, interpolation=cv2.INTER_AREA)
            boundary = np.dstack([cv2.resize(membrane, small, interpolation=cv2.INTER_AREA), weight])
        return ComposedFace(image=out, mask=changed.astype(np.float32), boundary=boundary, fine=fine)

    def _fine_weight(self, regions: dict[str, np.ndarray], alpha: np.ndarray, eye: float) -> np.ndarray:
        """Where the paste-back adds grain finer than the crop (:attr:`fine_detail`), float32 (S, S) in [0, 1]: the new
        face's skin, shrunk by 0.04 eye-corner distances from the features and feathered, times its blend weight
        ``alpha`` (nothing over what stays the target's)."""
        return cv2.multiply(_inner_skin(regions["skin"], eye)[1], alpha.astype(np.float32))

    def _match_blur(
        self,
        relit: np.ndarray,
        target_blur: float,
        regions,
        covered: np.ndarray,
        keep: np.ndarray,
        eye: float,
        scale: float | None,
    ) -> np.ndarray:
        """``relit`` blurred by as much as the target's face is blurrier than it (at their strongest edges, over
        the visible inner face); unchanged when it is as soft already.

        The target's reading was taken on its crop, resampled once from the frame. The new face is resampled
        once more on its way back into the frame, so it is read after that round trip (``scale``): the output,
        seen through the same alignment as the target, then reads as the target does.
        """
        from saswap.face.blur import blur_region, edge_blur, extra_blur

        if not np.isfinite(target_blur):
            return relit
        region = blur_region(regions["face"], eye) & (covered < 0.5) & (keep < 0.5)
        sigma = extra_blur(target_blur, edge_blur(_after_paste_back(relit, scale), region))
        if sigma <= 0:
            return relit
        return cv2.GaussianBlur(relit, (0, 0), sigma)

    def _match_texture(
        self,
        relit: np.ndarray,
        target_texture: float,
        regions: dict[str, np.ndarray],
        covered: np.ndarray,
        keep: np.ndarray,
        eye: float,
        scale: float | None,
        base: np.ndarray | None = None,
    ) -> np.ndarray:
        """``relit`` with its skin's fine texture lowered to the target's reading (:func:`~saswap.face.blur.fine_texture`
        of the target's visible skin), over the skin, with a soft edge (about 2 x 0.02 eye-corner distances, so the
        outermost pixels of the brows, lids and lips lose up to half as much of their fine detail as the skin does);
        unchanged where it shows no more texture than the target.

        Both are read in the aligned crop. As in :meth:`_match_blur`, the new face is read after the round trip its
        paste-back makes (``scale``), so that texture the resampling removes anyway is not removed twice.

        With :attr:`coarse_texture` the band above, between the fine band's scale and that one, is lowered alike
        towards ``base``'s reading of it (the target under the new face's shape), by at most
        :data:`COARSE_TEXTURE_FLOOR`.
        """
        from saswap.face.blur import TEXTURE_SCALE, band_texture, blur_region, fine_texture, texture_gain

        if not np.isfinite(target_texture):
            return relit
        sigma = max(0.5, TEXTURE_SCALE * eye)
        skin = (regions["skin"] > 0.5).astype(np.uint8)
        x, y, w, h = cv2.boundingRect(skin)
        if w == 0 or h == 0:
            return relit
        # Everything below happens within the skin's box and a margin wider than the weight's blur (OpenCV cuts a
        # Gaussian at 4 sigma: 8 sigma for the weight's) plus the low-pass under it (4 sigma): the same result as over
        # the whole crop, in a fraction of the time.
        coarse = max(1.5 * sigma, self.coarse_texture * eye) if self.coarse_texture > 0 and base is not None else 0.0
        pad = int(np.ceil(12.0 * max(sigma, coarse))) + 2
        H, W = skin.shape
        box = (slice(max(0, y - pad), min(H, y + h + pad)), slice(max(0, x - pad), min(W, x + w + pad)))
        region = blur_region(skin[box], eye) & (covered[box] < 0.5) & (keep[box] < 0.5)
        seen = _after_paste_back(relit, scale)[box]
        reading = fine_texture(seen, region, sigma)
        gain = texture_gain(target_texture, reading)
        coarse_gain = 1.0
        if coarse > 0 and reading is not None:  # (None: too little skin to read)
            coarse_gain = texture_gain(
                band_texture(base[box], region, sigma, coarse), band_texture(seen, region, sigma, coarse),
                COARSE_TEXTURE_FLOOR,
            )  # fmt: skip
        if gain >= 0.999 and coarse_gain >= 0.999:
            if self.fine_detail and base is not None and reading is not None:
                return self._raise_texture(relit, seen, base[box], regions, region, box, sigma, eye)
            return relit
        image = relit[box].astype(np.float32)
        low = cv2.GaussianBlur(image, (0, 0), sigma)
        feather = cv2.GaussianBlur(skin[box].astype(np.float32), (0, 0), 2.0 * sigma)
        weight = feather * np.float32(1.0 - gain)
        moved = cv2.subtract(image, cv2.multiply(cv2.subtract(image, low), cv2.merge([weight] * 3)))
        if coarse_gain < 0.999:
            weight = feather * np.float32(1.0 - coarse_gain)
            lower = cv2.subtract(low, cv2.GaussianBlur(image, (0, 0), coarse))
            moved = cv2.subtract(moved, cv2.multiply(lower, cv2.merge([weight] * 3)))
        out = relit.copy()
        out[box] = np.clip(moved + 0.5, 0, 255).astype(np.uint8)
        return out

    def _raise_texture(
        self, relit: np.ndarray, seen: np.ndarray, base: np.ndarray, regions: dict[str, np.ndarray],
        region: np.ndarray, box, sigma: float, eye: float,
    ) -> np.ndarray:  # fmt: skip
        """``relit`` with grain added over its skin, away from the features, where its fine texture (``seen``: within
        ``box``, as it reads after the paste-back) is smoother than the target's (``base``: within ``box``, the target in
        the new face's geometry). Both are read as the robust spread (1.4826
        median absolute value) of their grey band below ``sigma`` over ``region``: pores and grain, not the edges of
        wrinkles or features. The grain (:func:`face_grain` of the crop's size) stays fixed in the face's aligned
        coordinates, so it moves with the face like pores and a video's frames carry the same; it is grey, with the
        spread that brings the new face's up to the target's: ``sqrt(target² - new²)``."""
        def spread(image):
            grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY).astype(np.float32)
            return _robust_spread(cv2.subtract(grey, cv2.GaussianBlur(grey, (0, 0), sigma))[region])

        inner, weight = _inner_skin(regions["skin"][box], eye)
        if np.count_nonzero(region) < 100 or np.count_nonzero(inner & region) < 100:
            return relit
        wanted, own = spread(base), spread(seen)
        if not own < wanted:  # (the amount below grows from 0 there: no step from frame to frame in a video)
            return relit
        # (its band's scale rounded to a tenth of a pixel: a video's faces, whose size drifts, share one grain)
        grain = face_grain(relit.shape[:2], round(sigma, 1), GRAIN_INNER)[box]
        amount = float(np.sqrt(wanted**2 - own**2)) / max(_robust_spread(grain[region]), 1e-6)
        added = cv2.multiply(grain, weight, scale=amount)
        out = relit.copy()
        raised = cv2.add(relit[box].astype(np.float32), cv2.merge([added] * 3))
        out[box] = np.clip(raised + 0.5, 0, 255).astype(np.uint8)
        return out

    def _match_boundary(
        self,
        relit: np.ndarray,
        base: np.ndarray,
        regions: dict[str, np.ndarray],
        cover: np.ndarray,
        src_skin: np.ndarray,
        tgt_skin: np.ndarray,
        keep: np.ndarray,
        eye: float,
        skin_tone: np.ndarray | None = None,
    ) -> np.ndarray:
        """``relit`` plus a smooth offset that makes it meet the target's skin along the face's border.

        The boundary samples: a band of 0.05 eye distances inside the face's outline where both faces
        show skin, nothing is kept as the target's, and the target's colour is near its own skin tone
        (lightness within 25, chroma within 10 CIELAB units of the median tone of its cheeks and lower
        forehead), so hair at the outline or a shadowed ear does not count. With :attr:`tone_anchor`, the
        reference skin where both faces show it is sampled too, at low frequency (the difference of the two
        faces' Gaussian means over it, at the relighting's scale): the offset then interpolates between the
        outline and the target's tone in the face's middle, and the samples' joint median and spread decide
        which outline samples are outliers.
        """
        inside = (regions["face"] * cover > 0.5).astype(np.uint8)  # the outline only, not the eyes or lips
        band = inside & (dilate_disk(1 - inside, 0.05 * eye) > 0)
        ring = band & (tgt_skin > 0.5) & (src_skin > 0.5) & (keep < 0.5)
        reference = (regions["reference"] > 0.5) & (tgt_skin > 0.5)
        if np.count_nonzero(reference) < 20:
            return relit
        tone = np.median(_lab_at(base, reference), axis=0)
        where = np.nonzero(ring)  # the colour test only where the ring may be
        at = _lab_at(base, where)
        lightness = np.abs(at[:, 0] - tone[0]) * (100.0 / 255.0)
        chroma = np.hypot(at[:, 1] - tone[1], at[:, 2] - tone[2])
        ring = np.zeros(ring.shape, bool)
        ring[where] = (lightness < 25.0) & (chroma < 10.0)
        samples, target = ring, base
        anchor = reference & (src_skin > 0.5) & (keep < 0.5) & ~ring  # the reference skin both faces show
        anchored = np.count_nonzero(anchor) >= 50
        if self.tone_anchor and anchored:
            target = base.astype(np.float32)
            # the membrane measures target - relit at its samples: on the anchors, that difference's Gaussian
            # mean over them (the difference of the two faces' low-passes, in one blur)
            low, _ = masked_blur(target - relit, anchor.astype(np.float32), self.relight_scale * eye)
            target[anchor] = relit[anchor] + low[anchor]
            samples = ring | anchor
        offset = membrane_correction(relit, target, samples.astype(np.float32), scale=self.membrane_scale * eye)
        if self.tone_lock > 0 and anchored and skin_tone is not None and np.all(np.isfinite(skin_tone)):
            # What the membrane leaves: the target's median skin colour against the corrected face's on the anchors.
            # A second membrane adds it there, pinned at zero along the outline, without the first one's outlier
            # test (which would drop a shift that is large against the outline's samples).
            corrected = relit.astype(np.float32) + offset
            residual = np.asarray(skin_tone, np.float32) - np.median(corrected[anchor], axis=0)
            goal = corrected.copy()
            goal[anchor] += self.tone_lock * residual
            offset += membrane_correction(
                corrected, goal, (ring | anchor).astype(np.float32), scale=self.membrane_scale * eye,
                min_tolerance=np.inf,
            )  # fmt: skip
        return np.clip(relit + offset + 0.5, 0, 255).astype(np.uint8)


def _lab_at(image: np.ndarray, where) -> np.ndarray:
    """8-bit CIELAB of ``image`` (RGB uint8) at the pixels ``where`` selects (a mask or index arrays), float32 (N, 3):
    the same values as converting the whole image (the conversion is per pixel), for only the pixels used.

    Example:
        >>> img = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8); sel = img[..., 0] > 128
        >>> bool((_lab_at(img, sel) == cv2.cvtColor(img, cv2.COLOR_RGB2LAB)[sel]).all())
        True
    """
    picked = np.ascontiguousarray(image[where]).reshape(1, -1, 3)
    if picked.shape[1] == 0:
        return np.zeros((0, 3), np.float32)
    return cv2.cvtColor(picked, cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float32)


def _after_paste_back(image: np.ndarray, scale: float | None) -> np.ndarray:
    """``image`` (an aligned crop) as it reads after the round trip of its paste-back: resampled to the frame's scale
    (``scale``: crop pixels per frame pixel) and back, bilinearly; itself when the scale is None or within 5% of 1.
    What the blur and texture matches read, so that detail the paste-back removes anyway is not removed twice.

    Example:
        >>> img = np.zeros((32, 32, 3), np.uint8); img[:, ::2] = 255  # the finest stripes
        >>> _after_paste_back(img, None) is img, int(_after_paste_back(img, 2.0).std()) < int(img.std())
        (True, True)
    """
    if scale is None or not scale > 0 or abs(scale - 1.0) <= 0.05:
        return image
    h, w = image.shape[:2]
    small = (max(8, int(round(w / scale))), max(8, int(round(h / scale))))
    return cv2.resize(cv2.resize(image, small, interpolation=cv2.INTER_LINEAR), (w, h), interpolation=cv2.INTER_LINEAR)


def entering_cover(
    covered: np.ndarray, face: np.ndarray, glasses: np.ndarray, margin: float, lashes: np.ndarray | None = None
) -> np.ndarray:
    """``covered`` without the islands that lie wholly inside the face: whatever is in front of a face
    comes in from beyond its outline (a hand with its arm, a microphone, a mask with its straps, hair,
    glasses with their temples). An island inside the face is the parser taking shading for an object (a
    nose's shadow), so it stays face; an island mostly of glasses is kept (thin frames may break up), unless
    its "glasses" lie along the lid margins, where they are lashes (a closed eye's dark lash line read as a
    frame: kept in place while the new face's lids moved, it showed as dark dots below them; the compose stage
    passes the lids of the eyes that are not open, :func:`~saswap.face.masks.closed_eye_lashes`, so glasses in
    front of open eyes are judged as before).

    Args:
        covered: bool (H, W), what the parser does not call visible face.
        face: bool (H, W), the face region of the mesh.
        glasses: bool (H, W), where the parser sees glasses.
        margin: pixels; an island must reach this close to the face's outline (or beyond it) to stay.
        lashes: bool (H, W), the lid margins with their lashes, where glasses do not count; None: everywhere
            they count.

    Returns:
        bool (H, W).

    Example:
        >>> face = np.zeros((20, 20), bool); face[2:18, 2:18] = True
        >>> cov = np.zeros((20, 20), bool); cov[8:11, 8:11] = True; cov[0:6, 14:17] = True
        >>> out = entering_cover(cov, face, np.zeros_like(cov), 1.0)
        >>> bool(out[9, 9]), bool(out[4, 15])
        (False, True)
        >>> bool(entering_cover(cov, face, cov, 1.0)[9, 9]), bool(entering_cover(cov, face, cov, 1.0, lashes=cov)[9, 9])
        (True, False)
    """
    n, labels = cv2.connectedComponents(covered.astype(np.uint8), connectivity=8)
    if n <= 1:
        return covered.astype(bool)
    filled = _filled(face)  # only the face's outline counts, not its holes (eyes, mouth)
    core = cv2.erode(filled, np.ones((2 * int(np.ceil(margin)) + 1,) * 2, np.uint8)) > 0
    count = np.bincount(labels.ravel(), minlength=n)
    outside = np.bincount(labels[~core].ravel(), minlength=n)
    if lashes is not None:
        glasses = glasses & ~lashes
    specs = np.bincount(labels[glasses].ravel(), minlength=n)
    keep = (outside > 0) | (specs * 2 >= count)
    keep[0] = False
    return keep[labels]


def _filled(face: np.ndarray) -> np.ndarray:
    """uint8 (H, W): the region ``face`` within its outer outline, its holes (eyes, mouth) filled."""
    filled = np.zeros(face.shape, np.uint8)
    contours, _ = cv2.findContours(face.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled


def in_front_of(objects: np.ndarray, face: np.ndarray) -> np.ndarray:
    """The islands of ``objects`` that overlap ``face`` (its outline filled): an object in front of a face covers
    part of it. An island wholly beside the face hides none of it: background the parser took for an object (a
    flag's stripe by the jaw) or an object beside the face (a fist under the chin). Pinned in place while the shape
    flow moved the background around it, it tore out of the picture, so it moves with the background instead.

    Args:
        objects: bool (H, W), what the parser calls an object in front of the face.
        face: bool (H, W), the face region of the mesh.

    Returns:
        bool (H, W).

    Example:
        >>> face = np.zeros((20, 20), bool); face[5:15, 5:15] = True
        >>> obj = np.zeros((20, 20), bool); obj[12:20, 8:10] = True; obj[0:3, 0:3] = True
        >>> out = in_front_of(obj, face)
        >>> bool(out[18, 9]), bool(out[1, 1])
        (True, False)
    """
    n, labels = cv2.connectedComponents(objects.astype(np.uint8), connectivity=8)
    if n <= 1:
        return objects.astype(bool)
    keep = np.bincount(labels[_filled(face) > 0].ravel(), minlength=n) > 0
    keep[0] = False
    return keep[labels]


def face_cover(covered: np.ndarray, glasses: np.ndarray, face: Face, inside: np.ndarray) -> np.ndarray:
    """What covers a face in its aligned crop, from a parser's maps: :func:`entering_cover` as a target's occlusion
    and a source's cleaning both use it (islands must reach within 0.05 eye-corner distances of the face's outline;
    "glasses" along the lids of eyes that are not open count as lashes).

    Args:
        covered: bool (S, S), what the parser does not call visible face (or, for a source, its covering classes).
        glasses: bool (S, S), where it sees glasses.
        face: the face in crop coordinates.
        inside: bool (S, S), the face region of its mesh.

    Returns:
        bool (S, S).
    """
    shape = covered.shape[:2]
    margin = 0.05 * max(face.eye_distance, 1.0)
    return entering_cover(covered, inside, glasses, margin, lashes=closed_eye_lashes(face.landmarks, shape))


def paste_back(image: np.ndarray, crop: np.ndarray, crop_mask: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Blend a composed crop back into ``image`` in place, only where its mask is non-zero.

    Works inside the bounding box of the crop's footprint only, and leaves every pixel whose mask
    is zero bit-for-bit unchanged.

    Args:
        image: the frame, RGB uint8 (H, W, 3), modified in place.
        crop: the composed crop, RGB uint8 (S, S, 3).
        crop_mask: its blend weight, float (S, S) in [0, 1].
        M: the frame -> crop similarity, shape (2, 3).

    Returns:
        the full-size mask, float32 (H, W): where the frame changed.

    Example:
        >>> frame = np.zeros((8, 8, 3), np.uint8); M = np.array([[1.0, 0, 0], [0, 1.0, 0]])
        >>> m = paste_back(frame, np.full((8, 8, 3), 200, np.uint8), np.pad(np.ones((2, 2), np.float32), 3), M)
        >>> int(frame[4, 4, 0]), int(frame[0, 0, 0]), float(m.sum())
        (200, 0, 4.0)
    """
    return blend_placed(image, place_back(crop, crop_mask, M, image.shape[:2]))


class Placed(NamedTuple):
    """A composed crop warped back into frame coordinates, within the bounding box of its mask's footprint."""

    x0: int
    y0: int
    image: np.ndarray  #: the crop there, uint8 (h, w, 3)
    mask: np.ndarray  #: its blend weight, float32 (h, w)
    fine: np.ndarray | None = None  #: where grain finer than the crop is added (:attr:`ComposedFace.fine`)
    grain: np.ndarray | None = None  #: that grain, float32 (h, w), robust spread 1 over ``fine``'s core
    scale: float = 1.0  #: crop pixels per frame pixel


def place_back(
    crop: np.ndarray,
    crop_mask: np.ndarray,
    M: np.ndarray,
    frame_size: tuple[int, int],
    fine: np.ndarray | None = None,
) -> Placed | None:
    """The first half of :func:`paste_back`: the composed crop and its mask warped back into the frame, within the
    bounding box of the mask's footprint (None when nothing shows). Needs only the frame's size, so a frame worker
    can do it: the blend (:func:`blend_placed`) is left to the frame's owner. ``fine``: the crop's
    :attr:`ComposedFace.fine`, warped back alike."""
    h, w = frame_size
    bx, by, bw, bh = cv2.boundingRect((crop_mask > 1e-3).view(np.uint8))
    if bw == 0 or bh == 0:
        return None
    inv = invert_affine(M)
    xa, ya, xb, yb = bx, by, bx + bw - 1, by + bh - 1
    corners = transform_points(inv, np.array([[xa, ya], [xb, ya], [xb, yb], [xa, yb]], np.float64))
    x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int) - 2, 0)
    x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + 3, [w, h])
    if x1 <= x0 or y1 <= y0:
        return None
    shift = np.array([[0, 0, x0], [0, 0, y0]], np.float64)
    M_box = np.asarray(M, np.float64) + np.asarray(M, np.float64)[:, :2] @ shift[:, 2:3] * np.array([[0, 0, 1]])
    mask = np.clip(warp_back(crop_mask.astype(np.float32), M_box, (y1 - y0, x1 - x0)), 0.0, 1.0)
    mask[mask < 1e-3] = 0.0
    back = warp_back(crop, M_box, (y1 - y0, x1 - x0))
    scale = transform_scale(M)
    grain = None
    if fine is not None:
        fine = np.minimum(np.clip(warp_back(fine.astype(np.float32), M_box, (y1 - y0, x1 - x0)), 0.0, 1.0), mask)
        grain = _frame_grain(crop.shape[:2], M_box, (y1 - y0, x1 - x0), scale, fine > 0.5)
        if grain is None:
            fine = None
    return Placed(int(x0), int(y0), back, mask, fine, grain, scale)


def _frame_grain(
    crop_shape: tuple[int, int], M_box: np.ndarray, size: tuple[int, int], scale: float, core: np.ndarray
) -> np.ndarray | None:
    """Grain finer than a crop pixel, in a frame box (``M_box``: box -> crop): :func:`face_grain` drawn on a grid
    ``ceil(1 / scale)`` times finer than the crop (at most 4), so it stays on the face in the crop's coordinates,
    warped into the box, less what the crop can hold (:func:`fine_band`), scaled to a robust spread (1.4826 median
    absolute value) of 1 over ``core``; None when ``scale`` is not below 1 or the core has under 100 pixels."""
    if not 0.0 < scale < 1.0 or np.count_nonzero(core) < 100:
        return None
    f = min(4, int(np.ceil(1.0 / scale)))
    fine_grid = face_grain((crop_shape[0] * f, crop_shape[1] * f), 0.5 * f)
    to_grid = np.asarray(M_box, np.float64) * f
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP  # to_grid maps the box onto the grid
    drawn = cv2.warpAffine(fine_grid, to_grid, (size[1], size[0]), flags=flags, borderMode=cv2.BORDER_REFLECT)
    grain = fine_band(drawn, scale)
    spread = _robust_spread(grain[core])
    return grain / np.float32(max(spread, 1e-6)) if spread > 1e-6 else None


def fine_band(image: np.ndarray, scale: float) -> np.ndarray:
    """The detail of ``image`` finer than a grid with ``scale`` of its pixels per pixel (``scale`` < 1): the image minus
    its round trip through that grid (averaged down, bilinear up), float32 of the image's shape ((H, W) or (H, W, C)).
    What a face keeps of its frame's sharpness when it is drawn in a coarser aligned crop and enlarged back is the
    image less this band.

    Example:
        >>> img = np.zeros((16, 16, 3), np.uint8); img[:, ::2] = 200  # stripes one pixel wide
        >>> band = fine_band(img, 0.5)
        >>> bool(abs(float(band.mean())) < 1.0), bool(band.std() > 90)  # the stripes, around zero
        (True, True)
    """
    h, w = image.shape[:2]
    small = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    low = cv2.resize(cv2.resize(image, small, interpolation=cv2.INTER_AREA), (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.subtract(image, low, dtype=cv2.CV_32F)


def blend_placed(image: np.ndarray, placed: Placed | None) -> np.ndarray:
    """The second half of :func:`paste_back`: blend what :func:`place_back` made into ``image`` in place; returns the
    full-size mask, float32 (H, W). With :attr:`Placed.grain`, grain finer than the crop is added where
    :attr:`Placed.fine` says, as strong as the frame's own detail of that band there (its robust spread, 1.4826 median
    absolute value of :func:`fine_band` in grey, over ``fine``'s core)."""
    full = np.zeros(image.shape[:2], np.float32)
    if placed is None:
        return full
    x0, y0, back, mask = placed.x0, placed.y0, placed.image, placed.mask
    y1, x1 = y0 + mask.shape[0], x0 + mask.shape[1]
    patch = image[y0:y1, x0:x1]
    added = None
    if placed.grain is not None and placed.fine is not None:
        band = fine_band(cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY), placed.scale)
        spread = _robust_spread(band[placed.fine > 0.5])
        added = cv2.merge([cv2.multiply(placed.grain, placed.fine, scale=spread)] * 3)
    # patch + mask * (back - patch), rounded: where the mask is 0 the patch stays as it is
    step = cv2.multiply(cv2.subtract(back, patch, dtype=cv2.CV_32F), cv2.merge([mask] * 3))
    if added is not None:
        step = cv2.add(step, added)
    patch[...] = np.clip(cv2.add(step, patch, dtype=cv2.CV_32F) + 0.5, 0, 255).astype(np.uint8)
    full[y0:y1, x0:x1] = mask
    return full
