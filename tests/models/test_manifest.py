"""The committed manifest is well-formed, and the build enforces its hashes."""
from __future__ import annotations

import ast
import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from models.build import pipeline
from models.build.pipeline import BuildError
from models.manifest import MANIFEST_PATH, ManifestError, load_manifest, parse_manifest

EXPECTED_LICENCES = {"face_embedder": "CC0-1.0", "face_detector": "Apache-2.0", "face_landmarks_5": "CC0-1.0"}


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


# The runtime path: every module of the product's packages, except the benchmark peers. Peers (reference systems
# such as face_recognition) may load anything, but only when a bench/eval command imports them inside a function.
RUNTIME_PACKAGES = ["edge", "drivers", "simulator", "firmware-bridge"]
PEERS_PACKAGE = "edge/evaluation/peers"
PEERS_MODULE = "edge.evaluation.peers"
# `import face_recognition` loads the 68-point predictor (trained on iBUG 300-W: non-commercial), so it is
# forbidden on the runtime path as well as the model file itself and face_recognition_models' locator for it.
FORBIDDEN_MODULE = "face_recognition"
FORBIDDEN_LOCATOR = "pose_predictor_model_location"
FORBIDDEN_FILE = "shape_predictor_68"


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _module_level(tree: ast.Module):
    """Statements executed when the module is imported (top level, including inside if/try/with blocks)."""
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            todo.extend(ast.iter_child_nodes(node))
        elif isinstance(node, ast.ClassDef):  # a class body runs at import time too
            todo.extend(n for n in node.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))


def _imported_names(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return []


def _is_module(name: str, module: str) -> bool:
    return name == module or name.startswith(module + ".")


def runtime_offenders(repo: Path) -> list[str]:
    """Where runtime code could load the 68-point model: imports of face_recognition (statements or by name
    string), the 68-point file or its locator, and peers imported at module load time."""
    offenders = []
    for package in RUNTIME_PACKAGES:
        for source in sorted((repo / package).rglob("*.py")):
            rel = source.relative_to(repo).as_posix()
            if rel.startswith(PEERS_PACKAGE + "/"):
                continue
            tree = ast.parse(source.read_text(encoding="utf-8", errors="replace"), filename=rel)
            docstrings = _docstrings(tree)
            for node in ast.walk(tree):
                if any(_is_module(n, FORBIDDEN_MODULE) for n in _imported_names(node)):
                    offenders.append(f"{rel}:{node.lineno}: imports {FORBIDDEN_MODULE}")
                elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                    if node.value == FORBIDDEN_MODULE or FORBIDDEN_FILE in node.value:
                        offenders.append(f"{rel}:{node.lineno}: names {node.value!r}")
                elif isinstance(node, (ast.Attribute, ast.Name)) and FORBIDDEN_LOCATOR in (
                        getattr(node, "attr", None), getattr(node, "id", None)):
                    offenders.append(f"{rel}:{node.lineno}: uses {FORBIDDEN_LOCATOR}")
            for node in _module_level(tree):
                if any(_is_module(n, PEERS_MODULE) for n in _imported_names(node)):
                    offenders.append(f"{rel}:{node.lineno}: imports a benchmark peer at module load time")
    return offenders


def test_no_runtime_path_loads_the_68_point_model():
    offenders = runtime_offenders(MANIFEST_PATH.parent.parent)
    assert not offenders, f"runtime code must not load the non-commercial 68-point model: {offenders}"


def test_runtime_path_check_catches_every_kind_of_offence(tmp_path):
    def write(rel: str, text: str) -> None:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    write("edge/a.py", "import face_recognition\n")
    write("edge/b.py", "def f():\n    from face_recognition.api import face_encodings\n")
    write("edge/c.py", "import importlib\nm = importlib.import_module('face_recognition')\n")
    write("drivers/d.py", "P = 'models/shape_predictor_68_face_landmarks.dat'\n")
    write("simulator/e.py", "import face_recognition_models as m\np = m.pose_predictor_model_location()\n")
    write("edge/cli/f.py", "try:\n    from edge.evaluation.peers.face_recognition_peer import Peer\nexcept ImportError:\n    pass\n")
    # Allowed: peers themselves, lazy peer imports, the 5-point model, and docstrings that explain the rule.
    write("edge/evaluation/peers/p.py", "import face_recognition\n")
    write("edge/cli/g.py", '"""Never import face_recognition or shape_predictor_68 here."""\n'
                           "import face_recognition_models as m\n"
                           "def bench():\n    from edge.evaluation.peers import p\n"
                           "    return m.pose_predictor_five_point_model_location()\n")
    found = runtime_offenders(tmp_path)
    assert sorted(f.split(":")[0] for f in found) == [
        "drivers/d.py", "edge/a.py", "edge/b.py", "edge/c.py", "edge/cli/f.py", "simulator/e.py"], found


@pytest.mark.timeout(120)
def test_the_cli_and_the_face_pipeline_do_not_import_face_recognition(models_dir):
    """The same rule, observed: load the CLI and run the face pipeline, then look at what got imported."""
    code = ("import sys\n"
            "import edge.cli.main\n"
            "from edge.config import load_config\n"
            "from edge.biometrics.face import FacePipeline, load_image\n"
            "cfg = load_config(env={})\n"
            f"p = FacePipeline(cfg.face, {str(models_dir)!r})\n"
            f"assert p.analyze(load_image({str(models_dir / 'examples' / 'obama.jpg')!r})).acquired\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'face_recognition' "
            "or m.startswith('edge.evaluation.peers')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=110,
                         cwd=MANIFEST_PATH.parent.parent)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


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


@pytest.mark.timeout(120)
def test_an_edited_repository_source_is_noticed_even_when_the_artefact_is_up_to_date(tmp_path):
    """models/pad/weights.json edited (retrained) without recording it: the ONNX still matches the manifest, but it
    was built from the old weights, so the build must say so instead of calling it up to date."""
    entry = copy.deepcopy(raw_manifest()["artifacts"]["pad_passive"])
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"schema": 1, "artifacts": {"pad_passive": entry}}), encoding="utf-8")
    out = tmp_path / "out"
    assert [o.status for o in pipeline.run(manifest_path=path, out_dir=out)] == ["built"]
    assert [o.status for o in pipeline.run(manifest_path=path, out_dir=out)] == ["up to date"]
    entry["source"]["sha256"] = "0" * 64          # what the manifest says no longer matches the committed weights
    path.write_text(json.dumps({"schema": 1, "artifacts": {"pad_passive": entry}}), encoding="utf-8")
    with pytest.raises(BuildError, match="source .* has sha256"):
        pipeline.run(manifest_path=path, out_dir=out)
