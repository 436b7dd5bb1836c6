"""Fixtures of the framework tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pgq_testjobs as tj
import psycopg
import pytest

from pgqueue import Queue


@pytest.fixture
def wakeups(dsn: str) -> Iterator[Callable[[], list[str]]]:
    """The queues named by the worker wake-ups (NOTIFY pgqueue_jobs) sent from now until a marker job's: one
    enqueued and committed on queue "marker" when called. Notifications arrive in commit order, so anything
    sent before the marker's has arrived with it: no waiting for silence."""
    listener = psycopg.connect(dsn, autocommit=True)
    listener.execute("LISTEN pgqueue_jobs")

    def until_marker() -> list[str]:
        Queue("marker").enqueue(tj.noop)
        seen: list[str] = []
        for note in listener.notifies(timeout=20):
            seen.append(note.payload)
            if note.payload == "marker":
                return seen[:-1]
        raise AssertionError(f"no wake-up for the marker job within 20 s (saw {seen})")

    yield until_marker
    listener.close()
