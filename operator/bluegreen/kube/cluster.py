"""The cluster, through the official Kubernetes client (``bluegreen.kube``, the only package importing
``kubernetes``): the ``Cluster`` Protocol of ``bluegreen.core.protocols``.

Reads (``kube.reads``) what the planner needs from the in-memory view the watches feed (``kube.view``: the
colour Deployments and the Services, no API request) and Secrets with a GET; writes (``kube.writes``) its
actions: server-side apply of a colour's Deployment, a replica change, a one-key selector patch, a status
patch, and an Event on the release, each write's result fed back into the view; the objects that travel with a
colour (``kube.companions``: its ConfigMap copies, HPA and PDB); and the hook Jobs (``kube.jobs``: create,
delete, a pod's log). ``kube.client`` connects, with a timeout on every request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubernetes import client

from bluegreen.kube.client import load_api_client
from bluegreen.kube.companions import KubeCompanions
from bluegreen.kube.jobs import KubeJobs
from bluegreen.kube.view import ClusterView
from bluegreen.kube.writes import KubeWrites

__all__ = ["ClusterView", "KubeCluster", "load_api_client"]


class KubeCluster(KubeWrites, KubeCompanions, KubeJobs):
    """Reads and writes the objects of BlueGreenReleases (the ``Cluster`` Protocol of ``bluegreen.core``) and
    their hook Jobs (``core.job_status.JobCluster``)."""

    def __init__(self, api: client.ApiClient, view: ClusterView | None = None, *,
                 on_release: Callable[[dict[str, Any]], None] | None = None) -> None:
        super().__init__(api)
        self.view = view if view is not None else ClusterView()
        self.on_release = on_release
