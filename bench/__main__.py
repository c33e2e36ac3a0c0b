"""`python -m bench` (`make bench`): every benchmark, full size, one after the other."""

from __future__ import annotations

import asyncio

from bench import (
    apikeys,
    auth_cache,
    authz,
    cold_start,
    enumeration,
    flood,
    operator_roles,
    operator_users,
    overhead,
)


async def run_all() -> None:
    """Run the benchmarks in order; each prints its own figures and ratios."""
    print("== cached auth decision")
    await auth_cache.run()
    print("\n== proxy overhead")
    await overhead.run()
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
    print("\n== operator: initial reconcile, resume, rotation propagation")
    await operator_users.main(users=200, rotations=20, cost=10)
    print("\n== operator: roles initial reconcile and resume")
    await operator_roles.main(roles=100, grants=10, users=200)


if __name__ == "__main__":
    asyncio.run(run_all())
