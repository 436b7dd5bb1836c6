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
from pgqueue.sql import q, statement  # noqa: E402

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


STATUSES = ("scheduled", "queued", "deferred", "running", "finished", "failed", "canceled")


def _only(*statuses: str) -> dict[str, bool]:
    return {s: s in statuses for s in STATUSES}


def statements(ended_at: Any, failed_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """pgqueue's own statements of `pgqueue jobs`, `show`, `purge` and `doctor`, with typical arguments:
    (label, statement name, parameters)."""
    listing = {"queues": None, "function": None, "since": None, "since_seconds": None, "until": None,
               "until_seconds": None, "after": None, "after_ended_at": None, "limit": 51, "scan": 10_000,
               **_only(*STATUSES)}
    return [
        ("jobs (the newest 50)", "list_jobs", listing),
        ("jobs --queue q3 --function tasks.f3", "list_jobs", {**listing, "queues": ["q3"], "function": "tasks.f3"}),
        ("jobs --function nothing (examines 10,000)", "list_jobs", {**listing, "function": "nothing"}),
        ("jobs --status deferred (examines 10,000)", "list_jobs", {**listing, **_only("deferred")}),
        ("jobs --function nothing --after ID (a page in the middle)", "list_jobs",
         {**listing, "function": "nothing", "after": failed_id}),
        ("jobs: how far a page that found too few went (10,000 ids)", "list_walked",
         {"after": failed_id, "scan": 10_000}),
        ("jobs --status queued", "list_live_jobs", {**listing, **_only("queued")}),
        ("jobs --status running", "list_live_jobs", {**listing, **_only("running")}),
        ("jobs --status scheduled --status queued --status running", "list_live_jobs",
         {**listing, **_only("scheduled", "queued", "running")}),
        ("jobs --status failed", "list_ended_jobs", {**listing, **_only("failed")}),
        ("jobs --status failed --since 1h", "list_ended_jobs", {**listing, **_only("failed"), "since_seconds": 3600}),
        ("jobs --status failed --until 3d", "list_ended_jobs",
         {**listing, **_only("failed"), "until_seconds": 3 * 86400}),
        ("jobs --status finished --queue q2 --function tasks.f7", "list_ended_jobs",
         {**listing, **_only("finished"), "queues": ["q2"], "function": "tasks.f7"}),
        ("jobs --status failed --after ID (a page in the middle)", "list_ended_jobs",
         {**listing, **_only("failed"), "after": failed_id, "after_ended_at": ended_at}),
        ("show JOB_ID", "job_details", {"id": failed_id}),
        ("purge --status finished --older-than 6d: the count", "purge_count",
         {**_only("finished"), "older_than": 6 * 86400, "queue": None}),
        ("purge: one batch of 1,000 (rolled back)", "purge_batch",
         {**_only("finished"), "cutoff": ended_at, "queue": None, "limit": 1000}),
        ("doctor: sessions", "health_sessions", {"max_age": 300}),
        ("doctor: visibility", "health_visibility", {}),
        ("doctor: prepared transactions", "health_prepared", {"max_age": 300}),
        ("doctor: replication slots", "health_slots", {"max_xid_age": 1_000_000}),
        ("doctor: pgqueue.jobs and its claim index", "health_table", {}),
        ("doctor: lost workers", "health_lost_workers", {}),
        ("doctor: stuck jobs", "health_stuck_jobs", {"margin": 60}),
    ]


def measure(conn: psycopg.Connection[Any], query: str, params: dict[str, Any], rounds: int) -> tuple[float, str, bool]:
    """A docs query: its median time, its plan's top node, whether the plan reads pgqueue.jobs whole."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        conn.execute(query, params, prepare=False).fetchall()
        times.append(time.perf_counter() - start)
    plan = [r[0] for r in conn.execute(sql.SQL("EXPLAIN ") + sql.SQL(query), params, prepare=False)]  # type: ignore[arg-type]
    return statistics.median(times) * 1000, _top(plan), any("Seq Scan on jobs" in line for line in plan)


_prepared: list[bytes] = []


def measure_statement(conn: psycopg.Connection[Any], name: str, params: dict[str, Any],
                      rounds: int) -> tuple[float, str, bool]:
    """One of pgqueue's statements, as pgqueue runs it: prepared, with a generic plan (own_settings), in a
    transaction rolled back (purge_batch deletes)."""
    stmt, text, names = statement(name)
    bench = b"bench_" + stmt + b"_" + str(len(_prepared)).encode()  # each label its own: the plans differ
    _prepared.append(bench)
    if conn.pgconn.prepare(bench, text).status != psycopg.pq.ExecStatus.COMMAND_OK:
        raise RuntimeError(conn.pgconn.error_message.decode())
    execute = sql.SQL("EXECUTE {}").format(sql.Identifier(bench.decode()))
    if names:
        execute += sql.SQL("({})").format(sql.SQL(", ").join(sql.Literal(params[n]) for n in names))
    times = []
    for _ in range(rounds):
        with conn.transaction(force_rollback=True):
            start = time.perf_counter()
            conn.execute(execute).fetchall()
            times.append(time.perf_counter() - start)
    with conn.transaction(force_rollback=True):
        plan = [r[0] for r in conn.execute(sql.SQL("EXPLAIN ") + execute)]
    return statistics.median(times) * 1000, _top(plan), any("Seq Scan on jobs" in line for line in plan)


def _top(plan: list[str]) -> str:
    return re.sub(r"\s+\(cost=.*", "", plan[0]).strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=7)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="Keep the database (its URL is printed).")
    args = parser.parse_args()

    database = f"pgqueue_reporting_cost_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.pg, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    url = psycopg.conninfo.make_conninfo(args.pg, dbname=database)
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
            print("\n| Query | Median ms | Plan | Reads all of pgqueue.jobs |\n| --- | ---: | --- | --- |")
            for label, query, params in reporting_queries():
                ms, top, whole = measure(conn, query, params, args.rounds)
                print(f"| {label} | {ms:.1f} | {top} | {'yes' if whole else 'no'} |", flush=True)
            conn.execute(q("own_settings"))  # as pgqueue's own connections: generic plans
            middle = conn.execute(  # a page of failures in the middle: the 500th newest, or the median
                "SELECT ended_at, id FROM pgqueue.jobs WHERE status = 'failed' ORDER BY ended_at DESC LIMIT 1 "
                "OFFSET least(500, (SELECT count(*) FROM pgqueue.jobs WHERE status = 'failed') / 2)").fetchone()
            assert middle is not None
            print("\n| Statement | Median ms | Plan | Reads all of pgqueue.jobs |\n| --- | ---: | --- | --- |")
            for label, name, params in statements(*middle):
                ms, top, whole = measure_statement(conn, name, params, args.rounds)
                print(f"| {label} | {ms:.1f} | {top} | {'yes' if whole else 'no'} |", flush=True)
    finally:
        if args.keep:
            print(f"\nkept: {url}")
        else:
            pgqueue._db.close_shared_connections()
            with psycopg.connect(args.pg, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


if __name__ == "__main__":
    main()
