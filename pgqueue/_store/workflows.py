"""The statements of workflows (``sql/workflows.sql``): batches, and the cancelling of the dependents of
deleted jobs, in the SQL gateway (:mod:`pgqueue._store`, whose ``ROWS`` registers these row types too). The
statements that end jobs (``queries.sql``) call the schema's workflow functions themselves."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import psycopg

from ..sql import q
from ._run import Conn, _do, _execute, _one
from .jobs import IdRow

#: How many dependents one statement cancels at most (pgqueue.jobs_ended, schema.sql).
BOUND = 1000


class CreatedBatchRow(NamedTuple):
    id: str
    created_at: datetime


class ClosedBatchRow(NamedTuple):
    """close_batch: how many callbacks it enqueued (the batch had no member left that had not ended)."""
    enqueued: int


class BatchRow(NamedTuple):
    """A row of pgqueue.batches (callbacks as JSON text)."""
    id: str
    description: str | None
    total: int
    pending: int
    finished: int
    failed: int
    canceled: int
    callbacks: str | None
    callback_ids: list[str] | None
    created_at: datetime
    closed_at: datetime | None
    completed_at: datetime | None


class BatchSummaryRow(NamedTuple):
    """A batch as `pgqueue batches` lists it."""
    id: str
    description: str | None
    total: int
    pending: int
    finished: int
    failed: int
    canceled: int
    created_at: datetime
    closed_at: datetime | None
    completed_at: datetime | None


class MemberRow(NamedTuple):
    """A member of a batch: a JobRow's fields, then its position in the batch's order."""
    id: str
    queue: str
    func_name: str
    args: str
    kwargs: str
    status: str
    priority: int
    description: str | None
    meta: str
    result: str | None
    exc_info: str | None
    errors: str
    attempts: int
    max_attempts: int
    timeout_seconds: float
    result_ttl: int | None
    failure_ttl: int | None
    ttl: int | None
    depends_on: list[str]
    unique_key: str | None
    worker_name: str | None
    enqueued_at: datetime
    scheduled_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    position: int


class PositionRow(NamedTuple):
    position: int


class DependentsRow(NamedTuple):
    """The jobs a statement canceled because a job they depended on ended without finishing."""
    dependents_canceled: list[str]


def create_batch(conn: Conn, id: str, description: str | None, callbacks_json: str | None) -> CreatedBatchRow:
    return _execute(conn, "create_batch", {"id": id, "description": description, "callbacks": callbacks_json},
                    CreatedBatchRow)[0]


def add_batch_members(conn: Conn, id: str, count: int) -> bool:
    """Count ``count`` members COPYed into the open batch ``id``; whether it is open."""
    return bool(_execute(conn, "add_batch_members", {"id": id, "count": count}, IdRow))


def copy_batch_jobs(cur: psycopg.Cursor[Any], simple: bool) -> Any:
    """A COPY of members of a batch: copy_simple_batch_jobs or copy_batch_jobs (pgqueue._copy writes the
    lines, with the batch's id last)."""
    return cur.copy(q("copy_simple_batch_jobs" if simple else "copy_batch_jobs"))


def close_batch(conn: Conn, id: str) -> int:
    """Close the batch ``id``; returns how many callbacks that enqueued (if all its members had ended)."""
    return _execute(conn, "close_batch", {"id": id}, ClosedBatchRow)[0].enqueued


def fetch_batch(conn: Conn, id: str) -> BatchRow | None:
    return _one(_execute(conn, "fetch_batch", {"id": id}, BatchRow))


def batch_members(conn: Conn, id: str, *, after: int | None, status: str | None, limit: int) -> list[MemberRow]:
    """One page of the batch's members, in enqueue order, after the position ``after``."""
    return _execute(conn, "batch_members", {"id": id, "after": after, "status": status, "limit": limit}, MemberRow)


def member_position(conn: Conn, id: str, job_id: str) -> int | None:
    """The position of ``job_id`` in the batch ``id``; None if it is not a member."""
    row = _one(_execute(conn, "member_position", {"id": id, "job_id": job_id}, PositionRow))
    return None if row is None else row.position


def list_batches(conn: Conn, limit: int) -> list[BatchSummaryRow]:
    return _execute(conn, "list_batches", {"limit": limit}, BatchSummaryRow)


def cancel_dependents(conn: Conn, ids: Sequence[str]) -> list[str]:
    """Cancel (up to 1,000) dependents of the deleted jobs ``ids``; returns their ids."""
    return _execute(conn, "cancel_dependents", {"ids": list(ids)}, DependentsRow)[0].dependents_canceled


def cancel_all_dependents(conn: Conn, ids: Sequence[str], first: Sequence[str]) -> list[str]:
    """After a statement deleted the jobs ``ids`` and canceled ``first`` of their dependents: cancel the rest,
    1,000 a statement, in the caller's transaction (the one that deleted them). Returns all those canceled."""
    canceled, last = list(first), first
    while len(last) >= BOUND:
        last = cancel_dependents(conn, ids)
        canceled += last
    return canceled


def prune_batches(conn: Conn, ids: Sequence[str]) -> int:
    """Delete those of the batches ``ids`` that completed and have no job left; returns how many."""
    return _do(conn, "prune_batches", {"ids": list(ids)}) if ids else 0


def prune_dependencies(conn: Conn, limit: int) -> int:
    """Of the first ``limit`` rows of pgqueue.dependencies, delete those whose job has ended; returns how
    many."""
    return _do(conn, "prune_dependencies", {"limit": limit})


#: Each statement's row type (registered in _store.ROWS).
ROWS: dict[str, type[tuple[Any, ...]] | None] = {
    "create_batch": CreatedBatchRow, "add_batch_members": IdRow, "close_batch": ClosedBatchRow,
    "fetch_batch": BatchRow, "batch_members": MemberRow, "member_position": PositionRow,
    "list_batches": BatchSummaryRow,
    "cancel_dependents": DependentsRow, "prune_batches": None, "copy_simple_batch_jobs": None,
    "copy_batch_jobs": None, "prune_dependencies": None,
}
