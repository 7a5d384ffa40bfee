"""Face analysis on real photos: what must be found, what must not, and the output conventions."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from conftest import data_path

from saswap.face.geometry import box_iou

MUST_FIND = {
    "insightface__t1.jpg": 6,
    "insightface__left_face.jpeg": 1,  # profile
    "insightface__left_wryneck.png": 1,  # strong roll
    "insightface__lower_face.jpeg": 1,  # seen from below
    "insightface__image_T1.jpeg": 1,  # rotated 90 degrees
    "insightface__mask.png": 1,  # masked
    "insightface__blur.jpg": 1,
    "face_recognition__obama_and_biden.jpg": 3,  # the child looking down, ~7% of the short side (3x3 tiles)
}


@pytest.fixture(scope="module")
def results(analyzer):
    names = list(MUST_FIND) + ["dlib__bald_guys.jpg", "face_recognition__obama.jpg", "deepface__selfie-many-people.jpg"]
    return {name: analyzer(data_path("images", name)) for name in names}


@pytest.mark.parametrize("name,count", MUST_FIND.items())
def test_finds_faces(results, name, count):
    assert len(results[name]) >= count, f"{name}: found {len(results[name])} faces, expected {count}"
    if count == 1:
        assert len(results[name]) == 1, f"{name}: spurious extra faces"


def test_finds_crowd(results):
    assert len(results["dlib__bald_guys.jpg"]) >= 20


def test_never_two_boxes_for_one_face(results):
    for name, faces in results.items():
        for a, b in itertools.combinations(faces, 2):
            iou = box_iou(a.box[None], b.box[None])[0, 0]
            assert iou < 0.3, f"{name}: two boxes overlap with IoU {iou:.2f}"


def test_a_large_face_the_picture_edge_cuts_is_found(results):
    """The selfie's own face, cut by the right and bottom edges, is the picture's largest; BlazeFace misses it on the
    picture as it is and finds it with a mirrored border. The faces found without the border stay as they were."""
    from saswap.face import FaceAnalyzer

    image = data_path("images", "deepface__selfie-many-people.jpg")
    with FaceAnalyzer(edge_faces=False) as plain_analyzer:
        plain = plain_analyzer(image)
    faces = results["deepface__selfie-many-people.jpg"]
    assert len(faces) == len(plain) + 1, f"{len(plain)} faces without the edge search, {len(faces)} with it"
    cut = faces[0]  # the largest
    x1, y1, x2, y2 = cut.box
    assert x2 > 600 and y2 > 500 and cut.area > 1.5 * plain[0].area, cut.box  # the picture is 600 x 604
    nose = cut.landmarks[1, :2]  # the mesh reads his visible half in the picture itself
    assert 500 < nose[0] < 600 and 380 < nose[1] < 520, nose
    for before, after in zip(plain, faces[1:]):
        np.testing.assert_array_equal(before.landmarks, after.landmarks)


def test_the_edge_search_finds_nothing_beyond_a_frame_s_one_face(analyzer):
    """A talking head's frame: the mirrored border makes a false face at a corner, which the face mesh refuses."""
    import av

    from saswap.face import FaceAnalyzer

    with av.open(str(data_path("videos", "liveportrait__s32.mp4"))) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    backend = analyzer.backend
    assert len(backend._detect_edges(frame)[0]) >= 1  # the corner's candidate (0.63 when measured)
    with FaceAnalyzer(edge_faces=False) as plain_analyzer:
        plain = plain_analyzer(frame)
    faces = analyzer(frame)
    assert len(plain) == len(faces) == 1
    np.testing.assert_array_equal(plain[0].landmarks, faces[0].landmarks)
    with pytest.raises(ValueError, match="edge_faces"):
        FaceAnalyzer(edge_faces="sometimes")


def test_a_video_frame_looks_at_its_edges_only_when_nothing_else_is_found(analyzer):
    """``edges="alone"`` (a template's frames): the selfie's corner, where only his cut face shows, gains it; the
    whole selfie, whose other faces the plain pass finds, does not. A call narrows the analyzer's own setting and
    never widens it: an analyzer made with ``edge_faces=False`` looks at no edge."""
    from saswap.face import FaceAnalyzer
    from saswap.io import load_image

    image = load_image(data_path("images", "deepface__selfie-many-people.jpg"))
    corner = np.ascontiguousarray(image[250:, 400:])  # his face, cut by the corner's right and bottom edges
    with FaceAnalyzer(edge_faces=False) as plain_analyzer:
        assert plain_analyzer(corner) == [] and plain_analyzer(corner, edges="alone") == []
        whole = plain_analyzer(image)
    found = analyzer(corner, edges="alone")
    assert len(found) == 1 and found[0].box[2] > corner.shape[1], [f.box for f in found]
    alone = analyzer(image, edges="alone")  # the plain pass finds four faces: no edge search
    assert len(alone) == len(whole) == len(analyzer(image)) - 1
    with pytest.raises(ValueError, match="edges"):
        analyzer(image, edges="often")


def test_a_small_face_in_a_large_photo_is_found_on_finer_tiles(analyzer):
    # A person a few metres away in a 12-megapixel photo: their face about 2% of its shorter side, too small for the
    # detector on the whole picture and on 3x3 tiles. Nothing else being found, finer tiles find it (it was "no face").
    import cv2

    from saswap.io import load_image

    person = load_image(data_path("images", "face_recognition__obama.jpg"))
    small = cv2.resize(person, None, fx=0.2, fy=0.2, interpolation=cv2.INTER_AREA)
    photo = np.full((3000, 4000, 3), (90, 110, 130), np.uint8)
    y, x = 1000, 2000
    photo[y : y + small.shape[0], x : x + small.shape[1]] = small
    backend = analyzer.backend
    assert not len(backend._detect_tiles(photo, 3)[0])  # the 3x3 tiles find nothing there
    found = analyzer(photo)
    assert len(found) == 1
    box = found[0].box
    assert x <= box[0] < box[2] <= x + small.shape[1] and y <= box[1] < box[3] <= y + small.shape[0], box
    assert box[2] - box[0] < 0.03 * 3000
    # the same face in the small picture, where the plain pass finds it, is the same face, scaled
    (alone,) = analyzer(small)
    assert np.abs((alone.box + [x, y, x, y]) - box).max() < 0.1 * (box[2] - box[0])


def test_no_face_in_a_photo_without_faces(analyzer):
    skimage = pytest.importorskip("skimage")
    assert analyzer(skimage.data.coffee()) == []
    assert analyzer(np.full((256, 256, 3), 127, np.uint8)) == []


def test_face_fields_and_conventions(results):
    face = results["face_recognition__obama.jpg"][0]
    assert face.landmarks.shape == (478, 3) and face.landmarks_68.shape == (68, 2) and face.keypoints.shape == (5, 2)
    x1, y1, x2, y2 = face.box
    inside = (
        (face.keypoints[:, 0] > x1)
        & (face.keypoints[:, 0] < x2)
        & (face.keypoints[:, 1] > y1)
        & (face.keypoints[:, 1] < y2)
    )
    assert inside.all()
    # ArcFace order on an upright face: right eye left of left eye, eyes above nose above mouth.
    k = face.keypoints
    assert k[0, 0] < k[1, 0] and k[3, 0] < k[4, 0]
    assert max(k[0, 1], k[1, 1]) < k[2, 1] < min(k[3, 1], k[4, 1])
    assert 0.5 < face.score <= 1.0
    assert np.abs(face.pose).max() < 15  # near-frontal portrait
    payload = json.loads(json.dumps(face.to_dict()))
    assert set(payload) >= {"box", "score", "keypoints", "landmarks", "pose"}


def test_sorted_largest_first(results):
    areas = [f.area for f in results["insightface__t1.jpg"]]
    assert areas == sorted(areas, reverse=True)


def test_pose_signs(results):
    profile = results["insightface__left_face.jpeg"][0]  # nose points to the image's left
    assert profile.pose[0] < -30
    roll = results["insightface__left_wryneck.png"][0]
    assert abs(roll.pose[2]) > 30
    rotated = results["insightface__image_T1.jpeg"][0]
    eye_line = rotated.keypoints[1] - rotated.keypoints[0]
    assert np.degrees(np.arctan2(eye_line[1], eye_line[0])) == pytest.approx(rotated.pose[2], abs=15)


def test_max_faces(analyzer):
    faces = analyzer(data_path("images", "insightface__t1.jpg"), max_faces=2)
    assert len(faces) == 2


def test_unknown_backend():
    from saswap.errors import SaSwapError
    from saswap.face import FaceAnalyzer

    with pytest.raises(SaSwapError, match="unknown face analysis backend"):
        FaceAnalyzer(backend="nope")


def test_insightface_backend_without_pack_fails_fast(tmp_path, monkeypatch):
    """No model pack locally: a clear message at once, no download attempt (the network is not touched)."""
    import socket
    import time

    from saswap.errors import ModelNotFoundError
    from saswap.face import FaceAnalyzer

    def no_network(*args, **kwargs):
        raise AssertionError("the insightface backend tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setenv("INSIGHTFACE_HOME", str(tmp_path))
    start = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match=r"'buffalo_l' not found in .*non-commercial"):
        FaceAnalyzer(backend="insightface")
    assert time.perf_counter() - start < 2.0


def test_person_segmenter_separates_a_profile_from_the_background():
    from saswap.face._mediapipe import PersonSegmenter
    from saswap.io import load_image

    image = load_image(data_path("images", "insightface__left_face.jpeg"))
    seg = PersonSegmenter()
    try:
        person = seg(image)
    finally:
        seg.close()
    h, w = image.shape[:2]
    assert person.shape == (h, w) and person.dtype == np.float32
    assert 0.0 <= person.min() and person.max() <= 1.0
    assert person[int(0.45 * h), int(0.55 * w)] > 0.9  # her cheek
    assert person[int(0.5 * h), : int(0.05 * w)].max() < 0.1  # the grey wall at the left edge


def test_labels_of_faces_side_by_side_do_not_cover_each_other():
    from saswap.face.draw import _label_place, _overlap

    boxes = [(100, 100, 160, 170), (150, 105, 210, 175), (130, 40, 190, 95)]  # close together, one above
    placed: list = []
    for box in boxes:
        placed.append(_label_place(box, 90, 30, placed, boxes, 400, 300))
    for a, b in itertools.combinations(placed, 2):
        assert _overlap(a, b) == 0, (a, b)
    assert all(0 <= x1 < x2 <= 400 and 0 <= y1 < y2 <= 300 for x1, y1, x2, y2 in placed)


def test_library_use_prints_no_native_log_lines():
    """MediaPipe's C++ notices (absl W0000 lines, TFLite delegates) stay silent in Python use too, and
    stderr works again afterwards, also when threads analyse at the same time."""
    import subprocess
    import sys

    code = f"""
import sys, threading
from saswap.face import FaceAnalyzer
from saswap.face._mediapipe import PersonSegmenter
from saswap.io import load_image
img = load_image({str(data_path("images", "face_recognition__obama.jpg"))!r})
analyzers = [FaceAnalyzer() for _ in range(2)]
threads = [threading.Thread(target=a, args=(img,)) for a in analyzers]
[t.start() for t in threads]; [t.join() for t in threads]
PersonSegmenter()(img)
print(len(analyzers[0](img)), "faces", file=sys.stderr, flush=True)
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stderr.strip() == "1 faces", run.stderr


def test_a_face_upside_down_over_an_upright_one_is_dropped():
    """One head cannot show two faces with opposite up directions (BlazeFace reads the crown of a head pitched far
    down as a face upside down); a picture whose faces are all upside down keeps them, and so does an upside-down face
    elsewhere."""
    from saswap.face.analyzer import one_way_up, upside_down_over
    from saswap.face.types import Face

    def face(box, roll):
        return Face(np.asarray(box, np.float32), 0.9, np.zeros((5, 2), np.float32), np.zeros((478, 3), np.float32),
                    np.zeros((68, 2), np.float32), np.asarray([0.0, -30.0, roll], np.float32))  # fmt: skip

    upright = face([466, 647, 561, 751], 5.0)
    crown = face([469, 559, 572, 698], -172.0)  # the crown above it, read upside down (the crowd clip, frame 78)
    elsewhere = face([900, 600, 1000, 700], 175.0)
    assert upside_down_over(crown, [upright, crown]) and not upside_down_over(upright, [upright, crown])
    kept = one_way_up([crown, upright, elsewhere])
    assert [f.box.tolist() for f in kept] == [upright.box.tolist(), elsewhere.box.tolist()]
    assert len(one_way_up([crown, elsewhere])) == 2  # all upside down: a picture held the wrong way
    tilted = face([469, 559, 572, 698], 80.0)  # lying on one side is not upside down
    assert len(one_way_up([tilted, upright])) == 2


def test_a_picture_turned_without_its_rotation_is_read_with_its_content_upright(analyzer):
    """A talking head's frame turned by 90, 180 and 270 degrees: the detector's upright scores over the four turns say
    which turn makes it upright, and read turned that way the face has the upright frame's landmarks (in the turned
    picture), its yaw and pitch, and its roll turned with the picture. Read as it is, the frame turned by 180 gets a
    face the detector took for upright, eyes where the mouth is (what a swap pasted, upright, over the head)."""
    import av

    from saswap.face.analyzer import _rotate_points, content_turn, turned_pose

    with av.open(str(data_path("videos", "liveportrait__d8.mp4"))) as c:
        image = next(iter(c.decode(video=0))).to_ndarray(format="rgb24")
    upright = analyzer(image)[0]
    assert content_turn(analyzer.upright_scores(image)[None]) == 0
    h, w = image.shape[:2]
    eyes = upright.eye_distance
    for j in (1, 2, 3):
        picture = np.ascontiguousarray(np.rot90(image, j))
        turn = (-j) % 4
        assert content_turn(analyzer.upright_scores(picture)[None]) == turn
        face = analyzer(picture, turn=turn)[0]
        back = _rotate_points(face.landmarks[:, :2], j, (h, w))
        assert np.abs(back - upright.landmarks[:, :2]).max() < 0.05 * eyes
        assert np.abs(face.pose[:2] - upright.pose[:2]).max() < 1.0, (face.pose, upright.pose)
        roll = (face.pose[2] - 90.0 * turn - upright.pose[2] + 180.0) % 360.0 - 180.0
        assert abs(roll) < 1.0, (face.pose, upright.pose)
        assert np.allclose(turned_pose(face.landmarks, turn), face.pose)
    misread = analyzer(np.ascontiguousarray(np.rot90(image, 2)))[0]
    back = _rotate_points(misread.landmarks[:, :2], 2, (h, w))
    assert np.abs(back - upright.landmarks[:, :2]).mean() > 0.5 * eyes


def test_a_photo_turned_without_its_orientation_is_read_upright_from_itself(analyzer, monkeypatch):
    """``turn="auto"``: one photo's own upright scores decide its turn. A photo turned by 90, 180 or 270 degrees gets
    the upright photo's faces (landmarks in the turned picture); the upright photo keeps its reading as it is, and a
    face read clearly as it is costs one detector pass, not four. A bad value is refused."""
    from saswap.face.analyzer import _rotate_points
    from saswap.io import load_image

    image = load_image(data_path("images", "face_recognition__obama.jpg"))
    upright = analyzer(image)[0]
    h, w = image.shape[:2]
    for j in (1, 2, 3):
        picture = np.ascontiguousarray(np.rot90(image, j))
        assert analyzer.picture_turn(picture) == (-j) % 4
        faces = analyzer(picture, turn="auto")
        assert len(faces) == 1
        back = _rotate_points(faces[0].landmarks[:, :2], j, (h, w))
        assert np.abs(back - upright.landmarks[:, :2]).max() < 0.05 * upright.eye_distance
    again = analyzer(image, turn="auto")[0]
    assert np.array_equal(again.landmarks, upright.landmarks) and np.array_equal(again.pose, upright.pose)
    passes = []
    detector = analyzer.backend._detector
    monkeypatch.setattr(analyzer.backend, "_detector", lambda *a, **k: passes.append(1) or detector(*a, **k))
    scores = analyzer.backend.upright_scores(image, enough=0.9)
    assert scores[0] > 0.9 and len(passes) == 1 and not scores[1:].any()
    passes.clear()
    analyzer(image)
    plain = len(passes)
    passes.clear()
    analyzer(image, turn="auto")
    assert len(passes) == plain  # the turn's pass over the picture as it is serves the detection too
    with pytest.raises(ValueError, match="auto"):
        analyzer(image, turn="upright")


def test_the_content_turn_needs_clear_evidence_over_the_frames():
    from saswap.face.analyzer import content_turn

    turned = np.array([[0.72, 0.0, 0.95, 0.0]] * 6 + [[0.0, 0.0, 0.0, 0.0]] * 4)
    assert content_turn(turned) == 2  # frames without a face do not count
    assert content_turn(turned[:, [1, 2, 3, 0]]) == 1
    assert content_turn(np.zeros((5, 4))) == 0 and content_turn(np.zeros((0, 4))) == 0
    close = np.array([[0.80, 0.0, 0.85, 0.0]] * 6)  # ahead in every frame, but by less than the margin
    assert content_turn(close) == 0
    split = np.array([[0.70, 0.0, 0.95, 0.0]] * 5 + [[0.95, 0.0, 0.60, 0.0]] * 5)  # half the frames each way
    assert content_turn(split) == 0
    lying = np.array([[0.0, 0.9, 0.0, 0.0]] * 3 + [[0.91, 0.0, 0.0, 0.0]])  # mostly on one side, the sum decides
    assert content_turn(lying) == 1
