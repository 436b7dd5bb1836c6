"""What ``pgqueue info``, ``pgqueue failed`` and ``pgqueue requeue`` show and do, as Python functions; and
``health()``, what ``pgqueue doctor`` checks (pgqueue/health.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from . import _notify, _store
from ._db import shared_connection, translate_errors
from .exceptions import UniqueKeyHeld
from .health import Finding, Health, Thresholds, health  # noqa: F401 - `pgqueue doctor`, for dashboards and probes


@dataclass(frozen=True)
class QueueStats:
    name: str
    queued: int
    scheduled: int
    deferred: int
    running: int
    finished: int
    failed: int
    canceled: int


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    queues: list[str]
    pid: int
    hostname: str
    concurrency: int
    running: int

    @property
    def state(self) -> str:
        return "busy" if self.running else "idle"


@dataclass(frozen=True)
class FailedJob:
    id: str
    queue: str
    func_name: str
    exc_info: str | None
    attempts: int
    ended_at: datetime | None

    @property
    def last_error(self) -> str:
        """The last line of the failure text: ``ValueError: bad input``."""
        lines = [line for line in (self.exc_info or "").strip().splitlines() if line.strip()]
        return lines[-1].strip() if lines else ""


@dataclass(frozen=True)
class Pause:
    """A pause in force: of every worker (``queue`` None: ``pgqueue suspend``) or of one queue."""
    queue: str | None
    paused_at: datetime
    until: datetime | None  # when it ends by itself; None: when resumed


@dataclass(frozen=True)
class Canceled:
    """What ``cancel`` did to one job: ``canceled`` (and whether it was ``running``: its worker stops it), or
    not, because it had ended (``status``) or there is none (``status`` None)."""
    id: str
    canceled: bool
    running: bool
    status: str | None


def cancel(job_ids: Sequence[str], dsn: str | None = None) -> list[Canceled]:
    """Cancel each job of ``job_ids`` that has not ended, as ``job.cancel()`` does; one Canceled per id."""
    done = []
    with translate_errors(dsn):
        conn = shared_connection(dsn)
        for job_id in job_ids:
            row = _store.cancel_job(conn, job_id)
            if row is not None:
                _store.notify_done(conn, row.dependents_canceled)
                done.append(Canceled(job_id, True, row.running, "canceled"))
            else:
                done.append(Canceled(job_id, False, False, _store.job_status(conn, job_id)))
    return done


def pauses(dsn: str | None = None) -> list[Pause]:
    """The pauses in force: the suspension of every worker first, then paused queues by name."""
    with translate_errors(dsn):
        rows = _store.pauses(shared_connection(dsn))
    found = [Pause(None if r.scope == _notify.ALL else r.scope[len(_notify.QUEUE_SCOPE):], r.paused_at, r.until)
             for r in rows if r.scope == _notify.ALL or r.scope.startswith(_notify.QUEUE_SCOPE)]
    return sorted(found, key=lambda p: (p.queue is not None, p.queue or ""))


def queue_stats(queues: Sequence[str] | None = None, dsn: str | None = None) -> list[QueueStats]:
    """Job counts by status for each queue that has jobs (or for ``queues``, zeros included)."""
    with translate_errors(dsn):
        stats = {r.name: QueueStats(**r._asdict()) for r in _store.queue_summary(shared_connection(dsn), queues)}
    if queues:
        return [stats.get(name) or QueueStats(name, 0, 0, 0, 0, 0, 0, 0) for name in queues]
    return list(stats.values())


def live_workers(dsn: str | None = None) -> list[WorkerInfo]:
    """Workers whose heartbeat is within their lease."""
    with translate_errors(dsn):
        return [WorkerInfo(**r._asdict()) for r in _store.live_workers(shared_connection(dsn))]


def failed_jobs(queues: Sequence[str] | None = None, dsn: str | None = None) -> list[FailedJob]:
    """Failed jobs, oldest failure first."""
    with translate_errors(dsn):
        return [FailedJob(**r._asdict()) for r in _store.failed_jobs(shared_connection(dsn), queues)]


def requeue(job_ids: Sequence[str] | None = None, queue: str | None = None,
            dsn: str | None = None) -> tuple[list[str], list[UniqueKeyHeld]]:
    """Put failed jobs back on their queues: those in ``job_ids``, or with ``job_ids=None`` every one (of
    ``queue`` if given). Returns the ids requeued, and the failed jobs that stay failed because another job
    holds their ``unique_key``; the others go back all the same."""
    for attempt in range(3):
        try:
            with translate_errors(dsn):
                rows = _store.requeue_jobs(shared_connection(dsn), job_ids, queue)
            break
        except psycopg.errors.UniqueViolation:  # a job with the key was enqueued while this ran: look again
            if attempt == 2:
                raise UniqueKeyHeld(", ".join(job_ids or ["(all failed jobs)"]), None, None) from None
    requeued = [r.id for r in rows if r.requeued]
    return requeued, [UniqueKeyHeld(r.id, r.unique_key, r.holder) for r in rows if not r.requeued]
