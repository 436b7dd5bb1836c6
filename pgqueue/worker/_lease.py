"""The worker's lease: its heartbeat, and the fence that keeps one job from running twice at once.

A worker's jobs are its own while its heartbeat (``pgqueue.workers.heartbeat_at``) is younger than its
lease; past that, any other worker may rescue them and run them again. Two threads keep that promise:

- the **heartbeat** thread renews ``heartbeat_at`` every ``lease / 3`` seconds on a connection of its own,
  so a busy or stalled loop, or a job that runs for hours, never makes the worker look lost;
- the **fence** thread never touches the database. If no renewal has succeeded for ``lease - margin``
  seconds (counted from when the last successful one was *sent*, on this machine's monotonic clock), it
  stops the worker's running jobs (``on_lost``) and says so in the log, before any other worker may rescue
  them. A worker cut off from the database therefore kills its jobs first, and another worker runs them
  again after: never both at once. docs/guarantees.md states the exact condition.

The supervisor claims nothing while the lease is lost; a renewal ends that.

Each renewal also writes the worker's statistics (``totals``: its counts since it registered, kept in
memory by pgqueue.worker._outcomes). They are totals, and the statement never lowers a column, so a
renewal whose answer was lost, sent again, cannot count a job twice. A worker killed outright loses what it
counted since its last renewal (at most ``lease / 3`` seconds of it); a worker that stops writes the
last totals when it deregisters.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from .. import _store
from .._db import connect
from ..exceptions import PgQueueError

log = logging.getLogger("pgqueue.worker")

RETRY = 0.25  # seconds between attempts to renew a heartbeat that failed


def default_margin(lease: float) -> float:
    """The fence's safety margin: a fifth of the lease (6 s of the default 30 s)."""
    return lease / 5


class Lease:
    """Renews ``worker_id``'s heartbeat and calls ``on_lost`` (from the fence thread) when it could not
    for ``lease - margin`` seconds. ``renewed`` is the monotonic time the last successful renewal (or the
    registration) was sent."""

    def __init__(self, dsn: str | None, worker_name: str, worker_id: int, lease: float, margin: float,
                 renewed: float, on_lost: Callable[[float], None],
                 totals: Callable[[], _store.WorkerTotals] = lambda: _store.NO_TOTALS) -> None:
        self.dsn = dsn
        self.worker_name = worker_name
        self.worker_id = worker_id
        self.lease = lease
        self.margin = margin
        self.renewed = renewed
        self.on_lost = on_lost
        self.totals = totals
        self.lost = False
        self._changed = threading.Condition()
        self._stopping = False
        self._conn: psycopg.Connection[Any] | None = None
        self._threads = [threading.Thread(target=self._beat, name=f"pgqueue-heartbeat-{worker_id}", daemon=True),
                         threading.Thread(target=self._fence, name=f"pgqueue-fence-{worker_id}", daemon=True)]

    @property
    def held(self) -> bool:
        """Whether the worker may start jobs: its lease is renewed and has not run out."""
        return not self.lost

    def start(self) -> Lease:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        for thread in self._threads:
            thread.join(5)
        self._close()

    # -- the heartbeat thread ----------------------------------------------------------------------
    def _beat(self) -> None:
        failing = False
        try:
            self._open()  # now, not at the first renewal: ready, and visible in pg_stat_activity
        except Exception:  # the first renewal tries again, and says why
            pass
        while True:
            with self._changed:
                due = self.renewed + self.lease / 3 if not failing else time.monotonic() + RETRY
                while not self._stopping and time.monotonic() < due:
                    self._changed.wait(due - time.monotonic())
                if self._stopping:
                    return
            sent = time.monotonic()
            try:
                self._renew()
            except Exception as exc:  # logged and retried: this thread must not end
                self._close()
                if not failing:
                    log.warning("Worker %s: could not renew its heartbeat (%s); retrying every %g s",
                                self.worker_name, _first_line(exc), RETRY)
                failing = True
                continue
            if failing or self.lost:
                log.warning("Worker %s: heartbeat renewed", self.worker_name)
            failing = False
            with self._changed:
                self.renewed = sent
                self.lost = False
                self._changed.notify_all()

    def _open(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = connect(self.dsn, role=f"{self.worker_name}:heartbeat")
        return self._conn

    def _renew(self) -> None:
        # Bounded: on a network that stopped answering, the next attempt gets a new connection.
        if not _store.heartbeat(self._open(), self.worker_id, timeout=max(1.0, self.lease / 3), totals=self.totals()):
            raise PgQueueError(f"the row of worker {self.worker_id} is gone from pgqueue.workers")

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # a broken connection: nothing to close cleanly
                pass

    # -- the fence thread ----------------------------------------------------------------------------
    def _fence(self) -> None:
        while True:
            with self._changed:
                while not self._stopping and (self.lost or time.monotonic() < self._deadline()):
                    self._changed.wait(None if self.lost else self._deadline() - time.monotonic())
                if self._stopping:
                    return
                self.lost = True
                silent = time.monotonic() - self.renewed
            log.error("Worker %s: heartbeat not renewed for %.1f s (lease %g s, margin %g s): stopping its running "
                      "jobs before another worker may rescue them", self.worker_name, silent, self.lease, self.margin)
            self.on_lost(silent)

    def _deadline(self) -> float:
        return self.renewed + self.lease - self.margin


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
