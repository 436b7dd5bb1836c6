"""Callbacks: on_success, on_failure and on_stopped (RQ's options), taken by every way to enqueue and refused
when a worker could not import them."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from typing import Any

import pgq_callbacks as cb
import pgq_testjobs as tj
import psycopg
import pytest

import pgqueue
from pgqueue import Callback, Job, Queue


def stored(db: psycopg.Connection[Any], job: Job) -> Any:
    return db.execute("SELECT callbacks FROM pgqueue.jobs WHERE id = %s", (job.id,)).fetchone()[0]  # type: ignore[index]


def seen(db: psycopg.Connection[Any], job: Job) -> list[dict[str, Any]]:
    """What each callback of ``job`` that ran saw, in order, with the pid it ran in."""
    rows = db.execute("SELECT tag, pid FROM pgq_test.runs WHERE job_id = %s AND tag LIKE '{%%' ORDER BY at",
                      (job.id,)).fetchall()
    return [{**json.loads(tag), "pid": pid} for tag, pid in rows]


def job_pids(db: psycopg.Connection[Any], job: Job) -> set[int]:
    rows = db.execute("SELECT pid FROM pgq_test.runs WHERE job_id = %s AND tag NOT LIKE '{%%'", (job.id,)).fetchall()
    return {pid for (pid,) in rows}


def callback_errors(job: Job) -> list[dict[str, Any]]:
    job.refresh()
    return [e for e in job.errors if e["type"] == "CallbackFailed"]


def count_jobs(db: psycopg.Connection[Any]) -> int:
    return db.execute("SELECT count(*) FROM pgqueue.jobs").fetchone()[0]  # type: ignore[index]


# -- what enqueue takes and stores -----------------------------------------------------------------

def test_every_way_to_enqueue_stores_the_callbacks_not_as_arguments(db: psycopg.Connection[Any]) -> None:
    q = Queue("stored")
    deco = pgqueue.job("stored", on_failure=cb.on_failure)(tj.identity)
    jobs = [q.enqueue(tj.add, 1, 2, on_success=cb.on_success),
            q.enqueue_call(tj.add, args=(1, 2), on_success=cb.on_success),
            q.enqueue_at(datetime.now(timezone.utc), tj.add, 1, 2, on_success=cb.on_success),
            q.enqueue_in(timedelta(seconds=30), tj.add, 1, 2, on_success=cb.on_success),
            *q.enqueue_many([Queue.prepare_data(tj.add, (1, 2), on_success=cb.on_success),
                             Queue.prepare_data(tj.add, (3, 4))])]
    for job in jobs[:-1]:
        assert stored(db, job) == {"success": {"func": "pgq_callbacks.on_success", "timeout": 60.0}}
        assert Job.fetch(job.id).kwargs == {}
    assert stored(db, jobs[-1]) is None  # a job without callbacks keeps NULL
    decorated = deco.delay(5)
    assert stored(db, decorated) == {"failure": {"func": "pgq_callbacks.on_failure", "timeout": 60.0}}


def test_callback_objects_dotted_paths_and_timeouts_are_stored(db: psycopg.Connection[Any]) -> None:
    job = Queue().enqueue(tj.noop, on_success=Callback(cb.on_success, timeout="2m"),
                          on_failure="pgq_callbacks.on_failure", on_stopped=Callback("pgq_callbacks.on_stopped", -1))
    assert stored(db, job) == {"success": {"func": "pgq_callbacks.on_success", "timeout": 120.0},
                               "failure": {"func": "pgq_callbacks.on_failure", "timeout": 60.0},
                               "stopped": {"func": "pgq_callbacks.on_stopped", "timeout": None}}
    assert Callback(cb.on_success).timeout == 60 and math.isinf(Callback(cb.on_success, timeout=-1).timeout)
    assert Callback(cb.on_success, timeout=timedelta(seconds=5)).name == "pgq_callbacks.on_success"


def local_callback() -> Any:
    def inner(job: Any, connection: Any, result: Any) -> None:
        pass
    return inner


async def coroutine_callback(job: Any, connection: Any, result: Any) -> None:
    pass


def main_callback(job: Any, connection: Any, result: Any) -> None:
    pass


main_callback.__module__ = "__main__"


@pytest.mark.parametrize("value, kind, says", [
    (lambda job, connection, result: None, ValueError, "defined at module level"),
    (local_callback(), ValueError, "defined at module level"),
    (tj.Jobs().method, ValueError, "bound to an instance of pgq_testjobs.Jobs"),
    (main_callback, ValueError, "(__main__)"),
    (tj.Jobs, TypeError, "not the class pgq_testjobs.Jobs"),
    (coroutine_callback, TypeError, "coroutine function"),
    ("not_dotted", ValueError, "dotted path"),
    (42, TypeError, "not callable"),
], ids=["lambda", "local function", "bound method", "__main__", "class", "coroutine", "no dot", "not callable"])
def test_callbacks_a_worker_cannot_import_are_refused_before_anything_is_written(
        db: psycopg.Connection[Any], value: Any, kind: type[Exception], says: str) -> None:
    q = Queue()
    for option in ("on_success", "on_failure", "on_stopped"):
        given = {option: value}
        for attempt in (lambda: q.enqueue(tj.noop, **given), lambda: q.enqueue_call(tj.noop, **given),  # noqa: B023
                        lambda: q.enqueue_many([Queue.prepare_data(tj.noop, **given)]),  # noqa: B023
                        lambda: pgqueue.job("default", **given)(tj.noop).delay()):  # noqa: B023
            with pytest.raises(kind) as refused:
                attempt()
            assert says in str(refused.value) and option in str(refused.value), str(refused.value)
    with pytest.raises(kind, match="Callback"):
        Callback(value)
    assert count_jobs(db) == 0


@pytest.mark.parametrize("timeout", [0, -5, "soon", math.nan])
def test_a_callback_timeout_that_is_no_duration_is_refused(timeout: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="Callback timeout"):
        Callback(cb.on_success, timeout=timeout)
