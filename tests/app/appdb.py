"""The test web app's PostgreSQL access: one table, the columns this version uses, a small connection pool.

The driver (pg8000, pure Python) is imported only when a database is first used, so the app runs under
any python3 as long as no ``DATABASE_URL`` is set. ``DATABASE_URL`` is ``postgresql://user[:password]@host
[:port]/database``; ``?host=/dir`` selects a unix socket directory instead of TCP.

Every value is text. ``insert`` writes one row into the configured columns and returns its ``id`` (the
table must have an ``id`` column with a default, e.g. ``serial``); ``rows`` reads ``id`` plus the
configured columns; ``schema`` lists the table's columns. Errors from the server are raised as
``DatabaseError`` carrying the server's message (SQLSTATE first).
"""

from __future__ import annotations

import contextlib
import queue
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
CONNECT_TIMEOUT = 5.0
IDLE_CONNECTIONS = 8


class DatabaseError(Exception):
    """A failed database operation; ``str()`` is the server's (or driver's) error text."""


def identifier(name: str) -> str:
    """``name`` double-quoted after checking it is a plain lower-case SQL identifier."""
    if not IDENTIFIER.match(name):
        raise ValueError(f"not a plain SQL identifier (a-z, 0-9, _): {name!r}")
    return f'"{name}"'


def parse_columns(spec: str) -> tuple[str, ...]:
    """``"name, display_name"`` -> ``("name", "display_name")``; each checked as an identifier."""
    columns = tuple(part.strip() for part in spec.split(",") if part.strip())
    if not columns:
        raise ValueError("APP_DB_COLUMNS names no column")
    for column in columns:
        identifier(column)
    if "id" in columns:
        raise ValueError("APP_DB_COLUMNS must not name 'id' (the table's key, always read)")
    return columns


@dataclass(frozen=True)
class ConnectParams:
    """pg8000 connection arguments from a ``postgresql://`` URL."""

    user: str
    database: str
    host: str = "127.0.0.1"
    port: int = 5432
    password: str | None = None
    unix_sock: str | None = None

    @classmethod
    def from_url(cls, url: str) -> ConnectParams:
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError(f"DATABASE_URL must start with postgresql://, not {parts.scheme!r}://")
        port = parts.port or 5432
        database = unquote(parts.path.lstrip("/")) or "postgres"
        user = unquote(parts.username or "postgres")
        password = unquote(parts.password) if parts.password is not None else None
        socket_dir = parse_qs(parts.query).get("host", [None])[0]
        unix_sock = f"{socket_dir}/.s.PGSQL.{port}" if socket_dir else None
        return cls(user, database, parts.hostname or "127.0.0.1", port, password, unix_sock)


def _error_text(exc: Exception) -> str:
    """The server's ``SQLSTATE message`` from a pg8000 error, else the exception's text."""
    detail = exc.args[0] if exc.args else None
    if isinstance(detail, Mapping) and "M" in detail:
        return f"{detail.get('C', '')} {detail['M']}".strip()
    return f"{type(exc).__name__}: {exc}"


class Database:
    """The table this app version reads and writes, through pooled pg8000 connections."""

    def __init__(self, url: str, table: str = "items", columns: Sequence[str] = ("name",)) -> None:
        self.params = ConnectParams.from_url(url)
        self.table = table
        self.columns = tuple(columns)
        self._table_sql = identifier(table)
        self._column_sql = [identifier(c) for c in self.columns]
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue(maxsize=IDLE_CONNECTIONS)

    def _connect(self) -> Any:
        import pg8000.native  # type: ignore[import-untyped]  # lazily: only an app with a database needs it

        p = self.params
        return pg8000.native.Connection(
            p.user, host=p.host, port=p.port, database=p.database, password=p.password,
            unix_sock=p.unix_sock, timeout=CONNECT_TIMEOUT, application_name="bluegreen-webapp",
        )

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        """A connection for one operation: reused when healthy, discarded after any error."""
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            try:
                conn = self._connect()
            except Exception as exc:
                raise DatabaseError(_error_text(exc)) from exc
        try:
            yield conn
        except DatabaseError:
            self._discard(conn)
            raise
        except Exception as exc:
            self._discard(conn)
            raise DatabaseError(_error_text(exc)) from exc
        try:
            self._idle.put_nowait(conn)
        except queue.Full:
            self._discard(conn)

    @staticmethod
    def _discard(conn: Any) -> None:
        with contextlib.suppress(Exception):  # a broken connection may fail to close; dropped either way
            conn.close()

    def close(self) -> None:
        """Close every idle connection."""
        while True:
            try:
                self._discard(self._idle.get_nowait())
            except queue.Empty:
                return

    def insert(self, values: Mapping[str, str]) -> int:
        """Insert one row with ``values`` for exactly this version's columns; returns the new ``id``."""
        missing = [c for c in self.columns if c not in values]
        if missing:
            raise ValueError(f"no value for column(s) {', '.join(missing)}")
        params = {f"v{i}": str(values[c]) for i, c in enumerate(self.columns)}
        sql = (f"INSERT INTO {self._table_sql} ({', '.join(self._column_sql)}) "
               f"VALUES ({', '.join(':' + name for name in params)}) RETURNING id")
        with self._connection() as conn:
            rows = conn.run(sql, **params)
        return int(rows[0][0])

    def rows(self, limit: int | None = None) -> list[dict[str, Any]]:
        """``id`` and this version's columns of every row (or the first ``limit``), by ``id``."""
        sql = f"SELECT id, {', '.join(self._column_sql)} FROM {self._table_sql} ORDER BY id"
        with self._connection() as conn:
            rows = conn.run(sql + " LIMIT :limit", limit=limit) if limit is not None else conn.run(sql)
        names = ("id", *self.columns)
        return [dict(zip(names, row, strict=True)) for row in rows]

    def schema(self, table: str | None = None) -> list[dict[str, Any]]:
        """Columns of ``table`` (default: this app's table) in order: name, type, nullable, default."""
        name = table or self.table
        identifier(name)
        sql = ("SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns "
               "WHERE table_schema = current_schema() AND table_name = :table ORDER BY ordinal_position")
        with self._connection() as conn:
            rows = conn.run(sql, table=name)
        return [{"name": r[0], "type": r[1], "nullable": r[2] == "YES", "default": r[3]} for r in rows]

    def execute(self, statements: Sequence[str]) -> None:
        """Run SQL statements in one transaction (for migration jobs): all or nothing."""
        with self._connection() as conn:
            conn.run("BEGIN")
            try:
                for statement in statements:
                    conn.run(statement)
            except Exception:
                with contextlib.suppress(Exception):  # the connection is discarded anyway
                    conn.run("ROLLBACK")
                raise
            conn.run("COMMIT")
