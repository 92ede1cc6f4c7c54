"""Our face_embedder.onnx against dlib itself and face_recognition, on real chips from the example photos."""
from __future__ import annotations

import dlib
import face_recognition_models as frm
import numpy as np
import pytest

from edge.models import load_session
from models.build.dlib_format import DlibFormatError, read_dlib_resnet
from tests.models.conftest import read_rgb

PHOTOS = ["obama.jpg", "obama2.jpg", "biden.jpg"]
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def dlib_models():
    return (dlib.get_frontal_face_detector(),
            dlib.shape_predictor(frm.pose_predictor_five_point_model_location()),
            dlib.face_recognition_model_v1(frm.face_recognition_model_location()))


@pytest.fixture(scope="module")
def faces(models_dir, dlib_models):
    """(photo, rgb image, dlib rectangle, 5-point shape, 150x150 chip) for each face found by dlib's HOG."""
    detector, predictor, _ = dlib_models
    found = []
    for photo in PHOTOS:
        rgb = read_rgb(models_dir / "examples" / photo)
        rects = detector(rgb, 1)
        assert len(rects) == 1, f"{photo}: expected one face, dlib found {len(rects)}"
        shape = predictor(rgb, rects[0])
        found.append((photo, rgb, rects[0], shape, dlib.get_face_chip(rgb, shape, size=150, padding=0.25)))
    return found


def embed(models_dir, chips: np.ndarray) -> np.ndarray:
    session = load_session("face_embedder", models_dir, threads=1)
    return session.run(["descriptors"], {"chips": chips})[0]


@pytest.mark.timeout(180)
def test_onnx_equals_dlib_compute_face_descriptor(models_dir, dlib_models, faces):
    recogniser = dlib_models[2]
    chips = np.stack([chip for *_, chip in faces])
    ours = embed(models_dir, chips)
    reference = np.stack([np.array(recogniser.compute_face_descriptor(chip, 1)) for chip in chips])
    assert ours.shape == (len(faces), 128) and ours.dtype == np.float32
    assert np.abs(ours - reference).max() < TOLERANCE
    # A batch gives the same descriptors as single chips.
    singles = np.concatenate([embed(models_dir, chip[None]) for chip in chips])
    assert np.abs(singles - ours).max() < 1e-5


@pytest.mark.timeout(180)
def test_onnx_equals_face_recognition_encodings(models_dir, faces):
    face_recognition = pytest.importorskip("face_recognition", reason="face_recognition is a test peer")
    for photo, rgb, rect, _, chip in faces:
        location = (rect.top(), rect.right(), rect.bottom(), rect.left())
        [reference] = face_recognition.face_encodings(rgb, known_face_locations=[location], num_jitters=1,
                                                      model="small")
        ours = embed(models_dir, chip[None])[0]
        assert np.abs(ours - reference).max() < TOLERANCE, photo


@pytest.mark.timeout(60)
def test_descriptors_separate_people(models_dir, faces):
    d = {photo: embed(models_dir, chip[None])[0] for photo, *_, chip in faces}
    same = np.linalg.norm(d["obama.jpg"] - d["obama2.jpg"])
    different = min(np.linalg.norm(d["obama.jpg"] - d["biden.jpg"]), np.linalg.norm(d["obama2.jpg"] - d["biden.jpg"]))
    assert same < 0.6 < different


def test_uint8_contract_is_enforced(models_dir):
    session = load_session("face_embedder", models_dir)
    with pytest.raises(Exception, match="(?i)type"):
        session.run(None, {"chips": np.zeros((1, 150, 150, 3), np.float32)})


def test_reader_refuses_damaged_files():
    data = open(frm.face_recognition_model_location(), "rb").read()
    with pytest.raises(DlibFormatError, match="end of file"):
        read_dlib_resnet(data[: len(data) // 2])
    with pytest.raises(DlibFormatError, match="left over"):
        read_dlib_resnet(data + b"\x00")
    with pytest.raises(DlibFormatError):
        read_dlib_resnet(data.replace(b"con_4", b"con_9", 1))


@pytest.mark.timeout(180)
def test_pipeline_embedder_on_pipeline_chips_equals_dlib(models_dir, dlib_models):
    """The chips our pipeline cuts (BlazeFace -> 5-point -> chip) through FaceEmbedder.descriptors of the float
    build: dlib's own network gives the same descriptors on the same chips (the int8 build's distance to the float
    one: tests/models/test_embedder_int8.py)."""
    from edge.biometrics.face import FacePipeline, load_image
    from edge.config import load_config

    pipeline = FacePipeline(load_config(env={"BIOGATE_FACE__EMBEDDER": "float32"}).face, models_dir)
    frames = [load_image(models_dir / "examples" / p) for p in ["obama3.jpg", "obama_partial_face.jpg", "32bit.png"]]
    chips = np.stack([a.aligned.chip for a in pipeline.analyze_many(frames)])
    ours = pipeline.embedder.descriptors(chips)
    reference = np.stack([np.array(dlib_models[2].compute_face_descriptor(chip, 1)) for chip in chips])
    assert np.abs(ours - reference).max() < TOLERANCE
