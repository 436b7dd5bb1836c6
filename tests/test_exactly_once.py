"""Several worker processes draining thousands of jobs: every job runs exactly once, proved from a table
the jobs write to themselves."""

from __future__ import annotations

from typing import Any

import pgq_testjobs as tj
import psycopg

from pgqueue import Queue


def test_four_workers_run_every_job_exactly_once(spawn_worker: Any, db: psycopg.Connection[Any]) -> None:
    total = 4000
    q = Queue("once")
    q.enqueue_many([Queue.prepare_data(tj.record, args=(str(i),)) for i in range(total)])
    workers = [spawn_worker("once", "--burst", "--quiet", "--concurrency", "2", ready=False) for _ in range(4)]
    for worker in workers:
        assert worker.wait(120) == 0, worker.output
    runs = db.execute("SELECT count(*), count(DISTINCT job_id), count(DISTINCT tag), count(DISTINCT pid) "
                      "FROM pgq_test.runs").fetchone()
    assert runs is not None
    assert runs[:3] == (total, total, total)
    assert runs[3] > 1  # the work really was shared between processes
    statuses = db.execute("SELECT status::text, count(*), max(attempts) FROM pgqueue.jobs GROUP BY 1").fetchall()
    assert statuses == [("finished", total, 1)]
