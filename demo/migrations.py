"""`make demo-migrations`: a database column renamed in three releases, each a git commit, under a continuous
load of reads and writes, without one failed request or one lost write.

A throwaway PostgreSQL runs on 127.0.0.1 (tests/servers/postgres.py); the web app (tests/app/webapp.py) reads
and writes its table ``items`` as ``local/python:3`` pods. Each commit holds the Deployment manifest and two
migration Jobs (tests/app/renamecolumn.py, running tests/app/migrate.py): the operator runs the **expand** before
it brings up the new colour, switches the Service, and runs the **contract** only once no pod of the previous
colour is left. The column ``name`` becomes ``display_name``:

    v1  reads/writes name                      expand: create the table
    v2  dual-writes name and display_name      expand: add display_name, backfill
    v3  reads/writes display_name              expand: backfill again; contract: drop name

Each step prints the migration Jobs, the rows counted before and after each migration, the schema, and the
traffic (requests through the Service's ClusterIP, half of them writes whose 201 answers are acknowledgements).
At the end every acknowledged write is looked up in the table. Exits 1 if a request failed or a write is
missing. Everything it started is stopped at the end: the operator, the pods (the namespace is deleted) and
the database. Runs against $KUBECONFIG (the Makefile starts the local control plane and sets it).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "app"))
sys.path.insert(0, str(ROOT / "tests" / "servers"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo import MANIFEST, VERSION_LINE, Demo, git, kubectl_get_bgr, say  # noqa: E402
from loadgen import RequestSpec  # noqa: E402
from postgres import PostgresServer  # noqa: E402
from renamecolumn import V1, V2, V3, Release, migration_job  # noqa: E402
from traffic import Traffic  # noqa: E402

NAMESPACE = "bluegreen-demo-migrations"
SECRET = "shop-database"
SCALE_DOWN_DELAY = 10
"""Seconds the previous colour stays warm after a switch (the instant-rollback window); the contract waits."""
EXPAND_JOB, CONTRACT_JOB = "db/expand-job.yaml", "db/contract-job.yaml"
DB_ENV = """            - {name: APP_DB_COLUMNS, value: "@COLUMNS@"}  # the columns this version reads and writes
            - name: DATABASE_URL                      # from a Secret: credentials never go to git
              valueFrom: {secretKeyRef: {name: shop-database, key: url}}"""
MIGRATE = str(ROOT / "tests" / "app" / "migrate.py")


class Database:
    """The demo's PostgreSQL, and what its table holds, through psql."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server

    def columns(self) -> list[tuple[str, str, bool]]:
        text = self.server.sql("SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                               "WHERE table_schema = 'public' AND table_name = 'items' ORDER BY ordinal_position")
        return [(n, t, null == "YES") for n, t, null in (line.split("|") for line in text.splitlines() if line)]

    def schema(self) -> str:
        columns = self.columns()
        if not columns:
            return "no table items yet"
        return "items(" + ", ".join(f"{n} {t}{'' if null else ' NOT NULL'}" for n, t, null in columns) + ")"

    def rows(self) -> str:
        names = [n for n, _, _ in self.columns() if n != "id"]
        if not names:
            return "no table items yet"
        counts = self.server.sql(f"SELECT count(*){''.join(f', count({n})' for n in names)} FROM items").split("|")
        filled = ", ".join(f"{n} set in {c}" for n, c in zip(names, counts[1:], strict=True))
        return f"{counts[0]} rows ({filled})"

    def display_names(self) -> dict[int, str]:
        text = self.server.sql("SELECT id, display_name FROM items WHERE display_name IS NOT NULL")
        return {int(i): v for i, v in (line.split("|", 1) for line in text.splitlines() if line)}


class MigrationDemo(Demo):
    namespace = NAMESPACE

    def __init__(self, workdir: Path, database: PostgresServer) -> None:
        super().__init__(workdir)
        self.batch = client.BatchV1Api(self.api)
        self.db = Database(database)
        self.dsn = database.dsn
        self._values = itertools.count()

    # ---- set-up ------------------------------------------------------------------------------------
    def read_or_write(self, index: int) -> RequestSpec:
        """Every other request writes a new row (its value unique), the others read the first rows."""
        if index % 2:
            return RequestSpec("POST", "/db/items", json.dumps({"value": f"w{next(self._values)}"}).encode())
        return RequestSpec("GET", "/db/items?limit=3")

    def new_traffic(self, ip: str) -> Traffic:
        return Traffic(ip, say, request_for=self.read_or_write,
                       show=("/db/schema", ("version", "table", "columns")))

    def create_secret(self) -> None:
        self.core.create_namespaced_secret(self.namespace, {"metadata": {"name": SECRET},
                                                            "stringData": {"url": self.dsn}})
        say(f"Secret {SECRET} (key url: {self.dsn}): the app and the Jobs read DATABASE_URL from it")

    # ---- releases ----------------------------------------------------------------------------------
    def commit_release(self, release: Release, message: str) -> str:
        """Commit the Deployment manifest and the two migration Jobs of ``release`` in one commit."""
        manifest = MANIFEST.replace(VERSION_LINE, VERSION_LINE.replace("v1", release.version) + "\n" +
                                    DB_ENV.replace("@COLUMNS@", release.columns))
        files = {"apps/shop/deployment.yaml": manifest,
                 EXPAND_JOB: migration_job("expand", release.expand, MIGRATE, secret=SECRET),
                 CONTRACT_JOB: migration_job("contract", release.contract, MIGRATE, secret=SECRET)}
        for path, text in files.items():
            (self.repo / path).parent.mkdir(parents=True, exist_ok=True)
            (self.repo / path).write_text(text)
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", message)
        commit = git(self.repo, "rev-parse", "HEAD")
        say(f"commit {commit[:12]} '{message}': apps/shop/deployment.yaml (APP_VERSION {release.version}, "
            f"APP_DB_COLUMNS {release.columns}), {EXPAND_JOB}, {CONTRACT_JOB}")
        return commit

    def job(self, hook: str, commit: str) -> Any:
        jobs = self.batch.list_namespaced_job(
            self.namespace, label_selector=f"bluegreen.dev/release=shop,bluegreen.dev/hook={hook}").items
        return next((j for j in jobs if (j.metadata.annotations or {}).get("bluegreen.dev/commit") == commit), None)

    def job_log(self, job: Any) -> str:
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"job-name={job.metadata.name}").items
        if not pods:
            return "(no pod left)"
        try:
            return str(self.core.read_namespaced_pod_log(pods[0].metadata.name, self.namespace)).strip()
        except ApiException as exc:
            return f"(log not readable: {exc.reason})"

    def run_migration(self, hook: str, commit: str, statements: tuple[str, ...], timeout: float = 120) -> None:
        """Follow the ``hook`` Job of ``commit``: its creation, its verdict, its log, and the rows after it."""
        print(f"  {hook} SQL, one transaction:\n" + "\n".join(f"    {s};" for s in statements), flush=True)
        deadline = time.monotonic() + timeout
        while (job := self.job(hook, commit)) is None:
            if time.monotonic() > deadline:
                raise SystemExit(f"demo: no {hook} Job within {timeout}s; see the operator log")
            time.sleep(0.05)
        created = time.monotonic()
        say(f"  {hook} Job {job.metadata.name} created")
        while not (done := next((c.type for c in (job.status.conditions or []) if c.status == "True"), None)):
            if time.monotonic() > deadline:
                raise SystemExit(f"demo: the {hook} Job did not finish within {timeout}s")
            time.sleep(0.05)
            job = self.batch.read_namespaced_job_status(job.metadata.name, self.namespace)
        say(f"  {hook} Job {done} after {time.monotonic() - created:.1f}s: {self.job_log(job)}")
        if done != "Complete":
            raise SystemExit(f"demo: the {hook} Job failed; see kubectl -n {self.namespace} describe bgr shop")
        say(f"  table after the {hook}: {self.db.rows()}; schema {self.db.schema()}")

    def follow_colour(self, commit: str, color: str, started: float, timeout: float = 120) -> None:
        """Wait until ``color`` runs ``commit`` with all its replicas ready and the Service selects it."""
        ready_at = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            d = self.deployment(color)
            runs = d is not None and (d.metadata.annotations or {}).get("bluegreen.dev/commit") == commit
            if ready_at is None and runs and self.is_ready(d):
                ready_at = time.monotonic()
                say(f"  {color} ready: {d.status.ready_replicas}/{d.spec.replicas} replicas "
                    f"(+{ready_at - started:.2f}s after the commit)")
            if ready_at is not None and self.selector_color() == color:
                say(f"  Service shop switched to {color} (+{time.monotonic() - started:.2f}s after the commit); "
                    f"traffic so far: {self.running_total()}")
                return
            time.sleep(0.05)
        raise SystemExit(f"demo: {color} did not take traffic within {timeout}s; see the operator log")

    def wait_old_colour_gone(self, color: str, timeout: float = 120) -> None:
        """Print when ``color`` is scaled to 0 and when its last pod is gone (the contract's precondition)."""
        deadline = time.monotonic() + timeout
        scaled = False
        while time.monotonic() < deadline:
            d = self.deployment(color)
            if not scaled and d is not None and d.spec.replicas == 0:
                scaled = True
                say(f"  {color} scaled to 0 after scaleDownDelaySeconds; its pods drain and stop")
            pods = self.core.list_namespaced_pod(
                self.namespace, label_selector=f"bluegreen.dev/release=shop,bluegreen.dev/color={color}").items
            if scaled and not pods:
                say(f"  no pod of {color} is left: the contract may run")
                return
            time.sleep(0.1)
        raise SystemExit(f"demo: {color} was not scaled down within {timeout}s")

    def release(self, number: int, release: Release, color: str, message: str, title: str, note: str = "") -> str:
        print(f"\n=== {number}. release {release.version}: {title}", flush=True)
        say(f"table before the release: {self.db.rows()}")
        started = time.monotonic()
        commit = self.commit_release(release, message)
        if number == 1:
            self.create_release(scaleDownDelaySeconds=SCALE_DOWN_DELAY, migrations={
                "expand": {"path": EXPAND_JOB}, "contract": {"path": CONTRACT_JOB}})
            say("BlueGreenRelease shop created (spec.migrations: expand and contract Job paths)")
        else:
            self.check_now()
            say("asking the operator to check git now (bluegreen reconcile shop)")
        self.run_migration("expand", commit, release.expand)
        if number == 1:
            assert self.traffic is not None
            self.traffic.start_when_answering()
        self.follow_colour(commit, color, started)
        if note:
            say(f"  {note}")
        self.step_done(release.version, [release.version] if number == 1 else
                       [f"v{number - 1}", release.version])
        return commit

    def run(self) -> int:
        say(f"PostgreSQL started on 127.0.0.1:{self.db.server.port} (a throwaway server, data in a temp dir)")
        self.install_crd()
        self.fresh_namespace()
        self.create_secret()
        self.init_repo()
        self.start_operator()

        self.release(1, V1, "blue", "shop v1", "the app on column name; the expand creates the table")
        self.release(2, V2, "green", "shop v2: dual-write name and display_name",
                     "expand adds display_name and backfills it; v2 writes both columns",
                     note="v1 wrote name only until the switch: v3's expand backfills those rows")
        v3 = self.release(3, V3, "blue", "shop v3: display_name only; contract drops name",
                          "expand backfills again; v3 uses display_name only",
                          note="name stays for now: v2 is still warm (an instant rollback) and uses it")
        print(f"\n=== 4. contract: v2 (green) stays warm {SCALE_DOWN_DELAY}s for an instant rollback, then its pods "
              "go; only then is name dropped", flush=True)
        self.wait_old_colour_gone("green")
        say(f"table before the contract: {self.db.rows()}")
        self.run_migration("contract", v3, V3.contract)
        assert self.traffic is not None
        self.traffic.wait_more("v3", 50)
        kubectl_get_bgr(self.namespace)
        print("=== release history (bluegreen history shop)", flush=True)
        subprocess.run([sys.executable, "-m", "bluegreen.cli", "history", "shop", "-n", self.namespace], check=False)
        return self.summary()

    def summary(self) -> int:
        assert self.traffic is not None
        problems = self.traffic.finish()
        acked: dict[int, str] = {}
        for record in self.traffic.records():
            if record.status == 201:
                answer = json.loads(record.body)
                acked[int(answer["id"])] = next(iter(answer["written"].values()))
        found = self.db.display_names()
        missing = [i for i, v in acked.items() if found.get(i) != v]
        counts = self.traffic.counter.snapshot()
        print(f"=== {counts.sent} requests, {counts.failed} errors / {len(acked)} writes acknowledged, "
              f"{len(acked) - len(missing)} found (with their value in display_name); table: {self.db.rows()}",
              flush=True)
        if missing:
            print(f"LOST WRITES: {len(missing)}, e.g. ids {missing[:10]}", flush=True)
        return 1 if problems or missing else 0

    def clean_up(self) -> None:
        """Stop the load and the operator, delete the namespace (its pods), wait until it is gone."""
        if self.traffic is not None:
            self.traffic.stop()
        self.stop_operator()
        try:
            self.core.delete_namespace(self.namespace)
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                self.core.read_namespace(self.namespace)
                time.sleep(0.5)
        except ApiException as exc:
            if exc.status != 404:
                raise
        say(f"namespace {self.namespace} deleted (the app's pods and the Jobs with it)")


def main() -> int:
    if not os.environ.get("KUBECONFIG"):
        print("demo: KUBECONFIG is not set (run it through `make demo-migrations`)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="bluegreen-demo-migrations-"))
    with PostgresServer() as database:
        demo = MigrationDemo(workdir, database)
        try:
            code = demo.run()
        finally:
            demo.clean_up()
            shutil.rmtree(workdir / "cache", ignore_errors=True)
    say("PostgreSQL stopped and removed")
    return code


if __name__ == "__main__":
    sys.exit(main())
