"""How the face quality gates behave on development faces (a development tool, like fit_face_box).

For a sample of LFW development images: the share of faces each gate flags as they are, and the share of
degraded copies flagged for the intended reason: Gaussian blur of 1.5, 2 and 3 % of the face width
(`quality.blurred`), grey levels scaled by 0.12 (`quality.too_dark`), distance to white scaled by 0.12
(`quality.overexposed`). Usage: python -m edge.evaluation.face_quality [--images DIR] [--every N]
"""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from edge.biometrics.face import FacePipeline, load_image
from edge.config import load_config

DEGRADATIONS = {
    "blur 1.5%": ("quality.blurred", lambda img, w: cv2.GaussianBlur(img, (0, 0), 0.015 * w)),
    "blur 2%": ("quality.blurred", lambda img, w: cv2.GaussianBlur(img, (0, 0), 0.02 * w)),
    "blur 3%": ("quality.blurred", lambda img, w: cv2.GaussianBlur(img, (0, 0), 0.03 * w)),
    "dark x0.12": ("quality.too_dark", lambda img, w: (img * 0.12).astype(np.uint8)),
    "bright x0.12": ("quality.overexposed", lambda img, w: (255 - (255 - img.astype(np.float64)) * 0.12).astype(np.uint8)),
}


def main() -> None:
    cfg = load_config()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=cfg.paths.data_dir / "faces" / "lfw" / "images")
    parser.add_argument("--every", type=int, default=8, help="take every N-th image (sorted by path)")
    args = parser.parse_args()
    pipeline = FacePipeline(cfg.face, cfg.paths.models_dir)
    paths = sorted(args.images.glob("*/*.jpg"))[:: args.every]
    as_is: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    others: Counter[str] = Counter()
    faces = 0
    for path in paths:
        image = load_image(path, cfg.face.max_image_px)
        analysis = pipeline.analyze(image)
        if analysis.face is None:
            as_is["quality.no_face"] += 1
            continue
        faces += 1
        as_is.update(f.code for f in analysis.findings)
        for name, (wanted, degrade) in DEGRADATIONS.items():
            found = {f.code for f in pipeline.analyze(degrade(image, analysis.face.width)).findings}
            hits[name] += wanted in found
            others[name] += bool(found - {wanted, "quality.multiple_faces"})
    print(f"{len(paths)} images, {faces} with a face; cfg.face: min_sharpness {cfg.face.min_sharpness}, "
          f"brightness {cfg.face.min_brightness}-{cfg.face.max_brightness}")
    for code, n in sorted(as_is.items()):
        print(f"  as they are: {code:24s} {n:4d} ({100 * n / len(paths):.1f}%)")
    for name, (wanted, _) in DEGRADATIONS.items():
        print(f"  {name:12s}: {wanted} in {100 * hits[name] / faces:.1f}%, "
              f"another reason too in {100 * others[name] / faces:.1f}%")


if __name__ == "__main__":
    main()
