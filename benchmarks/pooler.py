"""What transaction-pooling mode costs: pgqueue direct to PostgreSQL (the default mode) against pgqueue in
transaction-pooling mode, direct and through a private PgBouncer in transaction mode (tests/servers.py).

    .venv/bin/python benchmarks/pooler.py                 # enqueue and claim, interleaved rounds
    .venv/bin/python benchmarks/pooler.py --drain 20000   # ... and a burst worker draining 20,000 jobs

Three variants, in alternating rounds in one process (as enqueue_ab.py does, so the machine's drift hits
each alike): ``direct`` (default mode: prepared statements, session settings), ``direct, pooling mode``
(unnamed statements, no session state: what the mode itself costs) and ``pgbouncer, pooling mode`` (what
the deployment costs: the mode and the pooler's hop). It measures one enqueue per transaction, and one
claim of ``--claim`` jobs from a queue of 20,000 (the claim alone is timed; the jobs are then marked
finished on another connection); with ``--drain N``, one burst worker process draining N no-op jobs, in
the first three rounds. A scratch database is created and dropped.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks" / "drivers"), str(ROOT / "tests")]
import benchjobs  # noqa: E402
import pgutil  # noqa: E402
from servers import start_pgbouncer  # noqa: E402

import pgqueue  # noqa: E402
from pgqueue import _db, _store  # noqa: E402

VARIANTS = {"direct": False, "direct, pooling mode": True, "pgbouncer, pooling mode": True}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres", help="admin DSN")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--per-round", type=int, default=300, help="enqueues (and claims) per round")
    p.add_argument("--claim", type=int, default=10, help="jobs per claim")
    p.add_argument("--drain", type=int, default=0, metavar="JOBS", help="also drain JOBS jobs per variant per round")
    args = p.parse_args()

    with pgutil.bench_database(args.pg, f"bench_pooler_{os.getpid()}") as dsn, start_pgbouncer(dsn) as bouncer:
        pgqueue.migrate(dsn)
        # Each variant its own URL, so its own cached connections, made in its mode (read at connect).
        urls = {"direct": dsn, "direct, pooling mode": psycopg.conninfo.make_conninfo(dsn, application_name="pooled"),
                "pgbouncer, pooling mode": bouncer.dsn(dsn)}
        enqueue = {name: _enqueuer(url, VARIANTS[name]) for name, url in urls.items()}
        claim = {name: _claimer(url, VARIANTS[name], dsn, args.claim) for name, url in urls.items()}
        results: dict[str, dict[str, list[float]]] = {"enqueue": {}, "claim": {}, "drain": {}}
        for r in range(args.rounds):
            for name in urls:
                results["enqueue"].setdefault(name, []).append(_timed(enqueue[name], args.per_round))
                results["claim"].setdefault(name, []).append(statistics.median(claim[name](i) for i in range(30)))
                if args.drain and r < 3:
                    results["drain"].setdefault(name, []).append(_drain(urls[name], VARIANTS[name], dsn, args.drain))
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("DELETE FROM pgqueue.jobs WHERE queue = 'bench'")
        _db.close_shared_connections()
    print(f"{args.rounds} interleaved rounds; PgBouncer {bouncer.version}, pool_size {bouncer.pool_size}")
    print(f"| Variant | enqueue µs (median) | enqueues/s | claim of {args.claim}, µs (median) | drain jobs/s |")
    print("|---|---|---|---|---|")
    for name in urls:
        enq, cl = statistics.median(results["enqueue"][name]), statistics.median(results["claim"][name])
        drain = results["drain"].get(name)
        print(f"| {name} | {enq:.0f} | {1e6 / enq:,.0f} | {cl:.0f} | "
              f"{f'{statistics.median(drain):,.0f}' if drain else '-'} |")


def _mode(pooled: bool) -> None:
    os.environ["PGQUEUE_TRANSACTION_POOLING"] = "1" if pooled else "0"


def _enqueuer(url: str, pooled: bool) -> Callable[[int], Any]:
    _mode(pooled)
    queue = pgqueue.Queue("bench", dsn=url)
    for i in range(50):  # the connection (made now, in this mode), prepared statements, caches
        queue.enqueue(benchjobs.f, i)
    return lambda i: queue.enqueue(benchjobs.f, i)


def _claimer(url: str, pooled: bool, dsn: str, limit: int) -> Callable[[int], float]:
    """One claim of ``limit`` jobs on a queue of 20,000; returns the µs it took. The jobs claimed are then
    marked finished (untimed), as a worker would."""
    _mode(pooled)
    conn = _db.connect(url)
    _store.worker_plan_settings(conn)  # as the worker's connection (nothing in pooling mode)
    queue = f"claims {url}"
    pgqueue.Queue(queue, dsn=dsn).enqueue_many(pgqueue.Queue.prepare_data(benchjobs.f, args=(i,)) for i in range(20000))
    admin = psycopg.connect(dsn, autocommit=True)
    admin.execute("ANALYZE pgqueue.jobs")
    wid = admin.execute("INSERT INTO pgqueue.workers (name, hostname, pid, queues, concurrency, lease_seconds) "
                        "VALUES ('bench', 'h', 1, '{}', 1, 3600) RETURNING id").fetchone()[0]  # type: ignore[index]

    def claim(i: int) -> float:
        t = time.perf_counter()
        rows = _store.claim(conn, queue=queue, limit=limit, start_now=limit, worker_id=wid, worker_name="bench")
        elapsed = (time.perf_counter() - t) * 1e6
        assert len(rows) == limit, "the claim queue ran out: fewer rounds, or a smaller --claim"
        admin.execute("UPDATE pgqueue.jobs SET status = 'finished', ended_at = now() WHERE id = ANY (%s)",
                      ([r.id for r in rows],))
        return elapsed

    for i in range(10):
        claim(i)
    return claim


def _timed(fn: Callable[[int], Any], n: int) -> float:
    """µs per call of ``n`` calls."""
    t = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - t) / n * 1e6


def _drain(url: str, pooled: bool, dsn: str, jobs: int) -> float:
    """Jobs/s of one burst worker (a process of its own, as `pgqueue worker --burst`) draining ``jobs``."""
    import subprocess

    prepare = pgqueue.Queue.prepare_data
    pgqueue.Queue("drain", dsn=dsn).enqueue_many(prepare(benchjobs.f, args=(i,)) for i in range(jobs))
    env = {**os.environ, "PGQUEUE_TRANSACTION_POOLING": "1" if pooled else "0",
           "PYTHONPATH": str(ROOT / "benchmarks" / "drivers")}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pgqueue.cli", "worker", "drain", "--burst", "--quiet", "--dsn", url],
                   env=env, check=True)
    rate = jobs / (time.perf_counter() - t)
    with psycopg.connect(dsn, autocommit=True) as conn:
        left = conn.execute("SELECT count(*) FROM pgqueue.jobs WHERE queue = 'drain' AND status <> 'finished'")
        assert left.fetchone() == (0,), "the drain left jobs unfinished"
        conn.execute("DELETE FROM pgqueue.jobs WHERE queue = 'drain'")
    return rate


if __name__ == "__main__":
    main()
