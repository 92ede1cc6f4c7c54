"""The one place edge loads model artefacts: look them up in models/manifest.json, check their sha256, and hand
out onnxruntime sessions that are created once and shared.

    path = model_path("face_embedder", config.paths.models_dir)      # verified file
    session = load_session("face_embedder", config.paths.models_dir, threads=config.face.threads)
    photos = examples_dir(config.paths.models_dir)                    # bundled example images

The manifest is always the committed one shipped with the `models` package (never a copy next to the
artefacts), so a replaced model file cannot come with its own matching hash. Errors are `ModelError` with codes
`model.unknown` (name not in the manifest), `model.missing`, `model.hash_mismatch`, `model.invalid` (manifest
or ONNX file unusable).
"""
from __future__ import annotations

import hashlib
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from edge.errors import ModelError
from models.manifest import ARTIFACTS_DIR, MANIFEST_PATH, Artifact, Manifest, ManifestError, load_manifest

if TYPE_CHECKING:  # onnxruntime is imported lazily: the hash checks need no ML runtime
    import onnxruntime

DEFAULT_MODELS_DIR = ARTIFACTS_DIR   # paths.models_dir unless configured otherwise
REBUILD_HINT = "rebuild the models with `make models` (or `.venv/bin/python -m models.build`)"
EXAMPLES_SUBDIR = "examples"

_lock = threading.Lock()
# (resolved path) -> (mtime_ns, size, sha256 that was verified); re-hashed only when the file changes.
_verified: dict[Path, tuple[int, int, str]] = {}
# (name, resolved path, threads) -> session
_sessions: dict[tuple[str, Path, int], "onnxruntime.InferenceSession"] = {}


@lru_cache(maxsize=4)
def _manifest(path: Path) -> Manifest:
    try:
        return load_manifest(path)
    except ManifestError as exc:
        raise ModelError(str(exc), code="model.invalid") from None


def manifest_entry(name: str, manifest_path: Path = MANIFEST_PATH) -> Artifact:
    manifest = _manifest(Path(manifest_path))
    try:
        return manifest.artifacts[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; the manifest lists {sorted(manifest.artifacts)}",
                         code="model.unknown", details={"model": name}) from None


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_path(name: str, models_dir: Path, *, manifest_path: Path = MANIFEST_PATH) -> Path:
    """The artefact's file under `models_dir`, after checking it exists and its sha256 equals the manifest's.

    The hash is computed once per (path, mtime, size) and remembered, so repeated calls cost a stat().
    """
    entry = manifest_entry(name, manifest_path)
    path = (Path(models_dir) / entry.file).resolve()
    details = {"model": name, "path": str(path)}
    try:
        stat = path.stat()
    except OSError:
        raise ModelError(f"model {name!r} is missing: {path} does not exist; {REBUILD_HINT}",
                         code="model.missing", details=details) from None
    if not path.is_file():
        raise ModelError(f"model {name!r} is missing: {path} is not a file; {REBUILD_HINT}",
                         code="model.missing", details=details)
    stamp = (stat.st_mtime_ns, stat.st_size)
    with _lock:
        known = _verified.get(path)
    if known is not None and known == (*stamp, entry.sha256):
        return path
    try:
        actual = _sha256_file(path)
    except OSError as exc:
        raise ModelError(f"model {name!r} cannot be read ({exc}); {REBUILD_HINT}",
                         code="model.missing", details=details) from None
    if actual != entry.sha256:
        with _lock:
            _verified.pop(path, None)
        raise ModelError(
            f"model {name!r} at {path} does not match the manifest (sha256 {actual[:12]}..., expected "
            f"{entry.sha256[:12]}...): it was modified or built by other tools; {REBUILD_HINT}",
            code="model.hash_mismatch", details={**details, "sha256": actual, "expected": entry.sha256})
    with _lock:
        _verified[path] = (*stamp, entry.sha256)
    return path


def load_session(name: str, models_dir: Path, threads: int = 1, *,
                 manifest_path: Path = MANIFEST_PATH) -> "onnxruntime.InferenceSession":
    """A shared onnxruntime CPU session for the artefact: one per (name, path, threads), created on first use.

    The file is re-verified on every call (cheap when unchanged), so a file replaced after start-up is refused
    rather than silently served from the old session.
    """
    if not isinstance(threads, int) or threads < 1:
        raise ModelError(f"threads must be a positive integer, got {threads!r}", code="model.invalid")
    path = model_path(name, models_dir, manifest_path=manifest_path)
    key = (name, path, threads)
    with _lock:
        session = _sessions.get(key)
        if session is not None:
            return session
        try:
            session = cpu_session(str(path), threads)
        except Exception as exc:  # onnxruntime raises its own exception types for unloadable graphs
            raise ModelError(f"model {name!r} at {path} cannot be loaded by onnxruntime: {exc}; {REBUILD_HINT}",
                             code="model.invalid", details={"model": name, "path": str(path)}) from None
        _sessions[key] = session
        return session


def cpu_session(model: str | bytes, threads: int = 1) -> "onnxruntime.InferenceSession":
    """An onnxruntime CPU session of a model file (path) or of serialised model bytes, run sequentially on
    `threads` threads: how every network of the product runs (`load_session` for the shipped artefacts)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


# CPU feature flags (Linux /proc/cpuinfo: "flags" on x86, "Features" on ARM) of 8-bit dot-product instructions.
# With one of them onnxruntime's integer convolutions are fast and exact; without, its x86 u8 x s8 kernels add
# pairs of products in 16 bits, which can saturate, so `[face] embedder = "auto"` runs the float build there.
INT8_DOT_PRODUCT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"})


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The feature flags of the first processor listed in a /proc/cpuinfo text."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return frozenset(value.split())
    return frozenset()


@lru_cache(maxsize=1)
def cpu_has_int8_dot_products() -> bool:
    """Whether this machine's CPU has 8-bit dot-product instructions (INT8_DOT_PRODUCT_FLAGS); False when it
    cannot be told (no /proc/cpuinfo): the float build is the safe choice."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return bool(cpu_flags(text) & INT8_DOT_PRODUCT_FLAGS)


def examples_dir(models_dir: Path) -> Path:
    """Directory of the bundled example photos (obama.jpg, biden.jpg, ...); verify single files with
    `model_path("examples/<file>", models_dir)`."""
    path = Path(models_dir) / EXAMPLES_SUBDIR
    if not path.is_dir():
        raise ModelError(f"example images are missing: {path} does not exist; {REBUILD_HINT}",
                         code="model.missing", details={"path": str(path)})
    return path


def clear_caches() -> None:
    """Forget verified hashes, sessions and the parsed manifest (tests; a long-running service never needs it)."""
    with _lock:
        _verified.clear()
        _sessions.clear()
    _manifest.cache_clear()
