"""The bridge section of the configuration (`[bridge]`): the XFS4IoT Biometric service for the ATM application."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from edge.sections import Section


class BridgeConfig(Section):
    """firmware-bridge (xfs4iot_bridge): the XFS4IoT Biometric service for the ATM application."""

    enabled: bool = True
    host: str = "127.0.0.1"
    # The first port of the list that is free is used. XFS4IoT reserves 5846-5856; 0 = any free port.
    ports: list[int] = Field(default_factory=lambda: list(range(5846, 5857)), min_length=1)
    service_name: str = Field("Biometric1", pattern=r"^[A-Za-z][A-Za-z0-9]*$")
    vendor_name: str = "biogate"
    max_requests: int = Field(16, ge=1, le=1000, description="unfinished commands per connection (tooManyRequests)")
    template_capacity: int = Field(64, ge=1, le=100_000, description="imported templates held at once")
    capture_timeout_s: float = Field(15.0, gt=0, description="Biometric.Read waits this long for a subject")
    max_captures: int = Field(10, ge=1, le=100, description="rejected captures before Read fails (numCaptures 0)")
    subject_removed_timeout_s: float = Field(30.0, gt=0, description="watch for the finger lifting this long")
    client_token: str | None = Field(None, min_length=16, description=(
        "the connection token every XFS4IoT client presents at the WebSocket handshake (Authorization: Bearer); "
        "the daemon sets it from secrets.json (bridge_client_token), so this stays unset there"))
    return_template_data: bool = Field(False, description="Biometric.Read in scan mode hands templates to the "
                                                          "client; off, it answers modeNotSupported")
    max_matches_per_minute: int = Field(30, ge=1, le=10_000, description="Biometric.Match calls per minute "
                                                                          "(all clients); more: fraudAttempt")
    token_ttl_s: float = Field(60.0, gt=0, description="a dispense token from GetDispenseToken is useless after "
                                                       "this (the daemon uses service.token_ttl_s instead)")
    data_persistence: Literal["persist", "clear"] = Field(
        "clear", description="initial Biometric data persistence mode (clear: captured data is dropped once used)")

    @field_validator("ports")
    @classmethod
    def _ports_in_range(cls, ports: list[int]) -> list[int]:
        if any(not 0 <= p <= 65535 for p in ports):
            raise ValueError("ports must be 0..65535")
        return ports
