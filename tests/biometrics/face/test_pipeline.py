"""The face path end to end on real photos: decisions, quality gates with their reasons, the HOG fallback."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.biometrics.face import FacePipeline
from edge.biometrics.face.embedder import TEMPLATE_NORM
from edge.biometrics.face.image import as_rgb
from edge.errors import InputError, QualityError

pytestmark = pytest.mark.timeout(120)


def codes(analysis) -> list[str]:
    return [f.code for f in analysis.findings]


def face_crop(pipeline, frame, margin=1.2):
    """The frame cut around its face (a square of `margin` face widths each side of the centre)."""
    det = pipeline.detector.detect_bgr(frame)[0]
    cx, cy, half = (det.box[0] + det.box[2]) / 2, (det.box[1] + det.box[3]) / 2, margin * det.width
    y0, x0 = int(max(0, cy - half)), int(max(0, cx - half))
    return frame[y0:int(cy + half), x0:int(cx + half)]


def test_same_person_is_close_and_different_people_are_far(pipeline, example):
    a, b, c = pipeline.analyze_many([example("obama"), example("obama2"), example("biden")])
    assert all(x.acquired and not x.findings for x in (a, b, c))
    same, different = pipeline.distance(a.embedding, b.embedding), pipeline.distance(a.embedding, c.embedding)
    assert pipeline.is_same(same) and not pipeline.is_same(different)
    assert same < 0.45 and different > 0.75  # far from the threshold on both sides


def test_embeddings_have_the_template_length_and_batches_change_nothing(pipeline, example):
    frames = [example("obama"), example("biden"), example("obama3")]
    batch = [a.embedding for a in pipeline.analyze_many(frames)]
    single = [pipeline.analyze(f).embedding for f in frames]
    assert np.allclose(np.linalg.norm(batch, axis=1), TEMPLATE_NORM, atol=1e-5)
    assert np.abs(np.array(batch) - np.array(single)).max() < 1e-5


def test_region_alignment_equals_whole_frame_alignment(pipeline, example):
    for name in ("obama", "obama3", "obama_partial_face"):
        frame = example(name)
        det = pipeline.detector.detect_bgr(frame)[0]
        region, whole = pipeline.aligner.align_bgr(frame, det), pipeline.aligner.align(as_rgb(frame), det)
        assert np.array_equal(region.chip, whole.chip) and np.array_equal(region.landmarks, whole.landmarks)


def test_detector_keypoints_sit_on_the_face(pipeline, example):
    [det] = pipeline.detector.detect_bgr(example("obama"))
    x0, y0, x1, y1 = det.box
    right_eye, left_eye, nose, mouth = det.keypoints[:4]
    assert det.source == "blazeface" and det.score > 0.8
    assert all(x0 < x < x1 and y0 < y < y1 for x, y in (right_eye, left_eye, nose, mouth))
    assert right_eye[0] < left_eye[0] and max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]


def test_grey_and_bgra_frames_are_accepted(pipeline, example):
    colour = pipeline.analyze(example("obama")).embedding
    for frame in (cv2.cvtColor(example("obama"), cv2.COLOR_BGR2GRAY), cv2.cvtColor(example("obama"), cv2.COLOR_BGR2BGRA)):
        analysis = pipeline.analyze(frame)
        assert analysis.acquired and pipeline.is_same(pipeline.distance(colour, analysis.embedding))


@pytest.mark.parametrize("frame", [np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 5), np.uint8),
                                   np.zeros((0, 4, 3), np.uint8), "not an array"])
def test_unusable_arrays_are_input_errors(pipeline, frame):
    with pytest.raises(InputError):
        pipeline.analyze(frame)


# -- quality gates: one reason each --------------------------------------------------------------------------

@pytest.mark.parametrize("frame", [np.full((480, 640, 3), 128, np.uint8),
                                   np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)])
def test_no_face(pipeline, frame):
    analysis = pipeline.analyze(frame)
    assert not analysis.acquired and codes(analysis) == ["quality.no_face"]
    with pytest.raises(QualityError) as err:
        analysis.require(strict=False)
    assert err.value.code == "quality.no_face"


def test_more_than_one_face(pipeline, example):
    obama, biden = example("obama"), example("biden")
    biden = cv2.resize(biden, (int(biden.shape[1] * obama.shape[0] / biden.shape[0]), obama.shape[0]))
    analysis = pipeline.analyze(np.hstack([obama, biden]))
    assert len(analysis.faces) == 2 and codes(analysis) == ["quality.multiple_faces"]
    assert analysis.require(strict=False) is analysis.embedding  # usable when the caller allows it
    with pytest.raises(QualityError) as err:
        analysis.require(strict=True)
    assert err.value.code == "quality.multiple_faces"


def test_face_too_small(pipeline, example):
    small = cv2.resize(face_crop(pipeline, example("obama")), (90, 90), interpolation=cv2.INTER_AREA)
    analysis = pipeline.analyze(small)
    assert codes(analysis) == ["quality.face_too_small"]


def test_too_dark_is_not_called_blurred(pipeline, example):
    analysis = pipeline.analyze((example("obama") * 0.12).astype(np.uint8))
    assert codes(analysis) == ["quality.too_dark"]


def test_overexposed(pipeline, example):
    frame = example("obama").astype(np.float64)
    analysis = pipeline.analyze((255 - (255 - frame) * 0.12).astype(np.uint8))
    assert codes(analysis) == ["quality.overexposed"]


def test_blurred(pipeline, example):
    frame = example("obama")
    width = pipeline.detector.detect_bgr(frame)[0].width
    analysis = pipeline.analyze(cv2.GaussianBlur(frame, (0, 0), 0.03 * width))
    assert codes(analysis) == ["quality.blurred"]


def test_strong_pose(pipeline, example):
    frame = example("obama")
    h, w = frame.shape[:2]
    tilted = cv2.warpAffine(frame, cv2.getRotationMatrix2D((w / 2, h / 2), 40, 1.0), (w, h))
    analysis = pipeline.analyze(tilted)
    assert codes(analysis) == ["quality.strong_pose"]
    assert abs(analysis.measures.roll_deg) > 30


def test_wipe_zeroises_the_chip_and_the_embedding(pipeline, example):
    analysis = pipeline.analyze(example("biden"))
    analysis.wipe()
    assert not analysis.aligned.chip.any() and not analysis.embedding.any()


# -- HOG fallback --------------------------------------------------------------------------------------------

def small_face_in_a_large_frame(pipeline, example) -> np.ndarray:
    """A 220-px face crop in a 1400 x 1000 frame: about 15 px in the short-range model's 128-px input (too small
    for it), about 30 px in full range's 192-px input, about 110 px for HOG on the frame scaled to 1024 px."""
    canvas = np.full((1000, 1400, 3), 120, np.uint8)
    canvas[400:620, 600:820] = cv2.resize(face_crop(pipeline, example("obama")), (220, 220))
    return canvas


def test_full_range_finds_faces_too_small_for_short_range(face_config, face_models_dir, pipeline, example):
    frame = small_face_in_a_large_frame(pipeline, example)
    short_only = face_config.face.model_copy(update={"detector": "short_range", "close_up_detector": None,
                                                      "redetect_tiles": False, "hog_fallback": False})
    assert codes(FacePipeline(short_only, face_models_dir).analyze(frame)) == ["quality.no_face"]
    analysis = pipeline.analyze(frame)
    assert [d.source for d in analysis.faces] == ["blazeface"] and analysis.acquired
    reference = pipeline.analyze(example("obama")).embedding
    assert pipeline.is_same(pipeline.distance(reference, analysis.embedding))


def test_large_faces_are_re_read_by_short_range(face_config, face_models_dir, pipeline, example):
    """A photo's face (more than a fifth of the frame) keeps the short-range detection the alignment was fitted
    on: the chain's box is short range's own."""
    frame = example("obama")
    short = FacePipeline(face_config.face.model_copy(update={"detector": "short_range", "close_up_detector": None}),
                         face_models_dir)
    [a], [b] = pipeline.detector.detect_bgr(frame), short.detector.detect_bgr(frame)
    assert a.box == b.box and np.array_equal(a.keypoints, b.keypoints)


def test_hog_fallback_finds_faces_blazeface_misses(face_config, face_models_dir, pipeline, example):
    cfg = face_config.face.model_copy(update={"detector": "short_range", "close_up_detector": None,
                                              "redetect_tiles": False, "hog_fallback": True})
    analysis = FacePipeline(cfg, face_models_dir).analyze(small_face_in_a_large_frame(pipeline, example))
    assert [d.source for d in analysis.faces] == ["hog"] and analysis.acquired


def test_motion_blur_is_its_own_finding(pipeline, example):
    """Smeared sideways (the customer moving): "hold still", told apart from an evenly out-of-focus face."""
    frame = example("obama")
    width = pipeline.detector.detect_bgr(frame)[0].width
    length = max(3, int(0.15 * width))
    smeared = cv2.filter2D(frame, -1, np.full((1, length), 1.0 / length, np.float32))
    analysis = pipeline.analyze(smeared)
    assert "quality.motion_blurred" in codes(analysis)
    assert analysis.measures.motion_blur > pipeline.analyze(frame).measures.motion_blur + 0.1
    assert "quality.motion_blurred" not in codes(pipeline.analyze(cv2.GaussianBlur(frame, (0, 0), 0.03 * width)))


def test_the_best_frame_is_picked_not_the_first(pipeline, example):
    frame = example("obama")
    width = pipeline.detector.detect_bgr(frame)[0].width
    blurred = cv2.GaussianBlur(frame, (0, 0), 0.03 * width)
    dark = (frame * 0.3).astype(np.uint8)
    index, analysis = pipeline.analyze_best([blurred, dark, frame, blurred])
    assert index == 2 and analysis.acquired and analysis.capture_findings() == []
    assert pipeline.analyze_best([np.full((480, 640, 3), 90, np.uint8)]) is None


def test_a_confident_face_beats_a_larger_unsure_one():
    """Size alone let a background the detector is unsure of (a large box at 0.5-0.7) win over the customer's
    smaller face at 0.9; within the score margin the larger, more central face still wins (a bystander behind)."""
    from edge.biometrics.face.detector import PROMINENCE_SCORE_MARGIN, Detection, most_prominent

    customer = Detection((300.0, 200.0, 355.0, 255.0), 0.894, None)
    background = Detection((40.0, 60.0, 140.0, 160.0), 0.681, None)
    assert most_prominent([background, customer], 640, 480) is customer
    bystander = Detection((500.0, 50.0, 540.0, 90.0), customer.score + PROMINENCE_SCORE_MARGIN / 2, None)
    assert most_prominent([bystander, customer], 640, 480) is customer


def test_a_small_face_in_a_textured_frame_is_the_one_analysed(pipeline):
    """A development face pasted at 50 px into a 640 x 480 lobby frame (edge.evaluation.conditions): full range also
    reports a 100 px box on the background at 0.68; the analysed face must be the real one (it was the box)."""
    from edge.biometrics.face import load_image
    from edge.evaluation.conditions import in_frame, seed_of
    from tests.conftest import require_data

    path = require_data("faces", "lfw", "images") / "Placido_Domingo" / "Placido_Domingo_0003.jpg"
    frame = in_frame(load_image(path), seed_of(path.name), 50)
    analysis = pipeline.analyze(frame)
    assert len(analysis.faces) >= 2 and "quality.multiple_faces" in codes(analysis)
    assert analysis.face.score == max(f.score for f in analysis.faces)
    assert analysis.face.width < 64 and "quality.face_too_small" in codes(analysis)


def test_the_best_frame_of_the_customer_is_taken_when_a_better_one_shows_someone_else(face_config, pipeline, example):
    """The probe must be the face the capture began with (BiometricCore.best_face_sample passes the liveness
    frame's embedding). A sharper, larger frame of another face used to be chosen first and then refused, and
    the capture ended with quality.no_face while the customer's own frames were there: the choice now passes
    over frames of another face and keeps the best of the customer's."""
    from edge.service.biometrics import BiometricCore

    core = BiometricCore(face_config)
    customer = example("obama")
    reference = core.face_sample(customer, strict=False).embedding
    # still the customer, but a worse frame than the other face: smaller and darker
    h, w = customer.shape[:2]
    small = cv2.resize(customer, (w // 3, h // 3), interpolation=cv2.INTER_AREA)
    dim = np.full_like(customer, 120)
    dim[h // 3:h // 3 + small.shape[0], w // 3:w // 3 + small.shape[1]] = small
    dim = (dim * 0.4).astype(np.uint8)
    other = example("biden")
    chosen = core.best_face_sample([dim, other], reference=reference)
    assert chosen is not None, "the customer's own frame was there"
    sample, _ = chosen
    assert core.face.is_same(core.face.distance(sample.embedding, reference))
    index, analysis = core.face.analyze_best([dim, other])
    assert index == 1, "the other face is the better frame: without the reference it would be taken"
    analysis.wipe()
    assert core.best_face_sample([other], reference=reference) is None
