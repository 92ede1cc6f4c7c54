"""The committed manifest is well-formed, and the build enforces its hashes."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from models.build import pipeline
from models.build.pipeline import BuildError
from models.manifest import MANIFEST_PATH, ManifestError, load_manifest, parse_manifest

EXPECTED_LICENCES = {"face_embedder": "CC0-1.0", "face_detector": "Apache-2.0"}


def raw_manifest() -> dict:
    return json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))


def test_committed_manifest_is_complete():
    manifest = load_manifest()  # rejects null hashes
    assert {"face_embedder", "face_detector", "examples/obama.jpg", "examples/biden.jpg"} <= set(manifest.artifacts)
    for name, licence in EXPECTED_LICENCES.items():
        assert manifest.artifacts[name].licence == licence
    for artifact in manifest.artifacts.values():
        assert artifact.builder.startswith("models.build.")
        assert artifact.source.sha256 and artifact.sha256
        if artifact.kind == "onnx":
            assert artifact.contract["inputs"] and artifact.contract["outputs"]
        if artifact.kind == "image":
            assert artifact.licence == "MIT" and artifact.file.startswith("examples/")
    # The non-commercial 68-point landmark model must never become a runtime artefact.
    assert not [a.name for a in manifest.artifacts.values() if "68" in a.source.member]


RUNTIME_PACKAGES = ["edge", "drivers", "simulator", "firmware-bridge"]
# The 68-point predictor is trained on iBUG 300-W (non-commercial); `import face_recognition` loads it too.
FORBIDDEN_IN_RUNTIME = ["shape_predictor_68", "pose_predictor_model_location", "import face_recognition\n",
                        "from face_recognition import", "import face_recognition as"]


def test_no_runtime_path_loads_the_68_point_model():
    repo = MANIFEST_PATH.parent.parent
    offenders = []
    for package in RUNTIME_PACKAGES:
        for source in sorted((repo / package).rglob("*.py")):
            text = source.read_text(encoding="utf-8", errors="replace")
            offenders += [f"{source.relative_to(repo)}: {word.strip()}" for word in FORBIDDEN_IN_RUNTIME
                          if word in text]
    assert not offenders, f"runtime code must not load the non-commercial 68-point model: {offenders}"


def test_detector_contract_carries_the_anchor_options():
    anchors = load_manifest().artifacts["face_detector"].contract["anchors"]
    assert anchors["strides"] == [8, 16, 16, 16]
    assert anchors["input_size_height"] == anchors["input_size_width"] == 128
    per_layer = [(128 // s) ** 2 * 2 for s in anchors["strides"]]
    assert sum(per_layer) == 896


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(schema=2), "schema 2"),
    (lambda d: d["artifacts"]["face_embedder"].pop("file"), "missing key 'file'"),
    (lambda d: d["artifacts"]["face_embedder"].update(sha256="ABC"), "64-hex"),
    (lambda d: d["artifacts"]["face_embedder"].update(file="../../etc/passwd"), "relative path"),
    (lambda d: d["artifacts"]["face_embedder"]["source"].update(distribution="ftp"), "distribution"),
    (lambda d: d["artifacts"]["face_detector"]["source"].pop("archive"), "archive"),
    (lambda d: d["artifacts"]["face_detector"].update(file="face_embedder.onnx"), "share one file"),
])
def test_malformed_manifests_are_refused(mutate, message):
    data = copy.deepcopy(raw_manifest())
    mutate(data)
    with pytest.raises(ManifestError, match=message):
        parse_manifest(data)


def test_unrecorded_hashes_are_only_allowed_for_update():
    data = copy.deepcopy(raw_manifest())
    data["artifacts"]["face_embedder"]["sha256"] = None
    with pytest.raises(ManifestError):
        parse_manifest(data)
    assert parse_manifest(data, allow_unrecorded=True).artifacts["face_embedder"].sha256 is None


def _one_example_manifest(tmp_path: Path, **changes) -> Path:
    """A manifest holding only examples/biden.jpg (its sdist is in the build cache after `make models`)."""
    entry = copy.deepcopy(raw_manifest()["artifacts"]["examples/biden.jpg"])
    for key, value in changes.items():
        if key == "source_sha256":
            entry["source"]["sha256"] = value
        else:
            entry[key] = value
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"schema": 1, "artifacts": {"examples/biden.jpg": entry}}), encoding="utf-8")
    return path


@pytest.mark.timeout(120)
def test_build_is_idempotent_and_checks_hashes(tmp_path, models_dir):
    manifest_path = _one_example_manifest(tmp_path)
    out = tmp_path / "out"
    first = pipeline.run(manifest_path=manifest_path, out_dir=out)
    second = pipeline.run(manifest_path=manifest_path, out_dir=out)
    assert [o.status for o in first] == ["built"] and [o.status for o in second] == ["up to date"]
    assert (out / "examples" / "biden.jpg").read_bytes() == (models_dir / "examples" / "biden.jpg").read_bytes()

    wrong = "0" * 64
    with pytest.raises(BuildError, match="source .* has sha256"):
        pipeline.run(manifest_path=_one_example_manifest(tmp_path, source_sha256=wrong), out_dir=tmp_path / "o2")
    with pytest.raises(BuildError, match="the build produced sha256"):
        pipeline.run(manifest_path=_one_example_manifest(tmp_path, sha256=wrong), out_dir=tmp_path / "o3")
    assert not (tmp_path / "o3" / "examples" / "biden.jpg").exists()  # nothing written on a mismatch

    # --update-manifest records the real hash deliberately.
    manifest_path = _one_example_manifest(tmp_path, sha256=None)
    outcomes = pipeline.run(manifest_path=manifest_path, out_dir=tmp_path / "o4", update=True)
    assert outcomes[0].recorded == {"sha256": raw_manifest()["artifacts"]["examples/biden.jpg"]["sha256"]}
    assert load_manifest(manifest_path).artifacts["examples/biden.jpg"].sha256 == outcomes[0].recorded["sha256"]


def test_builders_must_live_in_models_build():
    with pytest.raises(BuildError, match="models.build"):
        pipeline.resolve_builder("os:system")
