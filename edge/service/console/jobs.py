"""Captures that take seconds (enrolment, an assisted attempt) run as jobs, so the page can show progress.

    job = jobs.start(owner="alice", kind="enrol_face", subject=customer_id, work=lambda tell: ...)
    jobs.get(job.id, owner="alice")     # events so far, then the result or the error

`work(tell)` runs on its own thread and calls `tell(event)` as it goes (counts and codes, never samples);
it returns the result dict, or raises a BiogateError (kept as code and message). A job is seen only by the
operator who started it, and forgotten `KEEP_S` after it ends.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

from edge.errors import BiogateError, NotFoundError

log = logging.getLogger("biogate.console")

KEEP_S = 600.0
MAX_EVENTS = 200


@dataclass
class Job:
    id: str
    owner: str
    kind: str
    subject: str
    started: float
    events: list[dict] = field(default_factory=list)
    done: bool = False
    result: dict | None = None
    error: dict | None = None          # {"code", "message", "details"}
    ended: float | None = None


class Jobs:
    def __init__(self):
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, owner: str, kind: str, subject: str, work: Callable[[Callable[[dict], None]], dict]) -> Job:
        job = Job(uuid.uuid4().hex, owner, kind, subject, time.monotonic())

        def tell(event: dict) -> None:
            with self._lock:
                job.events = (job.events + [event])[-MAX_EVENTS:]

        def run() -> None:
            try:
                result, error = work(tell), None
            except BiogateError as exc:
                result, error = None, {"code": exc.code, "message": exc.message, "details": exc.details or {}}
            except Exception:   # the page must learn the job ended, whatever happened
                log.exception("console job crashed", extra={"kind": kind})
                result, error = None, {"code": "internal.error", "message": "internal error", "details": {}}
            with self._lock:
                job.result, job.error, job.done, job.ended = result, error, True, time.monotonic()

        with self._lock:
            self._forget_old()
            self._jobs[job.id] = job
        threading.Thread(target=run, name=f"console-{kind}", daemon=True).start()
        return job

    def get(self, job_id: str, owner: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.owner != owner:
                raise NotFoundError("no such job (it may have ended long ago)", code="input.unknown_job")
            return Job(job.id, job.owner, job.kind, job.subject, job.started, list(job.events), job.done,
                       job.result, job.error, job.ended)

    def _forget_old(self) -> None:
        now = time.monotonic()
        for jid in [j.id for j in self._jobs.values() if j.done and now - (j.ended or now) > KEEP_S]:
            del self._jobs[jid]
