"""One error hierarchy with stable codes.

The API, the CLI and the XFS4IoT completion codes all map from these classes. A code is a dotted
string (`device.timeout`, `quality.no_face`, ...); messages are for people and never carry biometric
data.
"""
from __future__ import annotations


class BiogateError(Exception):
    """Base of every error biogate raises on purpose."""

    code: str = "internal.error"
    http_status: int = 500

    def __init__(self, message: str, *, code: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or {}

    def to_dict(self) -> dict:
        body = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


class InputError(BiogateError):
    """The caller handed us something unusable: an unreadable image, a malformed record."""

    code = "input.invalid"
    http_status = 422


class NotFoundError(InputError):
    """The thing named in the request does not exist (customer, session, evidence item...)."""

    code = "input.not_found"
    http_status = 404


class ConflictError(InputError):
    """The request contradicts the current state (session already decided, card already enrolled...)."""

    code = "input.conflict"
    http_status = 409


class ModelError(BiogateError):
    """A model artefact is missing, corrupt or does not match the manifest."""

    code = "model.invalid"
    http_status = 503


class DeviceError(BiogateError):
    """A camera, scanner or dispenser failed (timeouts, line errors, unplugged devices)."""

    code = "device.error"
    http_status = 503


class QualityError(BiogateError):
    """A sample was captured but is not good enough to compare (no face, blurred, ...)."""

    code = "quality.rejected"
    http_status = 422


class LivenessError(BiogateError):
    """A presentation attack was suspected or the liveness challenge failed."""

    code = "liveness.failed"
    http_status = 403


class PolicyError(BiogateError):
    """Policy refuses the operation (locked out, not allowed, attempts exhausted)."""

    code = "policy.refused"
    http_status = 403


class AuthError(BiogateError):
    """Missing or wrong credentials, or a role that may not call this endpoint."""

    code = "auth.denied"
    http_status = 401


class ForbiddenError(AuthError):
    """A valid key whose role may not do this."""

    code = "auth.forbidden"
    http_status = 403


class StorageError(BiogateError):
    """The store failed or detected tampering."""

    code = "storage.error"
    http_status = 500


class ConfigError(BiogateError):
    """The configuration is invalid."""

    code = "config.invalid"
    http_status = 500
