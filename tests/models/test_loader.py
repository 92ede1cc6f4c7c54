"""edge.models: verified paths, refused tampered or missing files, shared sessions."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge.errors import ModelError
from edge.models import examples_dir, load_session, model_path


def copy_artifact(models_dir: Path, target_dir: Path, file: str) -> Path:
    target = target_dir / file
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(models_dir / file, target)
    return target


def test_verified_path_of_a_built_model(models_dir):
    path = model_path("face_detector", models_dir)
    assert path == (models_dir / "face_detector.onnx").resolve() and path.is_file()


def test_missing_file_is_refused_with_rebuild_hint(tmp_path):
    with pytest.raises(ModelError) as info:
        model_path("face_embedder", tmp_path)
    assert info.value.code == "model.missing"
    assert "make models" in info.value.message


def test_unknown_name_is_refused(models_dir):
    with pytest.raises(ModelError) as info:
        model_path("face_embedder_v2", models_dir)
    assert info.value.code == "model.unknown"


def test_tampered_copy_is_refused(models_dir, tmp_path):
    target = copy_artifact(models_dir, tmp_path, "face_detector.onnx")
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit inside the weights
    target.write_bytes(bytes(data))
    with pytest.raises(ModelError) as info:
        model_path("face_detector", tmp_path)
    assert info.value.code == "model.hash_mismatch"
    assert "make models" in info.value.message
    with pytest.raises(ModelError) as info:
        load_session("face_detector", tmp_path)
    assert info.value.code == "model.hash_mismatch"


def test_a_file_changed_after_verification_is_checked_again(models_dir, tmp_path):
    target = copy_artifact(models_dir, tmp_path, "examples/obama.jpg")
    model_path("examples/obama.jpg", tmp_path)  # verified and remembered
    data = bytearray(target.read_bytes())
    data[-10] ^= 0xFF
    target.write_bytes(bytes(data))
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 1_000_000))
    with pytest.raises(ModelError) as info:
        model_path("examples/obama.jpg", tmp_path)
    assert info.value.code == "model.hash_mismatch"


@pytest.mark.timeout(60)
def test_sessions_are_created_once_and_shared(models_dir):
    one = load_session("face_detector", models_dir, threads=1)
    again = load_session("face_detector", models_dir, threads=1)
    two = load_session("face_detector", models_dir, threads=2)
    assert one is again and two is not one
    assert [i.name for i in one.get_inputs()] == ["input"]
    regressors, scores = one.run(None, {"input": np.zeros((1, 3, 128, 128), np.float32)})
    assert regressors.shape == (1, 896, 16) and scores.shape == (1, 896, 1)
    with pytest.raises(ModelError):
        load_session("face_detector", models_dir, threads=0)


def test_examples_dir(models_dir, tmp_path):
    assert (examples_dir(models_dir) / "obama.jpg").is_file()
    with pytest.raises(ModelError) as info:
        examples_dir(tmp_path)
    assert info.value.code == "model.missing"


def test_the_aligner_refuses_a_tampered_landmark_model(models_dir, tmp_path):
    from edge.biometrics.face.align import Aligner

    Aligner(models_dir)  # the built one loads
    target = copy_artifact(models_dir, tmp_path, "shape_predictor_5_face_landmarks.dat")
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(ModelError) as info:
        Aligner(tmp_path)
    assert info.value.code == "model.hash_mismatch" and "make models" in info.value.message
