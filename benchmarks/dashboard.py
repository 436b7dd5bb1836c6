"""Time every page of the web dashboard on a big history: 1,000,000 ended jobs (as benchmarks/run.py's
history workloads insert them, spread over the last week, one in ten failed) plus live ones (queued,
scheduled, deferred, running, with their workers), then `pgqueue dashboard` in a process of its own and a
few requests per page, timed from this process (the whole HTTP round trip: queries, template, transfer).

    .venv/bin/python benchmarks/dashboard.py                    # 1,000,000 ended jobs, 5 requests a page
    .venv/bin/python benchmarks/dashboard.py --history 100000 --requests 3 --keep
    .venv/bin/python benchmarks/dashboard.py --reuse            # the database a --keep run left
    .venv/bin/python benchmarks/dashboard.py --explain          # and each statement's plan
    .venv/bin/python benchmarks/dashboard.py --spread 3600      # the million ended within the last hour

It creates the database `pgqueue_dashboard_bench` on the server of --pg (dropped at the end unless
--keep), and prints one line per page: median and slowest time. Exit status 1 if a page's median is
over --budget milliseconds (300). Needs the dashboard extra (pip install -e '.[dashboard]').
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
DB = "pgqueue_dashboard_bench"
QUEUES = ("default", "emails", "reports", "high")


def fill(dsn: str, history: int, spread: int = 604_800) -> None:
    """``history`` ended jobs over the last ``spread`` seconds (a week) in four queues (one in ten failed with
    an error, one in fifty canceled), then live ones: 2,000 queued, 300 scheduled, 100 deferred, 8 running on
    two workers."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        t = time.perf_counter()
        conn.execute("""
            INSERT INTO pgqueue.jobs (id, queue, func_name, args, status, result, exc_info, errors, attempts,
                                      worker_name, enqueued_at, scheduled_at, started_at, ended_at)
            SELECT 'hist-' || g, (%(queues)s::text[])[1 + (g / 10) %% 4], 'benchjobs.f' || (g %% 7),
                   jsonb_build_array(g), st::pgqueue.job_status,
                   CASE WHEN st = 'finished' THEN to_jsonb(g) END,
                   CASE WHEN st = 'failed'
                        THEN E'Traceback (most recent call last):\\n  File "benchjobs.py"\\nValueError: ' || g END,
                   CASE WHEN st = 'failed' THEN jsonb_build_array(jsonb_build_object(
                       'attempt', 1, 'worker', 'history', 'at', ts, 'type', 'ValueError', 'message', g::text,
                       'traceback', E'Traceback (most recent call last):\\nValueError: ' || g)) ELSE '[]' END,
                   1, 'history', ts, ts, ts, ts + interval '1 millisecond'
            FROM generate_series(1, %(history)s) AS g,
                 LATERAL (SELECT now() - (g %% %(spread)s) * interval '1 second',
                                 CASE WHEN g %% 10 = 0 THEN 'failed' WHEN g %% 50 = 1 THEN 'canceled'
                                      ELSE 'finished' END) AS t(ts, st)
        """, {"history": history, "queues": list(QUEUES), "spread": spread})
        print(f"inserted {history:,} ended jobs in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        workers = [conn.execute("INSERT INTO pgqueue.workers (name, hostname, pid, queues, concurrency, lease_seconds) "
                                "VALUES (%s, 'bench', %s, %s, 4, 3600) RETURNING id",
                                (f"bench.{i}", 1000 + i, list(QUEUES))).fetchone()[0] for i in range(2)]  # type: ignore[index]
        conn.execute("""
            INSERT INTO pgqueue.jobs (id, queue, func_name, args, status, scheduled_at, depends_on, worker_id,
                                      worker_name, claim_count, attempts, started_at)
            SELECT 'live-' || g, (%(queues)s::text[])[1 + g %% 4], 'benchjobs.live', jsonb_build_array(g),
                   st::pgqueue.job_status,
                   CASE WHEN st = 'scheduled' THEN now() + g * interval '1 second' ELSE now() END,
                   CASE WHEN st = 'deferred' THEN ARRAY['live-1'] ELSE '{}' END,
                   CASE WHEN st = 'running' THEN (%(workers)s::bigint[])[1 + g %% 2] END,
                   CASE WHEN st = 'running' THEN 'bench' END,
                   CASE WHEN st = 'running' THEN 1 ELSE 0 END, CASE WHEN st = 'running' THEN 1 ELSE 0 END,
                   CASE WHEN st = 'running' THEN now() END
            FROM generate_series(1, 2408) AS g,
                 LATERAL (SELECT CASE WHEN g <= 2000 THEN 'queued' WHEN g <= 2300 THEN 'scheduled'
                                      WHEN g <= 2400 THEN 'deferred' ELSE 'running' END) AS t(st)
        """, {"queues": list(QUEUES), "workers": workers})
        t = time.perf_counter()
        conn.execute("VACUUM ANALYZE pgqueue.jobs")
        print(f"VACUUM ANALYZE in {time.perf_counter() - t:.0f} s", file=sys.stderr)


def pages(dsn: str) -> dict[str, str]:
    """The pages timed: each kind, on the data fill() wrote."""
    with psycopg.connect(dsn) as conn:
        failed = conn.execute("SELECT id FROM pgqueue.jobs WHERE status = 'failed' LIMIT 1").fetchone()[0]  # type: ignore[index]
        deferred = conn.execute("SELECT id FROM pgqueue.jobs WHERE status = 'deferred' LIMIT 1").fetchone()[0]  # type: ignore[index]
    q = urllib.parse.urlencode
    return {
        "overview": "/",
        "queue (emails)": "/queue?" + q({"name": "emails"}),
        "queue (emails), failed jobs": "/queue?" + q({"name": "emails", "status": "failed"}),
        "jobs: queued": "/jobs?status=queued",
        "jobs: scheduled": "/jobs?status=scheduled",
        "jobs: running": "/jobs?status=running",
        "jobs: deferred": "/jobs?status=deferred",
        "jobs: finished": "/jobs?status=finished",
        "jobs: failed": "/jobs?status=failed",
        "jobs: canceled": "/jobs?status=canceled",
        "jobs: failed, queue and function": "/jobs?" + q({"status": "failed", "queue": "reports", "func": "f3"}),
        "jobs: finished, a function no job has": "/jobs?" + q({"status": "finished", "func": "nosuchfunction"}),
        "jobs: finished, a day ago": "/jobs?" + q({"status": "finished", "until": "24h"}),
        "job (failed)": "/job?" + q({"id": failed}),
        "job (deferred)": "/job?" + q({"id": deferred}),
        "workers": "/workers",
        "health": "/health",
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def time_pages(dsn: str, requests: int) -> list[tuple[str, float, float, int]]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-m", "pgqueue.cli", "dashboard", "--dsn", dsn, "--port", str(port),
                               "--read-only"], env=env, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/static/dashboard.css", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    output = server.stderr.read() if server.stderr else ""
                    raise SystemExit(f"the dashboard did not start:\n{output}") from None
                time.sleep(0.1)
        results = []
        for name, path in pages(dsn).items():
            urllib.request.urlopen(base + path, timeout=30).read()  # warm: connection, templates, plans
            times, size = [], 0
            for _ in range(requests):
                t = time.perf_counter()
                size = len(urllib.request.urlopen(base + path, timeout=30).read())
                times.append((time.perf_counter() - t) * 1000)
            results.append((name, statistics.median(times), max(times), size))
        return results
    finally:
        server.terminate()
        server.wait(10)


def explain(dsn: str) -> None:
    """Each overview statement's plan, with the dashboard's page settings (EXPLAIN ANALYZE)."""
    from pgqueue._store import dashboard as store
    from pgqueue.sql import q

    with psycopg.connect(dsn) as conn:
        store.begin_page(conn, 10_000)
        for name, params in [("dashboard_live_counts", {"queue": None}),
                             ("dashboard_failed_counts", {"queue": None, "limit": 10_001}),
                             ("dashboard_recent_ended", {"minutes": 60, "limit": 20_000}),
                             ("dashboard_workers", {"limit": 200, "jobs": 5})]:
            plan = conn.execute(b"EXPLAIN (ANALYZE, COSTS OFF) " + q(name).encode(), params).fetchall()
            print(f"\n-- {name}\n" + "\n".join(r[0] for r in plan))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres",
                   help="a role that may create databases")
    p.add_argument("--history", type=int, default=1_000_000, help="ended jobs (default 1,000,000)")
    p.add_argument("--spread", type=int, default=604_800,
                   help="seconds the ended jobs are spread over (default a week; 3600: all in the last hour)")
    p.add_argument("--requests", type=int, default=5, help="timed requests per page (default 5)")
    p.add_argument("--budget", type=float, default=300.0, help="milliseconds a page's median may take (300)")
    p.add_argument("--keep", action="store_true", help="keep the database for --reuse")
    p.add_argument("--reuse", action="store_true", help="use the database a --keep run left")
    p.add_argument("--explain", action="store_true", help="print the overview statements' plans")
    args = p.parse_args()
    dsn = psycopg.conninfo.make_conninfo(args.pg, dbname=DB)
    if not args.reuse:
        with psycopg.connect(args.pg, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB)))
        import pgqueue

        pgqueue.migrate(dsn)
        fill(dsn, args.history, args.spread)
    try:
        if args.explain:
            explain(dsn)
        results = time_pages(dsn, args.requests)
        with psycopg.connect(dsn) as conn:
            ended = conn.execute("SELECT count(*) FROM pgqueue.jobs WHERE ended_at IS NOT NULL").fetchone()[0]  # type: ignore[index]
            total = conn.execute("SELECT count(*) FROM pgqueue.jobs").fetchone()[0]  # type: ignore[index]
        print(f"\n{total:,} jobs ({ended:,} ended); {args.requests} requests per page after one to warm up\n")
        print(f"{'page':<42} {'median ms':>10} {'max ms':>8} {'bytes':>8}")
        for name, median, slowest, size in results:
            print(f"{name:<42} {median:>10.1f} {slowest:>8.1f} {size:>8,}")
        over = [name for name, median, _, _ in results if median > args.budget]
        if over:
            print(f"\nover {args.budget:g} ms: {', '.join(over)}")
            sys.exit(1)
    finally:
        if not args.keep:
            with psycopg.connect(args.pg, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB)))


if __name__ == "__main__":
    main()
