"""RQ's worker inspection API (Worker.all, Worker.count, the attributes) and the worker statistics, kept in
memory and written with the heartbeat and at deregistration."""

from __future__ import annotations

import signal
import socket
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest
import rqapi_jobs
from conftest import wait_for

from pgqueue import Job, JobStatus, Queue, Retry, SimpleWorker, Worker, _store


def test_worker_all_returns_workers_with_rqs_attributes(spawn_worker: Any) -> None:
    assert Worker.all() == [] and Worker.count() == 0
    process = spawn_worker("high", "low", "--name", "inspected", "--concurrency", "2")
    workers = Worker.all()
    assert len(workers) == 1 and isinstance(workers[0], Worker)
    w = workers[0]
    assert (w.name, w.queues, w.queue_names(), w.concurrency) == ("inspected", ["high", "low"], ["high", "low"], 2)
    assert w.hostname == socket.gethostname() and w.pid == process.proc.pid
    assert w.birth_date is not None and w.last_heartbeat is not None and w.birth_date <= w.last_heartbeat
    assert (w.state, w.get_state(), w.get_current_job_id(), w.get_current_job()) == ("idle", "idle", None, None)
    assert (w.successful_job_count, w.failed_job_count, w.total_working_time) == (0, 0, 0.0)
    assert Worker.count(queue="low") == 1 and Worker.count(queue=Queue("high")) == 1
    assert Worker.all(queue="elsewhere") == [] and Worker.count(queue="elsewhere") == 0
    with pytest.raises(TypeError, match="queue= takes a Queue or a queue name, not 3"):
        Worker.all(queue=3)  # type: ignore[arg-type]

    job = Queue("low").enqueue(rqapi_jobs.hold, "inspected")
    wait_for(lambda: Worker.all()[0].get_state() == "busy", message="the worker to be busy")
    busy = Worker.all()[0]
    assert busy.get_current_job_id() == job.id and busy.get_current_job() == job
    rqapi_jobs.release("inspected")
    wait_for(lambda: job.get_status() == JobStatus.FINISHED, message="the job to finish")
    process.signal(signal.SIGTERM)
    assert process.wait() == 0
    assert Worker.all() == [] and Worker.count() == 0  # stopped workers are not listed
    w.refresh()  # its own row, stopped or not
    assert w.successful_job_count == 1 and w.state == "idle"


def test_a_worker_process_counts_its_successes_failures_and_working_time(spawn_worker: Any) -> None:
    q = Queue("stats")
    ok = [q.enqueue(rqapi_jobs.nap, 0.2) for _ in range(3)]
    bad = [q.enqueue(rqapi_jobs.nap_then_fail, 0.1, retry=Retry(max=1)), q.enqueue(rqapi_jobs.nap_then_fail, 0.1)]
    # A short lease: the heartbeat, which writes the statistics, comes every half second.
    process = spawn_worker("stats", "--lease", "1.5", "--concurrency", "2")
    wait_for(lambda: all(j.get_status().is_final for j in ok + bad), message="every job to end")
    assert [j.get_status() for j in ok + bad] == [JobStatus.FINISHED] * 3 + [JobStatus.FAILED] * 2

    def counted() -> Worker | None:  # once the heartbeat has written the last ones
        workers = Worker.all(queue=q)
        return workers[0] if workers and workers[0].successful_job_count + workers[0].failed_job_count >= 6 else None

    w = wait_for(counted, message="the heartbeat to write the statistics")
    # Three finished runs; three failed attempts (the retried job failed twice), each counted once.
    assert (w.successful_job_count, w.failed_job_count) == (3, 3)
    assert w.total_working_time >= 3 * 0.2 + 3 * 0.1  # the runs' own sleeps, at least
    process.signal(signal.SIGTERM)
    assert process.wait() == 0
    w.refresh()  # the row it deregistered with: the same totals, none counted twice
    assert (w.successful_job_count, w.failed_job_count) == (3, 3) and w.total_working_time >= 0.9


def test_a_clean_stop_writes_the_totals_and_the_worker_object_knows_them() -> None:
    q = Queue("own")
    for i in range(4):
        q.enqueue(tj.add, i, i)
    q.enqueue(tj.fail, "no")
    q.enqueue(tj.atomic_write, "counted")  # finished by its own transaction: counted all the same
    w = SimpleWorker(["own"], lease=60)  # its first heartbeat would come after 20 s: the burst ends first
    assert (w.successful_job_count, w.failed_job_count) == (0, 0)
    w.work(burst=True)
    assert (w.successful_job_count, w.failed_job_count) == (5, 1)  # counted in this process
    seconds = w.total_working_time
    assert seconds > 0
    w.refresh()  # and written when it deregistered
    assert (w.successful_job_count, w.failed_job_count, w.total_working_time) == (5, 1, seconds)
    w.work(burst=True)  # a new run registers afresh, with its own statistics
    assert (w.successful_job_count, w.failed_job_count, w.total_working_time) == (0, 0, 0.0)


def test_an_outcome_that_was_fenced_off_is_not_counted() -> None:
    job = Queue().enqueue(tj.atomic_write, "once", steal_first=True)
    first = Worker()
    first.work(burst=True, max_jobs=1)  # the job is taken away before it can complete: nothing recorded
    assert (first.successful_job_count, first.failed_job_count) == (0, 0)
    second = Worker()
    second.work(burst=True)
    assert Job.fetch(job.id).status == JobStatus.FINISHED
    assert (second.successful_job_count, second.failed_job_count) == (1, 0)


def test_totals_are_idempotent_a_lost_answer_resent_counts_nothing_twice(db: psycopg.Connection[Any]) -> None:
    worker_id = _store.register_worker(db, name="w", hostname="h", pid=1, queues=["default"], concurrency=1,
                                       lease=30.0)

    def row() -> tuple[Any, ...]:
        found = db.execute("SELECT successful_jobs, failed_jobs, working_seconds, stopped_at IS NOT NULL "
                           "FROM pgqueue.workers WHERE id = %s", (worker_id,)).fetchone()
        assert found is not None
        return tuple(found)

    totals = _store.WorkerTotals(3, 1, 2.5)
    with psycopg.connect(db.info.dsn, autocommit=True) as conn:
        assert _store.heartbeat(conn, worker_id, 5.0, totals)
        assert _store.heartbeat(conn, worker_id, 5.0, totals)  # sent again after a lost answer
        assert row() == (3, 1, 2.5, False)
        assert _store.heartbeat(conn, worker_id, 5.0, _store.WorkerTotals(2, 0, 1.0))  # a late, older one
        assert row() == (3, 1, 2.5, False)
    _store.deregister_worker(db, worker_id, _store.WorkerTotals(4, 1, 3.0))
    assert row() == (4, 1, 3.0, True)
