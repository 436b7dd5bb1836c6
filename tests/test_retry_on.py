"""Retry(on=...): retry only failures that are exceptions of the classes named (pgqueue's, not RQ's); any other
exception fails the job at once, its remaining retries unused. Timeouts, crashed processes and lost workers
are not exceptions of the job's and are retried as without on=."""

from __future__ import annotations

import logging
from typing import Any

import pgq_callbacks as cb
import pgq_testjobs as tj
import psycopg
import pytest
from conftest import count_jobs

from pgqueue import JobStatus, Queue, Retry, SimpleWorker, Worker

WORKERS = [Worker, SimpleWorker]


def attempts_run(db: psycopg.Connection[Any], job_id: str) -> int:
    return db.execute("SELECT count(*) FROM pgq_test.runs WHERE job_id = %s", (job_id,)).fetchone()[0]  # type: ignore[index]


@pytest.mark.parametrize("worker", WORKERS)
def test_an_exception_named_in_on_is_retried_and_any_other_fails_at_once(db: psycopg.Connection[Any],
                                                                        worker: type[Worker]) -> None:
    q, retry = Queue("retry_on"), Retry(max=3, on=(ConnectionError, TimeoutError))
    retried = q.enqueue(cb.fail_with, "ConnectionError", times=2, retry=retry)
    refused = q.enqueue(cb.fail_with, "KeyError", retry=retry)
    worker(["retry_on"]).work(burst=True)
    retried.refresh()
    assert (retried.status, retried.result, retried.attempts) == (JobStatus.FINISHED, "succeeded", 3)
    assert attempts_run(db, retried.id) == 3
    refused.refresh()
    assert (refused.status, refused.attempts, refused.max_attempts) == (JobStatus.FAILED, 1, 4)
    assert attempts_run(db, refused.id) == 1 and refused.exc_info.endswith("KeyError: 'failed'\n")


@pytest.mark.parametrize("on", [LookupError, "builtins.LookupError", ["builtins.OSError", LookupError],
                                cb.TransientError, "pgq_callbacks.TransientError"],
                         ids=["base class", "dotted path", "mixed list", "class of a module", "its dotted path"])
def test_on_takes_classes_and_dotted_paths_and_matches_subclasses(db: psycopg.Connection[Any], on: Any) -> None:
    kind = "TransientError" if "Transient" in str(on) else "KeyError"
    job = Queue("retry_on").enqueue(cb.fail_with, kind, times=1, retry=Retry(max=1, on=on))
    Worker(["retry_on"]).work(burst=True)
    job.refresh()
    assert (job.status, job.attempts) == (JobStatus.FINISHED, 2)


def test_retry_on_is_stored_as_dotted_paths(db: psycopg.Connection[Any]) -> None:
    q = Queue("retry_on")
    one = q.enqueue(tj.noop, retry=Retry(max=2, interval=5, on=ConnectionError))
    [many] = q.enqueue_many([Queue.prepare_data(tj.noop, retry=Retry(max=1, on=(cb.TransientError, "a.b.C")))])
    plain = q.enqueue(tj.noop, retry=3)
    rows = dict(db.execute("SELECT id, retry_on FROM pgqueue.jobs").fetchall())
    assert rows == {one.id: ["builtins.ConnectionError"], many.id: ["pgq_callbacks.TransientError", "a.b.C"],
                    plain.id: None}
    assert repr(Retry(max=1, on=KeyError)) == "Retry(max=1, interval=[0.0], on=('builtins.KeyError',))"
    assert Retry.exponential(3, on=KeyError).on == ("builtins.KeyError",)


class LocalError(Exception):
    pass


def local_class() -> type[Exception]:
    class Inner(Exception):
        pass
    return Inner


LocalError.__module__ = "__main__"


@pytest.mark.parametrize("on, kind, says", [
    ((), ValueError, "would retry no failure"),
    ([], ValueError, "would retry no failure"),
    (42, TypeError, "not int 42"),
    (int, TypeError, "exception classes or their dotted paths"),
    (["builtins.KeyError", 3.5], TypeError, "not float 3.5"),
    ("KeyError", ValueError, "dotted path"),
    ("pkg..Error", ValueError, "dotted path"),
    ("__main__.Error", ValueError, "__main__"),
    (LocalError, ValueError, "__main__"),
    (local_class(), ValueError, "module level"),
], ids=["empty tuple", "empty list", "int", "not an exception class", "one bad in a list", "no dot", "empty part",
        "__main__ path", "__main__ class", "local class"])
def test_an_on_a_worker_could_not_use_is_refused_before_anything_is_written(
        db: psycopg.Connection[Any], on: Any, kind: type[Exception], says: str) -> None:
    with pytest.raises(kind, match="Retry") as refused:
        Queue().enqueue(tj.noop, retry=Retry(max=1, on=on))
    assert says in str(refused.value)
    assert count_jobs(db) == 0


def test_a_timeout_is_retried_even_when_on_does_not_name_it(db: psycopg.Connection[Any]) -> None:
    job = Queue("retry_on").enqueue(tj.sleep_then_record, 30, "never", job_timeout=1,
                                    retry=Retry(max=1, on=ConnectionError))
    Worker(["retry_on"]).work(burst=True)
    job.refresh()
    assert (job.status, job.attempts) == (JobStatus.FAILED, 2)
    assert [e["type"] for e in job.errors] == ["JobTimeoutError", "JobTimeoutError"]


def test_a_class_the_worker_cannot_import_matches_nothing(db: psycopg.Connection[Any],
                                                          caplog: pytest.LogCaptureFixture) -> None:
    job = Queue("retry_on").enqueue(cb.fail_with, "KeyError", retry=Retry(max=2, on=["no_such_module.Error",
                                                                                     "builtins.ValueError"]))
    with caplog.at_level(logging.INFO, logger="pgqueue.worker"):
        SimpleWorker(["retry_on"]).work(burst=True)
    job.refresh()
    assert (job.status, job.attempts) == (JobStatus.FAILED, 1)
    assert "Retry(on=...) names no_such_module.Error, which this worker cannot import" in caplog.text
    assert f"Job failed ({job.id}): KeyError: 'failed'; not retried: not an exception its Retry(on=...) names" \
        in caplog.text


def test_with_an_allow_list_on_names_builtins_or_classes_under_it(db: psycopg.Connection[Any]) -> None:
    q = Queue("retry_on")
    builtin = q.enqueue(cb.fail_with, "KeyError", times=1, retry=Retry(max=1, on=KeyError))
    outside = q.enqueue(cb.fail_with, "TransientError", times=1, retry=Retry(max=1, on=cb.TransientError))
    Worker(["retry_on"], allow_modules=["pgq_callbacks"]).work(burst=True)
    assert builtin.get_status() == JobStatus.FINISHED
    assert outside.get_status() == JobStatus.FINISHED  # pgq_callbacks is allowed
    blocked = q.enqueue(cb.fail_with, "TransientError", times=1, retry=Retry(max=1, on=cb.TransientError))
    Worker(["retry_on"], allow_modules=["pgq_callbacks.fail_with"]).work(burst=True)
    blocked.refresh()
    assert (blocked.status, blocked.attempts) == (JobStatus.FAILED, 1)
