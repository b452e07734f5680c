"""``diff NAME``: what the next release would change. The manifest in git (``spec.source``, fetched here with
the project's git layer, credentials from ``spec.source.secretRef``), rendered as the operator renders the idle
colour, against the serving colour's live Deployment; both normalized (``cli.normalize``) and printed as a
unified diff of YAML. Exit 0: no difference, 1: differences, 2: error (like ``kubectl diff``)."""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from bluegreen.cli.access import Access
from bluegreen.cli.errors import DIFF_ERROR, CliError
from bluegreen.cli.normalize import align_quantities, normalize_deployment
from bluegreen.cli.targets import commit_argument
from bluegreen.core.bundle import parse_source
from bluegreen.core.commits import Snapshot
from bluegreen.core.credentials import Credentials
from bluegreen.core.desired import DesiredTemplate, ManifestError, render_deployment
from bluegreen.core.errors import ReasonedError
from bluegreen.core.spec import (
    ANNOTATION_COMMIT,
    ANNOTATION_TEMPLATE_HASH,
    LABEL_COLOR,
    Color,
    GitRef,
    ReleaseSpec,
    SpecError,
    deployment_name,
)


def cache_dir(given: str | None) -> Path:
    """``--cache-dir``, else ``$XDG_CACHE_HOME/bluegreen/cli-mirrors`` (``~/.cache`` when unset)."""
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bluegreen" / "cli-mirrors"


def unified(live: dict[str, Any], rendered: dict[str, Any], live_label: str, git_label: str) -> str:
    """The unified diff of the two normalized Deployments as YAML (keys sorted); empty when equal."""
    def lines(body: dict[str, Any]) -> list[str]:
        text = yaml.safe_dump(body, default_flow_style=False, sort_keys=True, allow_unicode=True) if body else ""
        return text.splitlines(keepends=True)

    return "".join(difflib.unified_diff(lines(live), lines(rendered), fromfile=live_label, tofile=git_label))


def unchanged(live: dict[str, Any] | None, desired: DesiredTemplate) -> bool:
    """The shortcut: the live Deployment carries the template hash of git's manifest and its replicas, so the
    operator would change nothing (it compares the same hash)."""
    if not live:
        return False
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    replicas = (live.get("spec") or {}).get("replicas")
    return bool(annotations.get(ANNOTATION_TEMPLATE_HASH) == desired.template_hash and replicas == desired.replicas)


def diff(args: argparse.Namespace) -> int:
    access = Access(args)
    name, namespace = args.name, access.namespace
    release = access.release(name)
    try:
        spec = ReleaseSpec.from_dict(release.get("spec") or {})
    except SpecError as exc:
        raise CliError(f"the release's spec is invalid: {exc.message}", DIFF_ERROR) from None
    revision = commit_argument(args.revision)
    snapshot = _fetch(args, spec, revision, _credentials(access, namespace, spec))
    try:
        desired = parse_source(snapshot, namespace=namespace)
    except ManifestError as exc:
        raise CliError(f"commit {snapshot.commit.sha[:12]}: the operator would not release it: {exc.message}",
                       DIFF_ERROR) from None
    if spec.source.verify is not None:
        print("note: spec.source.verify is set; diff does not check the commit's signature (the operator does)",
              file=sys.stderr)
    serving = _serving_color(access, namespace, spec, release)
    live = access.cluster.read_deployment(namespace, deployment_name(name, serving)) if serving else None
    idle = serving.other if serving else Color.BLUE
    where = f"{spec.source.url} {spec.source.path} at {snapshot.commit.sha[:12]}"
    if unchanged(live, desired):
        print(f"no difference: {namespace}/{deployment_name(name, serving or idle)} runs the manifest of {where}",
              file=sys.stderr)
        return 0
    rendered = render_deployment(desired, release=name, namespace=namespace, color=idle, commit=snapshot.commit.sha,
                                 replicas=desired.replicas, owner=None)
    live_commit = (((live or {}).get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_COMMIT)
    live_label = "live (no serving colour)"
    if serving is not None:
        live_label = f"live {namespace}/{deployment_name(name, serving)}" + (
            f" (commit {live_commit[:12]})" if live_commit else "" if live else " (absent)")
    before, after = normalize_deployment(live), normalize_deployment(rendered)
    align_quantities(before, after)
    text = unified(before, after, live_label, f"git {where} (as {deployment_name(name, idle)})")
    if not text:
        return 0
    sys.stdout.write(text)
    return 1


def _credentials(access: Access, namespace: str, spec: ReleaseSpec) -> Credentials | None:
    """The git credentials of ``spec.source.secretRef``, read with the user's own rights."""
    secret = spec.source.secret_ref
    if secret is None:
        return None
    from bluegreen.kube.console import api_failure

    try:
        data = access.cluster.read_secret(namespace, secret)
    except Exception as exc:
        failure = api_failure(exc)
        if failure is None:
            raise
        if failure.status == 403:
            raise CliError(f"you may not read the git Secret {secret!r} (spec.source.secretRef) in namespace "
                           f"{namespace!r}: diff fetches the repository itself and needs 'get' on that Secret "
                           f"({failure.message})", DIFF_ERROR) from None
        raise CliError(f"cannot read the git Secret {secret!r}: {failure.message}", DIFF_ERROR) from None
    if data is None:
        raise CliError(f"the git Secret {secret!r} (spec.source.secretRef) does not exist in namespace "
                       f"{namespace!r}", DIFF_ERROR)
    try:
        return Credentials.from_secret_data(data)
    except ReasonedError as exc:
        raise CliError(f"the git Secret {secret!r}: {exc.message}", DIFF_ERROR) from None


def _fetch(args: argparse.Namespace, spec: ReleaseSpec, revision: str | None,
           credentials: Credentials | None) -> Snapshot:
    from bluegreen.git.source import GitSource

    ref = GitRef("commit", revision) if revision else spec.source.ref
    try:
        return GitSource(cache_dir(args.cache_dir)).snapshot(spec.source.url, ref, spec.source.path,
                                                             credentials=credentials)
    except ReasonedError as exc:
        raise CliError(f"cannot read {spec.source.path} at {ref.describe()} of {spec.source.url}: {exc.message}",
                       DIFF_ERROR) from None


def _serving_color(access: Access, namespace: str, spec: ReleaseSpec, release: dict[str, Any]) -> Color | None:
    """The colour the Service selects; ``status.activeColor`` when the Service cannot be read."""
    from bluegreen.kube.console import api_failure

    try:
        service = access.cluster.read_service(namespace, spec.service)
    except Exception as exc:
        if api_failure(exc) is None:
            raise
        service = None
    if service is not None:
        color = ((service.get("spec") or {}).get("selector") or {}).get(LABEL_COLOR)
    else:
        color = (release.get("status") or {}).get("activeColor")
    return Color(color) if color in ("blue", "green") else None
