"""The worker's maintenance: small services, each with one duty (as River's maintenance services are).

- :class:`Rescuer`: jobs of lost workers go back to their queue (or fail, without attempts left).
- :class:`Pruner`: jobs that did not start within their ``ttl`` are canceled; ended jobs past their
  ``result_ttl`` / ``failure_ttl`` are deleted, and so are the batches and the rows of pgqueue.dependencies
  that only they kept.
- :class:`Promoter`: deferred jobs whose dependencies all ended become runnable, or are canceled if one
  failed or was canceled (the dependency failure policy, docs/workflows.md). A safety net: the statement
  that records a job's end settles its dependents already, up to a bound.
- :class:`WorkerPruner`: rows of workers that stopped long ago are deleted.

Every worker runs them; every statement is safe to run from many workers at once (``SKIP LOCKED``). Each
run does one bounded batch in a transaction of its own, with a lock timeout and a statement timeout, so
the worker's loop goes on claiming between batches, and any number of rows is handled a batch at a time.
A service whose batch was full runs again at once; otherwise after the maintenance interval: half the
shortest lease among the running workers (at least 0.5 s), so that any worker's jobs are rescued within
half its own lease of it running out.

An error in a service is logged with its cause and the service retried with back-off; it never stops
the worker. Only a broken connection goes up to the worker's loop, which reconnects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from .. import _store
from .._store import workflows as _store_workflows
from ..exceptions import DatabaseUnavailable

log = logging.getLogger("pgqueue.worker")

BATCH = 1000  # rows per statement
LOCK_TIMEOUT = 1.0  # seconds a maintenance statement may wait for a lock
STATEMENT_TIMEOUT = 10.0  # seconds a maintenance statement may run
FIRST_RETRY = 1.0  # seconds before a service that failed runs again, doubling with each failure in a row
MAX_BACKOFF = 30.0  # seconds between retries of a service that keeps failing

Conn = psycopg.Connection[Any]


class Service:
    """One duty. :meth:`run` does one batch in the caller's transaction and returns whether there is more
    to do at once, and how many jobs it made runnable."""

    name = "maintenance"

    def __init__(self) -> None:
        self.due = 0.0  # monotonic time of the next run; 0: at the first chance
        self.failures = 0

    def run(self, conn: Conn) -> tuple[bool, int]:
        raise NotImplementedError

    def committed(self, interval: float) -> float:
        """Called once the run's transaction committed; returns the seconds until the next run, if the run
        left nothing to do at once: the maintenance ``interval``, unless the service has its own cadence."""
        return interval


class Rescuer(Service):
    name = "rescue"

    def __init__(self, worker_name: str) -> None:
        super().__init__()
        self.worker_name = worker_name
        self.shortest_lease: float | None = None  # of the running workers, as the last run saw it
        # Told of the jobs each run rescued, once its transaction committed (the worker's hooks).
        self.observer: Callable[[Sequence[_store.RescuedRow]], None] | None = None
        self._rescued: Sequence[_store.RescuedRow] = ()

    def run(self, conn: Conn) -> tuple[bool, int]:
        rows = self._rescued = _store.rescue_lost_jobs(conn, BATCH)
        if rows:
            _store.notify_done(conn, [r.id for r in rows if r.status == "failed"] + (rows[0].dependents_canceled or []))
            failed = sum(r.status == "failed" for r in rows)
            log.warning("Worker %s: rescued %d job(s) of lost workers (%d back on their queue, %d failed)",
                        self.worker_name, len(rows), len(rows) - failed, failed)
        self.shortest_lease = _store.shortest_lease(conn)
        return len(rows) >= BATCH, rows[0].woken if rows else 0

    def committed(self, interval: float) -> float:
        rescued, self._rescued = self._rescued, ()
        if rescued and self.observer is not None:
            self.observer(rescued)
        return interval


class Pruner(Service):
    name = "prune"

    def run(self, conn: Conn) -> tuple[bool, int]:
        row = _store.prune_jobs(conn, BATCH)
        _store.notify_done(conn, row.expired)  # and the dependents canceled with them
        _store_workflows.prune_batches(conn, row.batches)
        _store_workflows.prune_dependencies(conn, BATCH)  # looks at BATCH rows: once a tick is enough
        return len(row.expired) >= BATCH or row.deleted >= BATCH, 0


class Promoter(Service):
    name = "promote"

    def run(self, conn: Conn) -> tuple[bool, int]:
        row = _store.promote_deferred(conn, BATCH)
        _store.notify_done(conn, row.canceled)
        return row.promoted + len(row.canceled) >= BATCH, row.woken + len(row.canceled)


class WorkerPruner(Service):
    name = "prune workers"

    def run(self, conn: Conn) -> tuple[bool, int]:
        return _store.prune_workers(conn, BATCH) >= BATCH, 0


class Maintenance:
    """The services of one worker, run one batch at a time from its loop."""

    def __init__(self, worker_name: str, lease: float) -> None:
        self.worker_name = worker_name
        self.lease = lease
        self.rescuer = Rescuer(worker_name)
        self.services: list[Service] = [self.rescuer, Pruner(), Promoter(), WorkerPruner()]

    @property
    def interval(self) -> float:
        """Seconds between runs of a service with nothing left to do."""
        return max(0.5, min(self.lease, self.rescuer.shortest_lease or self.lease) / 2)

    def next_due(self) -> float:
        return min(s.due for s in self.services)

    def settled(self, now: float) -> bool:
        """Whether no service is due: each has run since the worker started, and none has more to do at once
        (a burst worker stops only then: a rescue or a promotion may make jobs runnable)."""
        return self.next_due() > now

    def tick(self, conn: Conn, now: float) -> int:
        """Run the first due service's batch (one at most, so claims go on between batches). Returns how
        many jobs it made runnable."""
        service = min(self.services, key=lambda s: s.due)
        if service.due > now:
            return 0
        try:
            with conn.transaction():
                _store.maintenance_limits(conn, LOCK_TIMEOUT, STATEMENT_TIMEOUT)
                more, woken = service.run(conn)
        except DatabaseUnavailable:
            raise
        except Exception as exc:  # a service's error must not stop the worker: logged, retried
            if conn.broken or conn.closed:
                raise DatabaseUnavailable(f"maintenance ({service.name}): {_first_line(exc)}") from exc
            self._failed(service, exc, now)
            return 0
        service.failures = 0
        pause = service.committed(self.interval)
        service.due = now if more else now + pause
        return woken

    def _failed(self, service: Service, exc: BaseException, now: float) -> None:
        service.failures += 1
        delay = min(MAX_BACKOFF, FIRST_RETRY * 2 ** (service.failures - 1))
        service.due = now + delay
        log.error("Worker %s: maintenance (%s) failed: %s: %s; retrying in %.1f s (attempt %d)", self.worker_name,
                  service.name, type(exc).__name__, _first_line(exc), delay, service.failures)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
