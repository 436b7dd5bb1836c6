"""Enqueueing: options, serialisation, bulk, scheduling, lookups, the decorator."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import time
import uuid
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest

from pgqueue import Job, JobStatus, NoSuchJobError, Queue, Retry, SimpleWorker, _ids

UTC = dt.timezone.utc


def test_enqueue_function_or_dotted_string(db: psycopg.Connection[Any]) -> None:
    q = Queue("default")
    a = q.enqueue(tj.add, 1, 2)
    b = q.enqueue("pgq_testjobs.add", 3, b=4)
    assert a.func_name == b.func_name == "pgq_testjobs.add"
    assert a.status == JobStatus.QUEUED and a.enqueued_at is not None
    rows = db.execute("SELECT id, func_name, args, kwargs, status::text FROM pgqueue.jobs ORDER BY position").fetchall()
    assert rows == [(a.id, "pgq_testjobs.add", [1, 2], {}, "queued"),
                    (b.id, "pgq_testjobs.add", [3], {"b": 4}, "queued")]


def test_generated_ids_are_time_ordered_uuid7_and_unique_across_fork() -> None:
    q = Queue("default")
    first = [q.enqueue(tj.noop).id for _ in range(3)]
    bulk = [j.id for j in q.enqueue_many([Queue.prepare_data(tj.noop) for _ in range(2000)])]
    time.sleep(0.002)  # the next millisecond
    later = q.enqueue(tj.noop).id
    ids = first + bulk + [later]
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 7 and str(uuid.UUID(i)) == i for i in ids)
    stamp = [int(i.replace("-", "")[:12], 16) for i in ids]  # Unix milliseconds
    assert stamp == sorted(stamp) and stamp[-1] > stamp[0]
    assert abs(stamp[-1] / 1000 - time.time()) < 60
    assert max(first + bulk) < later  # text order is creation order across milliseconds
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a forked child draws its own random bits
        os.write(write, " ".join(_ids.new_id() for _ in range(50)).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    os.close(write)
    child = os.read(read, 1 << 16).decode().split()
    os.close(read)
    mine = [_ids.new_id() for _ in range(50)]
    assert len(child) == 50 and not {i[15:] for i in child} & {i[15:] for i in mine}


def test_reserved_options_are_stored_not_passed(db: psycopg.Connection[Any]) -> None:
    q = Queue("default")
    job = q.enqueue(tj.echo, 1, x=2, job_id="order-42", job_timeout=60, result_ttl=3600, ttl=600,
                    failure_ttl=86400, retry=Retry(max=3, interval=[10, 30, 60]), priority=10,
                    meta={"user": 7}, description="an order", unique_key="order:42")
    fetched = Job.fetch("order-42")
    assert fetched.args == [1] and fetched.kwargs == {"x": 2}
    assert (fetched.timeout, fetched.result_ttl, fetched.ttl, fetched.failure_ttl) == (60, 3600, 600, 86400)
    assert (fetched.max_attempts, fetched.priority, fetched.meta) == (4, 10, {"user": 7})
    assert (fetched.description, fetched.unique_key) == ("an order", "order:42")
    assert db.execute("SELECT retry_intervals FROM pgqueue.jobs WHERE id = 'order-42'").fetchone() == ([10, 30, 60],)
    assert job.id == "order-42"


def test_enqueue_call_passes_reserved_names_to_the_function() -> None:
    q = Queue("default")
    job = q.enqueue_call(tj.echo, args=(1,), kwargs={"job_id": "is a real kwarg here"}, job_timeout=5)
    assert job.id != "is a real kwarg here"
    SimpleWorker(["default"]).work(burst=True)
    assert job.result == {"args": [1], "kwargs": {"job_id": "is a real kwarg here"}}
    assert Job.fetch(job.id).timeout == 5


def test_default_timeout_is_rq_s_180_seconds() -> None:
    assert Queue("default").enqueue(tj.noop).timeout == 180
    job = Queue("default", default_timeout=9).enqueue(tj.noop)  # enqueue's shortest statement
    stored = Job.fetch(job.id)
    assert job.timeout == stored.timeout == 9
    assert (job.status, job.priority, job.max_attempts) == (stored.status, stored.priority, stored.max_attempts)
    assert job.enqueued_at == job.scheduled_at == stored.enqueued_at == stored.scheduled_at


def test_special_types_round_trip_through_a_worker() -> None:
    value = {
        "when": dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC), "day": dt.date(2030, 1, 2),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"), "amount": decimal.Decimal("10.25"),
        "nested": [1, "two", None, True, 2.5],
    }
    job = Queue("default").enqueue(tj.identity, value)
    assert Job.fetch(job.id).args == [value]
    SimpleWorker(["default"]).work(burst=True)
    assert job.result == value


def test_dicts_that_look_like_tagged_values_round_trip_as_dicts(db: psycopg.Connection[Any]) -> None:
    # Such as MongoDB's JSON ({"$date": ...}); the tags are how pgqueue stores dates, UUIDs and decimals.
    value = [{"$date": "2024-01-01"}, {"$date": "not a date"}, {"$$uuid": "x"}, {"$decimal": {"$datetime": 1}},
             {"$date": "2024-01-01", "other": 1}, dt.date(2024, 1, 1)]
    job = Queue("default").enqueue(tj.identity, value, meta={"m": {"$uuid": "y"}})
    stored = Job.fetch(job.id)
    assert stored.args == [value] and stored.meta == {"m": {"$uuid": "y"}}
    SimpleWorker(["default"]).work(burst=True)
    assert job.get_status() == JobStatus.FINISHED and job.result == value
    # A tag that pgqueue did not write (SQL of someone's own) and cannot read stays the dict it is.
    db.execute("""UPDATE pgqueue.jobs SET args = '[{"$date": "oops"}]' WHERE id = %s""", (job.id,))
    assert Job.fetch(job.id).args == [{"$date": "oops"}]


FLAT_ARGS = [(), (0, -1, 2**70), (1.5, -0.0, 0.1, 1e-07, 12345.678), ("", 'q"uote', "back\\slash", "tab\tnew\nline\x01",
                                                                 "é 中 🎉", "\u2028"),
             (None, True, False, 1, "a", 2.5, None, 8), (1, 2, 3, 4, 5, 6, 7, 8, 9)]


@pytest.mark.parametrize("args", FLAT_ARGS)
def test_plain_arguments_are_stored_as_the_json_encoder_writes_them(args: tuple[Any, ...]) -> None:
    """Short lists of plain values skip the C encoder's set-up (_serialize._short_flat): same text, same values."""
    from pgqueue import _serialize

    text = _serialize.dumps(args)
    assert text == json.dumps(list(args), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    job = Queue("default").enqueue(tj.identity, *args)
    assert Job.fetch(job.id).args == list(args)


@pytest.mark.parametrize("bad", [object(), {1, 2}, b"bytes", float("nan"), {1: "int key"}, [{"ok": {2: "deep"}}],
                                 "NUL \x00 inside", "lone surrogate \ud800"])
def test_unserialisable_argument_raises_type_error_and_writes_nothing(db: psycopg.Connection[Any], bad: Any) -> None:
    q = Queue("default")
    with pytest.raises(TypeError):
        q.enqueue(tj.identity, bad)
    with pytest.raises(TypeError):
        q.enqueue(tj.identity, x=bad)
    with pytest.raises(TypeError):
        q.enqueue(tj.identity, 1, meta={"x": bad})
    with pytest.raises(TypeError):
        q.enqueue_many([Queue.prepare_data(tj.identity, args=(1,)), Queue.prepare_data(tj.identity, args=(bad,))])
    assert db.execute("SELECT count(*) FROM pgqueue.jobs").fetchone() == (0,)


@pytest.mark.parametrize("name", ["", "a\x00b"])
def test_queue_names_that_postgresql_cannot_store_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="queue"):
        Queue(name)


def test_functions_that_a_worker_cannot_import_are_refused_at_enqueue() -> None:
    def local() -> None: ...

    with pytest.raises(ValueError, match="module level"):
        Queue().enqueue(local)
    with pytest.raises(ValueError, match="module level"):
        Queue().enqueue(lambda: None)
    with pytest.raises(ValueError, match="dotted path"):
        Queue().enqueue("nodots")


def test_enqueue_at_and_in_are_scheduled_and_run_when_due() -> None:
    q = Queue("default")
    later = q.enqueue_at(dt.datetime(2100, 1, 1, tzinfo=UTC), tj.noop, 1)
    soon = q.enqueue_in(dt.timedelta(seconds=0.5), tj.noop, 2)
    past = q.enqueue_at(dt.datetime(2000, 1, 1, tzinfo=UTC), tj.noop, 3)
    assert later.get_status() == soon.get_status() == JobStatus.SCHEDULED
    assert past.get_status() == JobStatus.QUEUED
    assert later.scheduled_at == dt.datetime(2100, 1, 1, tzinfo=UTC)
    assert len(q) == 1  # only the runnable one counts as queued
    with pytest.raises(ValueError, match="timezone-aware"):
        q.enqueue_at(dt.datetime(2030, 1, 1), tj.noop)
    # A worker (not burst) sleeps until the scheduled time, then runs it; max_jobs stops it after.
    SimpleWorker(["default"], poll_interval=30).work(max_jobs=2)
    assert soon.get_status() == past.get_status() == JobStatus.FINISHED
    assert later.get_status() == JobStatus.SCHEDULED


def test_enqueue_many_writes_all_in_one_transaction(db: psycopg.Connection[Any]) -> None:
    q = Queue("bulk")
    jobs = q.enqueue_many([Queue.prepare_data(tj.add, args=(i, i), priority=i % 3) for i in range(1000)])
    assert len(jobs) == 1000 and len({j.id for j in jobs}) == 1000
    assert all(j.status == JobStatus.QUEUED and j.enqueued_at is not None for j in jobs)
    assert q.count == 1000
    assert db.execute("SELECT count(DISTINCT enqueued_at) FROM pgqueue.jobs").fetchone() == (1,)
    SimpleWorker(["bulk"]).work(burst=True)
    assert [j.result for j in jobs[:3]] == [0, 2, 4]


def test_enqueue_many_streams_a_generator_in_order_through_copy_and_insert(db: psycopg.Connection[Any]) -> None:
    q = Queue("bulk", default_timeout=42)

    def items() -> Any:
        # More than one COPY chunk. Jobs without options first (the five-column COPY), then from job 3 on
        # some with options (the sixteen-column COPY); two jobs need the INSERT path.
        for i in range(5000):
            if i in (2000, 4500):  # the first job of the second chunk, and one inside the third
                yield Queue.prepare_data(tj.identity, args=(i,), unique_key=f"key-{i}")
            elif i % 7 == 3:
                yield Queue.prepare_data(tj.identity, args=(i,), kwargs={"k": "a\tb"}, meta={"m": i},
                                         priority=1, description="tab\there", retry=Retry(max=2, interval=[1.5]))
            else:
                yield Queue.prepare_data(tj.identity, args=(i,))

    jobs = q.enqueue_many(items())
    rows = db.execute("SELECT id, args->>0 FROM pgqueue.jobs ORDER BY position").fetchall()
    assert [j.id for j in jobs] == [r[0] for r in rows]  # every job, in the order given
    assert [int(r[1]) for r in rows] == list(range(5000))
    copied = [j.id for j in jobs[:2000]]
    assert copied == sorted(copied) and len(set(copied)) == 2000  # COPY's ids increase
    for job in (jobs[1], jobs[3], jobs[4], jobs[2000], jobs[4500], jobs[4501]):  # returned is what was stored
        stored = Job.fetch(job.id)
        for attr in ("queue", "func_name", "args", "kwargs", "meta", "status", "priority", "description",
                     "max_attempts", "timeout", "unique_key", "enqueued_at", "scheduled_at", "errors", "depends_on"):
            assert getattr(job, attr) == getattr(stored, attr), (job.id, attr)
    assert jobs[3].kwargs == {"k": "a\tb"} and jobs[3].timeout == 42 and jobs[3].max_attempts == 3
    assert jobs[1].timeout == 42 and jobs[1].kwargs == {} and jobs[1].status == JobStatus.QUEUED
    assert db.execute("SELECT retry_intervals FROM pgqueue.jobs WHERE id = %s", (jobs[3].id,)).fetchone() == ([1.5],)


def test_enqueue_many_goes_from_the_short_copy_to_insert(db: psycopg.Connection[Any]) -> None:
    q = Queue("bulk")
    jobs = q.enqueue_many([Queue.prepare_data(tj.identity, args=(0,)), Queue.prepare_data(tj.identity, args=(1,)),
                           Queue.prepare_data(tj.identity, args=(2,), unique_key="k"),
                           Queue.prepare_data(tj.identity, args=(3,))])
    rows = db.execute("SELECT id, args->>0, status::text, unique_key, scheduled_at = enqueued_at "
                      "FROM pgqueue.jobs ORDER BY position").fetchall()
    assert rows == [(jobs[0].id, "0", "queued", None, True), (jobs[1].id, "1", "queued", None, True),
                    (jobs[2].id, "2", "queued", "k", True), (jobs[3].id, "3", "queued", None, True)]


def test_enqueue_many_from_a_failing_generator_writes_nothing(db: psycopg.Connection[Any], dsn: str) -> None:
    def items() -> Any:
        for i in range(4500):
            yield Queue.prepare_data(tj.identity, args=(i,))
        yield Queue.prepare_data(tj.identity, args=(object(),))  # TypeError after two chunks were sent

    with pytest.raises(TypeError, match="JSON"):
        Queue("bulk").enqueue_many(items())
    with pytest.raises(TypeError, match="prepare_data"):
        Queue("bulk").enqueue_many(iter([Queue.prepare_data(tj.noop)] * 2500 + ["not an item"]))  # type: ignore[arg-type]
    assert db.execute("SELECT count(*) FROM pgqueue.jobs").fetchone() == (0,)
    with psycopg.connect(dsn) as conn:  # the caller's transaction survives
        with pytest.raises(TypeError, match="prepare_data"):
            Queue("bulk").enqueue_many(iter([Queue.prepare_data(tj.noop), None]), connection=conn)  # type: ignore[arg-type]
        Queue("bulk").enqueue_many((Queue.prepare_data(tj.noop) for _ in range(3)), connection=conn)
    assert db.execute("SELECT count(*) FROM pgqueue.jobs").fetchone() == (3,)


def test_enqueue_many_transaction_is_its_own(db: psycopg.Connection[Any]) -> None:
    # The generator enqueues on the shared connection while enqueue_many's COPY is open, then fails:
    # that job is committed on its own, and the COPY's jobs are rolled back (on one shared connection the
    # inner enqueue would wait for the COPY forever, or join its transaction).
    inner: list[Job] = []

    def items() -> Any:
        for i in range(3000):
            if i == 2500:
                inner.append(Queue("other").enqueue(tj.noop))
            yield Queue.prepare_data(tj.noop, args=(i,))
        raise RuntimeError("the source of the jobs failed")

    with pytest.raises(RuntimeError, match="source"):
        Queue("bulk").enqueue_many(items())
    assert db.execute("SELECT queue, id FROM pgqueue.jobs").fetchall() == [("other", inner[0].id)]


def test_a_prepared_item_enqueued_twice_makes_two_jobs() -> None:
    item = Queue.prepare_data(tj.noop, args=(1,))
    q = Queue("bulk")
    assert len({j.id for j in q.enqueue_many([item, item]) + q.enqueue_many([item])}) == 3
    assert q.count == 3


def test_enqueue_many_with_options_that_need_the_database() -> None:
    q = Queue("bulk")
    first = q.enqueue(tj.noop, 0)
    jobs = q.enqueue_many([
        Queue.prepare_data(tj.noop, args=(1,), job_id="custom-1"),
        Queue.prepare_data(tj.noop, args=(2,), depends_on=first),
        Queue.prepare_data(tj.noop, args=(3,), unique_key="k"),
        Queue.prepare_data(tj.noop, args=(4,), unique_key="k"),  # same key: the same job comes back
    ])
    assert jobs[0].id == "custom-1"
    assert jobs[1].get_status() == JobStatus.DEFERRED
    assert jobs[2].id == jobs[3].id
    assert q.enqueue_many([]) == []


def test_fetch_and_lookups() -> None:
    q = Queue("default")
    job = q.enqueue(tj.noop, description="hello")
    fetched = Job.fetch(job.id)
    assert (fetched.id, fetched.queue, fetched.func_name) == (job.id, "default", "pgq_testjobs.noop")
    assert fetched.description == "hello"
    assert fetched.attempts == 0 and fetched.worker_name is None and fetched.result is None
    assert q.fetch_job("nope") is None
    with pytest.raises(NoSuchJobError):
        Job.fetch("nope")
    assert q.job_ids == [job.id] and q.jobs == [job] and len(q) == 1 and q.name == "default"
    assert q.empty() == 1 and len(q) == 0


def test_queue_order_is_priority_then_fifo_and_at_front_jumps_ahead() -> None:
    q = Queue("default")
    a = q.enqueue(tj.noop, priority=5)
    b = q.enqueue(tj.noop)
    c = q.enqueue(tj.noop)
    d = q.enqueue(tj.noop, priority=-1)
    e = q.enqueue(tj.noop, priority=5, at_front=True)
    assert q.job_ids == [e.id, d.id, b.id, c.id, a.id]


def test_unique_key_returns_the_live_job_and_frees_when_it_ends() -> None:
    q = Queue("default")
    first = q.enqueue(tj.noop, 1, unique_key="email:7")
    again = q.enqueue(tj.noop, 2, unique_key="email:7")
    assert again.id == first.id and again.args == [1]
    SimpleWorker(["default"]).work(burst=True)
    third = q.enqueue(tj.noop, 3, unique_key="email:7")
    assert third.id != first.id


def test_unique_key_is_race_free_under_concurrent_enqueues() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from pgqueue._db import connect

    def enqueue_on_own_connection(i: int) -> str:
        with connect() as conn:
            return Queue("default").enqueue(tj.noop, i, unique_key="race", connection=conn).id

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(enqueue_on_own_connection, range(32)))
    assert len(ids) == 1


def test_threads_sharing_the_process_connection_never_break_it() -> None:
    # One connection per process serves every thread's statements (psycopg serialises them). A thread
    # checking that connection before its statement must not take another thread's answer, arriving on
    # the socket, for the server hanging up: that closed the connection under the other thread.
    import threading

    q = Queue("default")
    q.enqueue(tj.noop, 0)  # the process's connection exists before the threads start
    errors: list[BaseException] = []
    ids: dict[int, set[str]] = {}

    def work(round: int, i: int, barrier: threading.Barrier) -> None:
        try:
            barrier.wait()
            if i % 2:
                ids.setdefault(round, set()).add(q.enqueue(tj.noop, i, unique_key=f"round-{round}").id)
            else:
                q.enqueue(tj.noop, i).get_status()
                assert q.count >= 1
        except BaseException as exc:  # noqa: B036 - collected and asserted below
            errors.append(exc)

    for round in range(20):
        barrier = threading.Barrier(8)
        threads = [threading.Thread(target=work, args=(round, i, barrier), daemon=True) for i in range(8)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        assert not [t for t in threads if t.is_alive()], f"round {round}: threads hung on the shared connection"
    assert errors == []
    assert all(len(keyed) == 1 for keyed in ids.values()) and len(ids) == 20


def test_job_id_is_idempotent() -> None:
    q = Queue("default")
    a = q.enqueue(tj.noop, 1, job_id="same")
    b = q.enqueue(tj.noop, 2, job_id="same")
    assert a.id == b.id == "same" and b.args == [1]


def test_depends_on_waits_for_the_dependency_to_finish() -> None:
    q = Queue("default")
    parent = q.enqueue(tj.record, "parent")
    child = q.enqueue(tj.record, "child", depends_on=parent)
    assert child.get_status() == JobStatus.DEFERRED
    assert q.job_ids == [parent.id]
    SimpleWorker(["default"]).work(burst=True)
    assert parent.get_status() == child.get_status() == JobStatus.FINISHED
    # and a dependency that already finished does not defer
    assert q.enqueue(tj.noop, depends_on=[parent.id]).get_status() == JobStatus.QUEUED


def test_decorator_delay_and_plain_call() -> None:
    assert tj.decorated_add(2, 3) == 5
    job = tj.decorated_add.delay(2, 3)
    assert job.queue == "decorated" and job.max_attempts == 3 and job.timeout == 30
    assert job.description == "decorated job"
    SimpleWorker(["decorated"]).work(burst=True)
    assert job.result == 5


def test_job_cancel_delete_and_save_meta() -> None:
    q = Queue("default")
    job = q.enqueue(tj.noop)
    job.meta["step"] = 1
    job.save_meta()
    assert Job.fetch(job.id).meta == {"step": 1}
    assert job.cancel() and job.get_status() == JobStatus.CANCELED
    assert not job.cancel()
    assert len(q) == 0
    assert not job.requeue()  # only failed jobs are requeued
    job.delete()
    with pytest.raises(NoSuchJobError):
        job.refresh()


def test_result_ttl_and_failure_ttl_prune_ended_jobs(db: psycopg.Connection[Any]) -> None:
    q = Queue()
    gone = q.enqueue(tj.noop, result_ttl=0)
    kept = q.enqueue(tj.noop)
    forever = q.enqueue(tj.noop, result_ttl=-1)
    failed_gone = q.enqueue(tj.fail, failure_ttl=0)
    SimpleWorker().work(burst=True)  # runs them
    assert gone.get_status() == JobStatus.FINISHED
    SimpleWorker().work(burst=True)  # its maintenance pass prunes
    assert q.fetch_job(gone.id) is None and q.fetch_job(failed_gone.id) is None
    assert kept.get_status() == forever.get_status() == JobStatus.FINISHED


def test_ttl_cancels_a_job_that_did_not_start_in_time(db: psycopg.Connection[Any]) -> None:
    from conftest import wait_for

    job = Queue().enqueue(tj.record, "too late", ttl=1)
    wait_for(lambda: db.execute("SELECT enqueued_at + interval '1 second' < now() FROM pgqueue.jobs").fetchone()[0],
             message="the ttl to pass")
    SimpleWorker().work(burst=True)
    assert job.get_status() == JobStatus.CANCELED
    assert "ttl" in (job.exc_info or "")
    assert db.execute("SELECT count(*) FROM pgq_test.runs").fetchone() == (0,)


def test_enqueue_many_copies_awkward_text_exactly() -> None:
    awkward = "tab\there\nnewline \\ backslash \\N é ✓ \r"
    jobs = Queue("bulk").enqueue_many([Queue.prepare_data(tj.identity, args=(awkward,), kwargs=None,
                                                          description=awkward, meta={awkward: awkward},
                                                          retry=Retry(max=2, interval=[0.5, 2]))])
    fetched = Job.fetch(jobs[0].id)
    assert fetched.args == [awkward] and fetched.description == awkward and fetched.meta == {awkward: awkward}
    assert fetched.max_attempts == 3
    SimpleWorker(["bulk"]).work(burst=True)
    assert jobs[0].result == awkward


def test_enqueue_replaces_a_connection_the_server_closed(db: psycopg.Connection[Any]) -> None:
    from conftest import wait_for

    from pgqueue._db import shared_connection

    q = Queue()
    q.enqueue(tj.noop)
    pid = shared_connection().info.backend_pid
    db.execute("SELECT pg_terminate_backend(%s)", (pid,))  # as a server restart would
    wait_for(lambda: db.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() is None,
             message="the backend to exit")
    assert q.enqueue(tj.noop).get_status() == JobStatus.QUEUED  # no DatabaseUnavailable: it reconnected
    assert shared_connection().info.backend_pid != pid


def test_a_forked_child_enqueues_on_its_own_connection_even_if_the_lock_was_held_at_fork(
        db: psycopg.Connection[Any]) -> None:
    import threading

    from conftest import wait_for

    from pgqueue import _db

    q = Queue()
    q.enqueue(tj.noop)
    parent_backend = _db.shared_connection().info.backend_pid
    held, release = threading.Event(), threading.Event()

    def hold() -> None:  # another thread of the parent is inside shared_connection() when it forks
        with _db._cache_lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            job = q.enqueue(tj.noop)
            os.write(write, f"{job.id} {_db.shared_connection().info.backend_pid}".encode())
        finally:
            os._exit(0)
    release.set()
    holder.join()
    os.close(write)
    try:
        wait_for(lambda: os.waitpid(pid, os.WNOHANG)[0] == pid, timeout=20, message="the child to enqueue and exit")
    except AssertionError:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        raise
    job_id, child_backend = os.read(read, 1024).decode().split()
    os.close(read)
    assert int(child_backend) != parent_backend
    assert db.execute("SELECT status::text FROM pgqueue.jobs WHERE id = %s", (job_id,)).fetchone() == ("queued",)
    # The parent's connection is still its own and still works.
    assert q.enqueue(tj.noop).get_status() == JobStatus.QUEUED
    assert _db.shared_connection().info.backend_pid == parent_backend


def test_enqueue_to_a_server_that_is_not_there_is_one_clear_error() -> None:
    from pgqueue import DatabaseUnavailable

    q = Queue(dsn="postgresql://nobody@127.0.0.1:1/none")
    for call in (lambda: q.enqueue(tj.noop), lambda: q.enqueue(tj.noop, job_timeout=5),
                 lambda: q.enqueue_many([Queue.prepare_data(tj.noop)])):
        with pytest.raises(DatabaseUnavailable, match="cannot reach PostgreSQL at nobody@127.0.0.1:1/none"):
            call()


def test_an_error_of_the_statement_itself_is_the_driver_s_and_the_connection_carries_on(
        db: psycopg.Connection[Any]) -> None:
    # Not "database unavailable", not "schema missing": the server's own message, and the next enqueue
    # on the same connection works.
    # (pgqueue refuses out-of-range options itself, so a rule of the test's own rejects this row.)
    q = Queue()
    db.execute("ALTER TABLE pgqueue.jobs ADD CONSTRAINT test_rejects CHECK (description <> 'rejected') NOT VALID")
    try:
        with pytest.raises(psycopg.errors.CheckViolation, match="test_rejects"):
            q.enqueue(tj.noop, description="rejected")
        assert q.enqueue(tj.noop).get_status() == JobStatus.QUEUED
    finally:
        db.execute("ALTER TABLE pgqueue.jobs DROP CONSTRAINT test_rejects")
    assert db.execute("SELECT count(*) FROM pgqueue.jobs").fetchone() == (1,)


def test_jobs_from_enqueue_many_have_their_own_empty_containers() -> None:
    """Their kwargs, meta, errors and depends_on are made on first read (job._Fresh), one per Job."""
    q = Queue("default")
    first, second = q.enqueue_many([Queue.prepare_data(tj.add, args=(i, i)) for i in range(2)])
    assert (first.kwargs, first.meta, first.errors, first.depends_on) == ({}, {}, [], [])
    first.meta["progress"] = 1
    first.depends_on.append("x")
    assert second.meta == {} and second.depends_on == [] and Job("j").meta == {}
    first.save_meta()
    assert Job.fetch(first.id).meta == {"progress": 1} and Job.fetch(second.id).meta == {}


def test_job_ids_made_by_one_process_increase_across_calls_and_threads() -> None:
    """UUIDv7 with RFC 9562's monotonic random method: enqueue's ids and enqueue_many's continue one sequence,
    within a millisecond too (docs/quickstart.md says ids of jobs written together increase)."""
    import threading

    made: list[list[str]] = [[] for _ in range(4)]

    def make(out: list[str]) -> None:
        for k in range(500):
            out.append(_ids.new_id() if k % 2 else _ids.new_ids(3)[-1])
    threads = [threading.Thread(target=make, args=(out,)) for out in made]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for out in made:
        assert out == sorted(out)
    everything = [i for out in made for i in out]
    assert len(set(everything)) == len(everything) == 2000
    for text in everything[:50]:
        parsed = uuid.UUID(text)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122 and str(parsed) == text
    # A batch whose bits carry past the last 48: still increasing, still valid UUIDs.
    ids = _ids._ids  # the process's generator
    with ids._lock:
        ids._ms += 1000  # a millisecond the clock has not reached: the sequence stays on it
        ids._prefix, ids._rand = _ids._time_prefix(ids._ms), (5 << 48) - 100_000
    batch = _ids.new_ids(20) + [_ids.new_id()]
    with ids._lock:
        ids._reset()  # back to the clock's millisecond for the tests after this one
    assert batch == sorted(batch) and batch[0][19:23] != batch[-1][19:23]  # the carry reached the 4th field
    assert {(uuid.UUID(i).version, uuid.UUID(i).variant) for i in batch} == {(7, uuid.RFC_4122)}
