"""Fixtures of the operator tests: kmock as the API, real etcd, the operator in a thread."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import kmock
import pytest

from milvus_auth.config import CommonSettings
from milvus_auth.core import KeyLayout, MalformedRecord, cache_digest
from milvus_auth.operator.config import OperatorConfig, ServiceRef
from milvus_auth.operator.notify import FanOut, Notifier
from milvus_auth.operator.runtime import OperatorRuntime
from milvus_auth.store import CredentialStore, EtcdSettings, EtcdUnavailable
from tests.harness.milvus import MilvusLite, milvus, milvus_server
from tests.harness.processes import EtcdServer
from tests.harness.proxy import ProxyFactory, ProxyProcess, proxy_factory
from tests.operator.cluster import (
    NAMESPACE,
    SECRETS,
    USERS,
    Cluster,
    Emulator,
    OperatorThread,
    declare_resources,
    write_kubeconfig,
)

__all__ = ["milvus", "milvus_server", "proxy_factory"]
PROXY_SERVICE = "milvus-proxy-internal"
TOKEN = "operator-internal-token"

StartOperator = Callable[..., Awaitable[OperatorThread]]
# Keys of generated Secrets that hold no secret (the status shows the same expiry time).
PUBLIC_SECRET_KEYS = frozenset({"username", "expiresAt"})


class FakeNotifier:
    """Records cache pushes and answers with a configurable number of confirming proxies."""

    def __init__(self, total: int = 2) -> None:
        self.total = total
        self.updated = total
        self.updates: list[tuple[str, str]] = []
        self.revisions: list[int | None] = []
        self.invalidations: list[str] = []
        self.refreshes = 0

    async def update(self, username: str, digest: str, *, revision: int | None) -> FanOut:
        self.updates.append((username, digest))
        self.revisions.append(revision)
        return FanOut(self.updated, self.total)

    async def invalidate(self, username: str) -> FanOut:
        self.invalidations.append(username)
        return FanOut(self.updated, self.total)

    async def refresh_policy(self) -> FanOut:
        self.refreshes += 1
        return FanOut(self.updated, self.total)


@pytest.fixture
async def api() -> AsyncIterator[kmock.KubernetesEmulator]:
    """kmock serving on a free port, announcing the resources the operator uses."""
    async with Emulator() as emulator, kmock.Server(emulator):
        declare_resources(emulator)
        yield emulator


@pytest.fixture
def cluster(api: kmock.KubernetesEmulator) -> Cluster:
    return Cluster(api)


@pytest.fixture
def operator_config(
    api: kmock.KubernetesEmulator, etcd_settings: EtcdSettings, layout: KeyLayout, tmp_path: Path
) -> OperatorConfig:
    """One namespace, proxies behind PROXY_SERVICE, bcrypt cost 4, a long resync."""
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", str(api.url))
    return OperatorConfig(
        common=CommonSettings(etcd=etcd_settings, layout=layout, bcrypt_cost=4),
        proxy_service=ServiceRef(NAMESPACE, PROXY_SERVICE),
        namespaces=(NAMESPACE,),
        resync_period=300.0,
        proxy_timeout=1.0,
        kubeconfig=str(kubeconfig),
    )


@pytest.fixture
async def start_operator(operator_config: OperatorConfig) -> AsyncIterator[StartOperator]:
    """`await start_operator(notifier=..., **config_changes)`; every operator is stopped after."""
    running: list[OperatorThread] = []

    async def start(notifier: Notifier | None = None, **changes: object) -> OperatorThread:
        runtime = OperatorRuntime(replace(operator_config, **changes), notifier=notifier)  # type: ignore[arg-type]
        thread = OperatorThread(runtime)
        running.append(thread)
        await thread.start()
        return thread

    yield start
    for thread in running:
        if not thread.stopped:
            await thread.stop()


@pytest.fixture
def proxies(
    proxy_factory: ProxyFactory,
    etcd: EtcdServer,
    meta_root: str,
    milvus: MilvusLite,
    cluster: Cluster,
) -> list[ProxyProcess]:
    """Two proxies requiring the internal token, published as the proxy Service's endpoints."""
    started = [
        proxy_factory(
            etcd_endpoint=etcd.endpoint,
            meta_root=meta_root,
            upstream=milvus.endpoint,
            internal_token=TOKEN,
        )
        for _ in range(2)
    ]
    cluster.set_proxies(PROXY_SERVICE, [("127.0.0.1", p.internal_port) for p in started])
    return started


@pytest.fixture(autouse=True)
async def no_secrets_leak(
    caplog: pytest.LogCaptureFixture, api: kmock.KubernetesEmulator, store: CredentialStore
) -> AsyncIterator[None]:
    """After every test: no password, digest or hash in the logs, Events or any status version.

    The secrets are collected at the end from every Secret kmock ever held (generated ones
    included) and every record in this test's etcd keyspace.
    """
    caplog.set_level(logging.DEBUG)
    yield
    await etcd_answering(store)  # a test may have just restarted etcd
    secrets = set(_passwords(api))
    usernames = {_username(obj) for obj in _all_versions(api, USERS)} - {""}
    secrets |= {cache_digest(user, password) for user in usernames for password in set(secrets)}
    for username in await store.list_usernames():
        with contextlib.suppress(MalformedRecord):  # a test may plant an unreadable record
            stored = await store.get(username)
            if stored is not None:
                secrets.add(stored.record.encrypted_password)
    # In teardown, caplog.text is the teardown phase's; the test's own records are kept apart.
    records = [*caplog.get_records("setup"), *caplog.get_records("call")]
    published = ["\n".join(record.getMessage() for record in records)]
    published += [json.dumps(obj.get("status") or {}) for obj in _all_versions(api, USERS)]
    published += [json.dumps(obj) for obj in _all_versions(api, "v1/events")]
    for secret in secrets:
        for text in published:
            assert secret not in text, "a password, digest or hash was published"


async def etcd_answering(store: CredentialStore) -> None:
    """Wait until etcd answers again (a restarted etcd elects itself after its port opens)."""
    for _ in range(60):
        try:
            await store.revision()
            return
        except EtcdUnavailable:
            await asyncio.sleep(0.5)


def _all_versions(api: kmock.KubernetesEmulator, resource: str) -> list[dict[str, Any]]:
    wanted = kmock.resource(resource)
    return [
        version.raw
        for (kind, _, _), obj in api.objects.items()
        if kind == wanted
        for version in obj.history
        if version is not None
    ]


def _passwords(api: kmock.KubernetesEmulator) -> list[str]:
    found = []
    for secret in _all_versions(api, SECRETS):
        for key, value in (secret.get("data") or {}).items():
            if key in PUBLIC_SECRET_KEYS:
                continue
            text = base64.b64decode(value).decode()
            if len(text) >= 6:  # usernames are stored too; a short one would match everywhere
                found.append(text)
    return found


def _username(user: dict[str, Any]) -> str:
    return str((user.get("spec") or {}).get("username") or "")
