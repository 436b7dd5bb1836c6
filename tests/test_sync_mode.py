"""Queue(is_async=False), RQ's synchronous mode: enqueue runs the job at once in the calling process and records
its outcome in the same row, through the worker's own code, so tests see the same Job and result objects."""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pgq_callbacks as cb
import pgq_testjobs as tj
import psycopg
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

import pgqueue
from pgqueue import Callback, JobFailed, JobStatus, Queue, Retry, Worker


@pytest.fixture
def q() -> Queue:
    return Queue("sync", is_async=False)


def runs(db: psycopg.Connection[Any], tag: str | None = None) -> list[tuple[str, str, int]]:
    rows = db.execute("SELECT job_id, tag, pid FROM pgq_test.runs WHERE %s::text IS NULL OR tag = %s ORDER BY at",
                      (tag, tag)).fetchall()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_enqueue_runs_the_job_at_once_in_this_process(q: Queue, db: psycopg.Connection[Any]) -> None:
    assert not q.is_async and Queue("a").is_async and repr(q) == "Queue('sync', is_async=False)"
    job = q.enqueue(tj.record, "now")
    assert (job.status, job.result, job.attempts, job.exc_info) == (JobStatus.FINISHED, "now", 1, None)
    assert runs(db) == [(job.id, "now", os.getpid())]
    assert job.get_status() == JobStatus.FINISHED and job.wait(timeout=1) == "now"
    fetched = pgqueue.Job.fetch(job.id)
    assert fetched.result == "now" and fetched.worker_name.startswith("sync:")
    assert fetched.enqueued_at <= fetched.started_at <= fetched.ended_at
    # The process registered as a worker for the run, and is marked stopped since.
    assert db.execute("SELECT count(*) FROM pgqueue.workers WHERE stopped_at IS NULL").fetchone()[0] == 0
    assert db.execute("SELECT queues, concurrency FROM pgqueue.workers").fetchall() == [(["sync"], 1)]


def test_every_way_to_enqueue_runs_at_once(q: Queue, db: psycopg.Connection[Any]) -> None:
    jobs = [q.enqueue(tj.add, 1, 2), q.enqueue(tj.add, 1, 2, job_timeout=30), q.enqueue_call(tj.add, args=(3, 4)),
            *q.enqueue_many(Queue.prepare_data(tj.identity, (i,)) for i in range(3)),
            *q.enqueue_many([Queue.prepare_data(tj.identity, ("x",), job_id="named")]),
            pgqueue.job(q)(tj.echo).delay(5, a=1)]
    assert [j.result for j in jobs] == [3, 3, 7, 0, 1, 2, "x", {"args": [5], "kwargs": {"a": 1}}]
    assert {j.get_status() for j in jobs} == {JobStatus.FINISHED}


def test_a_failed_job_is_failed_at_once_without_retry_as_in_rq(q: Queue) -> None:
    job = q.enqueue(tj.fail, "sync failure", retry=Retry(max=3))
    assert (job.status, job.attempts, job.max_attempts) == (JobStatus.FAILED, 1, 4)
    assert job.exc_info.endswith("ValueError: sync failure\n") and job.errors[0]["type"] == "ValueError"
    with pytest.raises(JobFailed, match="sync failure"):
        job.wait(timeout=1)
    assert job.requeue() and job.get_status() == JobStatus.QUEUED  # a worker may run it again
    Worker(["sync"]).work(burst=True)
    job.refresh()
    assert job.status == JobStatus.FAILED and job.attempts == 2


def test_the_same_checks_as_a_worker(q: Queue, db: psycopg.Connection[Any]) -> None:
    unserialisable = q.enqueue(tj.returns_object)
    assert unserialisable.status == JobStatus.FAILED and "TypeError" in unserialisable.exc_info
    with pytest.raises(TypeError):
        q.enqueue(tj.identity, object())
    with pytest.raises(ValueError, match="module level"):
        q.enqueue(lambda: None)
    assert db.execute("SELECT count(*) FROM pgqueue.jobs").fetchone()[0] == 1


def test_the_job_sees_itself_running(q: Queue) -> None:
    job = q.enqueue(tj.current_job_view)
    view = job.result
    assert (view["status"], view["attempts"], view["after_refresh"]) == ("running", 1, ["running", 1, True])
    assert view["worker_name"].startswith("sync:")


def test_a_job_past_its_timeout_is_stopped(q: Queue) -> None:
    job = q.enqueue(tj.sleep_then_record, 30, job_timeout=1)
    assert job.status == JobStatus.FAILED
    assert job.exc_info == "JobTimeoutError: the job exceeded its timeout of 1 seconds and was stopped"


def test_callbacks_run_in_this_process(q: Queue, db: psycopg.Connection[Any]) -> None:
    ok = q.enqueue(tj.add, 2, 3, on_success=cb.on_success)
    failed = q.enqueue(tj.fail, "bad", retry=2, on_failure=cb.on_failure)
    [(_, success, pid)] = runs(db)[:1]
    assert pid == os.getpid()
    assert json.loads(success) == {"callback": "success", "result": 5, "status": "finished", "job_result": 5,
                                   "attempts": 1, "current": ok.id}
    failure = json.loads(runs(db)[1][1])
    assert (failure["status"], failure["type"], failure["value"]) == ("failed", "builtins.ValueError", "bad")
    assert ok.result == 5 and failed.status == JobStatus.FAILED


def test_a_callback_that_fails_is_recorded_and_enqueue_returns_the_job(q: Queue) -> None:
    raised = q.enqueue(tj.add, 2, 3, on_success=cb.raises)
    slow = q.enqueue(tj.add, 2, 3, on_success=Callback(cb.sleeps, timeout=1))
    for job, error in ((raised, "RuntimeError"), (slow, "CallbackTimeout")):
        assert (job.status, job.result) == (JobStatus.FINISHED, 5)
        assert [(e["type"], e["error"]) for e in job.errors] == [("CallbackFailed", error)]


def test_dependencies_and_times_wait_for_a_worker_as_in_rq(q: Queue, db: psycopg.Connection[Any]) -> None:
    first = q.enqueue(tj.record, "first")
    after_first = q.enqueue(tj.record, "after first", depends_on=first)  # first has finished: runs now
    pending = Queue("sync").enqueue(tj.noop)  # an async queue's job, waiting for a worker
    deferred = q.enqueue(tj.record, "deferred", depends_on=pending)
    at = q.enqueue_at(datetime.now(timezone.utc) - timedelta(seconds=1), tj.record, "at")
    later = q.enqueue_in(timedelta(seconds=60), tj.record, "in")
    assert after_first.status == JobStatus.FINISHED
    assert (deferred.status, at.status, later.status) == (JobStatus.DEFERRED, JobStatus.QUEUED, JobStatus.SCHEDULED)
    assert [tag for _, tag, _ in runs(db)] == ["first", "after first"]
    Worker(["sync"]).work(burst=True)  # the rest is a worker's, as it would be of an async queue
    assert [tag for _, tag, _ in runs(db)][2:] == ["at", "deferred"]
    assert later.get_status() == JobStatus.SCHEDULED


def test_a_job_enqueue_returns_instead_runs_if_it_is_queued(q: Queue, db: psycopg.Connection[Any]) -> None:
    waiting = Queue("sync").enqueue(tj.record, "waiting", unique_key="k", job_id="held")
    same = q.enqueue(tj.record, "never", unique_key="k")
    assert same.id == waiting.id and same.status == JobStatus.FINISHED and same.result == "waiting"
    again = q.enqueue(tj.record, "never either", job_id="held")  # finished: returned as it is
    assert again.id == "held" and [tag for _, tag, _ in runs(db)] == ["waiting"]
    fresh = q.enqueue(tj.record, "key free again", unique_key="k")
    assert fresh.id != waiting.id and fresh.result == "key free again"


def test_inside_the_callers_transaction_the_job_runs_before_the_commit(q: Queue, dsn: str,
                                                                       db: psycopg.Connection[Any]) -> None:
    with psycopg.connect(dsn) as conn:
        job = q.enqueue(tj.add, 20, 22, connection=conn, on_success=cb.on_success)
        assert (job.status, job.result) == (JobStatus.FINISHED, 42)  # ran, and recorded in the transaction
        assert db.execute("SELECT count(*) FROM pgqueue.jobs").fetchone()[0] == 0  # nobody else sees it yet
        assert conn.execute("SELECT tag FROM pgq_test.runs").fetchone()[0].startswith('{"callback": "success"')
        conn.rollback()
    assert db.execute("SELECT count(*) FROM pgqueue.jobs").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM pgqueue.workers").fetchone()[0] == 0
    assert runs(db) == []  # the callback wrote through the caller's connection: rolled back too
    with psycopg.connect(dsn) as conn:
        job = q.enqueue(tj.add, 1, 1, connection=conn)
        conn.commit()
    assert pgqueue.Job.fetch(job.id).result == 2


def test_an_atomic_job_writes_in_the_callers_transaction(q: Queue, dsn: str, db: psycopg.Connection[Any]) -> None:
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(dsn))
    with Session(engine) as session:
        ok = q.enqueue(tj.atomic_write, "kept", connection=session)
        failed = q.enqueue(tj.atomic_write, "undone", fail=True, connection=session)
        assert (ok.status, failed.status) == (JobStatus.FINISHED, JobStatus.FAILED)
        session.commit()
    engine.dispose()
    assert [tag for _, tag, _ in runs(db)] == ["kept"]  # the failed job's writes went with its savepoint
    assert pgqueue.Job.fetch(ok.id).result == "kept"


def test_a_subclass_of_queue_can_be_synchronous(db: psycopg.Connection[Any]) -> None:
    class Mine(Queue):
        def __init__(self, name: str, *, tag: str = "", **kwargs: Any) -> None:
            super().__init__(name, **kwargs)
            self.tag = tag

    q = Mine("sync", tag="mine", is_async=False)
    assert isinstance(q, Mine) and not q.is_async and type(Mine("x", is_async=False)) is type(q)
    assert q.tag == "mine" and q.enqueue(tj.add, 1, 1).result == 2
    assert Mine("async", tag="a").is_async and type(Mine("async")) is Mine


def test_outside_the_main_thread_jobs_run_without_a_timeout(q: Queue) -> None:
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(q.enqueue(tj.sleep_then_record, 1.5, "slow",
                                                                      job_timeout=1)))
    thread.start()
    thread.join(30)
    assert results[0].status == JobStatus.FINISHED and results[0].result == "slow"
