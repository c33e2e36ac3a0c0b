"""Proxy memory at scale: resident memory idle, with 10,000 cached users, 10,000 cached API
keys and 10,000 grants.

One real proxy process (auth and authorization on) in front of a stub upstream. Its RSS is read
from /proc after a few calls (idle); after 10,000 users were put in its credential cache
through the internal port's UpdateCredentialCache (what the operator sends for each user: the
same entry a login leaves); after 10,000 API keys (records written as `apikeys create` writes
them) were each used once, which puts each in the proxy's key cache; and last after 10,000
grants (100 roles x 100 collections, Milvus's etcd records) reached its policy cache through
the etcd watch (the last grant written is checked by a call it allows, so every grant before it
is in). Target: under 60 MiB above idle for 10,000 users and 10,000 API keys or grants.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
from pymilvus.grpc_gen import milvus_pb2

from bench.apikeys import issue_keys, key_header
from bench.common import GET_VERSION, META_ROOT, create_users, etcd_and_proxy, stub_upstream
from milvus_auth.core import cache_digest
from milvus_auth.core.grants import RbacLayout, plan_v1
from milvus_auth.protos import proxy_pb2, proxy_pb2_grpc
from milvus_auth.store import Endpoint, EtcdSettings, PolicyStore
from tests.harness.processes import EtcdServer
from tests.harness.proxy import ProxyProcess

MIB = 1024 * 1024
SEARCH = "/milvus.proto.milvus.MilvusService/Search"
CONCURRENCY = 8  # requests in flight while filling the caches (a loaded etcd times out at 32)


def rss(pid: int) -> int:
    """Resident set size of a process, bytes (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def _bounded(jobs: list[Callable[[], Awaitable[object]]]) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(job: Callable[[], Awaitable[object]]) -> None:
        async with gate:
            await job()

    await asyncio.gather(*(one(job) for job in jobs))


async def cache_users(proxy: ProxyProcess, passwords: dict[str, str]) -> None:
    """Pre-warm the proxy's credential cache with each user's digest (never the password)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{proxy.internal_port}") as channel:
        stub = proxy_pb2_grpc.ProxyStub(channel)

        def job(user: str, password: str) -> Callable[[], Awaitable[object]]:
            request = proxy_pb2.UpdateCredCacheRequest(
                username=user, password=cache_digest(user, password)
            )
            return lambda: stub.UpdateCredentialCache(request, timeout=30)

        await _bounded([job(user, password) for user, password in passwords.items()])


async def grant_all(etcd: EtcdServer, *, roles: int, collections: int, user: str) -> str:
    """Roles r0.. each granted Search on collections c0..; `user` bound to the last role.
    Returns the collection of the last grant written."""
    settings = EtcdSettings(endpoints=(Endpoint.parse(etcd.endpoint),))
    async with PolicyStore(settings, RbacLayout(META_ROOT)) as store:
        await _bounded([lambda r=r: store.create_role(f"r{r}") for r in range(roles)])

        def job(role: str, collection: str) -> Callable[[], Awaitable[object]]:
            planned = plan_v1(
                role, "Search", object_type="Collection", object_name=collection,
                database="default", custom_groups=(),
            )  # fmt: skip
            return lambda: store.grant(planned.target, planned.privilege, "root")

        last_role, last = f"r{roles - 1}", f"c{collections - 1}"
        await _bounded(
            [
                job(f"r{r}", f"c{c}")
                for r in range(roles)
                for c in range(collections)
                if (r, c) != (roles - 1, collections - 1)
            ]
        )
        await store.bind(user, last_role)
        await job(last_role, last)()
    return last


async def cache_api_keys(etcd: EtcdServer, proxy: ProxyProcess, *, user: str, count: int) -> None:
    """`count` API keys of `user` written to etcd, then each used once through the proxy."""
    keys = await issue_keys(etcd, count, users=(user,))
    async with grpc.aio.insecure_channel(proxy.address) as channel:
        call = channel.unary_unary(GET_VERSION)
        await _bounded(
            [lambda key=key: call(b"", metadata=key_header(key), timeout=60) for key in keys]
        )


async def until_allowed(proxy: ProxyProcess, user: str, password: str, collection: str) -> None:
    """Search `collection` as `user` until the proxy allows it (its watch applied the grant;
    an empty name: until it authenticates the user)."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = milvus_pb2.SearchRequest(collection_name=collection).SerializeToString()
    async with grpc.aio.insecure_channel(proxy.address) as channel:
        search = channel.unary_unary(SEARCH)
        for _ in range(600):
            try:
                await search(request, metadata=(("authorization", token),), timeout=30)
                return
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.PERMISSION_DENIED:
                    raise
                if not collection:
                    return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"the proxy never allowed {user} to search {collection}")


async def run(
    *, users: int = 10_000, roles: int = 100, collections: int = 100, api_keys: int = 10_000
) -> dict[str, int]:
    """Print the proxy's RSS idle, with `users` cached users, `roles` x `collections` grants
    and `api_keys` cached API keys, and the growth over idle; return the RSS figures in bytes."""
    passwords = {f"user{i}": secrets.token_urlsafe(12) for i in range(users)}
    first = next(iter(passwords))
    async with stub_upstream() as upstream:
        with etcd_and_proxy(upstream) as (etcd, proxy):
            assert proxy.process is not None
            pid = proxy.process.pid
            await create_users(etcd, {first: passwords[first]}, cost=4)  # roles bind to it
            await until_allowed(proxy, first, passwords[first], "")
            figures = {"idle": rss(pid)}
            await cache_users(proxy, passwords)
            figures["users"] = rss(pid)
            await cache_api_keys(etcd, proxy, user=first, count=api_keys)
            figures["api_keys"] = rss(pid)
            last = await grant_all(etcd, roles=roles, collections=collections, user=first)
            await until_allowed(proxy, first, passwords[first], last)
            figures["grants"] = rss(pid)
    idle = figures["idle"]
    print(
        f"proxy RSS (auth and authorization on, {users} users, {api_keys} API keys, "
        f"{roles * collections} grants)"
    )
    print(f"  idle:                      {idle / MIB:6.1f} MiB")
    print(
        f"  + {users} cached users:    {figures['users'] / MIB:6.1f} MiB "
        f"(+{(figures['users'] - idle) / MIB:.1f} MiB, "
        f"{(figures['users'] - idle) / users:.0f} bytes per user)"
    )
    print(
        f"  + {api_keys} cached API keys: {figures['api_keys'] / MIB:6.1f} MiB "
        f"(+{(figures['api_keys'] - figures['users']) / MIB:.1f} MiB, "
        f"{(figures['api_keys'] - figures['users']) / max(api_keys, 1):.0f} bytes per key)"
    )
    grants = roles * collections
    print(
        f"  + {grants} grants:         {figures['grants'] / MIB:6.1f} MiB "
        f"(+{(figures['grants'] - figures['api_keys']) / MIB:.1f} MiB, "
        f"{(figures['grants'] - figures['api_keys']) / grants:.0f} bytes per grant)"
    )
    users_and_grants = figures["grants"] - figures["api_keys"] + figures["users"] - idle
    print(
        f"  users and API keys over idle: +{(figures['api_keys'] - idle) / MIB:.1f} MiB; "
        f"users and grants: +{users_and_grants / MIB:.1f} MiB; all three: "
        f"+{(figures['grants'] - idle) / MIB:.1f} MiB (target < 60 MiB for users and either)"
    )
    return figures


def main() -> None:
    """`python -m bench.memory [--users N] [--roles N] [--collections N]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--roles", type=int, default=100)
    parser.add_argument("--collections", type=int, default=100, help="grants per role")
    parser.add_argument("--api-keys", type=int, default=10_000)
    args = parser.parse_args()
    asyncio.run(
        run(
            users=args.users,
            roles=args.roles,
            collections=args.collections,
            api_keys=args.api_keys,
        )
    )


if __name__ == "__main__":
    main()
