"""Suspending workers and pausing queues (RQ's `rq suspend` / `rq resume`, and paused queues), with real
worker processes. Each worker is given a fallback poll of a minute, so what it notices within a test's
deadline it learnt from the pgqueue_control notification, unless a test says otherwise."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest
import rqparity_jobs as rj
from conftest import run_cli, wait_for
from test_pgbouncer import left_behind, reset_sessions

import pgqueue
from pgqueue import JobStatus, Queue, Worker, _db, monitor

SLOW_POLL = ("--poll-interval", "60")


def tags(db: psycopg.Connection[Any]) -> list[str]:
    return [r[0] for r in db.execute("SELECT tag FROM pgq_test.runs ORDER BY at, tag").fetchall()]


def pauses(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return db.execute("SELECT scope, reason FROM pgqueue.pauses ORDER BY scope").fetchall()


def db_now(db: psycopg.Connection[Any]) -> datetime:
    return db.execute("SELECT now()").fetchone()[0]  # type: ignore[index]


def test_suspended_worker_finishes_its_job_claims_nothing_and_resumes(spawn_worker: Any,
                                                                     db: psycopg.Connection[Any]) -> None:
    worker = spawn_worker("default", "--verbose", *SLOW_POLL)
    running = Queue().enqueue(rj.hold, "running")
    wait_for(lambda: "started:running" in tags(db), message="the job to start")

    result = run_cli("suspend")
    assert result.returncode == 0, result.stderr
    assert "Suspended all workers" in result.stdout and "pgqueue resume" in result.stdout
    wait_for(lambda: "suspended, run `pgqueue resume` to resume" in worker.output, message="the worker to hear it")
    tj.record("release:running")
    wait_for(lambda: running.get_status() == JobStatus.FINISHED, message="the running job to finish")

    claims_refused = worker.output.count("claims nothing: suspended")
    waiting = Queue().enqueue(tj.record, "waiting")
    # The enqueue's notification makes the worker look, and it claims nothing.
    wait_for(lambda: worker.output.count("claims nothing: suspended") > claims_refused,
             message="the worker to decline the new job")
    assert waiting.get_status() == JobStatus.QUEUED and "waiting" not in tags(db)

    resumed_at = db_now(db)
    result = run_cli("resume")
    assert result.returncode == 0 and result.stdout.strip() == "Resumed all workers.", result
    wait_for(lambda: waiting.get_status() == JobStatus.FINISHED, message="the job to run after resume")
    waiting.refresh()
    assert waiting.started_at is not None and waiting.started_at >= resumed_at
    assert worker.output.count("suspended, run `pgqueue resume`") == 1
    assert worker.output.count(": resumed") == 1


def test_paused_queue_is_skipped_while_the_others_are_served(spawn_worker: Any, db: psycopg.Connection[Any]) -> None:
    worker = spawn_worker("a", "b", *SLOW_POLL)
    result = run_cli("suspend", "--queue", "a")
    assert result.returncode == 0 and result.stdout.startswith("Paused queue a:"), result
    wait_for(lambda: "queue a paused" in worker.output, message="the worker to hear of the pause")
    assert Queue("a").is_paused and not Queue("b").is_paused and not pgqueue.is_suspended()

    # One transaction, one wake-up: a claim by queue order takes a's job before b's, so b's job finishing
    # while a's stays queued shows the claim skipped a.
    with psycopg.connect(db.info.dsn) as conn:
        skipped = Queue("a").enqueue(tj.record, "in a", connection=conn)
        served = Queue("b").enqueue(tj.record, "in b", connection=conn)
    wait_for(lambda: served.get_status() == JobStatus.FINISHED, message="b's job to run")
    assert skipped.get_status() == JobStatus.QUEUED

    assert Queue("a").resume() is True
    wait_for(lambda: skipped.get_status() == JobStatus.FINISHED, message="a's job to run once resumed")
    assert Queue("a").resume() is False  # not paused any more
    assert worker.output.count("queue a paused") == 1 and worker.output.count("queue a resumed") == 1
    assert "suspended" not in worker.output


def test_a_suspension_with_a_duration_ends_by_itself(spawn_worker: Any, db: psycopg.Connection[Any]) -> None:
    worker = spawn_worker("default", *SLOW_POLL)
    until = pgqueue.suspend(duration=1.5)
    assert until is not None and until > db_now(db)
    assert db.execute("SELECT until FROM pgqueue.pauses").fetchone() == (until,)  # the end, kept with the pause
    wait_for(lambda: "suspended until" in worker.output, message="the worker to hear of it")
    job = Queue().enqueue(tj.add, 1, 2)
    # The worker's fallback poll is a minute away: it reads the pauses again when the suspension ends.
    wait_for(lambda: job.get_status() == JobStatus.FINISHED, message="the job to run once the suspension ended")
    job.refresh()
    assert job.started_at is not None and job.started_at >= until
    assert not pgqueue.is_suspended() and monitor.pauses() == []
    assert worker.output.count(": resumed") == 1


def test_a_pause_written_without_notification_is_seen_at_the_fallback_poll(spawn_worker: Any,
                                                                           db: psycopg.Connection[Any]) -> None:
    """What a worker without LISTEN (PgBouncer's transaction mode) or one whose notification was lost relies on."""
    worker = spawn_worker("default", "--poll-interval", "0.3")
    db.execute("INSERT INTO pgqueue.pauses (scope) VALUES ('all')")  # no NOTIFY
    wait_for(lambda: "suspended, run `pgqueue resume`" in worker.output, message="the poll to read the pause")
    db.execute("DELETE FROM pgqueue.pauses")
    wait_for(lambda: ": resumed" in worker.output, message="the poll to see it gone")
    job = Queue().enqueue(tj.add, 2, 2)
    assert job.wait(timeout=20) == 4


def test_a_worker_started_while_suspended_waits_and_in_burst_mode_exits(spawn_worker: Any) -> None:
    pgqueue.suspend()
    job = Queue().enqueue(tj.add, 1, 1)
    result = run_cli("worker", "--burst")
    assert result.returncode == 0, result.stderr
    assert "suspended, run `pgqueue resume`" in result.stderr
    assert job.get_status() == JobStatus.QUEUED

    worker = spawn_worker("default", *SLOW_POLL)
    wait_for(lambda: "suspended, run `pgqueue resume`" in worker.output, message="the worker to see it")
    assert pgqueue.resume() is True and pgqueue.resume() is False
    assert job.wait(timeout=20) == 2


def test_a_burst_worker_leaves_a_paused_queue_alone(caplog: pytest.LogCaptureFixture) -> None:
    held, other = Queue("held"), Queue("other")
    assert held.pause(duration=timedelta(minutes=5)) is not None
    left = held.enqueue(tj.add, 1, 1)
    done = other.enqueue(tj.add, 2, 2)
    with caplog.at_level(logging.INFO, logger="pgqueue"):
        assert Worker(["held", "other"]).work(burst=True)
    assert left.get_status() == JobStatus.QUEUED and done.get_status() == JobStatus.FINISHED
    said = [r.getMessage() for r in caplog.records if "paused" in r.getMessage()]
    assert len(said) == 1 and "queue held paused until" in said[0]
    assert not Worker(["held"]).work(burst=True)  # nothing it may take: it exits at once


def test_suspend_and_resume_from_python() -> None:
    assert pgqueue.suspend() is None and pgqueue.is_suspended()
    assert pgqueue.suspend(duration="30m") is not None  # suspending again replaces the end
    [pause] = monitor.pauses()
    assert pause.queue is None and pause.until is not None
    assert pause.until - pause.paused_at == timedelta(minutes=30)
    q = Queue("reports")
    assert q.pause() is None and q.is_paused
    assert pgqueue.resume() is True and not pgqueue.is_suspended()
    assert q.is_paused  # resuming the workers leaves paused queues paused
    assert [p.queue for p in monitor.pauses()] == ["reports"]


@pytest.mark.parametrize("duration", [0, -5, "soon", float("nan"), 10**12, True])
def test_a_bad_duration_is_refused_before_anything_is_written(duration: Any, db: psycopg.Connection[Any]) -> None:
    with pytest.raises((ValueError, TypeError), match="duration"):
        pgqueue.suspend(duration=duration)
    with pytest.raises((ValueError, TypeError), match="duration"):
        Queue("q").pause(duration=duration)
    assert pauses(db) == []


def test_info_shows_the_suspension_and_paused_queues(spawn_worker: Any) -> None:
    run_cli("suspend")
    run_cli("suspend", "--queue", "a", "--duration", "1h")
    job = Queue("a").enqueue(tj.noop)
    spawn_worker("a", "--name", "w1", *SLOW_POLL)
    text = run_cli("info").stdout
    assert "a        |████████████████████████████████████████ 1 (paused)" in text
    assert "Workers suspended since" in text and "`pgqueue resume` resumes them" in text
    assert "Queue a paused since" in text and " until " in text and "`pgqueue resume --queue a`" in text
    assert "w1 suspended: a" in text  # an idle worker, while workers are suspended (as RQ shows it)
    raw = run_cli("info", "--raw").stdout.splitlines()
    assert raw[:3] == ["queue a 1", "worker w1 suspended a", "suspended"]
    assert raw[3].startswith("paused a until ")
    result = run_cli("resume")
    assert result.stdout.strip() == "Resumed all workers."
    assert "Queues still paused: a" in result.stderr
    assert run_cli("resume", "--queue", "a", "--queue", "b").stdout.splitlines() == [
        "Resumed queue a.", "Nothing to resume: queue b was not paused."]
    wait_for(lambda: job.get_status() == JobStatus.FINISHED, message="the job to run once all is resumed")
    assert run_cli("info", "--raw").stdout.splitlines() == ["queue a 0", "worker w1 idle a"]


@pytest.mark.nodb
@pytest.mark.parametrize(("args", "says"), [
    (["suspend", "--duration", "0"], "'0' is not a pause's length"),
    (["suspend", "--duration", "-3"], "'-3' is not a pause's length"),
    (["suspend", "-d", "soon"], "'soon' is not a pause's length: pass seconds, or a string such as 30m"),
    (["suspend", "--queue", ""], "the queue name must not be empty."),
    (["suspend", "--queue", "x" * 1001], "a queue name must be at most 1000 bytes"),
    (["resume", "--queue", " "], "the queue name must not be empty."),
    (["suspend", "--for", "3"], "No such option '--for'"),
])
def test_bad_suspend_and_resume_options_are_one_error_line_and_exit_2(args: list[str], says: str) -> None:
    result = run_cli(*args, "--dsn", "postgresql://nobody@127.0.0.1:1/none")
    assert result.returncode == 2, result
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and says in errors[0], result.stderr
    assert result.stdout == ""


@pytest.fixture
def pooled(pgbouncer: Any, dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """As tests/test_pgbouncer.py's: pgqueue through the pooler in transaction-pooling mode."""
    url = pgbouncer.dsn(dsn)
    reset_sessions(url, pgbouncer.pool_size)
    monkeypatch.setenv("PGQUEUE_DATABASE_URL", url)
    monkeypatch.setenv("PGQUEUE_TRANSACTION_POOLING", "1")
    monkeypatch.delenv("PGQUEUE_LISTEN_DATABASE_URL", raising=False)
    _db.close_shared_connections()
    yield url
    pgqueue.configure(transaction_pooling=None, listen_dsn=None)


def test_a_worker_behind_a_transaction_pooler_sees_pauses_at_its_poll(pooled: str, pgbouncer: Any,
                                                                     spawn_worker: Any) -> None:
    """No LISTEN behind PgBouncer in transaction mode: the worker reads the pauses at each poll (and leaves
    nothing in the pool's sessions)."""
    worker = spawn_worker("bouncer", "--poll-interval", "0.2", "--verbose")
    assert "not listening for new jobs" in worker.output
    assert run_cli("suspend").returncode == 0  # through the pooler too
    wait_for(lambda: "suspended, run `pgqueue resume`" in worker.output, message="the poll to read the pause")
    declined = worker.output.count("claims nothing: suspended")
    job = Queue("bouncer").enqueue(tj.add, 4, 5)
    # Two more claim rounds: one of them began after the job was committed.
    wait_for(lambda: worker.output.count("claims nothing: suspended") >= declined + 2, message="two polls")
    assert job.get_status() == JobStatus.QUEUED
    assert run_cli("resume").returncode == 0
    assert job.wait(timeout=20) == 9
    assert worker.output.count(": resumed") == 1
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.output
    assert left_behind(pooled, pgbouncer.pool_size) == {}
