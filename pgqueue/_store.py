"""The one gateway to pgqueue's SQL. Every statement of ``sql/queries.sql`` (and ``sql/inspect.sql``, RQ's
inspection API) is run from a function here, which takes Python values and returns named rows (the ``*Row``
tuples below, whose fields are the statement's column names: tests/test_store.py compares them with each
statement's description).

Two ways to run a statement:
- on pgqueue's own autocommit connection, through :func:`pgqueue._db.run` (libpq directly, a prepared
  statement, parameters as text): the statements an application waits on, such as enqueue and claim;
- on a caller's connection (``connection=``, inside the caller's transaction) or with array parameters,
  through psycopg's ``execute``.

On a connection in transaction-pooling mode (``_db.pooled``) no statement may leave state in the server
session: the worker's plan settings go with the statements that need them, for their own transaction
(``worker_plan_local``), and LISTEN is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

import psycopg

from . import _db, _notify, _store_schedules
from .exceptions import ConfigurationError, SchemaMissing, SchemaOutdated
from .sql import REVISION, q

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


def _outcome(conn: Conn, name: str, params: dict[str, Any], row: type[R]) -> list[R]:
    """One of the worker's fenced outcome statements (see the comment above mark_started in queries.sql).
    Their plans need the worker's plan settings: its session has them (worker_plan_settings); in
    transaction-pooling mode they go with the statement, for its own transaction. Measured there on
    20,000 jobs: finish_jobs of 1,000 outcomes took 270-440 ms with the custom plan an unnamed statement
    gets (a nested loop comparing every outcome with every running job), 27 ms with them."""
    if _db.pooled(conn):
        return _db.run(conn, name, params, row._make, local="worker_plan_local")  # type: ignore[attr-defined]
    return _execute(conn, name, params, row)


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
    """A claimed job. Its first ten fields are a worker Task's."""
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


class PlanRow(NamedTuple):
    """What worker_plan_local set, for its transaction."""
    plan_cache_mode: str
    jit: str
    enable_sort: str
    enable_seqscan: str
    enable_hashjoin: str
    enable_mergejoin: str


def claim(conn: Conn, *, queue: str, limit: int, start_now: int, worker_id: int | None,
          worker_name: str) -> list[ClaimRow]:
    return _fast(conn, "claim", {"queue": queue, "limit": limit, "worker_id": worker_id, "worker_name": worker_name,
                                 "start_now": start_now}, ClaimRow)


def finish_jobs(conn: Conn, params: dict[str, Any]) -> FinishRow:
    """Record finished jobs (arrays as text, see the finish_jobs query), in the caller's transaction (an
    atomic job's). The worker sends the same statement without waiting: see finish_jobs_send."""
    return _execute(conn, "finish_jobs", params, FinishRow)[0]


def finish_jobs_send(conn: Conn, params: dict[str, Any]) -> None:
    """Send finish_jobs on pgqueue's own connection without waiting; finish_jobs_result reads its answer.
    In transaction-pooling mode with the worker's plan settings for its transaction (see _outcome)."""
    _db.send(conn, "finish_jobs", params, "worker_plan_local" if _db.pooled(conn) else None)


def finish_jobs_result(conn: Conn) -> FinishRow | None:
    """The answer to finish_jobs_send (raises its error), or None while the server still works on it."""
    rows = _db.receive(conn, FinishRow._make)
    return None if rows is None else rows[0]


def fail_jobs(conn: Conn, params: dict[str, Any]) -> list[FailRow]:
    return _outcome(conn, "fail_jobs", params, FailRow)


def release_claims(conn: Conn, params: dict[str, Any]) -> int:
    return _outcome(conn, "release_claims", params, WokenRow)[0].woken


def mark_started(conn: Conn, params: dict[str, Any]) -> None:
    if _db.pooled(conn):
        _db.run(conn, "mark_started", params, local="worker_plan_local")
    else:
        _do(conn, "mark_started", params)


def next_scheduled(conn: Conn, queues: Sequence[str]) -> float | None:
    """Seconds until the earliest scheduled job of ``queues`` is due (None: there is none)."""
    row = _execute(conn, "next_scheduled", {"queues": list(queues)}, SecondsRow)[0]
    return None if row.seconds is None else float(row.seconds)


class RevisionRow(NamedTuple):
    revision: str | None


def check_revision(conn: Conn) -> None:
    """Raise SchemaOutdated if the database's schema is older than these statements need (a worker checks
    at start: on an older schema its heartbeat could not be written, and it would hold no lease)."""
    try:
        revision = _execute(conn, "schema_revision", None, RevisionRow)[0].revision
    except psycopg.errors.UndefinedTable:  # `pgqueue schema --sql` creates it too: no schema at all
        raise SchemaMissing("pgqueue.alembic_version is missing") from None
    if revision is not None and revision < REVISION:
        raise SchemaOutdated(f"the schema is at revision {revision}, this pgqueue needs {REVISION}")


def register_worker(conn: Conn, *, name: str, hostname: str, pid: int, queues: Sequence[str], concurrency: int,
                    lease: float) -> int:
    return _execute(conn, "register_worker", {"name": name, "hostname": hostname, "pid": pid,
                                              "queues": list(queues), "concurrency": concurrency, "lease": lease},
                    WorkerIdRow)[0].id


class WorkerTotals(NamedTuple):
    """A worker's statistics since it registered: jobs whose end it recorded, and the seconds they ran."""
    successful: int = 0
    failed: int = 0
    seconds: float = 0.0


NO_TOTALS = WorkerTotals()


def heartbeat(conn: Conn, worker_id: int, timeout: float, totals: WorkerTotals = NO_TOTALS) -> bool:
    """Renew the worker's heartbeat and write its ``totals``, giving up after ``timeout`` seconds; whether
    its row is there."""
    return _db.run_within(conn, "heartbeat", {"worker_id": worker_id, **totals._asdict()}, timeout) == 1


def deregister_worker(conn: Conn, worker_id: int, totals: WorkerTotals = NO_TOTALS) -> None:
    _do(conn, "deregister_worker", {"worker_id": worker_id, **totals._asdict()})


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
    """Bound the statements of the transaction that ``conn`` is in (seconds). In transaction-pooling mode,
    also give them the worker's plans, which the worker's session has in the default mode."""
    _execute(conn, "maintenance_limits", {"lock_timeout": f"{round(lock_timeout * 1000)}ms",
                                          "statement_timeout": f"{round(statement_timeout * 1000)}ms"}, LimitsRow)
    if _db.pooled(conn):
        _do(conn, "worker_plan_local")


# -- inspection (RQ's job, registry, queue and worker API) -------------------------------------------
class MetaRow(NamedTuple):
    meta: str


class PositionRow(NamedTuple):
    position: int


class NameRow(NamedTuple):
    name: str


class RegistryJobRow(NamedTuple):
    """A job as the registries see it (see the registry_job query)."""
    status: str
    queue: str
    delete_at: datetime | None
    scheduled_at: datetime
    expires_at: datetime | None
    lease_until: datetime | None


class WorkerRow(NamedTuple):
    """A registered worker, with its statistics and the jobs it holds (see the worker_details query)."""
    id: int
    name: str
    queues: list[str]
    pid: int
    hostname: str
    concurrency: int
    lease_seconds: float
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    successful_jobs: int
    failed_jobs: int
    working_seconds: float
    running: int
    current_job_id: str | None


#: The registries, by the job status each one holds.
REGISTRY_STATUSES = ("running", "finished", "failed", "deferred", "scheduled", "canceled")
_REGISTRY_NAMES = {"running": "started"}


def fetch_jobs(conn: Conn, ids: Sequence[str]) -> list[JobRow]:
    """The rows of the jobs ``ids`` that exist, in no particular order."""
    return _execute(conn, "fetch_jobs", {"ids": list(ids)}, JobRow)


def job_meta(conn: Conn, id: str) -> str | None:
    row = _one(_fast(conn, "job_meta", {"id": id}, MetaRow))
    return None if row is None else row.meta


def job_position(conn: Conn, id: str, queue: str | None = None) -> int | None:
    """How many queued jobs of its queue come before the job; None if it is not queued (in ``queue``)."""
    row = _one(_fast(conn, "job_position", {"id": id, "queue": queue}, PositionRow))
    return None if row is None else row.position


def queue_names(conn: Conn) -> list[str]:
    return [r.name for r in _execute(conn, "queue_names", None, NameRow)]


def registry_ids(conn: Conn, status: str, queue: str, offset: int, limit: int | None) -> list[str]:
    """Ids of the jobs of ``queue`` with ``status`` (one of REGISTRY_STATUSES), in the registry's order."""
    name = f"registry_{_REGISTRY_NAMES.get(status, status)}_ids"
    return [r.id for r in _fast(conn, name, {"queue": queue, "offset": offset, "limit": limit}, IdRow)]


def registry_count(conn: Conn, status: str, queue: str) -> int:
    name = f"registry_{_REGISTRY_NAMES.get(status, status)}_count"
    return _fast(conn, name, {"queue": queue}, CountRow)[0].jobs


def registry_job(conn: Conn, id: str) -> RegistryJobRow | None:
    return _one(_fast(conn, "registry_job", {"id": id}, RegistryJobRow))


def registry_remove(conn: Conn, id: str, queue: str, status: str) -> bool:
    """Delete the job if it has ``status`` in ``queue``; whether it did."""
    return bool(_fast(conn, "registry_remove", {"id": id, "queue": queue, "status": status}, IdRow))


def registry_requeue(conn: Conn, id: str, queue: str, status: str, at_front: bool) -> RequeueRow | None:
    """Queue the job again if it has ``status`` in ``queue`` (see the registry_requeue query); None if not."""
    return _one(_fast(conn, "registry_requeue", {"id": id, "queue": queue, "status": status, "at_front": at_front},
                      RequeueRow))


def worker_details(conn: Conn, worker_id: int | None = None, queue: str | None = None) -> list[WorkerRow]:
    """The live workers (of ``queue``), or the worker ``worker_id`` whatever its state."""
    return _execute(conn, "worker_details", {"worker_id": worker_id, "queue": queue}, WorkerRow)


# -- sessions --------------------------------------------------------------------------------------
def listen(conn: Conn, channel: str) -> None:
    """LISTEN on ``jobs`` (new runnable work: queue names) or ``done`` (ended jobs: ids). Refused on a
    connection in transaction-pooling mode: the pooler hands the listening session to other clients and
    drops the notifications that reach it meanwhile."""
    if _db.pooled(conn):
        raise ConfigurationError("LISTEN needs a direct connection, not one through a transaction pooler "
                                 "(set PGQUEUE_LISTEN_DATABASE_URL, or poll)")
    _do(conn, {"jobs": "listen_jobs", "done": "listen_done"}[channel])


def worker_plan_settings(conn: Conn) -> None:
    """The worker's plans for the session (see Worker._connect). Nothing in transaction-pooling mode, where
    a SET would stay with a server session that other clients get next: there the statements that need
    these plans get them for their own transaction (worker_plan_local)."""
    if not _db.pooled(conn):
        _do(conn, "worker_plan_settings")


#: Each statement's row type, for the test that compares them with the statements' columns.
ROWS: dict[str, type[tuple[Any, ...]] | None] = {
    "insert_jobs": InsertedRow, "insert_simple_job": SimpleInsertedRow, "insert_job": InsertedRow,
    "copy_simple_jobs": None, "copy_jobs": None, "wake_queues": NowRow, "find_live_duplicate": JobRow,
    "fetch_job": JobRow, "job_status": StatusRow, "queue_count": CountRow, "queue_job_ids": IdRow,
    "queue_empty": None, "save_meta": IdRow, "cancel_job": CancelRow, "requeue_jobs": RequeueRow,
    "delete_job": None, "failed_jobs": FailedJobRow, "claim": ClaimRow, "mark_started": None,
    "finish_jobs": FinishRow, "fail_jobs": FailRow, "release_claims": WokenRow, "next_scheduled": SecondsRow,
    "register_worker": WorkerIdRow, "schema_revision": RevisionRow, "heartbeat": None, "deregister_worker": None,
    "rescue_lost_jobs": RescuedRow,
    "shortest_lease": SecondsRow, "notify_done": NotifiedRow, "promote_deferred": PromoteRow,
    "prune_jobs": PruneRow, "prune_workers": None, "maintenance_limits": LimitsRow, "queue_summary": QueueSummaryRow,
    "live_workers": LiveWorkerRow, "listen_jobs": None, "listen_done": None, "own_settings": None,
    "worker_plan_settings": None, "worker_plan_local": PlanRow, "fetch_jobs": JobRow, "job_meta": MetaRow,
    "job_position": PositionRow,
    "queue_names": NameRow, "registry_job": RegistryJobRow, "registry_remove": IdRow, "registry_requeue": RequeueRow,
    "worker_details": WorkerRow,
    **{f"registry_{_REGISTRY_NAMES.get(s, s)}_{op}": row for s in REGISTRY_STATUSES
       for op, row in (("ids", IdRow), ("count", CountRow))},
}
ROWS.update(_store_schedules.ROWS)  # periodic jobs: their statements' functions live there
