"""Hook Jobs through the API (``core.job_status.JobCluster``): create, delete, the tail of a pod's log; the Jobs
themselves are read from the view the Job watch feeds (``kube.view``), no API request.

Every call goes through the project's ``TimedApiClient`` (a connect and a read timeout on every request).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes.client.exceptions import ApiException

from bluegreen.core.errors import ClusterError
from bluegreen.core.hook_jobs import ANNOTATION_CHECK, INVALID_JOB_MANIFEST
from bluegreen.core.job_status import JobRecord, job_record
from bluegreen.core.spec import ANNOTATION_COMMIT, FIELD_MANAGER, LABEL_HOOK, LABEL_RELEASE
from bluegreen.kube.reads import KubeReads

_RUN_LABELS = (LABEL_RELEASE, LABEL_HOOK)
_RUN_ANNOTATIONS = (ANNOTATION_COMMIT, ANNOTATION_CHECK)


class KubeJobs(KubeReads):
    """The Job part of ``KubeCluster``: writes feed the view with what the API server returned."""

    def job(self, namespace: str, name: str) -> JobRecord | None:
        return self.view.job(namespace, name)

    def release_jobs(self, namespace: str, release: str) -> Sequence[JobRecord]:
        return self.view.release_jobs(namespace, release)

    def create_job(self, body: Mapping[str, Any]) -> JobRecord:
        """Create a hook Job. AlreadyExists: the one of that name is read and returned if it is the same run
        (created before a restart), else ``ClusterError`` ``JobConflict``; a Job the API server refuses is
        ``ClusterError`` ``InvalidJobManifest`` with its message."""
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        try:
            response = self.batch.create_namespaced_job(namespace, body,  # type: ignore[arg-type]
                                                        field_manager=FIELD_MANAGER, _preload_content=False)
        except ApiException as exc:
            if exc.status == 409:
                return self._existing(body)
            if exc.status in (400, 422):
                raise ClusterError(INVALID_JOB_MANIFEST, f"the API server refused Job {name!r}: "
                                                         f"{_api_message(exc)}") from None
            raise
        created: dict[str, Any] = json.loads(_data(response))
        self.view.observe_job(created)
        record = job_record(created)
        assert record is not None, "a hook Job carries the release label"
        return record

    def _existing(self, body: Mapping[str, Any]) -> JobRecord:
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        current = self.get_json(self.batch.read_namespaced_job, name, namespace)
        if current is None:  # deleted in between: the next pass creates it
            raise RuntimeError(f"Job {name!r} was deleted while it was created; retried on the next pass")
        theirs = current.get("metadata") or {}
        same = all((theirs.get("labels") or {}).get(key) == meta["labels"].get(key) for key in _RUN_LABELS) and \
            all((theirs.get("annotations") or {}).get(key) == meta["annotations"].get(key) for key in _RUN_ANNOTATIONS)
        record = job_record(current)
        if not same or record is None:
            raise ClusterError("JobConflict", f"Job {name!r} exists in namespace {namespace!r} but was not created "
                                              f"for this run (its {LABEL_RELEASE}, {LABEL_HOOK} or "
                                              f"{ANNOTATION_COMMIT} differ); delete or rename it")
        self.view.observe_job(current)
        return record

    def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job with its pods (propagation Background: the call returns at once); absent is fine."""
        try:
            self.batch.delete_namespaced_job(name, namespace, propagation_policy="Background",
                                             _preload_content=False)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def job_log_tail(self, job: JobRecord, lines: int) -> str | None:
        """The last ``lines`` lines of the newest pod of ``job`` (selected by its ``controller-uid`` label): of
        its first container that ended with a non-zero exit code, else of its first container. None when there
        is no pod or the node has no log for it (not started, or gone)."""
        listing = self.core.list_namespaced_pod(job.namespace, label_selector=f"controller-uid={job.uid}",
                                                _preload_content=False)
        pods: list[dict[str, Any]] = json.loads(_data(listing)).get("items") or []
        if not pods:
            return None
        pod = max(pods, key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))
        container = _failed_container(pod)
        try:
            response = self.core.read_namespaced_pod_log(pod["metadata"]["name"], job.namespace, container=container,
                                                         tail_lines=lines, _preload_content=False)
        except ApiException as exc:
            if exc.status in (400, 404):  # not started yet, or already gone
                return None
            raise
        return _data(response).decode("utf-8", errors="replace")


def _failed_container(pod: Mapping[str, Any]) -> str | None:
    status = pod.get("status") or {}
    for statuses in (status.get("initContainerStatuses") or [], status.get("containerStatuses") or []):
        for item in statuses:
            terminated = ((item.get("state") or {}).get("terminated") or {})
            if terminated.get("exitCode", 0) != 0:
                return str(item["name"])
    containers = (pod.get("spec") or {}).get("containers") or []
    return str(containers[0]["name"]) if containers else None


def _data(response: Any) -> bytes:
    """The raw body of a call made with ``_preload_content=False``."""
    data: bytes = response.data
    return data


def _api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "").get("message") or exc.reason)
    except (TypeError, ValueError):
        return str(exc.reason)
