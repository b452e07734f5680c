"""The objects that travel with a colour, written inside the reconciler's steps (``Reconciler._act``), never
on a pass of their own (a pass that writes nothing makes no request):

- APPLY: the colour's ConfigMap copies, its PDB and its HPA (the copies git no longer has, or renamed, are
  deleted: a stale HPA first, so two never scale one Deployment), then the Deployment, then the ConfigMap
  copies git no longer has. The HPA is written before the Deployment so that a refused or failed write leaves
  the colour's template unchanged: the next pass plans the same APPLY again (the cluster is the only memory).
- SCALE / RETRY of a scaled-down colour: its HPA again, before the scale-up.
- SCALE_DOWN / ABANDON / FAIL: its HPA is deleted first: a scaled-down colour has no HPA to scale it back up.

The colour's Deployment names its HPA and PDB copies (``bluegreen.dev/autoscaler``,
``bluegreen.dev/disruption-budget``), so deleting them needs no read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bluegreen.core.companions import (
    copy_name,
    render_autoscaler,
    render_config_map,
    render_disruption_budget,
)
from bluegreen.core.desired import DesiredTemplate
from bluegreen.core.plans import ColorState
from bluegreen.core.protocols import Cluster
from bluegreen.core.spec import ANNOTATION_AUTOSCALER, ANNOTATION_DISRUPTION_BUDGET, Color, ReleaseRef

AUTOSCALER_KIND = "HorizontalPodAutoscaler"
BUDGET_KIND = "PodDisruptionBudget"
AUTOSCALER_DELETE_VERSION = "autoscaling/v1"
"""Served wherever HPAs are: deletes of an HPA copy go through it, whatever version wrote it."""
BUDGET_DELETE_VERSION = "policy/v1"


@dataclass(frozen=True)
class Prepared:
    """What an APPLY still has to do once the Deployment is applied."""

    stale_config_maps: tuple[str, ...]
    cleared: Mapping[str, str | None]
    """Annotations of the Deployment naming copies that are gone (a merge patch removes them)."""


class CompanionStep:
    """Writes a colour's ConfigMap copies, HPA and PDB through the ``Cluster`` port."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def before_deployment(self, release: ReleaseRef, color: Color, template: DesiredTemplate, commit: str,
                          owner: Mapping[str, Any] | None, state: ColorState) -> Prepared:
        """APPLY, up to the Deployment: ConfigMaps, then the PDB, then the HPA (stale ones deleted)."""
        def render(renderer: Callable[..., dict[str, Any]], item: object) -> dict[str, Any]:
            return renderer(item, release=release.name, namespace=release.namespace, color=color, commit=commit,
                            owner=owner)

        maps = [render(render_config_map, config_map) for config_map in template.config_maps]
        stale = self.cluster.apply_config_maps(release, color, maps)
        cleared: dict[str, str | None] = {}
        budget = template.disruption_budget
        name = copy_name(budget.name, color) if budget is not None else None
        if state.disruption_budget and state.disruption_budget != name:
            self.cluster.delete_object(release.namespace, budget.api_version if budget else BUDGET_DELETE_VERSION,
                                       BUDGET_KIND, state.disruption_budget)
            if name is None:
                cleared[ANNOTATION_DISRUPTION_BUDGET] = None
        if budget is not None:
            self.cluster.apply_object(render(render_disruption_budget, budget), known=state.disruption_budget == name)
        autoscaler = template.autoscaler
        name = copy_name(autoscaler.name, color) if autoscaler is not None else None
        if state.autoscaler and state.autoscaler != name:
            self.cluster.delete_object(release.namespace, AUTOSCALER_DELETE_VERSION, AUTOSCALER_KIND, state.autoscaler)
            if name is None:
                cleared[ANNOTATION_AUTOSCALER] = None
        if autoscaler is not None:
            self.cluster.apply_object(render(render_autoscaler, autoscaler), known=state.autoscaler == name)
        return Prepared(tuple(stale), cleared)

    def after_deployment(self, release: ReleaseRef, prepared: Prepared) -> None:
        """APPLY, after the Deployment (which no longer refers to them): the ConfigMap copies git dropped."""
        if prepared.stale_config_maps:
            self.cluster.delete_config_maps(release.namespace, prepared.stale_config_maps)

    def start_autoscaler(self, release: ReleaseRef, color: Color, template: DesiredTemplate, commit: str,
                         owner: Mapping[str, Any] | None, state: ColorState) -> dict[str, str]:
        """A scaled-down colour running ``template`` is scaled up: its HPA again (before the scale); the
        annotation the scale patch carries."""
        autoscaler = template.autoscaler
        if autoscaler is None or state.replicas > 0 or state.template_hash != template.template_hash:
            return {}
        name = copy_name(autoscaler.name, color)
        self.cluster.apply_object(render_autoscaler(autoscaler, release=release.name, namespace=release.namespace,
                                                    color=color, commit=commit, owner=owner),
                                  known=state.autoscaler == name)
        return {ANNOTATION_AUTOSCALER: name}

    def stop_autoscaler(self, release: ReleaseRef, state: ColorState) -> dict[str, str | None]:
        """A colour goes to 0: its HPA is deleted first; the annotation the scale patch removes."""
        if not state.autoscaler:
            return {}
        self.cluster.delete_object(release.namespace, AUTOSCALER_DELETE_VERSION, AUTOSCALER_KIND, state.autoscaler)
        return {ANNOTATION_AUTOSCALER: None}
