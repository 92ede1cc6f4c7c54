"""Errors carry codes, not transports: the HTTP status (edge.service.errors) and the XFS4IoT completion code
(xfs4iot_bridge.server) are looked up from the code, and every class keeps the status it always had."""
from __future__ import annotations

import pytest

from drivers.camera.errors import CameraTimeout
from drivers.dispenser.errors import DispenserCommandFailed, DispenseTokenRefused
from drivers.errors import DeviceError
from drivers.fingerprint.errors import NoFingerError
from edge import errors as E
from edge.service.errors import http_status
from xfs4iot_bridge.envelope import CompletionCode
from xfs4iot_bridge.server import completion_code_for


@pytest.mark.parametrize("error, status", [
    (E.InputError("x"), 422), (E.NotFoundError("x", code="input.unknown_session"), 404),
    (E.ConflictError("x", code="input.session_closed"), 409), (E.ModelError("x"), 503),
    (E.QualityError("x", code="quality.no_face"), 422), (E.LivenessError("x"), 403), (E.PolicyError("x"), 403),
    (E.AuthError("x", code="auth.invalid_key"), 401), (E.ForbiddenError("x", code="auth.forbidden_role"), 403),
    (E.StorageError("x"), 500), (E.StorageError("x", code="storage.tampered"), 409), (E.ConfigError("x"), 500),
    (E.BiogateError("x"), 500),
    (DeviceError("x"), 503), (CameraTimeout("x"), 503),
    (NoFingerError("x", confirmation=2, name="no_finger", model="zfm"), 503),
    (DispenserCommandFailed("x", "hardwareError"), 503), (DispenseTokenRefused("x", "invalidToken"), 401),
])
def test_http_status_of_each_kind(error, status):
    assert http_status(error) == status


def test_no_error_class_carries_a_transport():
    for cls in (E.BiogateError, E.InputError, E.AuthError, DeviceError):
        assert not hasattr(cls, "http_status")


@pytest.mark.parametrize("code, completion", [
    ("device.timeout", CompletionCode.TIME_OUT), ("device.disconnected", CompletionCode.HARDWARE_ERROR),
    ("quality.no_face", CompletionCode.USER_ERROR), ("liveness.planar_motion", CompletionCode.USER_ERROR),
    ("input.finger_template", CompletionCode.INVALID_DATA), ("policy.not_authorised",
                                                              CompletionCode.AUTHORISATION_REQUIRED),
    ("auth.dispense_token_refused", CompletionCode.AUTHORISATION_REQUIRED),
    ("storage.tampered", CompletionCode.INTERNAL_ERROR), ("model.missing", CompletionCode.INTERNAL_ERROR),
])
def test_completion_code_of_each_error_code(code, completion):
    assert completion_code_for(code) is completion
