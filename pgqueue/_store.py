"""The one gateway to pgqueue's SQL. Every statement of ``sql/queries.sql`` is run from a function here,
which takes Python values and returns named rows (the ``*Row`` tuples below, whose fields are the
statement's column names: tests/test_store.py compares them with each statement's description).

Two ways to run a statement:
- on pgqueue's own autocommit connection, through :func:`pgqueue._db.run` (libpq directly, a prepared
  statement, parameters as text): the statements an application waits on, such as enqueue and claim;
- on a caller's connection (``connection=``, inside the caller's transaction) or with array parameters,
  through psycopg's ``execute``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

import psycopg

from . import _db, _notify
from .sql import q, text_array

Conn = psycopg.Connection[Any]
R = TypeVar("R", bound=tuple[Any, ...])


def _execute(conn: Conn, name: str, params: dict[str, Any] | None, row: type[R]) -> list[R]:
    """Query ``name`` through psycopg (a caller's transaction, or array parameters)."""
    return [row._make(r) for r in conn.execute(q(name), params).fetchall()]  # type: ignore[attr-defined]


def _do(conn: Conn, name: str, params: dict[str, Any] | None = None) -> int:
    """Statement ``name``, which returns no rows, through psycopg; returns the rows it changed."""
    return conn.execute(q(name), params).rowcount


def _fast(conn: Conn, name: str, params: dict[str, Any], row: type[R]) -> list[R]:
    """Query ``name`` on pgqueue's own autocommit connection, through libpq directly (scalar parameters)."""
    return _db.run(conn, name, params, row._make)  # type: ignore[attr-defined]


def _rows(conn: Conn, caller: bool, name: str, params: dict[str, Any], row: type[R]) -> list[R]:
    return _execute(conn, name, params, row) if caller else _fast(conn, name, params, row)


def _one(rows: list[R]) -> R | None:
    return rows[0] if rows else None


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
    id: str
    notified: Any


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


def cancel_job(conn: Conn, id: str) -> bool:
    """Whether the job had not ended and is now canceled."""
    return bool(_fast(conn, "cancel_job", {"id": id, "notify": _notify.fits(id)}, CancelRow))


def delete_job(conn: Conn, id: str) -> None:
    _do(conn, "delete_job", {"id": id})


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
    """One failed job asked for: whether it went back, else the live job holding its unique_key."""
    id: str
    requeued: bool
    holder: str | None
    unique_key: str | None
    woken: int


def queue_count(conn: Conn, queue: str) -> int:
    return _fast(conn, "queue_count", {"queue": queue}, CountRow)[0].jobs


def queue_job_ids(conn: Conn, queue: str, offset: int, limit: int | None) -> list[str]:
    return [r.id for r in _fast(conn, "queue_job_ids", {"queue": queue, "offset": offset, "limit": limit}, IdRow)]


def queue_empty(conn: Conn, queue: str) -> int:
    """Delete the queue's queued jobs; returns how many."""
    return _do(conn, "queue_empty", {"queue": queue})


def queue_summary(conn: Conn, queues: Sequence[str] | None) -> list[QueueSummaryRow]:
    return _execute(conn, "queue_summary", {"queues": list(queues) if queues else None}, QueueSummaryRow)


def live_workers(conn: Conn) -> list[LiveWorkerRow]:
    return _execute(conn, "live_workers", None, LiveWorkerRow)


def failed_jobs(conn: Conn, queues: Sequence[str] | None) -> list[FailedJobRow]:
    return _execute(conn, "failed_jobs", {"queues": list(queues) if queues else None}, FailedJobRow)


def requeue_jobs(conn: Conn, ids: Sequence[str] | None, queue: str | None) -> list[RequeueRow]:
    return _execute(conn, "requeue_jobs", {"ids": list(ids) if ids is not None else None, "queue": queue},
                    RequeueRow)


# -- the worker ------------------------------------------------------------------------------------
class ClaimRow(NamedTuple):
    """A claimed job. Its first ten fields are a worker Task's, and so are callbacks and retry_on."""
    id: str
    queue: str
    func_name: str
    args_json: str
    kwargs_json: str
    timeout: float
    attempt: int
    meta_json: str
    claim: int
    marked: bool
    priority: int
    position: int
    callbacks: str | None
    retry_on: list[str] | None


class FinishRow(NamedTuple):
    finished: int
    notified: int
    woken: int


class FailRow(NamedTuple):
    """An attempt recorded as failed: the job is ``failed``, or ``scheduled`` for a retry in ``retry_in`` s."""
    id: str
    status: str
    attempts: int
    max_attempts: int
    retry_in: float | None
    notified: int
    woken: int


class SecondsRow(NamedTuple):
    seconds: float | None


class WorkerIdRow(NamedTuple):
    id: int


class RescuedRow(NamedTuple):
    """A job of a lost worker, now ``queued`` again or ``failed``."""
    id: str
    status: str
    woken: int


class PromoteRow(NamedTuple):
    promoted: int
    woken: int


class PruneRow(NamedTuple):
    expired: list[str]
    deleted: int


class NotifiedRow(NamedTuple):
    notified: int


class LimitsRow(NamedTuple):
    lock_timeout: str
    statement_timeout: str


def claim(conn: Conn, *, queue: str, limit: int, start_now: int, worker_id: int | None,
          worker_name: str) -> list[ClaimRow]:
    return _fast(conn, "claim", {"queue": queue, "limit": limit, "worker_id": worker_id, "worker_name": worker_name,
                                 "start_now": start_now}, ClaimRow)


def finish_jobs(conn: Conn, params: dict[str, Any]) -> FinishRow:
    """Record finished jobs (arrays as text, see the finish_jobs query), in the caller's transaction (an
    atomic job's). The worker sends the same statement without waiting: see finish_jobs_send."""
    return _execute(conn, "finish_jobs", params, FinishRow)[0]


def finish_jobs_send(conn: Conn, params: dict[str, Any]) -> None:
    """Send finish_jobs on pgqueue's own connection without waiting; finish_jobs_result reads its answer."""
    _db.send(conn, "finish_jobs", params)


def finish_jobs_result(conn: Conn) -> FinishRow | None:
    """The answer to finish_jobs_send (raises its error), or None while the server still works on it."""
    rows = _db.receive(conn, FinishRow._make)
    return None if rows is None else rows[0]


def fail_jobs(conn: Conn, params: dict[str, Any]) -> list[FailRow]:
    return _execute(conn, "fail_jobs", params, FailRow)


def record_callback_failures(conn: Conn, ids: Sequence[str], errors: Sequence[str]) -> None:
    """Add an entry (JSON text) to each job's errors: its callback failed."""
    _do(conn, "record_callback_failures", {"ids": text_array(ids), "errors": text_array(errors)})


def claim_by_id(conn: Conn, *, ids: Sequence[str], worker_id: int, worker_name: str) -> list[ClaimRow]:
    """Queue(is_async=False): take and start the jobs ``ids`` that are queued (in the caller's transaction)."""
    return _execute(conn, "claim_by_id", {"ids": list(ids), "worker_id": worker_id, "worker_name": worker_name},
                    ClaimRow)


def release_claims(conn: Conn, params: dict[str, Any]) -> int:
    return _execute(conn, "release_claims", params, WokenRow)[0].woken


def mark_started(conn: Conn, params: dict[str, Any]) -> None:
    _do(conn, "mark_started", params)


def next_scheduled(conn: Conn, queues: Sequence[str]) -> float | None:
    """Seconds until the earliest scheduled job of ``queues`` is due (None: there is none)."""
    row = _execute(conn, "next_scheduled", {"queues": list(queues)}, SecondsRow)[0]
    return None if row.seconds is None else float(row.seconds)


def register_worker(conn: Conn, *, name: str, hostname: str, pid: int, queues: Sequence[str], concurrency: int,
                    lease: float) -> int:
    return _execute(conn, "register_worker", {"name": name, "hostname": hostname, "pid": pid,
                                              "queues": list(queues), "concurrency": concurrency, "lease": lease},
                    WorkerIdRow)[0].id


def heartbeat(conn: Conn, worker_id: int, timeout: float) -> bool:
    """Renew the worker's heartbeat, giving up after ``timeout`` seconds; whether its row is there."""
    return _db.run_within(conn, "heartbeat", {"worker_id": worker_id}, timeout) == 1


def deregister_worker(conn: Conn, worker_id: int) -> None:
    _do(conn, "deregister_worker", {"worker_id": worker_id})


def rescue_lost_jobs(conn: Conn, limit: int) -> list[RescuedRow]:
    return _execute(conn, "rescue_lost_jobs", {"limit": limit}, RescuedRow)


def shortest_lease(conn: Conn) -> float | None:
    """The shortest lease of the workers that run (or were just lost)."""
    row = _execute(conn, "shortest_lease", None, SecondsRow)[0]
    return None if row.seconds is None else float(row.seconds)


def notify_done(conn: Conn, ids: Sequence[str]) -> int:
    """Wake ``job.wait()`` for the jobs ``ids``, which ended (at commit, inside a transaction)."""
    payloads = _notify.payloads(ids)
    return _execute(conn, "notify_done", {"payloads": payloads}, NotifiedRow)[0].notified if payloads else 0


def promote_deferred(conn: Conn, limit: int) -> PromoteRow:
    return _execute(conn, "promote_deferred", {"limit": limit}, PromoteRow)[0]


def prune_jobs(conn: Conn, limit: int) -> PruneRow:
    return _execute(conn, "prune_jobs", {"limit": limit}, PruneRow)[0]


def prune_workers(conn: Conn, limit: int) -> int:
    return _do(conn, "prune_workers", {"limit": limit})


def maintenance_limits(conn: Conn, lock_timeout: float, statement_timeout: float) -> None:
    """Bound the statements of the transaction that ``conn`` is in (seconds)."""
    _execute(conn, "maintenance_limits", {"lock_timeout": f"{round(lock_timeout * 1000)}ms",
                                          "statement_timeout": f"{round(statement_timeout * 1000)}ms"}, LimitsRow)


# -- sessions --------------------------------------------------------------------------------------
def listen(conn: Conn, channel: str) -> None:
    """LISTEN on ``jobs`` (new runnable work: queue names) or ``done`` (ended jobs: ids)."""
    _do(conn, {"jobs": "listen_jobs", "done": "listen_done"}[channel])


def worker_plan_settings(conn: Conn) -> None:
    _do(conn, "worker_plan_settings")


#: Each statement's row type, for the test that compares them with the statements' columns.
ROWS: dict[str, type[tuple[Any, ...]] | None] = {
    "insert_jobs": InsertedRow, "insert_simple_job": SimpleInsertedRow, "insert_job": InsertedRow,
    "copy_simple_jobs": None, "copy_jobs": None, "wake_queues": NowRow, "find_live_duplicate": JobRow,
    "fetch_job": JobRow, "job_status": StatusRow, "queue_count": CountRow, "queue_job_ids": IdRow,
    "queue_empty": None, "save_meta": IdRow, "cancel_job": CancelRow, "requeue_jobs": RequeueRow,
    "delete_job": None, "failed_jobs": FailedJobRow, "claim": ClaimRow, "mark_started": None,
    "finish_jobs": FinishRow, "fail_jobs": FailRow, "release_claims": WokenRow, "next_scheduled": SecondsRow,
    "register_worker": WorkerIdRow, "heartbeat": None, "deregister_worker": None, "rescue_lost_jobs": RescuedRow,
    "shortest_lease": SecondsRow, "notify_done": NotifiedRow, "promote_deferred": PromoteRow,
    "prune_jobs": PruneRow, "prune_workers": None, "maintenance_limits": LimitsRow, "queue_summary": QueueSummaryRow,
    "live_workers": LiveWorkerRow, "listen_jobs": None, "listen_done": None, "own_settings": None,
    "worker_plan_settings": None, "record_callback_failures": None, "claim_by_id": ClaimRow,
}
