"""RQ's job registries as queries over pgqueue.jobs, Queue.all(), and the plans behind them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest
import rqapi_jobs
from conftest import wait_for

from pgqueue import (
    CanceledJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    InvalidJobOperation,
    Job,
    JobStatus,
    NoSuchJobError,
    Queue,
    ScheduledJobRegistry,
    SimpleWorker,
    StartedJobRegistry,
    UniqueKeyHeld,
    Worker,
    _store,
)
from pgqueue.sql import statement


def test_each_registry_holds_the_jobs_of_its_status_in_its_queue(spawn_worker: Any) -> None:
    q, other = Queue("reg"), Queue("reg-other")
    done = q.enqueue(tj.add, 1, 1)
    failed = q.enqueue(tj.fail, "no")
    other.enqueue(tj.fail, "elsewhere")
    SimpleWorker(["reg", "reg-other"]).work(burst=True)
    scheduled = q.enqueue_in(timedelta(hours=1), tj.noop)
    deferred = q.enqueue(tj.noop, depends_on=scheduled)
    canceled = q.enqueue(tj.noop)
    canceled.cancel()
    running = q.enqueue(rqapi_jobs.hold, "registries")
    spawn_worker("reg")
    wait_for(lambda: running.get_status() == JobStatus.RUNNING, message="the job to start")
    expected = {StartedJobRegistry: running, FinishedJobRegistry: done, FailedJobRegistry: failed,
                DeferredJobRegistry: deferred, ScheduledJobRegistry: scheduled, CanceledJobRegistry: canceled}
    for cls, job in expected.items():
        registry = cls(queue=q)
        assert registry.get_job_ids() == [job.id], cls.__name__
        assert registry.count == len(registry) == registry.get_job_count() == 1
        assert job in registry and job.id in registry
        others = [j for j in expected.values() if j != job]
        assert not any(j in registry for j in others), cls.__name__
        assert "no-such-job" not in registry
    assert q.failed_job_registry.get_job_ids() == FailedJobRegistry("reg").get_job_ids() == [failed.id]
    assert len(other.failed_job_registry) == 1 and failed not in other.failed_job_registry
    rqapi_jobs.release("registries")
    wait_for(lambda: running in q.finished_job_registry, message="the job to finish")
    assert running not in q.started_job_registry and len(q.started_job_registry) == 0


def test_queue_properties_and_constructors_name_the_same_registry() -> None:
    q = Queue("props", dsn=None)
    pairs = [(q.started_job_registry, StartedJobRegistry), (q.finished_job_registry, FinishedJobRegistry),
             (q.failed_job_registry, FailedJobRegistry), (q.deferred_job_registry, DeferredJobRegistry),
             (q.scheduled_job_registry, ScheduledJobRegistry), (q.canceled_job_registry, CanceledJobRegistry)]
    for registry, cls in pairs:
        assert type(registry) is cls and registry == cls("props") == cls(queue=q) and registry.name == "props"
        assert registry != cls("other") and registry.get_queue().name == "props"
        assert repr(registry) == f"{cls.__name__}('props')"
    assert FailedJobRegistry().name == "default"
    with pytest.raises(TypeError, match="queue=Queue"):
        FailedJobRegistry(q)  # type: ignore[arg-type]


def test_get_job_ids_ranks_are_inclusive_and_negative_from_the_end_as_rqs() -> None:
    q = Queue("ranks")
    jobs = [q.enqueue(tj.fail, str(i)) for i in range(5)]
    SimpleWorker(["ranks"]).work(burst=True)
    ids = [j.id for j in jobs]  # one worker, in order: failed in enqueue order
    registry = q.failed_job_registry
    assert registry.get_job_ids() == ids
    assert registry.get_job_ids(0, 1) == ids[0:2]
    assert registry.get_job_ids(1, 3) == ids[1:4]
    assert registry.get_job_ids(3) == ids[3:]
    assert registry.get_job_ids(2, 2) == [ids[2]] and registry.get_job_ids(3, 1) == []
    assert registry.get_job_ids(-2) == ids[-2:] and registry.get_job_ids(0, -2) == ids[:-1]
    assert registry.get_job_ids(-10, 1) == ids[:2] and registry.get_job_ids(4, 100) == [ids[4]]
    assert registry.get_job_ids(desc=True) == ids[::-1]
    assert registry.get_job_ids(0, 1, desc=True) == ids[::-1][0:2]
    assert registry.get_job_ids(-1, -1, desc=True) == [ids[0]]
    assert registry.get_job_ids(7, 9) == [] and registry.get_job_ids(-3, -4) == []
    with pytest.raises(TypeError, match="start must be an int"):
        registry.get_job_ids("0")  # type: ignore[arg-type]


def test_orders_finished_by_end_scheduled_by_time_deferred_by_enqueue() -> None:
    q = Queue("order")
    late = q.enqueue_in(timedelta(hours=2), tj.noop)
    soon = q.enqueue_in(timedelta(hours=1), tj.noop)
    assert q.scheduled_job_registry.get_job_ids() == [soon.id, late.id]
    first = q.enqueue(tj.noop, depends_on=late)
    second = q.enqueue(tj.noop, depends_on=soon)
    assert q.deferred_job_registry.get_job_ids() == [first.id, second.id]
    a, b = q.enqueue(tj.add, 1, 1), q.enqueue(tj.add, 2, 2)
    SimpleWorker(["order"]).work(burst=True)
    assert q.finished_job_registry.get_job_ids() == [a.id, b.id]


def test_requeue_from_the_failed_registry_gives_one_more_attempt_and_may_go_to_the_front() -> None:
    q = Queue("requeue")
    failed = q.enqueue(tj.fail, "once")
    SimpleWorker(["requeue"]).work(burst=True)
    waiting = q.enqueue(tj.noop)
    job = q.failed_job_registry.requeue(failed.id, at_front=True)
    assert isinstance(job, Job) and job.id == failed.id and job.status == JobStatus.QUEUED
    assert job.max_attempts == 2 and job.exc_info is not None  # the failure's text is kept
    assert q.job_ids == [failed.id, waiting.id] and job.get_position() == 0
    assert failed not in q.failed_job_registry
    with pytest.raises(InvalidJobOperation, match="not in the failed job registry of queue 'requeue'"):
        q.failed_job_registry.requeue(failed)
    SimpleWorker(["requeue"]).work(burst=True)
    assert len(q.failed_job_registry) == 1 and Job.fetch(failed.id).attempts == 2


def test_requeue_runs_finished_canceled_scheduled_and_deferred_jobs_again() -> None:
    q = Queue("again")
    done = q.enqueue(tj.add, 2, 2)
    SimpleWorker(["again"]).work(burst=True)
    canceled = q.enqueue(tj.add, 3, 3)
    canceled.cancel()
    scheduled = q.enqueue_in(timedelta(hours=1), tj.add, 4, 4, retry=2)
    deferred = q.enqueue(tj.add, 5, 5, depends_on=scheduled)
    requeued = [q.finished_job_registry.requeue(done), q.canceled_job_registry.requeue(canceled),
                q.scheduled_job_registry.requeue(scheduled), q.deferred_job_registry.requeue(deferred)]
    assert all(j.status == JobStatus.QUEUED for j in requeued)
    assert requeued[0].result is None and requeued[0].max_attempts == 2  # the old result is gone
    assert requeued[2].max_attempts == 3  # a scheduled job keeps its retries
    SimpleWorker(["again"]).work(burst=True)
    assert [Job.fetch(j.id).result for j in requeued] == [4, 6, 8, 10]
    assert Job.fetch(done.id).attempts == 2


def test_a_running_job_cannot_be_requeued_or_removed(spawn_worker: Any) -> None:
    q = Queue("busy")
    job = q.enqueue(rqapi_jobs.hold, "busy")
    spawn_worker("busy")
    wait_for(lambda: job in q.started_job_registry, message="the job to start")
    with pytest.raises(InvalidJobOperation, match="is running"):
        q.started_job_registry.requeue(job)
    with pytest.raises(InvalidJobOperation, match="cancel it"):
        q.started_job_registry.remove(job, delete_job=True)
    assert job.get_status() == JobStatus.RUNNING
    rqapi_jobs.release("busy")
    wait_for(lambda: job.get_status() == JobStatus.FINISHED, message="the job to finish")


def test_requeue_refuses_a_job_whose_unique_key_a_live_job_holds() -> None:
    q = Queue("unique")
    old = q.enqueue(tj.add, 1, 1, unique_key="k")
    SimpleWorker(["unique"]).work(burst=True)
    live = q.enqueue(tj.add, 2, 2, unique_key="k")
    with pytest.raises(UniqueKeyHeld, match=f"stays finished: its unique_key 'k' is held by job {live.id}") as info:
        q.finished_job_registry.requeue(old)
    assert info.value.holder == live.id and old in q.finished_job_registry


def test_remove_needs_delete_job_and_deletes_only_a_job_of_the_registry() -> None:
    q = Queue("remove")
    failed = q.enqueue(tj.fail, "x")
    SimpleWorker(["remove"]).work(burst=True)
    with pytest.raises(InvalidJobOperation, match="needs delete_job=True"):
        q.failed_job_registry.remove(failed)
    assert Job.exists(failed.id)
    assert q.finished_job_registry.remove(failed, delete_job=True) == 0 and Job.exists(failed.id)
    assert Queue("other").failed_job_registry.remove(failed.id, delete_job=True) == 0
    assert q.failed_job_registry.remove(failed, delete_job=True) == 1
    assert not Job.exists(failed.id) and len(q.failed_job_registry) == 0
    q.failed_job_registry.cleanup()  # RQ's; nothing to do


def test_expiration_and_scheduled_times(db: psycopg.Connection[Any]) -> None:
    q = Queue("expiry")
    kept = q.enqueue(tj.add, 1, 1)
    pruned = q.enqueue(tj.add, 1, 2, result_ttl=3600)
    failed = q.enqueue(tj.fail, "x", failure_ttl=60)
    SimpleWorker(["expiry"]).work(burst=True)
    scheduled = q.enqueue_at(datetime(2100, 1, 1, tzinfo=datetime.now().astimezone().tzinfo), tj.noop)
    deferred = q.enqueue(tj.noop, depends_on=scheduled, ttl=600)
    finished = q.finished_job_registry
    assert finished.get_expiration_time(kept) is None  # kept until deleted
    pruned.refresh()
    assert pruned.ended_at is not None
    assert finished.get_expiration_time(pruned) == pruned.ended_at + timedelta(seconds=3600)
    failed.refresh()
    assert failed.ended_at is not None
    assert q.failed_job_registry.get_expiration_time(failed.id) == failed.ended_at + timedelta(seconds=60)
    assert q.scheduled_job_registry.get_scheduled_time(scheduled) == Job.fetch(scheduled.id).scheduled_at
    assert q.scheduled_job_registry.get_expiration_time(scheduled).year == 2100
    assert deferred.enqueued_at is not None
    assert q.deferred_job_registry.get_expiration_time(deferred) == deferred.enqueued_at + timedelta(seconds=600)
    with pytest.raises(NoSuchJobError, match="not in the scheduled job registry"):
        q.scheduled_job_registry.get_scheduled_time(kept)
    with pytest.raises(NoSuchJobError):
        finished.get_expiration_time("no-such-job")


def test_the_started_registry_expires_with_the_workers_lease(spawn_worker: Any) -> None:
    q = Queue("lease")
    job = q.enqueue(rqapi_jobs.hold, "lease")
    spawn_worker("lease", "--lease", "40")
    wait_for(lambda: job in q.started_job_registry, message="the job to start")

    def lease_end_agrees() -> bool:  # read twice: a heartbeat may fall between the two reads
        heartbeat = Worker.all(queue=q)[0].last_heartbeat
        return heartbeat is not None and q.started_job_registry.get_expiration_time(job) == heartbeat + \
            timedelta(seconds=40)

    wait_for(lease_end_agrees, message="the lease's end to be the heartbeat plus 40 s")
    rqapi_jobs.release("lease")


def test_queue_all_lists_every_queue_that_has_a_job() -> None:
    Queue("b-queue").enqueue(tj.noop)
    Queue("a-queue").enqueue_in(timedelta(hours=1), tj.noop)
    done = Queue("c-queue").enqueue(tj.noop)
    SimpleWorker(["c-queue"]).work(burst=True)
    assert done.get_status() == JobStatus.FINISHED
    queues = Queue.all()
    assert [q.name for q in queues] == ["a-queue", "b-queue", "c-queue"]
    assert all(isinstance(q, Queue) for q in queues)
    assert queues[1].count == 1 and queues[2].count == 0


# -- plans -----------------------------------------------------------------------------------------------
# Each statement of a registry must reach its rows through an index on a big table, with the generic plan
# that pgqueue's own connections use. (The finished and canceled counts, and the deferred registry, are
# the exceptions docs/jobs-and-registries.md states: no index serves them.)
INDEXED = {
    "registry_started_ids": "jobs_running_idx", "registry_started_count": "jobs_running_idx",
    "registry_finished_ids": "jobs_ended_at_idx", "registry_failed_ids": "jobs_failed_idx",
    "registry_failed_count": "jobs_failed_idx", "registry_scheduled_ids": "jobs_", "registry_scheduled_count": "jobs_",
    "registry_canceled_ids": "jobs_ended_at_idx", "job_position": "jobs_claim_idx", "fetch_jobs": "jobs_pkey",
    "registry_job": "jobs_pkey", "registry_remove": "jobs_pkey", "registry_requeue": "jobs_pkey",
}


@pytest.fixture(scope="module")
def big_history(new_database: Any) -> str:
    """A database of its own with 100,000 jobs: mostly finished, and some of every other status."""
    import pgqueue

    url = new_database()
    pgqueue.migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO pgqueue.workers (name, hostname, pid, queues, concurrency, lease_seconds) "
                     "VALUES ('w', 'h', 1, '{q0}', 1, 30)")
        conn.execute("""
            INSERT INTO pgqueue.jobs (id, queue, func_name, status, ended_at, worker_id, claim_count, attempts,
                                      started_at, depends_on, scheduled_at)
            SELECT 'j' || i, 'q' || (i % 3), 'm.f', s::pgqueue.job_status,
                   CASE WHEN s IN ('finished', 'failed', 'canceled') THEN now() - i * interval '1 s' END,
                   CASE WHEN s = 'running' THEN (SELECT min(id) FROM pgqueue.workers) END,
                   (s = 'running')::int, (s IN ('finished', 'failed', 'running'))::int,
                   CASE WHEN s IN ('finished', 'failed', 'running') THEN now() END,
                   CASE WHEN s = 'deferred' THEN ARRAY['j' || (i + 1)] ELSE '{}' END,
                   CASE WHEN s = 'scheduled' THEN now() + interval '1 hour' ELSE now() END
            FROM (SELECT i, CASE WHEN i % 100 < 80 THEN 'finished' WHEN i % 100 < 85 THEN 'failed'
                                 WHEN i % 100 < 93 THEN 'queued' WHEN i % 100 < 96 THEN 'scheduled'
                                 WHEN i % 100 < 98 THEN 'deferred' WHEN i % 1000 < 985 THEN 'canceled'
                                 ELSE 'running' END AS s
                  FROM generate_series(1, 100000) i) t""")
        conn.execute("VACUUM ANALYZE pgqueue.jobs")
    return url


@pytest.mark.parametrize("name", sorted(INDEXED))
def test_the_statement_uses_its_index_on_a_big_history(name: str, big_history: str) -> None:
    params = {"queue": "q1", "limit": 10, "offset": 0, "id": "j9992", "ids": "{j1,j2}", "status": "queued",
              "at_front": "f"}
    _, query, names = statement(name)
    with psycopg.connect(big_history, autocommit=True) as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")  # as on pgqueue's own connections
        conn.execute(f"PREPARE stmt AS {query.decode()}")
        args = ", ".join(f"'{params[n]}'" for n in names)
        plan = "\n".join(r[0] for r in conn.execute(f"EXPLAIN EXECUTE stmt({args})").fetchall())
    assert "Seq Scan on jobs" not in plan, plan
    assert INDEXED[name] in plan, plan
    assert _store.ROWS[name] is not None
