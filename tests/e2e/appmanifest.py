"""The test web app (``tests/app/webapp.py``) as the Deployment manifest a team would keep in git, for the
e2e tests that send real requests: ``local/python:3`` pods that the node runs as real processes.

The values, and why:

- ``readinessProbe`` on ``/healthz`` every 1 s (production: 5-10 s; 1 s keeps a release quick here),
  ``timeoutSeconds: 2`` and ``failureThreshold: 3``: on this loaded 2-core machine one slow answer must not
  take a serving pod out of the Service.
- ``preStop: sleep 2``: a terminating pod leaves the EndpointSlice at once, but a proxy follows with some
  lag (10-130 ms measured here, up to seconds for kube-proxy in a big cluster): the pod keeps serving
  meanwhile. Then SIGTERM; the app keeps accepting ``APP_SHUTDOWN_DELAY`` (1 s) more, stops accepting,
  finishes the requests in flight and exits 0.
- ``terminationGracePeriodSeconds: 15``: above preStop (2 s) + the shutdown delay (1 s) + the longest request
  the tests send (10 s, ``?delay=10``), so nothing in flight is cut short (with 3 s, some of those slow
  requests fail: the e2e test catches it); short enough that a stuck pod cannot hold a test for long.
- ``failing_health=True`` gives ``APP_HEALTH_FAIL_FILE`` a file that exists in every container
  (``/etc/hosts``, which the node always mounts): the app runs and answers, but ``/healthz`` answers 503 from
  the start, as a version with a broken dependency would; its readiness really fails.
"""

from __future__ import annotations

import json
from pathlib import Path

WEBAPP = Path(__file__).resolve().parents[1] / "app" / "webapp.py"
"""The app, by the absolute path of this checkout: a ``local/`` container sees the host's filesystem."""

APP_MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {app}}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {app}}}
  template:
    metadata:
      labels: {{app: {app}}}
    spec:
      terminationGracePeriodSeconds: 15
      containers:
      - name: web
        image: local/python:3
        command: [python3, {webapp}]
        env:
        - {{name: APP_VERSION, value: {version}}}
        - {{name: APP_SHUTDOWN_DELAY, value: "1"}}
{extra_env}        - {{name: POD_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
        - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
        - {{name: POD_NAMESPACE, valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}}}
        ports: [{{name: http, containerPort: 8080}}]
        readinessProbe:
          httpGet: {{path: /healthz, port: http}}
          periodSeconds: 1
          timeoutSeconds: 2
          failureThreshold: 3
        lifecycle:
          preStop:
            exec: {{command: [sleep, "2"]}}
"""


def app_manifest(name: str, version: str, *, replicas: int = 2, failing_health: bool = False,
                 message: str | None = None, health_fail_file: str | None = None) -> str:
    """The web app's Deployment reporting ``version``; ``failing_health``: its ``/healthz`` always fails;
    ``message``: its ``APP_MESSAGE`` (in the body of ``GET /``); ``health_fail_file``: ``/healthz`` fails while
    that file (on this machine) exists, e.g. once a test creates it after the switch."""
    extra = '        - {name: APP_HEALTH_FAIL_FILE, value: /etc/hosts}\n' if failing_health else ""
    if health_fail_file is not None:
        extra += f"        - {{name: APP_HEALTH_FAIL_FILE, value: {json.dumps(health_fail_file)}}}\n"
    if message is not None:
        extra += f"        - {{name: APP_MESSAGE, value: {json.dumps(message)}}}\n"
    return APP_MANIFEST.format(name=name, app=name, replicas=replicas, webapp=json.dumps(str(WEBAPP)), version=version,
                               extra_env=extra)
