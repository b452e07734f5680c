"""The test web app as a source directory a team would keep in git (``spec.source.path: apps/shop``): its
Deployment, a ConfigMap it reads its version, message and greeting file from, an HPA and a PDB. The pods are
``local/python:3`` processes, with the probe, ``preStop`` and drain of ``appmanifest.py`` (which says why)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from appmanifest import WEBAPP

from conftest import GitRepo

DIRECTORY = "apps/shop"

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
  labels: {{app: shop}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: shop}}
  template:
    metadata:
      labels: {{app: shop}}
    spec:
      terminationGracePeriodSeconds: 15
{volumes}      containers:
      - name: web
        image: local/python:3
        command: [python3, {webapp}]
        env:
{env}        - {{name: APP_SHUTDOWN_DELAY, value: "1"}}
        - {{name: POD_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
        - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
{mounts}        ports: [{{name: http, containerPort: 8080}}]
        readinessProbe:
          httpGet: {{path: /healthz, port: http}}
          periodSeconds: 1
          timeoutSeconds: 2
          failureThreshold: 3
        lifecycle:
          preStop:
            exec: {{command: [sleep, "2"]}}
"""

CONFIGURED_ENV = """\
        - {name: APP_VERSION, valueFrom: {configMapKeyRef: {name: settings, key: version}}}
        - {name: APP_MESSAGE, valueFrom: {configMapKeyRef: {name: settings, key: message}}}
        - {name: APP_CONFIG_FILE, value: /etc/shop/greeting}
"""
CONFIG_VOLUME = """\
      volumes:
      - name: settings
        configMap: {name: settings, items: [{key: greeting, path: greeting}]}
"""
CONFIG_MOUNT = "        volumeMounts: [{name: settings, mountPath: /etc/shop, readOnly: true}]\n"

SETTINGS = """\
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data:
  version: {version}
  message: {message}
  greeting: {greeting}
"""

HPA = """\
apiVersion: autoscaling/v2beta2
kind: HorizontalPodAutoscaler
metadata: {{name: shop}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: shop}}
  minReplicas: {low}
  maxReplicas: {high}
  metrics:
  - type: Resource
    resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 80}}}}
"""

PDB = """\
apiVersion: policy/v1beta1
kind: PodDisruptionBudget
metadata: {name: shop}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: shop}}
"""


def configured_app(replicas: int = 2) -> str:
    """The app's Deployment, configured from the ConfigMap ``settings``: ``APP_VERSION`` and ``APP_MESSAGE`` by
    ``configMapKeyRef``, the greeting as a mounted file (``APP_CONFIG_FILE``, read on every request)."""
    return DEPLOYMENT.format(replicas=replicas, webapp=json.dumps(str(WEBAPP)), volumes=CONFIG_VOLUME,
                             env=CONFIGURED_ENV, mounts=CONFIG_MOUNT)


def plain_app(version: str, replicas: int = 2) -> str:
    """The app's Deployment reporting ``version`` (no ConfigMap)."""
    return DEPLOYMENT.format(replicas=replicas, webapp=json.dumps(str(WEBAPP)), volumes="",
                             env=f"        - {{name: APP_VERSION, value: {version}}}\n", mounts="")


def settings(version: str, message: str, greeting: str) -> str:
    return SETTINGS.format(version=json.dumps(version), message=json.dumps(message), greeting=json.dumps(greeting))


def autoscaler(low: int, high: int) -> str:
    return HPA.format(low=low, high=high)


def directory_repo(path: Path) -> GitRepo:
    """A repository whose release source is the directory ``apps/shop``."""
    return GitRepo(path, manifest_path=DIRECTORY)


def commit_files(repo: GitRepo, files: Mapping[str, str | None], message: str) -> str:
    """Write (None: delete) files of the source directory by name and commit them; return the commit."""
    for name, text in files.items():
        target = repo.path / DIRECTORY / name
        if text is None:
            target.unlink()
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    repo.git("add", "-A")
    repo.git("commit", "-q", "--allow-empty", "-m", message)
    return repo.head()
