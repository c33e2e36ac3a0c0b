"""`python -m bench` (`make bench`): every benchmark, full size, one after the other."""

from __future__ import annotations

import asyncio

from bench import (
    accesslog,
    apikeys,
    auth_cache,
    authz,
    cold_start,
    enumeration,
    flood,
    memory,
    operator_memory,
    operator_roles,
    operator_users,
    overhead,
    payload,
    percall,
    throughput,
)


async def run_all() -> None:
    """Run the benchmarks in order; each prints its own figures and ratios."""
    print("== cached auth decision")
    await auth_cache.run()
    print("\n== proxy overhead")
    await overhead.run()
    print("\n== throughput with h2load: direct, bare forwarder, 1 and 2 workers")
    await throughput.run()
    print("\n== proxy CPU per call under h2load: forwarded, refused")
    await percall.run()
    print("\n== large messages: inserts of 1, 16, 64 MiB and a 16 MiB search result")
    await payload.run()
    print("\n== proxy memory: idle, 10,000 cached users, 10,000 grants")
    await memory.run()
    print("\n== cold start")
    await cold_start.run()
    print("\n== wrong-password flood")
    await flood.run()
    print("\n== user enumeration by timing")
    await enumeration.run()
    print("\n== authorization: decision, name extraction, throughput on/off, revoke propagation")
    await authz.run()
    print("\n== API keys: cached check, 1,000 cold keys, revocation on 3 proxies")
    await apikeys.run()
    print("\n== access log: throughput on vs off (h2load)")
    await accesslog.run()
    print("\n== operator: initial reconcile, resume, rotation propagation")
    await operator_users.main(users=200, rotations=20, cost=10)
    print("\n== operator: roles initial reconcile, resume, spec change propagation")
    await operator_roles.main(roles=100, grants=10, users=200, changes=20)
    print("\n== operator memory: empty, 10,000 unrelated Secrets, MilvusUsers")
    await operator_memory.run()


if __name__ == "__main__":
    asyncio.run(run_all())
