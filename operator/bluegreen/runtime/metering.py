"""Where the operator's own work meets the ``Recorder`` (``bluegreen.core.recorder``) without the reconciler
knowing: a pass timed around the controller's call, and the cluster telling of every selector switch the
moment the API server accepted it (the end of a cut-over; the status that names it is patched at the end of
the pass)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from bluegreen.core.recorder import ERROR, SUCCESS, Recorder
from bluegreen.core.spec import Color, ReleaseSpec, SpecError
from bluegreen.kube.cluster import KubeCluster
from bluegreen.runtime.controller import ReconcileFn


def timed_passes(reconcile: ReconcileFn, recorder: Recorder,
                 clock: Callable[[], float] = time.perf_counter) -> ReconcileFn:
    """``reconcile`` reporting each pass (its result and duration) to ``recorder``; what it returns or raises
    is unchanged."""

    def timed(body: Mapping[str, Any], spec: ReleaseSpec | SpecError) -> float | None:
        started = clock()
        try:
            delay = reconcile(body, spec)
        except Exception:
            recorder.reconcile_pass(ERROR, clock() - started)
            raise
        recorder.reconcile_pass(SUCCESS, clock() - started)
        return delay

    return timed


class MeteredCluster(KubeCluster):
    """``KubeCluster`` that reports each selector switch to ``recorder`` once the patch is accepted."""

    def __init__(self, *args: Any, recorder: Recorder | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recorder = recorder if recorder is not None else Recorder()

    def switch_selector(self, namespace: str, service: str, color: Color) -> None:
        super().switch_selector(namespace, service, color)
        self.recorder.service_switched(namespace, service, color)
