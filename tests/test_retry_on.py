"""Retry(on=...): the exception classes to retry on (pgqueue's, not RQ's), classes or dotted paths, checked at
enqueue and stored as dotted paths."""

from __future__ import annotations

from typing import Any

import pgq_callbacks as cb
import pgq_testjobs as tj
import psycopg
import pytest

from pgqueue import Queue, Retry


def count_jobs(db: psycopg.Connection[Any]) -> int:
    return db.execute("SELECT count(*) FROM pgqueue.jobs").fetchone()[0]  # type: ignore[index]


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
