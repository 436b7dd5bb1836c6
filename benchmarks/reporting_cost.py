"""What the reporting views, the queries of docs/reporting.md and the statements of `pgqueue jobs`, `show`,
`purge` and `doctor` cost on a big history: a million jobs by default.

    .venv/bin/python benchmarks/reporting_cost.py [--pg URL] [--jobs 1000000] [--days 7] [--keep]

A database of its own (created on the server of --pg, dropped at the end unless --keep) gets pgqueue's
schema and, by SQL, --jobs ended jobs spread evenly over the last --days days (1 in 50 failed, 1 in 200
canceled, the rest finished; five queues, ten functions, UUIDv7-shaped ids in enqueue order) and a backlog
of 1,000 queued, 100 scheduled, 50 deferred and 20 running jobs, then VACUUM ANALYZE. Each statement then
runs five times; the table shows the median time, the plan's top node and whether the plan reads
pgqueue.jobs whole (a sequential scan). Times are of this machine and its load: compare them with each
other, and with the number of rows each one reads, not with another machine's.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pgqueue  # noqa: E402
from pgqueue.sql import q  # noqa: E402

FILL = """
INSERT INTO pgqueue.jobs (id, queue, func_name, args, status, enqueued_at, scheduled_at, started_at, ended_at,
                          attempts, claim_count, worker_id, worker_name, result, exc_info, errors)
SELECT substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-7' || substr(r, 1, 3) || '-8' || substr(r, 4, 3) || '-'
           || substr(r, 7, 12),
       'q' || (i %% 5), 'tasks.f' || (i %% 10), jsonb_build_array(i), s::pgqueue.job_status, t, t,
       t + interval '5 ms', t + make_interval(secs => 0.01 + (i %% 100) / 50.0), 1, 1, 1, 'w1',
       CASE WHEN s = 'finished' THEN to_jsonb(i) END,
       CASE WHEN s = 'failed' THEN 'Traceback (most recent call last):\nValueError: boom' END,
       CASE WHEN s = 'failed' THEN jsonb_build_array(jsonb_build_object(
           'attempt', 1, 'type', 'ValueError', 'message', 'boom', 'at', t, 'traceback', 'Traceback...'))
            ELSE '[]' END
FROM (SELECT i, now() - make_interval(secs => (%(n)s - i) * (%(days)s * 86400.0 / %(n)s)) AS t,
             CASE WHEN i %% 50 = 7 THEN 'failed' WHEN i %% 200 = 1 THEN 'canceled' ELSE 'finished' END AS s,
             md5(i::text) AS r
      FROM generate_series(1, %(n)s) i) g
CROSS JOIN LATERAL (SELECT lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') AS h) x
"""

BACKLOG = """
INSERT INTO pgqueue.jobs (id, queue, func_name, status, enqueued_at, scheduled_at, depends_on, started_at,
                          attempts, claim_count, worker_id)
SELECT 'live-' || i, 'q' || (i % 5), 'tasks.f' || (i % 10),
       CASE WHEN i <= 1000 THEN 'queued' WHEN i <= 1100 THEN 'scheduled' WHEN i <= 1150 THEN 'deferred'
            ELSE 'running' END::pgqueue.job_status,
       now() - interval '10 minutes',
       CASE WHEN i BETWEEN 1001 AND 1100 THEN now() + interval '1 hour' ELSE now() - interval '10 minutes' END,
       CASE WHEN i BETWEEN 1101 AND 1150 THEN ARRAY['live-1'] ELSE '{}' END,
       CASE WHEN i > 1150 THEN now() - interval '1 minute' END,
       (i > 1150)::int, (i > 1150)::int, CASE WHEN i > 1150 THEN 1 END
FROM generate_series(1, 1170) i
"""


def reporting_queries() -> list[tuple[str, str, dict[str, Any]]]:
    """The ```sql blocks of docs/reporting.md, each named by the heading above it."""
    text = (ROOT / "docs" / "reporting.md").read_text()
    found = []
    heading = "intro"
    for part in re.split(r"(^#+ .*$)", text, flags=re.M):
        if part.startswith("#"):
            heading = part.lstrip("# ").strip()
            continue
        for i, block in enumerate(re.findall(r"```sql\n(.*?)```", part, re.S)):
            found.append((f"reporting.md: {heading}" + (f" ({i + 1})" if i else ""), block, {}))
    for period in ("1 day", "7 days"):  # the window is the function's cost
        found.append((f"runtime_percentiles('{period}')",
                      f"SELECT * FROM pgqueue.runtime_percentiles(interval '{period}')", {}))
    return found


def statements(now: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """pgqueue's own statements of `pgqueue jobs`, `show`, `purge` and `doctor`, with typical arguments.
    Those not written yet in this checkout are left out."""
    listing = {"queues": None, "function": None, "since": None, "since_seconds": None, "until": None,
               "until_seconds": None, "after": None, "limit": 51, "scan": 10_000,
               **{s: True for s in ("scheduled", "queued", "deferred", "running", "finished", "failed", "canceled")}}
    ended = {**listing, "scheduled": False, "queued": False, "deferred": False, "running": False}
    wanted: list[tuple[str, str, dict[str, Any]]] = [
        ("jobs: newest 50", "list_jobs", listing),
        ("jobs --queue q3 --function tasks.f3", "list_jobs", {**listing, "queues": ["q3"], "function": "tasks.f3"}),
        ("jobs --status deferred", "list_jobs", {**listing, **{s: s == "deferred" for s in (
            "scheduled", "queued", "deferred", "running", "finished", "failed", "canceled")}}),
        ("jobs --status queued", "list_live_jobs", {**listing, **{s: s == "queued" for s in (
            "scheduled", "queued", "deferred", "running", "finished", "failed", "canceled")}}),
        ("jobs --status running", "list_live_jobs", {**listing, **{s: s == "running" for s in (
            "scheduled", "queued", "deferred", "running", "finished", "failed", "canceled")}}),
        ("jobs --status failed", "list_ended_jobs", {**ended, "finished": False, "canceled": False}),
        ("jobs --status failed --since 1h", "list_ended_jobs",
         {**ended, "finished": False, "canceled": False, "since_seconds": 3600}),
        ("jobs --status finished --queue q2 (page 2 of 50)", "list_ended_jobs", {**ended, "queues": ["q2"]}),
        ("show JOB_ID", "job_details", {"id": "live-1"}),
        ("purge --status finished --older-than 6d: count", "purge_count",
         {"statuses": ["finished"], "cutoff": now, "queue": None}),
        ("doctor: sessions", "health_sessions", {"max_age": 300}),
        ("doctor: stuck jobs", "health_stuck_jobs", {"margin": 60}),
        ("doctor: lost workers", "health_lost_workers", {}),
        ("doctor: table and claim index", "health_table", {}),
    ]
    from pgqueue.sql import QUERIES

    return [(label, q(name), params) for label, name, params in wanted if name in QUERIES]


def measure(conn: psycopg.Connection[Any], query: str, params: dict[str, Any], rounds: int) -> tuple[float, str, bool]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        conn.execute(query, params, prepare=False).fetchall()
        times.append(time.perf_counter() - start)
    plan = [r[0] for r in conn.execute(sql.SQL("EXPLAIN ") + sql.SQL(query), params, prepare=False)]  # type: ignore[arg-type]
    top = re.sub(r"\s+\(cost=.*", "", plan[0]).strip()
    whole = any("Seq Scan on jobs" in line for line in plan)
    return statistics.median(times) * 1000, top, whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=7)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="Keep the database (its URL is printed).")
    args = parser.parse_args()

    name = f"pgqueue_reporting_cost_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.pg, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(args.pg, dbname=name)
    try:
        pgqueue.migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            start = time.perf_counter()
            conn.execute(FILL, {"n": args.jobs, "days": args.days})
            conn.execute(BACKLOG)
            conn.execute("VACUUM ANALYZE pgqueue.jobs")
            size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('pgqueue.jobs'))").fetchone()
            print(f"{args.jobs:,} ended jobs over {args.days:g} days and a backlog of 1,170 in "
                  f"{time.perf_counter() - start:.0f} s; pgqueue.jobs with its indexes: {size[0] if size else '?'}")
            now = conn.execute("SELECT now() - interval '6 days'").fetchone()[0]  # type: ignore[index]
            print("\n| Statement | Median ms | Plan | Reads all of pgqueue.jobs |\n| --- | ---: | --- | --- |")
            for label, query, params in reporting_queries() + statements(now):
                ms, top, whole = measure(conn, query, params, args.rounds)
                print(f"| {label} | {ms:.1f} | {top} | {'yes' if whole else 'no'} |", flush=True)
    finally:
        if args.keep:
            print(f"\nkept: {url}")
        else:
            pgqueue._db.close_shared_connections()
            with psycopg.connect(args.pg, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


if __name__ == "__main__":
    main()
