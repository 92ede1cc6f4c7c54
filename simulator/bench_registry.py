"""`biogate bench registry`: the fleet registry under simulated terminals, on this machine.

    biogate bench registry --terminals 50 --customers 100000 --json

1. A throwaway PostgreSQL (or `--dsn`), the schema, `--customers` enrolled customers, each with one card, three
   face templates and three fingerprint records sealed at rest exactly as the registry stores them (written
   with COPY: seeding is not what is measured), and `--terminals` registered terminals.
2. The registry as its own process (`biogate registry serve`), as in production.
3. Template fetch: every terminal asks for a random card holder's sealed templates at `--fetch-rate` per second
   (Poisson arrivals; the default 1/s per terminal is far busier than a real ATM, which verifies a customer
   every minute or so); the latency of each fetch gives `template_fetch_p50_ms` and `template_fetch_p99_ms`.
4. Ingest: every terminal uploads batches of `--batch` decisions back to back; `ingest_decisions_per_s` is what
   the registry took in.
Load generators run in this process, one thread per terminal; the registry and PostgreSQL in their own.
"""
from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np
import psycopg

from edge.biometrics.face.template import encode_face_template
from edge.config import Config, _deep_merge
from edge.registry.server import open_registry_store
from edge.registry.service import RegistryService
from edge.store.base import TemplateMeta, iso, utcnow
from edge.store.sql import _binding_aad, _template_aad, binding_plaintext
from simulator.pgserver import ThrowawayPostgres

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _finger_record(rng: np.random.Generator) -> bytes:
    from edge.biometrics import finger

    n = int(rng.integers(25, 45))
    t = finger.FingerTemplate(rng.integers(20, 280, n), rng.integers(20, 280, n), rng.uniform(0, 2 * np.pi, n),
                              np.ones(n, np.uint8), np.full(n, 60, np.uint8), 300, 300)
    return finger.encode_iso(t)


def seed(store, customers: int, seed_value: int = 0) -> None:
    """`customers` card holders with 3 face and 3 finger templates each, sealed under the registry's key."""
    rng = np.random.default_rng(seed_value)
    now = iso(utcnow())
    faces = [encode_face_template((v / np.linalg.norm(v) * 1.42).astype(np.float32))
             for v in rng.normal(0, 1, (64, 128))]
    fingers = [_finger_record(rng) for _ in range(64)]
    def customer_rows():   # each with its sealed record (status, card, templates), as SqlTransaction writes it
        for i in range(customers):
            cid = f"cus_bench{i:07d}"
            sealed = store.seal(binding_plaintext("active", None, f"Customer {i}", [f"card-bench{i:07d}"],
                                                  [f"tpl_b{i:07d}_{k}" for k in range(6)]), _binding_aad(cid))
            yield cid, f"Customer {i}", now, "active", sealed.key_id, sealed.nonce, sealed.ciphertext

    def card_rows():
        for i in range(customers):
            yield f"card-bench{i:07d}", f"cus_bench{i:07d}"

    def template_rows():
        for i in range(customers):
            for k in range(6):
                face = k < 3
                meta = TemplateMeta(f"tpl_b{i:07d}_{k}", f"cus_bench{i:07d}", "face" if face else "finger",
                                    "face" if face else "right_index", k % 3,
                                    "biogate-face-v1" if face else "iso19794-2:2005", 80.0, now)
                sealed = store.seal(faces[(i + k) % 64] if face else fingers[(i + k) % 64], _template_aad(meta))
                yield (meta.id, meta.customer_id, meta.modality, meta.position, meta.sample_index, meta.format,
                       meta.quality, now, sealed.key_id, sealed.nonce, sealed.ciphertext)

    store.bulk_copy("customers", ["id", "display_name", "created_at", "status", "binding_key_id", "binding_nonce",
                                  "binding_ciphertext"], customer_rows())
    store.bulk_copy("cards", ["card_ref", "customer_id"], card_rows())
    store.bulk_copy("templates", ["id", "customer_id", "modality", "position", "sample_index", "format", "quality",
                                  "created_at", "key_id", "nonce", "ciphertext"], template_rows())


def _fetch_load(url: str, creds: list[dict], customers: int, rate: float, seconds: float) -> list[float]:
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def terminal(c: dict, k: int) -> None:
        rng = random.Random(k)
        headers = {"Authorization": f"Bearer {c['token']}", "X-Terminal-Id": c["terminal_id"]}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            next_at = time.monotonic() + rng.expovariate(rate)
            while True:
                wait = next_at - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                if time.monotonic() > stop_at:
                    return
                t0 = time.perf_counter()
                r = client.get(f"/v1/fleet/cards/card-bench{rng.randrange(customers):07d}")
                took = time.perf_counter() - t0
                if r.status_code != 200:
                    raise RuntimeError(f"fetch failed: {r.status_code} {r.text[:200]}")
                with lock:
                    latencies.append(took)
                next_at += rng.expovariate(rate)

    _run_threads([threading.Thread(target=terminal, args=(c, k)) for k, c in enumerate(creds)])
    return latencies


def _ingest_load(url: str, creds: list[dict], batch: int, seconds: float) -> tuple[int, float]:
    counts = [0] * len(creds)
    start = time.monotonic()
    stop_at = start + seconds

    def terminal(c: dict, k: int) -> None:
        headers = {"Authorization": f"Bearer {c['token']}", "X-Terminal-Id": c["terminal_id"]}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            while time.monotonic() < stop_at:
                items = []
                for _ in range(batch):
                    did = f"dec_{uuid.uuid4().hex}"
                    items.append({"kind": "decision", "key": f"decision:{did}", "body": {
                        "id": did, "session_id": f"ses_{uuid.uuid4().hex}", "customer_id": None,
                        "card_ref": "card-bench0000001", "operation": "cash_withdrawal", "amount": "50.00",
                        "currency": "USD", "outcome": "allow", "factors": "face+finger",
                        "reasons": ["match.accepted"], "scores": {"fused_llr": 12.5}, "terminal_id": c["terminal_id"],
                        "created_at": iso(utcnow()), "offline": False}})
                r = client.post("/v1/fleet/ingest", json={"items": items, "audit": []})
                if r.status_code != 200:
                    raise RuntimeError(f"ingest failed: {r.status_code} {r.text[:200]}")
                counts[k] += r.json()["new"]

    _run_threads([threading.Thread(target=terminal, args=(c, k)) for k, c in enumerate(creds)])
    return sum(counts), time.monotonic() - start


def _run_threads(threads: list[threading.Thread]) -> None:
    errors: list[BaseException] = []

    def guard(target):
        def run(*a):
            try:
                target(*a)
            except BaseException as exc:   # reported after all threads stopped
                errors.append(exc)
        return run
    for t in threads:
        t._target = guard(t._target)      # type: ignore[attr-defined]
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def run_bench(base: Config, *, terminals: int, customers: int, fetch_rate: float, seconds: float, batch: int,
              dsn: str | None = None, progress=print) -> dict:
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="biogate-bench-registry-")))
        if dsn is None:
            pg = stack.enter_context(ThrowawayPostgres())
            dsn = pg.dsn
        keys = {r: f"bench-{r}-key-0123456789" for r in ("terminal", "teller", "auditor", "admin")}
        cfg = Config.model_validate(_deep_merge(base.model_dump(mode="json"), {
            "paths": {"state_dir": str(root)}, "registry": {"dsn": dsn}, "keys": {"api_keys": keys}}))
        store = open_registry_store(cfg, migrate=True)
        try:
            t0 = time.monotonic()
            progress(f"seeding {customers} customers (6 sealed templates each) ...")
            seed(store, customers)
            seed_s = time.monotonic() - t0
            service = RegistryService(store)
            creds = [service.add_terminal(f"BENCH-{k:03d}", "admin:bench").to_dict() for k in range(terminals)]
            with psycopg.connect(dsn) as conn:
                held = int(conn.execute("SELECT COUNT(*) FROM customers").fetchone()[0])
        finally:
            store.close()
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("BIOGATE_")}
        env.update({"BIOGATE_REGISTRY__DSN": dsn, "BIOGATE_PATHS__STATE_DIR": str(root),
                    "BIOGATE_KEYS__API_KEYS": json.dumps(keys), "BIOGATE_SERVICE__LOG_LEVEL": "WARNING",
                    "BIOGATE_REGISTRY__POOL_MAX": "20"})
        ready = root / "ready.json"
        proc = subprocess.Popen([sys.executable, "-m", "edge.cli.main", "registry", "serve", "--port", str(port),
                                 "--ready-file", str(ready)], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        stack.callback(lambda: (proc.send_signal(signal.SIGTERM), proc.wait(timeout=30)))
        deadline = time.monotonic() + 60
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the registry did not start: {proc.stderr.read().decode()[-1000:]}")
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        progress(f"template fetch: {terminals} terminals at {fetch_rate}/s each for {seconds:.0f} s ...")
        _fetch_load(url, creds[:2], customers, 5.0, 2.0)     # warm-up (connections, caches), not counted
        latencies = np.array(_fetch_load(url, creds, customers, fetch_rate, seconds)) * 1000
        progress(f"ingest: {terminals} terminals uploading batches of {batch} decisions for {seconds:.0f} s ...")
        ingested, ingest_s = _ingest_load(url, creds, batch, seconds)
        return {
            "terminals": terminals, "customers": held, "templates_per_customer": 6, "seed_s": round(seed_s, 1),
            "fetch_rate_per_terminal": fetch_rate, "template_fetches": int(latencies.size),
            "template_fetch_p50_ms": round(float(np.percentile(latencies, 50)), 2),
            "template_fetch_p99_ms": round(float(np.percentile(latencies, 99)), 2),
            "template_fetch_max_ms": round(float(latencies.max()), 2),
            "ingest_batch": batch, "ingest_decisions": ingested,
            "ingest_decisions_per_s": round(ingested / ingest_s, 1),
            "load_average": round(os.getloadavg()[0], 2), "cores": os.cpu_count(),
        }
