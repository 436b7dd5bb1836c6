"""pgqueue behind PgBouncer 1.18 in transaction pooling mode (the ``pgbouncer`` fixture, pool_size 4):
enqueue, workers, retries, rescue, ``job.wait()`` and the CLI, with ``PGQUEUE_TRANSACTION_POOLING=1``.

Behind a transaction pooler a client's next transaction may run in another server session, and the session
it leaves goes to other clients as it is. So besides what each test does through the pooler, each checks
what pgqueue left in the pool's sessions: no prepared statement, no LISTEN and no session setting
(:func:`left_behind`). The default mode leaves all three (``test_the_default_mode_breaks_behind_the_pooler``).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest
from conftest import run_cli, wait_for
from servers import PgBouncer

import pgqueue
from pgqueue import Job, JobFailed, JobStatus, Queue, Retry, Worker, _db
from pgqueue.exceptions import ConfigurationError

# Settings pgbouncer itself keeps in step with each client (it SETs them when it links a client to a session).
POOLER_PARAMS = ["application_name", "client_encoding", "datestyle", "timezone", "standard_conforming_strings"]
SESSION_STATE = """
SELECT pg_backend_pid(), ARRAY(SELECT pg_listening_channels() ORDER BY 1),
       ARRAY(SELECT name FROM pg_prepared_statements ORDER BY 1),
       ARRAY(SELECT name || '=' || setting FROM pg_settings
             WHERE source = 'session' AND lower(name) <> ALL (%s) ORDER BY 1)
"""


def client(url: str) -> psycopg.Connection[Any]:
    """A client of the pooler that keeps nothing in the session (as an application behind it must)."""
    return psycopg.connect(url, autocommit=True, prepare_threshold=None)


def backend_pid(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


@contextlib.contextmanager
def every_session(url: str, pool_size: int) -> Iterator[list[tuple[psycopg.Connection[Any], tuple[Any, ...]]]]:
    """Each server session of the pool behind ``url``, held by a client in a transaction of its own, with
    its state (pid, channels listened to, prepared statements, settings SET in the session): ``pool_size``
    clients in a transaction at once hold every session the pool has (it opens no more than that)."""
    clients = [client(url) for _ in range(pool_size)]
    try:
        for c in clients:
            c.execute("BEGIN")
        states = [c.execute(SESSION_STATE, (POOLER_PARAMS,)).fetchone() for c in clients]
        assert len({s[0] for s in states if s}) == pool_size, "two clients in a transaction shared a session"
        yield list(zip(clients, states, strict=True))  # type: ignore[arg-type]
        for c in clients:
            c.execute("COMMIT")
    finally:
        for c in clients:
            c.close()


def left_behind(url: str, pool_size: int) -> dict[str, set[str]]:
    """What the pool's sessions keep of their past clients: channels, prepared statements, settings."""
    found: dict[str, set[str]] = {"listening": set(), "prepared": set(), "settings": set()}
    with every_session(url, pool_size) as sessions:
        for _, (_, channels, prepared, settings) in sessions:
            found["listening"].update(channels)
            found["prepared"].update(prepared)
            found["settings"].update(settings)
    return {kind: names for kind, names in found.items() if names}


def reset_sessions(url: str, pool_size: int) -> None:
    """Clear what earlier clients left in the pool's sessions (transaction pooling never resets them)."""
    with every_session(url, pool_size) as sessions:
        for c, (_, _, _, settings) in sessions:
            c.execute("UNLISTEN *")
            c.execute("DEALLOCATE ALL")
            for setting in settings:
                name = setting.split("=", 1)[0]
                assert re.fullmatch(r"\w+", name)
                c.execute(f"RESET {name}")


@contextlib.contextmanager
def holding(url: str) -> Iterator[int]:
    """Hold the session the pool would hand out next (the one used last), in a transaction: the following
    transactions of other clients run in other sessions. Yields its pid."""
    with client(url) as holder:
        holder.execute("BEGIN")
        yield backend_pid(holder)
        holder.execute("COMMIT")


@pytest.fixture
def pooled(pgbouncer: PgBouncer, dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """pgqueue behind the pooler, for this process and the processes it starts: the test database's URL
    through pgbouncer, and PGQUEUE_TRANSACTION_POOLING=1. The pool's sessions start clean."""
    url = pgbouncer.dsn(dsn)
    reset_sessions(url, pgbouncer.pool_size)
    monkeypatch.setenv("PGQUEUE_DATABASE_URL", url)
    monkeypatch.setenv("PGQUEUE_TRANSACTION_POOLING", "1")
    monkeypatch.delenv("PGQUEUE_LISTEN_DATABASE_URL", raising=False)
    _db.close_shared_connections()  # made in the other mode, or to the direct URL
    yield url
    pgqueue.configure(transaction_pooling=None, listen_dsn=None)  # closes the shared connections too


def statuses(db: psycopg.Connection[Any], queue: str) -> dict[str, int]:
    rows = db.execute("SELECT status::text, count(*) FROM pgqueue.jobs WHERE queue = %s GROUP BY 1", (queue,))
    return dict(rows.fetchall())


# -- why the mode exists -------------------------------------------------------------------------------


def test_the_default_mode_breaks_behind_the_pooler(pooled: str, pgbouncer: PgBouncer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Without PGQUEUE_TRANSACTION_POOLING, pgqueue prepares its statements once per connection: the
    statement lives in the session the pooler happened to give, and the connection's next transaction,
    in another session, does not find it (pgqueue says what that means). The sessions keep pgqueue's
    prepared statements and settings for whichever clients get them next."""
    monkeypatch.delenv("PGQUEUE_TRANSACTION_POOLING")
    queue = Queue("bouncer")
    queue.enqueue(tj.noop)  # prepares pgqueue_insert_simple_job in the session it ran in
    own = _db.shared_connection()
    used = backend_pid(own)  # the pool hands out the session used last: the same one
    with holding(pooled) as held:
        assert held == used
        with pytest.raises(ConfigurationError, match='"pgqueue_insert_simple_job" does not exist: the database '
                                                     'URL seems to lead to a transaction pooler; set '
                                                     'PGQUEUE_TRANSACTION_POOLING=1'):
            queue.enqueue(tj.noop)
    found = left_behind(pooled, pgbouncer.pool_size)
    assert "pgqueue_insert_simple_job" in found["prepared"]
    assert {"plan_cache_mode=force_generic_plan", "jit=off"} <= found["settings"]


def test_nothing_listens_through_the_pooler(pooled: str) -> None:
    """Workers poll (every second by default) unless given a direct URL to LISTEN on; LISTEN on a
    connection in transaction-pooling mode is refused."""
    with pytest.raises(ConfigurationError, match="PGQUEUE_LISTEN_DATABASE_URL"):
        Worker(listen=True)
    with _db.connect() as conn, pytest.raises(ConfigurationError, match="direct connection"):
        pgqueue._store.listen(conn, "done")
    assert not Worker().listen and Worker().poll_interval == 1.0
    assert Worker(listen_dsn="postgresql:///direct").listen and Worker(listen_dsn="postgresql:///d").poll_interval == 5


# -- enqueueing ----------------------------------------------------------------------------------------


def test_enqueue_through_the_pooler(pooled: str, pgbouncer: PgBouncer, db: psycopg.Connection[Any]) -> None:
    """Every way to enqueue, each step on other sessions than the one before (the sessions used last are
    held), and nothing left in any session."""
    queue = Queue("bouncer")
    plain = queue.enqueue(tj.add, 1, 2)
    with holding(pooled) as first, holding(pooled) as second:
        assert first != second
        options = queue.enqueue(tj.add, 3, 4, retry=Retry(max=2, interval=5), priority=-1, meta={"m": 1},
                                description="with options", job_timeout=30)
        unique = queue.enqueue(tj.noop, unique_key="only-one")
        assert queue.enqueue(tj.noop, unique_key="only-one").id == unique.id
        later = queue.enqueue_in(3600, tj.noop)
        dependent = queue.enqueue(tj.noop, depends_on=plain)
        with holding(pooled):
            many = queue.enqueue_many([Queue.prepare_data(tj.add, args=(i, i)) for i in range(500)])
            mixed = queue.enqueue_many([Queue.prepare_data(tj.noop, args=(i,), priority=i) for i in range(5)]
                                       + [Queue.prepare_data(tj.noop, at_front=True)])
    with client(pooled) as app:  # the application's own connection through the pooler, in a transaction
        with app.transaction():
            app.execute("INSERT INTO pgq_test.runs (tag) VALUES ('order paid')")
            committed = queue.enqueue(tj.noop, connection=app)
            bulk = queue.enqueue_many([Queue.prepare_data(tj.noop, args=(i,)) for i in range(3)], connection=app)
        with pytest.raises(RuntimeError), app.transaction():
            rolled_back = queue.enqueue(tj.noop, connection=app)
            raise RuntimeError("roll back")
    fetched = Job.fetch(options.id)
    assert (fetched.status, fetched.max_attempts, fetched.priority, fetched.meta) == (JobStatus.QUEUED, 3, -1,
                                                                                      {"m": 1})
    assert Job.fetch(later.id).status == JobStatus.SCHEDULED
    assert Job.fetch(dependent.id).status == JobStatus.DEFERRED
    assert Job.fetch(committed.id).status == JobStatus.QUEUED
    with pytest.raises(pgqueue.NoSuchJobError):
        Job.fetch(rolled_back.id)
    assert len(many) == 500 and len(mixed) == 6 and len(bulk) == 3
    assert statuses(db, "bouncer") == {"queued": 1 + 1 + 1 + 500 + 6 + 1 + 3, "scheduled": 1, "deferred": 1}
    assert queue.count == 513 and queue.get_job_ids(0, 1) == [mixed[-1].id]
    assert left_behind(pooled, pgbouncer.pool_size) == {}


def test_sqlalchemy_session_through_the_pooler(pooled: str, pgbouncer: PgBouncer) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session

    params = psycopg.conninfo.conninfo_to_dict(pooled)
    engine = create_engine(f"postgresql+psycopg://{params['user']}@{params['host']}:{params['port']}/{params['dbname']}",
                           connect_args={"prepare_threshold": None})
    try:
        with Session(engine) as session:
            session.execute(text("INSERT INTO pgq_test.runs (tag) VALUES ('sqlalchemy')"))
            job = Queue("bouncer").enqueue(tj.noop, connection=session)
            session.commit()
    finally:
        engine.dispose()
    assert Job.fetch(job.id).status == JobStatus.QUEUED
    assert left_behind(pooled, pgbouncer.pool_size) == {}


# -- workers ----------------------------------------------------------------------------------------------


def test_a_worker_drains_through_the_pooler_by_polling(pooled: str, pgbouncer: PgBouncer, spawn_worker: Any,
                                                       db: psycopg.Connection[Any]) -> None:
    """Jobs enqueued after the worker went idle: no notification can reach it, its poll finds them."""
    worker = spawn_worker("bouncer", "--concurrency", "2", "--poll-interval", "0.2")
    assert "not listening for new jobs (transaction pooling); polling every 0.2s" in worker.output
    jobs = Queue("bouncer").enqueue_many([Queue.prepare_data(tj.add, args=(i, i)) for i in range(300)])
    wait_for(lambda: statuses(db, "bouncer") == {"finished": 300}, timeout=30, message="the worker to drain")
    assert sorted(r[0] for r in db.execute("SELECT result FROM pgqueue.jobs")) == sorted(2 * i for i in range(300))
    assert Job.fetch(jobs[-1].id).result == 598
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.output
    assert "Error" not in worker.output, worker.output
    assert left_behind(pooled, pgbouncer.pool_size) == {}


@pytest.mark.parametrize("simple", [False, True], ids=["Worker", "SimpleWorker"])
def test_a_running_job_canceled_through_the_pooler_is_stopped_at_the_poll(simple: bool, pooled: str,
                                                                          pgbouncer: PgBouncer, spawn_worker: Any,
                                                                          db: psycopg.Connection[Any]) -> None:
    """No LISTEN behind the pooler: a worker finds the cancel at its poll (one statement over the jobs it
    holds), a SimpleWorker's watch at its own; neither leaves state in the pool's sessions."""
    def tags() -> list[str]:
        return [t for (t,) in db.execute("SELECT tag FROM pgq_test.runs WHERE job_id = %s ORDER BY at", (job.id,))]

    job = Queue("bouncer").enqueue("pgq_control.stoppable", on_stopped="pgq_callbacks.on_stopped")
    worker = spawn_worker("bouncer", "--poll-interval", "0.2", *(["--simple"] if simple else []))
    wait_for(lambda: "began" in tags(), message="the job to begin")
    assert job.cancel()
    wait_for(lambda: '{"callback": "stopped"}' in tags(), message="the job to stop and run on_stopped")
    assert tags() == ["began", "canceled", '{"callback": "stopped"}'] and job.get_status() == JobStatus.CANCELED
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.output
    assert left_behind(pooled, pgbouncer.pool_size) == {}


def test_a_failing_job_is_retried_through_the_pooler(pooled: str, pgbouncer: PgBouncer, spawn_worker: Any) -> None:
    """The retry is scheduled half a second ahead: the worker, polling once a minute, wakes for it when it
    is due (as for its own released and retried jobs with LISTEN)."""
    job = Queue("bouncer").enqueue(tj.fail_first_attempt, retry=Retry(max=1, interval=0.5))
    worker = spawn_worker("bouncer", "--poll-interval", "60")
    wait_for(lambda: job.get_status() == JobStatus.FINISHED, message="the retry to succeed")
    fetched = Job.fetch(job.id)
    assert (fetched.attempts, fetched.result, [e["type"] for e in fetched.errors]) == (2, "the second succeeds",
                                                                                        ["ValueError"])
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.output
    assert left_behind(pooled, pgbouncer.pool_size) == {}


def test_a_worker_killed_mid_job_is_rescued_through_the_pooler(pooled: str, pgbouncer: PgBouncer, spawn_worker: Any,
                                                               db: psycopg.Connection[Any]) -> None:
    job = Queue("bouncer").enqueue(tj.hang_on_first_attempt, "rescued", retry=1)
    doomed = spawn_worker("bouncer", "--lease", "1", "--name", "doomed")
    wait_for(lambda: db.execute("SELECT 1 FROM pgq_test.runs WHERE tag = 'started:rescued'").fetchone(),
             message="the first attempt to start")
    os.killpg(doomed.proc.pid, signal.SIGKILL)  # the worker and its job's process
    doomed.wait()
    rescuer = spawn_worker("bouncer", "--lease", "1", "--name", "rescuer", "--poll-interval", "0.2")
    wait_for(lambda: job.get_status() == JobStatus.FINISHED, message="the rescued job to run again")
    fetched = Job.fetch(job.id)
    assert (fetched.attempts, fetched.worker_name, fetched.result) == (2, "rescuer", "rescued")
    assert [(e["type"], e["worker"]) for e in fetched.errors] == [("WorkerLost", "doomed")]
    assert "rescued 1 job(s) of lost workers" in rescuer.output
    rescuer.signal(signal.SIGTERM)
    assert rescuer.wait() == 0, rescuer.output
    assert left_behind(pooled, pgbouncer.pool_size) == {}


# -- job.wait() ---------------------------------------------------------------------------------------------


def test_wait_polls_through_the_pooler(pooled: str, pgbouncer: PgBouncer, spawn_worker: Any) -> None:
    queue = Queue("bouncer")
    with pytest.raises(TimeoutError):
        queue.enqueue(tj.noop).wait(timeout=0.3)  # nobody serves the queue yet
    spawn_worker("bouncer", "--poll-interval", "0.2")
    assert queue.enqueue(tj.add, 2, 3).wait(timeout=30) == 5
    with pytest.raises(JobFailed, match="ValueError: nope"):
        queue.enqueue(tj.fail, "nope").wait(timeout=30)
    assert left_behind(pooled, pgbouncer.pool_size) == {}  # the waits never LISTENed through the pooler


def test_wait_and_workers_listen_on_the_direct_url(pooled: str, pgbouncer: PgBouncer, dsn: str, spawn_worker: Any,
                                                   db: psycopg.Connection[Any]) -> None:
    """A direct URL to LISTEN on (``configure(listen_dsn=...)`` here, ``--listen-dsn`` for the worker):
    job.wait() and the worker LISTEN there, straight to PostgreSQL (the URL's application_name marks its
    sessions), while all else goes through the pooler."""
    direct = psycopg.conninfo.make_conninfo(dsn, application_name="pgq-direct-listen")
    pgqueue.configure(listen_dsn=direct)
    job = Queue("bouncer").enqueue(tj.add, 20, 22)
    waited: list[Any] = []
    waiter = threading.Thread(target=lambda: waited.append(job.wait(timeout=30)))
    waiter.start()

    def listening() -> set[str]:
        rows = db.execute("SELECT query FROM pg_stat_activity WHERE application_name = 'pgq-direct-listen' "
                          "AND state = 'idle'")
        return {r[0] for r in rows}

    wait_for(lambda: "LISTEN pgqueue_done" in listening(), message="job.wait() to LISTEN on the direct URL")
    worker = spawn_worker("bouncer", "--listen-dsn", direct)
    assert "not listening" not in worker.output
    wait_for(lambda: "LISTEN pgqueue_jobs" in listening(), message="the worker to LISTEN on the direct URL")
    waiter.join(30)
    assert waited == [42]
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.output
    assert left_behind(pooled, pgbouncer.pool_size) == {}


# -- the command line -----------------------------------------------------------------------------------------


def test_cli_through_the_pooler(pooled: str, pgbouncer: PgBouncer, spawn_worker: Any) -> None:
    queue = Queue("bouncer")
    failed = queue.enqueue(tj.fail, "to requeue")
    assert spawn_worker("bouncer", "--burst", ready=False).wait() == 0
    assert failed.get_status() == JobStatus.FAILED
    queue.enqueue(tj.noop)
    listed = run_cli("failed")
    assert listed.returncode == 0, listed.stderr
    assert re.search(rf"^{failed.id}\s+bouncer\s+pgq_testjobs.fail\s+attempts=1\s+ValueError: to requeue$",
                     listed.stdout, re.M), listed.stdout
    info = run_cli("info", "--raw")
    assert info.returncode == 0 and info.stdout.splitlines() == ["queue bouncer 1"], info
    requeued = run_cli("requeue", "--all")
    assert requeued.returncode == 0 and "Requeued 1 job(s)" in requeued.stdout, requeued
    assert failed.get_status() == JobStatus.QUEUED
    assert run_cli("info", "--raw").stdout.splitlines() == ["queue bouncer 2"]
    assert left_behind(pooled, pgbouncer.pool_size) == {}


def test_migrate_through_the_pooler(pooled: str, pgbouncer: PgBouncer, new_database: Any) -> None:
    """A new database migrated through the pooler: the lock that serialises migrations is the
    transaction's, and the migration one transaction."""
    url = pgbouncer.dsn(new_database())
    reset_sessions(url, pgbouncer.pool_size)
    result = run_cli("migrate", "--dsn", url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"pgqueue schema at revision {pgqueue._migrate.head_revision()}"
    with client(url) as conn:
        assert conn.execute("SELECT count(*) FROM pgqueue.jobs").fetchone() == (0,)
    assert left_behind(url, pgbouncer.pool_size) == {}


def test_workflows_through_the_pooler(pooled: str, pgbouncer: PgBouncer, spawn_worker: Any,
                                      db: psycopg.Connection[Any]) -> None:
    """A batch (its own transaction through the pooler), a failed member's dependent canceled and a chain,
    by a worker whose outcome statements carry their plan settings: the callbacks once, nothing left."""
    with pgqueue.Batch(Queue("bouncer"), on_complete=tj.batch_callback) as batch:
        batch.enqueue_many([Queue.prepare_data(tj.add, args=(i, i)) for i in range(50)])
        failing = batch.enqueue(tj.fail)
        doomed = batch.enqueue(tj.noop, depends_on=failing)
    links = pgqueue.chain(Queue.prepare_data(tj.add, args=(1, 2)), Queue.prepare_data(tj.add, args=(3,)),
                          queue="bouncer", pass_result=True)
    worker = spawn_worker("bouncer", "--poll-interval", "0.2")
    wait_for(lambda: pgqueue.Batch.fetch(batch.id).is_complete and Job.fetch(links[1].id).status.is_final,
             timeout=30, message="the batch and the chain")
    wait_for(lambda: db.execute("SELECT status::text FROM pgqueue.jobs WHERE func_name = "
                                "'pgq_testjobs.batch_callback'").fetchall() == [("finished",)], timeout=30,
             message="the one callback")
    done = pgqueue.Batch.fetch(batch.id)
    assert (done.finished, done.failed, done.canceled) == (50, 1, 1)
    assert Job.fetch(doomed.id).exc_info == f"dependency failed: {failing.id}"
    assert Job.fetch(links[1].id).result == 6
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.output
    assert left_behind(pooled, pgbouncer.pool_size) == {}
