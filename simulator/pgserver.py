"""A throwaway PostgreSQL server: its own data folder, socket folder and port, removed when stopped.

    with ThrowawayPostgres() as pg:
        pg.dsn        # "host=/tmp/... port=54xxx dbname=biogate user=biogate"

For the fleet tests, `biogate demo --fleet` and the registry benchmark: the Debian server binaries
(`/usr/lib/postgresql/<version>/bin`, package `postgresql`; `make setup-postgres` installs them with apt).
As root the server runs as the `postgres` user (PostgreSQL refuses root); the folder is made theirs.
Nothing here is the product: a bank runs its own cluster (README: the fleet).
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from edge.errors import ConfigError

DB_NAME = "biogate"
DB_USER = "biogate"


def server_binaries() -> Path:
    """The folder with initdb / pg_ctl / postgres of the newest installed server, or ConfigError."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    if not found:
        raise ConfigError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin "
                          "(install the Debian package postgresql: `make setup-postgres`)")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThrowawayPostgres:
    def __init__(self, *, port: int | None = None, base_dir: str | Path | None = None):
        self.bin = server_binaries()
        self.port = port or _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="biogate-pg-", dir=base_dir))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self._as_postgres = os.geteuid() == 0
        self.started = False

    @property
    def dsn(self) -> str:
        return f"host={self.sockets} port={self.port} dbname={DB_NAME} user={DB_USER}"

    @property
    def tcp_dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} dbname={DB_NAME} user={DB_USER}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(a) for a in args]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise ConfigError(f"{Path(cmd[-len(args)]).name} failed ({done.returncode}): "
                              f"{(done.stderr or done.stdout).strip()[-400:]}", code="config.postgres")
        return done

    def start(self) -> "ThrowawayPostgres":
        self.sockets.mkdir(parents=True)
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.sockets, "postgres", "postgres")
            os.chmod(self.root, 0o755)
        self._run(self.bin / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8")
        options = (f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=on "
                   "-c max_connections=200 -c shared_buffers=64MB")
        self._run(self.bin / "pg_ctl", "-D", self.data, "-o", options, "-l", self.root / "server.log", "-w",
                  "-t", "60", "start")
        self.started = True
        self.psql("postgres", f"CREATE ROLE {DB_USER} LOGIN")
        self.psql("postgres", f"CREATE DATABASE {DB_NAME} OWNER {DB_USER}")   # not inside a transaction
        return self

    def psql(self, db: str, sql: str) -> str:
        out = self._run(self.bin / "psql", "-h", self.sockets, "-p", str(self.port), "-U", "postgres", "-d", db,
                        "-v", "ON_ERROR_STOP=1", "-Atc", sql)
        return out.stdout

    def stop(self, mode: str = "fast") -> None:
        if self.started:
            self._run(self.bin / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop", check=False)
            self.started = False

    def restart(self) -> None:
        """Stop and start the same cluster (a registry database that went away and came back)."""
        self.stop()
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._run(self.bin / "pg_ctl", "-D", self.data, "-o", options, "-l", self.root / "server.log", "-w",
                  "start")
        self.started = True

    def close(self) -> None:
        self.stop("immediate")
        for _ in range(20):
            try:
                shutil.rmtree(self.root)
                return
            except OSError:
                time.sleep(0.1)

    def __enter__(self) -> "ThrowawayPostgres":
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()
