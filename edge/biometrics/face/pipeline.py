"""The face path: detect -> 5-point landmarks -> 150 x 150 chip -> ONNX embedding -> distance.

`FacePipeline` holds the ONNX sessions and the dlib predictor, created once and reused; it takes BGR
frames (the project's convention at API boundaries) and returns `FaceAnalysis` objects that say what
was found, how good it is and, when usable, the embedding. The frame itself is never copied whole:
BlazeFace sees a 128 x 128 letterbox of it and dlib only the region around the chosen face.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from edge.biometrics.face.align import AlignedFace, Aligner
from edge.biometrics.face.detector import Detection, HogFaceDetector, build_detector, most_prominent
from edge.biometrics.face.embedder import FaceEmbedder, face_distance
from edge.biometrics.face.quality import PROMPTS, QualityFinding, QualityMeasures, capture_score, findings, measure
from edge.biometrics.face.restore import (DENOISE_SIGMA_RETRY, MotionEstimate, Restoration, deblock, deblur, denoise,
                                         is_blocky, is_low_light, motion_to_undo)
from edge.biometrics.config import EMBEDDER_ARTIFACTS, RESTORED_EMBEDDER_ARTIFACT, FaceConfig
from edge.errors import InputError, QualityError


@dataclass
class FaceAnalysis:
    """What the pipeline saw in one image. `embedding` is None when no face was found."""

    faces: list[Detection]
    face: Detection | None = None
    aligned: AlignedFace | None = None
    measures: QualityMeasures | None = None
    findings: list[QualityFinding] = field(default_factory=list)
    embedding: np.ndarray | None = None
    restoration: Restoration = field(default_factory=Restoration)  # what was undone before embedding (restore.py)

    @property
    def acquired(self) -> bool:
        return self.embedding is not None

    def capture_findings(self) -> list[QualityFinding]:
        """Findings the customer can fix in front of the camera (a prompt exists for each: PROMPTS)."""
        return [f for f in self.findings if f.code in PROMPTS]

    def blocking(self, strict: bool) -> list[QualityFinding]:
        """Findings that forbid using this sample: all of them in strict mode, else only "no face"."""
        if strict:
            return list(self.findings)
        return [f for f in self.findings if f.code == "quality.no_face"]

    def require(self, strict: bool = True) -> np.ndarray:
        """The embedding, or QualityError naming the first blocking finding."""
        blocking = self.blocking(strict)
        if blocking or self.embedding is None:
            first = blocking[0] if blocking else QualityFinding("quality.no_face", "no face found")
            raise QualityError(first.message, code=first.code,
                               details={"findings": [f.code for f in blocking]})
        return self.embedding

    def wipe(self) -> None:
        """Zeroise the sample-derived arrays (chip, embedding) once the transaction is over."""
        if self.aligned is not None:
            self.aligned.chip.fill(0)
        if self.embedding is not None:
            self.embedding.fill(0)


def as_bgr3(frame: np.ndarray) -> np.ndarray:
    """A validated H x W x 3 uint8 BGR frame (grey and BGRA frames are converted; others pass as they are)."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise InputError("image must be a uint8 numpy array", code="input.not_an_image")
    if frame.ndim == 2 and min(frame.shape) >= 1:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.ndim != 3 or frame.shape[2] not in (3, 4) or min(frame.shape[:2]) < 1:
        raise InputError(f"image must be H x W x 3, got shape {frame.shape}", code="input.not_an_image")
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame if frame.flags.c_contiguous else np.ascontiguousarray(frame)


class FacePipeline:
    def __init__(self, cfg: FaceConfig, models_dir: Path):
        self.cfg = cfg
        self.detector = build_detector(models_dir, cfg.threads, cfg.detector_score, cfg.detector,
                                       cfg.close_up_detector, cfg.redetect_tiles)
        self.fallback = HogFaceDetector() if cfg.hog_fallback else None
        self.aligner = Aligner(models_dir)
        self.embedder = FaceEmbedder(models_dir, cfg.threads, flip=cfg.flip_augment,
                                     artifact=EMBEDDER_ARTIFACTS[cfg.embedder_build])
        self.restored_embedder = (FaceEmbedder(models_dir, cfg.threads, flip=cfg.flip_augment,
                                               artifact=RESTORED_EMBEDDER_ARTIFACT)
                                  if cfg.restored_embedder_for else None)

    def analyze(self, image_bgr: np.ndarray) -> FaceAnalysis:
        return self.analyze_many([image_bgr])[0]

    def analyze_many(self, images_bgr: list[np.ndarray]) -> list[FaceAnalysis]:
        """Analyse several frames; the chips go through their network (`embedder_for`) in one batch per network."""
        results = [self._locate(as_bgr3(image)) for image in images_bgr]
        by_network: dict[FaceEmbedder, list[FaceAnalysis]] = {}
        for r in results:
            if r.aligned is not None:
                by_network.setdefault(self.embedder_for(r), []).append(r)
        for embedder, mine in by_network.items():
            for r, embedding in zip(mine, embedder.embed(np.stack([r.aligned.chip for r in mine]))):
                r.embedding = embedding
        return results

    def locate(self, image_bgr: np.ndarray) -> FaceAnalysis:
        """Find, align and measure the customer's face (restoration included), without embedding it."""
        return self._locate(as_bgr3(image_bgr))

    def embedder_for(self, analysis: FaceAnalysis) -> FaceEmbedder:
        """The network for this face: the one fine-tuned on restored faces when its restoration included one of
        `[face] restored_embedder_for`."""
        if self.restored_embedder is not None and analysis.restoration.undone & set(self.cfg.restored_embedder_for):
            return self.restored_embedder
        return self.embedder

    def analyze_best(self, images_bgr: list[np.ndarray], accept: Callable[[np.ndarray], bool] | None = None
                     ) -> tuple[int, FaceAnalysis] | None:
        """The best frame of one capture (edge.biometrics.face.quality.capture_score: large, well exposed, sharp,
        still, frontal), analysed and embedded; the others are only located. With `accept` (a test on the
        embedding: the same face as the one the capture began with), the best frame that passes it: the next
        best is embedded only when a better one fails. None when no frame shows an accepted face."""
        located: list[tuple[float, int, FaceAnalysis]] = []
        for i, image in enumerate(images_bgr):
            analysis = self._locate(as_bgr3(image))
            if analysis.measures is None:
                continue
            located.append((capture_score(analysis.measures, self.cfg), i, analysis))
        located.sort(key=lambda entry: (-entry[0], entry[1]))
        chosen: tuple[int, FaceAnalysis] | None = None
        for _, index, analysis in located:
            if chosen is None:
                analysis.embedding = self.embedder_for(analysis).embed(analysis.aligned.chip[None])[0]
                if accept is None or accept(analysis.embedding):
                    chosen = (index, analysis)
                    continue
            analysis.wipe()
        return chosen

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """Every face in the frame: the BlazeFace chain, else (when configured) dlib's HOG detector."""
        faces = self.detector.detect_bgr(image_bgr)
        if not faces and self.fallback is not None:
            faces = self.fallback.detect_bgr(image_bgr)
        return faces

    def _locate(self, bgr: np.ndarray) -> FaceAnalysis:
        """Restore what the whole frame needs, then find, align and measure the customer's face."""
        frame, restoration = self._restore_frame(bgr)
        analysis = self._locate_in_copy(bgr, frame, restoration)
        if restoration.denoised and analysis.face is None:
            # The darkest frames: their noise still hides the face; smooth more, from the original.
            analysis = self._locate_in_copy(bgr, denoise(bgr, DENOISE_SIGMA_RETRY), Restoration(denoised=True))
        return analysis

    def _restore_frame(self, bgr: np.ndarray) -> tuple[np.ndarray, Restoration]:
        """The frame with low-light noise, then compression blocks, undone where they are found (restore.py): a
        copy when anything was undone, `bgr` itself otherwise."""
        frame = bgr
        denoised = self.cfg.undo_noise and is_low_light(bgr)
        if denoised:
            frame = denoise(bgr)
        deblocked = self.cfg.undo_blocks and is_blocky(frame)
        if deblocked:
            smoothed = deblock(frame)
            if frame is not bgr:
                frame.fill(0)
            frame = smoothed
        return frame, Restoration(denoised, deblocked)

    def _locate_in_copy(self, bgr: np.ndarray, frame: np.ndarray, restoration: Restoration) -> FaceAnalysis:
        """`_locate_in` on `frame`, which is wiped afterwards when it is a restored copy of `bgr`."""
        try:
            return self._locate_in(frame, restoration)
        finally:
            if frame is not bgr:
                frame.fill(0)  # our copy of the customer's frame: not kept

    def _locate_in(self, bgr: np.ndarray, restoration: Restoration) -> FaceAnalysis:
        faces = self.detect(bgr)
        if not faces:
            return FaceAnalysis(faces, findings=[QualityFinding("quality.no_face", "no face found in the image")],
                                restoration=restoration)
        h, w = bgr.shape[:2]
        face = most_prominent(faces, w, h)
        aligned = self.aligner.align_bgr(bgr, face)
        measures = measure(aligned.chip, aligned.landmarks, face.width)
        motion = None
        if self.cfg.undo_motion_blur:
            restored = self._undo_motion(bgr, face, measures)
            if restored is not None:
                aligned.chip.fill(0)
                aligned, measures, motion = restored
        found = findings(measures, self.cfg)
        if len(faces) > 1:
            found.insert(0, QualityFinding("quality.multiple_faces",
                                           f"{len(faces)} faces in the image; exactly one is expected",
                                           float(len(faces))))
        return FaceAnalysis(faces, face, aligned, measures, found,
                            restoration=dataclasses.replace(restoration, motion=motion))

    def _undo_motion(self, bgr: np.ndarray, face: Detection, measures: QualityMeasures
                     ) -> tuple[AlignedFace, QualityMeasures, MotionEstimate] | None:
        """The face re-aligned from its region with the motion smear taken out (restore.py), re-measured; None when
        the face is not smeared or its motion is not clear enough to undo."""
        x0, y0, x1, y1 = self.aligner.region(bgr.shape, face)
        region = bgr[y0:y1, x0:x1]
        motion = motion_to_undo(region, face.width, measures.motion_blur)
        if motion is None:
            return None
        sharp = deblur(region, motion)
        aligned = self.aligner.align_region(sharp, face, x0, y0)
        sharp.fill(0)  # a copy of the customer's face: not kept
        return aligned, measure(aligned.chip, aligned.landmarks, face.width), motion

    def distance(self, a: np.ndarray, b: np.ndarray) -> float:
        return face_distance(a, b)

    def is_same(self, distance: float) -> bool:
        return distance < self.cfg.threshold
