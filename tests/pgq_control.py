"""Job functions of the job-control tests (tests/test_job_control.py): jobs that are canceled while they run,
snooze, report progress.

Workers import them by dotted path (tests/ is on PYTHONPATH). Each job proves what happened to it by rows in
pgq_test.runs (its tag), written on a connection of its own."""

from __future__ import annotations

import os
import time
from typing import Any

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


def swallows(seconds: float = 60.0) -> str:
    """Records 'began', sleeps, and returns normally when told to stop (catching JobCanceled)."""
    _record("began")
    try:
        time.sleep(seconds)
    except pgqueue.JobCanceled:
        _record("returning anyway")
    return "returned"


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


def snoozes(times: int, seconds: float = 0.0) -> dict[str, Any]:
    """Snoozes ``times`` times (``seconds`` each), recording each run, then returns what it saw."""
    job = pgqueue.get_current_job()
    assert job is not None
    _record(f"run attempts={job.attempts} snoozes={job.snoozes}")
    if job.snoozes < times:
        raise pgqueue.Snooze(seconds)
    return {"attempts": job.attempts, "snoozes": job.snoozes}


def progress(steps: int, pause: float = 0.0, total: int | None = None) -> int:
    """Reports progress ``steps`` times (0 .. steps-1 of ``total``), ``pause`` seconds apart."""
    job = pgqueue.get_current_job()
    assert job is not None
    for i in range(steps):
        job.set_progress(i + 1, total, f"step {i + 1}")
        if pause:
            time.sleep(pause)
    return steps


def progress_then_wait(seconds: float = 60.0) -> str:
    """Reports 1 of 3, records 'reported', then sleeps until ``seconds`` pass or it is canceled."""
    job = pgqueue.get_current_job()
    assert job is not None
    job.set_progress(1, 3, "first")
    _record("reported")
    time.sleep(seconds)
    return "done"


def snooze_with(seconds: Any) -> None:
    raise pgqueue.Snooze(seconds)


def progress_until_go() -> str:
    """Reports 1 of 2 ('half'), waits for the test's 'go', then reports 2 of 2 ('done')."""
    job = pgqueue.get_current_job()
    assert job is not None
    job.set_progress(1, 2, "half")
    wait_for_go()
    job.set_progress(2, 2, "done")
    return "done"


def report_often(times: int) -> float:
    """Reports ``times`` times as fast as it can; returns the seconds that took."""
    job = pgqueue.get_current_job()
    assert job is not None
    started = time.monotonic()
    for i in range(times):
        job.set_progress(i + 1, times)
    return time.monotonic() - started
