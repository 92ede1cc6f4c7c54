"""Fixtures for the XFS4IoT bridge: the real face engine, simulated devices, a running bridge."""
from __future__ import annotations

import base64
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from drivers.base import FingerprintScanner
from edge.config import BridgeConfig
from tests.conftest import require_data
from xfs4iot_bridge import ApprovalLedger, BridgeDevices, start_bridge
from tests.bridge.xfs_client import TEST_CLIENT_TOKEN
from xfs4iot_bridge.engine import BiogateEngine

FACE = "reservedTemplate1"
FINGER = "isoFmd"
KEY = bytes.fromhex("a1" * 32)


@pytest.fixture(scope="session")
def face_pipeline(config):
    from edge.biometrics.face import FacePipeline

    if not (config.paths.models_dir / "face_embedder.onnx").exists():
        pytest.skip("face models not built (run `make models`)")
    return FacePipeline(config.face, config.paths.models_dir)


@pytest.fixture(scope="session")
def engine(face_pipeline) -> BiogateEngine:
    engine = BiogateEngine(face_pipeline)
    engine.warm_up()   # the finger matcher's JIT compilation, once per test session
    return engine


@pytest.fixture(scope="session")
def face_templates(engine, config) -> dict[str, str]:
    """Enrolment templates (base64) from the example photos: obama2 is the customer the virtual
    camera shows (`example:obama`, another photo), biden an impostor."""
    from edge.biometrics.face import load_image

    out = {}
    for name in ("obama2", "biden"):
        path = config.paths.models_dir / "examples" / f"{name}.jpg"
        if not path.exists():
            pytest.skip(f"example photo {path} not built (run `make models`)")
        template = engine.face_template(load_image(path))
        assert template is not None, name
        out[name] = base64.b64encode(template).decode("ascii")
    return out


def import_payload(*templates: tuple[str, str]) -> dict:
    return {"templates": [{"type": {"format": fmt}, "data": data} for fmt, data in templates]}


def live_camera():
    from simulator.camera.virtual import VirtualCamera

    return VirtualCamera(script="live", subject="example:obama", realtime=False)


def empty_camera():
    """Nobody in front of the camera: a Read waits (paced at 15 fps, to spare the CPU)."""
    from simulator.camera.virtual import VirtualCamera

    return VirtualCamera(script="no_face", realtime=True)


class FvcScanner(FingerprintScanner):
    """A scanner whose 'finger' is a real FVC2000 image: it lands `arrive_s` after the first
    presence query and lifts `lift_s` after the capture."""

    def __init__(self, image_path: Path, arrive_s: float = 0.2, lift_s: float = 0.3):
        import cv2

        self.image = cv2.imread(str(image_path), cv2.IMREAD_GRAYSCALE)
        assert self.image is not None, image_path
        self.arrive_s, self.lift_s = arrive_s, lift_s
        self._lock = threading.Lock()
        self._arrives_at: float | None = None
        self._lifts_at: float | None = None
        self.captures = 0

    def finger_present(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if self._lifts_at is not None:
                if now < self._lifts_at:
                    return True
                self._lifts_at = None
                self._arrives_at = None
                return False
            if self._arrives_at is None:
                self._arrives_at = now + self.arrive_s
            return now >= self._arrives_at

    def capture(self, timeout: float = 10.0) -> np.ndarray:
        with self._lock:
            self.captures += 1
            self._lifts_at = time.monotonic() + self.lift_s
            return self.image.copy()


def fvc_image(db: str, finger: int, impression: int) -> Path:
    return require_data("fingerprints", "fvc2000", db, f"{finger}_{impression}.tif")


@pytest.fixture()
def ledger() -> ApprovalLedger:
    return ApprovalLedger()


@pytest.fixture()
def make_bridge(engine, ledger):
    """start_bridge with test settings; every bridge started is stopped afterwards."""
    started = []

    def make(devices: BridgeDevices | None = None, *, dispense_key: bytes | None = KEY, **overrides):
        settings = {"ports": [0], "capture_timeout_s": 5.0, "subject_removed_timeout_s": 5.0,
                    "client_token": TEST_CLIENT_TOKEN, "return_template_data": True, **overrides}
        handle = start_bridge(BridgeConfig(**settings), devices or BridgeDevices(camera=live_camera()),
                              engine, ledger, dispense_key)
        started.append(handle)
        return handle

    yield make
    for handle in started:
        handle.stop()
