"""Fit the keypoints-to-box mapping used by edge.biometrics.face.align (a development tool).

dlib's 5-point predictor expects the box its HOG detector would give. On development images where both
detectors find the same single face, we regress the HOG box from BlazeFace's keypoints:
    hog_centre - eye_mid = along * (mouth - eye_mid) + across * (left_eye - right_eye)
    hog_side             = side_eyes * |left_eye - right_eye| + side_mouth * |mouth - eye_mid|
Usage: python -m edge.evaluation.fit_face_box [--images DIR] [--limit N] [--detector short_range|full_range]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import dlib
import numpy as np

from edge.biometrics.face.detector import MODELS, FaceDetector
from edge.biometrics.face.image import as_rgb, load_image
from edge.config import load_config


def main() -> None:
    cfg = load_config()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=cfg.paths.data_dir / "faces" / "lfw" / "images")
    parser.add_argument("--limit", type=int, default=600)
    parser.add_argument("--detector", choices=sorted(MODELS), default="short_range",
                        help="the BlazeFace model whose keypoints are mapped")
    args = parser.parse_args()
    paths = sorted(args.images.glob("*/*_0001.jpg"))[:: 2][: args.limit]
    detector = FaceDetector(cfg.paths.models_dir, 1, 0.5, args.detector)
    hog = dlib.get_frontal_face_detector()
    rows_c, targets_c, rows_s, targets_s = [], [], [], []
    for p in paths:
        rgb = as_rgb(load_image(p))
        dets, boxes = detector.detect(rgb), hog(rgb, 1)
        if len(dets) != 1 or len(boxes) != 1:
            continue
        kp = dets[0].keypoints.astype(np.float64)
        eye_mid = (kp[0] + kp[1]) / 2
        down, across = kp[3] - eye_mid, kp[1] - kp[0]
        r = boxes[0]
        centre = np.array([(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2])
        rows_c += [[down[0], across[0]], [down[1], across[1]]]
        targets_c += list(centre - eye_mid)
        rows_s.append([np.linalg.norm(across), np.linalg.norm(down)])
        targets_s.append(r.width())
    (along, across_k), *_ = np.linalg.lstsq(np.array(rows_c), np.array(targets_c), rcond=None)
    (side_eyes, side_mouth), *_ = np.linalg.lstsq(np.array(rows_s), np.array(targets_s), rcond=None)
    residual = np.array(targets_s) - np.array(rows_s) @ [side_eyes, side_mouth]
    print(f"faces used: {len(rows_s)} of {len(paths)} images")
    print(f"CENTRE_ALONG = {along:.4f}\nCENTRE_ACROSS = {across_k:.4f}\n"
          f"SIDE_EYES = {side_eyes:.4f}\nSIDE_MOUTH = {side_mouth:.4f}")
    print(f"side residual: median |e| {np.median(np.abs(residual)):.2f} px")


if __name__ == "__main__":
    main()
