"""Client CPU per Redis round trip of the kind a watching page makes, with hiredis (the site's
parser: `redis[hiredis]`) against redis-py's pure-Python RESP2 parser, side by side in one run.

Every delta a page receives is an `XREAD` reply parsed in the web server (the generation socket
follows the event log one entry at a time when the worker writes slower than the socket reads),
and every flush of the worker an `XADD` pipeline.

    .venv/bin/python bench/bench_redis_parser.py [--redis redis://127.0.0.1:6379/13] [--rounds 7]

A stream of 200 event-log entries shaped like the worker's (one JSON list of a delta each) is
read back entry by entry with the asyncio client, as the consumer reads it; prints microseconds
of process CPU per `XREAD` for both parsers (each round alternating which goes first) and the
median of the rounds. The key is deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis  # noqa: E402
from redis._parsers import _AsyncHiredisParser, _AsyncRESP2Parser  # noqa: E402

KEY = "bench:redis-parser:events"
ENTRIES = 200
PARSERS = {"hiredis": _AsyncHiredisParser, "pure Python": _AsyncRESP2Parser}


async def cpu_us_per_xread(url: str, parser_class: type, passes: int) -> float:
    client = aioredis.Redis.from_url(url, decode_responses=True, parser_class=parser_class)
    try:
        start = time.process_time()
        reads = 0
        for _ in range(passes):
            last = "0"
            while True:
                response = await client.xread({KEY: last}, count=1)
                if not response:
                    break
                last = response[0][1][-1][0]
                reads += 1
        return (time.process_time() - start) / reads * 1e6
    finally:
        await client.aclose()


async def run(url: str, rounds: int, passes: int) -> dict[str, list[float]]:
    client = aioredis.Redis.from_url(url)
    await client.delete(KEY)
    delta = {
        "type": "delta",
        "seq": 0,
        "field": "reasoning",
        "text": "Subtract 5 from both sides: ",
    }
    for seq in range(ENTRIES):
        await client.xadd(KEY, {"e": json.dumps([dict(delta, seq=seq + 1)])})
    results: dict[str, list[float]] = {name: [] for name in PARSERS}
    names = list(PARSERS)
    try:
        for name in names:  # warm both
            await cpu_us_per_xread(url, PARSERS[name], 1)
        for round_ in range(rounds):
            for name in names if round_ % 2 == 0 else reversed(names):
                results[name].append(await cpu_us_per_xread(url, PARSERS[name], passes))
    finally:
        await client.delete(KEY)
        await client.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--passes", type=int, default=10, help="reads of the whole stream a round")
    args = parser.parse_args()
    results = asyncio.run(run(args.redis, args.rounds, args.passes))
    print(
        f"XREAD of one entry, {ENTRIES} entries x {args.passes} passes a round, {args.rounds} rounds"
    )
    for name, values in results.items():
        rounds = ", ".join(f"{v:.0f}" for v in values)
        print(f"{name:12s} median {statistics.median(values):.0f} µs CPU per XREAD  ({rounds})")


if __name__ == "__main__":
    main()
