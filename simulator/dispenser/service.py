"""The virtual dispenser as an XFS4IoT CashDispenser service (commands -> `VirtualDispenser`).

Commands (header/envelope handled by `xfs4iot_bridge.server.XFS4IoTService`):

    Common.Status                  {common: {device, devicePosition, endToEndSecurity}, cashDispenser: {...}}
    Common.Capabilities            {interfaces, common: {endToEndSecurity: {...}}, cashDispenser: {...}}
    Common.GetCommandNonce         -> {commandNonce: "<32 hex>"}
    Common.ClearCommandNonce       -> {}
    CashDispenser.Dispense         {denomination: {currencies: {"EUR": 50.00}, values?: {unit: n}},
                                    position?: "default"|"center", token: "<end-to-end token>"}
                                   -> {currencies: {"EUR": 50.0}, values: {unit: n}}
    CashDispenser.Present          -> {position, sequence}: the stacker's notes to the output (shutterNotOpen, noItems)
    CashManagement.Retract         -> {sequence}: notes at the output or in the stacker into the retract cassette
    (a jammed mechanism answers hardwareError to GetCommandNonce, Dispense, Present and Retract)
    BiogateSimulator.GetDispensed  (vendor query, not XFS4IoT) -> {dispensed: [record...],
                                    totals: {"EUR": 50.0}, cashUnits: {...}}

Dispense refusals: a token problem completes with its end-to-end completion code (invalidToken,
invalidTokenNonce, invalidTokenHMAC, invalidTokenFormat, noCommandNonce, invalidTokenKeyNoValue); a
payload problem with invalidData; a mechanism problem with commandErrorCode + payload.errorCode
(invalidCurrency, invalidDenomination, notDispensable, unsupportedPosition, noCurrencyMix).
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from xfs4iot_bridge.envelope import CompletionCode
from xfs4iot_bridge.server import CommandContext, CommandError, XFS4IoTService, command_error
from xfs4iot_bridge.token import TokenError

from simulator.dispenser.device import DispenseRefused, MechanismFault, VirtualDispenser

POSITIONS = ("default", "center")  # one output slot, in the middle


class CashDispenserService(XFS4IoTService):
    def __init__(self, device: VirtualDispenser, name: str = "CashDispenser1"):
        super().__init__(name, interface="CashDispenser")
        self.device = device
        self.wire_taps: list = []   # callables(direction, text, connection): "host" (to us) / "dispenser" (from us)
        self._connections_served = 0
        self.register("Common.Status", self._status, versions=("3.0",), immediate=True)
        self.register("Common.Capabilities", self._capabilities, versions=("3.0",), immediate=True)
        self.register("Common.GetCommandNonce", self._get_nonce)
        self.register("Common.ClearCommandNonce", self._clear_nonce)
        self.register("CashDispenser.Dispense", self._dispense, versions=("3.0",))
        self.register("CashDispenser.Present", self._present)
        self.register("CashManagement.Retract", self._retract)
        self.register("BiogateSimulator.GetDispensed", self._get_dispensed, immediate=True)

    async def serve(self, send_text, receive_text) -> None:
        """One connection, with every message both ways passed to `wire_taps` (the recorder), numbered by
        connection (request ids are only unique within one)."""
        self._connections_served += 1
        number = self._connections_served

        async def sending(text):
            self._tap("dispenser", text, number)
            await send_text(text)

        async def receiving():
            text = await receive_text()
            if text is not None:
                self._tap("host", text, number)
            return text
        await super().serve(sending, receiving)

    def _tap(self, direction: str, text, connection: int) -> None:
        for tap in list(self.wire_taps):
            try:
                tap(direction, text if isinstance(text, str) else bytes(text).decode("utf-8", "replace"), connection)
            except Exception:  # a listener must never break the connection
                pass

    async def _status(self, ctx: CommandContext) -> dict[str, Any]:
        st = self.device.state()
        return {
            "common": {"device": "hardwareError" if st["jammed"] else "online", "devicePosition": "inPosition",
                       "endToEndSecurity": {"commandNonceSet": self.device.has_nonce}},
            "cashDispenser": {"intermediateStacker": "notEmpty" if st["stacker"] else "empty", "positions": [
                {"position": "center", "shutter": st["shutter"],
                 "positionStatus": "notEmpty" if st["position"] else "empty",
                 "transport": "inoperative" if st["jammed"] else "ok", "transportStatus": "empty"}]},
        }

    async def _capabilities(self, ctx: CommandContext) -> dict[str, Any]:
        return {
            "interfaces": self.interfaces(),
            "common": {"endToEndSecurity": {"required": "always", "hardwareSecurityElement": False,
                                            "responseSecurityEnabled": "notSupported",
                                            "commands": ["CashDispenser.Dispense"],
                                            "commandNonceTimeout": int(self.device.nonce_ttl_s)}},
            "cashDispenser": {"type": "selfServiceBill", "maxDispenseItems": 40, "shutter": True,
                              "intermediateStacker": 0, "positions": {"center": True}},
        }

    async def _get_nonce(self, ctx: CommandContext) -> dict[str, Any]:
        return {"commandNonce": _device_call(self.device.get_command_nonce)}

    async def _present(self, ctx: CommandContext) -> dict[str, Any]:
        record = _device_call(self.device.present)
        return {"position": "center", "sequence": record.sequence}

    async def _retract(self, ctx: CommandContext) -> dict[str, Any]:
        record = _device_call(self.device.retract)
        return {"sequence": record.sequence}

    async def _clear_nonce(self, ctx: CommandContext) -> None:
        self.device.clear_command_nonce()

    async def _dispense(self, ctx: CommandContext) -> dict[str, Any]:
        p = ctx.payload
        token = p.get("token")
        if not isinstance(token, str):
            raise CommandError(CompletionCode.INVALID_TOKEN_FORMAT if token is not None
                               else CompletionCode.AUTHORISATION_REQUIRED,
                               description="CashDispenser.Dispense needs an end-to-end token")
        position = p.get("position", "default")
        if position not in POSITIONS:
            raise command_error("unsupportedPosition", f"position {position!r} is not supported")
        denomination = p.get("denomination")
        currencies = denomination.get("currencies") if isinstance(denomination, dict) else None
        if not isinstance(currencies, dict) or not currencies:
            raise CommandError(CompletionCode.INVALID_DATA, description="denomination.currencies is required")
        if len(currencies) > 1:
            raise command_error("noCurrencyMix", "one currency per dispense")
        (currency, amount), = currencies.items()
        if not isinstance(amount, (int, float)) or isinstance(amount, bool):
            raise CommandError(CompletionCode.INVALID_DATA, description="currency amounts must be numbers")
        values = denomination.get("values")
        if values is not None and not isinstance(values, dict):
            raise CommandError(CompletionCode.INVALID_DATA, description="denomination.values must be an object")
        try:
            record = _device_call(self.device.dispense, token,
                                  amount if isinstance(amount, float) else Decimal(amount), currency,
                                  values=values, request_id=ctx.request_id)
        except TokenError as exc:
            raise CommandError(exc.completion_code, description=exc.message) from None
        return {"currencies": {record.currency: float(record.amount)}, "values": dict(record.notes)}

    async def _get_dispensed(self, ctx: CommandContext) -> dict[str, Any]:
        return {"dispensed": [r.to_dict() for r in self.device.dispensed],
                "totals": {c: float(v) for c, v in self.device.totals().items()},
                "cashUnits": self.device.cash_units()}


def _device_call(operation, *args, **kwargs):
    """Run a device operation, its two device errors mapped to the XFS4IoT answers: a mechanism fault is a
    hardware error, a refusal the command's own error code."""
    try:
        return operation(*args, **kwargs)
    except MechanismFault as exc:
        raise CommandError(CompletionCode.HARDWARE_ERROR, description=exc.description) from None
    except DispenseRefused as exc:
        raise command_error(exc.error_code, exc.description) from None
