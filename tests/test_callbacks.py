"""Callbacks: on_success, on_failure and on_stopped (RQ's options), taken by every way to enqueue, refused when
a worker could not import them, and run by real workers in the job's own process right after the job. A
callback that fails (raises, times out, or kills its process) is recorded in the job's errors; the job's own
outcome stays as it was."""

from __future__ import annotations

import json
import math
import os
import signal
from datetime import datetime, timedelta, timezone
from typing import Any

import pgq_callbacks as cb
import pgq_testjobs as tj
import psycopg
import pytest
from conftest import count_jobs, wait_for

import pgqueue
from pgqueue import Callback, Job, JobStatus, Queue, Retry, SimpleWorker, Worker

WORKERS = [Worker, SimpleWorker]


def stored(db: psycopg.Connection[Any], job: Job) -> Any:
    return db.execute("SELECT callbacks FROM pgqueue.jobs WHERE id = %s", (job.id,)).fetchone()[0]  # type: ignore[index]


def seen(db: psycopg.Connection[Any], job: Job) -> list[dict[str, Any]]:
    """What each callback of ``job`` that ran saw, in order, with the pid it ran in."""
    rows = db.execute("SELECT tag, pid FROM pgq_test.runs WHERE job_id = %s AND tag LIKE '{%%' ORDER BY at",
                      (job.id,)).fetchall()
    return [{**json.loads(tag), "pid": pid} for tag, pid in rows]


def job_pids(db: psycopg.Connection[Any], job: Job) -> set[int]:
    rows = db.execute("SELECT pid FROM pgq_test.runs WHERE job_id = %s AND tag NOT LIKE '{%%'", (job.id,)).fetchall()
    return {pid for (pid,) in rows}


def callback_errors(job: Job) -> list[dict[str, Any]]:
    job.refresh()
    return [e for e in job.errors if e["type"] == "CallbackFailed"]


# -- what enqueue takes and stores -----------------------------------------------------------------

def test_every_way_to_enqueue_stores_the_callbacks_not_as_arguments(db: psycopg.Connection[Any]) -> None:
    q = Queue("stored")
    deco = pgqueue.job("stored", on_failure=cb.on_failure)(tj.identity)
    jobs = [q.enqueue(tj.add, 1, 2, on_success=cb.on_success),
            q.enqueue_call(tj.add, args=(1, 2), on_success=cb.on_success),
            q.enqueue_at(datetime.now(timezone.utc), tj.add, 1, 2, on_success=cb.on_success),
            q.enqueue_in(timedelta(seconds=30), tj.add, 1, 2, on_success=cb.on_success),
            *q.enqueue_many([Queue.prepare_data(tj.add, (1, 2), on_success=cb.on_success),
                             Queue.prepare_data(tj.add, (3, 4))])]
    for job in jobs[:-1]:
        assert stored(db, job) == {"success": {"func": "pgq_callbacks.on_success", "timeout": 60.0}}
        assert Job.fetch(job.id).kwargs == {}
    assert stored(db, jobs[-1]) is None  # a job without callbacks keeps NULL
    decorated = deco.delay(5)
    assert stored(db, decorated) == {"failure": {"func": "pgq_callbacks.on_failure", "timeout": 60.0}}


def test_callback_objects_dotted_paths_and_timeouts_are_stored(db: psycopg.Connection[Any]) -> None:
    job = Queue().enqueue(tj.noop, on_success=Callback(cb.on_success, timeout="2m"),
                          on_failure="pgq_callbacks.on_failure", on_stopped=Callback("pgq_callbacks.on_stopped", -1))
    assert stored(db, job) == {"success": {"func": "pgq_callbacks.on_success", "timeout": 120.0},
                               "failure": {"func": "pgq_callbacks.on_failure", "timeout": 60.0},
                               "stopped": {"func": "pgq_callbacks.on_stopped", "timeout": None}}
    assert Callback(cb.on_success).timeout == 60 and math.isinf(Callback(cb.on_success, timeout=-1).timeout)
    assert Callback(cb.on_success, timeout=timedelta(seconds=5)).name == "pgq_callbacks.on_success"


def local_callback() -> Any:
    def inner(job: Any, connection: Any, result: Any) -> None:
        pass
    return inner


async def coroutine_callback(job: Any, connection: Any, result: Any) -> None:
    pass


def main_callback(job: Any, connection: Any, result: Any) -> None:
    pass


main_callback.__module__ = "__main__"


@pytest.mark.parametrize("value, kind, says", [
    (lambda job, connection, result: None, ValueError, "defined at module level"),
    (local_callback(), ValueError, "defined at module level"),
    (tj.Jobs().method, ValueError, "bound to an instance of pgq_testjobs.Jobs"),
    (main_callback, ValueError, "(__main__)"),
    (tj.Jobs, TypeError, "not the class pgq_testjobs.Jobs"),
    (coroutine_callback, TypeError, "coroutine function"),
    ("not_dotted", ValueError, "dotted path"),
    (42, TypeError, "not callable"),
], ids=["lambda", "local function", "bound method", "__main__", "class", "coroutine", "no dot", "not callable"])
def test_callbacks_a_worker_cannot_import_are_refused_before_anything_is_written(
        db: psycopg.Connection[Any], value: Any, kind: type[Exception], says: str) -> None:
    q = Queue()
    for option in ("on_success", "on_failure", "on_stopped"):
        given = {option: value}
        for attempt in (lambda: q.enqueue(tj.noop, **given), lambda: q.enqueue_call(tj.noop, **given),  # noqa: B023
                        lambda: q.enqueue_many([Queue.prepare_data(tj.noop, **given)]),  # noqa: B023
                        lambda: pgqueue.job("default", **given)(tj.noop).delay()):  # noqa: B023
            with pytest.raises(kind) as refused:
                attempt()
            assert says in str(refused.value) and option in str(refused.value), str(refused.value)
    with pytest.raises(kind, match="Callback"):
        Callback(value)
    assert count_jobs(db) == 0


@pytest.mark.parametrize("timeout", [0, -5, "soon", math.nan])
def test_a_callback_timeout_that_is_no_duration_is_refused(timeout: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="Callback timeout"):
        Callback(cb.on_success, timeout=timeout)


# -- what workers do with them -------------------------------------------------------------------

@pytest.mark.parametrize("worker", WORKERS)
def test_on_success_runs_in_the_jobs_process_with_its_result(db: psycopg.Connection[Any], worker: type[Worker]) -> None:
    job = Queue("cb").enqueue(tj.record, "ran", on_success=cb.on_success)
    worker(["cb"]).work(burst=True)
    [call] = seen(db, job)
    assert call["callback"] == "success" and call["result"] == "ran" and call["job_result"] == "ran"
    assert call["status"] == "finished" and call["attempts"] == 1 and call["current"] == job.id
    assert job_pids(db, job) == {call["pid"]}  # the job's own process (a child, or the simple worker's)
    assert (call["pid"] == os.getpid()) == (worker is SimpleWorker)
    assert job.get_status() == JobStatus.FINISHED and job.result == "ran" and callback_errors(job) == []


@pytest.mark.parametrize("worker", WORKERS)
def test_on_failure_runs_after_every_failed_attempt_as_in_rq(db: psycopg.Connection[Any],
                                                            worker: type[Worker]) -> None:
    job = Queue("cb").enqueue(tj.fail, "no luck", retry=Retry(max=1), on_failure=cb.on_failure,
                              on_success=cb.on_success)
    worker(["cb"]).work(burst=True)
    first, last = seen(db, job)
    for call in (first, last):
        assert call["callback"] == "failure" and call["type"] == "builtins.ValueError"
        assert call["value"] == "no luck" and call["isinstance"] and call["traceback"]
        assert call["exc_info"] == ["ValueError: no luck"]
    assert (first["status"], first["attempts"]) == ("scheduled", 1)  # a retry follows
    assert (last["status"], last["attempts"]) == ("failed", 2)
    assert job.get_status() == JobStatus.FAILED and callback_errors(job) == []


@pytest.mark.parametrize("worker", WORKERS)
def test_on_failure_runs_when_the_job_times_out(db: psycopg.Connection[Any], worker: type[Worker]) -> None:
    job = Queue("cb").enqueue(tj.sleep_then_record, 30, job_timeout=1, on_failure=cb.on_failure)
    worker(["cb"]).work(burst=True)
    [call] = seen(db, job)
    assert call["type"] == "pgqueue.exceptions.JobTimeoutError" and call["isinstance"] and call["traceback"]
    assert call["value"] == "the job exceeded its timeout of 1 seconds and was stopped"
    job.refresh()
    assert job.status == JobStatus.FAILED
    assert job.exc_info == "JobTimeoutError: the job exceeded its timeout of 1 seconds and was stopped"


@pytest.mark.parametrize("worker", WORKERS)
def test_a_callback_that_raises_is_recorded_and_the_job_keeps_its_outcome(db: psycopg.Connection[Any],
                                                                         worker: type[Worker]) -> None:
    q = Queue("cb")
    ok = q.enqueue(tj.add, 2, 3, on_success=cb.raises)
    failed = q.enqueue(tj.fail, "job error", on_failure="pgq_callbacks.raises")
    after = q.enqueue(tj.add, 1, 1, on_success=cb.on_success)
    worker(["cb"]).work(burst=True)
    assert ok.get_status() == JobStatus.FINISHED and ok.result == 5 and ok.exc_info is None
    [error] = callback_errors(ok)
    assert error["callback"] == "on_success" and error["func"] == "pgq_callbacks.raises"
    assert error["error"] == "RuntimeError" and error["message"] == "the callback broke"
    assert "raise RuntimeError" in error["traceback"] and error["at"] and error["attempt"] == 1
    assert failed.get_status() == JobStatus.FAILED and failed.exc_info.endswith("ValueError: job error\n")
    assert [e["type"] for e in failed.errors] == ["ValueError", "CallbackFailed"]  # the attempt's, then the callback's
    assert seen(db, after)[0]["result"] == 2  # the worker went on


@pytest.mark.parametrize("worker", WORKERS)
def test_a_callback_that_outlives_its_timeout_is_stopped_and_recorded(db: psycopg.Connection[Any],
                                                                     worker: type[Worker]) -> None:
    q = Queue("cb")
    job = q.enqueue(tj.add, 2, 3, on_success=Callback(cb.sleeps, timeout=1))
    after = q.enqueue(tj.add, 1, 1, on_success=cb.on_success)
    worker(["cb"]).work(burst=True)
    assert job.get_status() == JobStatus.FINISHED and job.result == 5
    [error] = callback_errors(job)
    assert error["error"] == "CallbackTimeout"
    assert error["message"] == ("the on_success callback pgq_callbacks.sleeps exceeded its timeout of 1 seconds and "
                                "was stopped")
    assert seen(db, after)[0]["result"] == 2


def test_a_callback_deaf_to_its_alarm_is_killed_with_its_process(db: psycopg.Connection[Any]) -> None:
    q = Queue("cb")
    job = q.enqueue(tj.add, 2, 3, on_success=Callback(cb.sleeps_deaf, timeout=1))
    after = q.enqueue(tj.add, 1, 1, on_success=cb.on_success)
    Worker(["cb"]).work(burst=True)
    assert job.get_status() == JobStatus.FINISHED and job.result == 5
    [error] = callback_errors(job)
    assert error["error"] == "CallbackTimeout" and error["message"].endswith("of 1 seconds and was killed")
    assert seen(db, after)[0]["result"] == 2  # in a new child process
    assert seen(db, after)[0]["pid"] not in job_pids(db, job) | {os.getpid()}


@pytest.mark.parametrize("callback", ["on_success", "on_failure"])
def test_a_callback_that_kills_its_process_is_recorded_and_the_job_keeps_its_outcome(
        db: psycopg.Connection[Any], callback: str) -> None:
    q = Queue("cb")
    func = tj.record if callback == "on_success" else tj.fail_then_record
    job = q.enqueue(func, "before the kill", retry=Retry(max=1),
                    **{callback: Callback(cb.kills_its_process, timeout=30)})
    after = q.enqueue(tj.add, 1, 1, on_success=cb.on_success)
    Worker(["cb"]).work(burst=True)
    job.refresh()
    if callback == "on_success":
        assert (job.status, job.result, job.attempts) == (JobStatus.FINISHED, "before the kill", 1)
    else:  # each failed attempt ran the callback, which killed its process each time
        assert (job.status, job.attempts) == (JobStatus.FAILED, 2)
    errors = callback_errors(job)
    assert [e["error"] for e in errors] == ["WorkHorseKilled"] * job.attempts
    assert errors[0]["message"] == "the job's process was killed by signal SIGKILL"
    assert errors[0]["callback"] == callback and errors[0]["func"] == "pgq_callbacks.kills_its_process"
    assert seen(db, after)[0]["result"] == 2  # the worker replaced the process and went on


def test_callbacks_of_a_batch_of_fast_jobs_each_run_once(db: psycopg.Connection[Any]) -> None:
    q = Queue("cb")
    jobs = q.enqueue_many([Queue.prepare_data(tj.identity, (i,), on_success=cb.on_success) for i in range(30)]
                          + [Queue.prepare_data(tj.identity, (i,)) for i in range(30, 60)])
    Worker(["cb"], concurrency=2).work(burst=True)
    assert [j.get_status() for j in jobs] == [JobStatus.FINISHED] * 60
    assert [[c["result"] for c in seen(db, j)] for j in jobs[:30]] == [[i] for i in range(30)]
    assert all(seen(db, j) == [] for j in jobs[30:])


def test_a_callback_can_enqueue_through_its_connection(db: psycopg.Connection[Any]) -> None:
    Queue("cb").enqueue(tj.add, 20, 22, on_success=cb.enqueues)
    Worker(["cb"]).work(burst=True)
    [followup] = Queue("followups").jobs
    assert followup.args == [42]


def test_on_stopped_is_stored_and_not_run_by_a_job_that_ends(db: psycopg.Connection[Any]) -> None:
    job = Queue("cb").enqueue(tj.add, 1, 2, on_stopped=cb.on_stopped)
    failed = Queue("cb").enqueue(tj.fail, on_stopped=cb.on_stopped)
    Worker(["cb"]).work(burst=True)
    assert job.get_status() == JobStatus.FINISHED and failed.get_status() == JobStatus.FAILED
    assert seen(db, job) == [] and seen(db, failed) == []


def test_a_callback_the_allow_list_refuses_is_recorded_as_failed(db: psycopg.Connection[Any]) -> None:
    job = Queue("cb").enqueue(tj.add, 1, 2, on_success=cb.on_success)
    Worker(["cb"], allow_modules=["pgq_testjobs"]).work(burst=True)
    assert job.get_status() == JobStatus.FINISHED and seen(db, job) == []
    [error] = callback_errors(job)
    assert error["error"] == "PermissionError" and "not under an allowed module" in error["message"]


def test_a_callbacks_column_written_by_hand_that_cannot_be_read_is_recorded(db: psycopg.Connection[Any]) -> None:
    job = Queue("cb").enqueue(tj.add, 1, 2)
    db.execute("""UPDATE pgqueue.jobs SET callbacks = '{"success": "pgq_callbacks.on_success"}' WHERE id = %s""",
               (job.id,))
    Worker(["cb"]).work(burst=True)
    assert job.get_status() == JobStatus.FINISHED and job.result == 3
    [error] = callback_errors(job)
    assert error["error"] == "ValueError" and "pgqueue.jobs.callbacks must be a JSON object" in error["message"]


def test_the_worker_logs_a_failed_callback(spawn_worker: Any, db: psycopg.Connection[Any]) -> None:
    worker = spawn_worker("cb")
    job = Queue("cb").enqueue(tj.add, 1, 2, on_success=cb.raises)
    wait_for(lambda: callback_errors(job), message="the callback's failure to be recorded")
    wait_for(lambda: f"Callback on_success failed ({job.id}): pgq_callbacks.raises: RuntimeError: the callback "
                     "broke" in worker.output, message="the log line")
    assert f"Job OK ({job.id})" in worker.output


def test_in_a_simple_worker_a_callback_that_kills_its_process_takes_the_worker_down(
        spawn_worker: Any, db: psycopg.Connection[Any]) -> None:
    """As a job that kills its process does (docs/callbacks-and-retries.md): the outcome handed over in that
    process is lost with it, and the job is rescued as from any lost worker."""
    worker = spawn_worker("cb", "--simple", "--lease", "1")
    job = Queue("cb").enqueue(tj.record, "ran", on_success=cb.kills_its_process)
    assert worker.proc.wait(20) == -9  # SIGKILL, from the callback
    assert job.get_status() == JobStatus.RUNNING and job_pids(db, job) == {worker.proc.pid}
    wait_for(lambda: db.execute("SELECT heartbeat_at < now() - make_interval(secs => lease_seconds) "
                                "FROM pgqueue.workers").fetchone()[0], message="the dead worker's lease to pass")
    Worker(["cb"]).work(burst=True)  # rescues it: its only attempt was used
    job.refresh()
    assert job.status == JobStatus.FAILED and [e["type"] for e in job.errors] == ["WorkerLost"]


def began(db: psycopg.Connection[Any], job: Job) -> bool:
    return bool(db.execute("SELECT 1 FROM pgq_test.runs WHERE job_id = %s AND tag = 'callback began'",
                           (job.id,)).fetchone())


def test_a_warm_shutdown_waits_for_a_running_callback(spawn_worker: Any, db: psycopg.Connection[Any]) -> None:
    worker = spawn_worker("cb")
    job = Queue("cb").enqueue(tj.add, 1, 2, on_success=cb.records_then_sleeps, meta={"sleep": 1})
    waiting = Queue("cb").enqueue(tj.add, 3, 4)
    wait_for(lambda: began(db, job), message="the callback to begin")
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert [c["callback"] for c in seen(db, job)] == ["slept"] and callback_errors(job) == []
    assert job.get_status() == JobStatus.FINISHED and waiting.get_status() == JobStatus.QUEUED


def test_a_cold_shutdown_stops_a_running_callback_and_records_it(spawn_worker: Any,
                                                                 db: psycopg.Connection[Any]) -> None:
    worker = spawn_worker("cb")
    job = Queue("cb").enqueue(tj.add, 1, 2, on_success=cb.records_then_sleeps)
    wait_for(lambda: began(db, job), message="the callback to begin")
    worker.signal(signal.SIGINT)
    wait_for(lambda: "warm shut down" in worker.output, message="the first signal to register")
    worker.signal(signal.SIGINT)
    assert worker.wait(30) == 0
    assert job.get_status() == JobStatus.FINISHED and job.result == 3  # its outcome, recorded before
    [error] = callback_errors(job)
    assert (error["error"], error["message"]) == ("WorkerShutdown", "cold shutdown")
