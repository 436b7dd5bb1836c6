"""RQ's commands that pgqueue's CLI has too, in real processes: `pgqueue empty` and `pgqueue enqueue`."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest
from conftest import run_cli

from pgqueue import JobStatus, Queue

UNREACHABLE = ("--dsn", "postgresql://nobody@127.0.0.1:1/none")


def statuses(db: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    return db.execute("SELECT queue, status::text FROM pgqueue.jobs ORDER BY queue, status").fetchall()


def test_empty_deletes_the_queued_jobs_of_the_queues_named(db: psycopg.Connection[Any]) -> None:
    for _ in range(3):
        Queue("a").enqueue(tj.noop)
    Queue("b").enqueue(tj.noop)
    Queue("c").enqueue(tj.noop)
    later = Queue("a").enqueue_at(datetime(2100, 1, 1, tzinfo=timezone.utc), tj.noop)
    result = run_cli("empty", "a", "b", "nothing-here")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["3 jobs removed from a queue", "1 jobs removed from b queue",
                                          "0 jobs removed from nothing-here queue"]
    assert statuses(db) == [("a", "scheduled"), ("c", "queued")]  # scheduled jobs stay, as in RQ
    assert later.get_status() == JobStatus.SCHEDULED


def test_empty_all_empties_every_queue_with_queued_jobs(db: psycopg.Connection[Any]) -> None:
    Queue("a").enqueue(tj.noop)
    Queue("b").enqueue(tj.noop)
    Queue("b").enqueue(tj.noop)
    result = run_cli("empty", "--all")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["1 jobs removed from a queue", "2 jobs removed from b queue"]
    assert statuses(db) == []
    assert run_cli("empty", "-a").stdout.strip() == "Nothing to do"


@pytest.mark.nodb
@pytest.mark.parametrize(("args", "says"), [
    (["empty"], "name the QUEUEs to empty, or use --all"),
    (["empty", "a", "--all"], "give QUEUEs or --all, not both"),
    (["empty", ""], "queue names must not be empty."),
    (["empty", "x" * 1001], "a queue name must be at most 1000 bytes"),
])
def test_bad_empty_arguments_are_one_error_line_and_exit_2(args: list[str], says: str) -> None:
    result = run_cli(*args, *UNREACHABLE)
    assert result.returncode == 2, result
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and says in errors[0], result.stderr
    assert result.stdout == ""
