"""The statements of periodic jobs (``sql/schedules.sql``), in the SQL gateway (:mod:`pgqueue._store`,
whose ``ROWS`` registers these row types too). Each function takes Python values and returns named rows;
all of them run through psycopg on the caller's connection, inside the caller's transaction if there is
one (the scheduler's, which locks the due schedules, enqueues their jobs and moves them forward)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from ._run import Conn, _do, _execute


class Definition(NamedTuple):
    """What a scheduler writes of a schedule it declares."""
    name: str
    expression: str
    timezone: str
    func_name: str
    queue: str


class DeclaredRow(NamedTuple):
    declared: int


class DueRow(NamedTuple):
    """A due schedule, locked: its next tick (None: not computed yet), its last job's id and status, and
    the transaction's now()."""
    name: str
    next_tick: datetime | None
    last_job_id: str | None
    last_status: str | None
    now: datetime


class NameRow(NamedTuple):
    name: str


class SecondsRow(NamedTuple):
    seconds: float | None


class ScheduleRow(NamedTuple):
    """A schedule as `pgqueue schedules` shows it (see the list_schedules query)."""
    name: str
    expression: str
    timezone: str
    func_name: str
    queue: str
    next_tick: datetime | None
    last_tick: datetime | None
    last_job_id: str | None
    last_job_status: str | None
    last_outcome: str | None
    updated_at: datetime
    declared: bool
    now: datetime


class NowRow(NamedTuple):
    now: datetime


def _arrays(definitions: Sequence[Definition]) -> dict[str, list[str]]:
    return {f"{field}s": [getattr(d, field) for d in definitions] for field in Definition._fields}


def declare_schedules(conn: Conn, definitions: Sequence[Definition]) -> None:
    """Insert or update the rows of ``definitions`` (see the declare_schedules query)."""
    _do(conn, "declare_schedules", _arrays(definitions))


def touch_schedules(conn: Conn, definitions: Sequence[Definition]) -> int:
    """Mark ``definitions`` as still declared, re-creating rows deleted meanwhile; returns how many."""
    return _execute(conn, "touch_schedules", _arrays(definitions), DeclaredRow)[0].declared


def lock_due_schedules(conn: Conn, names: Sequence[str], limit: int) -> list[DueRow]:
    return _execute(conn, "lock_due_schedules", {"names": list(names), "limit": limit}, DueRow)


def advance_schedule(conn: Conn, *, name: str, expected: datetime | None, next_tick: datetime,
                     last_tick: datetime | None, last_job_id: str | None, outcome: str | None) -> bool:
    """Move the schedule ``name`` to ``next_tick`` if its next_tick is still ``expected``; whether it did."""
    return bool(_execute(conn, "advance_schedule", {
        "name": name, "expected": expected, "next_tick": next_tick, "last_tick": last_tick,
        "last_job_id": last_job_id, "outcome": outcome}, NameRow))


def next_schedule_tick(conn: Conn, names: Sequence[str]) -> float | None:
    """Seconds until the earliest next tick of the schedules ``names`` (see the query)."""
    return _execute(conn, "next_schedule_tick", {"names": list(names)}, SecondsRow)[0].seconds


def list_schedules(conn: Conn, declared_within: float) -> list[ScheduleRow]:
    return _execute(conn, "list_schedules", {"declared_within": declared_within}, ScheduleRow)


def database_now(conn: Conn) -> datetime:
    return _execute(conn, "database_now", None, NowRow)[0].now


#: Each statement's row type (registered in _store.ROWS).
ROWS: dict[str, type[tuple[Any, ...]] | None] = {
    "declare_schedules": None, "touch_schedules": DeclaredRow, "lock_due_schedules": DueRow,
    "advance_schedule": NameRow, "next_schedule_tick": SecondsRow, "list_schedules": ScheduleRow,
    "database_now": NowRow,
}
