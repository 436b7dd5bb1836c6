"""RQ's inspection API (jobs, registries, queues, workers) and pauses (suspend / resume)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from ._run import Conn, _execute, _fast, _one, _rows
from .jobs import CountRow, IdRow, JobRow, RequeueRow


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


class RemovedRow(NamedTuple):
    id: str
    dependents_canceled: list[str]


def registry_remove(conn: Conn, id: str, queue: str, status: str) -> RemovedRow | None:
    """Delete the job if it has ``status`` in ``queue``: None if it did not, else the dependents canceled."""
    return _one(_execute(conn, "registry_remove", {"id": id, "queue": queue, "status": status}, RemovedRow))


def registry_requeue(conn: Conn, id: str, queue: str, status: str, at_front: bool) -> RequeueRow | None:
    """Queue the job again if it has ``status`` in ``queue`` (see the registry_requeue query); None if not."""
    return _one(_fast(conn, "registry_requeue", {"id": id, "queue": queue, "status": status, "at_front": at_front},
                      RequeueRow))


def worker_details(conn: Conn, worker_id: int | None = None, queue: str | None = None) -> list[WorkerRow]:
    """The live workers (of ``queue``), or the worker ``worker_id`` whatever its state."""
    return _execute(conn, "worker_details", {"worker_id": worker_id, "queue": queue}, WorkerRow)


# -- pauses ----------------------------------------------------------------------------------------
class PauseRow(NamedTuple):
    """A pause in force: ``scope`` 'all' or 'queue:NAME'; ``until`` None for one without an end."""
    scope: str
    paused_at: datetime
    until: datetime | None
    seconds_left: float | None


class PausedRow(NamedTuple):
    scope: str
    paused_at: datetime
    until: datetime | None
    notified: Any


class ResumedRow(NamedTuple):
    scope: str
    notified: Any


def pause(conn: Conn, scope: str, seconds: float | None) -> PausedRow:
    """Pause ``scope`` (see _notify.pause_scope) for ``seconds`` (None: until resumed); workers are told."""
    return _execute(conn, "pause", {"scope": scope, "seconds": seconds}, PausedRow)[0]


def resume(conn: Conn, scopes: Sequence[str]) -> list[str]:
    """End the pauses of ``scopes``; returns those that were in force (workers are told of them)."""
    return [r.scope for r in _execute(conn, "resume", {"scopes": list(scopes)}, ResumedRow)]


def pauses(conn: Conn, caller: bool = True) -> list[PauseRow]:
    """The pauses in force. ``caller=False``: on pgqueue's own autocommit connection, prepared (the worker)."""
    return _rows(conn, caller, "pauses", {}, PauseRow)
