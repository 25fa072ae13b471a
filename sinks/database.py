"""One small SQL connection type over SQLite (the embedded default) and PostgreSQL (the shared
store of cluster mode), so the count store and the stream registry are written once.

Queries are written with `?` placeholders and portable SQL; the few spots where the dialects
differ (auto-increment keys, 64-bit floats, integer division of times) are spelled with the
`{serial}`, `{double}` markers in schemas and `floor_int()` in queries. A `Database` is shared
by threads: every call takes its lock, and `transaction()` holds it until commit or rollback.
A PostgreSQL connection that broke (server restarted, network) is reopened on the next call.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lanewatch.sinks.errors import LanewatchError
from lanewatch.sinks.redaction import redact

_POSTGRES_URL = re.compile(r"^postgres(ql)?://", re.I)


class DatabaseError(LanewatchError):
    """A database cannot be opened, read or written (the message says which and why)."""


def is_postgres_url(target: str | Path | None) -> bool:
    return target is not None and bool(_POSTGRES_URL.match(str(target)))


def redact_url(target: str | Path) -> str:
    """A database address without its password, for logs and error messages."""
    return redact(str(target))


class Database:
    """A thread-safe connection to a SQLite file or a PostgreSQL server."""

    def __init__(self, target: str | Path):
        self.target = target
        self.postgres = is_postgres_url(target)
        self.name = redact_url(target)
        self._lock = threading.RLock()
        self._conn: Any = None
        self._errors: tuple[type[Exception], ...] = (sqlite3.Error,)
        self._connect()

    # -- connection --------------------------------------------------------------------------
    def _connect(self) -> None:
        try:
            if self.postgres:
                try:
                    import psycopg  # only cluster deployments need the PostgreSQL driver
                except ImportError:
                    raise DatabaseError(
                        f"cannot open database {self.name}: the PostgreSQL driver is not "
                        "installed (pip install 'lanewatch[cluster]')") from None
                self._errors = (psycopg.Error,)
                self._conn = psycopg.connect(str(self.target), autocommit=True,
                                             connect_timeout=10)
            else:
                path = Path(self.target)
                path.parent.mkdir(parents=True, exist_ok=True)
                self._conn = sqlite3.connect(str(path), check_same_thread=False,
                                             isolation_level=None)
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes
        except (*self._errors, OSError) as err:
            raise DatabaseError(f"cannot open database {self.name}: {_first_line(err)}"
                                ) from None

    def _ensure_open(self) -> None:
        if self.postgres and (self._conn is None or self._conn.closed or self._conn.broken):
            self._connect()

    def close(self) -> None:
        """Close the connection (further calls fail)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()

    # -- dialect -----------------------------------------------------------------------------
    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def floor_int(self, expression: str) -> str:
        """SQL for the integer floor of a non-negative number (PostgreSQL's cast rounds,
        SQLite's truncates; SQLite builds may lack FLOOR)."""
        if self.postgres:
            return f"CAST(FLOOR({expression}) AS BIGINT)"
        return f"CAST({expression} AS INTEGER)"

    def create(self, schema: str) -> None:
        """Run `;`-separated DDL with the `{serial}` and `{double}` markers filled in."""
        ddl = schema.format(
            serial="BIGSERIAL PRIMARY KEY" if self.postgres else "INTEGER PRIMARY KEY",
            double="DOUBLE PRECISION" if self.postgres else "REAL")
        with self._guard("create tables in"):
            for statement in filter(str.strip, ddl.split(";")):
                self._conn.execute(statement)

    def columns(self, table: str) -> set[str]:
        """The column names of a table."""
        if self.postgres:
            rows = self.query("SELECT column_name FROM information_schema.columns"
                              " WHERE table_name = ?", (table,))
            return {r[0] for r in rows}
        with self._guard("read"):
            return {row[1] for row in self._conn.execute(f"PRAGMA table_info({table})")}

    # -- statements --------------------------------------------------------------------------
    def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        with self._guard("write to"):
            self._conn.execute(self._sql(sql), args)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if not rows:
            return
        with self._guard("write to"):
            if self.postgres:
                self._conn.cursor().executemany(self._sql(sql), rows)
            else:
                self._conn.executemany(sql, rows)

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        with self._guard("read"):
            return [tuple(r) for r in self._conn.execute(self._sql(sql), args).fetchall()]

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """Statements inside commit together, or not at all."""
        with self._guard("write to"):
            if self.postgres:
                with self._conn.transaction():
                    yield self
            else:
                self._conn.execute("BEGIN")
                try:
                    yield self
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")

    @contextmanager
    def _guard(self, verb: str) -> Iterator[None]:
        """Hold the lock; turn driver errors into `DatabaseError` naming the database."""
        with self._lock:
            try:
                self._ensure_open()
                yield
            except DatabaseError:
                raise
            except self._errors as err:
                raise DatabaseError(f"cannot {verb} database {self.name}: {_first_line(err)}"
                                    ) from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
