"""Async job functions the tests enqueue (tests/ is on the workers' PYTHONPATH)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import psycopg

import pgqueue


async def _record(tag: str, started: float | None = None) -> None:
    """One row in pgq_test.runs per run, written through an async connection of the job's own: ``at`` is when
    the job began (``started``: a clock_timestamp from its start), the tag says how it ended."""
    job = pgqueue.get_current_job()
    async with await psycopg.AsyncConnection.connect(os.environ["PGQUEUE_DATABASE_URL"], autocommit=True,
                                                     prepare_threshold=None) as conn:
        await conn.execute("INSERT INTO pgq_test.runs (job_id, tag, pid) VALUES (%s, %s, %s)",
                           (job.id if job else None, tag, os.getpid()))


async def sleep_and_record(seconds: float, tag: str = "") -> str:
    """Record the run's start and end (tags TAG:start, TAG:end): what the overlap test reads."""
    await _record(f"{tag}:start")
    await asyncio.sleep(seconds)
    await _record(f"{tag}:end")
    return tag


async def sleep(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


async def add(a: Any, b: Any) -> Any:
    await asyncio.sleep(0)
    return a + b


async def fail(message: str = "async boom") -> None:
    await asyncio.sleep(0)
    raise ValueError(message)


async def current_job_id(tag: str = "") -> str | None:
    """get_current_job() inside an async job, after awaits (each job task has its own)."""
    await asyncio.sleep(0.05)
    job = pgqueue.get_current_job()
    return job.id if job else None


async def record(tag: str) -> str:
    await _record(tag)
    return tag


async def ignore_cancel(seconds: float, tag: str) -> str:
    """Swallow the cancellation at its timeout and go on for ``seconds`` more (blocking the loop)."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        await _record(f"{tag}:cancelled")
        time.sleep(seconds)
    return tag


async def block(seconds: float, tag: str = "") -> str:
    """Never awaits: holds its event loop for ``seconds``."""
    await _record(f"{tag}:start")
    time.sleep(seconds)
    return tag


async def cancelled_at_timeout(tag: str) -> None:
    """Waits past its timeout; records that its task was cancelled."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        await _record(f"{tag}:cancelled")
        raise


async def kill_own_process_after(seconds: float, tag: str = "") -> None:
    await _record(f"{tag}:start")
    await asyncio.sleep(seconds)
    os.kill(os.getpid(), 9)


async def result_of(value: Any) -> Any:
    return value


async def pid_after(seconds: float) -> int:
    await asyncio.sleep(seconds)
    return os.getpid()


def sync_pid() -> int:
    return os.getpid()


async def fail_then_record(tag: str) -> None:
    await _record(tag)
    raise RuntimeError(f"attempt failed: {tag}")


async def wait_to_be_canceled(tag: str) -> str:
    """Record ``TAG:start``, then wait; a cancel records ``TAG:cancelled`` (and the job stops)."""
    await _record(f"{tag}:start")
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        await _record(f"{tag}:cancelled")
        raise
    return tag
