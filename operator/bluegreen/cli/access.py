"""Which cluster and namespace a command talks to: kubectl's ``--kubeconfig``, ``--context``, ``-n``, else
$KUBECONFIG (or ~/.kube/config) and its context's namespace, or the in-cluster service account."""

from __future__ import annotations

import argparse
import os
from typing import Any

from bluegreen.cli.errors import CliError

DEFAULT_NAMESPACE = "default"


class Access:
    """The cluster connection of one command, made on first use."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.kubeconfig: str | None = getattr(args, "kubeconfig", None)
        self.context: str | None = getattr(args, "context", None)
        self.explicit_namespace: str | None = getattr(args, "namespace", None)
        self._cluster: Any = None
        self._namespace: str | None = None

    @property
    def cluster(self) -> Any:
        """A ``bluegreen.kube.console.ConsoleCluster`` (typed Any: the kube layer is imported lazily)."""
        if self._cluster is None:
            from bluegreen.kube.console import console_cluster

            try:
                self._cluster = console_cluster(self.kubeconfig, self.context)
            except Exception as exc:  # the kubernetes client's ConfigException, a missing file...
                where = self.kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config or the in-cluster account"
                context = f", context {self.context}" if self.context else ""
                raise CliError(f"cannot connect to a cluster ({where}{context}): {exc}") from None
        return self._cluster

    @property
    def namespace(self) -> str:
        """``-n``, else the kubeconfig context's namespace, else ``default``."""
        if self.explicit_namespace:
            return self.explicit_namespace
        if self._namespace is None:
            from bluegreen.kube.client import current_namespace

            self._namespace = current_namespace(self.kubeconfig, self.context) or DEFAULT_NAMESPACE
        return self._namespace

    def release(self, name: str) -> dict[str, Any]:
        """The release ``name`` in ``namespace``; a clear error when it does not exist."""
        from bluegreen.kube.console import api_failure

        try:
            release: dict[str, Any] = self.cluster.get_release(self.namespace, name)
        except Exception as exc:
            failure = api_failure(exc)
            if failure is not None and failure.status == 404:
                raise CliError(f"bluegreenrelease {name!r} not found in namespace {self.namespace!r}") from None
            raise
        return release
