"""The XFS4IoT Biometric service (`Biometric1`) the ATM application talks to.

Envelope, acknowledge, queueing, Common.Cancel and timeouts: `xfs4iot_bridge.server`. This module
holds the Biometric commands; capture goes through the terminal's drivers (`BridgeDevices`),
templates and comparisons through a `BiometricEngine`.

Commands (payloads as in the XFS4IoT Biometric interface; `id<N>` identifiers):

  Common.Status          {common: {device}, biometric: {subject, capture, dataPersistence, remainingStorage}}
  Common.Capabilities    {interfaces, common, biometric: {type, maxCapture, templateStorage, dataFormats,
                          encryptionAlgorithms, storage, persistenceModes, matchSupported: storedMatch,
                          scanModes, compareModes, clearData}}
  Biometric.Import       {templates: [{type: {format}, data: base64}]} -> {templates: {"id1": {format}}}
                         Replaces any templates imported before (ids keep counting up, so an old id
                         never names a new template). errorCode invalidData | formatNotSupported |
                         capacityExceeded | keyNotFound.
  Biometric.Read         {dataTypes: [{format}], numCaptures, mode: scan|match}
                         Events: PresentSubjectEvent -> SubjectDetectedEvent -> RemoveSubjectEvent per
                         data type; for a fingerprint the unsolicited SubjectRemovedEvent follows when
                         the finger leaves the sensor. Completion {dataRead: [{type, data}]}; in match
                         mode `data` is left out (the capture stays inside the service for Match).
                         errorCode readFailed | modeNotSupported | formatNotSupported | keyNotFound.
  Biometric.Match        {compareMode: verify|identity, identifier, maximum, threshold 0..100}
                         -> {candidates: {"id1": {confidenceLevel}}} (only candidates at or above the
                         threshold; `templateData` is never returned). An empty payload uses the
                         criteria of the last SetMatch. errorCode noImportedData | invalidIdentifier |
                         noCaptureData | invalidCompareMode | invalidThreshold.
  Biometric.SetMatch     same payload; stores the criteria (setMatchedData).
  Biometric.GetStorageInfo  -> {templates: {"id1": {format}}}; errorCode noImportedData.
  Biometric.Clear        {clearData: scannedData|importedData|setMatchedData|null(all)}
  Biometric.Reset        {clearData: ...}: stops the finger watcher, forgets the subject state, clears.
  Biometric.SetDataPersistence  {persistenceMode: persist|clear}; errorCode modeNotSupported.

Scores: the engine's calibrated score s (0.5 = the configured operating point) is reported as
confidenceLevel = round(100 s); threshold T accepts confidenceLevel >= T, so T = 50 (the default)
is the operating point, higher T is stricter.

Data persistence (privacy): `clear` (the default, BridgeConfig.data_persistence) drops captured
data as soon as it was returned by a scan-mode Read or used by a Match; `persist` keeps it until
Clear/Reset, the next Read, or the last client disconnecting. Every drop is announced with the
unsolicited Biometric.DataClearedEvent {clearData}. Held data is sealed (AES-GCM, per-process key,
`xfs4iot_bridge.sealed`); plaintext lives only during a comparison and is zeroised after; nothing
biometric is ever logged.

VENDOR COMMAND (not part of XFS4IoT, which has no standard way to hand out dispense tokens):

  BiogateAuthorisation.GetDispenseToken  {sessionId: "<the host's verification session id>"}
      -> {token: "NONCE=...,TOKENFORMAT=1,TOKENLENGTH=nnnn,DISPENSE1=50.00EUR,HMACSHA256=...",
          amount: 50.0, currency: "EUR"}
  The host's `Authoriser` says, once per verified session, which amount was approved; the service
  fetches the dispenser's command nonce through the dispenser driver and returns a
  CashDispenser.Dispense end-to-end token for exactly that amount. The ATM application passes it
  unchanged in CashDispenser.Dispense. Completion codes: authorisationRequired (session unknown,
  not verified or already used), deviceNotReady (no dispenser / authoriser / token key),
  hardwareError (the dispenser could not be reached), invalidData (bad sessionId).
"""
from __future__ import annotations

import asyncio
import collections
import base64
import binascii
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Callable

from xfs4iot_bridge.config import BridgeConfig
from edge.errors import InputError, QualityError

from xfs4iot_bridge.authoriser import Authoriser, BridgeDevices
from xfs4iot_bridge.engine import BiometricEngine, Modality
from xfs4iot_bridge.envelope import CompletionCode
from xfs4iot_bridge.sealed import SealedBox
from xfs4iot_bridge.server import CommandContext, CommandError, XFS4IoTService, command_error, run_in_thread
from xfs4iot_bridge.dispense import DispenseTokens
from xfs4iot_bridge.token import TokenError, format_amount

log = logging.getLogger("xfs4iot_bridge.biometric")

SCANNED, IMPORTED, SET_MATCHED = "scannedData", "importedData", "setMatchedData"
CLEAR_KINDS = (SCANNED, IMPORTED, SET_MATCHED)
DEVICE_TYPE = {"face": "facialFeatures", "finger": "fingerprint"}
ALL_TYPES = ("facialFeatures", "voice", "fingerprint", "fingerVein", "iris", "retina", "handGeometry",
             "thermalFace", "thermalHand", "palmVein", "signature")
ALL_FORMATS = ("isoFid", "isoFmd", "ansiFid", "ansiFmd", "qso", "wso", "reservedRaw1", "reservedRaw2",
               "reservedRaw3", "reservedTemplate1", "reservedTemplate2", "reservedTemplate3")
IDENTIFIER_RE = re.compile(r"^id[0-9A-Za-z]+$")
SESSION_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
POLL_S = 0.05          # how often finger presence is polled
FRAME_TIMEOUT_S = 2.0  # one camera read


@dataclass
class Held:
    """One biometric record held by the service (sealed)."""

    format: str
    modality: Modality
    sealed: bytes

    @property
    def type(self) -> dict[str, Any]:
        return {"format": self.format}


@dataclass(frozen=True)
class MatchCriteria:
    compare_mode: str
    identifier: str | None
    maximum: int
    threshold: int


# (event, details) -> None: the host writes it to its audit log (edge.service: the daemon's store).
AuditHook = Callable[[str, dict], None]


class BiometricService(XFS4IoTService):
    def __init__(self, cfg: BridgeConfig, devices: BridgeDevices, engine: BiometricEngine,
                 authoriser: Authoriser | None = None, dispense_key: bytes | None = None,
                 tokens: DispenseTokens | None = None, audit: "AuditHook | None" = None):
        super().__init__(cfg.service_name, interface="Biometric", max_requests=cfg.max_requests)
        self.cfg = cfg
        self.devices = devices
        self.engine = engine
        self.authoriser = authoriser
        # One dispense authorisation per transaction, over its own nonce, with its own deadline (the daemon
        # hands in the instance its API shares; standalone, the bridge makes its own).
        if tokens is None and dispense_key and devices.dispenser is not None:
            tokens = DispenseTokens(devices.dispenser, bytes(dispense_key), cfg.token_ttl_s)
            self._own_tokens = tokens
        else:
            self._own_tokens = None
        self.tokens = tokens
        self._audit = audit
        self._match_times: collections.deque[float] = collections.deque()
        self.box = SealedBox()
        self.imported: dict[str, Held] = {}
        self.scanned: list[Held] = []
        self.set_match: MatchCriteria | None = None
        self.persistence = cfg.data_persistence
        self.subject = "unknown"
        self.busy = False
        self._next_id = 1
        self._scanner_lock: asyncio.Lock | None = None
        self._watcher: asyncio.Task | None = None

        reg = self.register
        reg("Common.Status", self._status, versions=("3.0",), immediate=True)
        reg("Common.Capabilities", self._capabilities, versions=("3.0",), immediate=True)
        reg("Biometric.Import", self._import, versions=("3.0",))
        reg("Biometric.Read", self._read, versions=("2.0", "3.0"))
        reg("Biometric.Match", self._match, versions=("2.0", "3.0"))
        reg("Biometric.SetMatch", self._set_match, versions=("2.0",))
        reg("Biometric.GetStorageInfo", self._get_storage_info, versions=("2.0",))
        reg("Biometric.Clear", self._clear, versions=("2.0",))
        reg("Biometric.Reset", self._reset, versions=("2.0",))
        reg("Biometric.SetDataPersistence", self._set_persistence, versions=("2.0",))
        reg("BiogateAuthorisation.GetDispenseToken", self._get_dispense_token, versions=("1.0",))
        for ev in ("PresentSubjectEvent", "SubjectDetectedEvent", "RemoveSubjectEvent", "SubjectRemovedEvent",
                   "DataClearedEvent"):
            self.declare_event(f"Biometric.{ev}")

    # --- what the service can do -----------------------------------------------------------------
    def _modality_ready(self, modality: Modality) -> bool:
        device = self.devices.camera if modality == "face" else self.devices.scanner
        return device is not None and modality in self.engine.formats.values()

    async def _status(self, ctx: CommandContext) -> dict[str, Any]:
        capturing = self.devices.camera is not None or self.devices.scanner is not None
        device = "deviceBusy" if self.busy else "online" if capturing else "noDevice"
        return {"common": {"device": device, "devicePosition": "inPosition", "antiFraudModule": "notSupported"},
                "biometric": {"subject": self.subject, "capture": bool(self.scanned),
                              "dataPersistence": self.persistence,
                              "remainingStorage": self.cfg.template_capacity - len(self.imported)}}

    async def _capabilities(self, ctx: CommandContext) -> dict[str, Any]:
        ready = {DEVICE_TYPE[m] for m in ("face", "finger") if self._modality_ready(m)}
        formats = set(self.engine.formats)
        return {
            "interfaces": self.interfaces(),
            "common": {"serviceVersion": "biogate-1", "deviceInformation": [{"modelName": "biogate Biometric"}]},
            "biometric": {
                "type": {t: t in ready for t in ALL_TYPES},
                "maxCapture": self.cfg.max_captures,
                "templateStorage": self.cfg.template_capacity,
                "dataFormats": {f: f in formats for f in ALL_FORMATS},
                "encryptionAlgorithms": {"ecb": False, "cbc": False, "cfb": False, "rsa": False},
                "storage": {"secure": True, "clear": False},
                "persistenceModes": {"persist": True, "clear": True},
                "matchSupported": "storedMatch",
                "scanModes": {"scan": True, "match": True},
                "compareModes": {"verify": True, "identity": True},
                "clearData": {k: True for k in CLEAR_KINDS},
            },
        }

    # --- Import ----------------------------------------------------------------------------------
    async def _import(self, ctx: CommandContext) -> dict[str, Any]:
        templates = ctx.payload.get("templates")
        if not isinstance(templates, list) or not templates:
            raise command_error("invalidData", "templates must be a non-empty list")
        if len(templates) > self.cfg.template_capacity:
            raise command_error("capacityExceeded", f"at most {self.cfg.template_capacity} templates")
        staged: list[Held] = []
        for n, entry in enumerate(templates):
            data_type = entry.get("type") if isinstance(entry, dict) else None
            fmt = data_type.get("format") if isinstance(data_type, dict) else None
            if not isinstance(fmt, str):
                raise command_error("invalidData", f"templates[{n}].type.format is missing")
            if data_type.get("keyName") or data_type.get("algorithm"):
                raise command_error("keyNotFound", "no encryption keys are loaded in this service")
            modality = self.engine.formats.get(fmt)
            if modality is None:
                raise command_error("formatNotSupported", f"templates[{n}]: format {fmt} is not supported")
            raw = entry.get("data")
            try:
                plain = bytearray(binascii.a2b_base64(raw, strict_mode=True)) if isinstance(raw, str) else None
            except (binascii.Error, ValueError):
                plain = None
            if not plain:
                raise command_error("invalidData", f"templates[{n}].data is not base64")
            try:
                await ctx.run_blocking(self._validate, fmt, plain)
                staged.append(Held(fmt, modality, self.box.seal(plain, fmt.encode())))
            except InputError:
                raise command_error("invalidData", f"templates[{n}] is not a valid {fmt} template") from None
            finally:
                plain[:] = bytes(len(plain))
        self.imported = {}
        for held in staged:
            self.imported[f"id{self._next_id}"] = held
            self._next_id += 1
        return {"templates": {ident: held.type for ident, held in self.imported.items()}}

    def _validate(self, fmt: str, plain: bytearray) -> None:
        self.engine.wipe(self.engine.parse_template(fmt, plain))

    # --- Read ------------------------------------------------------------------------------------
    async def _read(self, ctx: CommandContext) -> dict[str, Any]:
        p = ctx.payload
        mode = p.get("mode", "scan")
        if mode == "scan" and not self.cfg.return_template_data:
            # scan mode hands the captured templates to the client: only where configured to
            await self._record(ctx, "bridge.read_refused", {"mode": mode, "reason": "template data not returned"})
            raise CommandError(CompletionCode.COMMAND_ERROR_CODE, error_code="modeNotSupported",
                               description="this bridge does not return template data (bridge.return_template_data)")
        if mode not in ("scan", "match"):
            raise command_error("modeNotSupported", f"mode {mode!r} is not supported")
        tries = p.get("numCaptures", 0)
        if not isinstance(tries, int) or isinstance(tries, bool) or tries < 0:
            raise CommandError(CompletionCode.INVALID_DATA, description="numCaptures must be an integer >= 0")
        tries = tries or self.cfg.max_captures
        data_types = p.get("dataTypes")
        if not isinstance(data_types, list) or not data_types:
            raise CommandError(CompletionCode.INVALID_DATA, description="dataTypes must be a non-empty list")
        wanted: list[tuple[str, Modality]] = []
        for data_type in data_types:
            fmt = data_type.get("format") if isinstance(data_type, dict) else None
            if not isinstance(fmt, str):
                raise CommandError(CompletionCode.INVALID_DATA, description="dataTypes[].format is missing")
            if data_type.get("keyName") or data_type.get("algorithm"):
                raise command_error("keyNotFound", "no encryption keys are loaded in this service")
            modality = self.engine.formats.get(fmt)
            if modality is None:
                raise command_error("formatNotSupported", f"format {fmt} is not supported")
            if any(m == modality for _, m in wanted):
                raise CommandError(CompletionCode.INVALID_DATA, description=f"{modality} requested twice")
            if not self._modality_ready(modality):
                raise CommandError(CompletionCode.DEVICE_NOT_READY, description=f"no {modality} device")
            wanted.append((fmt, modality))

        await self._drop_scanned(notify=bool(self.scanned))  # a new Read replaces earlier captures
        deadline = time.monotonic() + self.cfg.capture_timeout_s
        captured: list[Held] = []
        self.busy = True
        try:
            for fmt, modality in wanted:
                if modality == "face":
                    template = await self._capture_face(ctx, tries, deadline)
                else:
                    template = await self._capture_finger(ctx, tries, deadline)
                captured.append(Held(fmt, modality, self.box.seal(template, fmt.encode())))
                template[:] = bytes(len(template))
        finally:
            self.busy = False
        self.scanned = captured
        data_read = []
        for held in captured:
            item: dict[str, Any] = {"type": held.type}
            if mode == "scan":
                with self.box.opened(held.sealed, held.format.encode()) as plain:
                    item["data"] = base64.b64encode(plain).decode("ascii")
            data_read.append(item)
        if mode == "scan" and self.persistence == "clear":  # returned to the application: drop it here
            await self._drop_scanned(notify=True)
        await self._record(ctx, "bridge.read", {"mode": mode, "captured": len(captured),
                                                "formats": sorted(h.format for h in captured),
                                                "template_data_returned": mode == "scan"})
        return {"dataRead": data_read}

    async def _capture_face(self, ctx: CommandContext, tries: int, deadline: float) -> bytearray:
        camera = self.devices.camera
        await ctx.event("Biometric.PresentSubjectEvent")
        detected, rejected = False, 0
        while True:
            if time.monotonic() > deadline:
                raise command_error("readFailed", "no usable face within the capture time")
            frame = await ctx.run_blocking(camera.read, FRAME_TIMEOUT_S)
            try:
                template = await ctx.run_blocking(self.engine.face_template, frame)
            except QualityError as exc:
                rejected += 1
                log.info("face capture rejected (%s), attempt %d of %d", exc.code, rejected, tries)
                template = None
                if rejected >= tries:
                    raise command_error("readFailed", f"face not usable after {tries} captures ({exc.code})") from None
            finally:
                if frame.flags.writeable:
                    frame.fill(0)
            if (template is not None or rejected) and not detected:
                detected = True
                await ctx.event("Biometric.SubjectDetectedEvent")
            if template is not None:
                await ctx.event("Biometric.RemoveSubjectEvent")
                return bytearray(template)

    @property
    def scanner_lock(self) -> asyncio.Lock:
        if self._scanner_lock is None:
            self._scanner_lock = asyncio.Lock()
        return self._scanner_lock

    async def _capture_finger(self, ctx: CommandContext, tries: int, deadline: float) -> bytearray:
        scanner = self.devices.scanner
        async with self.scanner_lock:  # waits while a finger from the last Read is still on the sensor
            rejected = 0
            while True:
                await ctx.event("Biometric.PresentSubjectEvent")
                while not await ctx.run_blocking(scanner.finger_present):
                    self.subject = "notPresent"
                    if time.monotonic() > deadline:
                        raise command_error("readFailed", "no finger presented within the capture time")
                    await asyncio.sleep(POLL_S)
                self.subject = "present"
                await ctx.event("Biometric.SubjectDetectedEvent")
                image = await ctx.run_blocking(scanner.capture, max(0.5, deadline - time.monotonic()))
                try:
                    template = await ctx.run_blocking(self.engine.finger_template, image)
                except QualityError as exc:
                    rejected += 1
                    log.info("finger capture rejected (%s), attempt %d of %d", exc.code, rejected, tries)
                    if rejected >= tries:
                        raise command_error("readFailed", f"finger not usable after {tries} captures") from None
                    continue
                finally:
                    if image.flags.writeable:
                        image.fill(0)
                await ctx.event("Biometric.RemoveSubjectEvent")
                self._watch_finger_removal()
                return bytearray(template)

    def _watch_finger_removal(self) -> None:
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._await_finger_removal())

    async def _await_finger_removal(self) -> None:
        """After a capture: announce SubjectRemovedEvent when the finger leaves the sensor."""
        scanner = self.devices.scanner
        deadline = time.monotonic() + self.cfg.subject_removed_timeout_s
        async with self.scanner_lock:
            while time.monotonic() < deadline:
                if not await run_in_thread(scanner.finger_present):
                    self.subject = "notPresent"
                    await self.broadcast("Biometric.SubjectRemovedEvent")
                    return
                await asyncio.sleep(POLL_S * 2)
            log.info("finger still on the sensor %.0f s after the capture", self.cfg.subject_removed_timeout_s)

    # --- Match / SetMatch ------------------------------------------------------------------------
    def _criteria(self, p: dict[str, Any], bad_mode_error: str) -> MatchCriteria:
        mode = p.get("compareMode")
        if mode not in ("verify", "identity"):
            raise command_error(bad_mode_error, "compareMode must be verify or identity")
        threshold = p.get("threshold", 50)
        if not isinstance(threshold, int) or isinstance(threshold, bool) or not 0 <= threshold <= 100:
            raise command_error("invalidThreshold", "threshold must be an integer 0..100")
        maximum = p.get("maximum", 0)
        if not isinstance(maximum, int) or isinstance(maximum, bool) or maximum < 0:
            raise CommandError(CompletionCode.INVALID_DATA, description="maximum must be an integer >= 0")
        identifier = p.get("identifier")
        if mode == "verify" and (not isinstance(identifier, str) or not IDENTIFIER_RE.match(identifier)):
            raise command_error("invalidIdentifier", "verify needs an identifier of the form id<N>")
        if not self.imported:
            raise command_error("noImportedData", "no templates imported")
        if mode == "verify" and identifier not in self.imported:
            raise command_error("invalidIdentifier", f"no imported template {identifier}")
        return MatchCriteria(mode, identifier if mode == "verify" else None, maximum, threshold)

    async def _set_match(self, ctx: CommandContext) -> None:
        self.set_match = self._criteria(ctx.payload, "modeNotSupported")

    async def _match(self, ctx: CommandContext) -> dict[str, Any]:
        """Every Match is counted against the rate limit and audited, whatever its outcome."""
        self._count_match()
        try:
            return await self._run_match(ctx)
        except CommandError as exc:
            await self._record(ctx, "bridge.match", {"outcome": exc.error_code or exc.code.value})
            raise

    async def _run_match(self, ctx: CommandContext) -> dict[str, Any]:
        if not ctx.payload and self.set_match is not None:
            criteria = self._criteria({"compareMode": self.set_match.compare_mode,
                                       "identifier": self.set_match.identifier,
                                       "maximum": self.set_match.maximum,
                                       "threshold": self.set_match.threshold}, "invalidCompareMode")
        else:
            criteria = self._criteria(ctx.payload, "invalidCompareMode")
        if criteria.compare_mode == "verify":
            references = {criteria.identifier: self.imported[criteria.identifier]}
        else:
            references = dict(self.imported)
        probes = {held.modality: held for held in self.scanned}
        pairs = [(ident, ref, probes[ref.modality]) for ident, ref in references.items() if ref.modality in probes]
        if not pairs:
            raise command_error("noCaptureData", "no captured data of the templates' kind (Read first)")
        scores = await ctx.run_blocking(self._scores, pairs)
        levels = sorted(((round(100 * s), ident) for ident, s in scores.items()), key=lambda x: (-x[0], x[1]))
        accepted = [(level, ident) for level, ident in levels if level >= criteria.threshold]
        if criteria.maximum:
            accepted = accepted[:criteria.maximum]
        log.info("Match %s: %d compared, %d at or above threshold %d", criteria.compare_mode,
                 len(scores), len(accepted), criteria.threshold)
        if self.persistence == "clear":  # used by a Match: drop it
            await self._drop_scanned(notify=True)
        await self._record(ctx, "bridge.match", {"outcome": "success", "compare_mode": criteria.compare_mode,
                                                 "compared": len(scores),
                                                 "candidates": len(accepted), "threshold": criteria.threshold})
        return {"candidates": {ident: {"confidenceLevel": level} for level, ident in accepted}}

    def _scores(self, pairs: list[tuple[str, Held, Held]]) -> dict[str, float]:
        """Open, parse, compare and wipe; runs in a worker thread."""
        scores: dict[str, float] = {}
        parsed_probes: dict[str, Any] = {}
        try:
            for ident, ref, probe in pairs:
                if probe.modality not in parsed_probes:
                    with self.box.opened(probe.sealed, probe.format.encode()) as plain:
                        parsed_probes[probe.modality] = self.engine.parse_template(probe.format, plain)
                with self.box.opened(ref.sealed, ref.format.encode()) as plain:
                    reference = self.engine.parse_template(ref.format, plain)
                try:
                    score = float(self.engine.compare(ref.modality, parsed_probes[probe.modality], reference))
                finally:
                    self.engine.wipe(reference)
                scores[ident] = min(1.0, max(0.0, score))
        finally:
            for parsed in parsed_probes.values():
                self.engine.wipe(parsed)
        return scores

    # --- storage, clearing, persistence ----------------------------------------------------------
    async def _get_storage_info(self, ctx: CommandContext) -> dict[str, Any]:
        if not self.imported:
            raise command_error("noImportedData", "no templates imported")
        return {"templates": {ident: held.type for ident, held in self.imported.items()}}

    @staticmethod
    def _clear_kind(payload: dict[str, Any]) -> str | None:
        kind = payload.get("clearData")
        if kind is not None and kind not in CLEAR_KINDS:
            raise CommandError(CompletionCode.INVALID_DATA, description=f"clearData must be one of {CLEAR_KINDS} or null")
        return kind

    async def _clear(self, ctx: CommandContext) -> None:
        await self.clear_data(self._clear_kind(ctx.payload))

    async def _reset(self, ctx: CommandContext) -> None:
        kind = self._clear_kind(ctx.payload)
        if self._watcher is not None and not self._watcher.done():
            self._watcher.cancel()
        self.subject = "unknown"
        await self.clear_data(kind)

    async def clear_data(self, kind: str | None, *, notify: bool = True) -> None:
        """Forget `kind` of data (None = all) and announce it with DataClearedEvent."""
        if kind in (None, SCANNED):
            self.scanned = []
        if kind in (None, IMPORTED):
            self.imported = {}
        if kind in (None, SET_MATCHED):
            self.set_match = None
        if notify:
            await self.broadcast("Biometric.DataClearedEvent", {"clearData": kind})

    async def _drop_scanned(self, *, notify: bool) -> None:
        await self.clear_data(SCANNED, notify=notify)

    async def _set_persistence(self, ctx: CommandContext) -> None:
        mode = ctx.payload.get("persistenceMode")
        if mode not in ("persist", "clear"):
            raise command_error("modeNotSupported", "persistenceMode must be persist or clear")
        self.persistence = mode

    async def on_disconnect(self, conn) -> None:
        if not self.connections:  # the last session closed: nothing may outlive it
            await self.clear_data(None, notify=False)

    async def shutdown(self) -> None:
        if self._watcher is not None and not self._watcher.done():
            self._watcher.cancel()
        await self.clear_data(None, notify=False)
        if self._own_tokens is not None:
            self._own_tokens.close()

    # --- audit and limits ------------------------------------------------------------------------
    async def _record(self, ctx: CommandContext, event: str, details: dict[str, Any]) -> None:
        """One audit entry through the host's hook (never template data: counts, modes, formats)."""
        if self._audit is not None:
            await ctx.run_blocking(self._audit, event, details)

    def _count_match(self) -> None:
        now = time.monotonic()
        while self._match_times and now - self._match_times[0] > 60.0:
            self._match_times.popleft()
        if len(self._match_times) >= self.cfg.max_matches_per_minute:
            log.warning("Biometric.Match rate limit reached")
            raise CommandError(CompletionCode.FRAUD_ATTEMPT,
                               description=f"more than {self.cfg.max_matches_per_minute} matches in a minute")
        self._match_times.append(now)

    # --- the vendor command: dispense token for an authorised session ----------------------------
    async def _get_dispense_token(self, ctx: CommandContext) -> dict[str, Any]:
        session_id = ctx.payload.get("sessionId")
        if not isinstance(session_id, str) or not SESSION_ID_RE.match(session_id):
            raise CommandError(CompletionCode.INVALID_DATA, description="sessionId must be 1..128 of [A-Za-z0-9._:-]")
        dispenser = self.devices.dispenser
        if dispenser is None or self.authoriser is None or self.tokens is None:
            raise CommandError(CompletionCode.DEVICE_NOT_READY,
                               description="no dispenser, authoriser or token key configured")
        # The nonce first: if the dispenser is unreachable the session's approval is not consumed.
        await ctx.run_blocking(dispenser.get_command_nonce)
        approval = await ctx.run_blocking(self.authoriser.authorise, session_id)
        try:
            amount = format_amount(approval.amount, approval.currency)
            issued = await ctx.run_blocking(self.tokens.issue, session_id, approval.amount, approval.currency)
        except TokenError as exc:
            raise CommandError(CompletionCode.INVALID_DATA,
                               description=f"approved amount cannot be put in a token: {exc.message}") from None
        token = issued.token
        log.info("dispense token issued for one authorised session (%s)", approval.currency)
        return {"token": token, "amount": float(amount), "currency": approval.currency}
