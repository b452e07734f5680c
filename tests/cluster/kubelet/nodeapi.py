"""What a pod worker asks the API server, always as the node (``system:node:<name>``): ConfigMaps and
Secrets its pods reference, Services for the environment, service-account tokens (TokenRequest bound to
the pod), and pod status writes and the final delete. The Node authorizer learns of a new binding a
moment after we see it, so a 403 is retried briefly."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException

T = TypeVar("T")
Obj = dict[str, Any]
TIMEOUT = 10


class NodeAPI:
    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)

    @staticmethod
    def _retry_forbidden(call: Callable[[], T], seconds: float = 5.0) -> T:
        deadline = time.monotonic() + seconds
        while True:
            try:
                return call()
            except ApiException as exc:
                if exc.status != 403 or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _read(self, call: Callable[..., Any], *args: Any) -> Obj | None:
        try:
            resp = self._retry_forbidden(lambda: call(*args, _preload_content=False, _request_timeout=TIMEOUT))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        result: Obj = json.loads(resp.data)
        return result

    # ---- the sources of env and volumes (see envvars.Sources) -----------------------------------
    def config_map_bytes(self, namespace: str, name: str) -> dict[str, bytes] | None:
        obj = self._read(self.core.read_namespaced_config_map, name, namespace)
        if obj is None:
            return None
        data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        return data

    def secret_bytes(self, namespace: str, name: str) -> dict[str, bytes] | None:
        obj = self._read(self.core.read_namespaced_secret, name, namespace)
        if obj is None:
            return None
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        obj = self._read(self.core.read_namespaced_config_map, name, namespace)
        return None if obj is None else dict(obj.get("data") or {})

    def secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
        data = self.secret_bytes(namespace, name)
        return None if data is None else {k: v.decode(errors="replace") for k, v in data.items()}

    def services(self, namespace: str) -> list[Obj]:
        resp = self.core.list_namespaced_service(namespace, _preload_content=False, _request_timeout=TIMEOUT)
        items: list[Obj] = json.loads(resp.data)["items"]
        return items

    def token(self, pod: Obj, audience: str | None, expiration: int) -> str:
        """A service-account token bound to ``pod`` (what kubelet's token manager requests)."""
        meta = pod["metadata"]
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": [audience] if audience else [],
                "expirationSeconds": expiration,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
            },
        }
        account = pod["spec"].get("serviceAccountName") or "default"
        resp = self._retry_forbidden(lambda: self.core.create_namespaced_service_account_token(
            account, meta["namespace"], body, _preload_content=False, _request_timeout=TIMEOUT))
        return str(json.loads(resp.data)["status"]["token"])

    # ---- writes ----------------------------------------------------------------------------------
    def patch_status(self, pod: Obj, patch: Obj) -> None:
        meta = pod["metadata"]
        self.core.patch_namespaced_pod_status(meta["name"], meta["namespace"], {"status": patch},
                                              _preload_content=False, _request_timeout=TIMEOUT)

    def delete(self, pod: Obj) -> None:
        """Delete the pod object now (its processes are gone): grace 0, only this very pod (uid)."""
        meta = pod["metadata"]
        try:
            self.core.delete_namespaced_pod(
                meta["name"], meta["namespace"], grace_period_seconds=0, _preload_content=False,
                body=client.V1DeleteOptions(grace_period_seconds=0, preconditions={"uid": meta["uid"]}),
                _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise
