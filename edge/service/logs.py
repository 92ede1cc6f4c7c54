"""JSON logs for the daemon, built so that biometric data cannot reach them.

Every record becomes one JSON object: time, level, logger, message, and the `extra` fields a caller
passed (codes, ids, durations). Two guards keep samples and templates out, whatever a caller does:
- values are rendered through `_safe`: bytes, bytearrays, memoryviews and numpy arrays become a short
  placeholder ("<512 bytes>", "<array 150x150x3 uint8>"), long strings are cut;
- exception tracebacks are not written (they can quote local variables in some formatters); the
  exception's class and the biogate error code are.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
MAX_STRING = 300


def _safe(value: Any, depth: int = 0) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if type(value).__module__ == "numpy" and hasattr(value, "shape"):
        shape = "x".join(str(s) for s in getattr(value, "shape", ())) or "scalar"
        return f"<array {shape} {getattr(value, 'dtype', '')}>"
    if isinstance(value, str):
        return value if len(value) <= MAX_STRING else value[:MAX_STRING] + "..."
    if depth < 3 and isinstance(value, dict):
        return {str(k): _safe(v, depth + 1) for k, v in list(value.items())[:50]}
    if depth < 3 and isinstance(value, (list, tuple, set)):
        return [_safe(v, depth + 1) for v in list(value)[:50]]
    return _safe(str(value), depth + 1)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        try:  # arguments are made safe before they are interpolated into the message
            args = record.args
            if isinstance(args, dict):
                safe_args = {k: _safe(v) for k, v in args.items()}
            else:
                safe_args = tuple(_safe(a) for a in (args or ()))
            message = str(record.msg) % safe_args if args else str(record.msg)
        except Exception:  # a bad format string must not lose the record
            message = str(record.msg)
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _safe(message),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = _safe(value)
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            out["exception"] = type(exc).__name__
            code = getattr(exc, "code", None)
            if isinstance(code, str):
                out["error_code"] = code
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO", stream=None) -> logging.Handler:
    """Route the root logger (and uvicorn's) to one JSON handler; returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    return handler
