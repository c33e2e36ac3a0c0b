"""`python -m bench` (`make bench`): every benchmark, full size, one after the other."""

from __future__ import annotations

import asyncio

from bench import auth_cache, cold_start, flood, overhead


async def run_all() -> None:
    """Run the four benchmarks in order; each prints its own figures and ratios."""
    print("== cached auth decision")
    await auth_cache.run()
    print("\n== proxy overhead")
    await overhead.run()
    print("\n== cold start")
    await cold_start.run()
    print("\n== wrong-password flood")
    await flood.run()


if __name__ == "__main__":
    asyncio.run(run_all())
