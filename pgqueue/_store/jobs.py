"""Enqueueing, jobs, queues and the monitoring of pgqueue info."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, NamedTuple

import psycopg

from .. import _notify
from ..sql import q
from ._run import Conn, _execute, _fast, _one, _rows


# -- enqueueing ------------------------------------------------------------------------------------
class InsertedRow(NamedTuple):
    """A job written by insert_job or insert_jobs (a row of theirs is missing where ON CONFLICT held)."""
    id: str
    status: str
    priority: int
    position: int | None
    enqueued_at: datetime
    scheduled_at: datetime
    woken: Any


class SimpleInsertedRow(NamedTuple):
    enqueued_at: datetime
    woken: Any


class WokenRow(NamedTuple):
    woken: int


class NowRow(NamedTuple):
    now: datetime
    woken: int


class IdRow(NamedTuple):
    id: str


def insert_simple_job(conn: Conn, caller: bool, *, id: str, queue: str, func_name: str, args: str,
                      timeout: float) -> SimpleInsertedRow:
    rows = _rows(conn, caller, "insert_simple_job",
                 {"id": id, "queue": queue, "func_name": func_name, "args": args, "timeout": timeout},
                 SimpleInsertedRow)
    return rows[0]


def insert_job(conn: Conn, caller: bool, params: dict[str, Any]) -> list[InsertedRow]:
    """One job with options (see the insert_job query for ``params``); no row if ON CONFLICT held."""
    return _rows(conn, caller, "insert_job", params, InsertedRow)


def insert_jobs(conn: Conn, params: dict[str, Any]) -> list[InsertedRow]:
    """A batch of jobs, as arrays (see the insert_jobs query)."""
    return _execute(conn, "insert_jobs", params, InsertedRow)


def wake_queues(conn: Conn, queues: Sequence[str]) -> NowRow:
    """Wake the workers of ``queues`` when the current transaction commits; returns its now()."""
    return _execute(conn, "wake_queues", {"queues": list(queues)}, NowRow)[0]


def copy_jobs(cur: psycopg.Cursor[Any], simple: bool) -> AbstractContextManager[psycopg.Copy]:
    """A COPY of jobs: the five-column copy_simple_jobs, or copy_jobs (pgqueue._copy writes the lines)."""
    return cur.copy(q("copy_simple_jobs" if simple else "copy_jobs"))


def find_live_duplicate(conn: Conn, caller: bool, *, id: str, unique_key: str | None) -> JobRow | None:
    """The job an insert that wrote no row conflicted with: the one with ``id``, else the live one holding
    ``unique_key``. None if it has ended (or gone) since: then nothing blocks the insert any more."""
    return _one(_rows(conn, caller, "find_live_duplicate", {"id": id, "unique_key": unique_key}, JobRow))


def replace_unique(conn: Conn, caller: bool, params: dict[str, Any]) -> JobRow | None:
    """unique_key_conflict="replace": give the job holding ``params["unique_key"]`` that has not started the new
    call (see the replace_unique query for ``params``); None if there is none such (running, or ended)."""
    return _one(_rows(conn, caller, "replace_unique", params, JobRow))


# -- jobs ------------------------------------------------------------------------------------------
class JobRow(NamedTuple):
    """Every column of a job that Job shows (JSON columns as text)."""
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


class StatusRow(NamedTuple):
    status: str


class CancelRow(NamedTuple):
    """A job cancel_job canceled: whether it was running, and then whether its worker was told to stop it; the
    dependents canceled with it."""
    id: str
    notified: Any
    running: bool
    stopping: Any
    dependents_canceled: list[str]


class ProgressRow(NamedTuple):
    """A job's progress (JSON text, None before any report), how often it snoozed, and its status."""
    status: str
    progress: str | None
    snoozes: int


class ProgressSetRow(NamedTuple):
    id: str
    notified: Any


class DeletedRow(NamedTuple):
    dependents_canceled: list[str]


class EmptiedRow(NamedTuple):
    """``deleted``: the jobs deleted, if some of their dependents may still be deferred (else empty)."""
    jobs: int
    deleted: list[str]
    dependents_canceled: list[str]


class CountRow(NamedTuple):
    jobs: int


def fetch_job(conn: Conn, id: str, caller: bool = False) -> JobRow | None:
    return _one(_rows(conn, caller, "fetch_job", {"id": id}, JobRow))


def job_status(conn: Conn, id: str) -> str | None:
    row = _one(_fast(conn, "job_status", {"id": id}, StatusRow))
    return None if row is None else row.status


def save_meta(conn: Conn, id: str, meta_json: str) -> bool:
    """Whether the job exists (and now has this meta)."""
    return bool(_fast(conn, "save_meta", {"id": id, "meta": meta_json}, IdRow))


def cancel_job(conn: Conn, id: str) -> CancelRow | None:
    """The job, if it had not ended and is now canceled, with the dependents canceled with it; None if it
    had ended, or there is none."""
    return _one(_fast(conn, "cancel_job", {"id": id, "notify": _notify.fits(id), "stop": _notify.cancel_fits(id)},
                      CancelRow))


def job_progress(conn: Conn, id: str) -> ProgressRow | None:
    return _one(_fast(conn, "job_progress", {"id": id}, ProgressRow))


def set_progress(conn: Conn, id: str, progress_json: str) -> bool:
    """Write a running job's progress (``progress_json``: done, total, message); whether it was running."""
    return bool(_fast(conn, "set_progress", {"id": id, "progress": progress_json, "notify": _notify.fits(id)},
                      ProgressSetRow))


def delete_job(conn: Conn, id: str) -> DeletedRow | None:
    """The job's deletion: None if there was none; else the dependents canceled (if it had not ended)."""
    return _one(_execute(conn, "delete_job", {"id": id}, DeletedRow))


# -- queues and monitoring -------------------------------------------------------------------------
class QueueSummaryRow(NamedTuple):
    name: str
    queued: int
    scheduled: int
    deferred: int
    running: int
    finished: int
    failed: int
    canceled: int


class LiveWorkerRow(NamedTuple):
    name: str
    queues: list[str]
    pid: int
    hostname: str
    concurrency: int
    running: int


class FailedJobRow(NamedTuple):
    id: str
    queue: str
    func_name: str
    exc_info: str | None
    attempts: int
    ended_at: datetime | None


class RequeueRow(NamedTuple):
    """One failed job asked for: whether it went back, else the live job holding its unique_key
    (``reopened``: how many batches count members requeued here as pending again)."""
    id: str
    requeued: bool
    holder: str | None
    unique_key: str | None
    woken: int
    reopened: int


def queue_count(conn: Conn, queue: str) -> int:
    return _fast(conn, "queue_count", {"queue": queue}, CountRow)[0].jobs


def queue_job_ids(conn: Conn, queue: str, offset: int, limit: int | None) -> list[str]:
    return [r.id for r in _fast(conn, "queue_job_ids", {"queue": queue, "offset": offset, "limit": limit}, IdRow)]


def queue_empty(conn: Conn, queue: str) -> EmptiedRow:
    """Delete the queue's queued jobs; how many, and the dependents canceled."""
    return _execute(conn, "queue_empty", {"queue": queue}, EmptiedRow)[0]


def queue_summary(conn: Conn, queues: Sequence[str] | None) -> list[QueueSummaryRow]:
    return _execute(conn, "queue_summary", {"queues": list(queues) if queues else None}, QueueSummaryRow)


def live_workers(conn: Conn) -> list[LiveWorkerRow]:
    return _execute(conn, "live_workers", None, LiveWorkerRow)


def failed_jobs(conn: Conn, queues: Sequence[str] | None) -> list[FailedJobRow]:
    return _execute(conn, "failed_jobs", {"queues": list(queues) if queues else None}, FailedJobRow)


def requeue_jobs(conn: Conn, ids: Sequence[str] | None, queue: str | None) -> list[RequeueRow]:
    return _execute(conn, "requeue_jobs", {"ids": list(ids) if ids is not None else None, "queue": queue},
                    RequeueRow)
