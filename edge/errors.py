"""The error root: one hierarchy with stable codes, and nothing else (this module imports nothing).

A code is a dotted string (`input.unknown_session`, `quality.no_face`, ...); each class below carries the
default code of its kind, and an instance may name a more precise one. The errors carry no transport:
the HTTP status of each code is looked up in one table in the service (`edge.service.api.errors`), the
XFS4IoT completion code in one table in the bridge (`xfs4iot_bridge.server`), the CLI prints the code.
Device errors have their own root in `drivers.errors` (a `BiogateError` with `device.*` codes).
Messages are for people and never carry biometric data.
"""
from __future__ import annotations


class BiogateError(Exception):
    """Base of every error biogate raises on purpose."""

    code: str = "internal.error"

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

    @classmethod
    def kind_codes(cls) -> list[str]:
        """The default codes of this class and its ancestors, most specific first (for lookup tables)."""
        return [k.__dict__["code"] for k in cls.__mro__ if "code" in k.__dict__]


class InputError(BiogateError):
    """The caller handed us something unusable: an unreadable image, a malformed record."""

    code = "input.invalid"


class NotFoundError(InputError):
    """The thing named in the request does not exist (customer, session, evidence item...)."""

    code = "input.not_found"


class ConflictError(InputError):
    """The request contradicts the current state (session already decided, card already enrolled...)."""

    code = "input.conflict"


class ModelError(BiogateError):
    """A model artefact is missing, corrupt or does not match the manifest."""

    code = "model.invalid"


class QualityError(BiogateError):
    """A sample was captured but is not good enough to compare (no face, blurred, ...)."""

    code = "quality.rejected"


class LivenessError(BiogateError):
    """A presentation attack was suspected or the liveness challenge failed."""

    code = "liveness.failed"


class PolicyError(BiogateError):
    """Policy refuses the operation (locked out, not allowed, attempts exhausted)."""

    code = "policy.refused"


class AuthError(BiogateError):
    """Missing or wrong credentials, or a role that may not call this endpoint."""

    code = "auth.denied"


class ForbiddenError(AuthError):
    """A valid key whose role may not do this."""

    code = "auth.forbidden"


class StorageError(BiogateError):
    """The store failed or detected tampering."""

    code = "storage.error"


class ConfigError(BiogateError):
    """The configuration is invalid."""

    code = "config.invalid"
