"""The `opencv` camera backend on its real capture paths: a video file written with cv2.VideoWriter, and
the simulator's MJPEG stream over HTTP on 127.0.0.1 (FFmpeg inside OpenCV does the reading)."""
from __future__ import annotations

import time

import cv2
import httpx
import numpy as np
import pytest

from drivers.base import open_device
from drivers.camera.errors import CameraTimeout, CameraUnavailable, EndOfStream
from drivers.camera.opencv import OpenCVCamera
from simulator.camera.sources import SubjectNotFound, default_subject
from simulator.camera.virtual import VirtualCamera

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def have_faces():
    try:
        default_subject()
    except SubjectNotFound as exc:
        pytest.skip(f"no face images for the virtual camera: {exc}")


def render(camera: VirtualCamera, n: int) -> list[np.ndarray]:
    return [camera.read() for _ in range(n)]


def write_video(path, frames: list[np.ndarray], fps: float) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened(), "OpenCV cannot write MJPG/AVI here"
    for frame in frames:
        writer.write(frame)
    writer.release()


def test_video_file_frames_in_order_then_end_of_stream(tmp_path, have_faces):
    camera = VirtualCamera("approach_look_leave", realtime=False, seed=4)
    frames = render(camera, 24)
    path = tmp_path / "vestibule.avi"
    write_video(path, frames, fps=15)

    with open_device("camera", "opencv", source=str(path)) as cam:
        assert isinstance(cam, OpenCVCamera) and cam.kind.kind == "video" and not cam.kind.live
        read = [cam.read(timeout=5.0) for _ in range(len(frames))]
        with pytest.raises(EndOfStream) as err:
            cam.read(timeout=5.0)
        assert err.value.code == "device.end_of_stream"
    for original, decoded in zip(frames, read):
        assert decoded.shape == original.shape and decoded.dtype == np.uint8
        # MJPG is lossy: the decoded frame is close to the one written, and far from the others
        assert np.abs(decoded.astype(int) - original).mean() < 6
    # the scene changes over the script (nobody at first, then someone walks up): frame order is kept
    assert np.abs(read[0].astype(int) - read[-1]).mean() > np.abs(read[-1].astype(int) - frames[-1]).mean()


def test_video_file_paced_and_looped(tmp_path, have_faces):
    frames = render(VirtualCamera("live", realtime=False, seed=1), 6)
    path = tmp_path / "loop.avi"
    write_video(path, frames, fps=20)
    with open_device("camera", "opencv", source=str(path), pace=True, loop=True) as cam:
        start = time.monotonic()
        got = [cam.read(timeout=5.0) for _ in range(15)]  # 2.5 passes over 6 frames
        elapsed = time.monotonic() - start
    assert len(got) == 15
    assert elapsed >= 14 / 20 * 0.8  # paced at the file's 20 fps, not as fast as decoding goes
    assert np.abs(got[0].astype(int) - got[6]).mean() < 1  # frame 6 is frame 0 again


def test_missing_and_corrupt_sources_are_typed(tmp_path):
    with pytest.raises(CameraUnavailable):
        open_device("camera", "opencv", source=str(tmp_path / "absent.avi"))
    bogus = tmp_path / "bogus.avi"
    bogus.write_bytes(b"not a video at all" * 100)
    with pytest.raises(CameraUnavailable):
        open_device("camera", "opencv", source=str(bogus), open_timeout=3.0)


@pytest.fixture
def stream(have_faces):
    camera = VirtualCamera("live", fps=15, seed=2)
    server = camera.serve_mjpeg()
    yield camera, server
    server.stop()
    camera.close()


def test_mjpeg_stream_through_the_opencv_backend(stream):
    camera, server = stream
    with open_device("camera", "opencv", source=server.url, prompt_url=server.prompt_url) as cam:
        assert cam.kind.kind == "url" and cam.kind.live
        first = [cam.read(timeout=5.0) for _ in range(5)]
        assert all(f.shape == (480, 640, 3) and f.dtype == np.uint8 for f in first)
        bright = float(np.mean(first[-1]))

        # the control surface reaches the scene: a dark vestibule shows up in the stream
        reply = httpx.post(server.base_url + "/present", json={"script": "dark"}, timeout=5)
        assert reply.status_code == 200 and camera.script == "dark"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if float(np.mean(cam.read(timeout=5.0))) < bright * 0.7:
                break
        else:
            pytest.fail("the stream never showed the dark scene")

        # the terminal's prompt reaches the simulated customer through the backend's prompt_url
        camera.present("live")
        cam.prompt("blink")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            cam.read(timeout=5.0)
            if camera.last_info is not None and "blink" in camera.last_info.performing:
                break
        else:
            pytest.fail("the prompted blink never appeared")


def test_mjpeg_unplug_freeze_and_replug_as_the_backend_sees_them(stream):
    camera, server = stream
    cam = open_device("camera", "opencv", source=server.url, open_timeout=5.0)
    try:
        cam.read(timeout=5.0)
        httpx.post(server.base_url + "/fault", json={"fault": "freeze"}, timeout=5)
        with pytest.raises((CameraTimeout, CameraUnavailable)):
            for _ in range(100):  # frames already in flight drain first
                cam.read(timeout=1.0)
        httpx.post(server.base_url + "/fault", json={"fault": "unplug"}, timeout=5)
    finally:
        cam.close()
    with pytest.raises(CameraUnavailable):
        open_device("camera", "opencv", source=server.url, open_timeout=3.0)
    httpx.post(server.base_url + "/fault", json={"fault": "replug"}, timeout=5)
    with open_device("camera", "opencv", source=server.url, open_timeout=5.0) as again:
        assert again.read(timeout=5.0).shape == (480, 640, 3)
