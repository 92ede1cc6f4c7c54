"""Development scores for calibration: every genuine and impostor comparison the shared data allow.

Faces (LFW, all images under `faces/lfw/images`): each image is embedded once; genuine = every pair of
images of the same person, impostor = every pair of images of different people (about 7 million for
the 3,811 development images), so the impostor tail is measured down to FMR 1e-6 rather than guessed.
A failure to acquire makes every comparison it is in score -inf (kept, never dropped).

Fingers (FVC2000 DB1_B..DB4_B): the FVC protocol per database (edge.evaluation.fvc): 280 genuine and
2,880 impostor comparisons each.

Score orientation: higher = more alike (faces: minus the Euclidean distance).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from edge.config import Config
from edge.errors import BiogateError, InputError

FVC_DBS = ("DB1_B", "DB2_B", "DB3_B", "DB4_B")


@dataclass
class DevScores:
    genuine: np.ndarray
    impostor: np.ndarray
    provenance: dict


def face_dev_scores(cfg: Config, progress: Callable[[int, int], None] | None = None,
                    chunk: int = 16) -> DevScores:
    from edge.biometrics.face import FacePipeline, load_image

    root = cfg.paths.data_dir / "faces" / "lfw" / "images"
    paths = sorted(root.glob("*/*.jpg"))
    if not paths:
        raise InputError(f"no LFW images under {root}", code="input.not_found")
    pipeline = FacePipeline(cfg.face, cfg.paths.models_dir)
    names = np.array([p.parent.name for p in paths])
    emb = np.full((len(paths), 128), np.nan, dtype=np.float32)
    for start in range(0, len(paths), chunk):
        frames, idx = [], []
        for i in range(start, min(start + chunk, len(paths))):
            try:
                frames.append(load_image(paths[i], cfg.face.max_image_px))
                idx.append(i)
            except BiogateError:
                continue
        for i, analysis in zip(idx, pipeline.analyze_many(frames)):
            if analysis.acquired:
                emb[i] = analysis.embedding
        if progress:
            progress(min(start + chunk, len(paths)), len(paths))
    acquired = ~np.isnan(emb[:, 0])
    e = np.nan_to_num(emb).astype(np.float64)
    sq = np.einsum("ij,ij->i", e, e)
    genuine, impostor = [], []
    for i in range(len(paths) - 1):
        d = np.sqrt(np.maximum(sq[i] + sq[i + 1:] - 2 * e[i + 1:] @ e[i], 0.0))
        s = np.where(acquired[i] & acquired[i + 1:], -d, -np.inf)
        same = names[i + 1:] == names[i]
        genuine.append(s[same])
        impostor.append(s[~same].astype(np.float32))
    return DevScores(np.concatenate(genuine), np.concatenate(impostor).astype(np.float64), {
        "data": "LFW deep-funneled development images (../shared/data/faces/lfw/images), all pairs",
        "images": len(paths), "people": int(len(set(names))), "failures_to_acquire": int((~acquired).sum()),
        "pipeline": f"BlazeFace + dlib 5-point + dlib ResNet ONNX ({cfg.face.embedder_build}), "
                    f"flip_augment={cfg.face.flip_augment}",
        "score": "minus Euclidean distance between embeddings"})


def finger_dev_scores(cfg: Config, dbs: tuple[str, ...] = FVC_DBS,
                      progress: Callable[[int, int], None] | None = None) -> DevScores:
    from edge.evaluation.fvc import biogate_matcher, score_db

    root = cfg.paths.data_dir / "fingerprints" / "fvc2000"
    genuine, impostor, per_db, fte = [], [], {}, 0
    matcher = biogate_matcher()
    for k, db in enumerate(dbs):
        path = root / db
        if not path.is_dir():
            raise InputError(f"FVC2000 database not found: {path}", code="input.not_found")
        g, i, failures = score_db(path, matcher)
        genuine.append(np.asarray(g, np.float64))
        impostor.append(np.asarray(i, np.float64))
        fte += int(failures)
        per_db[db] = {"genuine": int(len(g)), "impostor": int(len(i)), "failures_to_extract": int(failures)}
        if progress:
            progress(k + 1, len(dbs))
    return DevScores(np.concatenate(genuine), np.concatenate(impostor), {
        "data": "FVC2000 " + ", ".join(dbs) + " (../shared/data/fingerprints/fvc2000), FVC protocol per DB",
        "per_db": per_db, "failures_to_extract": fte, "score": "biogate minutiae matcher similarity"})

