"""The statements of ``sql/ops.sql`` (``pgqueue jobs``, ``show``, ``purge`` and ``doctor``), in the SQL
gateway (:mod:`pgqueue._store`, whose ``ROWS`` registers these row types too). Each function takes Python
values and returns named rows. They run through psycopg on the connection given, never prepared: each runs
once per page, purge batch or health check, and its text is the same whatever the filters."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from ..sql import q
from ._run import Conn, _one

R = TypeVar("R", bound=tuple[Any, ...])

LIVE_STATUSES = ("scheduled", "queued", "deferred", "running")
ENDED_STATUSES = ("finished", "failed", "canceled")
STATUSES = LIVE_STATUSES + ENDED_STATUSES


def _run(conn: Conn, name: str, params: dict[str, Any] | None, row: type[R]) -> list[R]:
    return [row._make(r) for r in conn.execute(q(name), params, prepare=False).fetchall()]  # type: ignore[attr-defined]


def _flags(statuses: Sequence[str], names: Sequence[str] = STATUSES) -> dict[str, bool]:
    """One boolean parameter per status of ``names``: whether it is one of ``statuses``."""
    return {name: name in statuses for name in names}


# -- pgqueue jobs ----------------------------------------------------------------------------------
class JobListRow(NamedTuple):
    """A job as `pgqueue jobs` lists it."""
    id: str
    queue: str
    func_name: str
    status: str
    priority: int
    attempts: int
    max_attempts: int
    enqueued_at: datetime
    scheduled_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    worker_name: str | None
    exc_info: str | None
    progress: str | None


class WalkedRow(NamedTuple):
    """How far list_jobs's walk went: the ids it examined, and the last one (None if none)."""
    walked: int
    walked_to: str | None


class EndedAtRow(NamedTuple):
    ended_at: datetime | None


def list_jobs(conn: Conn, kind: str, statuses: Sequence[str], filters: dict[str, Any]) -> list[JobListRow]:
    """One page of jobs: ``kind`` is ``"all"`` (list_jobs), ``"live"`` (list_live_jobs) or ``"ended"``
    (list_ended_jobs); ``filters`` holds the statement's other parameters (see sql/ops.sql)."""
    name = {"all": "list_jobs", "live": "list_live_jobs", "ended": "list_ended_jobs"}[kind]
    return _run(conn, name, {**_flags(statuses), **filters}, JobListRow)


def list_walked(conn: Conn, after: str | None, scan: int) -> WalkedRow:
    return _run(conn, "list_walked", {"after": after, "scan": scan}, WalkedRow)[0]


def job_ended_at(conn: Conn, id: str) -> EndedAtRow | None:
    return _one(_run(conn, "job_ended_at", {"id": id}, EndedAtRow))


# -- pgqueue show ----------------------------------------------------------------------------------
class JobDetailsRow(NamedTuple):
    """Every column of a job as a JSON object, its worker's as one (or None), and the database's now()."""
    job: str
    worker: str | None
    now: datetime


def job_details(conn: Conn, id: str) -> JobDetailsRow | None:
    return _one(_run(conn, "job_details", {"id": id}, JobDetailsRow))


# -- pgqueue purge ---------------------------------------------------------------------------------
class PurgeCountRow(NamedTuple):
    cutoff: datetime
    jobs: int


class PurgedRow(NamedTuple):
    deleted: int


def purge_count(conn: Conn, statuses: Sequence[str], older_than: float, queue: str | None) -> PurgeCountRow:
    """The moment before which ended jobs of ``statuses`` go, and how many there are."""
    params = {**_flags(statuses, ENDED_STATUSES), "older_than": older_than, "queue": queue}
    return _run(conn, "purge_count", params, PurgeCountRow)[0]


def purge_batch(conn: Conn, statuses: Sequence[str], cutoff: datetime, queue: str | None, limit: int) -> int:
    """Delete up to ``limit`` of those jobs (the oldest first); returns how many it deleted."""
    params = {**_flags(statuses, ENDED_STATUSES), "cutoff": cutoff, "queue": queue, "limit": limit}
    return _run(conn, "purge_batch", params, PurgedRow)[0].deleted


# -- pgqueue doctor --------------------------------------------------------------------------------
class SessionRow(NamedTuple):
    """A session whose transaction holds back the xmin horizon (see the health_sessions query)."""
    pid: int
    role: str | None
    application_name: str | None
    client_addr: str | None
    state: str | None
    xact_start: datetime
    query_start: datetime | None
    state_change: datetime | None
    seconds: float
    xid_age: int | None
    query: str | None


class VisibilityRow(NamedTuple):
    sees_all: bool
    hidden: int


class PreparedRow(NamedTuple):
    gid: str
    owner: str
    prepared: datetime
    seconds: float
    xid_age: int


class SlotRow(NamedTuple):
    slot_name: str
    slot_type: str
    active: bool
    active_pid: int | None
    xid_age: int
    wal_status: str | None


class TableRow(NamedTuple):
    """pgqueue.jobs and its claim index (see the health_table query); statistics None if never collected."""
    live_rows: int | None
    dead_rows: int | None
    last_vacuum: datetime | None
    last_autovacuum: datetime | None
    autovacuum_count: int | None
    vacuum_count: int | None
    autovacuum_on: bool
    track_counts: bool
    table_autovacuum: bool
    vacuum_due_at: int
    table_bytes: int
    claim_index_bytes: int
    claim_index_rows: int
    pgstattuple: bool


class TupleStatsRow(NamedTuple):
    avg_leaf_density: float
    leaf_pages: int
    deleted_pages: int
    dead_tuple_percent: float
    approx_free_percent: float


class LostWorkerRow(NamedTuple):
    name: str
    hostname: str
    pid: int
    queues: list[str]
    lease_seconds: float
    heartbeat_at: datetime
    silent_seconds: float
    running: int


class StuckJobRow(NamedTuple):
    id: str
    queue: str
    func_name: str
    worker_name: str | None
    started_at: datetime
    timeout_seconds: float
    running_seconds: float


def health_sessions(conn: Conn, max_age: float) -> list[SessionRow]:
    return _run(conn, "health_sessions", {"max_age": max_age}, SessionRow)


def health_visibility(conn: Conn) -> VisibilityRow:
    return _run(conn, "health_visibility", None, VisibilityRow)[0]


def health_prepared(conn: Conn, max_age: float) -> list[PreparedRow]:
    return _run(conn, "health_prepared", {"max_age": max_age}, PreparedRow)


def health_slots(conn: Conn, max_xid_age: int) -> list[SlotRow]:
    return _run(conn, "health_slots", {"max_xid_age": max_xid_age}, SlotRow)


def health_table(conn: Conn) -> TableRow:
    return _run(conn, "health_table", None, TableRow)[0]


def health_pgstattuple(conn: Conn) -> TupleStatsRow:
    return _run(conn, "health_pgstattuple", None, TupleStatsRow)[0]


def health_lost_workers(conn: Conn) -> list[LostWorkerRow]:
    return _run(conn, "health_lost_workers", None, LostWorkerRow)


def health_stuck_jobs(conn: Conn, margin: float) -> list[StuckJobRow]:
    return _run(conn, "health_stuck_jobs", {"margin": margin}, StuckJobRow)


#: Each statement's row type (registered in _store.ROWS).
ROWS: dict[str, type[tuple[Any, ...]] | None] = {
    "list_jobs": JobListRow, "list_live_jobs": JobListRow, "list_ended_jobs": JobListRow, "list_walked": WalkedRow,
    "job_ended_at": EndedAtRow, "job_details": JobDetailsRow, "purge_count": PurgeCountRow,
    "purge_batch": PurgedRow, "health_sessions": SessionRow, "health_visibility": VisibilityRow,
    "health_prepared": PreparedRow, "health_slots": SlotRow, "health_table": TableRow,
    "health_pgstattuple": TupleStatsRow, "health_lost_workers": LostWorkerRow, "health_stuck_jobs": StuckJobRow,
}
