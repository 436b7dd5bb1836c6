"""Drain plain jobs with one worker: this checkout's pgqueue against another's, in interleaved rounds.

    git archive <rev> pgqueue | tar -x -C /tmp/pgq-old          # another version's pgqueue package
    .venv/bin/python benchmarks/drain_ab.py --old /tmp/pgq-old --jobs 20000 --rounds 6

Each round, for each variant in turn (the order alternates), a fresh process with that variant's pgqueue
first on sys.path empties the tables, enqueues ``--jobs`` jobs of ``benchjobs.f`` (enqueue_many: COPY, not
timed), then times ``Worker(concurrency=1).work(burst=True)``: one supervisor and one child process, from
the first claim to the last outcome recorded. Both variants use one scratch database (this checkout's
schema, which must be the other's too). Reports each variant's median jobs/s, the median per-round ratio,
and the worker's client CPU per job (supervisor and child process, user + system, from getrusage): on a
shared machine whose speed drifts, wall-clock rates swing by 2x from round to round, CPU time much less.

``--new-worker JSON`` gives the new variant's Worker more keyword arguments, e.g. ``'{"metrics_port": 0}'``
to measure what serving metrics costs (with ``--old`` a copy of this very checkout's package).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "drivers"))


def child(root: str, dsn: str, jobs: int, worker_args: str = "{}") -> None:
    sys.path.insert(0, root)
    import psycopg

    import pgqueue

    assert Path(pgqueue.__file__).resolve().is_relative_to(Path(root).resolve()), pgqueue.__file__
    import benchjobs

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE pgqueue.jobs, pgqueue.workers")
    queue = pgqueue.Queue("bench", dsn=dsn)
    queue.enqueue_many(pgqueue.Queue.prepare_data(benchjobs.f, args=(i,)) for i in range(jobs))
    worker = pgqueue.Worker(["bench"], dsn=dsn, concurrency=1, **json.loads(worker_args))
    cpu = _cpu()
    started = time.perf_counter()
    worker.work(burst=True)  # its child process has exited and been waited for when this returns
    elapsed = time.perf_counter() - started
    cpu = _cpu() - cpu
    with psycopg.connect(dsn, autocommit=True) as conn:
        done = conn.execute("SELECT count(*) FROM pgqueue.jobs WHERE status = 'finished'").fetchone()[0]
    assert done == jobs, f"{done} of {jobs} jobs finished"
    print(jobs / elapsed, cpu / jobs * 1e6)


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres", help="admin DSN")
    p.add_argument("--old", help="a folder holding another version's pgqueue package (required)")
    p.add_argument("--jobs", type=int, default=20000)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--new-worker", default="{}", metavar="JSON", help="more Worker arguments for the new variant")
    p.add_argument("--child", nargs=4, metavar=("ROOT", "DSN", "JOBS", "WORKER"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]), args.child[3])
        return
    if not args.old:
        p.error("--old is required")

    import pgutil

    import pgqueue

    variants = {"new": str(HERE.parent), "old": str(Path(args.old).resolve())}
    rates: dict[str, list[float]] = {name: [] for name in variants}
    cpus: dict[str, list[float]] = {name: [] for name in variants}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE / "drivers"), os.environ.get("PYTHONPATH", "")])}
    with pgutil.bench_database(args.pg, f"bench_drain_ab_{os.getpid()}") as dsn:
        pgqueue.migrate(dsn)
        for r in range(args.rounds):
            order = list(variants) if r % 2 == 0 else list(reversed(variants))
            for name in order:
                worker_args = args.new_worker if name == "new" else "{}"
                out = subprocess.run([sys.executable, __file__, "--child", variants[name], dsn, str(args.jobs),
                                      worker_args], env=env, check=True, capture_output=True, text=True).stdout
                rate, cpu = map(float, out.strip().splitlines()[-1].split())
                rates[name].append(rate)
                cpus[name].append(cpu)
            print(f"round {r + 1}: " + ", ".join(f"{n} {rates[n][-1]:.0f} jobs/s {cpus[n][-1]:.1f} us CPU/job"
                                                 for n in variants), flush=True)
    ratios = sorted(n / o for n, o in zip(rates["new"], rates["old"], strict=True))
    q1, q3 = ratios[len(ratios) // 4], ratios[3 * len(ratios) // 4]
    print(f"{args.rounds} interleaved rounds, drain of {args.jobs} plain jobs, one worker, concurrency 1")
    print("| Variant | jobs/s (median) | worker CPU us per job (median, IQR) |")
    print("|---|---|---|")
    for name in variants:
        c = sorted(cpus[name])
        print(f"| {name} | {statistics.median(rates[name]):.0f} | {statistics.median(c):.1f} "
              f"({c[len(c) // 4]:.1f}-{c[3 * len(c) // 4]:.1f}) |")
    print(f"jobs/s new / old per round: median {statistics.median(ratios):.3f} (IQR {q1:.3f}-{q3:.3f})")


if __name__ == "__main__":
    main()
