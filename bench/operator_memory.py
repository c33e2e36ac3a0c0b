"""Operator memory in cluster-wide mode: RSS with an empty cluster, with 10,000 unrelated
Secrets, and with 1,000 MilvusUsers reconciled beside those Secrets, and the label selector
its Secret watch carries.

The real `milvus-auth operator --all-namespaces` process runs against kmock (its Kubernetes
API) and a real etcd, once per cluster state, and its RSS is read from /proc once it has
listed and watched everything. The operator asks for Secrets labelled
`auth.milvus.io/watch=true` only (printed from kmock's request log), so a real API server
never sends it the unrelated ones; kmock ignores label selectors and sends all of them, so the
figures with them are the worst case: what they would cost if the selector were not honoured.
The MilvusUsers (each with its labelled Secret) are reconciled for real: record written to
etcd (bcrypt cost 4), proxies notified (there are none), status patched.

kmock matches every request against every request it has logged, so a run of thousands of
requests takes time quadratic in their number; the bench's emulator keeps only the request
being served and the Secret listings it reports (`ShortMemory`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import kmock

from bench.memory import MIB, rss
from tests.harness.processes import EtcdServer, ServerProcess, free_port, port_open
from tests.operator.cluster import Emulator, declare_resources, write_kubeconfig

SECRETS = "v1/secrets"
USERS = "auth.milvus.io/v1alpha1/milvususers"
SETTLE = 5.0  # seconds after the Secret listing before the RSS is read


class ShortMemory(Emulator):
    """The test emulator, forgetting each request once it is served, except Secret listings."""

    def __init__(self) -> None:
        super().__init__()
        self.secret_listings: list[kmock.Request] = []

    async def _handle(self, request: kmock.Request) -> Any:
        if request.resource == kmock.resource(SECRETS) and request.action == kmock.action.LIST:
            self.secret_listings.append(request)
        # kmock's log of requests (private): the one being served must stay, for its match.
        del self._requests[:-1]
        return await super()._handle(request)


class OperatorProcess(ServerProcess):
    """`milvus-auth operator --all-namespaces` against `kubeconfig`; ready when its liveness
    endpoint listens."""

    def __init__(self, workdir: Path, *, kubeconfig: Path, etcd: EtcdServer) -> None:
        port = free_port()
        super().__init__(
            "operator",
            [
                *(sys.executable, "-m", "milvus_auth.cli", "operator"),
                *("--kubeconfig", str(kubeconfig), "--all-namespaces", "true"),
                *("--etcd-endpoints", etcd.endpoint, "--meta-root", "bench/meta"),
                *("--proxy-service", "milvus/milvus-auth-proxy-internal"),
                *("--liveness", f"http://127.0.0.1:{port}/healthz"),
                *("--bcrypt-cost", "4", "--log-level", "warning"),
            ],
            log_path=workdir / "operator.log",
            ready=lambda: port_open(port),
            start_timeout=60.0,
        )


def _reconciled(api: ShortMemory, users: Sequence[tuple[str, str]]) -> bool:
    return all(
        (api.objects[USERS, namespace, name].raw.get("status") or {}).get("conditions")
        for namespace, name in users
    )


async def _measure(
    api: ShortMemory,
    workdir: Path,
    etcd: EtcdServer,
    users: Sequence[tuple[str, str]] = (),
) -> int:
    operator = OperatorProcess(
        workdir, kubeconfig=write_kubeconfig(workdir / "kubeconfig", str(api.url)), etcd=etcd
    )
    listed = len(api.secret_listings)
    operator.start()
    try:
        for _ in range(600):
            if len(api.secret_listings) > listed:
                break
            await asyncio.sleep(0.1)
        for _ in range(36_000):
            if _reconciled(api, users):
                break
            await asyncio.sleep(0.1)
        else:
            raise TimeoutError("the MilvusUsers were not all reconciled within an hour")
        await asyncio.sleep(SETTLE)
        assert operator.process is not None
        return rss(operator.process.pid)
    finally:
        operator.stop()


def _add_secrets(api: ShortMemory, count: int) -> None:
    """`count` Secrets without the watch label, put straight into kmock's store."""
    for index in range(count):
        namespace, name = f"apps-{index % 50}", f"unrelated-{index}"
        api.objects[SECRETS, namespace, name] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": f"uid-{name}",
                "resourceVersion": "1",
            },
            "data": {"token": "c2VjcmV0LXZhbHVlLW9mLWFib3V0LTY0LWJ5dGVzLWxvbmctZm9yLWEtdG9rZW4="},
        }


def _add_users(api: ShortMemory, count: int) -> list[tuple[str, str]]:
    """`count` MilvusUsers, each with a labelled Secret holding its password."""
    added = []
    for index in range(count):
        namespace, name = f"team-{index % 10}", f"user{index}"
        meta = {"namespace": namespace, "resourceVersion": "1"}
        api.objects[SECRETS, namespace, f"{name}-pw"] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                **meta,
                "name": f"{name}-pw",
                "uid": f"uid-{name}-pw",
                "labels": {"auth.milvus.io/watch": "true"},
            },
            "data": {"password": base64.b64encode(f"{name}-Password-1".encode()).decode()},
        }
        api.objects[USERS, namespace, name] = {
            "apiVersion": "auth.milvus.io/v1alpha1",
            "kind": "MilvusUser",
            "metadata": {**meta, "name": name, "uid": f"uid-{name}", "generation": 1},
            "spec": {"username": name, "passwordSecretRef": {"name": f"{name}-pw"}},
        }
        added.append((namespace, name))
    return added


async def run(*, secrets: int = 10_000, users: int = 1_000) -> dict[str, int]:
    """Print the operator's RSS empty, with `secrets` unrelated Secrets, and with `users`
    MilvusUsers reconciled beside them; return the figures."""
    with tempfile.TemporaryDirectory(prefix="milvus-auth-operator-memory-") as scratch:
        workdir = Path(scratch)
        etcd = EtcdServer(workdir)
        etcd.start()
        try:
            async with ShortMemory() as api, kmock.Server(api):
                declare_resources(api)
                figures = {"empty": await _measure(api, workdir, etcd)}
                _add_secrets(api, secrets)
                figures["secrets"] = await _measure(api, workdir, etcd)
                added = _add_users(api, users)
                started = time.monotonic()
                figures["users"] = await _measure(api, workdir, etcd, added)
                took = time.monotonic() - started
                selectors = {r.params.get("labelSelector") for r in api.secret_listings}
        finally:
            etcd.stop()
    empty, with_secrets = figures["empty"], figures["secrets"]
    print("operator RSS, cluster-wide (--all-namespaces), kmock as the API server")
    print(f"  empty cluster:                 {empty / MIB:6.1f} MiB")
    print(
        f"  + {secrets} unrelated Secrets: {with_secrets / MIB:6.1f} MiB "
        f"(+{(with_secrets - empty) / MIB:.1f} MiB; kmock ignores the selector, so this "
        "is the cost without it)"
    )
    print(
        f"  + {users} MilvusUsers reconciled beside them: {figures['users'] / MIB:6.1f} MiB "
        f"(+{(figures['users'] - with_secrets) / MIB:.1f} MiB for the users, "
        f"{(figures['users'] - with_secrets) / max(users, 1) / 1024:.1f} KiB each; "
        f"+{(figures['users'] - empty) / MIB:.1f} MiB over empty; reconciled in {took:.0f} s)"
    )
    print(f"  Secret listings asked for labelSelector: {sorted(map(str, selectors))}")
    return figures


def main() -> None:
    """`python -m bench.operator_memory [--secrets N]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secrets", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=1_000)
    args = parser.parse_args()
    asyncio.run(run(secrets=args.secrets, users=args.users))


if __name__ == "__main__":
    main()
