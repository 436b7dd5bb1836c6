"""No NOTIFY pgqueue sends reaches PostgreSQL's payload limit (8,000 bytes), on any path: pgqueue._notify
sizes every payload of ids, and queue names are bounded where they enter."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest

from pgqueue import Job, Queue, Retry, SimpleWorker, Worker, _notify

LIMIT = 8000  # PostgreSQL refuses a payload of this many bytes or more


def test_payloads_fit_keep_the_ids_in_order_and_leave_out_only_ids_too_long_to_send() -> None:
    rng = random.Random(7)
    for _ in range(200):
        ids = ["".join(rng.choice("aé€𝄞,x") for _ in range(rng.choice([1, 36, 300, 3000, 9000])))
               for _ in range(rng.randint(0, 60))]
        payloads = _notify.payloads(ids)
        assert all(len(p.encode()) < LIMIT for p in payloads)
        sendable = [i for i in ids if len(i.encode()) < _notify.PAYLOAD_BYTES]
        assert ",".join(payloads) == ",".join(sendable)


@pytest.fixture
def done_payloads(dsn: str) -> Iterator[list[str]]:
    """Every pgqueue_done payload sent while the test runs, collected by a listening thread."""
    payloads: list[str] = []
    stop, ready = threading.Event(), threading.Event()

    def listen() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("LISTEN pgqueue_done")
            ready.set()
            while not stop.is_set():
                payloads.extend(n.payload for n in conn.notifies(timeout=0.1))

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield payloads
    stop.set()
    thread.join(10)


def _notified(payloads: list[str]) -> set[str]:
    assert all(len(p.encode()) < LIMIT for p in payloads)
    return {i for p in payloads for i in p.split(",")}


def _long_ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i:04d}-" + "x" * 200 for i in range(n)]


def _settle(payloads: list[str], ids: set[str]) -> set[str]:
    from conftest import wait_for
    wait_for(lambda: ids <= _notified(payloads), 10, message="the notifications")
    return _notified(payloads)


def test_finishing_and_failing_a_batch_of_long_ids(done_payloads: list[str]) -> None:
    q = Queue("notify")
    finished = _long_ids("ok", 200)
    failed = _long_ids("ko", 200)
    q.enqueue_many([Queue.prepare_data(tj.noop, args=(i,), job_id=j) for i, j in enumerate(finished)]
                   + [Queue.prepare_data(tj.fail, job_id=j) for j in failed])
    Worker(["notify"], concurrency=1).work(burst=True)
    assert {Job.fetch(j).status.value for j in finished} == {"finished"}
    assert {Job.fetch(j).status.value for j in failed} == {"failed"}
    _settle(done_payloads, set(finished) | set(failed))
    assert len(done_payloads) > 2  # 400 ids of 210 bytes need about a dozen payloads


def test_an_id_too_long_to_notify_still_finishes_fails_and_cancels(done_payloads: list[str],
                                                                    db: psycopg.Connection[Any]) -> None:
    """enqueue refuses a job_id over 1,000 bytes, but the table is plain SQL: a row written there may
    have any id."""
    q = Queue("notify")
    with pytest.raises(ValueError, match="job_id must be at most 1000 bytes"):
        q.enqueue(tj.noop, job_id="h" * 1001)
    huge = "h" * 9000
    for suffix, func in (("1", "pgq_testjobs.noop"), ("2", "pgq_testjobs.fail"), ("3", "pgq_testjobs.noop")):
        db.execute("INSERT INTO pgqueue.jobs (id, queue, func_name) VALUES (%s, 'notify', %s)", (huge + suffix, func))
    ok, ko, canceled = (Job(huge + suffix) for suffix in "123")
    assert canceled.cancel() is True
    SimpleWorker(["notify"]).work(burst=True)
    assert [j.get_status().value for j in (ok, ko, canceled)] == ["finished", "failed", "canceled"]
    short = q.enqueue(tj.noop)  # the statements still notify the jobs that fit
    SimpleWorker(["notify"]).work(burst=True)
    assert short.id in _settle(done_payloads, {short.id})


def test_ttl_expiry_of_many_jobs_notifies_in_payloads_that_fit(done_payloads: list[str],
                                                                db: psycopg.Connection[Any]) -> None:
    ids = _long_ids("ttl", 300)
    Queue("idle").enqueue_many([Queue.prepare_data(tj.noop, job_id=j, ttl=1) for j in ids])
    db.execute("UPDATE pgqueue.jobs SET enqueued_at = now() - interval '1 hour' WHERE queue = 'idle'")
    SimpleWorker(["elsewhere"]).work(burst=True)  # its maintenance expires them
    assert db.execute("SELECT count(*) FROM pgqueue.jobs WHERE status = 'canceled'").fetchone() == (300,)
    _settle(done_payloads, set(ids))


def test_a_retried_job_notifies_its_waiter_when_it_finishes(done_payloads: list[str]) -> None:
    q = Queue("notify")
    job = q.enqueue(tj.fail_first_attempt, retry=Retry(max=1))
    SimpleWorker(["notify"]).work(burst=True)
    assert job.wait(timeout=10) == "the second succeeds"
    assert job.id in _settle(done_payloads, {job.id})


@pytest.mark.parametrize("make", [lambda n: Queue(n), lambda n: Worker([n])], ids=["Queue", "Worker"])
def test_queue_names_are_bounded_where_they_enter(make: Any) -> None:
    make("q" * _notify.MAX_NAME_BYTES)
    with pytest.raises(ValueError, match="at most 1000 bytes"):
        make("q" * (_notify.MAX_NAME_BYTES + 1))
    with pytest.raises(ValueError, match="at most 1000 bytes"):
        make("é" * 501)
