"""What one scrape of `pgqueue metrics` costs (pgqueue.metrics.DatabaseCollector), with a big history.

    .venv/bin/python benchmarks/metrics_scrape.py [--history 1000000] [--live 10000] [--scrapes 50]

In a scratch database: ``--history`` ended jobs (finished, over 10 queues), ``--live`` live ones (queued,
a tenth scheduled for later, 1% deferred, 1% running under a live worker), VACUUM ANALYZE, then ``--scrapes``
scrapes, each what Prometheus triggers (the collector's transaction: live jobs by queue and status, live
workers), timed one by one. Then the same with the statistics the planner would have if they were taken while
the whole history was still queued (the case the scrape's `enable_seqscan = off` is for), and EXPLAIN
(ANALYZE, BUFFERS) of the jobs statement: the pages it touched. Run it again with ``--live 1000000`` for a
backlog of a million jobs, whose count no index can spare.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "drivers"))
sys.path.insert(0, str(HERE.parent))


def fill(dsn: str, history: int, live: int) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("""
            INSERT INTO pgqueue.jobs (id, queue, func_name, status, attempts, claim_count, started_at, ended_at)
            SELECT 'h' || i, 'q' || (i %% 10), 'tasks.f', 'finished', 1, 1, now() - interval '1 hour', now()
            FROM generate_series(1, %s) i""", (history,))
        worker = conn.execute("""
            INSERT INTO pgqueue.workers (name, hostname, pid, queues, concurrency, lease_seconds)
            VALUES ('bench', 'h', 1, '{q0}', 1, 3600) RETURNING id""").fetchone()[0]  # type: ignore[index]
        conn.execute("""
            INSERT INTO pgqueue.jobs (id, queue, func_name, status, scheduled_at, depends_on, worker_id, claim_count)
            SELECT 'l' || i, 'q' || (i %% 10), 'tasks.f',
                   CASE WHEN i %% 100 = 1 THEN 'deferred' WHEN i %% 100 = 2 THEN 'running'
                        WHEN i %% 10 = 3 THEN 'scheduled' ELSE 'queued' END::pgqueue.job_status,
                   CASE WHEN i %% 10 = 3 THEN now() + interval '1 hour' ELSE now() END,
                   CASE WHEN i %% 100 = 1 THEN ARRAY['h1'] ELSE '{}' END,
                   CASE WHEN i %% 100 = 2 THEN %s::bigint END, CASE WHEN i %% 100 = 2 THEN 1 ELSE 0 END
            FROM generate_series(1, %s) i""", (worker, live))


def scrape_times(dsn: str, scrapes: int) -> list[float]:
    from pgqueue.metrics import DatabaseCollector

    collector = DatabaseCollector(dsn)
    list(collector.collect())  # connect, prepare
    times = []
    for _ in range(scrapes):
        started = time.perf_counter()
        families = list(collector.collect())
        times.append(time.perf_counter() - started)
        assert families[0].samples[0].value == 1, "the scrape could not read the database"
    collector.close()
    return times


def explain(dsn: str) -> str:
    import psycopg

    from pgqueue.sql import q

    with psycopg.connect(dsn) as conn:
        conn.execute(q("metrics_settings"), {"statement_timeout": "60000"})
        plan = [r[0] for r in conn.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + q("metrics_jobs")).fetchall()]
    return "\n".join(plan)


def report(label: str, times: list[float]) -> None:
    ms = sorted(t * 1000 for t in times)
    print(f"| {label} | {statistics.median(ms):.2f} | {ms[int(len(ms) * 0.95) - 1]:.2f} | {ms[-1]:.2f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres", help="admin DSN")
    p.add_argument("--history", type=int, default=1_000_000, help="ended jobs in the table")
    p.add_argument("--live", type=int, default=10_000, help="live jobs (queued, scheduled, deferred, running)")
    p.add_argument("--scrapes", type=int, default=50)
    args = p.parse_args()

    import pgutil

    import pgqueue

    with pgutil.bench_database(args.pg, f"bench_metrics_{os.getpid()}") as dsn:
        pgqueue.migrate(dsn)
        started = time.perf_counter()
        fill(dsn, args.history, args.live)
        pgutil.settle(dsn)
        print(f"{args.history:,} ended jobs and {args.live:,} live ones written in "
              f"{time.perf_counter() - started:.0f} s")
        print("| statistics | scrape ms (median) | p95 | max |")
        print("|---|---|---|---|")
        report("fresh (VACUUM ANALYZE)", scrape_times(dsn, args.scrapes))
        # Statistics that say every job is queued (as if taken before the history ended): a planner free to
        # choose would scan the table.
        pgutil.execute(dsn, "UPDATE pgqueue.jobs SET status = 'queued', ended_at = NULL, attempts = 0 "
                            "WHERE status = 'finished'", "ANALYZE pgqueue.jobs",
                       "UPDATE pgqueue.jobs SET status = 'finished', ended_at = now(), attempts = 1 "
                       "WHERE id LIKE 'h%'", "VACUUM pgqueue.jobs")
        report("stale (all queued)", scrape_times(dsn, args.scrapes))
        print()
        print(explain(dsn))


if __name__ == "__main__":
    main()
