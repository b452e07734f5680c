"""The Argo CD health check of docs/conditions.md, run by a real Lua 5.1 interpreter (Argo CD's gopher-lua is
Lua 5.1) against the conditions this operator writes in every situation of test_conditions.py.

The script is taken from the argocd-cm block of the doc itself, so the doc cannot drift from what is tested.
``lua5.1`` is installed by tests/servers/install-deps.sh (`make test`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_conditions import CASES, NOW

from bluegreen.core.conditions import build_conditions
from bluegreen.core.planner import plan

DOC = Path(__file__).resolve().parents[2] / "docs" / "conditions.md"
KEY = "resource.customizations.health.bluegreen.dev_BlueGreenRelease"


def health_script() -> str:
    for block in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.DOTALL):
        document = yaml.safe_load(block)
        if isinstance(document, dict) and KEY in (document.get("data") or {}):
            assert document["metadata"]["name"] == "argocd-cm"
            return str(document["data"][KEY])
    raise AssertionError(f"no argocd-cm block with {KEY} in {DOC}")


def lua_literal(value: Any) -> str:
    """A Python value as a Lua table constructor (what Argo CD hands the script as ``obj``)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{lua_literal(k)}] = {lua_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def lua() -> str:
    found = shutil.which("lua5.1")
    assert found, "lua5.1 is missing: run tests/servers/install-deps.sh (Debian package lua5.1)"
    return found


def argocd_health(obj: dict[str, Any]) -> tuple[str, str]:
    """(status, message) that the health script returns for ``obj``."""
    program = (f"obj = {lua_literal(obj)}\nlocal function health()\n{health_script()}\nend\n"
               "local hs = health()\nio.write(hs.status, '\\n', hs.message)\n")
    result = subprocess.run([lua(), "-"], input=program, capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    status, _, message = result.stdout.partition("\n")
    return status, message


def release(conditions: list[dict[str, Any]] | None, *, generation: int = 7, observed: int | None = 7,
            suspend: bool = False) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if observed is not None:
        status["observedGeneration"] = observed
    if conditions is not None:
        status["conditions"] = conditions
    return {"apiVersion": "bluegreen.dev/v1alpha1", "kind": "BlueGreenRelease",
            "metadata": {"name": "shop", "generation": generation}, "spec": {"suspend": suspend},
            "status": status}


EXPECTED = {  # the documented mapping, per situation of test_conditions.CASES
    "first-release-applies": "Progressing", "new-commit-applies-the-idle-colour": "Progressing",
    "waiting-for-the-new-colour": "Progressing", "switching-to-the-new-colour": "Progressing",
    "previous-colour-warm-is-settled": "Healthy", "scaling-the-previous-colour-down": "Progressing",
    "released": "Healthy", "replica-change-of-the-serving-colour": "Progressing",
    "preview-moved-after-the-switch": "Progressing", "preview-moved-before-the-switch": "Progressing",
    "warm-rollback-switch": "Progressing", "cold-rollback-scale-up": "Progressing",
    "cold-rollback-waiting": "Progressing", "hand-edited-selector-restored": "Progressing",
    "deadline-missed-abandons": "Degraded", "abandoned-commit-waits-for-a-new-one": "Degraded",
    "service-missing": "Degraded", "suspended": "Suspended", "suspended-with-a-broken-source": "Suspended",
    "manifest-gone-holds-and-stalls": "Degraded", "unsigned-commit-holds-and-stalls": "Degraded",
    "unreachable-git-retries-while-serving": "Progressing", "verifier-unavailable-retries": "Progressing",
    "git-not-read-yet": "Progressing", "pre-promotion-checks-run": "Progressing", "awaiting-promotion": "Progressing",
    "post-promotion-checks-run": "Progressing", "pre-check-failed-stalls": "Degraded",
    "rolled-back-after-a-post-check": "Degraded", "aborted-stalls": "Degraded",
    "expand-runs-before-the-idle-colour": "Progressing", "expand-waits-for-another-migration": "Progressing",
    "failed-expand-stalls": "Degraded", "contract-waits-for-the-old-pods": "Progressing",
    "contract-runs": "Progressing", "failed-contract-stalls-while-serving": "Degraded",
    "contract-passed-is-released": "Healthy",
}


def test_every_situation_has_an_expected_health() -> None:
    assert set(EXPECTED) == {case[0] for case in CASES}


@pytest.mark.parametrize(("desired", "observed", "settings", "source", "why"),
                         [pytest.param(c[1], c[2], c[3], c[4], c[7], id=c[0]) for c in CASES])
def test_argocd_health_of_each_situation(request: pytest.FixtureRequest, desired: Any, observed: Any,
                                         settings: Any, source: Any, why: str) -> None:
    conditions = build_conditions(plan(desired, observed, settings, NOW), source, 7, [], NOW)
    status, message = argocd_health(release(conditions, suspend=settings.suspend))
    expected = EXPECTED[request.node.callspec.id]
    assert status == expected, message
    if expected in ("Degraded", "Progressing"):
        assert message.startswith(f"{why}: "), message
    if expected == "Healthy":
        assert message == next(c["message"] for c in conditions if c["type"] == "Ready")


@pytest.mark.parametrize(("obj", "expected"), [
    pytest.param(release(None, observed=None), ("Progressing", "waiting for the operator to report on this "
                                                               "generation"), id="no-status-yet"),
    pytest.param(release([{"type": "Ready", "status": "True", "message": "blue serves"}], observed=6),
                 ("Progressing", "waiting for the operator to report on this generation"), id="stale-generation"),
    pytest.param(release(None, observed=None, suspend=True), ("Suspended", "spec.suspend is true: no change is made"),
                 id="suspended-before-any-status"),
    pytest.param(release([{"type": "Stalled", "status": "True"}]), ("Degraded", ": "), id="no-reason-no-message"),
    pytest.param(release([{"type": "Ready", "status": "True"}, {"type": "Reconciling", "status": "False"}]),
                 ("Healthy", ""), id="ready-without-a-message"),
    pytest.param(release([{"type": "Ready", "status": "False"}, {"type": "Reconciling", "status": "False"},
                          {"type": "Stalled", "status": "False"}]),
                 ("Progressing", "waiting for the operator to report on this generation"), id="nothing-true"),
    pytest.param(release([{"type": "Progressing", "status": "True", "reason": "Old", "message": "m"},
                          {"type": "Ready", "status": "True", "message": "green serves"}]),
                 ("Healthy", "green serves"), id="an-old-progressing-condition-is-ignored"),
])
def test_argocd_health_of_odd_statuses(obj: dict[str, Any], expected: tuple[str, str]) -> None:
    assert argocd_health(obj) == expected
