"""Database faults, on a PostgreSQL server the test owns (never the shared test server): a restart
while workers drain a queue, and enqueue while the database cannot be reached."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest
from conftest import wait_for

import pgqueue
from pgqueue import DatabaseUnavailable, Queue, Retry

from . import reliability_jobs as rj
from .conftest import OwnedServer

JOBS = 2000


def _prepare(uri: str) -> None:
    pgqueue.migrate(uri)
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA pgq_test")
        conn.execute("CREATE TABLE pgq_test.runs (job_id text, tag text, pid int, "
                     "at timestamptz NOT NULL DEFAULT clock_timestamp(), token text UNIQUE)")


def _scalar(uri: str, query: str) -> Any:
    """One value, on a fresh connection (the server may have restarted since the last query)."""
    try:
        with psycopg.connect(uri, autocommit=True, connect_timeout=5) as conn:
            row = conn.execute(query).fetchone()
            return row[0] if row else None
    except psycopg.OperationalError:
        return None


@pytest.mark.timeout(120)
def test_postgres_restart_under_load(owned_server: OwnedServer, spawn_worker: Callable[..., Any],
                                     note_recovery: Callable[[str, float], None]) -> None:
    uri = owned_server.uri
    _prepare(uri)
    q = Queue("default", dsn=uri)
    q.enqueue_many([Queue.prepare_data(rj.resilient_record, [str(i)], {"sleep": 0.005}, retry=Retry(max=3))
                    for i in range(JOBS)])
    env = {"PGQUEUE_DATABASE_URL": uri}  # the jobs' own connections
    workers = [spawn_worker("default", "--dsn", uri, "--concurrency", "2", "--lease", "5",
                            "--poll-interval", "30", env=env) for _ in range(2)]

    finished = "SELECT count(*) FROM pgqueue.jobs WHERE status = 'finished'"
    wait_for(lambda: (_scalar(uri, finished) or 0) >= JOBS // 10, 30, message="the drain to get going")
    before = _scalar(uri, finished)
    assert before < JOBS // 2, "the queue drains too fast to restart the server in the middle"

    restart_began = time.monotonic()
    owned_server.restart()  # pg_ctl restart -m fast: every connection is terminated
    restarted = time.monotonic()
    baseline = _scalar(uri, finished)
    wait_for(lambda: (_scalar(uri, finished) or 0) > baseline, 30, interval=0.05,
             message="a job to finish after the restart")
    resumed = time.monotonic()
    wait_for(lambda: _scalar(uri, "SELECT count(*) FROM pgqueue.jobs "
                                  "WHERE status IN ('queued', 'scheduled', 'running', 'deferred')") == 0,
             60, interval=0.2, message="the queue to drain after the restart")
    drained = time.monotonic()

    with psycopg.connect(uri, autocommit=True) as conn:
        rows = conn.execute("""
            SELECT j.id, j.status::text, j.errors, count(r.job_id)
            FROM pgqueue.jobs j LEFT JOIN pgq_test.runs r ON r.job_id = j.id
            GROUP BY j.id""").fetchall()
    assert len(rows) == JOBS
    problems = [f"{job_id}: {status}, ran {runs} times, errors {[e['type'] for e in errors]}"
                for job_id, status, errors, runs in rows
                if status != "finished" or runs < 1 or runs > 1 + len(errors)]
    assert problems == [], "\n".join(problems[:20])
    for i, worker in enumerate(workers):
        assert worker.proc.poll() is None, f"worker {i} exited:\n{worker.output[-2000:]}"
        assert "database connection lost" in worker.output, worker.output[-2000:]
        assert "reconnected to the database" in worker.output, worker.output[-2000:]
    rerun = sum(1 for *_, runs in rows if runs > 1)
    print(f"{before} jobs finished before the restart; restart took {restarted - restart_began:.2f}s; "
          f"{rerun} job(s) re-run")
    note_recovery("6. PostgreSQL restart (pg_ctl restart -m fast, lease 5s): restart began -> first job "
                  "finished after it", resumed - restart_began)
    note_recovery("6. PostgreSQL restart: pg_ctl restart returned -> first job finished", resumed - restarted)
    note_recovery(f"6. PostgreSQL restart: restart began -> all {JOBS} jobs finished", drained - restart_began)

    # Idle workers: they notice the restart on their LISTEN connection and listen again, so a new job is
    # taken at once, not at the next poll (30 s away).
    owned_server.restart()
    restarted = time.monotonic()
    wait_for(lambda: all(w.output.count("reconnected to the database") >= 2 for w in workers), 20,
             message="the idle workers to reconnect")
    with psycopg.connect(uri, autocommit=True) as conn:  # (this process's own pgqueue connection is stale)
        late = q.enqueue(rj.resilient_record, "after-idle-restart", connection=conn)
    wait_for(lambda: _scalar(uri, f"SELECT status FROM pgqueue.jobs WHERE id = '{late.id}'") == "finished", 10,
             interval=0.05, message="the job enqueued after the restart to finish")
    note_recovery("6. PostgreSQL restart with idle workers: pg_ctl restart returned -> new job finished",
                  time.monotonic() - restarted)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.nodb
@pytest.mark.timeout(30)
def test_enqueue_to_a_closed_port_raises_database_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    port = _closed_port()
    url = f"postgresql://postgres@127.0.0.1:{port}/jobs"
    began = time.monotonic()
    with pytest.raises(DatabaseUnavailable) as info:
        Queue("default", dsn=url).enqueue(tj.noop)
    message = str(info.value)
    assert message.startswith(f"cannot reach PostgreSQL at postgres@127.0.0.1:{port}/jobs: "), message
    assert "refused" in message and "\n" not in message, message
    assert time.monotonic() - began < 5, "a refused connection must fail at once"
    print(message)

    monkeypatch.setenv("PGQUEUE_DATABASE_URL", url)  # the environment's URL: same error
    with pytest.raises(DatabaseUnavailable, match=f"cannot reach PostgreSQL at postgres@127.0.0.1:{port}/jobs"):
        Queue().enqueue(tj.noop)
    with pytest.raises(DatabaseUnavailable, match="cannot reach PostgreSQL"):
        Queue().enqueue_many([Queue.prepare_data(tj.noop)])


@pytest.mark.timeout(60)
def test_enqueue_while_the_server_is_stopped_raises_then_recovers(owned_server: OwnedServer) -> None:
    uri = owned_server.uri
    pgqueue.migrate(uri)
    q = Queue("default", dsn=uri)
    first = q.enqueue(tj.noop, 1)  # opens this process's shared connection

    owned_server.stop()
    # The shared connection is now dead but does not know it yet, and then no new one can be made.
    for attempt in ("stale connection", "new connection"):
        with pytest.raises(DatabaseUnavailable) as info:
            q.enqueue(tj.noop, 2)
        message = str(info.value)
        assert message.startswith("cannot reach PostgreSQL at postgres@"), (attempt, message)
        assert "\n" not in message and info.value.__cause__ is None, (attempt, message)
        print(f"{attempt}: {message}")
    with pytest.raises(DatabaseUnavailable):
        q.enqueue_many([Queue.prepare_data(tj.noop, [3])])

    owned_server.start()
    last = q.enqueue(tj.noop, 4)  # reconnects by itself
    with psycopg.connect(uri, autocommit=True) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM pgqueue.jobs ORDER BY position").fetchall()]
    assert ids == [first.id, last.id], "a failed enqueue wrote a job"


@pytest.mark.timeout(90)
def test_after_a_long_outage_workers_serve_again_within_two_seconds_of_the_servers_return(
        owned_server: OwnedServer, spawn_worker: Callable[..., Any],
        note_recovery: Callable[[str, float], None]) -> None:
    """Before, the reconnect back-off doubled up to 10 s: after a 20 s outage workers came back 5.4 s after
    the server. Now it stops at 1 s (each wait within 20% of it, for jitter), however long the outage."""
    import re

    uri = owned_server.uri
    _prepare(uri)
    worker = spawn_worker("default", "--dsn", uri, "--lease", "120", "--poll-interval", "30",
                          env={"PGQUEUE_DATABASE_URL": uri})
    owned_server.stop()
    # Long enough for the back-off to reach its longest wait many times over (it was 8 s by then).
    wait_for(lambda: worker.output.count("reconnecting in") >= 8, 40, interval=0.1,
             message="eight attempts to reconnect")
    owned_server.start()
    back = time.monotonic()
    with psycopg.connect(uri, autocommit=True) as conn:
        job = Queue("default").enqueue(tj.noop, 1, connection=conn)
    wait_for(lambda: _scalar(uri, f"SELECT status FROM pgqueue.jobs WHERE id = '{job.id}'") == "finished", 10,
             interval=0.05, message="a job enqueued after the outage to finish")
    note_recovery("4. PostgreSQL stopped for 8 reconnection attempts: server back -> new job finished",
                  time.monotonic() - back)
    waits = [float(w) for w in re.findall(r"reconnecting in ([0-9.]+)s", worker.output)]
    assert waits and max(waits) <= 1.2, waits
    assert worker.proc.poll() is None
