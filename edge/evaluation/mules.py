"""Development faces as a synthetic fleet: `biogate eval mules` measures network detection (edge.search).
(filled in below)
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from edge.config import Config
from edge.errors import InputError


def development_embeddings(cfg: Config, progress: Callable[[int, int], None] | None = None
                           ) -> tuple[np.ndarray, list[str]]:
    """Every LFW development image embedded once (the product's face pipeline): (N x 128, person per row).
    Held in memory only: the embeddings of real people are never written anywhere."""
    from edge.biometrics.face import FacePipeline
    from edge.evaluation.lfw import embed_images

    root = Path(cfg.paths.data_dir) / "faces" / "lfw" / "images"
    paths = sorted(root.glob("*/*.jpg"))
    if not paths:
        raise InputError(f"no LFW images under {root}", code="input.not_found")
    pipeline = FacePipeline(cfg.face, cfg.paths.models_dir)
    embeddings, _ = embed_images(paths, pipeline, cfg.face.max_image_px, progress)
    kept = [p for p in paths if p in embeddings]
    return np.stack([embeddings[p] for p in kept]).astype(np.float32), [p.parent.name for p in kept]
