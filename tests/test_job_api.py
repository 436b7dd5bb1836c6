"""RQ's Job inspection API: return_value(), results, fetch_many, positions, retries, the is_* properties
and the attributes RQ code reads."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest
import rqapi_jobs
from conftest import wait_for

from pgqueue import Job, JobStatus, NoSuchJobError, Queue, Result, Retry, SimpleWorker, Worker


def test_return_value_is_rqs_method_the_value_of_a_finished_run_only() -> None:
    q = Queue()
    ok, bad = q.enqueue(tj.add, 2, 3), q.enqueue(tj.fail, "no")
    assert ok.return_value() is None  # not run yet
    Worker().work(burst=True)
    assert ok.return_value() == 5 and ok.return_value(refresh=True) == 5
    assert Job.fetch(ok.id).return_value() == 5
    assert bad.return_value() is None  # its run failed
    assert ok.result == 5  # the attribute pgqueue always had stays


def test_results_hold_every_failed_attempt_and_the_success_newest_first() -> None:
    job = Queue().enqueue(tj.fail_first_attempt, retry=Retry(max=2))
    SimpleWorker(name="w1").work(burst=True)
    results = job.results()
    assert [r.type for r in results] == [Result.Type.SUCCESSFUL, Result.Type.FAILED]
    success, failure = results
    assert success.return_value == "the second succeeds" and success.exc_string is None
    assert failure.return_value is None
    assert "Traceback" in failure.exc_string and "ValueError: the first attempt fails" in failure.exc_string
    assert (success.attempt, failure.attempt) == (2, 1)
    assert (success.id, failure.id) == (f"{job.id}:2", f"{job.id}:1") and success != failure
    assert success.job_id == failure.job_id == job.id
    assert success.worker_name == failure.worker_name == "w1"
    assert isinstance(failure.created_at, datetime) and failure.created_at.tzinfo is not None
    assert failure.created_at <= success.created_at == job.ended_at
    assert job.latest_result() == success and repr(success) == f"Result(id={job.id}:2, type=SUCCESSFUL)"
    assert Result.all(job) == results and Result.count(job) == 2 and Result.fetch_latest(job) == success


def test_a_job_without_a_run_has_no_result_and_a_failed_one_ends_with_its_last_failure() -> None:
    q = Queue()
    waiting = q.enqueue(tj.add, 1, 1)
    assert waiting.results() == [] and waiting.latest_result() is None
    failed = q.enqueue(tj.fail, "twice", retry=1)
    Worker().work(burst=True)
    latest = failed.latest_result()
    assert latest is not None and latest.type == Result.Type.FAILED and latest.attempt == 2
    assert [r.attempt for r in failed.results()] == [2, 1]
    assert latest.exc_string is not None and latest.exc_string.rstrip().endswith("ValueError: twice")


def test_a_lost_workers_failure_is_a_result_with_its_message(db: psycopg.Connection[Any]) -> None:
    job = Queue().enqueue(tj.noop)
    error = {"attempt": 1, "worker": "gone", "at": "2026-01-02T03:04:05.12+00", "type": "WorkerLost",
             "message": "worker lost: gone stopped heartbeating", "traceback": None}
    db.execute("UPDATE pgqueue.jobs SET status = 'failed', attempts = 1, ended_at = now(), errors = jsonb_build_array("
               "%s::jsonb) WHERE id = %s", (psycopg.types.json.Jsonb(error), job.id))
    result = job.latest_result()
    assert result is not None and result.exc_string == "WorkerLost: worker lost: gone stopped heartbeating"
    assert result.created_at == datetime.fromisoformat("2026-01-02T03:04:05.120000+00:00")


def test_latest_result_with_a_timeout_waits_for_the_job_to_end(spawn_worker: Any) -> None:
    q = Queue()
    job = q.enqueue(rqapi_jobs.hold, "wait-for-result")
    spawn_worker("default", "--poll-interval", "60")
    wait_for(lambda: job.get_status() == JobStatus.RUNNING, message="the job to start")
    assert job.latest_result() is None  # without timeout: at once
    rqapi_jobs.release("wait-for-result")
    result = job.latest_result(timeout=15)
    assert result is not None and result.type == Result.Type.SUCCESSFUL and result.return_value == "wait-for-result"
    assert Queue("nobody-serves-this").enqueue(tj.noop).latest_result(timeout=0.2) is None


def test_fetch_many_keeps_the_order_and_gives_none_for_unknown_ids() -> None:
    q = Queue()
    a, b = q.enqueue(tj.add, 1, 2, meta={"n": 1}), q.enqueue(tj.echo, "x", key="v")
    fetched = Job.fetch_many([b.id, "no-such-job", a.id, b.id])
    assert fetched[1] is None
    assert [j.id if j else None for j in fetched] == [b.id, None, a.id, b.id]
    assert fetched[0] is not None and fetched[0].kwargs == {"key": "v"} and fetched[0].status == JobStatus.QUEUED
    assert fetched[2] is not None and fetched[2].meta == {"n": 1} and fetched[2].args == [1, 2]
    assert Job.fetch_many([]) == []
    assert Job.exists(a.id) and not Job.exists("no-such-job")


def test_get_position_counts_from_zero_in_the_order_workers_take_jobs() -> None:
    q, other = Queue("positions"), Queue("elsewhere")
    first = q.enqueue(tj.noop)
    second = q.enqueue(tj.noop)
    urgent = q.enqueue(tj.noop, priority=-1)
    front = q.enqueue(tj.noop, at_front=True)
    later = q.enqueue_in(timedelta(hours=1), tj.noop)
    other.enqueue(tj.noop)
    order = [front, urgent, first, second]
    assert q.job_ids == [j.id for j in order]
    assert [j.get_position() for j in order] == [0, 1, 2, 3]
    assert later.get_position() is None  # scheduled: not in the queue's list
    assert q.get_job_position(second) == 3 and q.get_job_position(second.id) == 3
    assert other.get_job_position(second) is None  # not this queue's
    urgent.cancel()
    assert second.get_position() == 2 and urgent.get_position() is None
    assert Job("no-such-job").get_position() is None


def test_retries_left_counts_down_as_rqs_does(db: psycopg.Connection[Any]) -> None:
    q = Queue()
    plain = q.enqueue(tj.noop)
    retried = q.enqueue(tj.fail, "x", retry=Retry(max=2, interval=3600))
    assert plain.retries_left is None and Job.fetch(retried.id).retries_left == 2
    SimpleWorker().work(burst=True)  # the first run fails: a retry in an hour
    retried.refresh()
    assert retried.status == JobStatus.SCHEDULED and retried.retries_left == 1
    db.execute("UPDATE pgqueue.jobs SET scheduled_at = now() WHERE id = %s", (retried.id,))
    SimpleWorker().work(burst=True)
    retried.refresh()
    assert retried.retries_left == 0
    ok = q.enqueue(tj.noop, retry=3)
    SimpleWorker().work(burst=True)
    assert Job.fetch(ok.id).retries_left == 3  # it finished at the first run: no retry used


def test_is_properties_follow_the_status(spawn_worker: Any) -> None:
    q = Queue()
    queued = q.enqueue(tj.noop)
    scheduled = q.enqueue_in(timedelta(hours=1), tj.noop)
    deferred = q.enqueue(tj.noop, depends_on=scheduled)
    canceled = q.enqueue(tj.noop)
    canceled.cancel()
    assert queued.is_queued and not queued.is_started
    assert scheduled.is_scheduled and not scheduled.is_queued
    assert deferred.is_deferred and canceled.is_canceled
    assert not any(j.is_stopped for j in (queued, scheduled, deferred, canceled))  # pgqueue never stops a job
    running = q.enqueue(rqapi_jobs.hold, "is-started")
    spawn_worker("default")
    wait_for(lambda: running.is_started, message="the job to be started")
    assert JobStatus.STARTED is JobStatus.RUNNING and running.get_status() == JobStatus.STARTED
    rqapi_jobs.release("is-started")
    wait_for(lambda: running.is_finished, message="the job to finish")
    with pytest.raises(NoSuchJobError):
        Job("no-such-job").is_stopped  # noqa: B018 - the property asks the database


def test_rq_attributes_origin_func_created_at_meta_and_dependencies() -> None:
    q = Queue("attrs")
    parent = q.enqueue(tj.add, 1, 2)
    job = q.enqueue(tj.echo, 1, "two", flag=True, depends_on=[parent, "no-such-job"], meta={"m": 1})
    assert job.origin == "attrs" and job.func is tj.echo
    assert job.created_at == job.enqueued_at is not None
    assert job.dependency_ids == [parent.id, "no-such-job"]
    assert job.dependency == parent and Job.fetch(job.dependency.id).func_name == "pgq_testjobs.add"
    assert parent.dependency is None and parent.dependency_ids == []
    assert job.get_call_string() == "pgq_testjobs.echo(1, 'two', flag=True)"
    other = Job.fetch(job.id)
    other.meta["progress"] = 3
    other.save_meta()
    assert job.meta == {"m": 1} and job.get_meta(refresh=False) == {"m": 1}
    assert job.get_meta() == {"m": 1, "progress": 3} and job.meta == {"m": 1, "progress": 3}
    with pytest.raises(NoSuchJobError):
        Job("no-such-job").get_meta()


def test_to_dict_uses_rqs_names_and_leaves_out_what_is_not_asked() -> None:
    job = Queue("dicts").enqueue(tj.add, 2, 2, meta={"k": "v"}, description="two and two", retry=1)
    Worker(["dicts"]).work(burst=True)
    job.refresh()
    data = job.to_dict()
    assert data["id"] == job.id and data["origin"] == "dicts" and data["status"] == "finished"
    assert data["func_name"] == "pgq_testjobs.add" and data["args"] == [2, 2] and data["kwargs"] == {}
    assert data["description"] == "two and two" and data["meta"] == {"k": "v"} and data["result"] == 4
    assert data["created_at"] == data["enqueued_at"] == job.enqueued_at and data["ended_at"] == job.ended_at
    assert data["retries_left"] == 1 and data["attempts"] == 1 and data["dependency_ids"] == []
    lean = job.to_dict(include_meta=False, include_result=False)
    assert "meta" not in lean and "result" not in lean and "exc_info" not in lean
