"""The build steps for every artefact of the manifest (see models/build/__init__.py)."""
from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from models.build.sources import SourceError, source_bytes
from models.manifest import ARTIFACTS_DIR, MANIFEST_PATH, Artifact, ManifestError, load_manifest

MODELS_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT_DIR = ARTIFACTS_DIR
DEFAULT_CACHE_DIR = MODELS_ROOT / ".cache"
REBUILD_HINT = "`make models` or `.venv/bin/python -m models.build`"

# A builder turns the verified source bytes into the artefact's bytes; it must be deterministic.
Builder = Callable[[bytes, Artifact], bytes]


class BuildError(RuntimeError):
    """The build cannot produce an artefact that matches the manifest."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_builder(spec: str) -> Builder:
    module_name, _, func_name = spec.partition(":")
    if not module_name.startswith("models.build.") or not func_name:
        raise BuildError(f"builder {spec!r} must be 'models.build.<module>:<function>'")
    try:
        return getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise BuildError(f"builder {spec!r} cannot be loaded: {exc}") from None


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; artefacts are plain readable files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class Outcome:
    name: str
    status: str          # "up to date" | "built"
    seconds: float
    recorded: dict[str, str]  # manifest fields changed under --update-manifest: field -> new sha256


def _repository_source_changed(artifact: Artifact) -> bool:
    """A source committed in this repository (trained weights) can be edited under an artefact that still matches
    the manifest; reading it is cheap, so it is checked on every build (downloaded sources are pinned by version)."""
    if artifact.source.distribution != "repository":
        return False
    try:
        return sha256_bytes(source_bytes(artifact.source, Path("."))) != artifact.source.sha256
    except SourceError:
        return True      # missing: the build below says so


def build_artifact(artifact: Artifact, *, out_dir: Path, downloads: Path, update: bool, force: bool) -> Outcome:
    start = time.perf_counter()
    target = out_dir / artifact.file
    if (not force and artifact.sha256 and target.is_file() and sha256_file(target) == artifact.sha256
            and not _repository_source_changed(artifact)):
        return Outcome(artifact.name, "up to date", time.perf_counter() - start, {})

    recorded: dict[str, str] = {}
    try:
        source = source_bytes(artifact.source, downloads)
    except SourceError as exc:
        raise BuildError(f"{artifact.name}: {exc}") from None
    source_sha = sha256_bytes(source)
    if source_sha != artifact.source.sha256:
        if not update:
            raise BuildError(
                f"{artifact.name}: source {artifact.source.package}=={artifact.source.version}:{artifact.source.member} "
                f"has sha256 {source_sha}, the manifest expects {artifact.source.sha256}. The upstream file changed "
                f"or is corrupt; check it, then rerun with --update-manifest to accept it deliberately.")
        recorded["source.sha256"] = source_sha

    output = resolve_builder(artifact.builder)(source, artifact)
    output_sha = sha256_bytes(output)
    if output_sha != artifact.sha256:
        if not update:
            raise BuildError(
                f"{artifact.name}: the build produced sha256 {output_sha}, the manifest expects {artifact.sha256}. "
                f"A converter or tool version differs from the one that made the manifest (see the build extra in "
                f"pyproject.toml). Nothing was written; rerun with --update-manifest to accept the new output "
                f"deliberately.")
        recorded["sha256"] = output_sha
    _atomic_write(target, output)
    return Outcome(artifact.name, "built", time.perf_counter() - start, recorded)


def _record_hashes(manifest_path: Path, outcomes: list[Outcome]) -> None:
    """Write new hashes into manifest.json, leaving every other byte of each entry as it was."""
    data = json.loads(manifest_path.read_text(encoding="utf-8"))
    for outcome in outcomes:
        entry = data["artifacts"][outcome.name]
        for field_path, value in outcome.recorded.items():
            if field_path == "source.sha256":
                entry["source"]["sha256"] = value
            else:
                entry["sha256"] = value
    manifest_path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def run(*, manifest_path: Path = MANIFEST_PATH, out_dir: Path = DEFAULT_OUT_DIR,
        cache_dir: Path = DEFAULT_CACHE_DIR, update: bool = False, force: bool = False,
        only: list[str] | None = None) -> list[Outcome]:
    manifest = load_manifest(manifest_path, allow_unrecorded=update)
    names = list(manifest.artifacts)
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise BuildError(f"unknown artefact(s) {unknown}; the manifest lists {names}")
        names = [n for n in names if n in only]
    outcomes = []
    for name in names:
        outcome = build_artifact(manifest.artifacts[name], out_dir=out_dir, downloads=cache_dir / "downloads",
                                 update=update, force=force)
        print(f"  {name:32s} {outcome.status:10s} {outcome.seconds * 1000:8.0f} ms", flush=True)
        outcomes.append(outcome)
    changed = [o for o in outcomes if o.recorded]
    if changed:
        _record_hashes(manifest_path, changed)
        for o in changed:
            print(f"  recorded in {manifest_path.name}: {o.name} {o.recorded}")
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.build", description=__doc__)
    parser.add_argument("--update-manifest", action="store_true",
                        help="record new source/output sha256 values in manifest.json instead of failing")
    parser.add_argument("--force", action="store_true", help="rebuild even when the output is up to date")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="build only these artefacts")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    args = parser.parse_args(argv)
    print(f"models: building into {args.out_dir}", flush=True)
    try:
        run(out_dir=args.out_dir, cache_dir=args.cache_dir, update=args.update_manifest, force=args.force,
            only=args.only)
    except (BuildError, ManifestError) as exc:
        print(f"models: build failed: {exc}", flush=True)
        return 1
    return 0
