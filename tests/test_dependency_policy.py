"""The dependency failure policy: a job whose dependency fails for good, is canceled, expires or is deleted is
canceled with the reason (and so are its own dependents), or runs once every dependency ended if it allows
dependency failures. No job stays deferred on a dependency that has ended (docs/workflows.md)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest

from pgqueue import Dependency, Job, JobFailed, JobStatus, Queue, Retry, SimpleWorker

QUEUE = "default"


def drain(*queues: str) -> None:
    SimpleWorker(list(queues or [QUEUE])).work(burst=True)


def state(job: Job) -> tuple[JobStatus, str | None]:
    job.refresh()
    return job.status, job.exc_info


def ran(db: psycopg.Connection[Any], tag: str) -> int:
    return db.execute("SELECT count(*) FROM pgq_test.runs WHERE tag = %s", (tag,)).fetchone()[0]  # type: ignore[index]


def test_a_failed_dependency_cancels_its_dependents_and_theirs(db: psycopg.Connection[Any]) -> None:
    q = Queue(QUEUE)
    parent = q.enqueue(tj.fail, "boom")
    child = q.enqueue(tj.record, "child", depends_on=parent)
    grandchild = q.enqueue(tj.record, "grandchild", depends_on=child)
    waited: list[BaseException] = []
    waiter = threading.Thread(target=lambda: _wait_into(grandchild, waited))
    waiter.start()
    drain()
    waiter.join(10)
    assert state(parent)[0] == JobStatus.FAILED
    assert state(child) == (JobStatus.CANCELED, f"dependency failed: {parent.id}")
    assert state(grandchild) == (JobStatus.CANCELED, f"dependency canceled: {child.id}")
    assert ran(db, "child") == ran(db, "grandchild") == 0
    # in the statement that recorded the failure, not later by the Promoter: one statement, one timestamp
    assert child.ended_at == grandchild.ended_at == parent.ended_at is not None
    # job.wait() on a dependent is woken by its cancellation (a NOTIFY, not its 5 s re-check)
    assert len(waited) == 1 and isinstance(waited[0], JobFailed) and "dependency canceled" in str(waited[0])


def _wait_into(job: Job, out: list[BaseException]) -> None:
    try:
        job.wait(timeout=8)
    except BaseException as exc:  # noqa: BLE001 - the test looks at what it was
        out.append(exc)


def test_allow_dependency_failures_runs_once_every_dependency_has_ended(db: psycopg.Connection[Any]) -> None:
    q, other = Queue(QUEUE), Queue("other")
    failing = q.enqueue(tj.fail)
    slow = other.enqueue(tj.noop)
    anyway = q.enqueue(tj.record, "anyway", depends_on=[failing, slow], allow_dependency_failures=True)
    rq_style = q.enqueue(tj.record, "rq style", depends_on=Dependency([failing, slow], allow_failure=True))
    strict = q.enqueue(tj.record, "strict", depends_on=[failing, slow])
    drain()  # the failure: the strict one is canceled at once, the others wait for `slow`
    assert state(strict) == (JobStatus.CANCELED, f"dependency failed: {failing.id}")
    assert anyway.get_status() == rq_style.get_status() == JobStatus.DEFERRED
    drain("other", QUEUE)  # `slow` finishes: finish_jobs releases them (the other dependency failed)
    assert state(anyway) == (JobStatus.FINISHED, None) and state(rq_style)[0] == JobStatus.FINISHED
    assert ran(db, "anyway") == ran(db, "rq style") == 1 and ran(db, "strict") == 0


def test_a_failed_attempt_that_will_be_retried_cancels_nothing() -> None:
    q = Queue(QUEUE)
    parent = q.enqueue(tj.fail_first_attempt, retry=Retry(max=1))
    child = q.enqueue(tj.noop, depends_on=parent)
    drain()
    assert state(parent)[0] == JobStatus.FINISHED and parent.attempts == 2
    assert state(child) == (JobStatus.FINISHED, None)


def _lost_worker_holds(db: psycopg.Connection[Any], job: Job) -> None:
    """``job`` looks started by a worker that stopped, without attempts left: the rescue fails it."""
    worker_id = db.execute("INSERT INTO pgqueue.workers (name, hostname, pid, queues, concurrency, lease_seconds, "
                           "stopped_at) VALUES ('gone', 'h', 1, '{default}', 1, 1, now()) RETURNING id").fetchone()[0]  # type: ignore[index]
    db.execute("UPDATE pgqueue.jobs SET status = 'running', worker_id = %s, worker_name = 'gone', claim_count = 1, "
               "attempts = 1, started_at = now() WHERE id = %s", (worker_id, job.id))


def _expire(db: psycopg.Connection[Any], job: Job) -> None:
    db.execute("UPDATE pgqueue.jobs SET enqueued_at = now() - interval '3 hours' WHERE id = %s", (job.id,))


ENDINGS: dict[str, tuple[Callable[..., Any], str, str]] = {
    # how the dependency ends: (what ends it, its status, the word in its dependents' exc_info)
    "cancel of a queued job": (lambda db, job: job.cancel(), "canceled", "canceled"),
    "ttl expiry": (_expire, "canceled", "expired"),
    "rescue without attempts left": (_lost_worker_holds, "failed", "failed"),
    "delete": (lambda db, job: job.delete(), "gone", "deleted"),
    "queue emptied": (lambda db, job: Queue("parents").empty(), "gone", "deleted"),
    "registry remove": (lambda db, job: Queue("parents").scheduled_job_registry.remove(job, delete_job=True),
                        "gone", "deleted"),
}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_every_way_a_dependency_ends_settles_its_dependents(ending: str, db: psycopg.Connection[Any]) -> None:
    end, status, word = ENDINGS[ending]
    parents = Queue("parents")
    if ending in ("ttl expiry", "registry remove"):
        parent = parents.enqueue_in(3600, tj.noop, ttl=7200 if ending == "ttl expiry" else None)
    else:
        parent = parents.enqueue(tj.noop)
    child = Queue(QUEUE).enqueue(tj.record, "child", depends_on=parent)
    grandchild = Queue(QUEUE).enqueue(tj.record, "grandchild", depends_on=child)
    anyway = Queue(QUEUE).enqueue(tj.record, "anyway", depends_on=parent, allow_dependency_failures=True)
    end(db, parent)
    drain("other", QUEUE)  # the burst runs the maintenance services once too (rescue, expiry)
    if status == "gone":
        assert not Job.exists(parent.id)
    else:
        assert state(parent)[0] == JobStatus(status)
    assert state(child) == (JobStatus.CANCELED, f"dependency {word}: {parent.id}")
    assert state(grandchild) == (JobStatus.CANCELED, f"dependency canceled: {child.id}")
    assert state(anyway) == (JobStatus.FINISHED, None)
    assert ran(db, "child") == ran(db, "grandchild") == 0 and ran(db, "anyway") == 1


def test_canceling_a_deferred_job_cancels_its_dependents() -> None:
    q = Queue(QUEUE)
    blocker = Queue("never").enqueue(tj.noop)
    middle = q.enqueue(tj.noop, depends_on=blocker)
    child = q.enqueue(tj.noop, depends_on=middle)
    assert middle.cancel()
    assert state(child) == (JobStatus.CANCELED, f"dependency canceled: {middle.id}")
    assert child.ended_at == Job.fetch(middle.id).ended_at  # canceled in the same statement
    assert blocker.get_status() == JobStatus.QUEUED


def test_a_job_enqueued_on_a_dependency_that_failed_is_canceled_at_once() -> None:
    q = Queue(QUEUE)
    failed = q.enqueue(tj.fail)
    finished = q.enqueue(tj.noop)
    drain()
    late = q.enqueue(tj.noop, depends_on=[finished, failed])
    assert (late.status, late.get_status()) == (JobStatus.CANCELED, JobStatus.CANCELED)
    assert state(late)[1] == f"dependency failed: {failed.id}" and late.ended_at is not None
    anyway = q.enqueue(tj.noop, depends_on=failed, allow_dependency_failures=True)
    assert anyway.status == JobStatus.QUEUED


def test_the_promoter_settles_what_the_statements_did_not(db: psycopg.Connection[Any]) -> None:
    """Dependents written behind the statements' backs (as a race between an enqueue and a failure leaves
    them): the Promoter cancels those of ended dependencies, transitively, and releases the others."""
    q = Queue(QUEUE)
    failed = q.enqueue(tj.fail)
    drain()
    db.execute("""INSERT INTO pgqueue.jobs (id, queue, func_name, status, depends_on, allow_dependency_failures)
                  VALUES ('a', 'default', 'pgq_testjobs.noop', 'deferred', %(f)s, false),
                         ('b', 'default', 'pgq_testjobs.noop', 'deferred', '{a}', false),
                         ('c', 'default', 'pgq_testjobs.noop', 'deferred', %(f)s, true),
                         ('d', 'default', 'pgq_testjobs.noop', 'deferred', '{deleted-long-ago}', false)""",
               {"f": [failed.id]})
    db.execute("INSERT INTO pgqueue.dependencies VALUES (%s), ('a'), ('deleted-long-ago')", (failed.id,))  # as enqueue
    drain()
    assert state(Job("a")) == (JobStatus.CANCELED, f"dependency failed: {failed.id}")
    assert state(Job("b")) == (JobStatus.CANCELED, "dependency canceled: a")
    assert state(Job("c"))[0] == state(Job("d"))[0] == JobStatus.FINISHED  # a missing dependency counts as finished


def test_a_statement_cancels_a_bounded_number_and_the_rest_follow(db: psycopg.Connection[Any]) -> None:
    """2,500 dependents: one statement cancels at most 1,000 (pgqueue.jobs_ended); the worker's Promoter
    cancels the rest; and a delete cancels them all in its transaction."""
    q = Queue(QUEUE)
    failing = q.enqueue(tj.fail)
    q.enqueue_many(Queue.prepare_data(tj.noop, args=(i,), depends_on=failing) for i in range(2500))
    canceled = db.execute("SELECT pgqueue.jobs_ended(%s, 'failed')", ([failing.id],)).fetchone()[0]  # type: ignore[index]
    assert len(canceled) == 1000 and _statuses(db) == {"queued": 1, "canceled": 1000, "deferred": 1500}
    drain()  # its failure cancels 1,000 more, the Promoter the rest
    assert _statuses(db) == {"failed": 1, "canceled": 2500}
    deleted = Queue("held").enqueue(tj.noop)
    q.enqueue_many(Queue.prepare_data(tj.noop, args=(i,), depends_on=deleted) for i in range(2500))
    deleted.delete()
    assert _statuses(db) == {"failed": 1, "canceled": 5000}


def _statuses(db: psycopg.Connection[Any]) -> dict[str, int]:
    return dict(db.execute("SELECT status::text, count(*) FROM pgqueue.jobs GROUP BY 1").fetchall())  # type: ignore[arg-type]


def test_the_dependents_of_a_job_that_failed_in_a_worker_process_are_canceled(
        spawn_worker: Callable[..., Any], db: psycopg.Connection[Any]) -> None:
    """Through a real worker (its fail_jobs, on its own connection), with a job that crashes its process."""
    q = Queue(QUEUE)
    crash = q.enqueue(tj.kill_self)
    child = q.enqueue(tj.noop, depends_on=crash)
    worker = spawn_worker(QUEUE, "--burst", ready=False)
    assert worker.wait(60) == 0, worker.output
    assert state(crash)[0] == JobStatus.FAILED
    assert state(child) == (JobStatus.CANCELED, f"dependency failed: {crash.id}")


def test_the_jobs_waited_for_are_listed_until_they_end(db: psycopg.Connection[Any]) -> None:
    """pgqueue.dependencies tells fail_jobs which failed jobs have dependents; rows of ended jobs are pruned."""
    q = Queue(QUEUE)
    parent = Queue("held").enqueue(tj.noop)
    q.enqueue(tj.noop, depends_on=parent)
    q.enqueue(tj.noop, depends_on=parent)  # listed once
    plain = q.enqueue(tj.noop)
    listed = lambda: [r[0] for r in db.execute("SELECT job_id FROM pgqueue.dependencies")]  # noqa: E731
    assert listed() == [parent.id] and plain.id not in listed()
    drain("held", QUEUE)
    drain(QUEUE)  # the maintenance of a second worker prunes the row of the parent, which finished
    assert listed() == [] and _statuses(db) == {"finished": 4}


def test_dependency_refuses_what_it_cannot_do(db: psycopg.Connection[Any]) -> None:
    with pytest.raises(ValueError, match="non-empty list"):
        Dependency(jobs=[])
    with pytest.raises(ValueError, match=r"enqueue_at_front=True\) is not supported"):
        Dependency(jobs=["a"], enqueue_at_front=True)
    assert repr(Dependency("a", allow_failure=True)) == "Dependency(jobs=['a'], allow_failure=True)"
    assert db.execute("SELECT count(*) FROM pgqueue.jobs").fetchone() == (0,)
