"""Fixtures for the driver tests: virtual fingerprint modules that are always closed afterwards."""
from __future__ import annotations

import pytest

from simulator.fingerprint import VirtualModule


@pytest.fixture
def make_module():
    """make_module(profile="zfm", source="synthetic", **options) -> a started VirtualModule."""
    modules: list[VirtualModule] = []

    def make(profile: str = "zfm", source="synthetic", **options) -> VirtualModule:
        module = VirtualModule(profile, source, **options).start()
        modules.append(module)
        return module

    yield make
    for module in modules:
        module.close()
        assert not module.errors, module.errors  # the emulator itself must never crash
