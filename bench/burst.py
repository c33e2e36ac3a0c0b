"""Other clients, in a process of their own: a burst of concurrent calls, or a paced flood.

The benchmarks measure cached users' latency from their own process; if the burst or the
flood ran in that process too, its work would show up as the proxy's. Protocol: the child
connects, prints `ready`, waits for a line on stdin, runs, and prints one JSON result.
`python -m bench.burst ADDRESS USER PASSWORD --concurrent N` or `--rate R --seconds S`
(then every call uses a different wrong password).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import grpc

from bench.common import GET_VERSION, header

OWN_CONNECTION = (("grpc.use_local_subchannel_pool", 1),)


async def _call(multicallable: Any, user: str, password: str, codes: dict[str, int]) -> float:
    try:
        await multicallable(b"", metadata=header(user, password), timeout=60)
        code = "OK"
    except grpc.aio.AioRpcError as error:
        code = error.code().name
    codes[code] = codes.get(code, 0) + 1
    return time.perf_counter()  # CLOCK_MONOTONIC on Linux: comparable across processes


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Connect, wait for the go line, run the burst or the flood, return what happened."""
    codes: dict[str, int] = {}
    async with grpc.aio.insecure_channel(args.address, options=OWN_CONNECTION) as channel:
        await channel.channel_ready()
        call = channel.unary_unary(GET_VERSION)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        started = time.perf_counter()
        if args.rate:
            tasks = []
            for number in range(int(args.rate * args.seconds)):
                delay = started + number / args.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                wrong = f"{args.password}-guess-{number:06d}"
                tasks.append(asyncio.ensure_future(_call(call, args.user, wrong, codes)))
            ends = await asyncio.gather(*tasks)
        else:
            ends = await asyncio.gather(
                *(_call(call, args.user, args.password, codes) for _ in range(args.concurrent))
            )
    return {
        "codes": codes,
        "started": started,
        "first_end": min(ends),
        "last_end": max(ends),
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    """Parse the arguments and print the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address")
    parser.add_argument("user")
    parser.add_argument("password")
    parser.add_argument("--concurrent", type=int, default=200)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--seconds", type=float, default=3.0)
    print(json.dumps(asyncio.run(run(parser.parse_args()))), flush=True)


async def other_client(*args: str) -> tuple[asyncio.subprocess.Process, Any]:
    """Start a burst process and wait until it is connected; returns it and a `go` coroutine."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.burst",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stdin is not None
    if (await process.stdout.readline()).strip() != b"ready":
        raise RuntimeError("the burst client did not start")

    async def go() -> dict[str, Any]:
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(b"go\n")
        await process.stdin.drain()
        result: dict[str, Any] = json.loads(await process.stdout.readline())
        await process.wait()
        return result

    return process, go


if __name__ == "__main__":
    main()
