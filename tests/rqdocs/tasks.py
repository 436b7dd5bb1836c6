"""The job functions of RQ's documentation (docs/docs/*.md), for the ported examples. A body RQ's docs show
is RQ's; the others are made up (RQ's docs only import them ``from somewhere``), small and fast, and the
callbacks RQ shows with a body of ``pass`` record their call in ``pgq_test.runs`` so the tests can see it."""

from __future__ import annotations

import time
from typing import Any

import pgq_testjobs as tj

from rqdocs import offline_requests as requests  # RQ's examples use the real one; this machine is offline


# -- index.md: enqueueing, dependencies, callbacks, bypassing workers ---------------------------------------
def count_words_at_url(url):  # RQ's, as its docs write it
    resp = requests.get(url)
    return len(resp.text.split())


def generate_report() -> str:
    return tj.record("generate_report")


def send_report() -> str:
    return tj.record("send_report")


def foo() -> str:
    return tj.record("foo")


def bar() -> str:
    return tj.record("bar")


def baz() -> str:
    return tj.record("baz")


def say_hello(name: str = "World") -> str:
    return f"Hello {name}!"


def say_nothing() -> None:
    return None


def div_by_zero(x=1):  # RQ's (jobs.md), with a default: index.md's example calls div_by_zero() without one
    return x / 0


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def report_success(job, connection, result, *args, **kwargs):  # RQ's signature
    tj.record(f"report_success:{result}")


def report_failure(job, connection, type, value, traceback):  # RQ's signature
    tj.record(f"report_failure:{type.__name__}:{value}")


def report_stopped(job, connection):  # RQ's signature
    tj.record("report_stopped")


# -- jobs.md, results.md, exceptions.md -------------------------------------------------------------------
def foo_job() -> None:
    raise RuntimeError("foo_job always fails")


def my_func() -> None:
    raise ConnectionError("my_func: the network is down")


def sleep_for_a_second() -> str:
    time.sleep(1)
    return "slept"


def func_without_rv() -> None:
    return None


def mytask(foo: Any, bar: Any = None) -> dict[str, Any]:
    return {"foo": foo, "bar": bar}


def really_really_slow() -> str:
    return "not that slow here"


# -- workers.md, testing.md, scheduling.md -------------------------------------------------------------------
def send_newsletter(address: str) -> None:
    tj.record(f"newsletter:{address}")


def some_func() -> str:
    return "some result"


def my_long_running_job() -> str:
    return "ran"
