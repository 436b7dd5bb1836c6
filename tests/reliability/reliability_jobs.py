"""Job functions of the reliability tests. Workers import them as ``reliability.reliability_jobs``
(``tests/`` is on their PYTHONPATH)."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import pgq_testjobs
import psycopg

import pgqueue

record = pgq_testjobs.record


def _attempt() -> int:
    job = pgqueue.get_current_job()
    return job.attempts if job else 0


def record_sleep_first_attempt(seconds: float, tag: str) -> str:
    """Record ``started:TAG``; on the first attempt only, sleep ``seconds`` (the window in which a test
    kills something); record ``TAG``. A re-run after a crash is therefore quick."""
    record(f"started:{tag}")
    if _attempt() <= 1:
        time.sleep(seconds)
    return record(tag)


# -- a recording job that survives a database restart ---------------------------------------------
# pgq_testjobs.record caches one connection per process and fails once the server restarted. This one
# reconnects and retries, and writes a unique token per call so that a retried INSERT whose commit
# went through is not counted twice: one row per execution of the function, whatever the database did.

_conn: psycopg.Connection[Any] | None = None
_conn_pid = 0


def _resilient_db() -> psycopg.Connection[Any]:
    global _conn, _conn_pid
    if _conn is None or _conn_pid != os.getpid() or _conn.closed or _conn.broken:
        _conn = psycopg.connect(os.environ["PGQUEUE_DATABASE_URL"], autocommit=True, connect_timeout=5)
        _conn_pid = os.getpid()
    return _conn


def resilient_record(tag: str = "", sleep: float = 0.0, deadline: float = 60.0) -> str:
    """Sleep ``sleep`` seconds, then insert one row into ``pgq_test.runs`` (with a ``token`` column
    under a unique index), retrying through connection failures for up to ``deadline`` seconds."""
    if sleep:
        time.sleep(sleep)
    job = pgqueue.get_current_job()
    token = uuid.uuid4().hex
    give_up = time.monotonic() + deadline
    delay = 0.05
    while True:
        try:
            _resilient_db().execute(
                "INSERT INTO pgq_test.runs (job_id, tag, pid, token) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (token) DO NOTHING",
                (job.id if job else None, tag, os.getpid(), token))
            return tag
        except psycopg.OperationalError:
            if time.monotonic() > give_up:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def sleep_then_record(seconds: float, tag: str) -> str:
    time.sleep(seconds)
    return record(tag)


def tick(tag: str, first_run: float, later_runs: float) -> str:
    """Record a row tagged ``tag`` (with this process's pid and the database's clock) every 20 ms: for
    ``first_run`` seconds on the first attempt, ``later_runs`` after. The rows are the job's external
    effects: two runs at once would interleave them."""
    seconds = first_run if _attempt() <= 1 else later_runs
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        record(tag)
        time.sleep(0.02)
    return tag
