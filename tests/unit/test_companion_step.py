"""The companion writes of one step (runtime/companion_step.py) against a spy of the Cluster port: which copies are
written, deleted or left alone, in which order, whether the colour already names them, and the Deployment
annotations that go with them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from test_bundle import CONFIG, DEPLOYMENT, HPA, PDB, directory, parse_dir

from bluegreen.core.plans import ColorState
from bluegreen.core.spec import Color, ReleaseRef
from bluegreen.runtime.companion_step import CompanionStep

RELEASE = ReleaseRef("shop", "shop", "uid-1")
FULL = parse_dir(directory(deployment_yaml=DEPLOYMENT, config_yaml=CONFIG, hpa_yaml=HPA, pdb_yaml=PDB))
BARE = parse_dir(directory(deployment_yaml=DEPLOYMENT))
RENAMED = parse_dir(directory(deployment_yaml=DEPLOYMENT, hpa_yaml=HPA.replace("name: web}", "name: api}", 1),
                              pdb_yaml=PDB.replace("name: web}", "name: api}")))


class Spy:
    def __init__(self, stale: Sequence[str] = ()) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.stale = list(stale)

    def apply_config_maps(self, release: ReleaseRef, color: Color, bodies: Sequence[Mapping[str, Any]]) -> list[str]:
        self.calls.append(("configmaps", str(color), tuple(b["metadata"]["name"] for b in bodies)))
        return self.stale

    def delete_config_maps(self, namespace: str, names: Sequence[str]) -> None:
        self.calls.append(("delete-configmaps", tuple(names)))

    def apply_object(self, body: Mapping[str, Any], *, known: bool) -> None:
        self.calls.append(("apply", body["kind"], body["metadata"]["name"], known))

    def delete_object(self, namespace: str, api_version: str, kind: str, name: str) -> None:
        self.calls.append(("delete", api_version, kind, name))


def step(spy: Spy) -> CompanionStep:
    return CompanionStep(spy)  # type: ignore[arg-type]


def state(replicas: int = 0, autoscaler: str | None = None, budget: str | None = None,
          template: str | None = FULL.template_hash) -> ColorState:
    return ColorState(Color.GREEN, exists=True, replicas=replicas, template_hash=template, autoscaler=autoscaler,
                      disruption_budget=budget)


def test_a_first_apply_writes_every_copy_none_known() -> None:
    spy = Spy()
    prepared = step(spy).before_deployment(RELEASE, Color.GREEN, FULL, "c" * 40, None, ColorState(Color.GREEN))
    assert spy.calls == [("configmaps", "green", ("settings-green",)),
                         ("apply", "PodDisruptionBudget", "web-green", False),
                         ("apply", "HorizontalPodAutoscaler", "web-green", False)]
    assert (prepared.stale_config_maps, dict(prepared.cleared)) == ((), {})


def test_copies_the_colour_names_are_applied_as_known() -> None:
    spy = Spy()
    step(spy).before_deployment(RELEASE, Color.GREEN, FULL, "c" * 40, None,
                                state(3, autoscaler="web-green", budget="web-green"))
    assert [c[-1] for c in spy.calls[1:]] == [True, True]


def test_renamed_copies_replace_the_old_ones_old_first() -> None:
    spy = Spy()
    prepared = step(spy).before_deployment(RELEASE, Color.GREEN, RENAMED, "c" * 40, None,
                                           state(3, autoscaler="web-green", budget="web-green"))
    assert spy.calls[1:] == [("delete", "policy/v1beta1", "PodDisruptionBudget", "web-green"),
                             ("apply", "PodDisruptionBudget", "api-green", False),
                             ("delete", "autoscaling/v1", "HorizontalPodAutoscaler", "web-green"),
                             ("apply", "HorizontalPodAutoscaler", "api-green", False)]
    assert dict(prepared.cleared) == {}, "the new names are set by the Deployment's apply"


def test_copies_git_dropped_are_deleted_and_their_annotations_cleared() -> None:
    spy = Spy(stale=["settings-green"])
    prepared = step(spy).before_deployment(RELEASE, Color.GREEN, BARE, "c" * 40, None,
                                           state(0, autoscaler="web-green", budget="web-green"))
    assert spy.calls == [("configmaps", "green", ()),
                         ("delete", "policy/v1", "PodDisruptionBudget", "web-green"),
                         ("delete", "autoscaling/v1", "HorizontalPodAutoscaler", "web-green")]
    assert dict(prepared.cleared) == {"bluegreen.dev/disruption-budget": None, "bluegreen.dev/autoscaler": None}
    assert prepared.stale_config_maps == ("settings-green",)
    step(spy).after_deployment(RELEASE, prepared)
    assert spy.calls[-1] == ("delete-configmaps", ("settings-green",))


def test_nothing_stale_deletes_nothing_after_the_deployment() -> None:
    spy = Spy()
    step(spy).after_deployment(RELEASE, step(spy).before_deployment(RELEASE, Color.GREEN, BARE, "c" * 40, None,
                                                                    ColorState(Color.GREEN)))
    assert spy.calls == [("configmaps", "green", ())]


def test_the_copies_are_owned_when_the_release_owns_its_deployments() -> None:
    class Owned(Spy):
        def apply_object(self, body: Mapping[str, Any], *, known: bool) -> None:
            self.calls.append(("owner", body["metadata"].get("ownerReferences")))

    spy = Owned()
    owner = {"kind": "BlueGreenRelease", "uid": "uid-1"}
    step(spy).before_deployment(RELEASE, Color.GREEN, FULL, "c" * 40, owner, ColorState(Color.GREEN))
    assert spy.calls[1:] == [("owner", [owner]), ("owner", [owner])]


def test_a_scaled_down_colour_gets_its_hpa_back() -> None:
    spy = Spy()
    annotations = step(spy).start_autoscaler(RELEASE, Color.GREEN, FULL, "c" * 40, None, state(0))
    assert spy.calls == [("apply", "HorizontalPodAutoscaler", "web-green", False)]
    assert annotations == {"bluegreen.dev/autoscaler": "web-green"}
    spy = Spy()
    step(spy).start_autoscaler(RELEASE, Color.GREEN, FULL, "c" * 40, None, state(0, autoscaler="web-green"))
    assert spy.calls == [("apply", "HorizontalPodAutoscaler", "web-green", True)]


def test_no_hpa_is_started_for_a_colour_that_is_up_runs_another_template_or_has_none() -> None:
    for template, seen in ((FULL, state(2)), (FULL, state(0, template="other")), (BARE, state(0, template=None))):
        spy = Spy()
        assert step(spy).start_autoscaler(RELEASE, Color.GREEN, template, "c" * 40, None, seen) == {}
        assert spy.calls == []


def test_a_colour_going_to_zero_loses_its_hpa_first() -> None:
    spy = Spy()
    assert step(spy).stop_autoscaler(RELEASE, state(3, autoscaler="web-green")) == {"bluegreen.dev/autoscaler": None}
    assert spy.calls == [("delete", "autoscaling/v1", "HorizontalPodAutoscaler", "web-green")]
    spy = Spy()
    assert step(spy).stop_autoscaler(RELEASE, replace(state(3), autoscaler=None)) == {}
    assert spy.calls == [], "no HPA named: no request"
