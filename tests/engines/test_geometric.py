"""The geometric engine on real photos: identity moves to the source (independent judge), shape
strength works, what must stay the target's stays."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import data_path

from saswap.engines import GeometricEngine
from saswap.eval.occluders import face_mask_occluder, paste_occluder
from saswap.io import load_image


@pytest.fixture(scope="module")
def engine(morphable_model):
    return GeometricEngine(morphable_model=morphable_model)


@pytest.fixture(scope="module")
def pipe(engine, analyzer):
    from saswap import SaSwapPipeline

    return SaSwapPipeline(engine, analyzer)


def _prepared(pipe, name):
    img = load_image(data_path("images", name))
    return pipe.engine.prepare_source(img, pipe.analyzer(img)[0])


def test_swap_outputs_and_conventions(pipe):
    src = _prepared(pipe, "sberswap__beckham.jpg")
    target = load_image(data_path("images", "sadtalker__happy.png"))
    crop, face, M = pipe.engine.align(target, pipe.analyzer(target)[0])
    out = pipe.swap_crop(crop, face, src, shape_strength=1.0)
    assert out.image.shape == crop.shape and out.image.dtype == np.uint8
    assert out.mask.shape == crop.shape[:2] and 0.0 <= out.mask.min() and out.mask.max() <= 1.0
    changed = np.abs(out.image.astype(int) - crop.astype(int)).max(axis=2) > 0
    assert not (changed & (out.mask == 0)).any(), "pixels outside the engine's mask changed"
    assert out.mask.mean() > 0.05  # the face region was replaced
    with pytest.raises(ValueError, match="aligned RGB uint8 crop"):
        pipe.swap_crop(crop[:100], face, src)
    with pytest.raises(ValueError, match="shape_strength"):
        pipe.swap_crop(crop, face, src, shape_strength=2.0)


def test_shape_strength_zero_means_no_motion(pipe):
    src = _prepared(pipe, "deepface__img41.jpg")
    target = load_image(data_path("images", "face_recognition__obama.jpg"))
    crop, face, _ = pipe.engine.align(target, pipe.analyzer(target)[0])
    _, motion0 = pipe.engine.sparse_motion(face, src, 0.0)
    _, motion1 = pipe.engine.sparse_motion(face, src, 1.0)
    assert np.abs(motion0).max() == 0.0
    assert np.abs(motion1).max() > 1.0


def test_the_shape_flow_fades_out_around_an_object_in_front_of_the_face(pipe, morphable_model):
    """The compose stage keeps an object in front of the face where it is; the parser finds it only where it meets the
    face, and the rest, beyond the outline, moved with the shape flow (a microphone's doubled rim, broken fingers).
    Around an object that reaches beyond the outline the flow now fades to zero; far from it, it is as before. A
    sliver and an island wholly inside the face change nothing."""
    src = _prepared(pipe, "deepface__img41.jpg")
    target = load_image(data_path("images", "face_recognition__obama.jpg"))
    crop, face, _ = pipe.engine.align(target, pipe.analyzer(target)[0])
    analysis = pipe.engine.analyze_target(crop, face)
    plain = pipe.engine.swap(crop, face, src, analysis=analysis).flow
    magnitude = np.hypot(plain[..., 0], plain[..., 1])
    mesh, eye = face.landmarks[:468, :2], face.eye_distance
    # an object over the outline where the flow moves the face most (the jaw's side)
    x, y = mesh[np.argmax([magnitude[int(v), int(u)] for u, v in mesh])].astype(int)
    assert magnitude[y, x] > 3.0
    objects = np.zeros(crop.shape[:2], np.uint8)
    cv2.circle(objects, (int(x), int(y)), int(0.15 * eye), 1, -1)

    def flow(occluder, reach=0.2):
        engine = GeometricEngine(morphable_model=morphable_model, pin_reach=reach)
        return engine.swap(crop, face, src, analysis={**analysis, "occluder": occluder}).flow

    faded = flow(objects)
    assert np.hypot(faded[..., 0], faded[..., 1])[objects > 0].max() < 0.05
    far = cv2.distanceTransform(1 - objects, cv2.DIST_L2, 5) > 0.2 * eye + 2
    assert np.abs(faded - plain)[far].max() < 1e-4
    np.testing.assert_allclose(flow(objects, reach=0.0), plain, atol=1e-5)
    sliver = np.zeros_like(objects)
    cv2.circle(sliver, (int(x), int(y)), int(0.15 * eye), 1, 2)  # a thin ring across the same outline
    np.testing.assert_allclose(flow(sliver), plain, atol=1e-5)
    inside = np.zeros_like(objects)
    cx, cy = mesh[4].astype(int)  # on the nose's tip, wholly inside the face
    cv2.circle(inside, (int(cx), int(cy)), int(0.15 * eye), 1, -1)
    np.testing.assert_allclose(flow(inside), plain, atol=1e-5)


def test_identity_moves_to_the_source(pipe, dlib_models):
    from saswap.face.identity import DlibEmbedder

    judge = DlibEmbedder()
    sources = ["sberswap__beckham.jpg", "deepface__img41.jpg", "simswap__james.jpg", "sberswap__mark.jpg"]
    targets = ["face_recognition__obama.jpg", "sadtalker__happy.png"]
    wins = []
    for t in targets:
        t_img = load_image(data_path("images", t))
        t_face = pipe.analyzer(t_img)[0]
        t_emb = judge.raw(t_img, t_face)
        for s in sources:
            s_img = load_image(data_path("images", s))
            s_emb = judge.raw(s_img, pipe.analyzer(s_img)[0])
            out = pipe(pipe.engine.prepare_source(s_img, pipe.analyzer(s_img)[0]), t_img)
            o_emb = judge.raw(out.image, pipe.analyzer(out.image)[0])
            wins.append(np.linalg.norm(o_emb - s_emb) < np.linalg.norm(o_emb - t_emb))
    assert np.mean(wins) >= 0.75, f"only {np.mean(wins):.0%} of outputs are closer to the source than the target"


def test_pasted_mask_stays_in_front(pipe):
    target = load_image(data_path("images", "sadtalker__happy.png"))
    face = pipe.analyzer(target)[0]
    occluded, occ_mask = paste_occluder(target, face, face_mask_occluder("white"))
    out = pipe(_prepared(pipe, "sberswap__beckham.jpg"), occluded)
    diff = np.abs(out.image.astype(int) - occluded.astype(int)).max(axis=2)
    assert (diff[occ_mask] > 20).mean() < 0.2


def test_outside_the_face_is_untouched(pipe):
    target = load_image(data_path("images", "face_recognition__obama.jpg"))
    out = pipe(_prepared(pipe, "deepface__img2.jpg"), target)
    outside = out.masks[0] == 0
    assert outside.mean() > 0.5
    assert np.array_equal(out.image[outside], target[outside])


def test_kept_band_around_the_lips_grows_with_the_difference_of_opening(pipe):
    # A closed-mouth target keeps its own lips when the source's mouth is open, with a margin of its own
    # skin around them: narrow for a half-open source (mark, opening 0.28), wide for a wide-open one
    # (d19, 0.72), so a moderately open source does not leave a patch of the target's skin.
    from saswap.face.masks import dilate_disk, face_region_masks

    target = load_image(data_path("images", "liveportrait__d8.jpg"))
    crop, face, _ = pipe.engine.align(target, pipe.analyzer(target)[0])
    regions = face_region_masks(face.landmarks, crop.shape[:2])
    eye = face.eye_distance
    ring = (dilate_disk(regions["lips"], 0.12 * eye) > 0) & ~(dilate_disk(regions["lips"], 0.03 * eye) > 0)
    kept = {}
    for name in ("sberswap__mark.jpg", "liveportrait__d19.jpg"):
        out = pipe.swap_crop(crop, face, _prepared(pipe, name), shape_strength=0.0)
        kept[name] = float((np.abs(out.image.astype(int) - crop.astype(int)).max(axis=2)[ring] <= 2).mean())
    assert kept["liveportrait__d19.jpg"] > 0.6  # the wide-open source: the band stays the target's
    assert kept["sberswap__mark.jpg"] < kept["liveportrait__d19.jpg"] - 0.3  # the half-open one: much less


def test_profile_target_background_is_not_painted(pipe):
    # A profile's nose, lips and chin meet the background where the mesh's outline only approximates
    # them: the person segmentation keeps the face from being painted over the background there.
    from saswap.face.masks import face_region_masks
    from saswap.face.parsing import occlusion_method

    target = load_image(data_path("images", "insightface__left_face.jpeg"))
    crop, face, _ = pipe.engine.align(target, pipe.analyzer(target)[0])
    assert abs(face.pose[0]) >= 35  # a turned target: the rule applies
    background = (pipe.compositor._person(crop) < 0.1) & (face_region_masks(face.landmarks, crop.shape[:2])["face"] > 0.5)
    assert background.sum() > 200  # the mesh's outline does reach over the background
    # The face parser (the default occlusion) calls that background background, too.
    src = _prepared(pipe, "deepface__img2.jpg")
    changed = {}
    for occlusion, silhouette in (("parser", True), ("parser", False), ("rules", True), ("rules", False)):
        pipe.compositor.silhouette, pipe.compositor.occlusion = silhouette, occlusion_method(occlusion)
        try:
            out = pipe.swap_crop(crop, face, src, shape_strength=0.0)
        finally:
            pipe.compositor.silhouette, pipe.compositor.occlusion = True, "saswap-face-parser"
        changed[occlusion, silhouette] = float(
            (np.abs(out.image.astype(int) - crop.astype(int)).max(axis=2)[background] > 12).mean()
        )
    assert changed["rules", False] > 0.3  # with neither, much of that background is painted
    assert changed["rules", True] < 0.1
    assert changed["parser", False] < 0.1 and changed["parser", True] < 0.1


def test_texture_squeezed_in_the_source_is_faded(engine):
    # Two triangles' maps: one at the typical scale, one the source squeezes to a tenth in one direction
    # (a frontal source's side seen from a turned target): the second keeps none of the source.
    ids = np.full((64, 128), -1, np.int64)
    ids[8:56, 4:60], ids[8:56, 68:124] = 0, 1
    affines = np.array([[[1.0, 0, 0], [0, 1.0, 0]], [[0.1, 0, 0], [0, 1.0, 0]], [[1.0, 0, 0], [0, 1.0, 0]]])
    ids[0:4, :] = 2  # more pixels at the typical scale, so the median is the typical one
    support = engine._stretch_support(ids, affines, eye=20.0)
    assert support[32, 30] > 0.95
    assert support[32, 96] < 0.05
    assert support[60, 30] == 0.0  # uncovered pixels take nothing


def test_the_sources_silhouette_is_not_stretched_over_a_turned_targets_cheek(pipe, morphable_model):
    # Beckham is turned a little to his left; liveportrait__s32 turns the other way, so the thin band along his
    # far cheek's silhouette (skin mixed with the grey-blue background) was stretched over her near cheek: a
    # bluish streak in every frame of the swap. That band (against background or hair) now fades where the target
    # magnifies it.
    from conftest import read_video

    from saswap.face.masks import face_region_masks
    from saswap.face.parsing import default_face_parsing

    img = load_image(data_path("images", "sberswap__beckham.jpg"))
    face_s = pipe.analyzer(img)[0]
    src = pipe.engine.prepare_source(img, face_s)
    rim = src.extras["rim"]
    beyond = default_face_parsing(pipe.engine.clean_source).group_probabilities(
        src.image, src.face.keypoints, {"b": ("background",), "h": ("hair",)}
    )
    assert rim[beyond["b"] > 0.5].max() == 0.0 and rim[beyond["h"] > 0.5].max() == 0.0  # they take nothing
    inner = face_region_masks(src.face.landmarks, rim.shape)["face"] > 0.5
    assert (rim[inner] > 0.99).mean() > 0.8 and ((rim > 0.01) & (rim < 0.99) & inner).sum() > 500  # face; its band

    frames, _ = read_video(data_path("videos", "liveportrait__s32.mp4"), limit=91)
    crop, face, _ = pipe.engine.align(frames[90], pipe.analyzer(frames[90])[0])
    analysis = {**pipe.engine.analyze_target(crop, face), **pipe.compositor.analyze_target(crop, face)}
    off = GeometricEngine(morphable_model=morphable_model, source_rim=0.0)
    src_off = off.prepare_source(img, face_s)
    on_, off_ = (e.swap(crop, face, s, analysis=analysis) for e, s in ((pipe.engine, src), (off, src_off)))
    faded = (off_.support - on_.support) > 0.25
    assert faded.sum() > 1000  # the streak's pixels: the target's own skin shows through now
    assert np.median(np.nonzero(faded)[1]) > np.median(np.nonzero(on_.support > 0.5)[1])  # on her near (right) cheek
    assert (on_.support - off_.support).max() < 1e-6  # it only ever takes source texture away

    # a frontal target hardly stretches the band: under 1% of its face's support moves
    target = load_image(data_path("images", "face_recognition__obama.jpg"))
    crop, face, _ = pipe.engine.align(target, pipe.analyzer(target)[0])
    analysis = {**pipe.engine.analyze_target(crop, face), **pipe.compositor.analyze_target(crop, face)}
    on_, off_ = (e.swap(crop, face, s, analysis=analysis) for e, s in ((pipe.engine, src), (off, src_off)))
    assert (np.abs(off_.support - on_.support) > 0.25).sum() < 0.01 * (on_.support > 0.5).sum()


def test_what_covered_the_source_can_show_the_targets_own_skin(pipe, morphable_model):
    # A source with a face mask over its lower face: the mask is filled with the source's smooth skin colour for its
    # shading detail. By default that even patch is drawn onto the target; with fill_covered=False the target's own
    # skin detail is drawn there instead (the fill showed as flat pale blocks on sources with a fringe or a hand).
    from saswap import SaSwapPipeline
    from saswap.face.masks import face_region_masks

    img = load_image(data_path("images", "insightface__mask.png"))
    face_s = pipe.analyzer(img)[0]
    src_fill = pipe.engine.prepare_source(img, face_s)
    filled = src_fill.extras["filled"]
    assert filled is not None and (filled > 0.5).sum() > 2000  # the mask was found and filled
    own = GeometricEngine(morphable_model=morphable_model, fill_covered=False)
    src = own.prepare_source(img, face_s)
    assert np.array_equal(src_fill.extras["detail"], src.extras["detail"])  # the same source, one flag apart
    target = load_image(data_path("images", "face_recognition__obama.jpg"))
    crop, face, _ = pipe.engine.align(target, pipe.analyzer(target)[0])
    analysis = {**pipe.engine.analyze_target(crop, face), **pipe.compositor.analyze_target(crop, face)}
    out, out_fill = (e.swap(crop, face, s, analysis=analysis) for e, s in ((own, src), (pipe.engine, src_fill)))
    assert np.array_equal(out.support, out_fill.support)  # the same region changes
    changed = np.abs(out.detail - out_fill.detail).max(axis=2) > 0.02
    assert changed.sum() > 2000
    mouth_y = int(face.landmarks[13, 1])  # the upper lip's centre: the mask covered the lower face
    assert changed[mouth_y:].sum() > 1000
    # through the compose stage: the fill is an even patch, the target's own skin has the target's texture
    swapped = SaSwapPipeline(own, pipe.analyzer).swap_crop(crop, face, src, analysis=analysis)
    swapped_fill = pipe.swap_crop(crop, face, src_fill, analysis=analysis)
    skin = face_region_masks(out.landmarks, crop.shape[:2])["skin"] > 0.5
    inner = (cv2.erode(changed.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0) & skin & (out.support > 0.99)
    assert inner.sum() > 1000

    def texture(image):  # mean absolute grey detail finer than 2 px
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        return float(np.abs(grey - cv2.GaussianBlur(grey, (0, 0), 2.0))[inner].mean())

    moved = texture(out.base)  # the target, moved by the shape flow
    assert abs(texture(swapped.image) - moved) < 0.5 * abs(texture(swapped_fill.image) - moved)


def test_no_shadow_of_an_open_mouth_on_a_closed_mouths_chin(pipe):
    # A wide-open source (d19) on a closed-mouth target: below the target's lower lip the source has the
    # dark shadow of its open mouth; the target keeps its own skin there.
    from saswap.face.masks import face_region_masks

    target = load_image(data_path("images", "sadtalker__happy.png"))
    crop, face, _ = pipe.engine.align(target, pipe.analyzer(target)[0])
    regions = face_region_masks(face.landmarks, crop.shape[:2])
    ys, xs = np.nonzero(regions["lips"] > 0.5)
    eye = face.eye_distance
    band = np.zeros(crop.shape[:2], bool)
    band[ys.max() + int(0.05 * eye) : ys.max() + int(0.3 * eye), xs.min() : xs.max()] = True
    band &= regions["face"] > 0.5
    src = _prepared(pipe, "liveportrait__d19.jpg")
    lightness = lambda im: cv2.cvtColor(im, cv2.COLOR_RGB2LAB)[..., 0].astype(np.float32) * (100 / 255)  # noqa: E731
    darker = {}
    for reach in (0.5, 0.0):
        pipe.engine.chin_reach = reach
        try:
            out = pipe.swap_crop(crop, face, src, shape_strength=1.0)
        finally:
            pipe.engine.chin_reach = 0.5
        darker[reach] = float(((lightness(out.image) - lightness(crop))[band] < -10).mean())
    assert darker[0.0] > 0.2  # without it a dark smudge lands on the chin
    assert darker[0.5] < 0.03


def test_a_black_and_white_target_stays_black_and_white(pipe):
    # The source's shading detail carries its own colour ratios (lips, cheeks): on a grey photo they
    # would tint the face.
    colour = load_image(data_path("images", "sadtalker__happy.png"))
    grey = np.repeat(cv2.cvtColor(colour, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    src = _prepared(pipe, "deepface__img2.jpg")  # red lips, warm skin
    out = pipe(src, grey)
    assert (out.masks[0] > 0).mean() > 0.05
    spread = out.image.max(axis=2).astype(int) - out.image.min(axis=2)
    assert spread.max() == 0
    out = pipe(src, colour)  # a colour target keeps its colour
    changed = out.masks[0] > 0.5
    assert np.percentile((out.image.max(axis=2).astype(int) - out.image.min(axis=2))[changed], 50) > 10


def test_no_colour_band_across_a_moved_forehead(pipe):
    # The source's taller forehead moves the face's top above the target's mesh; the relit image beyond
    # the face's outline (skin colour spread into the hair) used to come back through the blend's
    # coarse bands as a band of another colour across the forehead (6.7-6.8 chroma units from one
    # row block to the next on these pairs; 2.7 and 4.5 now).
    target = load_image(data_path("images", "sadtalker__happy.png"))
    crop, face, _ = pipe.engine.align(target, pipe.analyzer(target)[0])
    eye = face.eye_distance
    x0, y0 = face.landmarks[10, :2].astype(int)  # the mesh's top, mid-forehead
    step, half = max(2, int(0.05 * eye)), int(0.25 * eye)
    for name, limit in (("liveportrait__d19.jpg", 4.0), ("sberswap__beckham.jpg", 5.5)):
        out = pipe.swap_crop(crop, face, _prepared(pipe, name))
        lab = cv2.cvtColor(out.image, cv2.COLOR_RGB2LAB).astype(np.float32)
        blocks = []
        for y in range(y0 - int(0.3 * eye), y0 + int(0.3 * eye), step):
            swapped = out.mask[y : y + step, x0 - half : x0 + half] > 0.9
            if swapped.mean() > 0.8:
                blocks.append(lab[y : y + step, x0 - half : x0 + half, 1:][swapped].mean(0))
        assert len(blocks) >= 8
        jumps = [float(np.hypot(*(b - a))) for a, b in zip(blocks, blocks[1:])]
        assert max(jumps) < limit, (name, max(jumps))


def test_a_black_and_white_source_keeps_its_lit_skin(pipe):
    # In a grey photo every pixel is "neutral": the colour rules for a source's grey objects (glasses,
    # grey hair) took the lit skin beside Tom Hanks' eye for one and erased it (a flat patch on every
    # output of `saswap demo`). A grey source keeps only the line-based glasses rule.
    from saswap.samples import sample_path

    grey = load_image(sample_path("tom_hanks"))
    assert (grey.max(axis=2) - grey.min(axis=2)).max() == 0
    # The face parser (the default) sees no object there either: it leaves only a sliver of hair at the
    # cheek's outline.
    from saswap.face.masks import face_region_masks

    src = pipe.engine.prepare_source(grey, pipe.analyzer(grey)[0])
    skin = src.extras["skin"] > 0  # skin minus what was cleaned away
    around_eyes = face_region_masks(src.face.landmarks, src.image.shape[:2])["eyes_outer"] > 0.5
    assert around_eyes.sum() > 500 and not (src.extras["occluded"][around_eyes] > 0).any()
    assert float(src.extras["occluded"].mean()) < 0.02
    assert skin.mean() > 0.2
    pipe.engine.clean_source = "rules"
    try:
        ruled = pipe.engine.prepare_source(grey, pipe.analyzer(grey)[0])
    finally:
        pipe.engine.clean_source = "saswap-face-parser"
    assert float(ruled.extras["occluded"].mean()) < 0.002
    assert np.array_equal(ruled.extras["texture"], ruled.image)


def test_the_sources_own_shading_and_beard_are_not_cleaned_away(pipe):
    # The parser takes the shadowed side of alex-lacamoire's nose for an object and the soul patch in Iron Man's
    # goatee for hair; cleaning filled both with smooth skin (a flat nose, a lost goatee). As for a target, only
    # what enters the face from beyond its outline counts as covering it; the ball in front of Teresa Williams'
    # face does.
    from saswap.face.masks import face_region_masks
    from saswap.face.parsing import default_face_parsing

    def prepared(name):  # the prepared source, its face region and its cleaned pixels
        image = load_image(data_path("images", name))
        src = pipe.engine.prepare_source(image, pipe.analyzer(image)[0])
        face = face_region_masks(src.face.landmarks, src.image.shape[:2])["face"] > 0.5
        return src, face, src.extras["occluded"] > 0.5

    def inner_islands(name):  # cleaned pixels in islands lying wholly inside the face (0.1 eye distances in)
        src, face, cleaned = prepared(name)
        filled = np.zeros(face.shape, np.uint8)
        contours, _ = cv2.findContours(face.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
        core = cv2.erode(filled, np.ones((2 * int(0.1 * src.face.eye_distance) + 1,) * 2, np.uint8)) > 0
        n, labels = cv2.connectedComponents(cleaned.astype(np.uint8))
        return sum(int((labels == k).sum()) for k in range(1, n) if core[labels == k].all())

    for name in ("face_recognition__alex-lacamoire.png", "simswap__Iron_man.jpg"):
        assert inner_islands(name) == 0, name

    def parsed(name, classes):  # the parser's own map of ``classes`` over the source's face, and the cleaned pixels
        src, face, cleaned = prepared(name)
        parsing = default_face_parsing(pipe.engine.clean_source)
        maps = parsing.group_probabilities(src.image, src.face.keypoints, {"m": classes})
        return (maps["m"] > 0.5) & face, cleaned

    # the ball enters the face from its side: its largest island is cleaned whole
    ball, cleaned = parsed("insightface__Teresa_Williams_0001_1k.jpg", ("glasses", "hair", "occluder"))
    n, labels = cv2.connectedComponents(ball.astype(np.uint8))
    largest = labels == int(np.argmax(np.bincount(labels[labels > 0])))
    assert largest.sum() > 0.01 * ball.size and cleaned[largest].mean() > 0.95
    # glasses stay cover wherever they lie (dark frames on a group photo's man)
    frames, cleaned = parsed("dlib__2008_002506.jpg", ("glasses",))
    assert frames.sum() > 300 and cleaned[frames].mean() > 0.9


def test_a_sources_thin_metal_glasses_are_cleaned(pipe):
    # The parser learnt glasses from drawn frames and sees about 5% of the thin gold rims on liveportrait__d8: the
    # rims came along onto every new face. The frames' lines the rules find count as glasses for a source too.
    from saswap.face.masks import face_region_masks, glasses_mask
    from saswap.face.parsing import default_face_parsing

    image = load_image(data_path("images", "liveportrait__d8.jpg"))
    src = pipe.engine.prepare_source(image, pipe.analyzer(image)[0])
    regions = face_region_masks(src.face.landmarks, src.image.shape[:2])
    lines = (glasses_mask(src.image, regions, src.face.eye_distance) > 0.5) & (regions["face"] > 0.5)
    parsing = default_face_parsing(pipe.engine.clean_source)
    seen = parsing.group_probabilities(src.image, src.face.keypoints, {"g": ("glasses",)})["g"] > 0.5
    assert lines.sum() > 1000 and seen[lines].mean() < 0.5  # what the parser alone misses
    assert (src.extras["occluded"][lines] > 0.5).mean() > 0.95
    changed = np.abs(src.extras["texture"].astype(np.int16) - src.image.astype(np.int16)).max(axis=2)
    assert np.median(changed[lines]) > 10  # the rims filled with the face's skin


def test_a_sources_one_sided_fold_is_no_frame(pipe):
    # The line rule takes sberswap__source2's smile fold beside the nose for a frame (stop 47); a frame has its mirror
    # image across the face, the fold on one side has not, so it is left to the source (its identity).
    from saswap.face.masks import face_region_masks, glasses_mask

    image = load_image(data_path("images", "sberswap__source2.png"))
    src = pipe.engine.prepare_source(image, pipe.analyzer(image)[0])
    regions = face_region_masks(src.face.landmarks, src.image.shape[:2])
    lines = (glasses_mask(src.image, regions, src.face.eye_distance) > 0.5) & (regions["face"] > 0.5)
    assert lines.sum() > 300
    assert (src.extras["occluded"][lines] > 0.5).mean() < 0.2
    changed = np.abs(src.extras["texture"].astype(np.int16) - src.image.astype(np.int16)).max(axis=2)
    assert np.median(changed[lines]) < 5  # the fold stays as it is


def test_lower_face_motion_is_continuous_in_the_mouth_opening(pipe):
    """A talking target's mouth crosses the opening difference where the source's lower-face motion is given up
    (its mouth is another expression): the motion changes gradually across that difference, not by a jump."""
    from dataclasses import replace

    from saswap.engines.geometric import _MOUTH_BAND, _MOUTH_DIFFERENCE, mouth_openness
    from saswap.face.morphable import fit_morphable

    src = _prepared(pipe, "deepface__img41.jpg")
    target = load_image(data_path("images", "face_recognition__obama.jpg"))
    _, face, _ = pipe.engine.align(target, pipe.analyzer(target)[0])
    fit = fit_morphable(pipe.engine.model, face.landmarks_68)
    opening_s = mouth_openness(src.face.landmarks)

    def motion_at(difference: float, engine) -> np.ndarray:
        mesh = face.landmarks.copy()  # the target's inner lower lip moved down to give the opening wanted
        width = np.linalg.norm(mesh[291, :2] - mesh[61, :2])
        down = (mesh[152, :2] - mesh[13, :2]) / np.linalg.norm(mesh[152, :2] - mesh[13, :2])
        mesh[14, :2] = mesh[13, :2] + down * (opening_s + difference) * width
        moved = replace(face, landmarks=mesh)
        assert abs(mouth_openness(moved.landmarks) - opening_s - difference) < 1e-6
        return engine.sparse_motion(moved, src, 1.0, fit)[1]

    lo, hi = _MOUTH_DIFFERENCE - _MOUTH_BAND, _MOUTH_DIFFERENCE + _MOUTH_BAND
    differences = np.linspace(lo - 0.02, hi + 0.02, 13)
    for engine in (pipe.engine, GeometricEngine(morphable_model=pipe.engine.model, expression_exchange=0.0)):
        motions = [motion_at(d, engine) for d in differences]
        steps = [np.abs(b - a).max() for a, b in zip(motions[:-1], motions[1:])]
        total = np.abs(motions[-1] - motions[0]).max()
        assert total > 0.5, "the lower face's motion should differ between the same and a different expression"
        assert max(steps) < 0.3 * total  # spread over the band (a threshold would put it all in one step)
        if engine.expression_exchange == 0:  # outside the band nothing moves
            assert max(steps[0], steps[-1]) < 1e-9
        else:  # but the expression exchange, with the keypoints it is spread from (the lower lip moved)
            assert max(steps[0], steps[-1]) < 0.05 * total, (steps, total)


@pytest.mark.slow
def test_no_patches_of_the_sources_light_colour_on_the_new_face(pipe, analyzer):
    """The source's detail brings the hue of its features, not patches of its light's colour: with
    ``chroma_scale`` (the default) the output's skin is less blotchy than with the detail's colour taken at the
    relighting's scale (``chroma_scale`` = ``relight_scale``, the engine before), and its tone within 1.5 ΔE of that
    engine's."""
    from saswap import SaSwapPipeline
    from saswap.eval.swap_metrics import chroma_mottling, skin_tone_difference

    assert pipe.engine.chroma_scale == 0.2 < pipe.engine.relight_scale
    target = load_image(data_path("images", "sadtalker__happy.png"))
    source = load_image(data_path("images", "simswap__james.jpg"))
    t_face = analyzer(target)[0]
    # the skin's hue kept whole in both (``skin_hue``, since stop 39, halves what is left; its own test is below)
    on = SaSwapPipeline(GeometricEngine(morphable_model=pipe.engine.model, skin_hue=1.0), analyzer)
    off = SaSwapPipeline(
        GeometricEngine(morphable_model=pipe.engine.model, chroma_scale=pipe.engine.relight_scale, skin_hue=1.0),
        analyzer,
    )
    figures = {}
    for name, p in (("on", on), ("off", off)):
        out = p(source, target).image
        o_face = analyzer(out)[0]
        figures[name] = (
            chroma_mottling(out, o_face) / chroma_mottling(target, t_face),
            skin_tone_difference(out, o_face, target, t_face),
        )
    (mottled, tone), (mottled_off, tone_off) = figures["on"], figures["off"]
    assert mottled_off > 1.3, figures  # the failure (1.43x the target's measured)
    assert mottled < mottled_off - 0.12, figures  # 1.22x
    # tone: 4.51 against 3.54 ΔE since stop 39's shape-flow grid fix (4.18 against 4.52 before it: landmarks landing
    # a pixel or two elsewhere move this pair's reading by +0.3 and -1.0; the margin was 1.0 before)
    assert tone < tone_off + 1.5, figures


def test_a_colour_blotch_in_the_sources_skin_is_halved_and_its_features_keep_their_colour(pipe):
    """``skin_hue`` (0.5 by default): a green blotch on the source's cheek (a faded print's cast, a compressed photo's
    colour block) comes along with half its hue against the skin; the detail's lightness is the same everywhere, and the
    lips, outside the skin, keep their colour (but for the skin's feathered edge)."""
    from saswap.face.colour import _luminance
    from saswap.face.masks import face_region_masks

    img = load_image(data_path("images", "sberswap__beckham.jpg")).copy()
    face = pipe.analyzer(img)[0]
    lm = face.landmarks[:, :2]
    centre = (lm[50] + lm[205]) / 2  # the left cheek, below the eye
    radius = int(0.18 * face.eye_distance)
    blotch = np.zeros(img.shape[:2], np.uint8)
    cv2.circle(blotch, (int(centre[0]), int(centre[1])), radius, 1, -1)
    tinted = img.astype(np.float32)
    tinted[blotch > 0] *= (0.8, 1.0, 0.8)  # greener
    img = np.clip(tinted, 0, 255).astype(np.uint8)

    def detail(keep):
        engine = GeometricEngine(morphable_model=pipe.engine.model, skin_hue=keep)
        prepared = engine.prepare_source(img, face)
        return prepared, prepared.extras["detail"]

    assert pipe.engine.skin_hue == 0.5
    prepared, half = detail(0.5)
    _, whole = detail(1.0)
    at = cv2.warpAffine(blotch, prepared.transform, half.shape[1::-1], flags=cv2.INTER_NEAREST) > 0
    at = cv2.erode(at.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0  # its middle, away from the chroma blur's edge
    assert at.sum() > 200

    def green(d):  # the detail's green against its lightness, in the blotch
        return float(np.median(d[..., 1][at] / _luminance(d)[at]) - 1.0)

    assert green(whole) > 0.05, green(whole)  # the blotch is in the source's detail
    assert 0.4 < green(half) / green(whole) < 0.6, (green(half), green(whole))
    assert np.allclose(_luminance(half), _luminance(whole), atol=2e-3)
    lips = face_region_masks(prepared.face.landmarks, half.shape[:2])["lips"] > 0.5
    lips = cv2.erode(lips.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0  # mostly beyond the skin's feathered edge
    assert lips.sum() > 100

    def red(d):  # the lips' red against their lightness
        return float(np.median(d[..., 0][lips] / _luminance(d)[lips]) - 1.0)

    assert red(whole) > 0.02 and red(half) / red(whole) > 0.9, (red(half), red(whole))


def test_the_target_keeps_its_expression_not_the_sources(pipe, morphable_model):
    """A smiling source into a pouting target: the output's mouth is the target's pout, not the source's smile
    (before the lower face's expression exchange, three quarters of the difference came along)."""
    from saswap import SaSwapPipeline
    from saswap.eval.swap_metrics import expression_distance

    s_img = load_image(data_path("images", "sberswap__beckham.jpg"))
    t_img = load_image(data_path("images", "liveportrait__d8.jpg"))
    s_face, t_face = pipe.analyzer(s_img)[0], pipe.analyzer(t_img)[0]
    gap = expression_distance(s_face, t_face, morphable_model)
    assert gap > 0.1  # the two expressions differ clearly

    def carried(engine):
        out = SaSwapPipeline(engine, pipe.analyzer)(engine.prepare_source(s_img, s_face), t_img).image
        return expression_distance(pipe.analyzer(out)[0], t_face, morphable_model) / gap

    kept = carried(pipe.engine)
    assert kept < 0.4, f"{kept:.0%} of the source's expression came along"
    assert carried(GeometricEngine(morphable_model=morphable_model, expression_exchange=0.0)) > kept + 0.3


def test_a_closed_eye_keeps_the_targets_own_slit(pipe):
    """Through a closed target eye the source's iris, mapped into a sliver, showed as dark dots on the lid line: an
    eye that either face shows closed keeps the target's own interior (:func:`source_eye_weight`), an eye both show
    open takes the source's. Above the slit the closed lid shows the target's own texture, halfway up to the brow: the
    source's open eye has none for it, and its lid fold, lashes and socket's shadow, stretched up to the brow, were a
    black smear (the detail near its floor, 0.1, over most of the lid)."""
    from saswap.engines.geometric import eye_openness, source_eye_weight
    from saswap.face.masks import EYE_LOOPS, face_region_masks, upper_lid_mask

    src = _prepared(pipe, "sberswap__beckham.jpg")
    assert (eye_openness(src.face.landmarks) > 0.06).all()
    kept = {}
    for name in ("insightface__close_eyes.jpeg", "liveportrait__d9.jpg"):
        target = load_image(data_path("images", name))
        crop, face, _ = pipe.engine.align(target, pipe.analyzer(target)[0])
        opening = eye_openness(face.landmarks)
        out = pipe.engine.swap(crop, face, src, shape_strength=1.0)
        lids = face_region_masks(out.landmarks, crop.shape[:2])["eyes"] > 0.5
        kept[name] = (opening, float((out.keep[lids] > 0.99).mean()))
        if name == "insightface__close_eyes.jpeg":
            for eye in EYE_LOOPS:
                lid = cv2.erode(upper_lid_mask(out.landmarks, eye, crop.shape[:2], 0.5), np.ones((5, 5), np.uint8)) > 0
                # measured 0.44 and 0.33 (its lashes are dark), 0.18 and 0.19 with the source's smear
                assert lid.sum() > 500 and out.detail[lid].mean() > 0.28, (eye, out.detail[lid].mean())
    opening, share = kept["insightface__close_eyes.jpeg"]
    assert (opening < 0.03).all() and share > 0.95
    opening, share = kept["liveportrait__d9.jpg"]
    assert (opening > 0.1).all() and share < 0.05
    assert source_eye_weight(0.2, 0.03) == 0.0 and source_eye_weight(0.045, 0.2) == pytest.approx(0.5)


def test_the_source_cleaning_reads_the_parsers_operating_point(pipe, tmp_path):
    # A parser's operating point travels in its config (FaceParser(covered_threshold=)); the source cleaning covers
    # the pixels where the parser's summed glasses, hair and occluder probability exceeds it. An untrained parser
    # (about a third of its probability on those classes everywhere) covers the whole face at 0.05, nothing at 0.95,
    # and nothing at the fixed 0.5 the cleaning used before.
    import torch

    from saswap.engines import GeometricEngine
    from saswap.models import FaceParser

    image = load_image(data_path("images", "face_recognition__obama.jpg"))
    face = pipe.analyzer(image)[0]
    covered = {}
    for threshold in (0.05, 0.95):
        torch.manual_seed(0)
        folder = tmp_path / f"parser-{threshold}"
        FaceParser(block_out_channels=(4, 8), image_size=64, covered_threshold=threshold).eval().save_pretrained(folder)
        src = GeometricEngine(clean_source=str(folder)).prepare_source(image, face)
        covered[threshold] = float((src.extras["occluded"] > 0.5).mean())
    assert covered[0.05] > 0.2 and covered[0.95] < 0.01
