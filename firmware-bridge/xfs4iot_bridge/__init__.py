"""biogate's XFS4IoT side: the message envelope, end-to-end dispense tokens, a reusable service
dispatcher and the Biometric service for the ATM application.

    envelope    parse/build XFS4IoT messages, completion codes
    token       make / verify CashDispenser.Dispense end-to-end tokens
    server      XFS4IoTService: acknowledge, queue, cancel, timeouts, events (transport-agnostic)
    host        ServiceHost: WebSocket endpoints /xfs4iot/v1.0/ (publisher) and /xfs4iot/v1.0/<Service>/
    biometric   BiometricService: the Biometric commands + vendor BiogateAuthorisation.GetDispenseToken
    engine      BiometricEngine protocol, BiogateEngine (face + fingerprint), the face template format
    authoriser  Authoriser protocol (approved amount per verified session), ApprovalLedger, BridgeDevices
    sealed      SealedBox: biometric bytes held AES-GCM sealed in memory
    bridge      start_bridge(cfg, devices, engine, authoriser, dispense_key) -> BridgeHandle;
                dispense_key_from_hex(KeysConfig.dispense_hmac_key)
    config      BridgeConfig, the `[bridge]` section

May import: edge.biometrics, edge.decision, edge.store, edge.audit, drivers, edge.errors (below it); never
edge.config, edge.service, edge.cli or the simulator (above it).
"""
from __future__ import annotations

import importlib

# Re-exports resolved on first use (PEP 562): importing `xfs4iot_bridge.config` (which `edge.config` does)
# must not load the WebSocket server and the biometric engine.
_EXPORTS = {
    "ApprovalLedger": "xfs4iot_bridge.authoriser", "Authorisation": "xfs4iot_bridge.authoriser",
    "Authoriser": "xfs4iot_bridge.authoriser", "BridgeDevices": "xfs4iot_bridge.authoriser",
    "BridgeHandle": "xfs4iot_bridge.bridge", "dispense_key_from_hex": "xfs4iot_bridge.bridge",
    "start_bridge": "xfs4iot_bridge.bridge", "BridgeConfig": "xfs4iot_bridge.config",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'xfs4iot_bridge' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
