"""Maintenance under stress: a mass rescue after an outage, and maintenance statements that fail."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest
from conftest import wait_for

from pgqueue import Queue

LOST_WORKERS = 4
LOST_JOBS = 4000  # 1,000 per dead worker; half without an attempt left


def _seed_lost_jobs(db: psycopg.Connection[Any]) -> list[str]:
    """Jobs that workers gone for an hour were running: their ids are long (150 bytes), so that the ids of
    one batch would need far more than one NOTIFY payload (8,000 bytes)."""
    worker_ids = [db.execute(
        "INSERT INTO pgqueue.workers (name, hostname, pid, queues, concurrency, lease_seconds, started_at,"
        " heartbeat_at) VALUES (%s, 'gone', 1, '{lost}', 1, 30, now() - interval '2 hours',"
        " now() - interval '1 hour') RETURNING id",
        (f"dead-{i}",)).fetchone()[0] for i in range(LOST_WORKERS)]  # type: ignore[index]
    db.execute("""
        INSERT INTO pgqueue.jobs (id, queue, func_name, args, status, attempts, claim_count, max_attempts,
                                  worker_id, worker_name, started_at)
        SELECT 'lost-' || lpad(i::text, 145, '0'), 'lost', 'pgq_testjobs.noop', jsonb_build_array(i), 'running',
               1, 1, 1 + i %% 2, (%s::bigint[])[1 + i %% %s], 'dead', now() - interval '1 hour'
        FROM generate_series(1, %s) i""", (worker_ids, LOST_WORKERS, LOST_JOBS))
    return [r[0] for r in db.execute("SELECT id FROM pgqueue.jobs WHERE queue = 'lost' ORDER BY id").fetchall()]


def _listen_done(dsn: str, stop: threading.Event, payloads: list[str]) -> threading.Thread:
    """Collect every pgqueue_done payload in a thread, until ``stop``."""
    def listen() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("LISTEN pgqueue_done")
            ready.set()
            while not stop.is_set():
                for note in conn.notifies(timeout=0.2, stop_after=1000):
                    payloads.append(note.payload)

    ready = threading.Event()
    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert ready.wait(10)
    return thread


@pytest.mark.timeout(120)
def test_thousands_of_lost_jobs_are_rescued_in_batches_while_the_worker_serves(
        spawn_worker: Callable[..., Any], db: psycopg.Connection[Any], dsn: str) -> None:
    """After an outage longer than the lease, 4,000 jobs of 4 dead workers wait to be rescued. Before, the
    rescue sent every id in one NOTIFY, PostgreSQL refused it ("payload string too long"), and every worker
    that started died the same way. Now the rescue works a bounded batch at a time, between claims, and
    notifies in payloads that fit."""
    ids = _seed_lost_jobs(db)
    fresh = Queue("fresh").enqueue(tj.noop, 7)
    payloads: list[str] = []
    stop = threading.Event()
    listener = _listen_done(dsn, stop, payloads)
    worker = spawn_worker("fresh", "lost", "--lease", "30", "--concurrency", "2")
    try:
        wait_for(lambda: db.execute("SELECT count(*) FROM pgqueue.jobs WHERE queue = 'lost' "
                                    "AND status NOT IN ('finished', 'failed')").fetchone() == (0,),
                 90, interval=0.2, message="every lost job to be rescued and, with an attempt left, run again")
    finally:
        stop.set()
        listener.join(10)
    assert worker.proc.poll() is None, worker.output[-3000:]
    assert "payload string too long" not in worker.output

    rows = db.execute("SELECT status::text, attempts, max_attempts, exc_info, ended_at FROM pgqueue.jobs "
                      "WHERE queue = 'lost' ORDER BY id").fetchall()
    assert len(rows) == len(ids) == LOST_JOBS
    failed = [r for r in rows if r[2] == 1]
    retried = [r for r in rows if r[2] == 2]
    assert {r[0] for r in failed} == {"failed"} and all(r[3].startswith("worker lost: dead") for r in failed)
    assert {(r[0], r[1]) for r in retried} == {("finished", 2)}  # the retry ran on the live worker

    # The new job was served between rescue batches, not after all of them.
    started = db.execute("SELECT started_at FROM pgqueue.jobs WHERE id = %s", (fresh.id,)).fetchone()[0]  # type: ignore[index]
    assert started < max(r[4] for r in failed), "the worker served nothing until the whole rescue was done"
    assert worker.output.count("rescued 1000 job(s)") >= 2

    # Every failed job's waiters were notified, in payloads PostgreSQL accepts.
    notified = {i for p in payloads for i in p.split(",")}
    failed_ids = {i for i, r in zip(ids, rows, strict=True) if r[2] == 1}
    assert failed_ids <= notified
    assert max(len(p.encode()) for p in payloads) < 8000 and len(payloads) > 1


@pytest.mark.timeout(60)
def test_a_maintenance_statement_that_fails_is_logged_and_retried_while_the_worker_serves(
        spawn_worker: Callable[..., Any], db: psycopg.Connection[Any], dsn: str) -> None:
    """The rescue's UPDATE waits for a lock the test holds (a trigger takes an advisory lock): after its
    lock timeout the statement fails. The worker logs the cause, retries with back-off, serves new jobs
    meanwhile, and rescues the job once the lock is free."""
    db.execute("""
        CREATE FUNCTION pgq_test.hold_rescue() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.exc_info LIKE 'worker lost%' THEN PERFORM pg_advisory_xact_lock(4242); END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER hold_rescue BEFORE UPDATE ON pgqueue.jobs FOR EACH ROW EXECUTE FUNCTION pgq_test.hold_rescue();
    """)
    try:
        db.execute("SELECT pg_advisory_lock(4242)")
        dead = db.execute(
            "INSERT INTO pgqueue.workers (name, hostname, pid, queues, concurrency, lease_seconds, heartbeat_at)"
            " VALUES ('dead', 'gone', 1, '{lost}', 1, 30, now() - interval '1 hour') RETURNING id").fetchone()[0]  # type: ignore[index]
        db.execute("INSERT INTO pgqueue.jobs (id, queue, func_name, status, attempts, claim_count, max_attempts,"
                    " worker_id, worker_name, started_at) VALUES ('lost-1', 'lost', 'pgq_testjobs.noop', 'running',"
                    " 1, 1, 1, %s, 'dead', now())", (dead,))
        worker = spawn_worker("fresh", "--lease", "30")
        wait_for(lambda: worker.output.count("maintenance (rescue) failed: LockNotAvailable") >= 2, 20,
                 message="the rescue to fail and be retried")
        assert "canceling statement due to lock timeout" in worker.output
        served = Queue("fresh").enqueue(tj.add, 2, 3)
        assert served.wait(timeout=20) == 5  # claiming goes on while maintenance fails
        assert db.execute("SELECT status::text FROM pgqueue.jobs WHERE id = 'lost-1'").fetchone() == ("running",)
        db.execute("SELECT pg_advisory_unlock(4242)")
        wait_for(lambda: db.execute("SELECT status::text FROM pgqueue.jobs WHERE id = 'lost-1'").fetchone()
                 == ("failed",), 40, message="the rescue to succeed once the lock is free")
        assert worker.proc.poll() is None, worker.output[-3000:]
    finally:
        db.execute("SELECT pg_advisory_unlock_all()")
        db.execute("DROP TRIGGER hold_rescue ON pgqueue.jobs; DROP FUNCTION pgq_test.hold_rescue()")
