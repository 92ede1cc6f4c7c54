"""`opencv` camera backend: a device index, a video file, an image folder or a stream URL.

    cam = open_device("camera", "opencv", source="http://127.0.0.1:8081/stream.mjpg")
    frame = cam.read(timeout=2.0)          # BGR uint8, or a typed DeviceError
    cam.prompt("blink")                    # with prompt_url="http://.../prompt": shown on the terminal

How it never hangs: one reader thread per camera owns the `cv2.VideoCapture` (OpenCV captures are not
thread-safe, and a network read can block for long); `read()` only waits on a mailbox with a deadline.

- Live sources (device index, URL) keep only the newest frame: a consumer that is slow must see what
  the camera sees now, not a backlog.
- Finite sources (video file, image folder, single image) deliver every frame in order; with
  `pace=True` at the file's frame rate (or `fps`), otherwise as fast as they are read. With
  `loop=True` they start over at the end; otherwise `read()` raises `device.end_of_stream`.
"""
from __future__ import annotations

import os
import queue
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

# FFmpeg (inside OpenCV) prints stream notices straight to stderr, e.g. when an MJPEG server closes the
# connection; the driver reports those conditions as typed errors itself, so FFmpeg is kept quiet
# (AV_LOG_QUIET = -8) unless the operator asked for another level. Read by OpenCV when it loads FFmpeg.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from drivers.base import CHALLENGE_ACTIONS, Camera
from drivers.camera.errors import BadFrame, CameraError, CameraTimeout, CameraUnavailable, EndOfStream

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_END = object()  # mailbox marker: the source has no more frames
# Challenge actions the prompt display calls by another name.
PROMPT_WIRE_NAMES = {"move_closer": "closer"}


@dataclass(frozen=True)
class SourceKind:
    kind: str  # "device" | "url" | "video" | "images"
    live: bool  # live sources keep only the newest frame


def classify_source(source: int | str | Path) -> SourceKind:
    """Decide what `source` names; raises CameraUnavailable for paths that do not exist."""
    if isinstance(source, int) or (isinstance(source, str) and source.strip().isdigit()):
        return SourceKind("device", live=True)
    text = str(source)
    if _URL.match(text):
        return SourceKind("url", live=True)
    path = Path(text)
    if path.is_dir():
        return SourceKind("images", live=False)
    if path.is_file():
        return SourceKind("images" if path.suffix.lower() in IMAGE_SUFFIXES else "video", live=False)
    raise CameraUnavailable(f"camera source does not exist: {text}", details={"source": text})


class _Mailbox:
    """Frames from the reader thread to `read()`: a FIFO for files, a newest-only slot for live sources."""

    def __init__(self, latest_only: bool, depth: int = 4):
        self.latest_only = latest_only
        self._queue: queue.Queue = queue.Queue(maxsize=1 if latest_only else depth)

    def put(self, item, stop: threading.Event) -> bool:
        """Deliver `item`; False when the camera was closed while waiting for room."""
        while not stop.is_set():
            if self.latest_only:
                try:  # replace whatever the consumer has not taken yet
                    self._queue.get_nowait()
                except queue.Empty:
                    pass
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self, timeout: float):
        return self._queue.get(timeout=timeout)


class OpenCVCamera(Camera):
    """A camera read through OpenCV (`cv2.VideoCapture`, FFmpeg for files and URLs)."""

    def __init__(
        self,
        source: int | str | Path = 0,
        *,
        pace: bool = False,
        fps: float | None = None,
        loop: bool = False,
        open_timeout: float = 5.0,
        width: int | None = None,
        height: int | None = None,
        prompt_url: str | None = None,
        prompt_timeout: float = 2.0,
    ):
        self.source = source
        self.prompt_url = prompt_url
        self.prompt_timeout = prompt_timeout
        self.kind = classify_source(source)
        self.loop = loop
        self.open_timeout = open_timeout
        self._stop = threading.Event()
        self._mailbox = _Mailbox(latest_only=self.kind.live)
        self._ended = False
        self._closed = False
        self._frames_read = 0

        frames, native_fps = self._open(width, height)
        interval = None
        if pace and not self.kind.live:
            rate = fps or native_fps or 25.0
            interval = 1.0 / rate
        self._thread = threading.Thread(
            target=self._pump, args=(frames, interval), name=f"camera-{self.kind.kind}", daemon=True)
        self._thread.start()

    # -- opening -----------------------------------------------------------------------------------
    def _open(self, width: int | None, height: int | None) -> tuple[Iterator[np.ndarray | None], float | None]:
        """A frame iterator for the source (None items = undecodable frames) and its native fps."""
        if self.kind.kind == "images":
            return self._image_frames(), None
        capture = self._open_capture_with_deadline()
        if width:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        native = capture.get(cv2.CAP_PROP_FPS) or None
        return self._capture_frames(capture), native

    def _open_capture_with_deadline(self) -> cv2.VideoCapture:
        # VideoCapture() on an unreachable URL or a wedged device can block: open in a helper thread
        # and give up after open_timeout (FFmpeg also gets the timeout so the thread ends soon after).
        result: dict = {}
        ms = int(self.open_timeout * 1000)

        def opener() -> None:
            try:
                if self.kind.kind == "device":
                    cap = cv2.VideoCapture(int(self.source))
                else:
                    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
                    cap = cv2.VideoCapture(str(self.source), cv2.CAP_FFMPEG, params)
                result["cap"] = cap
            except cv2.error as exc:  # pragma: no cover - OpenCV raises only on odd builds
                result["error"] = exc

        thread = threading.Thread(target=opener, name="camera-open", daemon=True)
        thread.start()
        thread.join(self.open_timeout + 1.0)
        cap = result.get("cap")
        if thread.is_alive() or cap is None or not cap.isOpened():
            if cap is not None:
                cap.release()
            reason = "timed out" if thread.is_alive() else "could not be opened"
            raise CameraUnavailable(f"camera source {self._describe()} {reason}",
                                    details={"source": self._describe()})
        return cap

    def _capture_frames(self, capture: cv2.VideoCapture) -> Iterator[np.ndarray | None]:
        try:
            while not self._stop.is_set():
                ok, frame = capture.read()
                if ok and frame is not None:
                    yield frame
                    continue
                if self.loop and self.kind.kind == "video":
                    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    ok, frame = capture.read()
                    if ok:
                        yield frame
                        continue
                return
        finally:
            capture.release()  # released by the thread that read from it

    def _image_frames(self) -> Iterator[np.ndarray | None]:
        path = Path(str(self.source))
        files = ([path] if path.is_file() else
                 sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        if not files:
            return
        while not self._stop.is_set():
            for file in files:
                yield cv2.imread(str(file), cv2.IMREAD_COLOR)
            if not self.loop:
                return

    # -- the reader thread -------------------------------------------------------------------------
    def _pump(self, frames: Iterator[np.ndarray | None], interval: float | None) -> None:
        next_due = time.monotonic()
        try:
            for frame in frames:
                if interval is not None:
                    delay = next_due - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        break
                    next_due = max(next_due + interval, time.monotonic() - interval)
                item = frame if frame is not None else BadFrame(
                    f"an undecodable frame in {self._describe()}", details={"source": self._describe()})
                if not self._mailbox.put(item, self._stop):
                    break
        except Exception as exc:  # a driver failure must reach read(), not die silently in a thread
            self._mailbox.put(CameraError(f"camera reader failed: {exc}"), self._stop)
            return
        finally:
            frames.close()  # runs the generator's cleanup (capture.release) in this thread
        self._mailbox.put(_END, self._stop)

    # -- the Camera interface ----------------------------------------------------------------------
    def read(self, timeout: float = 2.0) -> np.ndarray:
        if self._closed:
            raise CameraUnavailable("the camera was closed", details={"source": self._describe()})
        if self._ended:
            raise EndOfStream(f"no more frames in {self._describe()}", details={"source": self._describe()})
        try:
            item = self._mailbox.get(timeout=max(0.0, timeout))
        except queue.Empty:
            if not self._thread.is_alive():  # a live source that stopped delivering for good
                self._ended = True
                raise CameraUnavailable(f"camera source {self._describe()} stopped",
                                        details={"source": self._describe()}) from None
            raise CameraTimeout(f"no frame from {self._describe()} within {timeout:.2f} s",
                                details={"source": self._describe(), "timeout_s": timeout}) from None
        if item is _END:
            self._ended = True
            if self.kind.live:  # a stream that ends is a camera that went away
                raise CameraUnavailable(f"camera stream {self._describe()} ended",
                                        details={"source": self._describe()})
            raise EndOfStream(f"no more frames in {self._describe()}", details={"source": self._describe()})
        if isinstance(item, CameraError):
            raise item
        self._frames_read += 1
        return item

    def prompt(self, action: str) -> None:
        """Show a liveness instruction on the terminal's display, when `prompt_url` names one.

        POSTs {"action": ...} to `prompt_url` (the simulator's MJPEG server: POST <base>/prompt) for the
        challenge actions of drivers.base.CHALLENGE_ACTIONS, "move_closer" sent as "closer" (the
        display's name for it); other instructions have no display action and are not sent. A display
        that cannot be reached is a device error: the customer would never see the instruction.
        """
        if not self.prompt_url or action not in CHALLENGE_ACTIONS:
            return
        import httpx

        wire = PROMPT_WIRE_NAMES.get(action, action)
        target = re.sub(r"//[^/@]*@", "//***@", self.prompt_url)
        try:
            response = httpx.post(self.prompt_url, json={"action": wire}, timeout=self.prompt_timeout)
        except httpx.HTTPError as exc:
            raise CameraError(f"prompt display {target} unreachable: {exc.__class__.__name__}",
                              code="device.prompt_failed", details={"url": target}) from None
        if response.status_code >= 300:
            raise CameraError(f"prompt display {target} refused {wire!r} (HTTP {response.status_code})",
                              code="device.prompt_failed", details={"url": target, "status": response.status_code})

    @property
    def frames_read(self) -> int:
        return self._frames_read

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join(timeout=max(2.0, self.open_timeout))

    def _describe(self) -> str:
        text = str(self.source)
        # never echo credentials embedded in a stream URL (rtsp://user:pass@host/...)
        return re.sub(r"//[^/@]*@", "//***@", text)


__all__ = ["OpenCVCamera", "classify_source", "SourceKind"]
