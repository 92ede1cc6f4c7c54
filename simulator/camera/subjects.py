"""Face sprites: a subject's head cut from a real photo, and the things a live head can do.

A `FaceSprite` is a square BGR crop around the face of a photo (LFW, NUAA live, or the built-in
example images) with a feathered elliptical alpha mask and the five dlib landmarks (eye corners and
nose) in sprite coordinates. The renderer places it in a scene at any scale; the effects here change
the head itself:

- `with_eyes_closed(amount)`: eyelids drawn over both eyes (skin colour taken from below each eye,
  a dark lash line when nearly shut): amount 0 = open, 1 = shut.
- `turned(yaw_deg)`: the head as a depth map (an ellipsoid with the outline of the mask, plus a nose)
  rotated about its vertical axis: the far cheek is compressed, hidden and darkened, and the nose, which
  stands in front of the face, swings further than the eyes (the parallax a yaw estimator reads in a
  real turn, unlike a flat photo rotated as a plane). Positive yaw moves the nose toward the image's right,
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
NOSE_DEPTH = 0.5  # how far the nose tip stands in front of the face, in eye distances (about 3 cm)
# The head's outline in the sprite (fractions of its side): the alpha mask's ellipse.
HEAD_CENTRE = (0.5, 0.52)
HEAD_AXES = (0.36, 0.47)


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
        """`image`/`alpha` (sprite-sized) as the camera sees them once the head has turned `yaw_deg`."""
        yaw_deg = round(float(yaw_deg) * 2.0) / 2.0  # half-degree steps: the maps are cached per angle
        if abs(yaw_deg) < 0.5:
            return image, alpha
        key = ("turn", yaw_deg)
        if key not in self._cache:
            self._cache[key] = self._turn_maps(np.deg2rad(yaw_deg))
        map_x, map_y, shade = self._cache[key]
        lit = np.clip(image.astype(np.float32) * shade[..., None], 0, 255).astype(np.uint8)
        warped = cv2.remap(lit, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        warped_alpha = cv2.remap(alpha, map_x, map_y, cv2.INTER_LINEAR, borderValue=0)
        return warped, warped_alpha

    def head_depth(self) -> np.ndarray:
        """Depth toward the camera (pixels) of every sprite pixel: an ellipsoid head plus the nose.

        The head is an ellipsoid with the outline of the alpha mask and as deep as it is wide; the nose
        stands NOSE_DEPTH eye distances in front of it at the tip, rising along the ridge from the eyes
        and falling off quickly below the tip and to the sides.
        """
        if "depth" in self._cache:
            return self._cache["depth"]
        side = self.image.shape[1]
        (hx, hy), (ha, hb) = HEAD_CENTRE, HEAD_AXES
        cx, cy, a, b = hx * side, hy * side, ha * side, hb * side
        ys, xs = np.mgrid[0:side, 0:side].astype(np.float32)
        depth = a * np.sqrt(np.clip(1.0 - ((xs - cx) / a) ** 2 - ((ys - cy) / b) ** 2, 0.0, 1.0))
        lm = self.landmarks
        iod = float(np.hypot(lm.left_eye[0] - lm.right_eye[0], lm.left_eye[1] - lm.right_eye[1]))
        eye_y = (lm.right_eye[1] + lm.left_eye[1]) / 2
        tip_y = lm.nose[1] - 0.1 * iod  # dlib's nose point is the base, just under the tip
        along = np.clip((ys - eye_y) / max(tip_y - eye_y, 1.0), 0.0, None)
        profile = np.where(along <= 1.0, along, np.exp(-((along - 1.0) / 0.35) ** 2))
        across = np.exp(-0.5 * ((xs - lm.nose[0]) / (0.22 * iod)) ** 2)
        depth = (depth + NOSE_DEPTH * iod * profile * across).astype(np.float32)
        self._cache["depth"] = depth
        return depth

    def _turn_maps(self, yaw: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """remap() maps and the relative shading for a head turned by `yaw` radians (orthographic view).

        Every sprite pixel is a surface point (x, depth); turning about the vertical axis through the
        head's centre moves it to x' = x cos(yaw) + depth sin(yaw). Along each row the camera sees, at
        each x', the nearest point: scanning in the direction of the turn, a point that lands behind
        one already passed is hidden (the far cheek behind the nose, the side turning away).
        """
        side = self.image.shape[1]
        depth = self.head_depth()
        cx = HEAD_CENTRE[0] * side
        xs = np.arange(side, dtype=np.float32)[None, :] - cx
        landed = xs * np.cos(yaw) + depth * np.sin(yaw)
        order = slice(None) if yaw > 0 else slice(None, None, -1)
        sign = 1.0 if yaw > 0 else -1.0
        map_x = np.empty((side, side), np.float32)
        out_x = np.arange(side, dtype=np.float32) - cx
        for row in range(side):
            seq = sign * landed[row, order]
            visible = seq >= np.maximum.accumulate(seq)
            xp, fp = seq[visible], xs[0, order][visible]
            keep = np.concatenate([[True], np.diff(xp) > 1e-4])  # np.interp needs increasing positions
            map_x[row] = np.interp(sign * out_x, xp[keep], fp[keep]) + cx
        map_y = np.repeat(np.arange(side, dtype=np.float32)[:, None], side, axis=1)
        # Light from the camera side: brightness follows the cosine between the surface normal and the
        # view direction. The photo already carries the frontal shading, so only the change is applied.
        (_, hy), (ha, hb) = HEAD_CENTRE, HEAD_AXES
        ys = np.arange(side, dtype=np.float32)[:, None]
        half_width = ha * side * np.sqrt(np.clip(1.0 - ((ys - hy * side) / (hb * side)) ** 2, 1e-4, 1.0))
        angle = np.arcsin(np.clip(xs / half_width, -1.0, 1.0))
        shade = (0.55 + 0.45 * np.cos(np.clip(angle + yaw, -np.pi / 2, np.pi / 2))) / (0.55 + 0.45 * np.cos(angle))
        return map_x, map_y, shade.astype(np.float32)


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
    cv2.ellipse(alpha, (int(SPRITE_SIDE * HEAD_CENTRE[0]), int(SPRITE_SIDE * HEAD_CENTRE[1])),
                (int(SPRITE_SIDE * HEAD_AXES[0]), int(SPRITE_SIDE * HEAD_AXES[1])), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    alpha = cv2.GaussianBlur(alpha, (0, 0), SPRITE_SIDE * 0.03)
    bx, by = to_sprite(fx, fy)
    box = (int(bx), int(by), int(fw * scale), int(fh * scale))
    return FaceSprite(image=crop, alpha=alpha, landmarks=landmarks, face_box=box, source=source)
