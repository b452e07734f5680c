"""The test web app (tests/app/webapp.py) as a real process on loopback, with a real PostgreSQL."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "servers"))
import postgres
from appprocess import AppProcess
from postgres import PostgresServer

postgres_server = postgres.postgres_server  # the fixtures, used by name below
postgres_dsn = postgres.postgres_dsn

pytestmark = pytest.mark.integration
MIGRATE = Path(__file__).resolve().parents[1] / "app" / "migrate.py"


@pytest.fixture
def start_app(tmp_path: Path) -> Iterator[object]:
    """Factory: ``start_app(version, host=..., env=..., wait=True)``; every app is stopped afterwards.

    The drain delay defaults to 0 here (tests that need one set ``APP_SHUTDOWN_DELAY``)."""
    apps: list[AppProcess] = []

    def start(version: str, host: str = "127.0.0.77", env: dict[str, str] | None = None,
              wait: bool = True) -> AppProcess:
        app = AppProcess(version, host=host, env={"APP_SHUTDOWN_DELAY": "0", **(env or {})}, log_dir=tmp_path)
        apps.append(app)
        return app.start(wait=wait)

    yield start
    for app in apps:
        app.signal(signal.SIGTERM)
    for app in apps:
        app.stop()


def get_json(app: AppProcess, path: str) -> tuple[int, dict[str, str], dict[str, object]]:
    status, headers, body = app.request("GET", path)
    return status, headers, json.loads(body)


def post_json(app: AppProcess, path: str, payload: object) -> tuple[int, dict[str, object]]:
    status, _, body = app.request("POST", path, json.dumps(payload).encode())
    return status, json.loads(body)


def test_answers_with_version_message_and_pod_identity(start_app) -> None:
    env = {"APP_MESSAGE": "hello from blue", "POD_NAME": "shop-blue-7d9f", "POD_IP": "127.0.0.78",
           "POD_NAMESPACE": "shop", "APP_HOST": ""}
    app = start_app("v1", host="127.0.0.78", env=env)  # APP_HOST empty: listens on $POD_IP
    status, headers, body = get_json(app, "/")
    assert status == 200
    assert headers["x-app-version"] == "v1"
    assert headers["x-app-pod"] == "shop-blue-7d9f"
    assert headers["content-type"] == "application/json"
    assert body["version"] == "v1"
    assert body["message"] == "hello from blue"
    assert (body["pod"], body["pod_ip"], body["namespace"]) == ("shop-blue-7d9f", "127.0.0.78", "shop")
    assert body["config"] is None
    assert app.request("GET", "/nowhere")[0] == 404
    assert app.request("POST", "/")[0] == 405


def test_config_file_is_read_on_every_request(start_app, tmp_path: Path) -> None:
    config = tmp_path / "config" / "message"
    config.parent.mkdir()
    config.write_text("colour=blue\n")
    app = start_app("v2", env={"APP_CONFIG_FILE": str(config)})
    assert get_json(app, "/")[2]["config"] == "colour=blue\n"
    config.write_text("colour=green\n")
    assert get_json(app, "/")[2]["config"] == "colour=green\n"
    config.unlink()
    status, headers, body = get_json(app, "/")
    assert status == 500
    assert headers["x-app-version"] == "v2"
    assert "cannot read APP_CONFIG_FILE" in str(body["error"])


def test_health_check_can_be_told_to_fail_and_recover(start_app, tmp_path: Path) -> None:
    flag = tmp_path / "unhealthy"
    app = start_app("v1", env={"APP_HEALTH_FAIL_FILE": str(flag)})
    assert app.request("GET", "/healthz")[::2] == (200, b"ok\n")
    assert post_json(app, "/admin/fail-health", {})[0] == 200
    status, _, body = app.request("GET", "/healthz")
    assert (status, body) == (503, b"unhealthy: told to fail (POST /admin/fail-health)\n")
    assert get_json(app, "/admin/state")[2]["healthy"] is False
    assert app.request("GET", "/")[0] == 200  # only the health check fails
    post_json(app, "/admin/recover-health", {})
    assert app.request("GET", "/healthz")[0] == 200
    flag.touch()
    status, _, body = app.request("GET", "/healthz")
    assert status == 503 and f"flag file {flag} exists" in body.decode()
    flag.unlink()
    assert app.request("GET", "/healthz")[0] == 200


def test_startup_delay_postpones_listening(start_app) -> None:
    quick = start_app("v1", host="127.0.0.79")
    slow = start_app("v1", host="127.0.0.80", env={"APP_STARTUP_DELAY": "1.0"}, wait=False)
    time.sleep(0.5)
    with pytest.raises(ConnectionRefusedError):
        slow.request("GET", "/healthz")
    took = slow.wait_listening()
    print(f"app start: {quick.startup_seconds:.3f}s without delay, {took:.3f}s with APP_STARTUP_DELAY=1.0")
    assert took >= 1.0
    assert slow.request("GET", "/healthz")[0] == 200


def test_sigterm_keeps_serving_for_the_delay_then_finishes_in_flight_requests(start_app) -> None:
    app = start_app("v1", env={"APP_SHUTDOWN_DELAY": "1.0"})
    slow: dict[str, object] = {}

    def slow_request() -> None:
        slow["result"] = app.request("GET", "/?delay=2.5")
        slow["done"] = time.monotonic()

    thread = threading.Thread(target=slow_request)
    began_slow = time.monotonic()
    thread.start()
    deadline = time.monotonic() + 5
    while get_json(app, "/admin/state")[2]["in_flight"] != 2:  # the slow one and this one
        assert time.monotonic() < deadline, "the slow request never arrived"
        time.sleep(0.02)
    signalled = time.monotonic()
    app.signal(signal.SIGTERM)
    while not get_json(app, "/admin/state")[2]["draining"]:  # still served while draining
        assert time.monotonic() < signalled + 5, "SIGTERM was not handled"
        time.sleep(0.02)
    while True:  # until it stops accepting, 1 s after the signal
        try:
            app.request("GET", "/healthz")
        except ConnectionRefusedError:
            refused = time.monotonic()
            break
        assert time.monotonic() < signalled + 5, "still accepting 5 s after SIGTERM"
        time.sleep(0.02)
    assert refused - signalled >= 1.0
    assert app.wait(timeout=5) == 0
    exited = time.monotonic()
    thread.join(timeout=5)
    status, headers, _ = slow["result"]  # type: ignore[misc]
    assert (status, headers["x-app-version"]) == (200, "v1")
    assert exited - began_slow >= 2.5  # it waited for the slow request
    log = app.log_text()
    # the slow request, and maybe one of this test's /healthz polls taken from the listen backlog as it closed
    # (the app finishes those too: "finishing 2 in-flight request(s) (1 from the backlog)")
    finishing = re.search(r"finishing (\d+) in-flight request\(s\)(?: \((\d+) from the backlog\))?", log)
    assert "SIGTERM: serving 1s more" in log and finishing is not None, log
    assert int(finishing.group(1)) >= 1, "the slow request was in flight"
    assert log.rstrip().endswith("exit 0")


def test_sigterm_during_startup_delay_exits_at_once(start_app) -> None:
    app = start_app("v1", env={"APP_STARTUP_DELAY": "30"}, wait=False)
    deadline = time.monotonic() + 10
    while "starting (startup delay 30s)" not in app.log_text():  # its SIGTERM handler is installed
        assert time.monotonic() < deadline, app.log_text()
        time.sleep(0.02)
    app.signal(signal.SIGTERM)
    assert app.wait(timeout=3) == 0


def test_bad_configuration_exits_2(start_app) -> None:
    app = start_app("v1", env={"APP_DB_COLUMNS": "name; DROP TABLE items"}, wait=False)
    assert app.wait(timeout=5) == 2
    assert "bad configuration" in app.log_text()


def test_db_endpoints_without_database_say_so(start_app) -> None:
    app = start_app("v1")
    status, _, body = get_json(app, "/db/items")
    assert status == 503 and body["error"] == "no database: DATABASE_URL is not set"


def migrate(dsn: str, *statements: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(MIGRATE), "--url", dsn, *statements], capture_output=True,
                          text=True, timeout=30, check=False)


def test_two_versions_share_one_table_through_expand_and_contract(
    start_app, postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    db = postgres_dsn.rsplit("/", 1)[1]
    postgres_server.sql("CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)", database=db)
    env = {"DATABASE_URL": postgres_dsn}
    v1 = start_app("v1", host="127.0.0.81", env={**env, "APP_DB_COLUMNS": "name"})
    assert post_json(v1, "/db/items", {"value": "alpha"}) == (
        201, {"version": "v1", "id": 1, "table": "items", "written": {"name": "alpha"}})

    # expand: add the new column (nullable), so v1 keeps working
    done = migrate(postgres_dsn, "ALTER TABLE items ADD COLUMN IF NOT EXISTS display_name text")
    assert done.returncode == 0, done.stderr
    v2 = start_app("v2", host="127.0.0.82", env={**env, "APP_DB_COLUMNS": "name, display_name"})
    assert post_json(v2, "/db/items", {"value": "beta"})[1]["written"] == {"name": "beta", "display_name": "beta"}
    assert post_json(v1, "/db/items", {"name": "gamma"})[0] == 201
    assert post_json(v2, "/db/items", {"name": "delta", "display_name": "Delta"})[0] == 201

    _, _, seen_by_v1 = get_json(v1, "/db/items")
    assert seen_by_v1["items"] == [{"id": 1, "name": "alpha"}, {"id": 2, "name": "beta"},
                                   {"id": 3, "name": "gamma"}, {"id": 4, "name": "delta"}]
    _, _, seen_by_v2 = get_json(v2, "/db/items?limit=3")
    assert seen_by_v2["count"] == 3
    assert [row["display_name"] for row in seen_by_v2["items"]] == [None, "beta", None]

    # backfill, then contract: drop the old column once only v2 and later run
    assert migrate(postgres_dsn, "UPDATE items SET display_name = name WHERE display_name IS NULL").returncode == 0
    assert migrate(postgres_dsn, "ALTER TABLE items DROP COLUMN name").returncode == 0
    v3 = start_app("v3", host="127.0.0.83", env={**env, "APP_DB_COLUMNS": "display_name"})
    _, _, seen_by_v3 = get_json(v3, "/db/items")
    assert [row["display_name"] for row in seen_by_v3["items"]] == ["alpha", "beta", "gamma", "Delta"]
    _, _, schema = get_json(v3, "/db/schema")
    assert [(c["name"], c["type"], c["nullable"]) for c in schema["columns"]] == [  # type: ignore[union-attr]
        ("id", "integer", False), ("display_name", "text", True)]

    status, body = post_json(v1, "/db/items", {"value": "too late"})  # v1 after the contract: a DB error
    assert status == 500
    assert body["error"] == '42703 column "name" of relation "items" does not exist'
    status, body = post_json(v3, "/db/items", {})
    assert (status, body["error"]) == (400, "no value for column(s) display_name")


def test_a_failing_migration_commits_nothing(postgres_server: PostgresServer, postgres_dsn: str) -> None:
    db = postgres_dsn.rsplit("/", 1)[1]
    postgres_server.sql("CREATE TABLE items (id serial PRIMARY KEY, name text)", database=db)
    done = migrate(postgres_dsn, "ALTER TABLE items ADD COLUMN extra text", "ALTER TABLE nowhere ADD COLUMN x int")
    assert done.returncode == 1
    assert 'relation "nowhere" does not exist' in done.stderr
    columns = postgres_server.sql("SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM "
                                  "information_schema.columns WHERE table_name = 'items'", database=db)
    assert columns == "id,name"
    assert migrate(postgres_dsn).returncode == 2


def test_postgres_server_is_quick_and_removed_afterwards() -> None:
    server = PostgresServer()
    server.start()
    root = server.root
    assert root is not None
    try:
        print(f"PostgreSQL start: {server.startup_seconds:.2f}s")
        assert server.sql("SELECT current_setting('listen_addresses')") == "127.0.0.1"
        assert server.sql("SELECT 40 + 2") == "42"
    finally:
        server.stop()
    assert not root.exists()
