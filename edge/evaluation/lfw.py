"""The LFW pairs protocol (View 2 `pairs.txt`): parsing and image paths.

Format: an optional header line "<folds> <pairs per class>", then one pair per line:
`name i j` (same person) or `name1 i name2 j` (different people); image files are
`<images>/<name>/<name>_<iiii>.jpg`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge.errors import InputError


@dataclass(frozen=True)
class Pair:
    a: Path
    b: Path
    same: bool


def image_path(images: Path, name: str, index: str) -> Path:
    return images / name / f"{name}_{int(index):04d}.jpg"


def read_pairs(pairs_file: Path, images: Path | None = None) -> list[Pair]:
    pairs_file = Path(pairs_file)
    images = Path(images) if images else pairs_file.parent / "images"
    try:
        lines = pairs_file.read_text().splitlines()
    except OSError as exc:
        raise InputError(f"{pairs_file}: cannot read pairs file ({exc.strerror})", code="input.not_found") from None
    pairs: list[Pair] = []
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        if number == 1 and len(fields) == 2 and all(f.isdigit() for f in fields):
            continue  # header: folds and pairs per class
        try:
            if len(fields) == 3:
                pairs.append(Pair(image_path(images, fields[0], fields[1]),
                                  image_path(images, fields[0], fields[2]), True))
            elif len(fields) == 4:
                pairs.append(Pair(image_path(images, fields[0], fields[1]),
                                  image_path(images, fields[2], fields[3]), False))
            else:
                raise ValueError
        except ValueError:
            raise InputError(f"{pairs_file}:{number}: expected 'name i j' or 'name1 i name2 j', got {line!r}",
                             code="input.bad_pairs_file") from None
    if not pairs:
        raise InputError(f"{pairs_file}: no pairs found", code="input.bad_pairs_file")
    return pairs
