"""The passive detector: the built ONNX model is the committed classifier, its threshold is the configured
one, it scores real images as the contract says, and `biogate eval pad` reports ISO/IEC 30107-3 rates."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edge.biometrics.liveness.features import FEATURE_VERSION, feature_names
from edge.cli.main import app
from edge.models import load_session, manifest_entry
from models.pad.build import onnx_bytes
from models.pad.classifier import WEIGHTS_PATH, load_weights
from tests.conftest import require_data

ALL_SUBJECTS = [f"000{i}" for i in range(1, 10)]
LIST_SUBJECTS = ",".join(ALL_SUBJECTS)  # the subjects of the small lists the quick tests use
runner = CliRunner()


def test_the_built_model_is_the_committed_classifier(liveness_models_dir):
    clf = load_weights()
    assert clf.feature_version == FEATURE_VERSION and clf.feature_names == feature_names()
    session = load_session("pad_passive", liveness_models_dir)  # through the manifest's sha256 check
    x = np.random.default_rng(0).normal(clf.mean, clf.scale * 2, (64, clf.n_features)).astype(np.float32)
    onnx_scores = session.run(["bona_fide"], {"features": x})[0][:, 0]
    assert np.allclose(onnx_scores, clf.forward(x), atol=1e-5)
    assert ((onnx_scores >= 0) & (onnx_scores <= 1)).all()


def test_the_build_from_the_weights_is_reproducible():
    entry = manifest_entry("pad_passive")
    weights = WEIGHTS_PATH.read_bytes()
    assert hashlib.sha256(weights).hexdigest() == entry.source.sha256
    assert entry.source.distribution == "repository" and entry.source.member == "models/pad/weights.json"
    assert hashlib.sha256(onnx_bytes(weights)).hexdigest() == entry.sha256
    assert entry.contract["inputs"][0]["shape"] == ["N", len(feature_names())]


def test_the_configured_threshold_is_the_trained_one(config):
    weights = json.loads(WEIGHTS_PATH.read_text())
    assert config.liveness.passive_threshold == pytest.approx(weights["threshold"])
    assert weights["provenance"]["train_subjects"] == ALL_SUBJECTS and weights["provenance"]["held_out_subjects"] == []
    # the estimate for unseen people comes from the procedure cross-validated by subject, one split per subject
    assert [split["subject"] for split in weights["evaluation"]["cross_validated"]["splits"]] == ALL_SUBJECTS


@pytest.fixture(scope="module")
def passive(config, liveness_models_dir):
    from edge.biometrics.liveness.geometry import make_locator
    from edge.biometrics.liveness.passive import PassiveDetector

    return PassiveDetector.from_config(config.liveness, liveness_models_dir), make_locator(config, prefer="product")


@pytest.mark.parametrize("name, live", [("image_T1", True), ("image_F1", False), ("image_F2", False)])
def test_silentface_samples_smoke(passive, name, live):
    """image_T1 live, image_F1 a printed photo, image_F2 a screen replay (stored rotated: EXIF orientation)."""
    folder = require_data("pad", "silentface-samples")
    detector, locator = passive
    image = cv2.imread(str(folder / f"{name}.jpg"), cv2.IMREAD_COLOR)  # applies the EXIF rotation
    geometry = locator.locate(image)
    assert geometry is not None
    assert detector.is_live(detector.score(image, geometry)) is live


def _lists(tmp_path: Path, per_class: int) -> tuple[Path, Path]:
    """Lists of the first images of each of LIST_SUBJECTS, in a temp folder (paths back to the data)."""
    nuaa = require_data("pad", "nuaa")
    out = []
    for kind in ("live", "attack"):
        lines = [line for line in (nuaa / f"{kind}.txt").read_text().splitlines() if line.strip()]
        chosen = []
        for subject in LIST_SUBJECTS.split(","):
            chosen += [str(nuaa / line) for line in lines if line.split("/")[1] == subject][:per_class]
        path = tmp_path / f"{kind}.txt"
        path.write_text("\n".join(chosen) + "\n")
        out.append(path)
    return out[0], out[1]


def one_json_line(stdout: str) -> dict:
    lines = stdout.strip().splitlines()
    assert len(lines) == 1, stdout
    return json.loads(lines[0])


@pytest.mark.timeout(180)
def test_eval_pad_json_contract(tmp_path, liveness_models_dir):
    live, attack = _lists(tmp_path, 3)
    result = runner.invoke(app, ["eval", "pad", "--live", str(live), "--attack", str(attack), "--json"],
                           env={"BIOGATE_CONFIG": ""})
    assert result.exit_code == 0, result.output
    report = one_json_line(result.stdout)
    assert list(report) == ["apcer", "bpcer", "bpcer20", "live", "attack"]
    assert report["live"] == 27 and report["attack"] == 27
    assert all(0.0 <= report[k] <= 1.0 for k in ("apcer", "bpcer", "bpcer20"))

    text = runner.invoke(app, ["eval", "pad", "--live", str(live), "--attack", str(attack), "--subjects", "0008"],
                         env={"BIOGATE_CONFIG": ""})
    assert text.exit_code == 0 and "BPCER20" in text.stdout and "on 3 live and 3 attack images" in text.stdout


def test_eval_pad_errors_are_clean(tmp_path, liveness_models_dir):
    missing = runner.invoke(app, ["eval", "pad", "--live", str(tmp_path / "nope.txt"), "--attack",
                                  str(tmp_path / "nope.txt"), "--json"], env={"BIOGATE_CONFIG": ""})
    assert missing.exit_code == 2 and one_json_line(missing.stdout)["error"]["code"] == "input.bad_list"
    live = tmp_path / "live.txt"
    live.write_text("no_such_image.jpg\n")
    unreadable = runner.invoke(app, ["eval", "pad", "--live", str(live), "--attack", str(live), "--json"],
                               env={"BIOGATE_CONFIG": ""})
    assert unreadable.exit_code == 2 and one_json_line(unreadable.stdout)["error"]["code"] == "input.unreadable_image"
    empty = runner.invoke(app, ["eval", "pad", "--live", str(live), "--attack", str(live), "--subjects", "0042",
                                "--json"], env={"BIOGATE_CONFIG": ""})
    assert empty.exit_code == 2 and one_json_line(empty.stdout)["error"]["code"] == "input.empty_list"


@pytest.mark.timeout(240)
def test_cross_validation_quick_subset(tmp_path, liveness_models_dir):
    """CI's subset of the cross-validated measurement: the nine subjects, their first 30 images of each kind (0002
    has 21 live), one candidate. Every split leaves one subject out and is scored at the threshold its own training
    chose. The bounds are regression bounds at the figures measured on this subset (APCER 3.3 %, BPCER 10.3 %,
    BPCER20 7.7 %; one subject's live images mostly refused), looser than the full run's targets: with fewer images
    per person the thresholds move (with three training subjects a split refused all of 0008's live images)."""
    live, attack = _lists(tmp_path, 30)
    result = runner.invoke(app, ["eval", "pad", "--live", str(live), "--attack", str(attack), "--cross-validate",
                                 "--models", "logreg_C0.01", "--json"], env={"BIOGATE_CONFIG": ""})
    assert result.exit_code == 0, result.output
    report = one_json_line(result.stdout)
    print(f"\n  cross-validated on {LIST_SUBJECTS}, 30 + 30 images each: {report}")
    assert report["protocol"] == "leave-one-subject-out" and report["live"] == 261 and report["attack"] == 270
    assert [s["subject"] for s in report["splits"]] == LIST_SUBJECTS.split(",")
    assert all(s["model"] == "logreg_C0.01" and s["attack"] == 30 for s in report["splits"])
    assert len({s["threshold"] for s in report["splits"]}) == 9   # nine trainings, nine thresholds
    assert report["apcer"] <= 0.10 and report["bpcer"] <= 0.15 and report["bpcer20"] <= 0.15
    bad = runner.invoke(app, ["eval", "pad", "--live", str(live), "--attack", str(attack), "--cross-validate",
                              "--models", "svm", "--json"], env={"BIOGATE_CONFIG": ""})
    assert bad.exit_code == 2 and one_json_line(bad.stdout)["error"]["code"] == "input.bad_option"


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_cross_validated_rates_meet_the_targets(liveness_models_dir):
    """The 'done when' figures (issue 15): leave-one-subject-out over all nine NUAA subjects, the whole training
    procedure per split, through the CLI: BPCER20 <= 5 %, and at the chosen thresholds APCER <= 10 %, BPCER <= 5 %."""
    nuaa = require_data("pad", "nuaa")
    result = runner.invoke(app, ["eval", "pad", "--live", str(nuaa / "live.txt"), "--attack", str(nuaa / "attack.txt"),
                                 "--cross-validate", "--json"], env={"BIOGATE_CONFIG": ""})
    assert result.exit_code == 0, result.output
    report = one_json_line(result.stdout)
    print(f"\n  NUAA, leave-one-subject-out: {report}")
    assert [s["subject"] for s in report["splits"]] == ALL_SUBJECTS
    assert report["live"] == 700 and report["attack"] == 700
    assert report["bpcer20"] <= 0.05 and report["apcer"] <= 0.10 and report["bpcer"] <= 0.05


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_training_reproduces_the_committed_weights(tmp_path):
    """`python -m models.pad.train` with the defaults writes the committed weights.json: the same model, data,
    threshold and evaluation (the library versions it records are those of the machine that ran it)."""
    import json

    from models.pad.train import main

    nuaa = require_data("pad", "nuaa")
    out = tmp_path / "weights.json"
    assert main(["--data", str(nuaa), "--out", str(out)]) == 0
    made, committed = json.loads(out.read_text()), json.loads(WEIGHTS_PATH.read_text())
    for record in (made, committed):
        record["provenance"].pop("versions")
    assert made == committed
