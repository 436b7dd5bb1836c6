"""unique_key under churn: a worker ends the key's jobs while others enqueue with that key. enqueue must
return the live job or create one, never fail because the job it conflicted with ended meanwhile."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest
from conftest import wait_for

from pgqueue import Job, Queue

KEY = "churn"
ROUNDS = 150  # per thread; at ~5% of calls failing before the fix, 600 calls all passing is not luck


def _churn(spawn_worker: Any, db: psycopg.Connection[Any], enqueue: Callable[[int, int], list[Job]],
           threads: int = 4) -> list[Job]:
    """Run ``enqueue(thread, round)`` ROUNDS times in each of ``threads`` threads while a real worker
    process runs the key's jobs as fast as they come; returns every Job the calls returned."""
    worker = spawn_worker("churn", "--concurrency", "2")
    jobs: list[Job] = []
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(ROUNDS):
                jobs.extend(enqueue(t, i))
        except BaseException as exc:  # noqa: B036 - collected and asserted below
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(60)
    assert errors == []
    assert len(jobs) >= threads * ROUNDS
    assert all(j.unique_key == KEY and j.queue == "churn" for j in jobs)
    # The worker really ended the key's jobs meanwhile: many distinct jobs held the key in turn.
    finished = db.execute("SELECT count(*) FROM pgqueue.jobs WHERE unique_key = %s AND status = 'finished'",
                          (KEY,)).fetchone()
    assert finished is not None and finished[0] > 10, worker.output
    # At no time two live jobs with the key (the unique index), and each returned job exists.
    ids = {j.id for j in jobs}
    stored = {r[0] for r in db.execute("SELECT id FROM pgqueue.jobs WHERE id = ANY(%s)", (list(ids),))}
    assert stored == ids
    return jobs


def test_enqueue_returns_the_live_job_or_a_new_one_while_a_worker_ends_them(spawn_worker: Any,
                                                                             db: psycopg.Connection[Any]) -> None:
    q = Queue("churn")
    _churn(spawn_worker, db, lambda t, i: [q.enqueue(tj.noop, i, unique_key=KEY)])


def test_concurrent_enqueues_that_replace_the_holder_under_the_same_churn(spawn_worker: Any,
                                                                          db: psycopg.Connection[Any]) -> None:
    """unique_key_conflict="replace": each call replaces the holder if it has not started, returns it if it
    runs, or makes a new job if the holder ended: never two live jobs, never an error, and what a holder that
    has not started holds is always one of the calls' arguments."""
    q = Queue("churn")
    sent: set[tuple[int, int]] = set()

    def enqueue(t: int, i: int) -> list[Job]:
        sent.add((t, i))
        return [q.enqueue(tj.noop, [t, i], unique_key=KEY, unique_key_conflict="replace")]

    _churn(spawn_worker, db, enqueue)
    for (args,) in db.execute("SELECT args FROM pgqueue.jobs WHERE unique_key = %s", (KEY,)):
        assert tuple(args[0]) in sent


def test_enqueue_call_and_enqueue_many_under_the_same_churn(spawn_worker: Any, db: psycopg.Connection[Any]) -> None:
    q = Queue("churn")

    def enqueue(t: int, i: int) -> list[Job]:
        if t % 2:
            return [q.enqueue_call(tj.noop, args=(i,), unique_key=KEY)]
        # two items with the key in one batch, and one without: all come back (the two as one job, or,
        # if that job ended between them, each as the live job or a new one)
        jobs = q.enqueue_many([Queue.prepare_data(tj.noop, args=(i,), unique_key=KEY),
                               Queue.prepare_data(tj.noop, args=(i,), unique_key=KEY),
                               Queue.prepare_data(tj.noop, args=(i,), priority=1)])
        assert len(jobs) == 3 and jobs[2].unique_key is None
        return jobs[:2]

    _churn(spawn_worker, db, enqueue)


@pytest.mark.parametrize("many", [False, True], ids=["enqueue", "enqueue_many"])
def test_inside_a_caller_s_transaction_the_retry_keeps_the_transaction_usable(
        spawn_worker: Any, db: psycopg.Connection[Any], dsn: str, many: bool) -> None:
    q = Queue("churn")
    local = threading.local()
    conns: list[psycopg.Connection[Any]] = []

    def enqueue(t: int, i: int) -> list[Job]:
        if not hasattr(local, "conn"):
            local.conn = psycopg.connect(dsn)  # one transaction per round: the caller's
            conns.append(local.conn)
        conn = local.conn
        conn.execute("INSERT INTO pgq_test.runs (tag) VALUES (%s)", (f"{t}:{i}",))  # the caller's own write
        if many:
            jobs = q.enqueue_many([Queue.prepare_data(tj.noop, args=(i,), unique_key=KEY)], connection=conn)
        else:
            jobs = [q.enqueue(tj.noop, i, unique_key=KEY, connection=conn)]
        conn.execute("SELECT 1")  # the transaction still takes statements
        conn.commit()
        return jobs

    try:
        _churn(spawn_worker, db, enqueue)
    finally:
        for conn in conns:
            conn.close()
    # Every caller's transaction committed its own write along with the enqueue.
    assert db.execute("SELECT count(*) FROM pgq_test.runs WHERE tag IS NOT NULL").fetchone() == (4 * ROUNDS,)
    wait_for(lambda: db.execute("SELECT count(*) FROM pgqueue.jobs WHERE status <> 'finished'").fetchone() == (0,),
             message="the worker to finish the key's last job")
