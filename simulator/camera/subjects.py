"""Face sprites: a subject's head cut from a real photo, and the things a live head can do.

A `FaceSprite` is a square BGR crop around the face of a photo (LFW, NUAA live, or the built-in
example images) with a feathered elliptical alpha mask and the five dlib landmarks (eye corners and
nose) in sprite coordinates. The renderer places it in a scene at any scale; the effects here change
the head itself:

- `with_eyes_closed(amount)`: eyelids drawn over both eyes (skin colour taken from below each eye,
  a dark lash line when nearly shut): amount 0 = open, 1 = shut.
- `turned(yaw_deg)`: the face mapped onto a vertical cylinder and rotated about it, so the nose moves
  further than the eyes and the far cheek is compressed and shaded (what a yaw estimator sees in a real
  turn, unlike a flat photo rotated as a plane). Positive yaw moves the nose toward the image's right,
  i.e. the subject turns to THEIR left (a camera facing the person sees the person's left on the right).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.errors import InputError

SPRITE_SIDE = 256  # pixels; the face box is about half of it


@dataclass(frozen=True)
class Landmarks:
    """Eye centres, eye widths and the nose tip in sprite pixels (x, y)."""

    right_eye: tuple[float, float]  # the subject's right eye: the image's left
    left_eye: tuple[float, float]
    eye_width: float
    nose: tuple[float, float]


@dataclass
class FaceSprite:
    image: np.ndarray  # SPRITE_SIDE x SPRITE_SIDE x 3, BGR uint8
    alpha: np.ndarray  # SPRITE_SIDE x SPRITE_SIDE float32 in 0..1
    landmarks: Landmarks
    face_box: tuple[int, int, int, int]  # x, y, w, h of the face inside the sprite
    source: str = ""
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_file(cls, path: str | Path) -> "FaceSprite":
        return _sprite_from_file(str(Path(path).resolve()))

    @classmethod
    def from_image(cls, image: np.ndarray, source: str = "") -> "FaceSprite":
        if image is None or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError("a face image must be a BGR uint8 array", code="input.invalid_image")
        return _build_sprite(image, source)

    # -- effects -------------------------------------------------------------------------------------
    def with_eyes_closed(self, amount: float) -> np.ndarray:
        """The sprite image with eyelids `amount` (0..1) shut."""
        amount = float(np.clip(amount, 0.0, 1.0))
        if amount <= 0.01:
            return self.image
        key = ("eyes", round(amount, 2))
        if key in self._cache:
            return self._cache[key]
        out = self.image.astype(np.float32)
        lm = self.landmarks
        w = lm.eye_width
        for cx, cy in (lm.right_eye, lm.left_eye):
            # skin tone from the cheek just below the eye
            y0, x0 = int(cy + 0.55 * w), int(cx - 0.3 * w)
            patch = self.image[max(0, y0): y0 + max(2, int(0.3 * w)), max(0, x0): x0 + max(2, int(0.6 * w))]
            skin = np.median(patch.reshape(-1, 3), axis=0) if patch.size else np.array([120, 140, 170])
            lid = np.zeros(self.alpha.shape, np.float32)
            # the lid covers the eye from the top down as it closes
            half_h = 0.42 * w
            centre = (int(round(cx)), int(round(cy - half_h * (1 - amount) * 0.5)))
            axes = (int(round(0.75 * w)), max(1, int(round(half_h * (0.5 + 0.5 * amount)))))
            cv2.ellipse(lid, centre, axes, 0, 0, 360, 1.0, -1, cv2.LINE_AA)
            lid = cv2.GaussianBlur(lid, (0, 0), max(1.0, 0.08 * w)) * amount
            out = out * (1 - lid[..., None]) + skin[None, None, :] * lid[..., None]
            if amount > 0.7:  # the lash line of a shut eye
                lash = np.zeros(self.alpha.shape, np.float32)
                cv2.ellipse(lash, (int(round(cx)), int(round(cy + 0.1 * w))), (int(0.62 * w), int(0.12 * w)),
                            0, 10, 170, 1.0, max(1, int(0.06 * w)), cv2.LINE_AA)
                lash *= (amount - 0.7) / 0.3 * 0.7
                out = out * (1 - lash[..., None]) + np.array([40, 40, 50], np.float32) * lash[..., None]
        result = np.clip(out, 0, 255).astype(np.uint8)
        self._cache[key] = result
        return result

    def turned(self, image: np.ndarray, alpha: np.ndarray, yaw_deg: float) -> tuple[np.ndarray, np.ndarray]:
        """`image`/`alpha` (sprite-sized) rotated `yaw_deg` about a vertical cylinder through the head."""
        if abs(yaw_deg) < 0.5:
            return image, alpha
        side = image.shape[1]
        yaw = np.deg2rad(yaw_deg)
        cx = self.landmarks.nose[0]
        radius = 0.37 * side  # covers the alpha ellipse (half-width 0.36 * side)
        xs = np.arange(side, dtype=np.float32) - cx
        # output column x_o shows the texture at angle asin(x_o / r) - yaw on the cylinder
        ratio = np.clip(xs / radius, -1.0, 1.0)
        theta = np.arcsin(ratio) - yaw
        inside = np.abs(theta) < np.pi / 2
        src_x = np.where(np.abs(xs) <= radius, radius * np.sin(theta), xs - radius * np.sin(yaw)) + cx
        map_x = np.repeat(src_x[None, :].astype(np.float32), image.shape[0], axis=0)
        map_y = np.repeat(np.arange(image.shape[0], dtype=np.float32)[:, None], side, axis=1)
        warped = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        warped_alpha = cv2.remap(alpha, map_x, map_y, cv2.INTER_LINEAR, borderValue=0)
        # the side turning away gets darker (cosine of the angle to the camera), hidden texture vanishes
        shade = np.where(np.abs(xs) <= radius, 0.55 + 0.45 * np.cos(np.clip(theta, -1.5, 1.5)), 1.0)
        shade = np.where((np.abs(xs) <= radius) & ~inside, 0.0, shade).astype(np.float32)
        warped = np.clip(warped.astype(np.float32) * shade[None, :, None], 0, 255).astype(np.uint8)
        warped_alpha = (warped_alpha * np.where((np.abs(xs) <= radius) & ~inside, 0.0, 1.0)[None, :]).astype(np.float32)
        return warped, warped_alpha


@functools.lru_cache(maxsize=64)
def _sprite_from_file(path: str) -> FaceSprite:
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"cannot read face image {path}", code="input.unreadable_image")
    return _build_sprite(image, path)


@functools.lru_cache(maxsize=1)
def _dlib_models():
    import dlib  # imported lazily: only sprites need it
    import face_recognition_models

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
    return detector, predictor


def _locate_face(image: np.ndarray) -> tuple[tuple[float, float, float, float], np.ndarray | None]:
    """(x, y, w, h) of the largest face and its 5 landmarks, or a central guess and None."""
    h, w = image.shape[:2]
    try:
        detector, predictor = _dlib_models()
        import dlib

        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        upsample = 1 if min(h, w) < 400 else 0
        faces = detector(rgb, upsample)
        if faces:
            box = max(faces, key=lambda r: r.width() * r.height())
            shape = predictor(rgb, box)
            pts = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], np.float32)
            return (box.left(), box.top(), box.width(), box.height()), pts
    except ImportError:  # pragma: no cover - dlib is a project dependency
        pass
    side = 0.45 * min(h, w)  # aligned photos (LFW deep-funneled) have the face in the middle
    return (w / 2 - side / 2, h / 2 - side / 2, side, side), None


def _build_sprite(image: np.ndarray, source: str) -> FaceSprite:
    (fx, fy, fw, fh), pts = _locate_face(image)
    side = 2.0 * max(fw, fh)
    cx, cy = fx + fw / 2, fy + fh / 2 - 0.05 * fh
    scale = SPRITE_SIDE / side
    # crop by an affine map so faces near the border are padded instead of shifted
    m = np.array([[scale, 0, SPRITE_SIDE / 2 - cx * scale], [0, scale, SPRITE_SIDE / 2 - cy * scale]], np.float32)
    crop = cv2.warpAffine(image, m, (SPRITE_SIDE, SPRITE_SIDE), flags=cv2.INTER_AREA,
                          borderMode=cv2.BORDER_REPLICATE)

    def to_sprite(x: float, y: float) -> tuple[float, float]:
        return (float(x * scale + m[0, 2]), float(y * scale + m[1, 2]))

    if pts is not None:
        # dlib 5-point: 0,1 = one eye's corners (image right), 2,3 = the other eye's, 4 = nose base
        eye_a = ((pts[0] + pts[1]) / 2, np.linalg.norm(pts[0] - pts[1]))
        eye_b = ((pts[2] + pts[3]) / 2, np.linalg.norm(pts[2] - pts[3]))
        left_img, right_img = sorted([eye_a, eye_b], key=lambda e: e[0][0])
        landmarks = Landmarks(
            right_eye=to_sprite(*left_img[0]), left_eye=to_sprite(*right_img[0]),
            eye_width=float((eye_a[1] + eye_b[1]) / 2 * scale), nose=to_sprite(*pts[4]))
    else:
        s = SPRITE_SIDE
        landmarks = Landmarks(right_eye=(0.40 * s, 0.45 * s), left_eye=(0.60 * s, 0.45 * s),
                              eye_width=0.08 * s, nose=(0.5 * s, 0.56 * s))
    alpha = np.zeros((SPRITE_SIDE, SPRITE_SIDE), np.float32)
    cv2.ellipse(alpha, (SPRITE_SIDE // 2, int(SPRITE_SIDE * 0.52)), (int(SPRITE_SIDE * 0.36), int(SPRITE_SIDE * 0.47)),
                0, 0, 360, 1.0, -1, cv2.LINE_AA)
    alpha = cv2.GaussianBlur(alpha, (0, 0), SPRITE_SIDE * 0.03)
    bx, by = to_sprite(fx, fy)
    box = (int(bx), int(by), int(fw * scale), int(fh * scale))
    return FaceSprite(image=crop, alpha=alpha, landmarks=landmarks, face_box=box, source=source)
