"""face_detector.onnx with our anchor decoding and weighted NMS, on real photos."""
from __future__ import annotations

import cv2
import dlib
import numpy as np
import pytest

from edge.biometrics.face.detector import FaceDetector, ssd_anchors
from tests.models.conftest import read_rgb

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def detector(models_dir):
    return FaceDetector(models_dir, threads=1, min_score=0.5)


def test_anchor_layout():
    anchors = ssd_anchors()
    assert anchors.shape == (896, 2)
    # Stride 8: 16 x 16 cells, 2 anchors each, row-major; then one 8 x 8 grid with 6 anchors per cell.
    assert np.allclose(anchors[0], anchors[1]) and np.allclose(anchors[0], [0.5 / 16, 0.5 / 16])
    assert np.allclose(anchors[2], [1.5 / 16, 0.5 / 16]) and np.allclose(anchors[32], [0.5 / 16, 1.5 / 16])
    assert np.allclose(anchors[512:518], [0.5 / 8, 0.5 / 8]) and np.allclose(anchors[-1], [7.5 / 8, 7.5 / 8])


@pytest.mark.parametrize("photo", ["obama.jpg", "biden.jpg", "obama2.jpg"])
def test_one_face_where_dlib_finds_it(models_dir, detector, photo):
    rgb = read_rgb(models_dir / "examples" / photo)
    [det] = detector.detect(rgb)  # NMS leaves one detection per face
    [hog] = dlib.get_frontal_face_detector()(rgb, 0)
    centre = np.array([(det.box[0] + det.box[2]) / 2, (det.box[1] + det.box[3]) / 2])
    hog_centre = np.array([(hog.left() + hog.right()) / 2, (hog.top() + hog.bottom()) / 2])
    assert np.linalg.norm(centre - hog_centre) < 0.2 * hog.width()
    assert 0.6 < det.width / hog.width() < 1.6


def test_letterbox_mapping_follows_the_face(models_dir, detector):
    """The same face placed at an offset in a larger frame (other scale and padding) is found at that offset."""
    rgb = read_rgb(models_dir / "examples" / "obama.jpg")
    h, w = rgb.shape[:2]
    canvas = np.zeros((h + 60, w + 200, 3), np.uint8)
    canvas[40:40 + h, 150:150 + w] = rgb
    [a], [b] = detector.detect(rgb), detector.detect(canvas)
    shift = np.array([150, 40])
    assert np.abs(np.array(b.box) - np.array(a.box) - np.tile(shift, 2)).max() < 0.05 * a.width
    assert np.abs(b.keypoints - a.keypoints - shift).max() < 0.05 * a.width


def test_mirror_image_mirrors_box_and_swaps_eyes(models_dir, detector):
    rgb = read_rgb(models_dir / "examples" / "obama.jpg")
    w = rgb.shape[1]
    [a], [b] = detector.detect(rgb), detector.detect(np.ascontiguousarray(rgb[:, ::-1]))
    # The network is not exactly mirror-symmetric: a few per cent of the face width apart.
    assert abs((w - b.box[2]) - a.box[0]) < 0.08 * a.width
    # The subject's right eye is on the image's left; in the mirror image it is the other eye's mirror.
    assert np.abs((w - b.keypoints[0, 0]) - a.keypoints[1, 0]) < 0.08 * a.width


def test_bgr_entry_point_equals_rgb(models_dir, detector):
    rgb = read_rgb(models_dir / "examples" / "biden.jpg")
    [a], [b] = detector.detect(rgb), detector.detect_bgr(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert np.allclose(a.keypoints, b.keypoints) and a.score == pytest.approx(b.score)


def test_nothing_in_an_empty_frame(detector):
    assert detector.detect(np.full((480, 640, 3), 90, np.uint8)) == []


# -- full range ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def full_range(models_dir):
    return FaceDetector(models_dir, threads=1, min_score=0.5, model="full_range")


def test_full_range_anchor_layout():
    from edge.biometrics.face.detector import FULL_RANGE

    anchors = ssd_anchors(FULL_RANGE)
    # One stride-4 grid over the 192-px input: 48 x 48 cells, one anchor each, row-major.
    assert anchors.shape == (2304, 2)
    assert np.allclose(anchors[0], [0.5 / 48, 0.5 / 48]) and np.allclose(anchors[1], [1.5 / 48, 0.5 / 48])
    assert np.allclose(anchors[48], [0.5 / 48, 1.5 / 48]) and np.allclose(anchors[-1], [47.5 / 48, 47.5 / 48])


@pytest.mark.parametrize("face_px", [50, 75, 150])
def test_full_range_finds_a_small_face_in_a_camera_frame(models_dir, detector, full_range, face_px):
    """The photo scaled so its face is `face_px` wide, in a 640 x 480 frame: found where it is, eyes where the
    short-range model puts them on the full-size photo."""
    rgb = read_rgb(models_dir / "examples" / "obama.jpg")
    [big] = detector.detect(rgb)
    scale = face_px / big.width
    small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = np.full((480, 640, 3), 100, np.uint8)
    cx, cy = (big.box[0] + big.box[2]) / 2 * scale, (big.box[1] + big.box[3]) / 2 * scale
    x0, y0 = int(320 - cx), int(240 - cy)
    sx0, sy0 = max(0, -x0), max(0, -y0)
    part = small[sy0:sy0 + 480 - max(0, y0), sx0:sx0 + 640 - max(0, x0)]
    frame[max(0, y0):max(0, y0) + part.shape[0], max(0, x0):max(0, x0) + part.shape[1]] = part
    faces = full_range.detect(frame)
    assert faces, f"no face of {face_px} px found"
    face = faces[0]
    assert 0.7 < face.width / face_px < 1.4
    expected_eyes = big.keypoints[:2] * scale + [x0, y0]
    assert np.abs(face.keypoints[:2] - expected_eyes).max() < 0.15 * face_px


def test_full_range_nothing_in_an_empty_frame(full_range):
    assert full_range.detect(np.full((480, 640, 3), 90, np.uint8)) == []
