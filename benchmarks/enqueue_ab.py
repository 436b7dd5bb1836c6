"""Enqueue one job per transaction (or in bulk): pgqueue against the raw floor, interleaved in one process.

    .venv/bin/python benchmarks/enqueue_ab.py                          # this checkout against raw INSERT
    git worktree add /tmp/pgq-old <rev>
    .venv/bin/python benchmarks/enqueue_ab.py --old /tmp/pgq-old       # ... and against <rev>'s pgqueue
    .venv/bin/python benchmarks/enqueue_ab.py --bulk 20000 --rounds 16 --old /tmp/pgq-old
        # enqueue_many of 20,000 prepare_data items from a generator per round, against the raw COPY

The full benchmark (run.py) runs each system for a few seconds, one after another; on a shared machine
whose speed drifts by 2x within minutes, its enqueue ratio moves by +-0.15 from run to run. This runs the
variants in alternating rounds (default 30 rounds of 300 enqueues each) in one process and reports the
median per-round ratio to the raw INSERT, with its interquartile range, and the client's CPU time per
enqueue (time.process_time). It uses the raw floor's table and statement (drivers/raw_driver.py) and a
scratch database it creates and drops. Run it with the repository's venv (pgqueue and psycopg installed).
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

sys.path.insert(0, str(Path(__file__).parent / "drivers"))
import benchjobs  # noqa: E402
import pgutil  # noqa: E402
from raw_driver import SCHEMA as RAW_SCHEMA  # noqa: E402


def import_old(checkout: str) -> Any:
    """The pgqueue package of another checkout, importable beside this one as ``pgqueue_old`` (its
    imports of itself are relative)."""
    root = Path(tempfile.mkdtemp(prefix="pgqueue_old_"))
    shutil.copytree(Path(checkout) / "pgqueue", root / "pgqueue_old")
    sys.path.insert(0, str(root))
    return importlib.import_module("pgqueue_old")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres", help="admin DSN")
    p.add_argument("--old", help="another checkout whose pgqueue runs in the same rotation")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--per-round", type=int, default=300)
    p.add_argument("--bulk", type=int, metavar="JOBS",
                   help="instead: one enqueue_many of JOBS per round (streamed from a generator), against a COPY")
    args = p.parse_args()

    import pgqueue

    with pgutil.bench_database(args.pg, f"bench_enqueue_ab_{os.getpid()}") as dsn:
        pgqueue.migrate(dsn)
        raw = psycopg.connect(dsn, autocommit=True)
        raw.execute(RAW_SCHEMA)
        new_queue = pgqueue.Queue("bench", dsn=dsn)
        queues = {"pgqueue": new_queue}
        if args.old:
            queues["pgqueue --old"] = import_old(args.old).Queue("bench", dsn=dsn)

        def one(queue: Any) -> Callable[[int], Any]:
            return lambda i: queue.enqueue(benchjobs.f, i)

        if args.bulk:
            base_name = "raw COPY"

            def raw_copy(i: int) -> None:
                with raw.transaction(), raw.cursor() as cur, cur.copy("COPY raw_jobs (args) FROM STDIN") as copy:
                    for k in range(i, i + args.bulk):  # as the raw floor's enqueue_bulk (drivers/raw_driver.py)
                        copy.write_row((f"[{k}]",))

            def bulk(queue: Any) -> Callable[[int], Any]:
                return lambda i: queue.enqueue_many(
                    type(queue).prepare_data(benchjobs.f, args=(k,)) for k in range(i, i + args.bulk))

            variants: dict[str, Callable[[int], Any]] = {base_name: raw_copy}
            variants.update({name: bulk(queue) for name, queue in queues.items()})
        else:
            base_name = "raw INSERT"
            variants = {base_name: lambda i: raw.execute("INSERT INTO raw_jobs (args) VALUES (%s)", (Jsonb([i]),))}
            variants.update({name: one(queue) for name, queue in queues.items()})
        wall: dict[str, list[float]] = {k: [] for k in variants}
        cpu: dict[str, list[float]] = {k: [] for k in variants}
        per_call = args.bulk or 1
        n = 1 if args.bulk else args.per_round
        for fn in variants.values():
            for i in range(1 if args.bulk else 50):  # connections, prepared statements, caches
                fn(i)
        for r in range(args.rounds):
            for name, fn in variants.items():
                t, c = time.perf_counter(), time.process_time()
                for i in range(n):
                    fn(i)
                wall[name].append((time.perf_counter() - t) / (n * per_call) * 1e6)
                cpu[name].append((time.process_time() - c) / (n * per_call) * 1e6)
                if args.bulk:  # every bulk load starts on empty tables
                    raw.execute("TRUNCATE raw_jobs, pgqueue.jobs")
            if r % 5 == 4:  # keep the tables small, as the full benchmark's resets do
                raw.execute("TRUNCATE raw_jobs, pgqueue.jobs")
        raw.close()  # the database is dropped WITH (FORCE): pgqueue's own connections need no closing

    base = wall[base_name]
    what = f"one enqueue_many of {args.bulk}" if args.bulk else f"{n} enqueues"
    print(f"{args.rounds} interleaved rounds of {what}; per-round ratio = {base_name} time / variant time")
    print(f"| Variant | µs per job (median) | ÷ {base_name}, median (IQR) | client CPU µs per job |")
    print("|---|---|---|---|")
    for name in variants:
        ratios = sorted(b / w for b, w in zip(base, wall[name], strict=True))
        q1, q3 = ratios[len(ratios) // 4], ratios[3 * len(ratios) // 4]
        print(f"| {name} | {statistics.median(wall[name]):.{1 if args.bulk else 0}f} | {statistics.median(ratios):.2f} "
              f"({q1:.2f}–{q3:.2f}) | {statistics.median(cpu[name]):.{1 if args.bulk else 0}f} |")


if __name__ == "__main__":
    main()
