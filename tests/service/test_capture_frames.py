"""Frames read for a capture are biometric samples: a camera that fails midway must not leave the frames already
read lying in memory (the caller never received them, so nobody else could wipe them)."""
from __future__ import annotations

import pytest

from drivers.errors import DeviceError
from edge.service.verification import VerificationService
from simulator.camera.virtual import VirtualCamera


class UnpluggedAfter:
    """The simulated camera, unplugged by its cable after `reads` frames (a real fault of the simulator)."""

    def __init__(self, camera: VirtualCamera, reads: int):
        self.camera, self.reads, self.seen = camera, reads, []

    def read(self, timeout: float = 2.0):
        if len(self.seen) == self.reads:
            self.camera.unplug()
        frame = self.camera.read(timeout)
        self.seen.append(frame)
        return frame


def test_frames_read_before_a_camera_fault_are_zeroised():
    camera = UnpluggedAfter(VirtualCamera("live", realtime=False, seed=3), reads=2)
    with pytest.raises(DeviceError) as err:
        VerificationService._read_frames(camera, 5)
    assert err.value.code == "device.camera_unavailable"
    assert len(camera.seen) == 2
    assert all(not frame.any() for frame in camera.seen)


def test_frames_read_without_a_fault_are_handed_over_untouched():
    camera = UnpluggedAfter(VirtualCamera("live", realtime=False, seed=3), reads=10)
    frames = VerificationService._read_frames(camera, 3)
    assert len(frames) == 3 and all(frame.any() for frame in frames)
