"""``bluegreen diff`` against a live Deployment the operator made: no difference right after a release (also
without the template-hash shortcut: the normalization makes the live object and the rendered manifest equal),
exactly the image lines once git changes the image, ``--revision`` for another commit, and exit 2 with a clear
message when the git Secret is missing or may not be read. Also ``status``/``history`` with ``-o json|yaml``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from clirunner import bluegreen, viewer_kubeconfig
from kubernetes import client
from waiting import wait_until

from bluegreen.cli.normalize import normalize_deployment
from bluegreen.core.desired import parse_manifest, render_deployment
from bluegreen.core.spec import Color
from conftest import Cluster, GitRepo, Operator

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
  labels: {{app: shop}}
spec:
  replicas: 2
  strategy: {{type: RollingUpdate}}
  selector:
    matchLabels: {{app: shop}}
  template:
    metadata:
      labels: {{app: shop}}
    spec:
      containers:
      - name: web
        image: {image}
        imagePullPolicy: IfNotPresent
        ports: [{{containerPort: 8080, name: http}}]
        env:
        - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
        readinessProbe:
          httpGet: {{path: /healthz, port: 8080}}
          initialDelaySeconds: 1
        lifecycle:
          preStop: {{httpGet: {{path: /drain, port: http}}}}
        volumeMounts: [{{name: scratch, mountPath: /scratch}}, {{name: info, mountPath: /info}}]
      volumes:
      - {{name: scratch, emptyDir: {{}}}}
      - {{name: info, downwardAPI: {{items: [{{path: name, fieldRef: {{fieldPath: metadata.name}}}}]}}}}
"""


def changed_lines(diff: str) -> list[str]:
    return [line for line in diff.splitlines()
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def diff(kubeconfig: str, namespace: str, tmp_path: Path, *args: str) -> Any:
    return bluegreen(kubeconfig, "diff", "shop", "-n", namespace, "--cache-dir", str(tmp_path / "cli-cache"), *args)


def test_diff_shows_what_the_next_release_changes(kube_client: client.ApiClient, kubeconfig: str, namespace: str,
                                                  cluster: Cluster, repo: GitRepo, operator: Operator,
                                                  tmp_path: Path) -> None:
    cluster.create_service()
    v1 = repo.write(MANIFEST.format(image="registry.local/shop:v1"), message="shop v1")
    cluster.create_release(repo)
    cluster.wait_serving(v1, "blue")

    same = diff(kubeconfig, namespace, tmp_path)
    assert (same.returncode, same.stdout) == (0, ""), same.stderr
    assert "no difference" in same.stderr

    # the same verdict without the hash shortcut: the API server's defaults are normalized away
    live = kube_client.sanitize_for_serialization(cluster.deployment("blue"))
    desired = parse_manifest(MANIFEST.format(image="registry.local/shop:v1"), namespace=namespace)
    rendered = render_deployment(desired, release="shop", namespace=namespace, color=Color.GREEN, commit=v1,
                                 replicas=desired.replicas, owner=None)
    assert normalize_deployment(live) == normalize_deployment(rendered)

    suspended = bluegreen(kubeconfig, "suspend", "shop", "-n", namespace)
    assert suspended.returncode == 0, suspended.stderr
    wait_until(lambda: cluster.status().get("phase") == "Suspended", timeout=30, what="phase Suspended")
    v2 = repo.write(MANIFEST.format(image="registry.local/shop:v2"), message="shop v2")

    changed = diff(kubeconfig, namespace, tmp_path)
    assert changed.returncode == 1, changed.stderr
    assert changed.stdout.startswith(f"--- live {namespace}/shop-blue (commit {v1[:12]})\n"
                                     f"+++ git {repo.url} {repo.manifest_path} at {v2[:12]} (as shop-green)\n")
    lines = changed_lines(changed.stdout)
    assert "-        image: registry.local/shop:v1" in lines and "+        image: registry.local/shop:v2" in lines
    others = [line for line in lines if "image:" not in line]
    assert len(others) == 4 and all("bluegreen.dev/template-hash" in line for line in others), lines
    assert cluster.deployment("green") is None, "diff changes nothing"

    back = diff(kubeconfig, namespace, tmp_path, "--revision", v1[:10])
    assert (back.returncode, back.stdout) == (0, ""), back.stderr

    resumed = bluegreen(kubeconfig, "resume", "shop", "-n", namespace)
    assert resumed.returncode == 0, resumed.stderr
    cluster.wait_serving(v2, "green")
    after = diff(kubeconfig, namespace, tmp_path)
    assert (after.returncode, after.stdout) == (0, ""), after.stdout + after.stderr
    old = diff(kubeconfig, namespace, tmp_path, "--revision", v1)
    assert old.returncode == 1
    assert "+        image: registry.local/shop:v1" in changed_lines(old.stdout)
    assert old.stdout.startswith(f"--- live {namespace}/shop-green (commit {v2[:12]})\n")


def test_diff_exits_2_when_the_git_secret_is_missing_or_forbidden(
        kube_client: client.ApiClient, kubeconfig: str, namespace: str, cluster: Cluster, repo: GitRepo,
        crd: None, tmp_path: Path) -> None:
    repo.release("registry.local/shop:v1")
    cluster.create_release(repo, source={"url": repo.url, "path": repo.manifest_path, "secretRef": {"name": "creds"}})
    missing = diff(kubeconfig, namespace, tmp_path)
    assert missing.returncode == 2
    assert f"the git Secret 'creds' (spec.source.secretRef) does not exist in namespace {namespace!r}" \
        in missing.stderr
    client.CoreV1Api(kube_client).create_namespaced_secret(namespace, {"metadata": {"name": "creds"},
                                                                       "stringData": {"username": "u"}})
    viewer = str(viewer_kubeconfig(kube_client, namespace, tmp_path / "viewer.kubeconfig"))
    forbidden = diff(viewer, namespace, tmp_path)
    assert forbidden.returncode == 2
    assert "you may not read the git Secret 'creds'" in forbidden.stderr and "needs 'get'" in forbidden.stderr
    unknown = bluegreen(kubeconfig, "diff", "nope", "-n", namespace)
    assert unknown.returncode == 2 and "bluegreenrelease 'nope' not found" in unknown.stderr


def test_status_and_history_print_json_and_yaml(kube_client: client.ApiClient, kubeconfig: str, namespace: str,
                                                cluster: Cluster, repo: GitRepo, operator: Operator) -> None:
    cluster.create_service()
    v1 = repo.release("registry.local/shop:v1")
    cluster.create_release(repo)
    cluster.wait_serving(v1, "blue")
    one = json.loads(bluegreen(kubeconfig, "status", "shop", "-n", namespace, "-o", "json").stdout)
    assert (one["kind"], one["metadata"]["name"], one["status"]["activeRevision"]) == ("BlueGreenRelease", "shop", v1)
    listed = yaml.safe_load(bluegreen(kubeconfig, "status", "-n", namespace, "-o", "yaml").stdout)
    assert listed["kind"] == "List" and [item["metadata"]["name"] for item in listed["items"]] == ["shop"]
    history = yaml.safe_load(bluegreen(kubeconfig, "history", "shop", "-n", namespace, "-o", "yaml").stdout)
    assert [(entry["revision"], entry["outcome"]) for entry in history] == [(v1, "Succeeded")]
    table = bluegreen(kubeconfig, "history", "shop", "-n", namespace).stdout.splitlines()
    assert table[0].split()[:3] == ["REVISION", "COLOR", "OUTCOME"] and table[1].split()[:3] == [v1[:12], "blue",
                                                                                                "Succeeded"]
