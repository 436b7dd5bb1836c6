"""AsyncQueue against Queue in one process, in alternating rounds (so the machine's drift hits both alike):
enqueue one job at a time (each its own transaction) and enqueue_many of a generator (an async generator for
AsyncQueue). Prints the median jobs/s of each and the median per-round ratio async / sync.

    .venv/bin/python benchmarks/async_ab.py [--dsn URL] [--rounds 10] [--single 500] [--bulk 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent / "drivers"))
import benchjobs  # noqa: E402

import pgqueue  # noqa: E402
from pgqueue import AsyncQueue, Queue  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--single", type=int, default=500)
    parser.add_argument("--bulk", type=int, default=20000)
    args = parser.parse_args()
    name = f"async_ab_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.dsn, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    dsn = psycopg.conninfo.make_conninfo(args.dsn, dbname=name)
    try:
        pgqueue.migrate(dsn)
        run(dsn, args)
    finally:
        pgqueue._db.close_shared_connections()
        with psycopg.connect(args.dsn, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def run(dsn: str, args: argparse.Namespace) -> None:
    sync, aq = Queue("ab", dsn), AsyncQueue("ab", dsn)

    def single_sync() -> float:
        t = time.perf_counter()
        for i in range(args.single):
            sync.enqueue(benchjobs.f, i)
        return args.single / (time.perf_counter() - t)

    async def single_async() -> float:
        await aq.enqueue(benchjobs.f, -1)  # the loop's connection, made once per loop: not timed
        t = time.perf_counter()
        for i in range(args.single):
            await aq.enqueue(benchjobs.f, i)
        return args.single / (time.perf_counter() - t)

    def bulk_sync() -> float:
        t = time.perf_counter()
        sync.enqueue_many(Queue.prepare_data(benchjobs.f, args=(i,)) for i in range(args.bulk))
        return args.bulk / (time.perf_counter() - t)

    async def bulk_async() -> float:
        async def items():  # type: ignore[no-untyped-def]
            for i in range(args.bulk):
                yield Queue.prepare_data(benchjobs.f, args=(i,))

        await aq.enqueue(benchjobs.f, -1)
        t = time.perf_counter()
        await aq.enqueue_many(items())
        return args.bulk / (time.perf_counter() - t)

    rates: dict[str, list[float]] = {"single sync": [], "single async": [], "bulk sync": [], "bulk async": []}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for n in range(args.rounds):
            pairs = [("single sync", single_sync), ("single async", lambda: asyncio.run(single_async())),
                     ("bulk sync", bulk_sync), ("bulk async", lambda: asyncio.run(bulk_async()))]
            if n % 2:
                pairs = [pairs[1], pairs[0], pairs[3], pairs[2]]
            for key, measure in pairs:
                conn.execute("TRUNCATE pgqueue.jobs")
                rates[key].append(measure())
    report(rates)


def report(rates: dict[str, list[float]]) -> None:
    for kind in ("single", "bulk"):
        s, a = rates[f"{kind} sync"], rates[f"{kind} async"]
        ratios = sorted(x / y for x, y in zip(a, s, strict=True))
        print(f"{kind}: sync {statistics.median(s):,.0f} jobs/s ({1e6 / statistics.median(s):.0f} us/job), "
              f"async {statistics.median(a):,.0f} jobs/s ({1e6 / statistics.median(a):.0f} us/job); "
              f"async/sync per round: median {statistics.median(ratios):.2f}, "
              f"range {ratios[0]:.2f}-{ratios[-1]:.2f}")


if __name__ == "__main__":
    main()
