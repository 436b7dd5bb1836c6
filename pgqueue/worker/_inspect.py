"""RQ's view of workers: ``Worker.all()``, ``Worker.count()`` and the attributes RQ's workers have.

A ``Worker`` made in this process reports its own state and the statistics it counts in memory (since its
last ``work()`` began). One that ``Worker.all()`` returned, or that ``refresh()`` read, reports its row of
``pgqueue.workers``: what its process last wrote there (statistics with each heartbeat, every ``lease / 3``
seconds, and when it stops).
"""

from __future__ import annotations

import os
import socket
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from .. import _store
from .._db import shared_connection, translate_errors
from .._rq import WORKER_OPTIONS, refuse
from ..connections import database
from ..job import Job

if TYPE_CHECKING:
    from ..queue import Queue
    from ._outcomes import Outcomes
    from ._slots import Slot

W = TypeVar("W", bound="WorkerInspection")


class WorkerInspection:
    """What Worker adds for RQ's inspection API (a base class of Worker)."""

    # Set by Worker.__init__ and work().
    name: str
    queues: list[str]
    dsn: str | None
    worker_id: int | None
    _outcomes: Outcomes
    _slots: list[Slot]
    _row: _store.WorkerRow | None = None  # the row last read (Worker.all, refresh); None: this process's own

    @classmethod
    def all(cls: type[W], dsn: Any = None, queue: Queue | str | None = None, *, connection: Any = None,
            **rq_options: Any) -> list[W]:
        """The live workers (heartbeat within their lease), of ``queue`` if given, by name. ``dsn`` or RQ's
        ``connection``: a URL or a :class:`pgqueue.Connection`; with neither, that of ``queue`` if it is a
        Queue (as RQ's ``Worker.all(queue=q)``)."""
        name = queue if queue is None or isinstance(queue, str) else getattr(queue, "name", None)
        if queue is not None and not isinstance(name, str):
            raise TypeError(f"queue= takes a Queue or a queue name, not {queue!r}")
        refuse("Worker.all", rq_options, WORKER_OPTIONS)
        dsn = database(dsn, connection, where="Worker.all()") or getattr(queue, "dsn", None)
        with translate_errors(dsn):
            rows = _store.worker_details(shared_connection(dsn), queue=name)
        return [cls._from_row(row, dsn) for row in rows]

    @classmethod
    def count(cls, dsn: Any = None, queue: Queue | str | None = None, *, connection: Any = None) -> int:
        """How many workers :meth:`all` returns."""
        return len(cls.all(dsn, queue, connection=connection))

    @classmethod
    def _from_row(cls: type[W], row: _store.WorkerRow, dsn: str | None) -> W:
        make: Any = cls
        worker: W = make(row.queues, dsn, name=row.name, concurrency=row.concurrency, lease=row.lease_seconds)
        worker.worker_id = row.id
        worker._row = row
        return worker

    def refresh(self) -> None:
        """Read this worker's row again (the last one its ``work()`` registered); nothing before it ran."""
        if self.worker_id is None:
            return
        with translate_errors(self.dsn):
            rows = _store.worker_details(shared_connection(self.dsn), worker_id=self.worker_id)
        if rows:
            self._row = rows[0]

    def queue_names(self) -> list[str]:
        """The names of the queues it serves, in priority order (RQ's ``queues`` are Queue objects;
        pgqueue's ``worker.queues`` are these names already)."""
        return list(self.queues)

    @property
    def hostname(self) -> str:
        return self._row.hostname if self._row else socket.gethostname()

    @property
    def pid(self) -> int:
        return self._row.pid if self._row else os.getpid()

    @property
    def birth_date(self) -> datetime | None:
        """When it registered (its ``work()`` began)."""
        return self._row.started_at if self._row else None

    @property
    def last_heartbeat(self) -> datetime | None:
        return self._row.heartbeat_at if self._row else None

    @property
    def successful_job_count(self) -> int:
        """Jobs it finished (their end recorded), since it registered."""
        return self._row.successful_jobs if self._row else self._outcomes.totals.successful

    @property
    def failed_job_count(self) -> int:
        """Failed attempts it recorded (those retried later included), since it registered."""
        return self._row.failed_jobs if self._row else self._outcomes.totals.failed

    @property
    def total_working_time(self) -> float:
        """Seconds its jobs ran, those counted above, in all (with concurrency, the runs' sum)."""
        return self._row.working_seconds if self._row else self._outcomes.totals.seconds

    def get_state(self) -> str:
        """``busy`` while it holds a job, else ``idle`` (RQ's names)."""
        busy = self._row.running > 0 if self._row else any(slot.busy for slot in self._slots)
        return "busy" if busy else "idle"

    @property
    def state(self) -> str:
        return self.get_state()

    def get_current_job_id(self) -> str | None:
        """The job it runs (with concurrency, the one it started first); ``None`` when idle."""
        if self._row:
            return self._row.current_job_id
        return next((slot.tasks[0].id for slot in self._slots if slot.tasks), None)

    def get_current_job(self) -> Job | None:
        job_id = self.get_current_job_id()
        return None if job_id is None else Job.fetch_many([job_id], self.dsn)[0]
