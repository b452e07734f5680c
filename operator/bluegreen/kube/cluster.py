"""The cluster, through the official Kubernetes client (``bluegreen.kube``, the only package importing
``kubernetes``): the ``Cluster`` Protocol of ``bluegreen.core.protocols``.

Reads (``kube.reads``) what the planner needs (the two colour Deployments, the Service selectors, Secrets)
and writes (``kube.writes``) its actions: server-side apply of a colour's Deployment, a replica change, a
one-key selector patch, a status patch, and an Event on the release. ``kube.client`` connects.
"""

from __future__ import annotations

from bluegreen.kube.client import load_api_client
from bluegreen.kube.reads import KubeReads
from bluegreen.kube.writes import KubeWrites

__all__ = ["KubeCluster", "load_api_client"]


class KubeCluster(KubeReads, KubeWrites):
    """Reads and writes the objects of BlueGreenReleases (the ``Cluster`` Protocol of ``bluegreen.core``)."""
