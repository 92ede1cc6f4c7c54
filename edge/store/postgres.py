"""PostgreSQL backend of `edge.store.base.Store` (the fleet registry's system of record).

    store = PostgresStore("host=db.bank port=5432 dbname=biogate user=biogate", keyring)

The schema, queries and sealing are the terminal's own (edge.store.sql); only the connection handling is
PostgreSQL's: a psycopg 3 connection pool shared by the process's threads, one BEGIN ... COMMIT per unit of
work, the audit head row locked FOR UPDATE so concurrent appends (several registry processes behind a load
balancer) serialise on it. Migrations take an advisory lock, so processes starting together migrate once.
Durability is the server's (synchronous_commit on, WAL, replication: a bank's managed cluster).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from edge.errors import StorageError
from edge.store.crypto import KeyRing
from edge.store.sql import POSTGRESQL, SqlStore, SqlTransaction

MIGRATION_LOCK = 0x62696F67   # "biog": pg_advisory_xact_lock key of the schema migration


class PostgresStore(SqlStore):
    dialect = POSTGRESQL

    def __init__(self, dsn: str, keyring: KeyRing, *, min_connections: int = 1, max_connections: int = 10,
                 connect_timeout_s: float = 5.0, keyring_loader: Callable[[], KeyRing] | None = None,
                 migrate: bool = True, audit_key: bytes):
        super().__init__(keyring, keyring_loader, audit_key=audit_key)
        self.dsn = dsn
        self.connect_timeout_s = connect_timeout_s
        self._pool = ConnectionPool(dsn, min_size=min_connections, max_size=max_connections, open=False,
                                    kwargs={"autocommit": True, "connect_timeout": max(1, int(connect_timeout_s))},
                                    check=ConnectionPool.check_connection, name="biogate-store")
        try:
            self._pool.open(wait=True, timeout=connect_timeout_s)
        except PoolTimeout:
            self._pool.close()
            raise StorageError(f"cannot reach PostgreSQL ({_safe(dsn)}) within {connect_timeout_s} s",
                               code="storage.unavailable") from None
        if migrate:
            self.migrate()

    def migrate(self) -> None:
        with self._unit() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            self._apply_migrations(lambda sql, args=(): conn.execute(self.dialect.sql(sql) if args else sql,
                                                                     tuple(args) or None),
                                   lambda: PostgresTransaction(self, conn))

    def bulk_copy(self, table: str, columns: list[str], rows: Iterable[tuple]) -> None:
        """Load many rows at once with COPY in one transaction (benchmark and migration seeding; the rows must
        already be in stored form: blobs sealed, as `SqlTransaction` would write them)."""
        with self._unit() as conn:
            with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)

    def schema_version(self) -> int:
        with self._unit() as conn:
            return int(conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0])

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def _unit(self) -> Iterator[psycopg.Connection]:
        """One connection from the pool inside BEGIN ... COMMIT (ROLLBACK on any error), errors typed."""
        try:
            with self._pool.connection(timeout=self.connect_timeout_s) as conn:
                with conn.transaction():
                    yield conn
        except PoolTimeout:
            raise StorageError("no PostgreSQL connection available (server down or pool exhausted)",
                               code="storage.unavailable") from None
        except psycopg.errors.IntegrityError as exc:
            raise StorageError(f"constraint violated: {exc.diag.message_primary}", code="storage.conflict") from None
        except psycopg.OperationalError as exc:
            raise StorageError(f"PostgreSQL unavailable: {str(exc).splitlines()[0][:200]}",
                               code="storage.unavailable") from None
        except psycopg.Error as exc:
            raise StorageError(f"database error: {str(exc).splitlines()[0][:200]}", code="storage.error") from None

    @contextmanager
    def _transaction(self) -> Iterator["PostgresTransaction"]:
        with self._unit() as conn:
            yield PostgresTransaction(self, conn)


class PostgresTransaction(SqlTransaction):
    """The shared queries on one pooled connection inside one transaction."""


def _safe(dsn: str) -> str:
    """The DSN without its password, for messages."""
    return " ".join(part for part in dsn.split() if not part.lower().startswith("password="))
