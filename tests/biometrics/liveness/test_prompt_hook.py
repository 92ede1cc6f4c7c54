"""Camera.prompt: how the terminal shows the customer the liveness instruction, per camera backend."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from drivers.base import CHALLENGE_ACTIONS, Camera, open_device
from drivers.errors import DeviceError
from simulator.camera.virtual import VirtualCamera

pytestmark = pytest.mark.timeout(60)


class StillCamera(Camera):
    def read(self, timeout: float = 2.0) -> np.ndarray:
        return np.zeros((48, 64, 3), np.uint8)


def test_one_set_of_action_names_everywhere():
    from edge.biometrics.liveness.challenge import ACTIONS
    from edge.config import LivenessConfig
    from simulator.camera.virtual import ACTIONS as SIMULATED, PROMPT_TO_ACTION

    assert ACTIONS == CHALLENGE_ACTIONS == tuple(LivenessConfig().challenges)
    assert {PROMPT_TO_ACTION.get(a, a) for a in CHALLENGE_ACTIONS} == set(SIMULATED)


def test_the_default_prompt_does_nothing():
    StillCamera().prompt("blink")  # a camera without a display: nothing to show, no error


def test_the_virtual_customer_performs_the_prompted_action():
    cam = VirtualCamera(script="live", realtime=False, natural_blinks=False)
    cam.read()
    cam.prompt("look_at_camera")  # an instruction with no simulated reaction
    cam.prompt("move_closer")     # the liveness name of the simulator's "closer"
    scales = []
    for _ in range(20):
        cam.read()
        scales.append(cam.last_info.scale)
        assert cam.last_info.performing == ["closer"]
    assert max(scales) > 1.3
    cam.prompt("blink")
    cam.read()
    assert "blink" in cam.last_info.performing


class _Display(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append((self.path, body))
        self.send_response(400 if body.get("action") == "refuse-me" else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def display():
    _Display.received = []
    server = HTTPServer(("127.0.0.1", 0), _Display)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/prompt", _Display.received
    server.shutdown()
    server.server_close()


def test_the_opencv_backend_posts_challenge_actions(display, example_image):
    url, received = display
    cam = open_device("camera", "opencv", source=str(example_image), prompt_url=url)
    try:
        for action in CHALLENGE_ACTIONS:
            cam.prompt(action)
        cam.prompt("look_at_camera")  # no display action: not sent
    finally:
        cam.close()
    assert received == [("/prompt", {"action": "blink"}), ("/prompt", {"action": "turn_left"}),
                        ("/prompt", {"action": "turn_right"}), ("/prompt", {"action": "closer"})]


def test_an_unreachable_display_is_a_device_error(example_image):
    cam = open_device("camera", "opencv", source=str(example_image), prompt_url="http://127.0.0.1:9/prompt",
                      prompt_timeout=1.0)
    try:
        with pytest.raises(DeviceError) as err:
            cam.prompt("blink")
        assert err.value.code == "device.prompt_failed"
        cam_without_display = open_device("camera", "opencv", source=str(example_image))
        cam_without_display.prompt("blink")  # no prompt_url: nothing to do
        cam_without_display.close()
    finally:
        cam.close()


def test_the_simulator_stream_and_its_prompt_endpoint():
    """End to end over real sockets: the opencv backend reads the MJPEG stream and prompts the customer."""
    virtual = VirtualCamera(script="live", fps=15, natural_blinks=False)
    server = virtual.serve_mjpeg()
    cam = open_device("camera", "opencv", source=server.url, prompt_url=server.prompt_url)
    try:
        assert cam.read(timeout=5.0).shape[2] == 3
        cam.prompt("turn_left")
        for _ in range(10):
            cam.read(timeout=5.0)
            if "turn_left" in (virtual.last_info.performing if virtual.last_info else []):
                break
        assert "turn_left" in virtual.last_info.performing
    finally:
        cam.close()
        server.stop()
        virtual.close()


@pytest.fixture
def example_image():
    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "models" / "artifacts" / "examples" / "obama.jpg"
    if not path.is_file():
        pytest.fail("model artefacts missing: run `make models`", pytrace=False)
    return path
