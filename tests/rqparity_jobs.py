"""Job functions and exception handlers for the tests of RQ's CLI and worker options (pauses, exception
handlers, dequeue strategies). Workers import them by dotted path (tests/ is on PYTHONPATH)."""

from __future__ import annotations

import os
import time
from typing import Any

import pgq_testjobs as tj

import pgqueue


def hold(tag: str, timeout: float = 20.0) -> str:
    """Record ``started:TAG``, then wait until a row ``release:TAG`` exists (the test writes it)."""
    tj.record(f"started:{tag}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tj._db().execute("SELECT 1 FROM pgq_test.runs WHERE tag = %s", (f"release:{tag}",)).fetchone():
            return tj.record(tag)
        time.sleep(0.01)
    raise TimeoutError(f"never released: {tag}")


# -- exception handlers: each records what it was called with, as a row of pgq_test.runs --------------
def _note(name: str, job: Any, exc_type: Any, exc_value: Any, tb: Any) -> None:
    current = pgqueue.get_current_job()
    tj._db().execute(
        "INSERT INTO pgq_test.runs (job_id, tag, pid) VALUES (%s, %s, %s)",
        (job.id, f"{name}:{exc_type.__name__}:{exc_value}:{tb is not None}:{current is job}:{job.status}",
         os.getpid()))


def note_first(job: Any, exc_type: Any, exc_value: Any, tb: Any) -> None:
    _note("first", job, exc_type, exc_value, tb)


def note_second(job: Any, exc_type: Any, exc_value: Any, tb: Any) -> None:
    _note("second", job, exc_type, exc_value, tb)


def note_and_stop(job: Any, exc_type: Any, exc_value: Any, tb: Any) -> bool:
    _note("stop", job, exc_type, exc_value, tb)
    return False  # the handlers after this one are not called (RQ's rule)


def raising_handler(job: Any, exc_type: Any, exc_value: Any, tb: Any) -> None:
    raise RuntimeError("the handler itself is broken")


not_callable = 42
