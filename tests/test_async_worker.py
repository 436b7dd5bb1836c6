"""async def jobs in the worker: many at once in one event-loop process, beside sync jobs on the same queue,
with the timeouts, retries, callbacks, exception handlers and crash handling of sync jobs; and in
SimpleWorker and Queue(is_async=False), one at a time."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from typing import Any

import pgq_asyncjobs as aj
import pgq_callbacks as cb
import pgq_testjobs as tj
import psycopg
import pytest
from conftest import wait_for

import pgqueue
from pgqueue import AsyncQueue, Job, JobStatus, Queue, Retry, SimpleWorker, Worker


def tags(db: psycopg.Connection[Any]) -> list[str]:
    return [r[0] for r in db.execute("SELECT tag FROM pgq_test.runs ORDER BY at, tag").fetchall()]


@pytest.mark.timeout(120)
def test_a_thousand_sleeping_jobs_overlap_in_one_process(spawn_worker: Any, db: psycopg.Connection[Any]) -> None:
    q = Queue("many")
    jobs = q.enqueue_many([Queue.prepare_data(aj.pid_after, args=(0.5,)) for _ in range(1000)])
    worker = spawn_worker("many", "--burst", "--concurrency", "1")
    assert worker.wait(timeout=100) == 0, worker.output
    count, span, total, pids = db.execute("""
        SELECT count(*), extract(epoch FROM max(ended_at) - min(started_at)),
               extract(epoch FROM sum(ended_at - started_at)), array_agg(DISTINCT (result)::int)
        FROM pgqueue.jobs WHERE queue = 'many' AND status = 'finished'""").fetchone()  # type: ignore[misc]
    assert count == 1000
    # Each run took its 0.5 s or more (recorded by the worker), yet all of them fit in a span far shorter than
    # their sum: they ran at once, in one process (each returned its pid), not the worker's own.
    assert float(total) >= 1000 * 0.5
    assert float(span) < float(total) / 20, (span, total)
    assert len(pids) == 1 and pids[0] != worker.proc.pid
    assert Job.fetch(jobs[0].id).result == pids[0]


def test_sync_and_async_jobs_share_a_queue_and_a_worker(db: psycopg.Connection[Any]) -> None:
    q = Queue("mixed")
    jobs = [q.enqueue(aj.add, 1, 2), q.enqueue(tj.add, 3, 4), q.enqueue(aj.pid_after, 0.1), q.enqueue(aj.sync_pid),
            q.enqueue(aj.add, "a", "b"), q.enqueue(tj.noop, 5), q.enqueue(aj.pid_after, 0.1)]
    Worker(["mixed"], concurrency=2).work(burst=True)
    done = [Job.fetch(j.id) for j in jobs]
    assert [j.status for j in done] == [JobStatus.FINISHED] * 7
    assert [done[i].result for i in (0, 1, 4, 5)] == [3, 7, "ab", 5]
    async_pid, sync_pid = done[2].result, done[3].result
    assert done[6].result == async_pid != sync_pid != os.getpid()  # async jobs in their own process


def test_get_current_job_is_each_async_jobs_own(db: psycopg.Connection[Any]) -> None:
    jobs = Queue("current").enqueue_many([Queue.prepare_data(aj.current_job_id) for _ in range(20)])
    Worker(["current"]).work(burst=True)
    assert [Job.fetch(j.id).result for j in jobs] == [j.id for j in jobs]


def test_retries_callbacks_and_exception_handlers(db: psycopg.Connection[Any]) -> None:
    q = Queue("fails")
    failing = q.enqueue(aj.fail_then_record, "attempt", retry=Retry(max=2), on_failure=cb.on_failure)
    ok = q.enqueue(aj.add, 2, 3, on_success=cb.on_success)
    not_retried = q.enqueue(aj.fail, "no retry for this", retry=Retry(max=3, on=KeyError))
    Worker(["fails"], exception_handlers=["rqparity_jobs.note_first"]).work(burst=True)
    failing, ok, not_retried = Job.fetch(failing.id), Job.fetch(ok.id), Job.fetch(not_retried.id)
    assert (failing.status, failing.attempts) == (JobStatus.FAILED, 3)
    assert "RuntimeError: attempt failed: attempt" in (failing.exc_info or "")
    assert (not_retried.status, not_retried.attempts) == (JobStatus.FAILED, 1)
    assert ok.result == 5
    rows = db.execute("SELECT job_id, tag FROM pgq_test.runs ORDER BY at").fetchall()
    assert [t for i, t in rows if i == failing.id].count("attempt") == 3
    handled = [t for i, t in rows if t.startswith("first:")]
    assert len(handled) == 3 + 1  # every failed run, in the job's process, with the job's Job
    assert all(t.startswith(("first:RuntimeError:attempt failed", "first:ValueError:no retry")) for t in handled)
    callbacks = {i: json.loads(t) for i, t in rows if t.startswith("{")}
    assert callbacks[ok.id]["callback"] == "success" and callbacks[ok.id]["result"] == 5
    assert callbacks[ok.id]["current"] == ok.id
    assert callbacks[failing.id]["callback"] == "failure" and callbacks[failing.id]["status"] == "failed"


@pytest.mark.timeout(90)
def test_an_async_job_is_cancelled_at_its_timeout_and_the_others_go_on(db: psycopg.Connection[Any]) -> None:
    q = Queue("timeouts")
    late = q.enqueue(aj.cancelled_at_timeout, "late", job_timeout=1)
    alongside = q.enqueue(aj.sleep, 2)
    Worker(["timeouts"]).work(burst=True)
    late, alongside = Job.fetch(late.id), Job.fetch(alongside.id)
    assert late.status == JobStatus.FAILED
    assert "JobTimeoutError: the job exceeded its timeout of 1 seconds" in (late.exc_info or "")
    assert tags(db) == ["late:cancelled"]  # its task was cancelled: the job saw CancelledError
    assert alongside.status == JobStatus.FINISHED  # the process was not killed


@pytest.mark.timeout(90)
def test_a_job_that_blocks_its_loop_is_killed_with_its_process(db: psycopg.Connection[Any]) -> None:
    q = Queue("blocking")
    blocking = q.enqueue(aj.block, 60, "blocking", job_timeout=1)
    deaf = q.enqueue(aj.ignore_cancel, 60, "deaf", job_timeout=1)
    alongside = q.enqueue(aj.sleep, 30, retry=1)  # cut short by the kill: a crash, retried
    Worker(["blocking"]).work(burst=True)
    blocking, deaf, alongside = Job.fetch(blocking.id), Job.fetch(deaf.id), Job.fetch(alongside.id)
    # Killed CALLBACK_GRACE after its timeout: a timeout, whose text says why the process went.
    assert blocking.status == deaf.status == JobStatus.FAILED
    assert {blocking.errors[0]["type"], deaf.errors[0]["type"]} <= {"JobTimeoutError", "WorkHorseKilled"}
    assert any("did not stop when cancelled" in (j.exc_info or "") for j in (blocking, deaf))
    # The job running beside it failed with the process and ran again, to its end.
    assert alongside.status == JobStatus.FINISHED and alongside.attempts == 2
    assert alongside.errors[0]["type"] in ("WorkHorseKilled", "JobTimeoutError")


@pytest.mark.timeout(90)
def test_a_crash_of_the_event_loop_process_fails_or_retries_what_it_ran(spawn_worker: Any,
                                                                         db: psycopg.Connection[Any]) -> None:
    worker = spawn_worker("crash")
    q = Queue("crash")
    running = [q.enqueue(aj.record, "warm-up")]
    wait_for(lambda: Job.fetch(running[0].id).status == JobStatus.FINISHED, message="the event-loop process")
    [(pid,)] = db.execute("SELECT DISTINCT pid FROM pgq_test.runs").fetchall()
    retried = q.enqueue(aj.sleep_and_record, 3, "retried", retry=1)
    lost = q.enqueue(aj.sleep_and_record, 3, "lost")
    wait_for(lambda: len(tags(db)) == 3, message="both jobs to start")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: Job.fetch(lost.id).status == JobStatus.FAILED, message="the lost job to fail")
    assert "killed by signal SIGKILL" in (Job.fetch(lost.id).exc_info or "")
    assert q.enqueue(aj.add, 1, 1).id  # the worker serves on
    wait_for(lambda: Job.fetch(retried.id).status == JobStatus.FINISHED, message="the retry to finish")
    assert Job.fetch(retried.id).attempts == 2
    assert worker.proc.poll() is None and "replaced its event-loop process" in worker.output


def test_simple_worker_and_sync_mode_run_async_jobs(db: psycopg.Connection[Any]) -> None:
    q = Queue("simple")
    ok, current, late = q.enqueue(aj.add, 1, 2), q.enqueue(aj.current_job_id), q.enqueue(aj.sleep, 30, job_timeout=1)
    SimpleWorker(["simple"]).work(burst=True)
    assert Job.fetch(ok.id).result == 3 and Job.fetch(current.id).result == current.id
    assert "JobTimeoutError" in (Job.fetch(late.id).exc_info or "")
    sync = Queue("sync", is_async=False)
    assert sync.enqueue(aj.add, 2, 2).result == 4

    async def from_async_code() -> Any:  # a loop runs in this thread: the job gets a thread and loop of its own
        return sync.enqueue(aj.add, 5, 5).result

    assert asyncio.run(from_async_code()) == 10
    Worker(["simple"], async_concurrency=0).work(burst=True)  # nothing left; and 0 is accepted
    zero = q.enqueue(aj.pid_after, 0)
    Worker(["simple"], async_concurrency=0).work(burst=True)
    assert Job.fetch(zero.id).status == JobStatus.FINISHED


def test_async_jobs_enqueued_by_asyncqueue_and_waited_for(spawn_worker: Any) -> None:
    spawn_worker("together")

    async def steps() -> list[Any]:
        q = AsyncQueue("together")
        jobs = [await q.enqueue(aj.sleep, 0.2) for _ in range(10)]
        return await asyncio.gather(*(q.wait(j, timeout=30) for j in jobs))

    assert asyncio.run(steps()) == [0.2] * 10


def test_atomic_refuses_async_functions() -> None:
    async def write() -> None:
        pass

    with pytest.raises(TypeError, match="does not take async def"):
        pgqueue.atomic(write)


def test_async_concurrency_is_checked() -> None:
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="async_concurrency"):
            Worker(["x"], async_concurrency=bad)  # type: ignore[arg-type]


@pytest.mark.timeout(60)
def test_canceling_a_running_async_job_cancels_its_task_and_spares_the_others(
        spawn_worker: Any, db: psycopg.Connection[Any]) -> None:
    """A cancel reaches an async job as a cancellation of its asyncio task, in the event-loop process, which
    is not killed: the job beside it goes on to its end."""
    q = Queue("cancel-async")
    doomed = q.enqueue(aj.wait_to_be_canceled, "doomed")
    neighbour = q.enqueue(aj.sleep_and_record, 1.5, "neighbour")
    worker = spawn_worker("cancel-async")
    wait_for(lambda: {"doomed:start", "neighbour:start"} <= set(tags(db)), 20, message="both jobs to start")
    assert doomed.cancel() is True
    wait_for(lambda: "doomed:cancelled" in tags(db), 10, message="the job's task to be cancelled")
    assert neighbour.wait(timeout=20) == "neighbour"
    assert doomed.get_status() == JobStatus.CANCELED and "replaced its event-loop process" not in worker.output
    pids = {r[0] for r in db.execute("SELECT pid FROM pgq_test.runs").fetchall()}
    assert len(pids) == 1  # one event-loop process ran both, and it was never replaced
