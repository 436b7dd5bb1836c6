"""What enqueue refuses before writing anything: callables a worker cannot call as given, durations and
numbers the row cannot hold, dependencies that could never be met."""

from __future__ import annotations

import decimal
import functools
import math
import random
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest
from conftest import count_jobs

import pgqueue
from pgqueue import Job, JobStatus, Queue, Retry, SimpleWorker, Worker


def every_way_to_enqueue(func: Any) -> list[Any]:
    """enqueue, enqueue_call, prepare_data (+ enqueue_many), and the @job decorator: each must refuse."""
    return [lambda: Queue().enqueue(func, 1), lambda: Queue().enqueue(func, 1, priority=2),
            lambda: Queue().enqueue_call(func, args=(1,)),
            lambda: Queue().enqueue_many([Queue.prepare_data(func, args=(1,))]),
            lambda: pgqueue.job("default")(func)]


# -- callables -------------------------------------------------------------------------------------

def test_classmethods_staticmethods_and_builtins_run_as_the_callable_enqueued() -> None:
    q = Queue()
    jobs = {"classmethod": q.enqueue(tj.Jobs.which, 1), "of a subclass": q.enqueue(tj.MoreJobs.which, 2),
            "staticmethod": q.enqueue(tj.Jobs.double, 3), "staticmethod via instance": q.enqueue(tj.Jobs().double, 4),
            "builtin": q.enqueue(len, "abcde"), "builtin classmethod": q.enqueue(dict.fromkeys, ["k"]),
            "string to a module-level instance's method": q.enqueue("pgq_testjobs.jobs_instance.method", 7)}
    assert jobs["of a subclass"].func_name == "pgq_testjobs.MoreJobs.which"
    assert jobs["builtin"].func_name == "builtins.len"
    SimpleWorker().work(burst=True)
    assert {k: j.result for k, j in jobs.items()} == {
        "classmethod": ["Jobs", 1], "of a subclass": ["MoreJobs", 2], "staticmethod": 6,
        "staticmethod via instance": 8, "builtin": 5, "builtin classmethod": {"k": None},
        "string to a module-level instance's method": 7}


@pytest.mark.parametrize("func, kind, says", [
    (tj.Jobs().method, ValueError, "bound to an instance of pgq_testjobs.Jobs"),
    (tj.jobs_instance.method, ValueError, "'module.instance.method'"),
    ("abc".upper, ValueError, "bound to an instance of builtins.str"),
    (random.random, ValueError, "bound to an instance of random.Random"),
    (functools.partial(tj.add, 1), TypeError, "functools.partial"),
    (tj.CallableJob(), TypeError, "instance of pgq_testjobs.CallableJob"),
], ids=["bound method", "bound to a module-level instance", "builtin bound method", "random.random", "partial",
        "callable instance"])
def test_callables_a_worker_cannot_call_as_given_are_refused_everywhere(db: psycopg.Connection[Any], func: Any,
                                                                       kind: type[Exception], says: str) -> None:
    for attempt in every_way_to_enqueue(func):
        with pytest.raises(kind, match="cannot enqueue") as refused:
            attempt()
        assert says in str(refused.value)
    assert count_jobs(db) == 0


MAIN_SCRIPT = """
import pgqueue
from pgqueue import Queue

def f(x):
    return x

class K:
    @classmethod
    def cm(cls, x):
        return x

attempts = {
    "enqueue": lambda: Queue().enqueue(f, 1),
    "enqueue_call": lambda: Queue().enqueue_call(f, args=(1,), job_timeout=5),
    "prepare_data": lambda: Queue.prepare_data(f, args=(1,)),
    "classmethod": lambda: Queue().enqueue(K.cm, 1),
    "string": lambda: Queue().enqueue("__main__.f", 1),
    "job decorator": lambda: pgqueue.job("default")(f),
}
for name, attempt in attempts.items():
    try:
        attempt()
        print(name, "ACCEPTED")
    except Exception as exc:
        print(name, type(exc).__name__, exc)
"""


def test_functions_of_main_are_refused_as_rq_does(db: psycopg.Connection[Any], tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(MAIN_SCRIPT))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 6, done.stdout
    for line in lines:
        assert "ValueError" in line and "__main__" in line and "a worker cannot import" in line, line
    assert count_jobs(db) == 0


# -- durations and numbers -------------------------------------------------------------------------

def stored(db: psycopg.Connection[Any], id: str) -> tuple[Any, ...]:
    row = db.execute("SELECT timeout_seconds, result_ttl, failure_ttl, ttl FROM pgqueue.jobs WHERE id = %s",
                     (id,)).fetchone()
    assert row is not None
    return tuple(row)


def test_durations_take_rq_s_strings_and_timedeltas(db: psycopg.Connection[Any]) -> None:
    q = Queue(default_timeout="2m")
    a = q.enqueue(tj.noop, job_timeout="1h", result_ttl="30m", failure_ttl="1d", ttl="45s")
    b = q.enqueue(tj.noop, job_timeout="1h30m", result_ttl="90", failure_ttl=" 2D ", ttl=timedelta(minutes=1.5))
    c = q.enqueue(tj.noop)  # the queue's default, on the shortest statement
    d = q.enqueue_many([Queue.prepare_data(tj.noop, job_timeout="10S", ttl=0.5)])[0]
    assert (a.timeout, a.result_ttl, a.failure_ttl, a.ttl) == (3600, 1800, 86400, 45)
    assert stored(db, a.id) == (3600, 1800, 86400, 45)
    assert stored(db, b.id) == (5400, 90, 172800, 90)
    assert c.timeout == stored(db, c.id)[0] == 120
    assert stored(db, d.id) == (10, None, None, 1)  # whole seconds, rounded up
    later = q.enqueue_in("5m", tj.noop)
    row = db.execute("SELECT scheduled_at - enqueued_at FROM pgqueue.jobs WHERE id = %s", (later.id,)).fetchone()
    assert row == (timedelta(minutes=5),)


def test_minus_one_means_no_timeout_on_every_path(db: psycopg.Connection[Any], dsn: str) -> None:
    q = Queue(default_timeout=-1)
    jobs = [q.enqueue(tj.noop), q.enqueue(tj.noop, priority=1), q.enqueue(tj.noop, unique_key="k"),
            Queue().enqueue(tj.noop, job_timeout=-1), Queue().enqueue(tj.noop, job_timeout="-1"),
            Queue().enqueue(tj.noop, job_timeout=math.inf)]
    jobs += q.enqueue_many([Queue.prepare_data(tj.noop), Queue.prepare_data(tj.noop, priority=1),
                            Queue.prepare_data(tj.noop, job_id="mine")])
    with psycopg.connect(dsn) as conn:
        jobs.append(q.enqueue(tj.noop, 1, connection=conn))
        jobs += q.enqueue_many([Queue.prepare_data(tj.noop, priority=2)], connection=conn)
    assert [j.timeout for j in jobs] == [math.inf] * len(jobs)
    rows = db.execute("SELECT timeout_seconds FROM pgqueue.jobs").fetchall()
    assert rows == [(math.inf,)] * len(jobs)
    assert {Job.fetch(j.id).timeout for j in jobs} == {math.inf}
    # ttl -1: no limit, as in RQ; result_ttl and failure_ttl -1: kept forever, as before
    assert stored(db, Queue().enqueue(tj.noop, ttl=-1, result_ttl=-1, failure_ttl="-1").id)[1:] == (None, None, None)


@pytest.mark.parametrize("worker_class", [SimpleWorker, Worker])
def test_a_worker_runs_a_job_without_timeout(worker_class: type[Worker], db: psycopg.Connection[Any]) -> None:
    job = Queue().enqueue(tj.sleep_then_record, 0.2, "no timeout", job_timeout=-1)
    # and one with the row's timeout written by SQL: the worker copes with 'Infinity' however it got there
    other = Queue().enqueue(tj.add, 1, 2)
    db.execute("UPDATE pgqueue.jobs SET timeout_seconds = 'Infinity' WHERE id = %s", (other.id,))
    assert worker_class().work(burst=True)
    assert job.get_status() == JobStatus.FINISHED and job.result == "no timeout"
    assert other.result == 3
    assert Job.fetch(job.id).timeout == math.inf


BAD_VALUES = [
    (ValueError, "job_timeout", 0), (ValueError, "job_timeout", -2), (ValueError, "job_timeout", -0.5),
    (ValueError, "job_timeout", "0"), (ValueError, "job_timeout", math.nan), (ValueError, "job_timeout", "1x"),
    (ValueError, "job_timeout", "h"), (ValueError, "job_timeout", ""), (ValueError, "job_timeout", "1.5h"),
    (ValueError, "job_timeout", 10**400), (TypeError, "job_timeout", True), (TypeError, "job_timeout", [1]),
    (TypeError, "job_timeout", decimal.Decimal(5)),
    (ValueError, "ttl", 0), (ValueError, "ttl", -5), (ValueError, "ttl", "0s"), (ValueError, "ttl", 2**31),
    (TypeError, "ttl", False),
    (ValueError, "result_ttl", 2**31), (ValueError, "result_ttl", "x"), (TypeError, "result_ttl", True),
    (ValueError, "failure_ttl", "100000d"), (TypeError, "failure_ttl", object()),
    (ValueError, "priority", 2**31), (ValueError, "priority", -(2**31) - 1), (TypeError, "priority", 1.0),
    (TypeError, "priority", True),
]


@pytest.mark.parametrize("kind, option, value", BAD_VALUES,
                         ids=[f"{option}={value!r}"[:40] if type(value) is not object else f"{option}=object()"
                              for _, option, value in BAD_VALUES])
def test_durations_and_numbers_the_row_cannot_hold_are_refused_naming_them(
        db: psycopg.Connection[Any], kind: type[Exception], option: str, value: Any) -> None:
    for attempt in [lambda: Queue().enqueue(tj.noop, **{option: value}),
                    lambda: Queue().enqueue_call(tj.noop, unique_key="k", **{option: value}),
                    lambda: Queue().enqueue_many([Queue.prepare_data(tj.noop, **{option: value})])]:
        with pytest.raises(kind, match=option) as refused:
            attempt()
        assert repr(value)[:20] in str(refused.value)  # pgqueue's message naming the value, not the driver's
    assert count_jobs(db) == 0


@pytest.mark.parametrize("value", [0, -2, "0", "soon", math.nan, True])
def test_a_queue_s_default_timeout_is_checked_as_job_timeout(value: Any) -> None:
    with pytest.raises(TypeError if value is True else ValueError, match="default_timeout"):
        Queue(default_timeout=value)


def test_retries_and_delays_the_database_cannot_compute_with_are_refused(db: psycopg.Connection[Any]) -> None:
    for retry in [lambda: Retry(max=2**31), lambda: Retry(max=1, interval=math.nan),
                  lambda: Retry(max=1, interval=[1, math.inf]), lambda: Retry(max=1, interval=1e13)]:
        with pytest.raises(ValueError, match="Retry"):
            retry()
    for delay in [math.nan, math.inf, 1e13, "never"]:
        with pytest.raises(ValueError, match="delay"):
            Queue().enqueue_in(delay, tj.noop)
        with pytest.raises(ValueError, match="scheduled_in"):
            Queue.prepare_data(tj.noop, scheduled_in=delay)
    assert count_jobs(db) == 0


# -- dependencies ----------------------------------------------------------------------------------

def test_a_job_that_depends_on_itself_is_refused(db: psycopg.Connection[Any]) -> None:
    existing = Queue().enqueue(tj.noop, job_id="a")
    for attempt in [lambda: Queue().enqueue(tj.noop, job_id="b", depends_on="b"),
                    lambda: Queue().enqueue(tj.noop, job_id="b", depends_on=[existing, "b"]),
                    lambda: Queue().enqueue_call(tj.noop, job_id="a", depends_on=existing),
                    lambda: Queue.prepare_data(tj.noop, job_id="b", depends_on=["b"])]:
        with pytest.raises(ValueError, match="depends on itself"):
            attempt()
    assert [r[0] for r in db.execute("SELECT id FROM pgqueue.jobs")] == ["a"]


def item(id: str, *depends_on: str) -> Any:
    return Queue.prepare_data(tj.noop, job_id=id, depends_on=list(depends_on))


@pytest.mark.parametrize("caller", [False, True], ids=["own connection", "caller's transaction"])
def test_a_cycle_within_one_enqueue_many_batch_is_refused_and_nothing_written(
        db: psycopg.Connection[Any], dsn: str, caller: bool) -> None:
    plain = [Queue.prepare_data(tj.noop, args=(i,)) for i in range(3)]  # these go by COPY first
    batches = {"a -> b -> a": [item("a", "b"), item("b", "a")],
               "x -> y -> z -> x": [*plain, item("x", "y"), item("w"), item("y", "z", "w"), item("z", "x")]}
    with psycopg.connect(dsn) as conn:
        for cycle, batch in batches.items():
            with pytest.raises(ValueError, match="cycle") as refused:
                Queue().enqueue_many(batch, connection=conn if caller else None)
            assert " -> ".join(repr(i) for i in cycle.split(" -> ")) in str(refused.value)
        conn.execute("SELECT 1")  # the caller's transaction carries on
        conn.commit()
    assert count_jobs(db) == 0
    # A chain without a cycle is fine: the dependents wait.
    jobs = Queue().enqueue_many([item("p", "q"), item("q", "r"), item("r")])
    assert [j.get_status() for j in jobs] == [JobStatus.DEFERRED, JobStatus.DEFERRED, JobStatus.QUEUED]


@pytest.mark.parametrize("option", ["job_id", "unique_key"])
def test_keys_longer_than_a_unique_index_can_hold_are_refused(option: str) -> None:
    """Before, an 8 KB job_id reached PostgreSQL ("index row size ... exceeds btree maximum") and was
    reported as "cannot reach PostgreSQL"."""
    q = Queue("keys")
    q.enqueue(tj.noop, **{option: "k" * 1000})
    with pytest.raises(ValueError, match=f"{option} must be at most 1000 bytes"):
        q.enqueue(tj.noop, **{option: "k" * 8000})
    with pytest.raises(TypeError, match=f"{option} must be a str"):
        q.enqueue(tj.noop, **{option: 42})
    assert q.count == 1


@pytest.mark.parametrize("shape", ["alone", "in a list", "in a dict"])
def test_an_int_too_long_for_json_text_is_a_type_error(shape: str) -> None:
    big = 10 ** 5000
    value = {"alone": big, "in a list": [big], "in a dict": {"n": big}}[shape]
    with pytest.raises(TypeError, match="int of more than 4300 digits"):
        Queue("keys").enqueue(tj.identity, value)
