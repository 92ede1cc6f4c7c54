"""A small reusable XFS4IoT service: the per-connection dispatcher, independent of the transport.

    service = XFS4IoTService("Biometric1", interface="Biometric")

    @service.command("Biometric.Clear")
    async def clear(ctx: CommandContext) -> dict | None:
        ...                                   # raise CommandError(...) to fail
        await ctx.event("Biometric.SomeEvent", {...})   # intermediate event, carries requestId
        return {...}                          # completion payload (completionCode success)

    await service.serve(send_text, receive_text)   # one call per client connection

What the dispatcher does for every text message a client sends (XFS4IoT envelope rules):

1. parse it (`envelope.parse_message`); a refused message gets an acknowledge with status
   invalidMessage, a requestId already in flight on this connection invalidRequestID, and a
   connection already holding `max_requests` unfinished commands tooManyRequests (except
   Common.Cancel, always accepted so a client at the limit can free itself). Nothing runs.
2. otherwise acknowledge with status null BEFORE anything executes.
3. unknown command names complete at once with completionCode unsupportedCommand.
4. commands run in arrival order, one at a time per service (a device does one thing at a time),
   through a FIFO lock shared by all connections of the service. Commands registered with
   `immediate=True` (Common.Status, Common.Capabilities, Common.Cancel) run at once, beside the
   queue, so a client can ask for status while a Read waits for a finger.
5. header.timeout (ms, 0 = none) counts from acceptance (queue time included); when it expires the
   command completes with timeOut. `Common.Cancel` {requestIds: [..] | null} cancels this
   connection's queued or executing commands (null/absent = all of them); each completes with
   canceled before the Cancel itself completes. Unknown ids are ignored.
6. handler errors: `CommandError(code, error_code)` -> that completionCode (+ payload.errorCode when
   code is commandErrorCode); biogate errors map by their error code in `COMPLETION_BY_ERROR_CODE`
   (device.timeout -> timeOut, device.* -> hardwareError, input.* -> invalidData, policy.*/auth.* ->
   authorisationRequired, ...); anything else -> internalError. Logs carry names, requestIds
   and codes, never payloads (they may hold biometric data).

Unsolicited events go to every open connection of the service, without requestId: `await
service.broadcast(name, payload)` from the event loop, `service.publish(name, payload)` from any
thread.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from edge.errors import BiogateError

from xfs4iot_bridge import envelope as env
from xfs4iot_bridge.envelope import AckStatus, CompletionCode, Message, MessageError

log = logging.getLogger("xfs4iot_bridge")

SendText = Callable[[str], Awaitable[None]]
ReceiveText = Callable[[], Awaitable["str | bytes | None"]]
Handler = Callable[["CommandContext"], Awaitable["dict[str, Any] | None"]]
BLOCKING_STOP_GRACE_S = 15.0  # how long a cancelled command waits for its device thread to stop


class CommandError(Exception):
    """Raised by a handler to complete its command with `code` (and `error_code` for
    commandErrorCode). `description` goes to header.errorDescription: keep it free of biometric data."""

    def __init__(self, code: CompletionCode, error_code: str | None = None, description: str | None = None,
                 payload: dict[str, Any] | None = None):
        super().__init__(description or error_code or code.value)
        self.code = code
        self.error_code = error_code
        self.description = description
        self.payload = payload or {}


def command_error(error_code: str, description: str | None = None) -> CommandError:
    """A command-specific error: completionCode commandErrorCode + payload.errorCode."""
    return CommandError(CompletionCode.COMMAND_ERROR_CODE, error_code, description)


@dataclass
class CommandSpec:
    name: str
    handler: Handler
    versions: tuple[str, ...] = ("2.0",)
    immediate: bool = False

    @property
    def completion_version(self) -> str:
        return self.versions[-1]


@dataclass
class CommandContext:
    """What a handler gets: the request, a way to send intermediate events, a cancel flag for
    blocking work in threads (set on cancel or timeout)."""

    service: "XFS4IoTService"
    connection: "Connection"
    name: str
    request_id: int
    payload: dict[str, Any]
    cancel_event: threading.Event = field(default_factory=threading.Event)

    async def event(self, name: str, payload: dict[str, Any] | None = None, version: str = "2.0") -> None:
        await self.connection.send(env.event(name, self.request_id, payload, version=version))

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    async def run_blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run blocking device work in a thread (see `run_in_thread`); on cancel or timeout
        `cancel_event` is set first, for work that polls it."""
        return await run_in_thread(fn, *args, on_cancel=self.cancel_event.set)


async def run_in_thread(fn: Callable[..., Any], *args: Any, on_cancel: Callable[[], None] | None = None) -> Any:
    """Run `fn(*args)` in a worker thread. When the awaiting task is cancelled, call `on_cancel`
    and keep waiting (up to BLOCKING_STOP_GRACE_S) for the thread to finish before re-raising, so
    a lock held around this call is not released while the device is still in use."""
    future = asyncio.get_running_loop().run_in_executor(None, fn, *args)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        if on_cancel is not None:
            on_cancel()
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout=BLOCKING_STOP_GRACE_S)
        except asyncio.TimeoutError:
            log.warning("device work still running %.0f s after cancel (%s)", BLOCKING_STOP_GRACE_S,
                        getattr(fn, "__qualname__", "?"))
        except Exception:  # the work's own failure no longer matters: the caller is gone
            pass
        raise


@dataclass
class _Pending:
    message: Message
    task: asyncio.Task | None = None
    cancel_requested: bool = False
    ctx: CommandContext | None = None


class Connection:
    """One client connection: in-flight requestIds, the send lock, its tasks."""

    def __init__(self, service: "XFS4IoTService", send_text: SendText):
        self.service = service
        self._send_text = send_text
        self._send_lock = asyncio.Lock()
        self.pending: dict[int, _Pending] = {}
        self.closed = False

    async def send(self, message: Message) -> None:
        if self.closed:
            return
        try:
            async with self._send_lock:
                await self._send_text(message.to_json())
        except Exception:  # the peer went away; the receive loop will notice and clean up
            self.closed = True

    async def handle_text(self, text: str | bytes) -> None:
        try:
            message = env.parse_message(text)
        except MessageError as exc:
            log.info("refused message (%s): %s", exc.ack_status.value, exc.message)
            await self.send(env.ack(exc.name, exc.request_id, exc.ack_status, error_description=exc.message))
            return
        rid = message.request_id
        assert rid is not None
        if rid in self.pending:
            await self.send(env.ack(message.name, rid, AckStatus.INVALID_REQUEST_ID,
                                    error_description=f"requestId {rid} is already in flight"))
            return
        # Common.Cancel is always accepted: a client at the limit must be able to free itself.
        if len(self.pending) >= self.service.max_requests and message.name != "Common.Cancel":
            await self.send(env.ack(message.name, rid, AckStatus.TOO_MANY_REQUESTS,
                                    error_description=f"at most {self.service.max_requests} commands "
                                                      "may be outstanding per connection"))
            return
        pending = _Pending(message)
        self.pending[rid] = pending
        await self.send(env.ack(message.name, rid, None))
        pending.task = asyncio.create_task(self._run(pending), name=f"{message.name}#{rid}")

    async def _run(self, pending: _Pending) -> None:
        msg = pending.message
        rid = msg.request_id
        spec = self.service.commands.get(msg.name)
        version = spec.completion_version if spec else "2.0"
        payload: dict[str, Any] | None = None
        code, error_code, description = CompletionCode.SUCCESS, None, None
        ctx = CommandContext(self.service, self, msg.name, rid, msg.payload)
        pending.ctx = ctx  # from here on `cancel` may cancel this task (it has started)
        try:
            if pending.cancel_requested:  # cancelled while the task was not yet running
                raise asyncio.CancelledError
            if spec is None:
                raise CommandError(CompletionCode.UNSUPPORTED_COMMAND,
                                   description=f"{msg.name} is not supported by {self.service.name}")
            timeout_s = msg.header.timeout / 1000.0 if msg.header.timeout else None
            async with asyncio.timeout(timeout_s):
                if spec.immediate:
                    payload = await spec.handler(ctx)
                else:
                    async with self.service.queue_lock:
                        payload = await spec.handler(ctx)
        except CommandError as exc:
            code, error_code, description, payload = exc.code, exc.error_code, exc.description, exc.payload
        except TimeoutError:
            ctx.cancel_event.set()
            code, description = CompletionCode.TIME_OUT, f"no completion within {msg.header.timeout} ms"
        except asyncio.CancelledError:
            ctx.cancel_event.set()
            if not pending.cancel_requested:  # the connection is closing: nobody to answer
                self.pending.pop(rid, None)
                raise
            code, description = CompletionCode.CANCELED, "canceled by Common.Cancel"
        except BiogateError as exc:
            code, error_code = _map_biogate_error(exc)
            description = exc.message
        except Exception:  # a bug: answer internalError, log the trace (no payloads in it)
            log.exception("handler for %s#%s failed", msg.name, rid)
            code, description = CompletionCode.INTERNAL_ERROR, "internal error"
        self.pending.pop(rid, None)
        body = dict(payload or {})
        if code is CompletionCode.COMMAND_ERROR_CODE and error_code:
            body["errorCode"] = error_code
        log.info("%s#%s -> %s%s", msg.name, rid, code.value, f" ({error_code})" if error_code else "")
        await self.send(env.completion(msg.name, rid, body, code=code, error_description=description,
                                       version=version))

    async def cancel(self, request_ids: list[int] | None, *, exclude: int | None = None) -> list[int]:
        """Cancel queued/executing commands of this connection; wait for their completions."""
        targets = [p for rid, p in self.pending.items()
                   if rid != exclude and (request_ids is None or rid in request_ids)]
        for p in targets:
            p.cancel_requested = True
            # A task that has not started yet must not be cancelled: the CancelledError would be
            # thrown before `_run` could catch it and no completion would be sent. `_run` checks
            # `cancel_requested` as its first step instead.
            if p.ctx is not None:
                p.ctx.cancel_event.set()
                if p.task is not None:
                    p.task.cancel()
        tasks = [p.task for p in targets if p.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
        return [p.message.request_id for p in targets]

    async def close(self) -> None:
        self.closed = True
        for p in list(self.pending.values()):
            if p.ctx is not None:
                p.ctx.cancel_event.set()
            if p.task is not None:
                p.task.cancel()
        tasks = [p.task for p in self.pending.values() if p.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
        self.pending.clear()


# The completion code of each biogate error code: the exact code first, else its category (the part before
# the first dot). The one place the bridge turns biogate's error vocabulary into XFS4IoT's.
COMPLETION_BY_ERROR_CODE: dict[str, CompletionCode] = {
    "device.timeout": CompletionCode.TIME_OUT,
    "device": CompletionCode.HARDWARE_ERROR,
    "quality": CompletionCode.USER_ERROR,
    "liveness": CompletionCode.USER_ERROR,
    "input": CompletionCode.INVALID_DATA,
    "policy": CompletionCode.AUTHORISATION_REQUIRED,
    "auth": CompletionCode.AUTHORISATION_REQUIRED,
}


def completion_code_for(error_code: str) -> CompletionCode:
    return COMPLETION_BY_ERROR_CODE.get(error_code) or COMPLETION_BY_ERROR_CODE.get(
        error_code.split(".", 1)[0], CompletionCode.INTERNAL_ERROR)


def _map_biogate_error(exc: BiogateError) -> tuple[CompletionCode, str | None]:
    return completion_code_for(exc.code), None


class XFS4IoTService:
    """A named XFS4IoT service: command handlers, event list, connections, the FIFO queue."""

    def __init__(self, name: str, interface: str, *, max_requests: int = 16):
        self.name = name
        self.interface = interface
        self.max_requests = max_requests
        self.commands: dict[str, CommandSpec] = {}
        self.events: dict[str, tuple[str, ...]] = {}
        self.connections: set[Connection] = set()
        self._queue_lock: asyncio.Lock | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.register("Common.Cancel", self._cancel, versions=("2.0",), immediate=True)

    @property
    def queue_lock(self) -> asyncio.Lock:
        if self._queue_lock is None:  # created lazily inside the serving event loop
            self._queue_lock = asyncio.Lock()
        return self._queue_lock

    # --- registration --------------------------------------------------------------------------
    def register(self, name: str, handler: Handler, *, versions: tuple[str, ...] = ("2.0",),
                 immediate: bool = False) -> None:
        self.commands[name] = CommandSpec(name, handler, tuple(versions), immediate)

    def command(self, name: str, *, versions: tuple[str, ...] = ("2.0",), immediate: bool = False):
        def deco(fn: Handler) -> Handler:
            self.register(name, fn, versions=versions, immediate=immediate)
            return fn
        return deco

    def declare_event(self, name: str, versions: tuple[str, ...] = ("2.0",)) -> None:
        self.events[name] = tuple(versions)

    def interfaces(self) -> list[dict[str, Any]]:
        """The `interfaces` member of Common.Capabilities, grouped by interface prefix."""
        groups: dict[str, dict[str, Any]] = {}
        for cmd in sorted(self.commands.values(), key=lambda c: c.name):
            iface = cmd.name.split(".", 1)[0]
            groups.setdefault(iface, {"name": iface, "commands": {}, "events": {},
                                      "maximumRequests": self.max_requests})
            groups[iface]["commands"][cmd.name] = {"versions": list(cmd.versions)}
        for ev, versions in sorted(self.events.items()):
            iface = ev.split(".", 1)[0]
            groups.setdefault(iface, {"name": iface, "commands": {}, "events": {},
                                      "maximumRequests": self.max_requests})
            groups[iface]["events"][ev] = {"versions": list(versions)}
        return list(groups.values())

    # --- serving -------------------------------------------------------------------------------
    async def serve(self, send_text: SendText, receive_text: ReceiveText) -> None:
        """Run one connection until `receive_text` returns None or raises."""
        self.loop = asyncio.get_running_loop()
        conn = Connection(self, send_text)
        self.connections.add(conn)
        try:
            while True:
                try:
                    text = await receive_text()
                except Exception:
                    break
                if text is None:
                    break
                await conn.handle_text(text)
        finally:
            self.connections.discard(conn)
            await conn.close()
            await self.on_disconnect(conn)

    async def on_disconnect(self, conn: Connection) -> None:
        """Hook for subclasses (e.g. clearing data when the last client leaves)."""

    async def shutdown(self) -> None:
        """Hook for subclasses: stop background work before the host closes."""

    async def broadcast(self, name: str, payload: dict[str, Any] | None = None, version: str = "2.0") -> None:
        message = env.unsolicited(name, payload, version=version)
        log.info("unsolicited %s to %d connection(s)", name, len(self.connections))
        for conn in list(self.connections):
            await conn.send(message)

    def publish(self, name: str, payload: dict[str, Any] | None = None) -> None:
        """Thread-safe broadcast (from device threads)."""
        if self.loop is not None and not self.loop.is_closed():
            asyncio.run_coroutine_threadsafe(self.broadcast(name, payload), self.loop)

    # --- Common.Cancel -------------------------------------------------------------------------
    async def _cancel(self, ctx: CommandContext) -> dict[str, Any] | None:
        ids = ctx.payload.get("requestIds")
        if ids is not None and (not isinstance(ids, list)
                                or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)):
            raise CommandError(CompletionCode.INVALID_DATA, description="requestIds must be a list of integers or null")
        await ctx.connection.cancel(ids, exclude=ctx.request_id)
        return None
