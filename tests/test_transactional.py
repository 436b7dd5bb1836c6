"""Transactional enqueue: with a psycopg Connection, a SQLAlchemy Connection and a SQLAlchemy Session the
job row and the worker wake-up exist only if the caller's transaction commits."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest
import sqlalchemy as sa
from conftest import count_jobs, wait_for
from sqlalchemy.orm import Session

from pgqueue import ConfigurationError, JobStatus, Queue


@contextmanager
def psycopg_txn(dsn: str, first: bool = True) -> Iterator[Any]:
    with psycopg.connect(dsn) as conn:  # not autocommit: a transaction is open after the first statement
        if first:
            conn.execute("SELECT 1")
        yield conn, conn.commit, conn.rollback


@contextmanager
def sa_connection_txn(dsn: str, first: bool = True) -> Iterator[Any]:
    engine = sa.create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(dsn))
    with engine.connect() as conn:
        if first:
            conn.execute(sa.text("SELECT 1"))
        yield conn, conn.commit, conn.rollback
    engine.dispose()


@contextmanager
def sa_session_txn(dsn: str, first: bool = True) -> Iterator[Any]:
    engine = sa.create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(dsn))
    with Session(engine) as session:
        if first:
            session.execute(sa.text("SELECT 1"))
        yield session, session.commit, session.rollback
    engine.dispose()


# Each kind with a statement of the caller's before the enqueue, and with the enqueue as the transaction's
# first statement (SQLAlchemy has not begun its transaction then: the enqueue must begin it, or commit()
# commits nothing and the pool's rollback loses the job).
KINDS = {"psycopg": psycopg_txn, "sqlalchemy-connection": sa_connection_txn, "sqlalchemy-session": sa_session_txn}
KINDS.update({f"{name}, enqueue first": functools.partial(kind, first=False) for name, kind in list(KINDS.items())})


@pytest.mark.parametrize("kind", KINDS)
def test_commit_keeps_job_and_wakes_workers(kind: str, dsn: str, db: psycopg.Connection[Any],
                                            listener: Callable[[float], list[str]]) -> None:
    with KINDS[kind](dsn) as (conn, commit, _):
        job = Queue("txn").enqueue(tj.noop, 1, connection=conn)
        many = Queue("txn").enqueue_many([Queue.prepare_data(tj.noop, args=(i,)) for i in range(3)], connection=conn)
        assert count_jobs(db) == 0  # invisible to others until commit
        assert listener(0.2) == []  # and nobody is woken yet
        commit()
    assert count_jobs(db) == 4
    assert "txn" in listener(5)
    assert job.get_status() == JobStatus.QUEUED and all(j.get_status() == JobStatus.QUEUED for j in many)


@pytest.mark.parametrize("kind", KINDS)
def test_rollback_leaves_no_trace(kind: str, dsn: str, db: psycopg.Connection[Any],
                                  listener: Callable[[float], list[str]]) -> None:
    with KINDS[kind](dsn) as (conn, _, rollback):
        Queue("txn").enqueue(tj.noop, 1, connection=conn)
        Queue("txn").enqueue_many([Queue.prepare_data(tj.noop, args=(i,)) for i in range(3)], connection=conn)
        rollback()
    assert count_jobs(db) == 0
    assert listener(0.5) == []


def test_enqueue_never_commits_the_callers_transaction(dsn: str, db: psycopg.Connection[Any]) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TEMP TABLE marker (x int)")
        Queue("txn").enqueue(tj.noop, connection=conn)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        conn.rollback()
    assert count_jobs(db) == 0


def test_idle_worker_wakes_for_committed_jobs_only(dsn: str, db: psycopg.Connection[Any], spawn_worker: Any) -> None:
    # A 60 s poll interval: anything that runs within the deadline below was started by NOTIFY.
    worker = spawn_worker("txn", "--poll-interval", "60")
    with psycopg.connect(dsn) as conn:
        rolled_back = Queue("txn").enqueue(tj.record, "rolled back", connection=conn)
        conn.rollback()
        committed = Queue("txn").enqueue(tj.record, "committed", connection=conn)
        conn.commit()
    wait_for(lambda: committed.get_status() == JobStatus.FINISHED, timeout=15, message="the committed job to run")
    assert db.execute("SELECT tag FROM pgq_test.runs").fetchall() == [("committed",)]
    assert Queue("txn").fetch_job(rolled_back.id) is None
    assert f"Job OK ({committed.id})" in worker.output
    assert rolled_back.id not in worker.output


def test_rejects_what_it_cannot_join() -> None:
    with pytest.raises(ConfigurationError, match="psycopg 3 Connection"):
        Queue("txn").enqueue(tj.noop, connection=object())


@pytest.mark.parametrize("end", ["commit", "rollback"])
@pytest.mark.parametrize("kind", [k for k in KINDS if k.endswith("enqueue first")])
def test_enqueue_many_as_the_first_statement_joins_the_transaction(kind: str, end: str, dsn: str,
                                                                   db: psycopg.Connection[Any]) -> None:
    with KINDS[kind](dsn) as (conn, commit, rollback):
        Queue("txn").enqueue_many([Queue.prepare_data(tj.noop, args=(i,)) for i in range(3)], connection=conn)
        assert count_jobs(db) == 0
        (commit if end == "commit" else rollback)()
    assert count_jobs(db) == (3 if end == "commit" else 0)


def test_each_enqueue_on_pgqueues_own_connection_wakes_workers_once(listener: Callable[[float], list[str]]) -> None:
    Queue("own").enqueue(tj.noop, 1)
    Queue("opts").enqueue(tj.noop, 2, job_timeout=5, job_id="fixed-id")
    Queue("opts").enqueue(tj.noop, 3, job_id="fixed-id")  # the id exists: no row written, no wake-up
    received: list[str] = []
    deadline = time.monotonic() + 5
    while len(received) < 2 and time.monotonic() < deadline:
        received += listener(0.5)
    received += listener(0.3)  # anything more that was sent
    assert sorted(received) == ["opts", "own"]
