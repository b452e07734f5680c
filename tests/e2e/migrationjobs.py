"""Migration Jobs for the e2e tests, as a team would keep them in git next to the Deployment manifest, and
watches that record when things happened on the API server.

Each Job is a real process on the node (``local/python:3``, ``python3 -c``) that appends one line to a file on
this machine (``RECORD``: pods see the host's filesystem): ``<phase> <commit> <colour> <unix time>``, so a test
reads which migrations really ran, in which order. ``FAIL_WHILE``: while that file exists the Job prints an
error (as a failed ``ALTER TABLE`` would) and exits 3. ``PAUSE``: seconds it takes first.
"""

from __future__ import annotations

import textwrap
import threading
from pathlib import Path
from typing import Any

from kubernetes import client, watch

EXPAND_PATH, CONTRACT_PATH = "db/expand-job.yaml", "db/contract-job.yaml"
SCRIPT = """
import os, sys, time
time.sleep(float(os.environ.get("PAUSE") or "0"))
flag = os.environ.get("FAIL_WHILE")
if flag and os.path.exists(flag):
    print("migrating", os.environ["BLUEGREEN_HOOK"], "for", os.environ["BLUEGREEN_COMMIT"][:12])
    print('ERROR: column "display_name" of relation "items" already exists')
    sys.exit(3)
with open(os.environ["RECORD"], "a") as out:
    out.write(" ".join([os.environ["BLUEGREEN_HOOK"], os.environ["BLUEGREEN_COMMIT"], os.environ["BLUEGREEN_COLOR"],
                        repr(time.time())]) + "\\n")
print(os.environ["BLUEGREEN_HOOK"], "done")
"""


def migration_job(phase: str, record: Path, *, fail_while: Path | None = None, pause: float = 0) -> str:
    """The Job manifest of one phase (``expand`` or ``contract``)."""
    script = textwrap.indent(SCRIPT.strip(), " " * 14)
    return f"""apiVersion: batch/v1
kind: Job
metadata:
  name: {phase}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: local/python:3
          command:
            - python3
            - -c
            - |
{script}
          env:
            - {{name: RECORD, value: "{record}"}}
            - {{name: FAIL_WHILE, value: "{fail_while or ''}"}}
            - {{name: PAUSE, value: "{pause}"}}
"""


def ran(record: Path) -> list[tuple[str, str, str]]:
    """(phase, commit, colour) of every migration that ran to its end, in order."""
    if not record.exists():
        return []
    return [(p, c, color) for p, c, color, _ in (line.split() for line in record.read_text().splitlines())]


def migration_jobs(cluster: Any, phase: str | None = None) -> list[client.V1Job]:
    """The release's migration Jobs (of ``phase``), oldest first."""
    batch = client.BatchV1Api(cluster.core.api_client)
    listing = batch.list_namespaced_job(cluster.namespace, label_selector="bluegreen.dev/release=shop")
    jobs = [j for j in listing.items if j.metadata.labels.get("bluegreen.dev/hook") in ("expand", "contract")
            and phase in (None, j.metadata.labels.get("bluegreen.dev/hook"))]
    return sorted(jobs, key=lambda j: (j.metadata.creation_timestamp, j.metadata.name))


class Recorder:
    """Watches pods (of a label selector) or Jobs from a thread, recording each event's type, object name and
    resourceVersion: the API server's own order (etcd's revision), exact where clocks are not."""

    def __init__(self, api: client.ApiClient, namespace: str, kind: str, selector: str) -> None:
        self.core, self.batch = client.CoreV1Api(api), client.BatchV1Api(api)
        self.namespace, self.kind, self.selector = namespace, kind, selector
        self.events: list[tuple[str, str, int]] = []
        self._watch = watch.Watch()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = threading.Event()
        self._stopping = False

    def _list(self) -> Any:
        lister = self.core.list_namespaced_pod if self.kind == "pods" else self.batch.list_namespaced_job
        return lister, lister(self.namespace, label_selector=self.selector)

    def _run(self) -> None:
        lister, listing = self._list()
        for item in listing.items:
            self.events.append(("LISTED", item.metadata.name, int(item.metadata.resource_version)))
        self._started.set()
        try:
            for event in self._watch.stream(lister, self.namespace, label_selector=self.selector,
                                            resource_version=listing.metadata.resource_version, timeout_seconds=600):
                item = event["object"]
                self.events.append((event["type"], item.metadata.name, int(item.metadata.resource_version)))
        except Exception:
            if not self._stopping:
                raise

    def __enter__(self) -> Recorder:
        self._thread.start()
        self._started.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping = True
        self._watch.stop()

    def revision(self, kind: str, name_prefix: str = "") -> list[int]:
        """The resourceVersions of the events of ``kind`` (ADDED, DELETED...) for names starting so."""
        return [rv for k, name, rv in self.events if k == kind and name.startswith(name_prefix)]
