"""The backend table (drivers.base): resolved lazily, plugins by entry point, every backend closable twice."""
from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from drivers.base import BACKENDS, KINDS, available_backends, backend_class, open_device
from edge.errors import ConfigError
from simulator.dispenser import start_dispenser


def test_importing_the_interfaces_imports_no_backend():
    code = ("import sys, drivers.base; "
            "print(sorted(m for m in sys.modules if m.startswith(('drivers.camera', 'drivers.fingerprint', "
            "'drivers.dispenser', 'simulator', 'cv2', 'serial'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_table_names_no_simulator_module_and_plugins_are_found():
    assert all(not target.startswith("simulator") for table in BACKENDS.values() for target in table.values())
    assert set(available_backends("camera")) >= {"opencv", "simulated", "rig"}   # the last two: entry points
    assert available_backends("fingerprint") == ["zfm"] and available_backends("dispenser") == ["xfs4iot"]
    assert backend_class("camera", "simulated").__module__ == "simulator.camera.virtual"


def test_an_unknown_backend_is_a_config_error_naming_the_known_ones():
    with pytest.raises(ConfigError, match="known: opencv, rig, simulated"):
        open_device("camera", "usb3000")
    assert set(KINDS) == set(BACKENDS)


def test_every_backend_closes_twice_harmlessly(tmp_path, make_module):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((48, 64, 3), np.uint8))
    devices = [open_device("camera", "opencv", source=str(tmp_path)),
               open_device("camera", "simulated", script="no_face", realtime=False)]
    module = make_module()
    devices.append(open_device("fingerprint", "zfm", port=module.port))
    dispenser = start_dispenser(b"\x01" * 32)
    try:
        devices.append(open_device("dispenser", "xfs4iot", url=dispenser.url))
        for device in devices:
            device.close()
            device.close()
    finally:
        dispenser.stop()
