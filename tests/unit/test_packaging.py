"""Unit tests of the install artefacts: manifests/ (kustomize), the Helm chart, their agreement with crds/.

No cluster and no helm binary: the files are parsed as they are. kustomize builds are resolved by a small
reader that understands only what these kustomizations use (a list of resources) and refuses anything else,
so it cannot silently differ from ``kubectl kustomize``; when kubectl is installed a test compares the two.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from bluegreen.cli import _parser

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "bluegreenreleases.bluegreen.dev.yaml"
MANIFESTS = ROOT / "manifests"
NAMESPACED = MANIFESTS / "namespaced"
CHART = ROOT / "charts" / "bluegreen-operator"
CHART_CRD = CHART / "crds" / CRD.name

OPERATOR_NAMESPACE = "bluegreen-system"
WEBHOOK_PORT = 9443
WEBHOOK_SECRET = "bluegreen-webhook"
WEBHOOK_SECRET_FILE = "/etc/bluegreen/webhook/secret"
WEBHOOK_ARGS = ["--webhook-listen", f"0.0.0.0:{WEBHOOK_PORT}", "--webhook-secret-file", WEBHOOK_SECRET_FILE]
METRICS_PORT = 8000
METRICS_ARGS = ["--metrics-listen", f":{METRICS_PORT}"]
EXAMPLE_WATCHED_NAMESPACE = "bluegreen-apps"
CACHE_DIR = "/var/cache/bluegreen"

# (apiGroup, resource) -> verbs: exactly what the operator does, nothing more.
EXPECTED_RULES: dict[tuple[str, str], set[str]] = {
    ("bluegreen.dev", "bluegreenreleases"): {"get", "list", "watch", "patch"},
    ("bluegreen.dev", "bluegreenreleases/status"): {"get", "patch"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch"},
    ("", "services"): {"list", "watch", "patch"},
    ("", "events"): {"create", "patch"},
    ("events.k8s.io", "events"): {"create", "patch"},
    ("", "secrets"): {"get"},
    ("batch", "jobs"): {"get", "list", "watch", "create", "delete"},
    ("", "pods"): {"list"},
    ("", "pods/log"): {"get"},
    ("", "configmaps"): {"get", "list", "create", "patch", "delete"},
    ("autoscaling", "horizontalpodautoscalers"): {"get", "create", "patch", "delete"},
    ("policy", "poddisruptionbudgets"): {"get", "create", "patch", "delete"},
}
NEVER_GRANTED_VERBS = {"delete", "deletecollection", "escalate", "bind", "impersonate", "*"}
DELETABLE = {("batch", "jobs"), ("", "configmaps"), ("autoscaling", "horizontalpodautoscalers"),
             ("policy", "poddisruptionbudgets")}
"""What the operator deletes: its own hook Jobs (cancelled runs, old finished runs) and the copies it made for a
colour (ConfigMaps git no longer has, the HPA of a colour scaled down, a PDB git no longer has)."""

Doc = dict[str, Any]


# --- helpers -------------------------------------------------------------------------------------------


def load_docs(path: Path) -> list[Doc]:
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    for doc in docs:
        assert isinstance(doc, dict), f"{path}: a YAML document is not a mapping: {doc!r}"
    return docs


def kustomize_build(directory: Path) -> list[Doc]:
    """The objects ``kubectl kustomize directory`` emits, for kustomizations that only list resources."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - {"apiVersion", "kind", "resources"}
    assert not unsupported, (
        f"{directory}/kustomization.yaml uses {sorted(unsupported)}, which this test's reader does not "
        "model; extend kustomize_build() in tests/unit/test_packaging.py"
    )
    docs: list[Doc] = []
    for entry in kustomization["resources"]:
        target = (directory / entry).resolve()
        assert target.is_relative_to(directory.resolve()), (
            f"{directory}/kustomization.yaml lists {entry!r}: kustomize refuses files outside its directory"
        )
        docs.extend(kustomize_build(target) if target.is_dir() else load_docs(target))
    return docs


def identity(doc: Doc) -> tuple[str, str, str]:
    return doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"]


LEADER_ELECTION = "bluegreen-operator-leader-election"
"""The Role (and RoleBinding) of the Lease, in the operator's namespace (manifests/leader-election.yaml)."""
LEADER_TRIPLES = {("coordination.k8s.io", "leases", "create"), ("coordination.k8s.io", "leases", "get"),
                  ("coordination.k8s.io", "leases", "update"), ("", "pods", "patch")}


def only(docs: Iterable[Doc], kind: str, name: str | None = None) -> Doc:
    """The one document of ``kind`` (named ``name``; the leader election's Role and RoleBinding aside)."""
    found = [doc for doc in docs if doc["kind"] == kind and name in (None, doc["metadata"]["name"])
             and doc["metadata"]["name"] != LEADER_ELECTION]
    assert len(found) == 1, f"expected exactly one {kind} {name or ''}, found {[identity(d) for d in found]}"
    return found[0]


def rule_triples(rules: list[Doc]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


EXPECTED_TRIPLES = {
    (group, resource, verb) for (group, resource), verbs in EXPECTED_RULES.items() for verb in verbs
}


def assert_least_privilege(rules: list[Doc], where: str) -> None:
    for rule in rules:
        for field in ("apiGroups", "resources", "verbs", "resourceNames"):
            assert "*" not in rule.get(field, []), f"{where}: wildcard in {field}: {rule}"
        assert "nonResourceURLs" not in rule, f"{where}: nonResourceURLs granted: {rule}"
    triples = rule_triples(rules)
    forbidden = {t for t in triples if t[2] in NEVER_GRANTED_VERBS and not (t[2] == "delete" and t[:2] in DELETABLE)}
    assert not forbidden, f"{where}: grants verbs the operator never uses: {sorted(forbidden)}"
    secrets = {verb for group, resource, verb in triples if (group, resource) == ("", "secrets")}
    assert secrets <= {"get"}, f"{where}: Secrets must be readable by name only (get), got {sorted(secrets)}"
    missing, extra = EXPECTED_TRIPLES - triples, triples - EXPECTED_TRIPLES
    assert not missing and not extra, f"{where}: missing {sorted(missing)}, not needed {sorted(extra)}"


def assert_hardened(pod_security: Doc, container_security: Doc, where: str) -> None:
    def effective(key: str) -> Any:
        return container_security.get(key, pod_security.get(key))

    assert effective("runAsNonRoot") is True, f"{where}: runAsNonRoot must be true"
    assert effective("runAsUser") == 65532, f"{where}: must run as uid 65532, got {effective('runAsUser')}"
    assert container_security.get("readOnlyRootFilesystem") is True, (
        f"{where}: root filesystem must be read-only"
    )
    assert container_security.get("allowPrivilegeEscalation") is False, (
        f"{where}: privilege escalation allowed"
    )
    assert container_security.get("privileged") in (None, False), f"{where}: privileged container"
    capabilities = container_security.get("capabilities", {})
    assert capabilities.get("drop") == ["ALL"], f"{where}: capabilities must drop ALL, got {capabilities}"
    assert not capabilities.get("add"), f"{where}: capabilities added: {capabilities['add']}"
    assert (effective("seccompProfile") or {}).get("type") == "RuntimeDefault", (
        f"{where}: seccomp not RuntimeDefault"
    )


def operator_container(deployment: Doc) -> Doc:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"], containers
    container: Doc = containers[0]
    return container


# --- the CRD copy and the versions ---------------------------------------------------------------------


def test_chart_crd_is_a_byte_for_byte_copy_of_crds() -> None:
    assert CHART_CRD.is_file(), f"{CHART_CRD} is missing: cp crds/*.yaml charts/bluegreen-operator/crds/"
    assert CHART_CRD.read_bytes() == CRD.read_bytes(), (
        f"{CHART_CRD.relative_to(ROOT)} differs from {CRD.relative_to(ROOT)} (the canonical CRD); "
        "sync it with: cp crds/*.yaml charts/bluegreen-operator/crds/"
    )
    extra = {p.name for p in CHART_CRD.parent.iterdir()} - {p.name for p in CRD.parent.glob("*.yaml")}
    assert not extra, f"the chart ships CRD files that crds/ does not have: {sorted(extra)}"


def test_chart_app_version_equals_the_package_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == CHART.name
    assert str(chart["appVersion"]) == version, (
        f"Chart.yaml appVersion {chart['appVersion']!r} != pyproject.toml version {version!r}"
    )


# --- manifests/ ----------------------------------------------------------------------------------------

MANIFEST_FILES = sorted(MANIFESTS.rglob("*.yaml"))


@pytest.mark.parametrize("path", MANIFEST_FILES, ids=[str(p.relative_to(MANIFESTS)) for p in MANIFEST_FILES])
def test_every_manifest_parses(path: Path) -> None:
    docs = load_docs(path)
    assert docs, f"{path} holds no YAML document"
    for doc in docs:
        assert doc.get("apiVersion") and doc.get("kind"), f"{path}: document without apiVersion/kind"
        if doc["kind"] != "Kustomization":
            assert doc.get("metadata", {}).get("name"), f"{path}: {doc['kind']} without metadata.name"


def test_every_manifest_file_is_part_of_a_kustomization() -> None:
    listed: set[Path] = set()
    for kustomization in MANIFESTS.rglob("kustomization.yaml"):
        listed.add(kustomization)
        for entry in yaml.safe_load(kustomization.read_text())["resources"]:
            listed.add((kustomization.parent / entry).resolve())
    orphans = [p.relative_to(ROOT) for p in MANIFEST_FILES if p.resolve() not in listed]
    assert not orphans, f"files no kustomization installs: {orphans}"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("directory", [MANIFESTS, NAMESPACED], ids=["cluster-wide", "namespaced"])
def test_kustomize_build_agrees_with_kubectl(directory: Path) -> None:
    result = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert sorted(map(identity, rendered)) == sorted(map(identity, kustomize_build(directory)))
    by_identity = {identity(doc): doc for doc in kustomize_build(directory)}
    for doc in rendered:
        assert doc == by_identity[identity(doc)], f"kubectl kustomize changed {identity(doc)}"


MODES = {
    "cluster-wide": (MANIFESTS, ["--all-namespaces"]),
    "namespaced": (NAMESPACED, ["--namespace", EXAMPLE_WATCHED_NAMESPACE]),
}


@pytest.mark.parametrize("mode", MODES)
def test_operator_deployment_is_hardened(mode: str) -> None:
    directory, _ = MODES[mode]
    deployment = only(kustomize_build(directory), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = operator_container(deployment)
    assert_hardened(pod.get("securityContext", {}), container.get("securityContext", {}), mode)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    assert "--leader-elect" in container["args"], "two replicas act only with leader election"
    env = {item["name"]: item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for item in container["env"]}
    assert (env["POD_NAME"], env["POD_NAMESPACE"]) == ("metadata.name", "metadata.namespace")
    spread = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert spread["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert spread["podAffinityTerm"]["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert pod.get("automountServiceAccountToken") is True
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "500m", "memory": "512Mi"},
    }
    probe = container["livenessProbe"]["httpGet"]
    assert (probe["path"], probe["port"]) == ("/healthz", 8080)
    args = _parser().parse_args(container["args"])  # the real CLI accepts the manifest's arguments
    assert args.command == "run"
    assert args.liveness == f"http://0.0.0.0:{probe['port']}{probe['path']}", "the probe must hit what is served"


@pytest.mark.parametrize("mode", MODES)
def test_every_writable_path_is_an_empty_dir(mode: str) -> None:
    directory, _ = MODES[mode]
    deployment = only(kustomize_build(directory), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = operator_container(deployment)
    env = {item["name"]: item.get("value") for item in container.get("env", [])}
    assert env.get("BLUEGREEN_CACHE_DIR") == CACHE_DIR
    assert env.get("HOME") == "/tmp"
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    mounts = {Path(m["mountPath"]): m for m in container.get("volumeMounts", [])}
    for writable in sorted({"/tmp", env["BLUEGREEN_CACHE_DIR"], env["HOME"]}):
        covering = [m for path, m in mounts.items() if Path(writable).is_relative_to(path)]
        assert covering, f"{mode}: {writable} must be writable but no volume is mounted there"
        mount = max(covering, key=lambda m: len(m["mountPath"]))
        assert not mount.get("readOnly"), f"{mode}: {writable} is mounted read-only"
        assert "emptyDir" in volumes[mount["name"]], f"{mode}: {writable} is not on an emptyDir volume"


@pytest.mark.parametrize("mode", MODES)
def test_operator_args_match_the_rbac_mode(mode: str) -> None:
    directory, scope_args = MODES[mode]
    docs = kustomize_build(directory)
    args = operator_container(only(docs, "Deployment"))["args"]
    assert args == ["run", *scope_args, "--log-format", "json", "--liveness", "http://0.0.0.0:8080/healthz",
                    *WEBHOOK_ARGS, *METRICS_ARGS, "--leader-elect"]
    kinds = {doc["kind"] for doc in docs if doc["metadata"]["name"] != LEADER_ELECTION}
    if mode == "cluster-wide":
        assert {"ClusterRole", "ClusterRoleBinding"} <= kinds
        assert not kinds & {"Role", "RoleBinding"}
    else:
        assert not kinds & {"ClusterRole", "ClusterRoleBinding"}, (
            "namespaced mode must grant nothing cluster-wide"
        )
        watched = {args[i + 1] for i, arg in enumerate(args) if arg == "--namespace"}
        roles = {doc["metadata"]["namespace"] for doc in docs
                 if doc["kind"] == "Role" and doc["metadata"]["name"] != LEADER_ELECTION}
        assert roles == watched, f"a Role per watched namespace: roles in {roles}, watching {watched}"


@pytest.mark.parametrize("mode", MODES)
def test_rbac_grants_exactly_what_the_operator_needs(mode: str) -> None:
    directory, _ = MODES[mode]
    docs = kustomize_build(directory)
    role_kind, binding_kind = (
        ("ClusterRole", "ClusterRoleBinding") if mode == "cluster-wide" else ("Role", "RoleBinding")
    )
    for doc in docs:
        if doc["kind"] in ("ClusterRole", "Role") and doc["metadata"]["name"] != LEADER_ELECTION:
            assert_least_privilege(doc["rules"], f"{mode} {identity(doc)}")
    role, binding = only(docs, role_kind), only(docs, binding_kind)
    account = only(docs, "ServiceAccount")
    deployment = only(docs, "Deployment")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": role_kind,
        "name": role["metadata"]["name"],
    }
    assert binding["metadata"].get("namespace") == role["metadata"].get("namespace")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": OPERATOR_NAMESPACE}
    ]
    assert account["metadata"]["namespace"] == deployment["metadata"]["namespace"] == OPERATOR_NAMESPACE
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]


@pytest.mark.parametrize("mode", MODES)
def test_webhook_service_selects_the_operator(mode: str) -> None:
    directory, _ = MODES[mode]
    docs = kustomize_build(directory)
    service = only(docs, "Service", "bluegreen-webhook")
    deployment = only(docs, "Deployment")
    assert (service["metadata"]["name"], service["metadata"]["namespace"]) == (
        "bluegreen-webhook",
        OPERATOR_NAMESPACE,
    )
    assert service["spec"]["ports"] == [
        {"name": "webhook", "port": 80, "targetPort": 9443, "protocol": "TCP"}
    ]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = dict(service["spec"]["selector"])
    assert selector.pop("bluegreen.dev/leader") == "true", "pushes go to the leader (standbys run no passes)"
    assert selector and selector.items() <= pod_labels.items(), f"{selector} does not select {pod_labels}"
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    ports = {p["name"]: p["containerPort"] for p in operator_container(deployment)["ports"]}
    assert ports.get("webhook") == 9443


@pytest.mark.parametrize("mode", MODES)
def test_webhook_receiver_listens_behind_the_service_with_the_secret_mounted_read_only(mode: str) -> None:
    directory, _ = MODES[mode]
    docs = kustomize_build(directory)
    deployment = only(docs, "Deployment")
    container = operator_container(deployment)
    args = _parser().parse_args(container["args"])  # the real CLI parser
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert args.webhook_listen == ("0.0.0.0", ports["webhook"])
    webhook_service = only(docs, "Service", "bluegreen-webhook")
    assert webhook_service["spec"]["ports"][0]["targetPort"] == ports["webhook"] == WEBHOOK_PORT
    secret_file = Path(args.webhook_secret_file)
    mounts = [m for m in container["volumeMounts"] if secret_file.is_relative_to(m["mountPath"])]
    assert len(mounts) == 1, f"{mode}: exactly one mount must hold {secret_file}: {mounts}"
    mount = mounts[0]
    assert mount.get("readOnly") is True, f"{mode}: the webhook secret must be mounted read-only"
    volumes = {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}
    secret = volumes[mount["name"]]["secret"]
    assert secret["secretName"] == WEBHOOK_SECRET
    assert secret.get("optional") is False, "documented choice: the pod waits for the Secret"
    relative = str(secret_file.relative_to(mount["mountPath"]))
    assert {item["path"]: item["key"] for item in secret["items"]} == {relative: "secret"}
    assert secret["defaultMode"] & 0o007 == 0, "not readable by others"


@pytest.mark.parametrize("mode", MODES)
def test_metrics_are_served_on_the_port_the_metrics_service_and_its_annotations_name(mode: str) -> None:
    from bluegreen.metrics.server import parse_metrics_listen

    directory, _ = MODES[mode]
    docs = kustomize_build(directory)
    deployment = only(docs, "Deployment")
    container = operator_container(deployment)
    args = _parser().parse_args(container["args"])  # the real CLI parser, then the real address parser
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == METRICS_PORT
    assert parse_metrics_listen(args.metrics_listen) == ("0.0.0.0", ports["metrics"])
    service = only(docs, "Service", "bluegreen-metrics")
    assert service["metadata"]["namespace"] == OPERATOR_NAMESPACE
    assert service["spec"]["ports"] == [{"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics",
                                         "protocol": "TCP"}]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["metadata"]["labels"]["app.kubernetes.io/component"] == "metrics", "what a ServiceMonitor selects"
    annotations = service["metadata"]["annotations"]
    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": str(METRICS_PORT),
                           "prometheus.io/path": "/metrics"}
    assert container["livenessProbe"]["httpGet"]["port"] != METRICS_PORT, "kopf's liveness keeps its own port"


def test_namespaced_copies_stay_in_step_with_the_cluster_wide_files() -> None:
    for name in ("serviceaccount.yaml", "service.yaml", "leader-election.yaml", "pdb.yaml"):
        assert load_docs(NAMESPACED / name) == load_docs(MANIFESTS / name), (
            f"manifests/namespaced/{name} drifted"
        )
    namespaces = load_docs(NAMESPACED / "namespace.yaml")
    assert load_docs(MANIFESTS / "namespace.yaml")[0] in namespaces
    main, copy = load_docs(MANIFESTS / "deployment.yaml")[0], load_docs(NAMESPACED / "deployment.yaml")[0]
    operator_container(main)["args"] = operator_container(copy)["args"] = None
    assert copy == main, (
        "manifests/namespaced/deployment.yaml may differ from ../deployment.yaml only in its args"
    )
    cluster_role = only(load_docs(MANIFESTS / "rbac.yaml"), "ClusterRole")
    role = only(load_docs(NAMESPACED / "rbac.yaml"), "Role")
    assert rule_triples(role["rules"]) == rule_triples(cluster_role["rules"])


# --- the Helm chart --------------------------------------------------------------------------------------

TEMPLATES = sorted((CHART / "templates").iterdir())
VALUES_REFERENCE = re.compile(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.DOTALL)


def chart_values() -> Doc:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert isinstance(values, dict)
    return values


def test_chart_templates_have_balanced_blocks() -> None:
    for template in TEMPLATES:
        text = template.read_text()
        assert text.count("{{") == text.count("}}"), f"{template.name}: unbalanced braces"
        depth = 0
        for action in ACTION.findall(text):
            if action.startswith("/*"):
                assert action.endswith("*/"), f"{template.name}: unterminated comment {action!r}"
                continue
            keyword = action.split()[0] if action.split() else ""
            if keyword in ("if", "range", "with", "define", "block"):
                depth += 1
            elif keyword == "end":
                depth -= 1
                assert depth >= 0, f"{template.name}: {{{{ end }}}} without an opening block"
            elif keyword == "else":
                assert depth > 0, f"{template.name}: {{{{ else }}}} outside a block"
        assert depth == 0, f"{template.name}: {depth} block(s) never closed"


def test_chart_templates_reference_only_existing_values() -> None:
    values = chart_values()
    referenced: set[str] = set()
    for template in TEMPLATES:
        for path in VALUES_REFERENCE.findall(template.read_text()):
            referenced.add(path[1:])
    assert referenced, "no .Values reference found: the regex or the templates are broken"
    missing = []
    for dotted in sorted(referenced):
        node: Any = values
        for key in dotted.split("."):
            if not isinstance(node, dict) or key not in node:
                missing.append(dotted)
                break
            node = node[key]
    assert not missing, f"templates use values that values.yaml does not define: {missing}"
    unused = sorted(set(values) - {dotted.split(".")[0] for dotted in referenced})
    assert not unused, f"values.yaml defines values no template uses: {unused}"


def test_chart_defaults() -> None:
    values = chart_values()
    assert values["replicaCount"] == 2
    assert values["leaderElection"] == {"enabled": True, "leaseDuration": "15s", "renewDeadline": "10s",
                                        "retryPeriod": "2s"}
    assert values["podDisruptionBudget"] == {"enabled": True, "minAvailable": 1}
    assert values["watchNamespaces"] == []
    assert values["logFormat"] == "json"
    assert values["extraArgs"] == []
    assert values["serviceAccount"]["create"] is True
    assert values["webhook"]["service"] == {"enabled": True, "type": "ClusterIP", "port": 80}
    assert values["webhook"]["enabled"] is True
    assert values["webhook"]["secretName"] == WEBHOOK_SECRET
    assert values["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "500m", "memory": "512Mi"},
    }
    assert_hardened(values["podSecurityContext"], values["securityContext"], "values.yaml")
    assert values["metrics"] == {
        "enabled": True, "port": METRICS_PORT,
        "service": {"type": "ClusterIP", "port": METRICS_PORT, "scrapeAnnotations": True, "annotations": {}},
        "serviceMonitor": {"enabled": False, "interval": "30s", "scrapeTimeout": "10s", "labels": {}},
    }


def test_chart_rbac_rules_are_exact_and_switch_with_watch_namespaces() -> None:
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    match = re.search(r'{{-? define "bluegreen-operator\.rules" -?}}\n(.*?){{-? end }}', helpers, re.DOTALL)
    assert match, "_helpers.tpl must define bluegreen-operator.rules as plain YAML"
    assert "{{" not in match.group(1), "keep the rules literal so that this test can read them"
    assert_least_privilege(yaml.safe_load(match.group(1)), "chart rules")

    cluster = (CHART / "templates" / "clusterrole.yaml").read_text()
    namespaced = (CHART / "templates" / "role.yaml").read_text()
    assert re.search(r"{{-? if not \.Values\.watchNamespaces -?}}", cluster), (
        "ClusterRole only when watching all"
    )
    assert re.search(r"{{-? range \$\w+ := \.Values\.watchNamespaces -?}}", namespaced), (
        "a Role per namespace"
    )
    for text, kinds in (
        (cluster, ("ClusterRole", "ClusterRoleBinding")),
        (namespaced, ("Role", "RoleBinding")),
    ):
        assert 'include "bluegreen-operator.rules"' in text
        assert re.findall(r"^kind: (\w+)$", text, re.MULTILINE) == list(kinds)


def test_chart_deployment_matches_the_plain_install() -> None:
    template = (CHART / "templates" / "deployment.yaml").read_text()
    for line in (
        "type: Recreate",
        "- --all-namespaces",
        "- --namespace",
        "value: " + CACHE_DIR,
        "mountPath: /tmp",
        "mountPath: " + CACHE_DIR,
        "path: /healthz",
        "automountServiceAccountToken: true",
        "- --webhook-listen",
        f'- "0.0.0.0:{WEBHOOK_PORT}"',
        "- --webhook-secret-file",
        f"- {WEBHOOK_SECRET_FILE}",
        f"mountPath: {Path(WEBHOOK_SECRET_FILE).parent}",
        "secretName: {{ .Values.webhook.secretName | quote }}",
        f"containerPort: {WEBHOOK_PORT}",
    ):
        assert line in template, f"charts/bluegreen-operator/templates/deployment.yaml lacks {line!r}"
    volumes = template.split("volumes:", 1)[1]
    assert volumes.count("emptyDir") >= 2, "the /tmp and cache volumes must be emptyDir"
    assert re.search(r"{{-? range \.Values\.watchNamespaces }}", template), (
        "--namespace per watched namespace"
    )
    assert re.search(r'fail "replicaCount above 1 needs leaderElection.enabled', template), \
        "several replicas without leader election must fail"
    election = re.search(r"{{-? if \.Values\.leaderElection\.enabled }}(.*?){{-? end }}", template, re.DOTALL)
    assert election and "RollingUpdate" in election.group(1)
    webhook_blocks = re.findall(r"{{-? if \.Values\.webhook\.enabled }}(.*?){{-? end }}", template, re.DOTALL)
    assert len(webhook_blocks) == 3, "the webhook args, mount and volume each depend on webhook.enabled"
    assert "--webhook-listen" in webhook_blocks[0] and "readOnly: true" in webhook_blocks[1]
    assert "optional: false" in webhook_blocks[2]
    service = (CHART / "templates" / "service.yaml").read_text()
    assert "if and .Values.webhook.enabled .Values.webhook.service.enabled" in service


@pytest.mark.parametrize("mode", MODES)
def test_leader_election_rbac_is_the_lease_and_the_own_pods_label(mode: str) -> None:
    from bluegreen.cli.run import DEFAULT_LEASE_NAME

    directory, _ = MODES[mode]
    docs = kustomize_build(directory)
    role = next(d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == LEADER_ELECTION)
    binding = next(d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["name"] == LEADER_ELECTION)
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == OPERATOR_NAMESPACE
    assert rule_triples(role["rules"]) == LEADER_TRIPLES
    for rule in role["rules"]:
        if set(rule["verbs"]) & {"get", "update"}:
            assert rule["resourceNames"] == [DEFAULT_LEASE_NAME], "get/update only the operator's own Lease"
    assert binding["roleRef"]["name"] == LEADER_ELECTION
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "bluegreen-operator",
                                    "namespace": OPERATOR_NAMESPACE}]
    chart = (CHART / "templates" / "leader-election.yaml").read_text()
    chart_rules = yaml.safe_load(chart.split("rules:", 1)[1].split("---", 1)[0])
    assert rule_triples(chart_rules) == LEADER_TRIPLES


@pytest.mark.parametrize("mode", MODES)
def test_a_disruption_budget_keeps_one_operator_running(mode: str) -> None:
    directory, _ = MODES[mode]
    docs = kustomize_build(directory)
    budget, deployment = only(docs, "PodDisruptionBudget"), only(docs, "Deployment")
    assert budget["metadata"]["namespace"] == OPERATOR_NAMESPACE
    assert budget["spec"]["minAvailable"] == 1 < deployment["spec"]["replicas"]
    assert budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_chart_metrics_endpoint_service_and_service_monitor_agree() -> None:
    template = (CHART / "templates" / "deployment.yaml").read_text()
    blocks = re.findall(r"{{-? if \.Values\.metrics\.enabled }}(.*?){{-? end }}", template, re.DOTALL)
    assert len(blocks) == 2, "the metrics args and the container port each depend on metrics.enabled"
    assert '- --metrics-listen\n            - ":{{ .Values.metrics.port }}"' in blocks[0]
    assert "- name: metrics\n              containerPort: {{ .Values.metrics.port }}" in blocks[1]
    assert _parser().parse_args(["run", "--metrics-listen", f":{METRICS_PORT}"]).metrics_listen == f":{METRICS_PORT}"

    service = (CHART / "templates" / "metrics-service.yaml").read_text()
    assert re.search(r"{{-? if \.Values\.metrics\.enabled }}", service)
    assert "app.kubernetes.io/component: metrics" in service
    assert 'prometheus.io/port: {{ .Values.metrics.port | quote }}' in service, "annotations name the container port"
    assert "- name: metrics\n      port: {{ .Values.metrics.service.port }}\n      targetPort: metrics" in service
    assert 'include "bluegreen-operator.selectorLabels"' in service, "selects the operator's pods"

    monitor = (CHART / "templates" / "servicemonitor.yaml").read_text()
    assert re.search(r"{{-? if and \.Values\.metrics\.enabled \.Values\.metrics\.serviceMonitor\.enabled }}", monitor)
    assert re.findall(r"^kind: (\w+)$", monitor, re.MULTILINE) == ["ServiceMonitor"]
    assert "apiVersion: monitoring.coreos.com/v1" in monitor
    selector = monitor.split("matchLabels:", 1)[1].split("endpoints:", 1)[0]
    assert "app.kubernetes.io/component: metrics" in selector, "the metrics Service, not the webhook one"
    assert "- port: metrics\n      path: /metrics" in monitor

