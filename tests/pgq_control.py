"""Job functions of the job-control tests (tests/test_job_control.py): jobs that are canceled while they run.

Workers import them by dotted path (tests/ is on PYTHONPATH). Each job proves what happened to it by rows in
pgq_test.runs (its tag), written on a connection of its own."""

from __future__ import annotations

import os
import time

from pgq_testjobs import _db

import pgqueue


def _record(tag: str) -> None:
    job = pgqueue.get_current_job()
    _db().execute("INSERT INTO pgq_test.runs (job_id, tag, pid) VALUES (%s, %s, %s)",
                  (job.id if job else None, tag, os.getpid()))


def stoppable(seconds: float = 60.0) -> str:
    """Records 'began', then sleeps; canceled, it records 'canceled' and lets JobCanceled end it."""
    _record("began")
    try:
        time.sleep(seconds)
    except pgqueue.JobCanceled:
        _record("canceled")
        raise
    _record("slept")
    return "slept"


def wait_for_go(timeout: float = 60.0) -> str:
    """Records 'began', then waits until the test writes a row tagged 'go' (any job id)."""
    _record("began")
    deadline = time.monotonic() + timeout
    while not _db().execute("SELECT 1 FROM pgq_test.runs WHERE tag = 'go'").fetchone():
        if time.monotonic() > deadline:
            raise TimeoutError("no 'go' came")
        time.sleep(0.02)
    _record("went")
    return "went"


def deaf(seconds: float = 60.0) -> str:
    """Records 'began', then sleeps, catching JobCanceled (as `except Exception` would) and sleeping on: only
    a kill (a Worker's) or a stop it cannot catch (a SimpleWorker's) ends it."""
    _record("began")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(max(0.0, deadline - time.monotonic()))
        except Exception as exc:  # noqa: BLE001 - the point: a job that swallows it
            _record(f"ignored {type(exc).__name__}")
    _record("slept")
    return "slept"
