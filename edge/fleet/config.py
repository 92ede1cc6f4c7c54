"""The fleet sections of the configuration: `[fleet]` (a terminal in a fleet) and `[registry]` (the registry)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from edge.sections import Section


class FleetConfig(Section):
    """edge.fleet: this terminal as a member of a fleet (`biogate serve --registry URL`)."""

    registry_url: str | None = Field(None, description="the registry's base URL; None: a terminal on its own")
    credentials_file: str = Field("fleet-credentials.json", description="under paths.state_dir (0600): what "
                                  "`biogate registry add-terminal` printed: terminal_id, token, transport_key")
    offline_policy: Literal["refuse", "cached_only"] = Field(
        "cached_only", description="without the registry: refuse every biometric verification, or verify only "
                                   "customers this terminal holds, within the offline amount cap")
    offline_amount_cap_usd: float = Field(200.0, ge=0, description="per card, allowed in total while offline "
                                                                   "(0: nothing is dispensed offline)")
    cache_max_customers: int = Field(10_000, ge=1, description="card holders kept on the terminal at most")
    cache_max_age_s: float = Field(7 * 86400.0, gt=0, description="a cached card holder is fetched again after this")
    upload_interval_s: float = Field(1.0, gt=0, description="the outbox is sent at least this often")
    change_wait_s: float = Field(20.0, gt=0, le=60, description="long-poll wait on the registry's change feed")
    request_timeout_s: float = Field(5.0, gt=0)
    retry_max_s: float = Field(10.0, gt=0, description="longest pause between attempts while the registry is away")
    online_grace_s: float = Field(30.0, gt=0, description="the registry counts as online this long after the "
                                                          "last successful exchange")


class RegistryConfig(Section):
    """edge.registry: the fleet registry (`biogate registry serve`), stateless apart from PostgreSQL."""

    dsn: str = Field("host=127.0.0.1 port=5432 dbname=biogate user=biogate", description="libpq connection string")
    host: str = "127.0.0.1"
    port: int = Field(8090, ge=0, le=65535)
    secrets_file: str = Field("registry-secrets.json", description="under paths.state_dir (0600): the registry's "
                                                                   "data keys and API keys per role")
    pool_max: int = Field(20, ge=1, le=500, description="PostgreSQL connections per registry process")
    max_change_wait_s: float = Field(25.0, gt=0, le=120, description="longest long-poll on the change feed")
