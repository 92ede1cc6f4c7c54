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
"""
from xfs4iot_bridge.authoriser import ApprovalLedger, Authorisation, Authoriser, BridgeDevices
from xfs4iot_bridge.bridge import BridgeHandle, dispense_key_from_hex, start_bridge

__all__ = ["ApprovalLedger", "Authorisation", "Authoriser", "BridgeDevices", "BridgeHandle", "dispense_key_from_hex",
           "start_bridge"]
