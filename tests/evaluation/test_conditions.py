"""Capture conditions (edge.evaluation.conditions) and `biogate eval faces --condition` on LFW development pairs.

The quick subset (100 pairs of fold 1 per condition) runs in CI and asserts the figures it measures; the full
development set (3,000 pairs) is `slow` and checks the issue's targets."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.errors import InputError
from edge.evaluation.conditions import FRAME_H, FRAME_W, LFW_FACE_PX, parse_condition, parse_conditions
from tests.conftest import require_data

REPO = Path(__file__).resolve().parents[2]


def lfw_image() -> np.ndarray:
    from edge.biometrics.face.image import load_image

    images = require_data("faces", "lfw", "images")
    return load_image(sorted(images.glob("*/*_0001.jpg"))[0])


def test_names_aliases_and_levels():
    assert [c.canonical for c in parse_conditions("clean,face50,low_light,jpeg12,motion_blur")] == [
        "clean", "face50", "dark20", "jpeg12", "motion9"]
    for bad in ("fog", "face", "jpeg0", "dark101", "face5"):
        with pytest.raises(InputError) as err:
            parse_condition(bad)
        assert err.value.code == "input.bad_condition"
    with pytest.raises(InputError):
        parse_conditions(" , ")


def test_face_in_frame_has_the_asked_size_at_a_seeded_place():
    image = lfw_image()
    frame = parse_condition("face50").degrade(image, 7)
    assert frame.shape == (FRAME_H, FRAME_W, 3) and frame.dtype == np.uint8
    assert np.array_equal(frame, parse_condition("face50").degrade(image, 7))    # the same frame every run
    assert not np.array_equal(frame, parse_condition("face50").degrade(image, 8))
    # the pasted image is 250 * 50 / LFW_FACE_PX px wide: find it as the region equal to the resized image
    side = round(250 * 50 / LFW_FACE_PX)
    import cv2

    small = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
    hit = cv2.matchTemplate(frame, small, cv2.TM_SQDIFF)
    assert hit.min() < 1.0   # exactly there (up to float rounding)


def test_dark_keeps_a_share_of_the_light_and_adds_noise():
    image = lfw_image()
    dim = parse_condition("low_light").degrade(image, 1)
    assert 0.35 < dim.mean() / image.mean() < 0.65          # 20 % of the light, gamma-encoded: about half the level
    flat = np.full((100, 100, 3), 128, np.uint8)
    assert parse_condition("dark20").degrade(flat, 1).std() > 1.0   # sensor noise, not a plain scaling


def test_motion_blur_is_horizontal_only():
    image = lfw_image().astype(np.float64)
    smeared = parse_condition("motion15").degrade(image.astype(np.uint8), 0).astype(np.float64)
    dx = lambda a: np.abs(np.diff(a, axis=1)).mean()  # noqa: E731
    dy = lambda a: np.abs(np.diff(a, axis=0)).mean()  # noqa: E731
    assert dx(smeared) < 0.6 * dx(image) and dy(smeared) > 0.6 * dy(image)


def run_conditions(pairs: Path, images: Path, conditions: str, timeout: int) -> dict:
    env = {**os.environ, "BIOGATE_PATHS__DATA_DIR": str(images.parents[2])}
    result = subprocess.run([sys.executable, "-m", "edge.cli.main", "eval", "faces", "--pairs", str(pairs),
                             "--images", str(images), "--condition", conditions, "--json"],
                            capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    return {r["condition"]: r for r in json.loads(result.stdout)["conditions"]}


@pytest.mark.timeout(1500)
def test_quick_subset_per_condition(tmp_path):
    """100 pairs of development fold 1 (50 same, 50 different) under each condition: the figures measured."""
    pairs_file = require_data("faces", "lfw", "pairs.txt")
    images = require_data("faces", "lfw", "images")
    fold1 = pairs_file.read_text().splitlines()[1:601]
    subset = tmp_path / "pairs.txt"
    subset.write_text("1\t50\n" + "\n".join(fold1[:50] + fold1[300:350]) + "\n")
    reports = run_conditions(subset, images, "clean,face50,face75,low_light,jpeg12,motion_blur", 1400)
    for name, r in reports.items():
        assert r["pairs"] == 100 and r["probes"] >= 90, name
        # full range (and its tiles) finds small faces; heavy JPEG and low light may lose one or two of ~95
        assert r["face_found"] >= (0.95 if name in ("jpeg12", "low_light") else 0.98), (name, r)
        # one fold in this file: its errors are every wrong decision (failures to acquire included)
        assert r["errors_by_fold"] == {"1": round((1 - r["accuracy"]) * 100)}, (name, r)
    assert reports["clean"]["accuracy"] >= 0.98
    assert reports["face75"]["accuracy"] >= 0.96
    for name in ("low_light", "jpeg12", "motion_blur"):
        assert reports[name]["accuracy"] >= reports["clean"]["accuracy"] - 0.03, (name, reports[name])
    # the gates: small faces are refused for their size (the terminal prompts "move closer"), clean ones are not
    assert reports["face50"]["findings"].get("quality.face_too_small", 0) > 0.5 * reports["face50"]["probes"]
    assert reports["clean"]["findings"].get("quality.face_too_small", 0) == 0
    # what the product decides on is what the gates accept: most 50 px faces get a prompt, not a decision
    assert reports["face50"]["pairs_decided"] < 0.5 * reports["face50"]["pairs"]
    assert reports["clean"]["pairs_decided"] > 0.9 * reports["clean"]["pairs"]
    assert reports["clean"]["accuracy_decided"] >= 0.98


@pytest.fixture(scope="module")
def all_pairs():
    pairs_file = require_data("faces", "lfw", "pairs.txt")
    images = require_data("faces", "lfw", "images")
    return run_conditions(pairs_file, images, "clean,face50,face75,low_light,jpeg12,motion_blur", 4 * 3600 - 60)


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)
def test_development_pairs_distant_faces_are_found(all_pairs):
    """The issue's 50 px target on all 3,000 development pairs (99.91 % found, 2026-12-02 19:19-19:33 UTC)."""
    assert all_pairs["face50"]["face_found"] >= 0.99


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)
def test_development_pairs_75px_faces_keep_their_accuracy(all_pairs):
    """The issue's face75 target on all 3,000 development pairs (98.63 % since the confident face is chosen over a
    larger unsure one; 98.20 % before; measured 2026-12-03)."""
    assert all_pairs["face75"]["accuracy"] >= 0.985


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)
def test_development_pairs_degraded_faces_are_restored(all_pairs):
    """Denoising and brightening, deblocking and motion deblurring (edge.biometrics.face.restore) on all 3,000
    pairs, 2026-12-03, float embedder: low light 96.83 -> 98.47 %, JPEG q12 97.50 -> 97.93 %, motion blur 97.03 ->
    98.13 %, clean 99.07 % (unchanged). With the int8 embedder shipped since: clean 99.10 %, low light 98.37 %, JPEG
    q12 97.90 %, motion blur 98.17 %; each within 1.25 points of clean (2.2 / 1.6 / 2.0 before the restoration).
    With the network fine-tuned for deblocked faces (models/restored, 2026-12-04): JPEG q12 98.30 %, 31 errors on
    folds 3-5 (which neither the restoration's constants nor that network saw) against 19 clean."""
    clean = all_pairs["clean"]["accuracy"]
    assert clean >= 0.990
    for name in ("low_light", "jpeg12", "motion_blur"):
        assert all_pairs[name]["accuracy"] >= clean - 0.0125, (name, all_pairs[name])
    assert all_pairs["jpeg12"]["accuracy"] >= clean - 0.0095, all_pairs["jpeg12"]
    unseen = sum(all_pairs["jpeg12"]["errors_by_fold"][f] for f in ("3", "4", "5"))
    assert unseen <= 35, all_pairs["jpeg12"]["errors_by_fold"]  # 40 with the main network alone (float), 31 measured
    assert all_pairs["low_light"]["failures_to_acquire"] <= 10  # 32 before denoising, 5 measured


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)
@pytest.mark.xfail(strict=True, reason="issue 18 target not reached: on all 3,000 pairs low light, JPEG q12 and motion "
                                       "blur cost 0.73 / 0.80 / 0.93 points after restoration against the 0.5 allowed "
                                       "(int8 embedder, the fine-tuned network for deblocked faces), measured "
                                       "2026-12-04 (MODEL_CARD, Capture conditions)")
def test_development_pairs_degraded_within_half_a_point(all_pairs):
    for name in ("low_light", "jpeg12", "motion_blur"):
        assert all_pairs[name]["accuracy"] >= all_pairs["clean"]["accuracy"] - 0.005, (name, all_pairs[name])
