"""The live camera preview of the enrolment page: the terminal camera's latest frame, smaller, with the face
boxes and the quality findings the face pipeline reports for it.

    preview = CameraPreview(devices, core)      # devices.watch_frames(...) taps every frame read
    view = preview.snapshot()                   # {"frame": JPEG bytes, "faces": [...], "findings": [...]}

When nobody uses the camera, the preview reads a frame itself; while a capture holds it (enrolment,
verification), the preview shows the frames that capture reads, so the teller sees what is being captured.
Findings: "quality.multiple_faces" when more than one face is in view (enrolment wants one person only),
then the pipeline's own findings of the most prominent face ("quality.no_face", "quality.too_dark",
"quality.strong_pose", ...), the same codes the capture gates refuse for.

Privacy: frames are only ever in memory: one latest copy, zeroised when replaced or when the preview closes;
nothing is written or logged, and the browser is told not to cache them.
"""
from __future__ import annotations

import threading
import time

import cv2
import numpy as np

from drivers.errors import DeviceError
from edge.service.biometrics import BiometricCore
from edge.service.devices import TerminalDevices

PREVIEW_SIDE = 480            # longest side of the frame sent to the browser, pixels
PREVIEW_JPEG_QUALITY = 70
FRESH_TAP_S = 1.0             # a tapped frame younger than this is shown instead of reading the camera
READ_TIMEOUT_S = 1.5


class CameraPreview:
    def __init__(self, devices: TerminalDevices, core: BiometricCore):
        self.devices = devices
        self.core = core
        self._latest: np.ndarray | None = None
        self._latest_at = 0.0
        self._lock = threading.Lock()
        devices.watch_frames(self._tap)

    def _tap(self, frame: np.ndarray) -> None:
        with self._lock:
            if self._latest is not None and self._latest.shape == frame.shape:
                np.copyto(self._latest, frame)
            else:
                self._wipe_locked()
                self._latest = frame.copy()
            self._latest_at = time.monotonic()

    def _frame(self) -> np.ndarray | None:
        """A private copy of the newest frame: tapped if fresh, else read now when the camera is free."""
        with self._lock:
            if self._latest is not None and time.monotonic() - self._latest_at < FRESH_TAP_S:
                return self._latest.copy()
        slot = self.devices.slots["camera"]
        if not slot.configured or not slot.lock.acquire(blocking=False):
            with self._lock:   # busy but not reading (between samples): the last frame seen
                return None if self._latest is None else self._latest.copy()
        try:
            with slot.use() as camera:      # the tap copies the frame into _latest
                frame = camera.read(timeout=READ_TIMEOUT_S)
                frame.fill(0)
        except DeviceError:
            return None
        finally:
            slot.lock.release()
        with self._lock:
            return None if self._latest is None else self._latest.copy()

    def snapshot(self) -> dict | None:
        """The preview now, or None when the camera gives nothing. Caller sends it and forgets it."""
        frame = self._frame()
        if frame is None:
            return None
        try:
            faces, findings = self.core.face_overlay(frame)
            h, w = frame.shape[:2]
            scale = min(1.0, PREVIEW_SIDE / max(h, w))
            small = cv2.resize(frame, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA)
            ok, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, PREVIEW_JPEG_QUALITY])
            small.fill(0)
            return {"frame": jpeg.tobytes() if ok else b"", "width": w, "height": h,
                    "faces": [{"x": x0 / w, "y": y0 / h, "w": (x1 - x0) / w, "h": (y1 - y0) / h, "main": main}
                              for (x0, y0, x1, y1), main in faces],
                    "findings": findings}
        finally:
            frame.fill(0)

    def _wipe_locked(self) -> None:
        if self._latest is not None:
            self._latest.fill(0)
            self._latest = None

    def close(self) -> None:
        with self._lock:
            self._wipe_locked()
