"""Batches: members enqueued in one transaction, counted as they end, callbacks enqueued once when the last one
ended (docs/workflows.md). The kill -9 drain is in tests/reliability/test_batch_faults.py."""

from __future__ import annotations

from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest
from conftest import run_cli

from pgqueue import (
    Batch,
    Callback,
    InvalidJobOperation,
    Job,
    JobStatus,
    NoSuchBatchError,
    NoSuchJobError,
    Queue,
    Retry,
    SimpleWorker,
)


def drain(*queues: str) -> None:
    SimpleWorker(list(queues or ["default"])).work(burst=True)


def tags(db: psycopg.Connection[Any]) -> list[str]:
    return [r[0] for r in db.execute("SELECT tag FROM pgq_test.runs ORDER BY at")]


def callbacks() -> dict[str, Any]:
    return {"on_success": Queue.prepare_data(tj.batch_callback, args=("success",)),
            "on_failure": Queue.prepare_data(tj.batch_callback, args=("failure",)),
            "on_complete": tj.batch_callback}


def test_on_success_and_on_complete_fire_once_every_member_finished(db: psycopg.Connection[Any]) -> None:
    with Batch(**callbacks(), description="all good") as batch:
        first = batch.enqueue(tj.add, 1, 2)
        rest = batch.enqueue_many(Queue.prepare_data(tj.noop, args=(i,)) for i in range(20))
    assert (batch.total, batch.pending, batch.status, batch.callback_ids) == (21, 21, "running", [])
    assert first.status == JobStatus.QUEUED and len(rest) == 20
    drain()
    batch.refresh()
    assert (batch.status, batch.finished, batch.failed, batch.canceled, batch.pending) == ("finished", 21, 0, 0, 0)
    assert sorted(tags(db)) == [f"complete:{batch.id}", f"success:{batch.id}"]
    ran = {j.args[1] if len(j.args) > 1 else "complete": j for j in batch.callback_jobs()}
    assert set(ran) == {"success", "complete"} and all(j.args[0] == batch.id for j in ran.values())
    # the callback saw the batch complete, its members read a page of 7 at a time
    assert ran["complete"].result == {"status": "finished", "total": 21, "finished": 21, "failed": 0, "canceled": 0,
                                      "pending": 0, "members": {"finished": 21}}
    assert batch.completed_at is not None and batch.description == "all good"


def test_on_failure_fires_when_a_member_failed_or_was_canceled(db: psycopg.Connection[Any]) -> None:
    with Batch(**callbacks()) as batch:
        batch.enqueue(tj.noop)
        batch.enqueue(tj.fail, "member fails")
        canceled = batch.enqueue(tj.noop)
    canceled.cancel()
    drain()
    batch.refresh()
    assert (batch.status, batch.finished, batch.failed, batch.canceled) == ("failed", 1, 1, 1)
    assert sorted(tags(db)) == [f"complete:{batch.id}", f"failure:{batch.id}"]
    assert {m.status for m in batch.members()} == {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELED}


def test_a_batch_whose_members_all_ended_before_it_closed_fires_at_the_close(db: psycopg.Connection[Any]) -> None:
    """Queue(is_async=False) runs each member as it is enqueued, inside the block: only the close can fire."""
    with Batch(Queue("default", is_async=False), on_complete=tj.batch_callback) as batch:
        batch.enqueue(tj.noop)
        with pytest.raises(NoSuchBatchError):  # not committed: other connections see nothing of it yet
            Batch.fetch(batch.id)
        batch.enqueue(tj.noop)
    assert (batch.status, batch.finished, len(batch.callback_ids)) == ("finished", 2, 1)
    with Batch(on_success=tj.batch_callback) as empty:
        pass
    assert (empty.status, empty.total, len(empty.callback_ids)) == ("finished", 0, 1)
    drain()
    assert sorted(tags(db)) == sorted([f"complete:{batch.id}", f"complete:{empty.id}"])


def test_an_error_in_the_block_writes_nothing_and_a_closed_batch_takes_no_member(db: psycopg.Connection[Any]) -> None:
    with pytest.raises(RuntimeError), Batch(on_complete=tj.batch_callback) as batch:
        batch.enqueue(tj.noop)
        raise RuntimeError("changed my mind")
    assert db.execute("SELECT count(*) FROM pgqueue.jobs").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM pgqueue.batches").fetchone() == (0,)
    with pytest.raises(NoSuchBatchError, match=batch.id):
        Batch.fetch(batch.id)
    with Batch() as closed:
        closed.enqueue(tj.noop)
    with pytest.raises(InvalidJobOperation, match="closed"):
        closed.enqueue(tj.noop)
    with pytest.raises(InvalidJobOperation, match="one with block"), closed:
        pass
    with pytest.raises(InvalidJobOperation, match="not open"):
        Batch().enqueue(tj.noop)


@pytest.mark.parametrize(("callback", "error"), [
    (lambda batch_id: None, "module level"),
    (Queue, "not the class"),
    (Queue.prepare_data(tj.noop, depends_on="x"), "cannot take depends_on"),
    (Queue.prepare_data(tj.noop, job_id="mine"), "cannot take job_id"),
])
def test_a_callback_a_worker_could_not_run_is_refused_before_anything_is_written(
        callback: Any, error: str, db: psycopg.Connection[Any]) -> None:
    with pytest.raises((TypeError, ValueError), match=error):
        Batch(on_complete=callback)
    assert db.execute("SELECT count(*) FROM pgqueue.batches").fetchone() == (0,)


@pytest.mark.timeout(120)
def test_members_stream_in_by_copy_and_are_read_a_page_at_a_time(db: psycopg.Connection[Any]) -> None:
    other = Queue("other")
    with Batch(on_complete=tj.batch_callback) as batch:
        batch.enqueue_many(Queue.prepare_data(tj.noop, args=(i,)) for i in range(10_000))  # COPY, 5 columns
        other.enqueue_many([Queue.prepare_data(tj.noop, args=(i,), priority=3) for i in range(5)], batch=batch)
        batch.enqueue_many([Queue.prepare_data(tj.noop, job_id=f"own-{i}") for i in range(3)])  # not COPY
    assert (batch.total, batch.pending) == (10_008, 10_008)
    assert db.execute("SELECT count(*) FROM pgqueue.jobs WHERE batch_id = %s", (batch.id,)).fetchone() == (10_008,)
    page = batch.members(limit=1000)  # in the order they were enqueued
    assert len(page) == 1000 and [j.args for j in page[:3]] == [[0], [1], [2]]
    assert [j.id for j in batch.members(after=page[-1].id, limit=2)] == [
        j.id for j in batch.iter_members(page=1001)][1000:1002]
    assert sum(1 for _ in batch.iter_members(page=4000)) == 10_008
    own = [j.id for j in batch.members(status="queued", after=page[-1].id, limit=100_000)][-3:]
    assert own == ["own-0", "own-1", "own-2"]
    with pytest.raises(NoSuchJobError, match="not a member"):
        batch.members(after="own-7")
    with pytest.raises(ValueError, match="limit"):
        batch.members(limit=0)


def test_a_requeued_member_counts_again_and_fires_nothing_twice(db: psycopg.Connection[Any]) -> None:
    with Batch(**callbacks()) as batch:
        batch.enqueue(tj.noop)
        flaky = batch.enqueue(tj.fail_first_attempt)
    drain()
    batch.refresh()
    assert (batch.status, batch.failed) == ("failed", 1)
    assert flaky.requeue()
    batch.refresh()
    assert (batch.pending, batch.failed, batch.status) == (1, 0, "failed")  # completed: that does not change
    drain()
    batch.refresh()
    assert (batch.pending, batch.finished, batch.failed) == (0, 2, 0)
    assert sorted(tags(db)) == [f"complete:{batch.id}", f"failure:{batch.id}"]  # once each


def test_a_callback_that_raises_is_retried_like_any_job(db: psycopg.Connection[Any]) -> None:
    with Batch(on_complete=Queue.prepare_data(tj.flaky_callback, retry=Retry(max=1)),
               on_success=Callback(tj.batch_callback, timeout=30)) as batch:
        batch.enqueue(tj.noop)
    drain()
    batch.refresh()
    jobs = {j.func_name: j for j in batch.callback_jobs()}
    flaky = jobs["pgq_testjobs.flaky_callback"]
    assert (flaky.status, flaky.attempts, flaky.result) == (JobStatus.FINISHED, 2, "second attempt")
    assert jobs["pgq_testjobs.batch_callback"].timeout == 30
    assert tags(db).count(f"flaky:{batch.id}") == 2 and len(batch.callback_ids) == 2


def test_members_deleted_or_expired_count_as_canceled(db: psycopg.Connection[Any]) -> None:
    with Batch(Queue("members"), **callbacks()) as batch:
        kept = batch.enqueue(tj.noop)
        deleted = batch.enqueue(tj.noop)
        expired = batch.enqueue(tj.noop, ttl=60)
        emptied = Queue("doomed").enqueue_many([Queue.prepare_data(tj.noop)], batch=batch)[0]
    deleted.delete()
    Queue("doomed").empty()
    db.execute("UPDATE pgqueue.jobs SET enqueued_at = now() - interval '1 hour' WHERE id = %s", (expired.id,))
    drain("members")  # its maintenance expires one, it runs the other
    batch.refresh()
    assert (batch.finished, batch.canceled, batch.status) == (1, 3, "failed")
    assert Job.fetch(kept.id).status == JobStatus.FINISHED and not Job.exists(emptied.id)
    assert sorted(tags(db)) == [f"complete:{batch.id}", f"failure:{batch.id}"]


def test_a_batch_in_the_callers_transaction(db: psycopg.Connection[Any], dsn: str) -> None:
    with psycopg.connect(dsn) as conn:  # not autocommit: a transaction is open once a statement ran
        conn.execute("SELECT 1")
        with Batch(connection=conn, on_complete=tj.batch_callback) as batch:
            batch.enqueue(tj.noop)
        assert db.execute("SELECT count(*) FROM pgqueue.batches").fetchone() == (0,)  # not committed yet
        conn.rollback()
    assert db.execute("SELECT count(*) FROM pgqueue.batches").fetchone() == (0,)
    with psycopg.connect(dsn) as conn:
        with Batch(connection=conn) as kept:
            kept.enqueue(tj.noop)
        conn.commit()
    assert Batch.fetch(kept.id).total == 1


def test_pgqueue_batches_shows_them(db: psycopg.Connection[Any]) -> None:
    with Batch(on_complete=tj.batch_callback, description="nightly import") as batch:
        batch.enqueue(tj.noop)
        batch.enqueue(tj.fail)
    drain()
    listed = run_cli("batches")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split()[:7] == ["BATCH", "STATUS", "TOTAL", "FINISHED", "FAILED", "CANCELED", "PENDING"]
    assert row.split()[:7] == [batch.id, "failed", "2", "1", "1", "0", "0"] and row.endswith("nightly import")
    raw = run_cli("batches", batch.id, "--raw").stdout.splitlines()
    assert raw[0] == f"batch {batch.id} failed 2 1 1 0 0"
    assert raw[1].startswith("callback ") and raw[1].endswith("pgq_testjobs.batch_callback finished")
    unknown = run_cli("batches", "no-such-batch")
    assert unknown.returncode == 1 and "no batch with id 'no-such-batch'" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_a_batch_goes_with_its_last_member_once_it_completed(db: psycopg.Connection[Any]) -> None:
    """The Pruner deletes a batch's row once it completed, its callbacks ended and its members were deleted by
    their result_ttl / failure_ttl; a batch whose members are kept stays."""
    with Batch(on_complete=Queue.prepare_data(tj.batch_callback, result_ttl=0)) as gone:
        gone.enqueue(tj.noop, result_ttl=0)
        gone.enqueue(tj.fail, failure_ttl=0)
    with Batch(on_complete=tj.batch_callback) as kept:
        kept.enqueue(tj.noop, result_ttl=0)
        kept.enqueue(tj.noop)
    drain()  # runs the members, then the callbacks
    assert Batch.fetch(gone.id).is_complete and Batch.fetch(kept.id).is_complete
    drain()  # its maintenance prunes the members, then the batch
    with pytest.raises(NoSuchBatchError):
        Batch.fetch(gone.id)
    assert Batch.fetch(kept.id).total == 2


def test_members_go_in_the_batchs_transaction_only(dsn: str) -> None:
    with Batch() as batch:
        with pytest.raises(TypeError, match="give Batch"):
            batch.enqueue(tj.noop, connection=object())
        with psycopg.connect(dsn) as other, pytest.raises(ValueError, match="give the connection to Batch"):
            Queue("x").enqueue_many([Queue.prepare_data(tj.noop)], connection=other, batch=batch)
        batch.enqueue(tj.noop)
    assert batch.total == 1


def test_a_page_of_members_starts_at_its_place_in_the_index(db: psycopg.Connection[Any]) -> None:
    """Each page is found through jobs_batch_idx from where the last one ended (batch id and position in
    the index condition), not by reading the pages before it: iter_members costs the same per page on a
    batch of 100,000."""
    from pgqueue.sql import statement

    db.execute("SET plan_cache_mode = force_generic_plan")
    db.execute(f"PREPARE page AS {statement('batch_members')[1].decode()}")
    plan = "\n".join(r[0] for r in db.execute("EXPLAIN EXECUTE page('b', 100, NULL, 1000)"))
    assert "jobs_batch_idx" in plan and "Index Cond: ((batch_id = $1) AND (\"position\" >" in plan, plan


@pytest.mark.timeout(120)
def test_a_batch_of_100000_members_streams_in_and_reads_in_pages(db: psycopg.Connection[Any]) -> None:
    with Batch(on_complete=tj.batch_callback) as batch:
        jobs = batch.enqueue_many(Queue.prepare_data(tj.noop, args=(i,)) for i in range(100_000))
    assert (len(jobs), batch.total, batch.pending) == (100_000, 100_000, 100_000)
    first = batch.members(limit=3)
    assert [j.args for j in first] == [[0], [1], [2]]
    assert [j.args for j in batch.members(after=jobs[-3].id)] == [[99_998], [99_999]]
    Queue("default").empty()  # every member ends (deleted): the batch completes, on_complete is enqueued
    batch.refresh()
    assert (batch.canceled, batch.pending, batch.status, len(batch.callback_ids)) == (100_000, 0, "failed", 1)
