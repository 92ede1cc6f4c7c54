"""BlazeFace face detection (ONNX), with our own anchor decoding and weighted NMS.

Two BlazeFace models from the same MediaPipe wheel, one decoding:
- short range (`face_detector`): a 128 x 128 input, 896 anchors; for faces filling at least about a fifth of the
  frame (a photo, a face close to the camera);
- full range (`face_detector_full_range`): a 192 x 192 input, 2304 anchors on one stride-4 grid; it still finds a
  50 px face in a 640 x 480 frame (about 15 px on its input), as an ATM camera sees a customer.
Frames are letterboxed into the input (aspect ratio kept, zero border), as MediaPipe does. For each anchor the
network predicts a score logit and 16 regressors: box centre offset, box size and 6 keypoints (right eye, left eye,
nose tip, mouth centre, right ear tragion, left ear tragion; "right" is the subject's right, i.e. the image's left
side).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.models import load_session

KEYPOINT_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth", "right_ear", "left_ear")
NMS_IOU = 0.3


@dataclass(frozen=True)
class BlazeFaceModel:
    """One BlazeFace variant: its manifest artefact and MediaPipe's SsdAnchorsCalculator options for it (fixed
    anchor size, so only the centres matter)."""

    artifact: str
    input_size: int
    strides: tuple[int, ...]
    anchors_per_layer: int
    # As the close-up re-reader of a DetectorChain: faces at least this share of the frame's longer side are
    # re-read by this model (short range's documented range: a face filling a fifth of the frame or more).
    min_face_fraction: float = 0.0


SHORT_RANGE = BlazeFaceModel("face_detector", 128, (8, 16, 16, 16), 2, min_face_fraction=0.2)
FULL_RANGE = BlazeFaceModel("face_detector_full_range", 192, (4,), 1)
# Re-detection when the whole frame shows no face: four overlapping tiles of this share of each side (each face
# twice as large on the network's input), which finds the 50 px faces the whole-frame pass misses.
TILE_FRACTION = 0.6
REREAD_IOU = 0.3  # a close-up detection stands for the primary face it overlaps this much (MediaPipe's NMS IoU)
# The customer's face is chosen among the detections within this much of the most confident one. Size alone let a
# textured background, which full range sees as a large face at 0.50-0.68, win over a real 50-75 px face at
# 0.80-0.95 (face75 development pairs 98.20 % -> 98.63 % with the margin; models/MODEL_CARD.md "Capture conditions").
PROMINENCE_SCORE_MARGIN = 0.1
MODELS = {"short_range": SHORT_RANGE, "full_range": FULL_RANGE}


def ssd_anchors(model: BlazeFaceModel = SHORT_RANGE) -> np.ndarray:
    """The anchor centres (x, y) in [0, 1] of the model's input, in the network's output order (896 for short
    range, 2304 for full range)."""
    centres = []
    layer = 0
    while layer < len(model.strides):
        stride = model.strides[layer]
        # Consecutive layers with the same stride share one grid; their anchors are interleaved per cell.
        repeats = 0
        while layer < len(model.strides) and model.strides[layer] == stride:
            repeats += model.anchors_per_layer
            layer += 1
        cells = int(np.ceil(model.input_size / stride))
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, repeats, axis=0))
    return np.concatenate(centres).astype(np.float32)


@dataclass(frozen=True)
class Detection:
    """One face: box (x0, y0, x1, y1) in image pixels, a confidence and, from BlazeFace, keypoints (6 x 2,
    see KEYPOINT_NAMES). The HOG fallback gives no keypoints: its box is what dlib's 5-point model expects."""

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray | None
    source: str = "blazeface"  # or "hog"

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


def prominence(box: tuple[float, float, float, float], width: int, height: int) -> float:
    """Bigger and more central faces win: the customer stands in front of the camera."""
    cx = (box[0] + box[2]) / 2 / width - 0.5
    cy = (box[1] + box[3]) / 2 / height - 0.5
    return (box[2] - box[0]) * (box[3] - box[1]) / (1.0 + 4.0 * (cx * cx + cy * cy))


def most_prominent(faces: list[Detection], width: int, height: int) -> Detection:
    """The customer's face among a frame's detections: the most prominent of those the detector is about as sure
    of as its best one (PROMINENCE_SCORE_MARGIN); a bystander or a false face it is less sure of never wins on
    size alone."""
    best = max(f.score for f in faces)
    confident = [f for f in faces if f.score >= best - PROMINENCE_SCORE_MARGIN]
    return max(confident, key=lambda f: prominence(f.box, width, height))


class FaceDetector:
    """One BlazeFace model (`model`: "short_range" or "full_range") on one onnxruntime session, created once and
    reused."""

    def __init__(self, models_dir: Path, threads: int = 1, min_score: float = 0.5, model: str = "short_range"):
        self.model = MODELS[model]
        self.input_size = self.model.input_size
        self.session = load_session(self.model.artifact, models_dir, threads)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.channels_first = len(inp.shape) == 4 and inp.shape[1] == 3
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        self.regressors_name = next(n for n, s in outputs.items() if s[-1] == 16)
        self.scores_name = next(n for n, s in outputs.items() if s[-1] == 1)
        self.min_score = min_score
        self.anchors = ssd_anchors(self.model)

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        """Faces in an RGB frame, most confident first."""
        return self._detect(image_rgb, bgr=False)

    def detect_bgr(self, image_bgr: np.ndarray) -> list[Detection]:
        """Faces in a BGR (OpenCV) frame: the colour order is swapped on the network's input only."""
        return self._detect(image_bgr, bgr=True)

    def _detect(self, image: np.ndarray, bgr: bool) -> list[Detection]:
        tensor, scale, pad_x, pad_y = self._letterbox(image, bgr)
        regressors, logits = self.session.run([self.regressors_name, self.scores_name], {self.input_name: tensor})
        regressors = regressors.reshape(-1, 16)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits.reshape(-1).astype(np.float64), -100.0, 100.0)))
        keep = np.nonzero(scores >= self.min_score)[0]
        if keep.size == 0:
            return []
        size = self.input_size
        raw = regressors[keep] / size
        anchors = self.anchors[keep]
        cx = raw[:, 0] + anchors[:, 0]
        cy = raw[:, 1] + anchors[:, 1]
        boxes = np.stack([cx - raw[:, 2] / 2, cy - raw[:, 3] / 2, cx + raw[:, 2] / 2, cy + raw[:, 3] / 2], axis=1)
        kps = raw[:, 4:].reshape(-1, 6, 2) + anchors[:, None, :]
        # From the letterboxed unit square back to image pixels.
        to_px = lambda v, pad: (v * size - pad) / scale  # noqa: E731
        boxes[:, [0, 2]] = to_px(boxes[:, [0, 2]], pad_x)
        boxes[:, [1, 3]] = to_px(boxes[:, [1, 3]], pad_y)
        kps[:, :, 0] = to_px(kps[:, :, 0], pad_x)
        kps[:, :, 1] = to_px(kps[:, :, 1], pad_y)
        return _weighted_nms(boxes, kps, scores[keep])

    def _prepare(self, image_rgb: np.ndarray) -> tuple[np.ndarray, float, float, float]:
        size = self.input_size
        h, w = image_rgb.shape[:2]
        scale = size / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        resized = cv2.resize(image_rgb, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        canvas = np.zeros((size, size, 3), np.uint8)
        pad_x, pad_y = (size - nw) // 2, (size - nh) // 2
        canvas[pad_y:pad_y + nh, pad_x:pad_x + nw] = resized
        # `scale` maps image pixels to input units; the pads are in input units.
        return canvas, scale, float(pad_x), float(pad_y)

    def _letterbox(self, image: np.ndarray, bgr: bool = False) -> tuple[np.ndarray, float, float, float]:
        canvas, scale, pad_x, pad_y = self._prepare(image)
        if bgr:
            canvas = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB)
        tensor = canvas.astype(np.float32) / 127.5 - 1.0
        tensor = tensor.transpose(2, 0, 1)[None] if self.channels_first else tensor[None]
        return np.ascontiguousarray(tensor), scale, pad_x, pad_y


def redetect_in_tiles(detector: FaceDetector, image: np.ndarray, bgr: bool) -> list[Detection]:
    """Faces found in four overlapping tiles (TILE_FRACTION of each side, one per corner), in frame pixels, merged
    by the same weighted NMS. A face cut by one tile's edge lies whole in another (the tiles overlap by a fifth
    of the frame, more than the faces this pass is for)."""
    h, w = image.shape[:2]
    tw, th = max(1, round(TILE_FRACTION * w)), max(1, round(TILE_FRACTION * h))
    boxes, kps, scores = [], [], []
    for x0 in sorted({0, w - tw}):
        for y0 in sorted({0, h - th}):
            tile = np.ascontiguousarray(image[y0:y0 + th, x0:x0 + tw])
            for d in (detector.detect_bgr(tile) if bgr else detector.detect(tile)):
                boxes.append(np.array(d.box) + [x0, y0, x0, y0])
                kps.append(d.keypoints + [x0, y0])
                scores.append(d.score)
    if not boxes:
        return []
    return _weighted_nms(np.array(boxes), np.array(kps), np.array(scores))


class DetectorChain:
    """The face finder of the pipeline, one interface like a FaceDetector:
    1. `primary` (full range) looks at the whole frame: it finds faces at every distance and, unlike short range,
       does not take a textured background for a large face (short range did in 8 % of the degraded LFW frames
       of face75, models/MODEL_CARD.md "Capture conditions");
    2. a face it finds large enough for `close_up` (short range, BlazeFaceModel.min_face_fraction) is re-read by
       that model, whose keypoints the alignment was fitted on, so a photo or a face close to the camera keeps the
       detection it had before full range came in; only close-up detections that overlap a primary face count;
    3. when the primary finds nothing in the whole frame it looks again in four tiles (`tiles`)."""

    def __init__(self, primary: FaceDetector, close_up: FaceDetector | None = None, tiles: bool = True):
        self.primary = primary
        self.close_up = close_up
        self.tiles = tiles

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        return self._find(image_rgb, bgr=False)

    def detect_bgr(self, image_bgr: np.ndarray) -> list[Detection]:
        return self._find(image_bgr, bgr=True)

    @staticmethod
    def _run(detector: FaceDetector, image: np.ndarray, bgr: bool) -> list[Detection]:
        return detector.detect_bgr(image) if bgr else detector.detect(image)

    def _find(self, image: np.ndarray, bgr: bool) -> list[Detection]:
        faces = self._run(self.primary, image, bgr)
        if not faces:
            return redetect_in_tiles(self.primary, image, bgr) if self.tiles else []
        if self.close_up is None:
            return faces
        reach = self.close_up.model.min_face_fraction * max(image.shape[:2])
        if not any(f.width >= reach for f in faces):
            return faces
        reread = self._run(self.close_up, image, bgr)
        out = []
        for face in faces:
            match = [d for d in reread if _iou(np.array(face.box), np.array([d.box]))[0] >= REREAD_IOU]
            out.append(max(match, key=lambda d: d.score) if face.width >= reach and match else face)
        return sorted(out, key=lambda d: -d.score)


def build_detector(models_dir: Path, threads: int, min_score: float, primary: str = "full_range",
                   close_up: str | None = "short_range", tiles: bool = True) -> DetectorChain:
    """The configured finder (`[face] detector`, `close_up_detector`, `redetect_tiles`)."""
    return DetectorChain(FaceDetector(models_dir, threads, min_score, primary),
                         FaceDetector(models_dir, threads, min_score, close_up) if close_up else None, tiles)


class HogFaceDetector:
    """dlib's HOG frontal-face detector: the fallback when BlazeFace finds nothing (faces too small for the
    short-range model), and the detector face_recognition uses. Slow on big frames, so the frame is first
    scaled down to at most `max_side` pixels (HOG's smallest face is about 80 px at upsample 0)."""

    def __init__(self, max_side: int = 1024, upsample: int = 0):
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self.max_side = max_side
        self.upsample = upsample

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        """Faces in an RGB (or grey) frame, most confident first."""
        return self._detect(image_rgb, bgr=False)

    def detect_bgr(self, image_bgr: np.ndarray) -> list[Detection]:
        return self._detect(image_bgr, bgr=True)

    def _detect(self, image: np.ndarray, bgr: bool) -> list[Detection]:
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = image if scale == 1.0 else cv2.resize(
            image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        if bgr:
            small = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        rects, scores, _ = self._detector.run(np.ascontiguousarray(small), self.upsample, 0.0)
        found = [Detection((r.left() / scale, r.top() / scale, r.right() / scale, r.bottom() / scale),
                           float(s), None, "hog") for r, s in zip(rects, scores)]
        return sorted(found, key=lambda d: -d.score)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-9)


def _weighted_nms(boxes: np.ndarray, kps: np.ndarray, scores: np.ndarray) -> list[Detection]:
    """MediaPipe's weighted NMS: overlapping candidates are averaged by score, not just dropped."""
    order = np.argsort(-scores)
    remaining = order
    out: list[Detection] = []
    while remaining.size:
        best = remaining[0]
        overlap = _iou(boxes[best], boxes[remaining])
        group = remaining[overlap > NMS_IOU]
        w = scores[group][:, None]
        box = (boxes[group] * w).sum(0) / w.sum()
        kp = (kps[group] * w[:, :, None]).sum(0) / w.sum()
        out.append(Detection(tuple(float(v) for v in box), float(scores[best]), kp.astype(np.float32)))
        remaining = remaining[overlap <= NMS_IOU]
    return out
