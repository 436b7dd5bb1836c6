"""Atomic jobs: the job's own writes commit in the transaction that marks it finished."""

from __future__ import annotations

from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest

from pgqueue import Job, JobStatus, Queue, SimpleWorker, Worker


def runs(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return db.execute("SELECT job_id, tag FROM pgq_test.runs").fetchall()


@pytest.mark.parametrize("worker_class", [Worker, SimpleWorker])
def test_writes_and_completion_commit_together(worker_class: type[Worker], db: psycopg.Connection[Any]) -> None:
    job = Queue().enqueue(tj.atomic_write, "paid")
    worker_class().work(burst=True)
    assert job.result == "paid" and job.get_status() == JobStatus.FINISHED
    assert runs(db) == [(job.id, "paid")]


def test_a_failure_rolls_the_writes_back(db: psycopg.Connection[Any]) -> None:
    job = Queue().enqueue(tj.atomic_write, "never", fail=True)
    Worker().work(burst=True)
    assert job.get_status() == JobStatus.FAILED and "fails after writing" in job.exc_info
    assert runs(db) == []


def test_a_lost_lease_rolls_the_writes_back_so_they_happen_once(db: psycopg.Connection[Any]) -> None:
    job = Queue().enqueue(tj.atomic_write, "once", steal_first=True)
    Worker().work(burst=True, max_jobs=1)  # first run: the job is taken away before it can complete
    assert runs(db) == []
    Worker().work(burst=True)  # the run that holds the job now
    fetched = Job.fetch(job.id)
    assert fetched.status == JobStatus.FINISHED
    assert runs(db) == [(job.id, "once")]


@pytest.mark.parametrize("worker_class", [Worker, SimpleWorker])
def test_ended_at_is_when_the_job_ended_not_when_its_transaction_began(worker_class: type[Worker],
                                                                       db: psycopg.Connection[Any]) -> None:
    job = Queue().enqueue(tj.atomic_sleep, 1.0, result_ttl=3600)
    worker_class().work(burst=True)
    ran = job.result  # seconds the function itself measured
    assert ran >= 1.0
    fetched = Job.fetch(job.id)
    assert fetched.started_at is not None and fetched.ended_at is not None
    assert (fetched.ended_at - fetched.started_at).total_seconds() >= ran
    # result_ttl counts from the real end too
    row = db.execute("SELECT delete_at - ended_at FROM pgqueue.jobs WHERE id = %s", (job.id,)).fetchone()
    assert row is not None and row[0].total_seconds() == 3600
