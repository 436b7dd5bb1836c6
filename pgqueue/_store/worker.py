"""The worker's statements: claims, outcomes, registration and heartbeat, maintenance, sessions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import psycopg

from .. import _db, _notify
from ..exceptions import ConfigurationError, SchemaMissing, SchemaOutdated
from ..sql import REVISION, number_array, text_array
from ._run import Conn, _do, _execute, _fast, _outcome
from .jobs import WokenRow


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
    traceparent: str | None  # the W3C traceparent of the span that enqueued the job (pgqueue.tracing)


class FinishRow(NamedTuple):
    finished: int
    notified: int
    woken: int


class FailRow(NamedTuple):
    """An attempt recorded as failed: the job is ``failed``, or ``scheduled`` for a retry in ``retry_in`` s.
    ``dependents_canceled``: the jobs canceled because one of the batch's jobs failed for good (the same in
    every row; None if none of those jobs had dependents or a batch)."""
    id: str
    status: str
    attempts: int
    max_attempts: int
    retry_in: float | None
    notified: int
    woken: int
    dependents_canceled: list[str] | None


class CanceledRow(NamedTuple):
    """A job a worker holds that was canceled since it took it (claim: the claim the worker holds)."""
    id: str
    claim: int


class SnoozeRow(NamedTuple):
    """A job snooze_jobs scheduled again, and how often it snoozed so far."""
    id: str
    snoozes: int
    woken: int


class SecondsRow(NamedTuple):
    seconds: float | None


class WorkerIdRow(NamedTuple):
    id: int


class RescuedRow(NamedTuple):
    """A job of a lost worker, now ``queued`` again or ``failed`` (``dependents_canceled``: the jobs canceled
    because those that failed here ended; the same in every row)."""
    id: str
    queue: str
    status: str
    woken: int
    dependents_canceled: list[str] | None


class PromoteRow(NamedTuple):
    """``canceled``: the deferred jobs canceled, as a dependency of theirs had failed or was canceled."""
    promoted: int
    woken: int
    canceled: list[str]


class PruneRow(NamedTuple):
    """``expired``: the jobs canceled, expired or as dependents of those; ``batches``: of the members deleted."""
    expired: list[str]
    deleted: int
    batches: list[str]


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


def snooze_jobs(conn: Conn, params: dict[str, Any]) -> list[SnoozeRow]:
    """Schedule again the jobs that raised Snooze (arrays as text: ids, claims, seconds; and worker_id)."""
    return _outcome(conn, "snooze_jobs", params, SnoozeRow)


def record_callback_failures(conn: Conn, ids: Sequence[str], errors: Sequence[str]) -> None:
    """Add an entry (JSON text) to each job's errors: its callback failed."""
    _do(conn, "record_callback_failures", {"ids": text_array(ids), "errors": text_array(errors)})


def claim_by_id(conn: Conn, *, ids: Sequence[str], worker_id: int, worker_name: str) -> list[ClaimRow]:
    """Queue(is_async=False): take and start the jobs ``ids`` that are queued (in the caller's transaction)."""
    return _execute(conn, "claim_by_id", {"ids": list(ids), "worker_id": worker_id, "worker_name": worker_name},
                    ClaimRow)


def canceled_jobs(conn: Conn, held: Sequence[tuple[str, int]], worker_id: int | None) -> list[tuple[str, int]]:
    """Which of the jobs ``held`` ((id, claim) pairs) that ``worker_id`` holds were canceled since."""
    rows = _outcome(conn, "canceled_jobs", {"ids": text_array([i for i, _ in held]),
                                            "claims": number_array([c for _, c in held]), "worker_id": worker_id},
                    CanceledRow)
    return [(r.id, r.claim) for r in rows]


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


# -- sessions --------------------------------------------------------------------------------------
def listen(conn: Conn, channel: str) -> None:
    """LISTEN on ``jobs`` (new runnable work: queue names), ``done`` (ended jobs: ids), ``control``
    (pauses that began or ended: their scopes; running jobs canceled) or ``progress`` (ids of jobs whose
    progress changed). Refused on a connection in transaction-pooling mode: the pooler hands the listening
    session to other clients and drops the notifications that reach it meanwhile."""
    if _db.pooled(conn):
        raise ConfigurationError("LISTEN needs a direct connection, not one through a transaction pooler "
                                 "(set PGQUEUE_LISTEN_DATABASE_URL, or poll)")
    _do(conn, {"jobs": "listen_jobs", "done": "listen_done", "control": "listen_control",
               "progress": "listen_progress"}[channel])


def worker_plan_settings(conn: Conn) -> None:
    """The worker's plans for the session (see Worker._connect). Nothing in transaction-pooling mode, where
    a SET would stay with a server session that other clients get next: there the statements that need
    these plans get them for their own transaction (worker_plan_local)."""
    if not _db.pooled(conn):
        _do(conn, "worker_plan_settings")
