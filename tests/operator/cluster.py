"""The operator's test cluster: kmock as the Kubernetes API, and the operator in its own thread.

kopf runs in a thread with its own event loop, as it would in its own process: kmock lives on
the test's loop, and kopf's shutdown waits for every task on its loop, which must not include
kmock's. kmock does not bump resourceVersion, so tests that edit a Secret set a new one.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import kmock
import yaml

from milvus_auth.operator.handlers import run_operator
from milvus_auth.operator.runtime import OperatorRuntime

NAMESPACE = "team"
USERS = "auth.milvus.io/v1alpha1/milvususers"
SECRETS = "v1/secrets"
ROLES = "auth.milvus.io/v1alpha1/milvusroles"
KEYS = "auth.milvus.io/v1alpha1/milvusapikeys"
SLICES = "discovery.k8s.io/v1/endpointslices"
SLICE_CONTROLLER = "endpointslice-controller.k8s.io"
_VERBS = {"list", "watch", "get", "create", "patch", "update", "delete"}
_MERGE = {"Content-Type": "application/merge-patch+json"}


_generated_names = itertools.count(1)


class Emulator(kmock.KubernetesEmulator):
    """kmock's emulator, plus `metadata.generateName` (kopf's Events rely on it), plus
    refusals a test plans: `refuse(path, [422, 409])` answers the next PATCHes of `path`
    with those statuses, as an API server under a validation race or a conflict would."""

    async def _handle(self, request: kmock.Request) -> Any:
        planned = getattr(self, "refusals", {}).get(request.url.path)
        if request.method == kmock.method.PATCH and planned:
            status = planned.pop(0)
            raise kmock.KubernetesError(status=status, reason="Refused", message="planned")
        data = request.data
        if request.action == kmock.action.CREATE and isinstance(data, dict):
            meta = data.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = f"{meta['generateName']}{next(_generated_names)}"
        return await super()._handle(request)


def refuse(api: kmock.KubernetesEmulator, path: str, statuses: list[int]) -> None:
    """Answer the next PATCHes of `path` with `statuses`, one each, then serve them again."""
    refusals: dict[str, list[int]] = api.__dict__.setdefault("refusals", {})
    refusals.setdefault(path, []).extend(statuses)


def declare_resources(api: kmock.KubernetesEmulator) -> None:
    """The resources the operator watches or reads, as an API server would announce them."""
    api.resources["v1/namespaces"] = kmock.ResourceInfo(kind="Namespace", verbs=_VERBS)
    api.resources["v1/events"] = kmock.ResourceInfo(kind="Event", namespaced=True, verbs=_VERBS)
    api.resources[SECRETS] = kmock.ResourceInfo(kind="Secret", namespaced=True, verbs=_VERBS)
    api.resources[SLICES] = kmock.ResourceInfo(kind="EndpointSlice", namespaced=True, verbs=_VERBS)
    api.resources[USERS] = kmock.ResourceInfo(
        kind="MilvusUser", namespaced=True, verbs=_VERBS, subresources={"status"}
    )
    api.resources[ROLES] = kmock.ResourceInfo(
        kind="MilvusRole", namespaced=True, verbs=_VERBS, subresources={"status"}
    )
    api.resources[KEYS] = kmock.ResourceInfo(
        kind="MilvusAPIKey", namespaced=True, verbs=_VERBS, subresources={"status"}
    )


def write_kubeconfig(path: Path, server: str) -> Path:
    """A kubeconfig pointing at kmock (no credentials: kmock needs none)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "kmock",
        "clusters": [{"name": "kmock", "cluster": {"server": server}}],
        "users": [{"name": "tester", "user": {}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "tester"}}],
    }
    path.write_text(yaml.safe_dump(config))
    return path


class OperatorThread:
    """`run_operator` in a thread; `start` waits until kopf is ready, `stop` until it exited."""

    def __init__(self, runtime: OperatorRuntime) -> None:
        self.runtime = runtime
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="operator", daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(run_operator(self.runtime, stop_flag=self._stop, ready_flag=self._ready))
        except BaseException as error:  # reported to the test by `stop`
            self._error = error

    async def start(self) -> None:
        self._thread.start()
        ready = await asyncio.to_thread(self._ready.wait, 20)
        assert ready, f"operator did not start: {self._error!r}"
        await asyncio.sleep(0.3)  # the watch streams open just after the ready flag

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.to_thread(self._thread.join, 20)
        assert not self._thread.is_alive(), "operator did not stop"
        assert self._error is None, f"operator failed: {self._error!r}"


async def eventually(
    check: Callable[[], Awaitable[bool] | bool], *, within: float = 15.0, what: str = ""
) -> None:
    """Poll `check` (sync or async) on the test's loop until true, or fail after `timeout`."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {within} s: {what or check}")
        await asyncio.sleep(0.05)


class Cluster:
    """Object helpers over kmock's HTTP API, so that every change reaches kopf's watches."""

    def __init__(self, api: kmock.KubernetesEmulator) -> None:
        self.api = api
        self._versions = 100

    def _version(self) -> str:
        self._versions += 1
        return str(self._versions)

    async def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> None:
        headers = _MERGE if method == "PATCH" else None
        async with self.api.request(method, path, json=body, headers=headers) as response:
            assert response.status < 400, f"{method} {path}: {response.status}"

    async def create_user(self, name: str, spec: dict[str, Any]) -> None:
        body = {
            "apiVersion": "auth.milvus.io/v1alpha1",
            "kind": "MilvusUser",
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "uid": f"uid-{name}",
                "generation": 1,
                "resourceVersion": self._version(),
            },
            "spec": spec,
        }
        await self._send(
            "POST", f"/apis/auth.milvus.io/v1alpha1/namespaces/{NAMESPACE}/milvususers", body
        )

    async def patch_user(self, name: str, change: dict[str, Any]) -> None:
        change.setdefault("metadata", {})["resourceVersion"] = self._version()
        path = f"/apis/auth.milvus.io/v1alpha1/namespaces/{NAMESPACE}/milvususers/{name}"
        await self._send("PATCH", path, change)

    async def create_role(
        self, name: str, spec: dict[str, Any], *, namespace: str = NAMESPACE
    ) -> None:
        body = {
            "apiVersion": "auth.milvus.io/v1alpha1",
            "kind": "MilvusRole",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": f"uid-{namespace}-{name}",
                "generation": 1,
                "resourceVersion": self._version(),
            },
            "spec": spec,
        }
        path = f"/apis/auth.milvus.io/v1alpha1/namespaces/{namespace}/milvusroles"
        await self._send("POST", path, body)

    async def patch_role(
        self, name: str, change: dict[str, Any], *, namespace: str = NAMESPACE
    ) -> None:
        """A spec change (kmock does not bump generation: the change says the new one)."""
        change.setdefault("metadata", {})["resourceVersion"] = self._version()
        path = f"/apis/auth.milvus.io/v1alpha1/namespaces/{namespace}/milvusroles/{name}"
        await self._send("PATCH", path, change)

    async def delete_role(self, name: str, *, namespace: str = NAMESPACE) -> None:
        path = f"/apis/auth.milvus.io/v1alpha1/namespaces/{namespace}/milvusroles/{name}"
        await self._send("DELETE", path)

    def role(self, name: str, namespace: str = NAMESPACE) -> dict[str, Any] | None:
        key = (kmock.resource(ROLES), namespace, name)
        if key not in self.api.objects or self.api.objects[key].deleted:
            return None
        raw: dict[str, Any] = self.api.objects[key].raw
        return raw

    def role_status(self, name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
        return dict((self.role(name, namespace) or {}).get("status") or {})

    def role_reason(self, name: str, namespace: str = NAMESPACE) -> str | None:
        for condition in self.role_status(name, namespace).get("conditions") or []:
            if condition.get("type") == "Ready":
                return str(condition.get("reason"))
        return None

    def role_history(self, name: str, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
        history = self.api.objects[kmock.resource(ROLES), namespace, name].history
        return [version.raw for version in history if version is not None]

    async def create_key(
        self, name: str, spec: dict[str, Any], *, namespace: str = NAMESPACE
    ) -> None:
        """A MilvusAPIKey, with the CRD's default grace period unless the spec sets one."""
        body = {
            "apiVersion": "auth.milvus.io/v1alpha1",
            "kind": "MilvusAPIKey",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": f"uid-key-{namespace}-{name}",
                "generation": 1,
                "resourceVersion": self._version(),
            },
            "spec": {"rotationGracePeriod": "1h", **spec},
        }
        path = f"/apis/auth.milvus.io/v1alpha1/namespaces/{namespace}/milvusapikeys"
        await self._send("POST", path, body)

    def _key_path(self, name: str, namespace: str) -> str:
        return f"/apis/auth.milvus.io/v1alpha1/namespaces/{namespace}/milvusapikeys/{name}"

    async def patch_key(
        self, name: str, change: dict[str, Any], *, namespace: str = NAMESPACE
    ) -> None:
        change.setdefault("metadata", {})["resourceVersion"] = self._version()
        await self._send("PATCH", self._key_path(name, namespace), change)

    async def delete_key(self, name: str, *, namespace: str = NAMESPACE) -> None:
        await self._send("DELETE", self._key_path(name, namespace))

    def key(self, name: str, namespace: str = NAMESPACE) -> dict[str, Any] | None:
        key = (kmock.resource(KEYS), namespace, name)
        if key not in self.api.objects or self.api.objects[key].deleted:
            return None
        raw: dict[str, Any] = self.api.objects[key].raw
        return raw

    def key_status(self, name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
        return dict((self.key(name, namespace) or {}).get("status") or {})

    def key_condition(self, name: str, kind: str = "Ready", namespace: str = NAMESPACE) -> Any:
        conditions = self.key_status(name, namespace).get("conditions") or []
        return next((c for c in conditions if c.get("type") == kind), {})

    def key_reason(self, name: str, namespace: str = NAMESPACE) -> str | None:
        return self.key_condition(name, namespace=namespace).get("reason")

    def all_versions(self, resource: str) -> list[dict[str, Any]]:
        """Every version of every object of `resource` kmock ever held (deleted ones too)."""
        wanted = kmock.resource(resource)
        return [
            version.raw
            for (kind, _, _), obj in self.api.objects.items()
            if kind == wanted
            for version in obj.history
            if version is not None
        ]

    async def delete_user(self, name: str) -> None:
        await self._send(
            "DELETE", f"/apis/auth.milvus.io/v1alpha1/namespaces/{NAMESPACE}/milvususers/{name}"
        )

    async def put_secret(
        self, name: str, password: str, *, key: str = "password", watched: bool = True
    ) -> None:
        """Create the Secret, or change its password (with a new resourceVersion)."""
        data = {key: base64.b64encode(password.encode()).decode()}
        meta: dict[str, Any] = {"resourceVersion": self._version()}
        if self.secret(name) is not None:
            await self._send(
                "PATCH",
                f"/api/v1/namespaces/{NAMESPACE}/secrets/{name}",
                {"metadata": meta, "data": data},
            )
            return
        meta |= {"name": name, "namespace": NAMESPACE, "uid": f"uid-secret-{name}"}
        if watched:
            meta["labels"] = {"auth.milvus.io/watch": "true"}
        body = {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "data": data}
        await self._send("POST", f"/api/v1/namespaces/{NAMESPACE}/secrets", body)

    async def delete_secret(self, name: str) -> None:
        await self._send("DELETE", f"/api/v1/namespaces/{NAMESPACE}/secrets/{name}")

    def _get(self, resource: str, name: str) -> dict[str, Any] | None:
        key = (kmock.resource(resource), NAMESPACE, name)
        if key not in self.api.objects or self.api.objects[key].deleted:
            return None
        raw: dict[str, Any] = self.api.objects[key].raw
        return raw

    def user(self, name: str) -> dict[str, Any] | None:
        return self._get(USERS, name)

    def secret(self, name: str) -> dict[str, Any] | None:
        return self._get(SECRETS, name)

    def secret_history(self, name: str) -> list[dict[str, Any]]:
        """Every version the Secret ever had, oldest first."""
        return self._history(SECRETS, name)

    def user_history(self, name: str) -> list[dict[str, Any]]:
        """Every version the MilvusUser ever had (each patch adds one), oldest first."""
        return self._history(USERS, name)

    def _history(self, resource: str, name: str) -> list[dict[str, Any]]:
        history = self.api.objects[kmock.resource(resource), NAMESPACE, name].history
        return [version.raw for version in history if version is not None]

    def status(self, name: str) -> dict[str, Any]:
        return dict((self.user(name) or {}).get("status") or {})

    def condition(self, name: str, kind: str = "Ready") -> dict[str, Any]:
        for condition in self.status(name).get("conditions") or []:
            if condition.get("type") == kind:
                return dict(condition)
        return {}

    def reason(self, name: str) -> str | None:
        return self.condition(name).get("reason")

    def events(self) -> list[dict[str, Any]]:
        return [
            obj.raw
            for (resource, _, _), obj in self.api.objects.items()
            if resource == kmock.resource("v1/events") and not obj.deleted
        ]

    def set_proxies(self, service: str, addresses: list[tuple[str, int]]) -> None:
        """The Service's EndpointSlices, one per proxy (loopback proxies differ only by port),
        as Kubernetes' EndpointSlice controller makes them."""
        for key in [k for k in self.api.objects if k[0] == kmock.resource(SLICES)]:
            del self.api.objects[key]
        for index, (host, port) in enumerate(addresses):
            self.add_slice(f"{service}-{index}", service, host, port, managed_by=SLICE_CONTROLLER)

    def add_slice(
        self, name: str, service: str, host: str, port: int, *, managed_by: str | None
    ) -> None:
        """One EndpointSlice with one ready endpoint, labelled for `service`."""
        labels = {"kubernetes.io/service-name": service}
        if managed_by is not None:
            labels["endpointslice.kubernetes.io/managed-by"] = managed_by
        endpoints = [{"addresses": [host], "conditions": {"ready": True}}]
        self.api.objects[kmock.resource(SLICES), NAMESPACE, name] = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "resourceVersion": self._version(),
                "labels": labels,
            },
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": "internal", "port": port, "protocol": "TCP"}],
        }
