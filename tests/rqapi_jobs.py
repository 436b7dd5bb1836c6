"""Job functions for the tests of RQ's inspection API (registries, results, worker statistics). Workers
import them by dotted path (tests/ is on PYTHONPATH)."""

from __future__ import annotations

import time

from pgq_testjobs import _db, record


def hold(tag: str, timeout: float = 20.0) -> str:
    """Record ``started:TAG``, then run until the test records ``release:TAG``: a job that is surely
    running while the test looks at it."""
    record(f"started:{tag}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _db().execute("SELECT 1 FROM pgq_test.runs WHERE tag = %s", (f"release:{tag}",)).fetchone():
            return tag
        time.sleep(0.01)
    raise TimeoutError(f"nobody released {tag}")


def release(tag: str) -> None:
    """What the test calls to let ``hold(tag)`` return."""
    _db().execute("INSERT INTO pgq_test.runs (tag) VALUES (%s)", (f"release:{tag}",))


def nap(seconds: float) -> float:
    """Sleep ``seconds``: a run whose duration is at least that (for the working time)."""
    time.sleep(seconds)
    return seconds


def nap_then_fail(seconds: float) -> None:
    time.sleep(seconds)
    raise RuntimeError(f"failed after {seconds} s")
