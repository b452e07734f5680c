"""Helpers of the migration e2e tests: the web app on a real PostgreSQL as it is committed to git (its
Deployment manifest plus the expand and contract Jobs of ``tests/app/renamecolumn.py``), the Secret holding the
database URL, a load of reads and writes through the Service whose writes' acknowledgements are kept, and the
table as the database has it."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from appmanifest import app_manifest
from kubernetes import client
from kubewatch import NamespaceRecorder, Seen
from zerodowntime import TIMEOUT, PhasedLoad

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
from loadgen import LoadGenerator, RequestSpec
from loadreport import RequestRecord
from renamecolumn import Release, migration_job

from conftest import GitRepo

MIGRATE = Path(__file__).resolve().parents[1] / "app" / "migrate.py"
SECRET = "shop-database"
EXPAND_PATH, CONTRACT_PATH = "db/expand-job.yaml", "db/contract-job.yaml"
MIGRATIONS = {"expand": {"path": EXPAND_PATH, "timeoutSeconds": 60},
              "contract": {"path": CONTRACT_PATH, "timeoutSeconds": 60}}
"""``spec.migrations`` of the release."""
READ_PATH = "/db/items?limit=3"


def create_database_secret(core: client.CoreV1Api, namespace: str, url: str) -> None:
    """The Secret the app and the Jobs take ``DATABASE_URL`` from (key ``url``)."""
    core.create_namespaced_secret(namespace, {"metadata": {"name": SECRET}, "stringData": {"url": url}})


def db_app_manifest(version: str, columns: str, replicas: int = 2, name: str = "shop") -> str:
    """The web app's Deployment ``name`` (``appmanifest.py``; pods labelled ``app: <name>``) reporting
    ``version``, on the database with ``columns``."""
    manifest = yaml.safe_load(app_manifest(name, version, replicas=replicas))
    env = manifest["spec"]["template"]["spec"]["containers"][0]["env"]
    env[1:1] = [{"name": "APP_DB_COLUMNS", "value": columns},
                {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "url"}}}]
    return yaml.safe_dump(manifest, sort_keys=False)


def commit_release(repo: GitRepo, release: Release, *, message: str | None = None,
                   expand: Sequence[str] | None = None) -> str:
    """Commit the Deployment and both migration Jobs of ``release`` at once (``expand`` replaces its expand
    SQL); return the commit."""
    files = {repo.manifest_path: db_app_manifest(release.version, release.columns),
             EXPAND_PATH: migration_job("expand", expand or release.expand, str(MIGRATE), secret=SECRET),
             CONTRACT_PATH: migration_job("contract", release.contract, str(MIGRATE), secret=SECRET)}
    for path, text in files.items():
        target = repo.path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", message or f"release {release.version}")
    return repo.head()


def read_or_write(index: int) -> RequestSpec:
    """Even requests read (``GET /db/items?limit=3``), odd ones write ``{"value": "w<index>"}``."""
    if index % 2 == 0:
        return RequestSpec("GET", READ_PATH)
    return RequestSpec("POST", "/db/items", json.dumps({"value": f"w{index}"}).encode())


def is_write(record: RequestRecord) -> bool:
    return record.index % 2 == 1


class DatabaseLoad(PhasedLoad):
    """``PhasedLoad`` of reads and writes (``read_or_write``) through the Service, without a gap."""

    def __init__(self, url: str, *, rate: float = 80.0, max_seconds: float = 600) -> None:
        super().__init__(url, rate=rate, max_seconds=max_seconds)
        self.generator = LoadGenerator(url, workers=4, rate=rate, max_requests=50_000, max_seconds=max_seconds,
                                       timeout=TIMEOUT, request_for=read_or_write)

    def acknowledged(self) -> dict[int, str]:
        """``id -> value`` of every write the app answered 201."""
        acks: dict[int, str] = {}
        for record in self.generator.report.records:
            if is_write(record) and record.status == 201:
                answer = json.loads(record.body)
                acks[int(answer["id"])] = f"w{record.index}"
        return acks

    def counts(self) -> tuple[int, int, int, int]:
        """(reads sent, reads failed, writes sent, writes failed)."""
        records = self.generator.report.records
        writes = [r for r in records if is_write(r)]
        reads = [r for r in records if not is_write(r)]
        return len(reads), sum(not r.ok for r in reads), len(writes), sum(not r.ok for r in writes)


@dataclass(frozen=True)
class TableState:
    """What the database holds: the table's columns, its row count and non-null values per column."""

    columns: tuple[str, ...]
    rows: int
    filled: dict[str, int]

    def __str__(self) -> str:
        filled = ", ".join(f"{c} {self.filled[c]}" for c in self.columns if c != "id")
        return f"{self.rows} rows (non-null: {filled}); columns {', '.join(self.columns)}"


class Database:
    """psql queries of one database of the test server (``postgres.PostgresServer``)."""

    def __init__(self, server: Any, dsn: str) -> None:
        self.server = server
        self.name = dsn.rsplit("/", 1)[1]

    def sql(self, statement: str) -> str:
        return str(self.server.sql(statement, database=self.name))

    def columns(self) -> tuple[str, ...]:
        text = self.sql("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                        "AND table_name = 'items' ORDER BY ordinal_position")
        return tuple(text.split()) if text else ()

    def state(self) -> TableState:
        columns = self.columns()
        if not columns:
            return TableState((), 0, {})
        text_columns = [c for c in columns if c != "id"]
        counts = self.sql(f"SELECT count(*){''.join(f', count({c})' for c in text_columns)} FROM items").split("|")
        return TableState(columns, int(counts[0]), dict(zip(text_columns, map(int, counts[1:]), strict=True)))

    def values(self, column: str) -> dict[int, str | None]:
        """``id -> column`` of every row (None for NULL)."""
        text = self.sql(f"SELECT id, coalesce({column}, '<NULL>') FROM items ORDER BY id")
        pairs = (line.split("|", 1) for line in text.splitlines() if line)
        return {int(i): (None if v == "<NULL>" else v) for i, v in pairs}


@dataclass
class Timeline:
    """Named moments (monotonic) of a scenario, printed as offsets from the first."""

    marks: list[tuple[str, float]]

    def mark(self, what: str) -> float:
        now = time.monotonic()
        self.marks.append((what, now))
        return now

    def lines(self) -> list[str]:
        if not self.marks:
            return []
        t0 = self.marks[0][1]
        out, previous = [], t0
        for what, at in self.marks:
            out.append(f"  +{at - t0:6.1f}s ({at - previous:5.1f}s) {what}")
            previous = at
        return out



# ---- what the recorder saw (tests/e2e/kubewatch.py) -------------------------------------------------------
def _job_of(event: Seen, hook: str, commit: str) -> bool:
    meta = event.obj.metadata
    return (meta.labels or {}).get("bluegreen.dev/hook") == hook and \
        (meta.annotations or {}).get("bluegreen.dev/commit") == commit


def _finished(event: Seen) -> str | None:
    conditions = event.obj.status.conditions if event.obj.status else None
    return next((c.type for c in conditions or [] if c.status == "True" and c.type in ("Complete", "Failed")), None)


def job_created(events: NamespaceRecorder, hook: str, commit: str) -> Seen | None:
    """The first event of the ``hook`` Job of ``commit`` (its creation), if any."""
    return next(iter(events.of("job", lambda e: _job_of(e, hook, commit))), None)


def job_finished(events: NamespaceRecorder, hook: str, commit: str, verdict: str = "Complete") -> Seen | None:
    """The first event showing that Job with condition ``verdict`` (Complete or Failed)."""
    return next(iter(events.of("job", lambda e: _job_of(e, hook, commit) and _finished(e) == verdict)), None)


def migration_jobs(events: NamespaceRecorder) -> dict[str, tuple[str, str]]:
    """Every migration Job seen: name -> (hook, commit)."""
    jobs = {}
    for event in events.of("job"):
        meta = event.obj.metadata
        hook = (meta.labels or {}).get("bluegreen.dev/hook")
        if hook in ("expand", "contract"):
            jobs[event.name] = (hook, (meta.annotations or {}).get("bluegreen.dev/commit", ""))
    return jobs


def colour_changed(events: NamespaceRecorder, color: str, after: int, commit: str | None = None) -> Seen | None:
    """The first event of Deployment ``shop-<color>`` after revision ``after`` that brought it up for a release:
    created it or changed its spec (a new generation) with the annotation ``bluegreen.dev/commit: <commit>``
    (any commit when None), or scaled it up from fewer replicas (a cold rollback). A scale-down is not one."""
    generation = replicas = None
    for event in events.of("deployment", lambda e: e.name == f"shop-{color}"):
        spec = event.obj.spec
        new_generation = generation is None or event.obj.metadata.generation != generation
        scaled_up = replicas is not None and (spec.replicas or 0) > replicas
        applied = new_generation and (commit is None or
                                      (event.obj.metadata.annotations or {}).get("bluegreen.dev/commit") == commit)
        generation, replicas = event.obj.metadata.generation, spec.replicas or 0
        if event.revision > after and event.type != "DELETED" and (applied or scaled_up):
            return event
    return None


def switched_to(events: NamespaceRecorder, color: str, after: int) -> Seen | None:
    """The first event of Service ``shop`` after revision ``after`` whose selector names ``color``."""
    return next(iter(events.of("service", lambda e: e.name == "shop" and e.revision > after and
                               (e.obj.spec.selector or {}).get("bluegreen.dev/color") == color)), None)


def pod_version(event: Seen) -> str | None:
    """``APP_VERSION`` of a pod's first container (None for a Job's pod)."""
    env = event.obj.spec.containers[0].env or []
    return next((e.value for e in env if e.name == "APP_VERSION"), None)


def version_pods_alive_at(events: NamespaceRecorder, version: str, revision: int) -> list[str]:
    """The pods running ``version`` that existed at ``revision``: created before it, not deleted before it."""
    created: dict[str, int] = {}
    deleted: dict[str, int] = {}
    for event in events.of("pod", lambda e: pod_version(e) == version):
        created.setdefault(event.name, event.revision)
        if event.type == "DELETED":
            deleted[event.name] = event.revision
    return [name for name, rev in created.items() if rev < revision and deleted.get(name, revision + 1) > revision]


def last_deleted(events: NamespaceRecorder, version: str, before: int) -> Seen | None:
    """The last DELETED event of a ``version`` pod before revision ``before``."""
    gone = events.of("pod", lambda e: e.type == "DELETED" and pod_version(e) == version and e.revision < before)
    return max(gone, key=lambda e: e.revision, default=None)
