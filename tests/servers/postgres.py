"""A throwaway real PostgreSQL server on loopback for tests (Debian's ``postgresql`` package).

``PostgresServer`` runs ``initdb`` in a fresh temporary directory, starts ``postgres`` listening on
127.0.0.1 on a free port and on a unix socket in that directory, with ``trust`` authentication for
loopback and local connections only, and ``stop()`` shuts it down and removes the directory. PostgreSQL
refuses to run as root: as root the server runs as the ``postgres`` system user the package creates (or
``nobody``), which owns the temporary directory; as any other user it runs as that user. Durability is
switched off (``fsync``, ``synchronous_commit``, ``full_page_writes``): these are test databases.

The binaries come from ``$BLUEGREEN_PG_BIN`` or the newest ``/usr/lib/postgresql/<major>/bin``; the
package is installed by ``tests/servers/install-deps.sh``.

Pytest fixtures (import them into a test module or a conftest: ``from postgres import postgres_server,
postgres_dsn``): ``postgres_server`` (one server per module that imports it, session scope) and
``postgres_dsn`` (a fresh empty database on that server for each test).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from processes import stop_group

LOOPBACK = "127.0.0.1"
SUPERUSER = "postgres"
DEFAULT_DATABASE = "bluegreen"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
READY_LINE = "database system is ready to accept connections"
PG_BIN_ENV = "BLUEGREEN_PG_BIN"
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def pg_bin_dir() -> Path:
    """Directory holding ``initdb`` and ``postgres``: ``$BLUEGREEN_PG_BIN``, Debian's newest, or ``$PATH``."""
    configured = os.environ.get(PG_BIN_ENV)
    if configured:
        return Path(configured)
    versions = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/postgres")]
    versions.sort(key=lambda bin_dir: int(bin_dir.parent.name) if bin_dir.parent.name.isdigit() else 0)
    if versions:
        return versions[-1]
    on_path = shutil.which("postgres")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError("PostgreSQL server binaries not found: run tests/servers/install-deps.sh (package postgresql)")


def _run_as() -> pwd.struct_passwd | None:
    """The unprivileged account to run the server as when we are root (postgres refuses root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root, but neither a 'postgres' nor a 'nobody' account exists")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One PostgreSQL server in a temporary directory; a context manager (``with PostgresServer() as pg``)."""

    def __init__(self, database: str = DEFAULT_DATABASE) -> None:
        self.bin = pg_bin_dir()
        self.database = database
        self.port = 0
        self.root: Path | None = None
        self.startup_seconds = 0.0
        self._proc: subprocess.Popen[bytes] | None = None

    # --- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> str:
        """initdb, start, wait until it accepts connections, create ``database``; returns its DSN."""
        began = time.monotonic()
        account = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="bluegreen-pg-"))
        data, sockets = self.root / "data", self.root / "sock"
        sockets.mkdir()
        if account is not None:
            for path in (self.root, sockets):
                os.chown(path, account.pw_uid, account.pw_gid)
        try:
            self._spawn_and_wait(account, data, sockets)
            self.sql(f"CREATE DATABASE {self.database}", database="postgres")
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self.dsn

    def _spawn_and_wait(self, account: pwd.struct_passwd | None, data: Path, sockets: Path) -> None:
        assert self.root is not None
        as_user: dict[str, object] = {}
        if account is not None:
            as_user = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": str(self.root)}
        initdb = subprocess.run(
            [str(self.bin / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
             "--locale=C", "--no-sync", "--no-instructions"],
            capture_output=True, text=True, env=env, cwd=self.root, check=False, **as_user,  # type: ignore[call-overload]
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed ({initdb.returncode}): {initdb.stderr.strip() or initdb.stdout}")
        self.port = _free_port()
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(  # type: ignore[call-overload]
                [str(self.bin / "postgres"), "-D", str(data), "-p", str(self.port), "-k", str(sockets),
                 "-c", f"listen_addresses={LOOPBACK}", "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "log_min_messages=warning",
                 "-c", "log_min_error_statement=panic"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.root,
                start_new_session=True, **as_user,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self._proc.returncode}: {self.log_text()}")
            if READY_LINE in self.log_text():
                with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, self.port), timeout=0.5):
                    return
            time.sleep(0.01)
        raise RuntimeError(f"postgres did not become ready within {START_TIMEOUT}s: {self.log_text()}")

    def stop(self) -> None:
        """Fast shutdown (SIGINT), SIGKILL for the whole group if it lingers, then remove the directory."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_group(proc, signal.SIGINT, STOP_TIMEOUT)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # children left behind by a crashed postmaster
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- use -------------------------------------------------------------------------------------------

    @property
    def log(self) -> Path:
        """The server's log file (stderr of postgres)."""
        assert self.root is not None, "server not started"
        return self.root / "postgres.log"

    def log_text(self) -> str:
        """The log so far ('' before start)."""
        try:
            return self.log.read_text(errors="replace")
        except (OSError, AssertionError):
            return ""

    def dsn_for(self, database: str) -> str:
        """``postgresql://postgres@127.0.0.1:<port>/<database>`` (trust auth: no password)."""
        return f"postgresql://{SUPERUSER}@{LOOPBACK}:{self.port}/{database}"

    @property
    def dsn(self) -> str:
        """DSN of the default database."""
        return self.dsn_for(self.database)

    @property
    def socket_dir(self) -> Path:
        """Directory of the unix socket (``.s.PGSQL.<port>``)."""
        assert self.root is not None, "server not started"
        return self.root / "sock"

    def sql(self, statement: str, database: str | None = None) -> str:
        """Run SQL with ``psql`` (stops at the first error); returns unaligned tuples-only output."""
        done = subprocess.run(
            [str(self.bin / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", LOOPBACK,
             "-p", str(self.port), "-U", SUPERUSER, "-d", database or self.database, "-c", statement],
            capture_output=True, text=True, check=False, env={**os.environ, "PGCONNECT_TIMEOUT": "5"},
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout.strip()

    def create_database(self, name: str) -> str:
        """Create an empty database; returns its DSN."""
        if not _DB_NAME.match(name):
            raise ValueError(f"not a plain database name: {name!r}")
        self.sql(f"CREATE DATABASE {name}", database="postgres")
        return self.dsn_for(name)


@contextlib.contextmanager
def running_postgres(database: str = DEFAULT_DATABASE) -> Iterator[PostgresServer]:
    """A started server, stopped and removed on exit."""
    server = PostgresServer(database)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server on 127.0.0.1, stopped and removed at the end."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A fresh empty database for this test; its DSN."""
    digest = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:12]
    return postgres_server.create_database(f"t_{digest}_{time.monotonic_ns() % 10**6}")
