"""The reporting views of revision 0006 (docs/reporting.md): what each one counts, and that none of them
reads the whole history to count it."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from pgqueue import Queue, suspend


def _jobs(db: psycopg.Connection[Any], rows: list[tuple[str, str, str, str]]) -> None:
    """Jobs as (id, queue, status, SQL expression of their time): enqueued, scheduled, started (for running and
    ended jobs, 2 s before it) and ended (for ended jobs) then."""
    for id, queue, status, at in rows:
        ended = status in ("finished", "failed", "canceled")
        db.execute(
            f"INSERT INTO pgqueue.jobs (id, queue, func_name, status, enqueued_at, scheduled_at, started_at, "
            f"ended_at, worker_id, claim_count, depends_on) VALUES (%s, %s, %s, %s, {at}, {at}, "
            f"CASE WHEN %s THEN {at} - interval '2 seconds' END, CASE WHEN %s THEN {at} END, %s, %s, %s)",
            [id, queue, f"tasks.{queue}", status, ended or status == "running", ended,
             7 if status == "running" else None, 1 if status == "running" else 0,
             ["dep"] if status == "deferred" else []])


def test_queue_overview_counts_live_jobs_and_the_last_hour(db: psycopg.Connection[Any]) -> None:
    _jobs(db, [
        ("a-q1", "a", "queued", "now() - interval '5 minutes'"),
        ("a-q2", "a", "queued", "now() - interval '1 minute'"),
        ("a-due", "a", "scheduled", "now() - interval '10 minutes'"),  # due: waiting longest
        ("a-later", "a", "scheduled", "now() + interval '1 hour'"),
        ("a-dep", "a", "deferred", "now()"),
        ("a-run", "a", "running", "now()"),
        ("a-f1", "a", "finished", "now() - interval '10 minutes'"),
        ("a-f2", "a", "finished", "now() - interval '59 minutes'"),
        ("a-old", "a", "finished", "now() - interval '2 hours'"),  # before the last hour
        ("a-x", "a", "failed", "now() - interval '1 minute'"),
        ("a-c", "a", "canceled", "now() - interval '1 minute'"),
        ("b-old", "b", "failed", "now() - interval '3 hours'"),  # b: nothing live, nothing lately
        ("c-f", "c", "finished", "now()"),
    ])
    rows = db.execute("SELECT queue, queued, scheduled, deferred, running, finished_last_hour, failed_last_hour, "
                      "canceled_last_hour, round(extract(epoch FROM oldest_queued_age) / 60), paused "
                      "FROM pgqueue.queue_overview ORDER BY queue").fetchall()
    assert rows == [("a", 2, 2, 1, 1, 2, 1, 1, 10, False), ("c", 0, 0, 0, 0, 1, 0, 0, None, False)]
    Queue("c").pause()
    assert db.execute("SELECT queue, paused FROM pgqueue.queue_overview ORDER BY queue").fetchall() == [
        ("a", False), ("c", True)]
    suspend()  # no worker takes any job: every queue is paused
    assert db.execute("SELECT queue, paused FROM pgqueue.queue_overview ORDER BY queue").fetchall() == [
        ("a", True), ("c", True)]


def test_throughput_has_each_minute_of_the_last_hour_for_each_queue(db: psycopg.Connection[Any]) -> None:
    _jobs(db, [
        ("now-1", "a", "finished", "now()"), ("now-2", "a", "finished", "now()"), ("now-3", "a", "failed", "now()"),
        ("m30", "b", "failed", "date_trunc('minute', now()) - interval '30 minutes'"),
        ("m59", "b", "finished", "date_trunc('minute', now()) - interval '59 minutes'"),
        ("m60", "b", "finished", "date_trunc('minute', now()) - interval '60 minutes'"),  # outside
        ("gone", "c", "canceled", "now()"),  # neither finished nor failed
    ])
    rows = db.execute("SELECT queue, count(*), sum(finished), sum(failed), "
                      "count(*) FILTER (WHERE finished + failed > 0) FROM pgqueue.throughput "
                      "GROUP BY queue ORDER BY queue").fetchall()
    assert rows == [("a", 60, 2, 1, 1), ("b", 60, 1, 1, 2)]
    latest = db.execute("SELECT minute = date_trunc('minute', now()), finished, failed FROM pgqueue.throughput "
                        "WHERE queue = 'a' ORDER BY minute DESC LIMIT 1").fetchone()
    assert latest == (True, 2, 1)


def test_runtime_percentiles_per_function_over_the_period(db: psycopg.Connection[Any]) -> None:
    for i in range(1, 101):  # tasks.f ran 1, 2, ..., 100 seconds
        db.execute("INSERT INTO pgqueue.jobs (id, queue, func_name, status, started_at, ended_at) "
                   "VALUES (%s, 'q', 'tasks.f', 'finished', now() - make_interval(secs => %s), now())", [f"f{i}", i])
    _jobs(db, [("slow-old", "g", "finished", "now() - interval '2 hours'"),
               ("failed", "h", "failed", "now()")])
    assert db.execute("SELECT func_name, runs, mean_seconds, p50_seconds, p95_seconds, p99_seconds, max_seconds "
                      "FROM pgqueue.runtime_percentiles()").fetchall() == [
        ("tasks.f", 100, 50.5, 50.5, pytest.approx(95.05), pytest.approx(99.01), 100.0)]
    assert db.execute("SELECT func_name, runs, max_seconds FROM pgqueue.runtime_percentiles(interval '3 hours')"
                      ).fetchall() == [("tasks.f", 100, 100.0), ("tasks.g", 1, 2.0)]


@pytest.mark.parametrize("query", ["SELECT * FROM pgqueue.queue_overview", "SELECT * FROM pgqueue.throughput",
                                   "SELECT * FROM pgqueue.runtime_percentiles(interval '1 day')"])
def test_an_index_serves_each_part_of_the_views(db: psycopg.Connection[Any], query: str) -> None:
    """Each part of a view can be read through an index, so its cost follows the backlog and the window, not
    the history. On a small table the planner may still prefer to read it all (cheaper there; on a million
    jobs it takes the indexes: benchmarks/reporting_cost.py), so the check takes sequential scans off the
    table of choices: a plan without one proves the index paths exist."""
    db.execute("INSERT INTO pgqueue.jobs (id, queue, func_name, status, started_at, ended_at) "
               "SELECT 'old' || i, 'q' || i % 3, 'm.f', 'finished', now() - interval '30 days', "
               "now() - interval '30 days' FROM generate_series(1, 3000) i")
    db.execute("INSERT INTO pgqueue.jobs (id, queue, func_name, depends_on, status) "
               "SELECT 'new' || i, 'q' || i % 3, 'm.f', ARRAY['old1'], "
               "(ARRAY['queued', 'scheduled', 'deferred'])[i % 3 + 1]::pgqueue.job_status "
               "FROM generate_series(1, 30) i")
    db.execute("ANALYZE pgqueue.jobs")
    db.execute("SET enable_seqscan = off")
    plan = "\n".join(r[0] for r in db.execute(f"EXPLAIN {query}"))
    assert "Seq Scan on jobs" not in plan, plan
