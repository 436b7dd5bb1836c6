"""Callbacks and exceptions the tests of callbacks, Retry(on=...) and Queue(is_async=False) enqueue. Workers
import them by dotted path (tests/ is on PYTHONPATH). Each callback proves it ran by a row in pgq_test.runs,
written through the connection it was given; the tag holds what it saw, as JSON."""

from __future__ import annotations

import builtins
import json
import os
import signal
import time
from typing import Any

import psycopg

import pgqueue


def _record(connection: psycopg.Connection[Any], job: pgqueue.Job, what: dict[str, Any]) -> None:
    connection.execute("INSERT INTO pgq_test.runs (job_id, tag, pid) VALUES (%s, %s, %s)",
                       (job.id, json.dumps(what), os.getpid()))


def on_success(job: pgqueue.Job, connection: psycopg.Connection[Any], result: Any, *args: Any, **kwargs: Any) -> None:
    current = pgqueue.get_current_job()
    _record(connection, job, {"callback": "success", "result": result, "status": str(job.get_status(refresh=False)),
                              "job_result": job.result, "attempts": job.attempts,
                              "current": current.id if current else None})


def on_failure(job: pgqueue.Job, connection: psycopg.Connection[Any], type: Any, value: Any, traceback: Any) -> None:
    _record(connection, job, {"callback": "failure", "type": f"{type.__module__}.{type.__qualname__}",
                              "value": str(value), "isinstance": isinstance(value, type),
                              "traceback": traceback is not None, "status": str(job.get_status(refresh=False)),
                              "attempts": job.attempts, "exc_info": (job.exc_info or "").splitlines()[-1:]})


def on_stopped(job: pgqueue.Job, connection: psycopg.Connection[Any]) -> None:
    _record(connection, job, {"callback": "stopped"})


def raises(job: pgqueue.Job, connection: Any, *args: Any) -> None:
    raise RuntimeError("the callback broke")


def sleeps(job: pgqueue.Job, connection: Any, *args: Any) -> None:
    time.sleep(60)


def sleeps_deaf(job: pgqueue.Job, connection: Any, *args: Any) -> None:
    """Sleeps past any timeout with SIGALRM blocked: only a kill of its process stops it."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(60)


def kills_its_process(job: pgqueue.Job, connection: Any, *args: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def enqueues(job: pgqueue.Job, connection: psycopg.Connection[Any], result: Any) -> None:
    """Enqueues a follow-up job in the callback's connection."""
    pgqueue.Queue("followups").enqueue("pgq_testjobs.identity", result, connection=connection)


class TransientError(Exception):
    pass


def fail_with(kind: str, message: str = "failed", times: int = 1000) -> str:
    """Raise the exception class ``kind`` (a builtin's name, or TransientError) on the first ``times``
    attempts; each attempt leaves a row in pgq_test.runs."""
    job = pgqueue.get_current_job()
    assert job is not None
    from pgq_testjobs import record

    record(f"attempt {job.attempts}")
    if job.attempts <= times:
        raise (TransientError if kind == "TransientError" else getattr(builtins, kind))(message)
    return "succeeded"


def records_then_sleeps(job: pgqueue.Job, connection: psycopg.Connection[Any], *args: Any) -> None:
    """Records that it began (tag 'callback began'), then takes a while (``job.meta["sleep"]`` seconds)."""
    connection.execute("INSERT INTO pgq_test.runs (job_id, tag, pid) VALUES (%s, 'callback began', %s)",
                       (job.id, os.getpid()))
    time.sleep(job.meta.get("sleep", 60))
    _record(connection, job, {"callback": "slept"})
