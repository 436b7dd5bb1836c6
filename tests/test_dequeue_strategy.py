"""RQ's dequeue strategies (`--dequeue-strategy`, `Worker(dequeue_strategy=...)`): default (queue order is
priority), round_robin (each claim starts with the queue after the one served last), random."""

from __future__ import annotations

import random
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest
from conftest import run_cli

from pgqueue import Queue, SimpleWorker, Worker
from pgqueue.worker import DequeueStrategy


def tags(db: psycopg.Connection[Any]) -> list[str]:
    return [r[0] for r in db.execute("SELECT tag FROM pgq_test.runs ORDER BY at, tag").fetchall()]


def fill(counts: dict[str, int]) -> None:
    for name, count in counts.items():
        for i in range(count):
            Queue(name).enqueue(tj.record, f"{name}{i + 1}")


@pytest.mark.parametrize(("strategy", "expected"), [
    ("default", ["a1", "a2", "a3", "b1", "c1", "c2"]),
    ("round_robin", ["a1", "b1", "c1", "a2", "c2", "a3"]),
    (DequeueStrategy.ROUND_ROBIN, ["a1", "b1", "c1", "a2", "c2", "a3"]),
])
def test_the_order_of_queues_follows_the_strategy(strategy: Any, expected: list[str],
                                                  db: psycopg.Connection[Any]) -> None:
    fill({"a": 3, "b": 1, "c": 2})
    # max_batch=1: each claim takes one job, so each job shows where its claim started.
    assert SimpleWorker(["a", "b", "c"], max_batch=1, dequeue_strategy=strategy).work(burst=True)
    assert tags(db) == expected


def test_random_takes_the_queues_in_a_new_order_each_claim(db: psycopg.Connection[Any]) -> None:
    fill({"a": 6, "b": 6, "c": 6})
    random.seed(7)
    worker = SimpleWorker(["a", "b", "c"], max_batch=1)
    assert worker.work(burst=True, dequeue_strategy="random")  # RQ's place for it: work()
    assert worker.dequeue_strategy is DequeueStrategy.RANDOM
    order = tags(db)
    assert sorted(order) == sorted(f"{q}{i}" for q in "abc" for i in range(1, 7))
    assert order != sorted(order)  # not queue by queue
    for queue in "abc":  # within a queue, still FIFO
        assert [t for t in order if t[0] == queue] == [f"{queue}{i}" for i in range(1, 7)]


def test_a_paused_queue_is_left_out_of_the_rotation(db: psycopg.Connection[Any]) -> None:
    fill({"a": 2, "b": 2, "c": 2})
    Queue("b").pause()
    assert SimpleWorker(["a", "b", "c"], max_batch=1, dequeue_strategy="round_robin").work(burst=True)
    assert tags(db) == ["a1", "c1", "a2", "c2"]


@pytest.mark.parametrize("strategy", ["default", "round_robin"])
def test_the_cli_option_reaches_the_worker(strategy: str, db: psycopg.Connection[Any]) -> None:
    fill({"a": 20, "b": 20})
    result = run_cli("worker", "a", "b", "--burst", "--dequeue-strategy", strategy)
    assert result.returncode == 0, result.stderr
    order = tags(db)
    assert len(order) == 40 and order[0] == "a1"
    last_a = max(i for i, t in enumerate(order) if t.startswith("a"))
    first_b = order.index("b1")
    if strategy == "default":  # all runnable work on a before b
        assert first_b > last_a
    else:  # the second claim starts with b, while a still has jobs (a claim takes a few at first)
        assert first_b < last_a


@pytest.mark.parametrize("bad", ["fifo", "", None, 3])
def test_an_unknown_strategy_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="dequeue_strategy must be one of 'default', 'round_robin', 'random'"):
        Worker(["a"], dequeue_strategy=bad)


@pytest.mark.nodb
def test_an_unknown_strategy_on_the_command_line_is_one_error_line() -> None:
    result = run_cli("worker", "--burst", "-ds", "fifo", "--dsn", "postgresql://nobody@127.0.0.1:1/none")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert errors == ["Error: Invalid value for '--dequeue-strategy' / '-ds': 'fifo' is not one of 'default', "
                      "'round_robin', 'random'."]
