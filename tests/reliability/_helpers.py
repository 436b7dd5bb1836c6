"""Queries and process look-ups shared by the reliability tests."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from conftest import wait_for


def db_now(db: psycopg.Connection[Any]) -> datetime:
    row = db.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0]


def run_rows(db: psycopg.Connection[Any], tag: str) -> list[tuple[int, datetime]]:
    """(pid, at) of every ``pgq_test.runs`` row with this tag, oldest first."""
    return [(r[0], r[1]) for r in db.execute(
        "SELECT pid, at FROM pgq_test.runs WHERE tag = %s ORDER BY at", (tag,)).fetchall()]


def wait_started(db: psycopg.Connection[Any], tag: str, count: int = 1,
                 timeout: float = 20) -> list[tuple[int, datetime]]:
    """Wait until ``started:TAG`` was recorded ``count`` times; returns those rows."""
    return wait_for(lambda: (rows := run_rows(db, f"started:{tag}")) and len(rows) >= count and rows,
                    timeout, message=f"job {tag} to start {count} time(s)")


def job_row(db: psycopg.Connection[Any], job_id: str) -> dict[str, Any]:
    cur = db.execute(
        "SELECT status::text AS status, attempts, claim_count, max_attempts, errors, exc_info, worker_id, worker_name, "
        "started_at, ended_at FROM pgqueue.jobs WHERE id = %s", (job_id,))
    row = cur.fetchone()
    assert row is not None, f"job {job_id} is missing"
    assert cur.description is not None
    return dict(zip([c.name for c in cur.description], row, strict=True))


def wait_status(db: psycopg.Connection[Any], job_id: str, status: str, timeout: float = 20) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def check() -> bool:
        nonlocal last
        last = job_row(db, job_id)
        return bool(last["status"] == status)

    try:
        wait_for(check, timeout, message=f"job {job_id} to be {status}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen: {last}") from None
    return last


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not: nobody may have reaped an orphan yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def children_of(pid: int) -> list[int]:
    """Live child processes of ``pid`` (a worker supervisor's are its job processes)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return [p for p in found if alive(p)]


def worker_row(db: psycopg.Connection[Any], worker_id: int) -> dict[str, Any]:
    cur = db.execute("SELECT name, heartbeat_at, lease_seconds, stopped_at FROM pgqueue.workers WHERE id = %s",
                     (worker_id,))
    row = cur.fetchone()
    assert row is not None and cur.description is not None
    return dict(zip([c.name for c in cur.description], row, strict=True))

