"""The virtual cash dispenser: an XFS4IoT CashDispenser service over WebSocket on 127.0.0.1.

    dispenser = start_dispenser(key=bytes.fromhex(cfg.keys.dispense_hmac_key))
    dispenser.url            # ws://127.0.0.1:<port>/xfs4iot/v1.0/CashDispenser1/  (the SERVICE url)
    dispenser.publisher_url  # ws://127.0.0.1:<port>/xfs4iot/v1.0/  (ServicePublisher.GetServices)
    dispenser.dispensed      # [DispenseRecord(amount=Decimal("50.00"), currency="EUR", ...)]
    dispenser.totals()       # {"EUR": Decimal("50.00")}
    dispenser.stop()

It runs its own event loop thread, so threaded and asyncio callers use it alike. The drivers'
`xfs4iot` dispenser backend (drivers/dispenser/xfs4iot.py) talks to `url` (or discovers it from
`publisher_url`). Wire protocol: `simulator.dispenser.service`; token rules: `simulator.dispenser.device`;
the ledger is also readable over the wire with the vendor command `BiogateSimulator.GetDispensed`.

May import: as the simulator package (everything of the product).
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from xfs4iot_bridge.host import RunningService, ServiceHost

from simulator.dispenser.device import CashUnit, DispenseRecord, DispenseRefused, VirtualDispenser, default_units
from simulator.dispenser.service import CashDispenserService

__all__ = ["CashUnit", "DispenseRecord", "DispenseRefused", "RunningDispenser", "VirtualDispenser",
           "default_units", "start_dispenser"]


@dataclass
class RunningDispenser(RunningService):
    device: VirtualDispenser
    service: CashDispenserService
    host: ServiceHost

    @property
    def dispensed(self) -> list[DispenseRecord]:
        return self.device.dispensed

    def totals(self) -> dict[str, Decimal]:
        return self.device.totals()


def start_dispenser(key: bytes | None, host: str = "127.0.0.1", port: int = 0, *,
                    units: list[CashUnit] | None = None, nonce_ttl_s: float = 600.0,
                    service_name: str = "CashDispenser1") -> RunningDispenser:
    """Start the virtual dispenser; `key` is the end-to-end token HMAC key (None/empty: every
    dispense fails with invalidTokenKeyNoValue). `port=0` picks a free port."""
    device = VirtualDispenser(key=bytes(key) if key else None, units=units or default_units(),
                              nonce_ttl_s=nonce_ttl_s)
    service = CashDispenserService(device, name=service_name)
    server = ServiceHost([service], host=host, ports=[port], vendor_name="biogate simulator").start()
    return RunningDispenser(device, service, server)
