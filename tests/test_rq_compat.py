"""``connection=`` where RQ takes one, and RQ's other constructor arguments (pgqueue.connections,
pgqueue._rq): what a :class:`pgqueue.Connection` is, that every entry point sends the work to the database
it names, and that what pgqueue has no equivalent for is refused with the reason."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest
from conftest import run_cli
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

import pgqueue
from pgqueue import (
    ConfigurationError,
    Connection,
    FailedJobRegistry,
    InvalidJobOperation,
    Job,
    JobStatus,
    PgQueueError,
    Queue,
    SimpleWorker,
    StartedJobRegistry,
    Worker,
)
from pgqueue.decorators import job as job_decorator


@pytest.fixture(scope="session")
def other_url(new_database: Callable[[], str]) -> str:
    """A second migrated database: where a Connection with its URL must send the work."""
    url = new_database()
    pgqueue.migrate(url)
    return url


@pytest.fixture
def other(other_url: str) -> Iterator[Connection]:
    with psycopg.connect(other_url, autocommit=True) as conn:
        conn.execute("TRUNCATE pgqueue.jobs, pgqueue.workers, pgqueue.pauses")
    yield Connection(other_url)


def count(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM pgqueue.jobs").fetchone()[0]  # type: ignore[index]


# -- what a Connection is ----------------------------------------------------------------------------------
def test_a_connection_without_a_url_is_the_environments_database_and_ignores_redis_arguments() -> None:
    plain = Connection()
    assert plain.dsn is None and plain.redis_arguments == {}
    for redis_like in (Connection("localhost", 6379, 0), Connection(host="redis.internal", port=6380, db=3),
                       Connection(socket_timeout=500, decode_responses=True), Connection(..., ssl=True)):
        assert redis_like == plain and hash(redis_like) == hash(plain) and redis_like.dsn is None
    assert Connection("localhost", 6789).redis_arguments == {"arg0": "localhost", "arg1": 6789}
    assert plain.ping() is True


def test_a_connection_with_a_url_is_that_database(other: Connection, other_url: str, dsn: str) -> None:
    assert other.dsn == other_url and other != Connection() and other == Connection(other_url)
    assert Connection(other).dsn == other_url and Connection.from_url(other_url) == other
    assert Connection("host=127.0.0.1 dbname=x").dsn == "host=127.0.0.1 dbname=x"  # a libpq string too
    assert Connection("postgresql+psycopg://u@h/d").dsn == "postgresql+psycopg://u@h/d"  # SQLAlchemy's too
    secret = Connection("postgresql://app:s3cret@db.internal:5433/app")
    assert repr(secret) == "Connection('app@db.internal:5433/app')"  # no password


@pytest.mark.parametrize(("make", "error", "says"), [
    (lambda: Connection("redis://localhost:6379/0"), ValueError,
     "a redis:// URL is not a PostgreSQL URL: pgqueue keeps its jobs in PostgreSQL, not Redis"),
    (lambda: Connection.from_url("rediss://:pw@cache:6380"), ValueError, "a rediss:// URL is not a PostgreSQL URL"),
    (lambda: Connection.from_url("localhost"), ValueError, "from_url takes a database URL, not 'localhost'"),
    (lambda: Connection("postgresql://app:pw@db/app", port=5433), TypeError,
     "Connection('app@db:5432/app', port=): Redis's arguments go with no URL only; put what the database needs"),
    (lambda: Connection(hots="x"), TypeError, "Connection() got an unexpected keyword argument 'hots'"),
    (lambda: Connection().pipeline(), PgQueueError, "pgqueue has no Redis pipeline"),
])
def test_what_a_connection_refuses(make: Callable[[], Any], error: type[Exception], says: str) -> None:
    with pytest.raises(error) as raised:
        make()
    assert says in str(raised.value) and "pw@" not in str(raised.value)


def test_queue_connection_is_its_database(other: Connection) -> None:
    assert Queue().connection == Connection() and Queue(connection=other).connection == other
    assert Queue("q", other).dsn == other.dsn == Queue("q", dsn=other.dsn).dsn  # positional, as RQ's


# -- every entry point sends the work to the database it is given --------------------------------------------
def test_connection_decides_the_database_of_queues_jobs_registries_and_workers(other: Connection, dsn: str) -> None:
    q = Queue("rq", connection=other)
    job = q.enqueue(tj.add, 2, 3)
    bad = q.enqueue(tj.fail, "x")
    assert count(other.dsn) == 2 and count(dsn) == 0  # type: ignore[arg-type]
    assert Job.fetch(job.id, connection=other).func_name == "pgq_testjobs.add"
    with pytest.raises(pgqueue.NoSuchJobError):
        Job.fetch(job.id)  # not in the environment's database
    assert Job.exists(job.id, connection=other) and not Job.exists(job.id)
    assert [j.id for j in Job.fetch_many([job.id], connection=other)] == [job.id]  # type: ignore[union-attr]
    assert [x.name for x in Queue.all(connection=other)] == ["rq"] and Queue.all() == []

    SimpleWorker([q]).work(burst=True)  # the worker takes its queue's database, as RQ's takes its connection
    assert job.return_value() == 5
    registry = FailedJobRegistry("rq", connection=other)
    assert registry.get_job_ids() == [bad.id] and FailedJobRegistry("rq").count == 0
    assert FailedJobRegistry(queue=q) == registry == q.failed_job_registry
    assert StartedJobRegistry("rq", other).count == 0  # positional, as RQ's


def test_workers_and_their_listing_take_the_connection(other: Connection, spawn_worker: Any) -> None:
    job = Queue(connection=other).enqueue(tj.add, 1, 1)
    assert Worker(["default"], connection=other).work(burst=True) and job.return_value() == 2
    spawn_worker("default", "--name", "here")  # a worker of the environment's database
    assert [w.name for w in Worker.all()] == ["here"] and Worker.all(connection=other) == []
    assert Worker.count(connection=other) == 0 and Worker.count(Connection()) == 1
    assert Worker.all(queue=Queue(connection=other)) == []  # with a Queue: that queue's database


def test_suspend_resume_and_the_decorator_take_the_connection(other: Connection) -> None:
    pgqueue.suspend(connection=other)
    assert pgqueue.is_suspended(other) and not pgqueue.is_suspended()
    assert pgqueue.resume(connection=other) and not pgqueue.is_suspended(connection=other)
    until = pgqueue.suspend(other, ttl=60)  # RQ: suspend(connection, ttl=60)
    assert until is not None and until - datetime.now(timezone.utc) <= timedelta(seconds=61)
    assert pgqueue.resume(other)

    delayed = job_decorator("low", other, timeout=5)(tj.add)  # RQ: @job('low', connection=redis, timeout=5)
    job = delayed.delay(1, 2)
    assert (job.timeout, Job.fetch(job.id, connection=other).queue) == (5, "low")


@pytest.mark.parametrize(("make", "error", "says"), [
    (lambda: Queue(dsn="postgresql://a@b/c", connection=Connection()), TypeError,
     "Queue() takes dsn= or connection=, not both"),
    (lambda: Queue(connection="redis://localhost:6379").count, ConfigurationError,
     "invalid database URL: pgqueue needs PostgreSQL (postgresql://...), not redis://"),
    (lambda: Queue(connection=type("StrictRedis", (), {"__module__": "redis.client"})()), TypeError,
     "Queue() got a Redis client (redis.client.StrictRedis): pgqueue keeps its jobs in PostgreSQL, not Redis"),
    (lambda: Worker(["a"], connection=type("FakeStrictRedis", (), {"__module__": "fakeredis._server"})()),
     TypeError, "replace `from redis import Redis` with `from pgqueue import Connection as Redis`"),
    (lambda: Job.fetch("x", connection=42), TypeError,
     "Job.fetch() takes a pgqueue.Connection or a database URL as its connection, not builtins.int"),
    (lambda: suspend_twice(), TypeError, "suspend() takes duration= or RQ's ttl=, not both"),
    (lambda: job_decorator("low", timeout=5, job_timeout=6), TypeError,
     "@job() takes job_timeout= or RQ's timeout=, not both"),
])
def test_what_the_entry_points_refuse_as_a_connection(make: Callable[[], Any], error: type[Exception],
                                                      says: str) -> None:
    with pytest.raises(error) as raised:
        make()
    assert says in str(raised.value)


def suspend_twice() -> None:
    pgqueue.suspend(duration=10, ttl=10)


def test_your_own_connection_goes_to_enqueue_and_a_pgqueue_connection_to_queue(dsn: str) -> None:
    """The two meanings of connection=: Queue's names the database, enqueue's joins your transaction. Each
    refuses the other's, saying where it goes."""
    with psycopg.connect(dsn) as conn:
        with pytest.raises(TypeError, match=r"Queue\(\) got psycopg.Connection: here connection= names the database "
                                            r"the jobs live in .* pass it to enqueue\(\.\.\., connection=conn\)"):
            Queue(connection=conn)
        job = Queue().enqueue(tj.add, 1, 2, connection=conn)  # the transactional enqueue, as before
        conn.commit()
    assert Job.exists(job.id)
    with Session(create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(dsn))) as session:
        with pytest.raises(TypeError, match=r"Worker\(\) got sqlalchemy.orm.session.Session: here connection="):
            Worker(["default"], connection=session)
    with pytest.raises(ConfigurationError, match=r"enqueue's connection= is your open psycopg or SQLAlchemy "
                                                 r"connection, .* give it to Queue\(connection=\.\.\.\)"):
        Queue().enqueue(tj.add, 1, 2, connection=Connection())


# -- RQ's other constructor arguments ------------------------------------------------------------------------
class MyJob(Job):
    pass


@pytest.mark.parametrize(("make", "says"), [
    (lambda: Queue(job_class=MyJob), "Queue(job_class=MyJob): pgqueue has no job classes"),
    (lambda: Queue(death_penalty_class=object), "Queue(death_penalty_class=object): a job past its timeout is killed"),
    (lambda: Queue.all(serializer=object), "Queue.all(serializer=object): pgqueue stores arguments"),
    (lambda: FailedJobRegistry("q", serializer=object), "FailedJobRegistry(serializer=object): pgqueue stores"),
    (lambda: Job.fetch("x", serializer=object), "Job.fetch(serializer=object): pgqueue stores"),
    (lambda: Job.fetch_many(["x"], serializer=object), "Job.fetch_many(serializer=object): pgqueue stores"),
    (lambda: Worker(["a"], queue_class=Queue), "Worker(queue_class=Queue): pgqueue has no queue classes"),
    (lambda: Worker(["a"], worker_ttl=420), "Worker(worker_ttl=420): pgqueue's is lease="),
    (lambda: Worker(["a"], default_result_ttl=500), "Worker(default_result_ttl=500): pgqueue keeps finished jobs"),
    (lambda: Worker.all(job_class=MyJob), "Worker.all(job_class=MyJob): pgqueue has no job classes"),
    (lambda: SimpleWorker(["a"], exc_handler=print), "SimpleWorker() got an unexpected keyword argument 'exc_handler'"),
    (lambda: Queue(colour="blue"), "Queue() got an unexpected keyword argument 'colour'"),
    (lambda: Queue("q", **{"async": False}), "unexpected keyword argument 'async' (synchronous mode is is_async=False"),
])
def test_rqs_other_arguments_are_refused_with_the_reason(make: Callable[[], Any], says: str) -> None:
    with pytest.raises(TypeError) as raised:
        make()
    assert says in str(raised.value)


def test_rqs_other_arguments_at_their_defaults_are_accepted() -> None:
    q = Queue("q", job_class=Job, serializer=None, death_penalty_class=None)
    assert q.job_class is Job and Queue.job_class is Job
    assert Worker(["q"], job_class=None, queue_class=None, serializer=None, disable_default_exception_handler=False,
                  work_horse_killed_handler=None).queues == ["q"]
    assert FailedJobRegistry("q", job_class=None, serializer=None).name == "q"


# -- RQ's queue methods and enqueue forms --------------------------------------------------------------------
def test_job_in_queue_is_whether_it_is_queued_there() -> None:
    q = Queue("a")
    queued = q.enqueue(tj.add, 1, 1)
    later = q.enqueue_in(timedelta(hours=1), tj.add, 1, 1)
    elsewhere = Queue("b").enqueue(tj.add, 1, 1)
    assert queued in q and queued.id in q
    assert later not in q and elsewhere not in q and "no-such-job" not in q and elsewhere in Queue("b")
    with pytest.raises(TypeError, match="`in` takes a Job or a job id"):
        assert 42 in q  # type: ignore[operator]


def test_delete_deletes_the_queued_jobs_and_refuses_to_keep_them() -> None:
    q = Queue("a")
    q.enqueue(tj.add, 1, 1)
    later = q.enqueue_in(timedelta(hours=1), tj.add, 1, 1)
    with pytest.raises(InvalidJobOperation, match="cannot be deleted without its queued jobs"):
        q.delete(delete_jobs=False)
    assert len(q) == 1
    assert q.delete() == 1 and len(q) == 0 and later.get_status() == JobStatus.SCHEDULED  # as q.empty()


def test_rqs_explicit_args_and_kwargs_in_every_enqueue() -> None:
    q = Queue()
    at = datetime.now(timezone.utc) + timedelta(hours=1)
    for job in (q.enqueue(tj.echo, args=(1, 2), kwargs={"ttl": 3}, ttl=60),
                q.enqueue_at(at, tj.echo, args=(1, 2), kwargs={"ttl": 3}, ttl=60),
                q.enqueue_in(60, tj.echo, args=(1, 2), kwargs={"ttl": 3}, ttl=60)):
        assert (job.args, job.kwargs, job.ttl) == ([1, 2], {"ttl": 3}, 60)
    assert q.enqueue(tj.echo, args=[5]).kwargs == {} and q.enqueue(tj.echo, kwargs={"a": 1}).args == []
    with pytest.raises(TypeError, match=r"passes the function's arguments only through args= and kwargs= \(as in "
                                        r"RQ\), not also 1 positional argument\(s\), b="):
        q.enqueue(tj.echo, 0, args=(1,), b=2)
    assert len(q) == 3  # and the two scheduled


def test_work_with_scheduler_runs_periodic_jobs_as_the_constructors_option(tmp_path: Path, dsn: str) -> None:
    (tmp_path / "ticks.py").write_text(
        "from pgqueue import periodic\n\n\n"
        "@periodic('* * * * * *', name='rq-tick')\n"
        "def tick():\n    return 'tick'\n")
    (tmp_path / "run.py").write_text(
        "import ticks\nfrom pgqueue import Worker\n\n"
        "Worker(['default']).work(with_scheduler=True, max_jobs=1)  # RQ's place for with_scheduler\n")
    done = subprocess.run([sys.executable, "run.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    [job] = Queue().finished_job_registry.get_job_ids()
    assert job.startswith("rq-tick@") and Job.fetch(job).result == "tick"


def test_requeue_with_queue_and_job_ids_requeues_those_of_that_queue(dsn: str) -> None:
    """`rq requeue --queue Q ID ...` reads Q's failed job registry: pgqueue takes the same command."""
    mine, theirs = Queue("mine").enqueue(tj.fail), Queue("theirs").enqueue(tj.fail)
    SimpleWorker(["mine", "theirs"]).work(burst=True)
    result = run_cli("requeue", "--queue", "mine", mine.id, theirs.id)
    assert result.returncode == 1 and result.stdout == "Requeued 1 job(s)\n"
    assert result.stderr == f"Not failed in queue mine or not found: {theirs.id}\n"
    assert (mine.get_status(), theirs.get_status()) == (JobStatus.QUEUED, JobStatus.FAILED)
