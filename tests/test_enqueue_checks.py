"""What enqueue refuses before writing anything: callables a worker cannot call as given, durations and
numbers the row cannot hold, dependencies that could never be met."""

from __future__ import annotations

import functools
import random
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest

import pgqueue
from pgqueue import Queue, SimpleWorker


def count_jobs(db: psycopg.Connection[Any]) -> int:
    row = db.execute("SELECT count(*) FROM pgqueue.jobs").fetchone()
    assert row is not None
    return int(row[0])


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
