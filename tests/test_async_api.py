"""AsyncQueue: enqueueing from asyncio code, on pgqueue's own async connections or inside the caller's
transaction (psycopg AsyncConnection, SQLAlchemy AsyncConnection and AsyncSession), and fetch, cancel and
wait. Each test drives its coroutines with asyncio.run, as an application would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest
import sqlalchemy as sa
from conftest import count_jobs, wait_for
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from pgqueue import (
    AsyncQueue,
    ConfigurationError,
    JobFailed,
    JobStatus,
    NoSuchJobError,
    Queue,
    Retry,
    SimpleWorker,
    Worker,
)

# Columns that an enqueue writes from its arguments and options (not the id or the times).
COLUMNS = ("queue, func_name, args, kwargs, status, priority, description, meta, max_attempts, retry_intervals, "
           "timeout_seconds, result_ttl, failure_ttl, ttl, depends_on, unique_key, callbacks, retry_on")


def row(db: psycopg.Connection[Any], job_id: str) -> tuple[Any, ...]:
    found = db.execute(f"SELECT {COLUMNS} FROM pgqueue.jobs WHERE id = %s", (job_id,)).fetchone()
    assert found is not None, f"no row for job {job_id}"
    return tuple(found)


def test_each_enqueue_writes_what_the_sync_api_writes(db: psycopg.Connection[Any]) -> None:
    options: dict[str, Any] = {
        "job_timeout": "2m", "result_ttl": 60, "failure_ttl": timedelta(hours=1), "ttl": 600, "priority": 3,
        "meta": {"user": 7}, "description": "d", "retry": Retry(max=2, interval=[5, 10])}
    when = datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
    sync = Queue("same")
    expected = [sync.enqueue(tj.echo, 1, Decimal("2.5"), k=when), sync.enqueue(tj.echo, "x", **options),
                sync.enqueue_call(tj.echo, args=(1,), kwargs={"job_id": "a kwarg"}, job_timeout=9),
                sync.enqueue_at(when, tj.noop, 1), sync.enqueue_in(3600, tj.noop, 2),
                sync.enqueue(tj.noop, unique_key="u", at_front=True, on_success=tj.noop)]
    expected_rows = [row(db, j.id) for j in expected]
    db.execute("DELETE FROM pgqueue.jobs")

    async def enqueue() -> list[Any]:
        q = AsyncQueue("same")
        return [await q.enqueue(tj.echo, 1, Decimal("2.5"), k=when), await q.enqueue(tj.echo, "x", **options),
                await q.enqueue_call(tj.echo, args=(1,), kwargs={"job_id": "a kwarg"}, job_timeout=9),
                await q.enqueue_at(when, tj.noop, 1), await q.enqueue_in(3600, tj.noop, 2),
                await q.enqueue(tj.noop, unique_key="u", at_front=True, on_success=tj.noop)]

    jobs = asyncio.run(enqueue())
    assert [row(db, j.id) for j in jobs] == expected_rows
    assert [j.status for j in jobs] == [j.status for j in expected]
    assert [j.args for j in jobs] == [j.args for j in expected] and jobs[0].args == [1, Decimal("2.5")]
    assert jobs[1].meta == {"user": 7} and jobs[1].max_attempts == 3 and jobs[3].status == JobStatus.SCHEDULED


def test_unique_key_conflict_replace_debounces_as_the_sync_api_does(db: psycopg.Connection[Any]) -> None:
    async def enqueue() -> list[Any]:
        q = AsyncQueue("debounce")
        first = await q.enqueue_in(60, tj.identity, "v1", unique_key="user:7", unique_key_conflict="replace")
        second = await q.enqueue_in(60, tj.echo, "v2", x=1, unique_key="user:7", unique_key_conflict="replace")
        kept = await q.enqueue(tj.identity, "v3", unique_key="user:7")  # "keep", the default
        return [first, second, kept]

    first, second, kept = asyncio.run(enqueue())
    assert second.id == first.id and (second.func_name, second.args, second.kwargs) == ("pgq_testjobs.echo", ["v2"],
                                                                                       {"x": 1})
    assert (kept.id, kept.args) == (first.id, ["v2"])
    assert db.execute("SELECT func_name, args, kwargs FROM pgqueue.jobs").fetchall() == [
        ("pgq_testjobs.echo", ["v2"], {"x": 1})]


def test_bad_arguments_and_options_raise_before_anything_is_written(db: psycopg.Connection[Any]) -> None:
    async def attempts() -> None:
        q = AsyncQueue("bad")
        with pytest.raises(TypeError, match="not JSON-serialisable"):
            await q.enqueue(tj.identity, object())
        with pytest.raises(TypeError, match="unknown enqueue option"):
            await q.enqueue_call(tj.noop, jobtimeout=3)
        with pytest.raises(ValueError, match="timezone-aware"):
            await q.enqueue_at(datetime(2030, 1, 1), tj.noop)
        with pytest.raises(TypeError, match="prepare_data"):
            await q.enqueue_many([Queue.prepare_data(tj.noop), "not prepared"])
        with pytest.raises(ValueError, match="cycle"):
            await q.enqueue_many([Queue.prepare_data(tj.noop, job_id="a", depends_on="b"),
                                  Queue.prepare_data(tj.noop, job_id="b", depends_on="a")])

    asyncio.run(attempts())
    assert count_jobs(db) == 0


def test_enqueue_many_streams_sync_and_async_iterables(db: psycopg.Connection[Any]) -> None:
    async def items(n: int) -> AsyncIterator[Any]:
        for i in range(n):
            yield Queue.prepare_data(tj.noop, args=(i,))
            if i % 1000 == 0:
                await asyncio.sleep(0)  # a real async source gives the loop a turn

    async def enqueue() -> tuple[list[Any], list[Any], list[Any]]:
        q = AsyncQueue("many")
        from_async = await q.enqueue_many(items(4500))  # more than two COPY chunks
        from_list = await q.enqueue_many([Queue.prepare_data(tj.noop, args=(i,), priority=i % 3) for i in range(10)])
        # Jobs COPY cannot write (unique_key, job_id) after plain ones: the rest go through INSERT.
        mixed = await q.enqueue_many([Queue.prepare_data(tj.noop, args=(1,)),
                                      Queue.prepare_data(tj.noop, args=(2,), unique_key="k"),
                                      Queue.prepare_data(tj.noop, args=(3,), unique_key="k")])
        return from_async, from_list, mixed

    from_async, from_list, mixed = asyncio.run(enqueue())
    assert len(from_async) == 4500 and len(from_list) == 10
    assert db.execute("SELECT count(*), min((args->>0)::int), max((args->>0)::int) FROM pgqueue.jobs "
                      "WHERE queue = 'many' AND priority = 0 AND id = ANY(%s)",
                      ([j.id for j in from_async],)).fetchone() == (4500, 0, 4499)
    assert [j.priority for j in from_list] == [i % 3 for i in range(10)]
    assert mixed[1].id == mixed[2].id != mixed[0].id  # the second unique job is the first one
    assert count_jobs(db) == 4500 + 10 + 2


# -- the caller's transaction ------------------------------------------------------------------------
@asynccontextmanager
async def psycopg_txn(dsn: str) -> AsyncIterator[tuple[Any, Any, Any]]:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        yield conn, conn.commit, conn.rollback


def _engine(dsn: str) -> Any:
    return create_async_engine("postgresql+psycopg://", async_creator=lambda: psycopg.AsyncConnection.connect(dsn))


@asynccontextmanager
async def sa_connection_txn(dsn: str) -> AsyncIterator[tuple[Any, Any, Any]]:
    engine = _engine(dsn)
    async with engine.connect() as conn:
        yield conn, conn.commit, conn.rollback
    await engine.dispose()


@asynccontextmanager
async def sa_session_txn(dsn: str) -> AsyncIterator[tuple[Any, Any, Any]]:
    engine = _engine(dsn)
    async with AsyncSession(engine) as session:
        await session.execute(sa.text("SELECT 1"))
        yield session, session.commit, session.rollback
    await engine.dispose()


KINDS = {"psycopg-async": psycopg_txn, "sqlalchemy-async-connection": sa_connection_txn,
         "sqlalchemy-async-session": sa_session_txn}


async def _enqueue_in_transaction(kind: str, dsn: str, db: psycopg.Connection[Any], end: str) -> list[Any]:
    q = AsyncQueue("txn")
    async with KINDS[kind](dsn) as (conn, commit, rollback):
        jobs = [await q.enqueue(tj.record, "in the transaction", connection=conn),
                await q.enqueue_call(tj.noop, args=(1,), connection=conn, job_timeout=5, unique_key="once")]
        jobs += await q.enqueue_many([Queue.prepare_data(tj.noop, args=(i,)) for i in range(3)], connection=conn)
        assert count_jobs(db) == 0  # invisible to others until the commit
        await (commit() if end == "commit" else rollback())
    return jobs


@pytest.mark.parametrize("kind", KINDS)
def test_commit_keeps_the_jobs_and_wakes_a_sleeping_worker(kind: str, dsn: str, db: psycopg.Connection[Any],
                                                           spawn_worker: Any) -> None:
    # A 60 s poll: a job that runs within the deadline below was started by the commit's NOTIFY.
    worker = spawn_worker("txn", "--poll-interval", "60")
    jobs = asyncio.run(_enqueue_in_transaction(kind, dsn, db, "commit"))
    assert count_jobs(db) == 5
    wait_for(lambda: Queue("txn").fetch_job(jobs[0].id).status == JobStatus.FINISHED, timeout=15,  # type: ignore[union-attr]
             message="the committed job to run")
    assert db.execute("SELECT tag FROM pgq_test.runs").fetchall() == [("in the transaction",)]
    assert f"Job OK ({jobs[0].id})" in worker.output


@pytest.mark.parametrize("kind", KINDS)
def test_rollback_leaves_no_job_and_wakes_nobody(kind: str, dsn: str, db: psycopg.Connection[Any],
                                                 listener: Callable[[float], list[str]]) -> None:
    asyncio.run(_enqueue_in_transaction(kind, dsn, db, "rollback"))
    assert count_jobs(db) == 0
    Queue("marker").enqueue(tj.noop)  # committed after the rollback: its wake-up comes after any of the rollback's
    received = wait_for(lambda: listener(1.0), message="the marker's wake-up")
    assert received == ["marker"]


def test_wrong_kinds_of_connection_are_refused_clearly(dsn: str, db: psycopg.Connection[Any]) -> None:
    async def attempts() -> None:
        q = AsyncQueue("txn")
        with psycopg.connect(dsn) as sync_conn:
            with pytest.raises(ConfigurationError, match="synchronous Connection.*pgqueue.Queue"):
                await q.enqueue(tj.noop, connection=sync_conn)
            with pytest.raises(ConfigurationError, match="synchronous Connection"):
                await q.enqueue_many([Queue.prepare_data(tj.noop)], connection=sync_conn)
        info = psycopg.conninfo.conninfo_to_dict(dsn)
        engine = create_async_engine(sa.engine.URL.create(
            "postgresql+asyncpg", username=info.get("user"), host=info.get("host"),  # type: ignore[arg-type]
            port=int(info.get("port") or 5432), database=info.get("dbname")))  # type: ignore[arg-type]
        async with engine.connect() as conn:
            with pytest.raises(ConfigurationError, match="psycopg 3 driver.*not asyncpg"):
                await q.enqueue_call(tj.noop, connection=conn)
        async with AsyncSession(engine) as session:
            with pytest.raises(ConfigurationError, match="not asyncpg"):
                await q.enqueue_call(tj.noop, connection=session)
        await engine.dispose()
        with pytest.raises(ConfigurationError, match="AsyncConnection"):
            await q.enqueue_call(tj.noop, connection=object())
        async with await psycopg.AsyncConnection.connect(dsn) as aconn:
            with pytest.raises(ConfigurationError, match="async AsyncConnection.*pgqueue.AsyncQueue"):
                Queue("txn").enqueue(tj.noop, connection=aconn)
            async with AsyncSession(_engine(dsn)) as session:
                with pytest.raises(ConfigurationError, match="async AsyncSession"):
                    Queue("txn").enqueue(tj.noop, connection=session)

    asyncio.run(attempts())
    assert count_jobs(db) == 0


# -- jobs: fetch, cancel, wait -------------------------------------------------------------------------
def test_fetch_and_cancel(db: psycopg.Connection[Any]) -> None:
    async def steps() -> None:
        q = AsyncQueue("jobs")
        job = await q.enqueue(tj.add, 2, 3)
        fetched = await q.fetch_job(job.id)
        assert fetched is not None and fetched.args == [2, 3] and fetched.status == JobStatus.QUEUED
        assert await q.fetch_job("no such job") is None
        assert await q.count() == 1
        assert await q.cancel(job) is True and job.status == JobStatus.CANCELED
        assert await q.cancel(job.id) is False  # ended already
        assert await q.count() == 0

    asyncio.run(steps())


def test_wait_is_woken_by_the_worker_while_other_tasks_run(dsn: str, spawn_worker: Any) -> None:
    spawn_worker("waits", "--poll-interval", "60")

    async def steps() -> None:
        q = AsyncQueue("waits")
        ok, bad = await q.enqueue(tj.sleep_then_record, 0.3, "waited"), await q.enqueue(tj.fail, "no luck")
        ticks = 0

        async def ticker() -> None:  # the loop stays free while wait() waits
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticking = asyncio.create_task(ticker())
        assert await q.wait(ok, timeout=30) == "waited"
        with pytest.raises(JobFailed, match="no luck"):
            await q.wait(bad.id, timeout=30)
        ticking.cancel()
        assert ticks > 0
        with pytest.raises(NoSuchJobError):
            await q.wait("no such job", timeout=5)
        held = await AsyncQueue("idle").enqueue(tj.noop)  # no worker serves "idle"
        with pytest.raises(TimeoutError):
            await q.wait(held, timeout=0.2)

    asyncio.run(steps())


def test_wait_polls_in_transaction_pooling_mode(dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGQUEUE_TRANSACTION_POOLING", "1")
    monkeypatch.delenv("PGQUEUE_LISTEN_DATABASE_URL", raising=False)

    async def steps() -> Any:
        q = AsyncQueue("pooled")
        job = await q.enqueue(tj.add, 4, 5)
        waiting = asyncio.create_task(q.wait(job, timeout=30))
        await asyncio.to_thread(SimpleWorker(["pooled"]).work, burst=True)
        return await waiting

    assert asyncio.run(steps()) == 9


def test_each_event_loop_gets_its_own_connections(dsn: str, db: psycopg.Connection[Any]) -> None:
    def enqueue_sessions() -> int:
        return int(db.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                              "AND application_name = 'pgqueue:enqueue' AND pid <> pg_backend_pid()"
                              ).fetchone()[0])  # type: ignore[index]

    async def enqueue(i: int) -> str:
        return (await AsyncQueue("loops").enqueue(tj.noop, i)).id

    from pgqueue import _db
    _db.close_shared_connections()  # only AsyncQueue's sessions count below
    ids = [asyncio.run(enqueue(i)) for i in range(3)]  # three loops, one after another
    assert len(set(ids)) == 3 and count_jobs(db) == 3
    # Each ended loop's connection is closed (at garbage collection or at the next loop's first use).
    import gc
    gc.collect()
    wait_for(lambda: enqueue_sessions() == 0, message="the ended loops' sessions to close")

    async def concurrent() -> list[str]:  # many tasks of one loop share its connection
        return await asyncio.gather(*(enqueue(i) for i in range(50)))

    assert len(set(asyncio.run(concurrent()))) == 50


def test_a_task_cancelled_mid_enqueue_leaves_the_connection_usable(db: psycopg.Connection[Any]) -> None:
    async def steps() -> None:
        q = AsyncQueue("cancel")
        tasks = [asyncio.create_task(q.enqueue(tj.noop, i)) for i in range(20)]
        await asyncio.sleep(0)
        for task in tasks[::2]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await q.enqueue(tj.noop, "after")  # the loop's connection still works

    asyncio.run(steps())
    assert db.execute("SELECT count(*) FROM pgqueue.jobs WHERE args = '[\"after\"]'").fetchone() == (1,)


def test_worker_runs_jobs_that_asyncqueue_enqueued(db: psycopg.Connection[Any]) -> None:
    async def enqueue() -> list[Any]:
        q = AsyncQueue("runs")
        return [await q.enqueue(tj.add, 1, 2), await q.enqueue(tj.add, "a", 1)]

    ok, bad = asyncio.run(enqueue())
    Worker(["runs"]).work(burst=True)
    assert Queue("runs").fetch_job(ok.id).result == 3  # type: ignore[union-attr]
    assert Queue("runs").fetch_job(bad.id).status == JobStatus.FAILED  # type: ignore[union-attr]
