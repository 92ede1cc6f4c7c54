"""Starting the firmware bridge: the XFS4IoT Biometric service on the first free XFS4IoT port.

    handle = start_bridge(cfg.bridge, BridgeDevices(camera=cam, scanner=scanner, dispenser=dispenser),
                          BiogateEngine(face_pipeline), authoriser,
                          dispense_key=dispense_key_from_hex(cfg.keys.dispense_hmac_key))
    handle.urls      # {"publisher": "ws://127.0.0.1:5846/xfs4iot/v1.0/",
                     #  "Biometric1": "ws://127.0.0.1:5846/xfs4iot/v1.0/Biometric1/"}
    handle.port      # 5846 (the first free of cfg.ports)
    handle.stop()

The service runs in its own thread with its own event loop, so `biogate serve` (uvicorn) and
threaded callers start it the same way. Callers check `cfg.enabled` first; starting a disabled
bridge is a ConfigError.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from xfs4iot_bridge.config import BridgeConfig
from edge.errors import ConfigError

from xfs4iot_bridge.authoriser import Authoriser, BridgeDevices
from xfs4iot_bridge.biometric import AuditHook, BiometricService
from xfs4iot_bridge.dispense import DispenseTokens
from xfs4iot_bridge.engine import BiometricEngine
from xfs4iot_bridge.host import RunningService, ServiceHost

log = logging.getLogger("xfs4iot_bridge")


@dataclass
class BridgeHandle(RunningService):
    host: ServiceHost
    service: BiometricService


def start_bridge(cfg: BridgeConfig, devices: BridgeDevices, engine: BiometricEngine,
                 authoriser: Authoriser | None, dispense_key: bytes | None,
                 tokens: DispenseTokens | None = None, audit: AuditHook | None = None) -> BridgeHandle:
    """Serve the Biometric service (and its publisher) until `.stop()`. `tokens`: the dispense authorisations
    to share with the host (the daemon's API); without, the bridge makes its own from `dispense_key`. `audit`:
    called with (event, details) for every Read, Match, Import and token (the daemon writes its audit log).
    A bridge without `cfg.client_token` is refused: XFS4IoT clients authenticate (docs/security-B.md)."""
    if not cfg.enabled:
        raise ConfigError("the XFS4IoT bridge is disabled (bridge.enabled = false)")
    if not cfg.client_token:
        raise ConfigError("the XFS4IoT bridge needs bridge.client_token: clients authenticate with it")
    service = BiometricService(cfg, devices, engine, authoriser, dispense_key, tokens, audit)
    host = ServiceHost([service], host=cfg.host, ports=cfg.ports, vendor_name=cfg.vendor_name,
                       client_token=cfg.client_token).start()
    warm_up = getattr(engine, "warm_up", None)
    if callable(warm_up):  # one-time compilation in the background, not in the first customer's Match
        threading.Thread(target=_warm_up, args=(warm_up,), name="xfs4iot-engine-warm-up", daemon=True).start()
    return BridgeHandle(host, service)


def dispense_key_from_hex(hex_key: str | None) -> bytes | None:
    """KeysConfig.dispense_hmac_key (hex) as the key bytes start_bridge / start_dispenser take."""
    if not hex_key:
        return None
    try:
        return bytes.fromhex(hex_key)
    except ValueError:
        raise ConfigError("keys.dispense_hmac_key must be a hex string") from None


def _warm_up(warm_up) -> None:
    try:
        warm_up()
    except Exception:  # only a head start: a failure here shows again, typed, in the first Match
        log.warning("engine warm-up failed", exc_info=True)
