"""The model manifest (models/manifest.json): what each artefact is, where it comes from, and its hashes.

Read by the build (models.build, which makes the artefacts) and by the runtime loader (edge.models, which refuses
files whose sha256 differs). This module has no dependency beyond the standard library on purpose.

Schema (version 1):
{
  "schema": 1,
  "artifacts": {
    "<name>": {
      "file": "face_embedder.onnx",           # path relative to the artefacts directory (models/artifacts)
      "kind": "onnx" | "image",
      "sha256": "<64 hex>",                    # of the built file; the build and the loader both check it
      "licence": "CC0-1.0",                    # SPDX identifier of the artefact's licence
      "description": "...",
      "builder": "models.build.dlib_resnet:build",   # module:function that makes the file (see models/build)
      "source": {
        "package": "face_recognition_models", "version": "0.3.0",
        "distribution": "installed" | "wheel" | "sdist" | "repository",   # where the build takes the file from
                                                 # ("repository": `member` is a file committed in this repository)
        "archive": "<file name of the wheel/sdist>",      # wheel/sdist only
        "member": "<path of the source file inside the package/archive>",
        "sha256": "<64 hex of that source file>"
      },
      "contract": { "inputs": [...], "outputs": [...], "notes": "..." }   # free-form but documented
    }
  }
}
Adding a model: add an entry with a builder function in models/build/, run
`.venv/bin/python -m models.build --update-manifest`, review the recorded hashes, commit manifest.json.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_PATH = Path(__file__).resolve().with_name("manifest.json")
# Where `make models` writes the built files (ignored by git) and the runtime reads them by default.
ARTIFACTS_DIR = MANIFEST_PATH.parent / "artifacts"
SCHEMA_VERSION = 1
DISTRIBUTIONS = ("installed", "wheel", "sdist", "repository")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ManifestError(ValueError):
    """manifest.json is missing, unreadable or does not follow the schema."""


@dataclass(frozen=True)
class Source:
    package: str
    version: str
    distribution: str
    member: str
    sha256: str | None
    archive: str | None = None


@dataclass(frozen=True)
class Artifact:
    name: str
    file: str
    kind: str
    sha256: str | None
    licence: str
    description: str
    builder: str
    source: Source
    contract: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    schema: int
    artifacts: dict[str, Artifact]
    path: Path | None = None


def _require(entry: dict, key: str, kind: type, where: str) -> Any:
    if key not in entry:
        raise ManifestError(f"{where}: missing key {key!r}")
    value = entry[key]
    if not isinstance(value, kind):
        raise ManifestError(f"{where}.{key}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _sha(value: Any, where: str, allow_unrecorded: bool) -> str | None:
    if value is None and allow_unrecorded:
        return None
    if not isinstance(value, str) or not _SHA256.match(value):
        raise ManifestError(f"{where}: expected a lowercase 64-hex sha256, got {value!r}")
    return value


def parse_manifest(data: Any, *, allow_unrecorded: bool = False, path: Path | None = None) -> Manifest:
    """Validate the decoded JSON. `allow_unrecorded` lets sha256 be null (only the build's --update-manifest)."""
    if not isinstance(data, dict):
        raise ManifestError("manifest: top level must be an object")
    schema = _require(data, "schema", int, "manifest")
    if schema != SCHEMA_VERSION:
        raise ManifestError(f"manifest: schema {schema} is not supported (expected {SCHEMA_VERSION})")
    raw_artifacts = _require(data, "artifacts", dict, "manifest")
    artifacts: dict[str, Artifact] = {}
    for name, entry in raw_artifacts.items():
        where = f"artifacts[{name!r}]"
        if not isinstance(entry, dict):
            raise ManifestError(f"{where}: must be an object")
        file = _require(entry, "file", str, where)
        if Path(file).is_absolute() or ".." in Path(file).parts:
            raise ManifestError(f"{where}.file: must be a relative path inside the artefacts directory")
        src = _require(entry, "source", dict, where)
        distribution = _require(src, "distribution", str, f"{where}.source")
        if distribution not in DISTRIBUTIONS:
            raise ManifestError(f"{where}.source.distribution: one of {DISTRIBUTIONS}, got {distribution!r}")
        archive = src.get("archive")
        if distribution in ("wheel", "sdist") and not isinstance(archive, str):
            raise ManifestError(f"{where}.source.archive: required for a {distribution}")
        source = Source(
            package=_require(src, "package", str, f"{where}.source"),
            version=_require(src, "version", str, f"{where}.source"),
            distribution=distribution,
            member=_require(src, "member", str, f"{where}.source"),
            sha256=_sha(src.get("sha256"), f"{where}.source.sha256", allow_unrecorded),
            archive=archive,
        )
        artifacts[name] = Artifact(
            name=name,
            file=file,
            kind=_require(entry, "kind", str, where),
            sha256=_sha(entry.get("sha256"), f"{where}.sha256", allow_unrecorded),
            licence=_require(entry, "licence", str, where),
            description=_require(entry, "description", str, where),
            builder=_require(entry, "builder", str, where),
            source=source,
            contract=entry.get("contract", {}),
        )
    files = [a.file for a in artifacts.values()]
    if len(set(files)) != len(files):
        raise ManifestError("manifest: two artefacts share one file")
    return Manifest(schema, artifacts, path)


def load_manifest(path: Path = MANIFEST_PATH, *, allow_unrecorded: bool = False) -> Manifest:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"model manifest not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"model manifest {path} is unreadable: {exc}") from None
    return parse_manifest(data, allow_unrecorded=allow_unrecorded, path=Path(path))
