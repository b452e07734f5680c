"""Unit tests of the image's definition, without building it: the image the manifests and the chart run is
the one ``make image`` produces; the Dockerfile agrees with the builder's spec (image/image.json: user,
entrypoint, cmd, env, volumes, ports, labels, paths); image/requirements.txt pins every runtime dependency
of pyproject.toml within its range. The built image itself is checked in tests/integration/test_image.py.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "image"))
import imagespec  # noqa: E402

DOCKERFILE = ROOT / "Dockerfile"
CHART = ROOT / "charts" / "bluegreen-operator"
SPEC = imagespec.spec()


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


# --- the name and tag ----------------------------------------------------------------------------------


def test_reference_is_the_name_and_the_pyproject_version() -> None:
    assert imagespec.reference() == f"ghcr.io/bluegreen-operator/bluegreen-operator:{pyproject()['project']['version']}"


@pytest.mark.parametrize("path", ["manifests/deployment.yaml", "manifests/namespaced/deployment.yaml"])
def test_manifests_run_the_image_make_image_builds(path: str) -> None:
    deployment = yaml.safe_load((ROOT / path).read_text())
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["image"] for c in containers] == [imagespec.reference()]


def test_chart_runs_the_image_make_image_builds() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    tag = values["image"]["tag"] or chart["appVersion"]
    assert f"{values['image']['repository']}:{tag}" == imagespec.reference()
    template = (CHART / "templates" / "deployment.yaml").read_text()
    assert 'image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"' in template


def test_manifests_agree_with_the_image_config() -> None:
    """The Deployment's user, cache volume and env are the image's own: nothing differs by accident."""
    deployment = yaml.safe_load((ROOT / "manifests" / "deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    config = SPEC["config"]
    uid, gid = (int(part) for part in config["user"].split(":"))
    assert (container["securityContext"]["runAsUser"], container["securityContext"]["runAsGroup"]) == (uid, gid)
    env = {item["name"]: item["value"] for item in container["env"] if "value" in item}
    for key, value in env.items():
        assert config["env"].get(key) == value, f"the Deployment sets {key}={value}, the image {config['env'].get(key)}"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert set(config["volumes"]) <= mounts, "every volume of the image is mounted (read-only root filesystem)"
    assert "command" not in container, "the image's entrypoint runs; the Deployment only gives args"
    assert container["args"][0] == config["cmd"][0] == "run"


def test_labels_carry_version_and_revision() -> None:
    labels = imagespec.labels("0" * 40)
    prefix = "org.opencontainers.image."
    assert {key.removeprefix(prefix) for key in labels} >= {"source", "version", "revision", "title", "licenses"}
    assert labels[prefix + "version"] == pyproject()["project"]["version"]
    assert labels[prefix + "revision"] == "0" * 40
    assert labels[prefix + "licenses"] == pyproject()["project"]["license"]
    assert labels[prefix + "source"] in yaml.safe_load((CHART / "Chart.yaml").read_text())["sources"]


def test_spec_paths_are_consistent() -> None:
    base, config = SPEC["base"], SPEC["config"]
    assert config["entrypoint"] == [f"{base['venv']}/bin/bluegreen"]
    assert config["env"]["PATH"].split(":")[0] == f"{base['venv']}/bin"
    assert config["user"] == f"{base['user']['uid']}:{base['user']['gid']}" == "65532:65532"
    assert config["env"]["BLUEGREEN_CACHE_DIR"] in base["writable"]
    assert config["env"]["HOME"] in config["volumes"], "HOME must be writable on a read-only root filesystem"
    assert set(base["writable"]) <= set(config["volumes"])
    assert {"git", "gpg", "openssh-client", "python3"} <= set(base["packages"])


# --- the pinned requirements ---------------------------------------------------------------------------


def pins() -> dict[str, str]:
    result = {}
    for line in (ROOT / "image" / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, pinned = line.partition("==")
            assert pinned and re.fullmatch(r"[A-Za-z0-9._+-]+", pinned), f"not an exact pin: {line!r}"
            result[canonicalize_name(name)] = pinned
    return result


def test_requirements_pin_every_runtime_dependency_within_its_range() -> None:
    pinned = pins()
    for text in pyproject()["project"]["dependencies"]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement.name} is a dependency but image/requirements.txt does not pin it"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"{name}=={pinned[name]} is outside {requirement.specifier}")
    assert canonicalize_name(pyproject()["project"]["name"]) not in pinned, "the project itself is the top layer"


# --- the Dockerfile ------------------------------------------------------------------------------------


def instructions(stage: int | None = None) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined; one stage (0, 1...) or all."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result: list[tuple[str, str]] = []
    current = -1
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword.upper() == "FROM":
            current += 1
        if stage is None or current == stage:
            result.append((keyword.upper(), " ".join(rest.split())))
    return result


def final(keyword: str) -> list[str]:
    return [rest for key, rest in instructions(1) if key == keyword]


def pairs(keyword: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for rest in final(keyword):
        for item in shlex.split(rest):
            key, _, value = item.partition("=")
            found[key] = value
    return found


def test_dockerfile_has_a_build_stage_and_a_final_stage() -> None:
    froms = [rest for key, rest in instructions() if key == "FROM"]
    assert froms == ["${DEBIAN} AS venv", "${DEBIAN}"]
    assert instructions()[0] == ("ARG", "DEBIAN=debian:bookworm-slim")
    assert final("COPY") == [f"--from=venv {SPEC['base']['venv']} {SPEC['base']['venv']}"]


def test_dockerfile_config_equals_the_builders() -> None:
    config = SPEC["config"]
    assert final("USER") == [config["user"]]
    assert [json.loads(rest) for rest in final("ENTRYPOINT")] == [config["entrypoint"]]
    assert [json.loads(rest) for rest in final("CMD")] == [config["cmd"]]
    assert final("WORKDIR") == [config["workingDir"]]
    assert [json.loads(rest) for rest in final("VOLUME")] == [config["volumes"]]
    assert " ".join(final("EXPOSE")).split() == config["exposedPorts"]
    assert pairs("ENV") == config["env"]


def test_dockerfile_labels_equal_the_builders() -> None:
    args = dict(rest.split("=", 1) for rest in final("ARG"))
    assert args["VERSION"] == imagespec.version()
    expected = imagespec.labels("${REVISION}")
    expected["org.opencontainers.image.version"] = "${VERSION}"
    assert pairs("LABEL") == expected


def test_dockerfile_installs_the_same_packages_user_and_requirements() -> None:
    base = SPEC["base"]
    run = " ".join(final("RUN"))
    installed = re.search(r"apt-get install -y --no-install-recommends ([a-z0-9 .+-]+?) &&", run)
    assert installed, run
    # python3-venv only makes the venv (the first stage); the runtime needs python3 itself.
    assert set(installed.group(1).split()) == set(base["packages"]) - {"python3-venv"}
    user = base["user"]
    assert f"'{user['name']}:x:{user['uid']}:{user['gid']}:{user['name']}:{user['home']}:/usr/sbin/nologin'" in run
    assert f"install -d -o {user['uid']} -g {user['gid']} -m 0755 {user['home']} {' '.join(base['writable'])}" in run
    assert "find / -xdev -type f -perm /6000 -exec chmod ug-s {} +" in run, "no setuid/setgid bits, as the builder"
    first = " ".join(rest for key, rest in instructions(0) if key in ("RUN", "COPY"))
    assert f"python3 -m venv --without-pip {base['venv']}" in first
    for path in base["prune"]:
        assert f"rm -r {base['venv']}/{path}" in first
    assert "-r /src/image/requirements.txt" in first and "image/requirements.txt /src/image/requirements.txt" in first


def test_dockerignore_lets_in_what_the_dockerfile_copies() -> None:
    allowed = [line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")]
    copied = [source for key, rest in instructions() if key == "COPY" and not rest.startswith("--from")
              for source in rest.split()[:-1]]
    assert sorted(copied) == sorted(allowed)
