"""Where the virtual camera's people come from: names in scenarios -> real image files.

Forms accepted wherever a subject is named (scenario files, `VirtualCamera(subject=...)`):

- a path to an image file;
- `lfw:<Name>` or `lfw:<Name>/<n>`: Labeled Faces in the Wild, `faces/lfw/images/<Name>/<Name>_000n.jpg`;
- `nuaa:<subject>` or `nuaa:<subject>/<n>`: the n-th LIVE capture of a NUAA subject (`pad/nuaa/live.txt`);
- `example:<name>`: the example images built by `make models` (models/artifacts/examples/<name>.jpg).

Printed-photo attacks name `nuaa-attack:<subject>`: that subject's printed-photo captures in
`pad/nuaa/attack.txt`, in list order (consecutive captures of one attack session).

The data directory is `<repo>/../shared/data` unless the caller passes another one (tests may take it
from BIOGATE_TEST_DATA_DIR; this module reads no environment).
"""
from __future__ import annotations

from pathlib import Path

from edge.config import REPO_ROOT
from edge.errors import InputError

DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
EXAMPLES_DIR = REPO_ROOT / "models" / "artifacts" / "examples"


class SubjectNotFound(InputError):
    code = "input.subject_not_found"


def _nth(items: list[Path], n: int, what: str) -> Path:
    if not items:
        raise SubjectNotFound(f"no images for {what}")
    if not 1 <= n <= len(items):
        raise SubjectNotFound(f"{what} has {len(items)} images; #{n} does not exist")
    return items[n - 1]


def _split(rest: str) -> tuple[str, int]:
    name, _, index = rest.partition("/")
    if index and not index.isdigit():
        raise SubjectNotFound(f"image number must be an integer, got {index!r}")
    return name, int(index or 1)


def resolve_face(spec: str | Path, data_dir: Path | None = None) -> Path:
    """The image file named by `spec` (see module docstring); SubjectNotFound when it is absent."""
    data = Path(data_dir or DEFAULT_DATA_DIR)
    text = str(spec)
    kind, sep, rest = text.partition(":")
    if not sep or len(kind) == 1:  # no scheme (or a Windows drive letter): a plain path
        path = Path(text)
        if not path.is_file():
            raise SubjectNotFound(f"face image not found: {text}")
        return path
    if kind == "lfw":
        name, n = _split(rest)
        folder = data / "faces" / "lfw" / "images" / name
        return _nth(sorted(folder.glob("*.jpg")) if folder.is_dir() else [], n, f"LFW person {name!r}")
    if kind == "nuaa":
        subject, n = _split(rest)
        return _nth(nuaa_list(data, "live", subject), n, f"NUAA live subject {subject!r}")
    if kind == "example":
        path = EXAMPLES_DIR / f"{rest}.jpg"
        if not path.is_file():
            raise SubjectNotFound(f"example image {rest!r} not built (run `make models`): {path}")
        return path
    raise SubjectNotFound(f"unknown subject source {kind!r} in {text!r} (use a path, lfw:, nuaa:, example:)")


def nuaa_list(data_dir: Path | None, which: str, subject: str) -> list[Path]:
    """The NUAA `live` or `attack` captures of one subject, in the order of live.txt/attack.txt."""
    root = Path(data_dir or DEFAULT_DATA_DIR) / "pad" / "nuaa"
    listing = root / f"{which}.txt"
    if not listing.is_file():
        return []
    prefix = f"{which}/{subject}/"
    return [root / line.strip() for line in listing.read_text().splitlines() if line.strip().startswith(prefix)]


def resolve_photo_attack(spec: str | Path, data_dir: Path | None = None) -> list[Path] | Path:
    """`nuaa-attack:<subject>` -> that subject's attack captures; anything else -> one face image to print."""
    text = str(spec)
    if text.startswith("nuaa-attack:"):
        subject = text.split(":", 1)[1]
        files = nuaa_list(data_dir, "attack", subject)
        if not files:
            raise SubjectNotFound(f"no NUAA attack captures for subject {subject!r}")
        return files
    return resolve_face(text, data_dir)


def default_subject(data_dir: Path | None = None) -> Path:
    """A face to use when a script names none: an example image, else LFW, else NUAA."""
    for spec in ("example:obama", "lfw:George_W_Bush", "nuaa:0001"):
        try:
            return resolve_face(spec, data_dir)
        except SubjectNotFound:
            continue
    raise SubjectNotFound("no face images available: run `make models` or provide ../shared/data")
