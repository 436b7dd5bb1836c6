"""RQ's job registries, as queries over ``pgqueue.jobs``.

In RQ each registry is a Redis sorted set that workers keep in step with the jobs. Here a registry is a
job status and a queue: ``FailedJobRegistry("emails")`` holds the jobs of queue ``emails`` whose status is
``failed``, no more and no less, so there is nothing to keep in sync and nothing to clean up. Each query
reaches its rows through the partial index of that status (schema.sql; the statements and what they cost
are in sql/inspect.sql and docs/jobs-and-registries.md).

What follows from that: ``remove(job)`` without ``delete_job=True`` is refused (a failed job is in the
failed job registry because it failed; it leaves by being requeued or deleted), and ``cleanup()`` has
nothing to do (workers delete ended jobs past their ttl, and rescue the jobs of lost workers).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

import psycopg

from . import _store
from ._db import own_connection, shared_connection, translate_errors
from ._notify import check_queue_name
from ._rq import QUEUE_OPTIONS, refuse
from ._store.workflows import cancel_all_dependents
from .connections import database
from .exceptions import InvalidJobOperation, NoSuchJobError, UniqueKeyHeld
from .job import Job, JobStatus

if TYPE_CHECKING:
    from .queue import Queue


def _id_of(job_or_id: Job | str) -> str:
    if isinstance(job_or_id, Job):
        return job_or_id.id
    if isinstance(job_or_id, str):
        return job_or_id
    raise TypeError(f"expected a Job or a job id (str), not {type(job_or_id).__name__}")


def _index(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int (a rank, negative from the end as in RQ), not {value!r}")
    return value


class BaseRegistry:
    """The jobs of one queue with one status. ``FailedJobRegistry("name", dsn=...)`` or
    ``FailedJobRegistry(queue=q)``, as in RQ. ``dsn`` or RQ's ``connection``: a URL or a
    :class:`pgqueue.Connection` (RQ's ``job_class``, ``serializer`` and ``death_penalty_class``: at their
    defaults only)."""

    status: ClassVar[JobStatus]
    title: ClassVar[str]  # the registry in messages: "failed job registry"

    def __init__(self, name: str = "default", dsn: Any = None, queue: Queue | None = None, *,
                 connection: Any = None, **rq_options: Any) -> None:
        refuse(type(self).__name__, rq_options, QUEUE_OPTIONS)
        dsn = database(dsn, connection, where=f"{type(self).__name__}()")
        if queue is not None:
            name, dsn = queue.name, queue.dsn
        elif not isinstance(name, str):
            raise TypeError(f"{type(self).__name__} takes a queue name or queue=Queue(...), not {name!r}")
        self.name = check_queue_name(name)
        self.dsn = dsn

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and (other.name, other.dsn) == (self.name, self.dsn)

    def __hash__(self) -> int:
        return hash((type(self), self.name, self.dsn))

    def __len__(self) -> int:
        return self.count

    def __contains__(self, item: Job | str) -> bool:
        """Whether the job (or job id) is in this registry: it has this status in this queue."""
        row = self._row(_id_of(item))
        return row is not None and self._holds(row)

    @property
    def count(self) -> int:
        """How many jobs are in the registry."""
        with translate_errors(self.dsn):
            return _store.registry_count(shared_connection(self.dsn), self.status.value, self.name)

    def get_job_count(self, cleanup: bool = True) -> int:
        """:attr:`count` (``cleanup`` is accepted for RQ's sake: there is nothing to clean up)."""
        return self.count

    def get_job_ids(self, start: int = 0, end: int = -1, desc: bool = False, cleanup: bool = True) -> list[str]:
        """Ids of the jobs ranked ``start`` to ``end``, both included (0 first; negative from the last, -1
        the last, as RQ's ``ZRANGE``), in the registry's order (see each class), reversed with ``desc``.
        Ranks from the start take one query; negative ones or ``desc`` take a count first. A deep
        ``start`` costs as much as listing what comes before it."""
        start, end = _index(start, "start"), _index(end, "end")
        if start >= 0 and end >= -1 and not desc:
            if end == -1:
                return self._ids(start, None)
            return self._ids(start, end - start + 1) if end >= start else []
        n = self.count
        first = start if start >= 0 else max(0, n + start)
        last = min(end if end >= 0 else n + end, n - 1)
        if last < first:
            return []
        if not desc:
            return self._ids(first, last - first + 1)
        ids = self._ids(n - 1 - last, last - first + 1)
        ids.reverse()
        return ids

    def get_queue(self) -> Queue:
        from .queue import Queue

        return Queue(self.name, self.dsn)

    def get_expiration_time(self, job: Job | str) -> datetime | None:
        """When the job leaves this registry by itself, RQ's score: see each class. ``None``: never.
        Raises :class:`NoSuchJobError` if the job is not in this registry."""
        return self._expiry(self._own_row(_id_of(job)))

    def requeue(self, job_or_id: Job | str, at_front: bool = False) -> Job:
        """Put the job back on its queue, ``queued`` now, and return it. A job that ended gets one more
        attempt (as ``job.requeue()``); ``at_front`` puts it ahead of every job waiting in its queue.
        Raises :class:`InvalidJobOperation` if the job is not in this registry, and
        :class:`UniqueKeyHeld` if another live job holds its ``unique_key`` (it then stays here)."""
        job_id = _id_of(job_or_id)
        row = self._requeue(job_id, bool(at_front))
        if row is None:
            raise InvalidJobOperation(f"job {job_id} is not in the {self.title} of queue {self.name!r}, so it "
                                      "cannot be requeued from it")
        if not row.requeued:
            raise UniqueKeyHeld(row.id, row.unique_key, row.holder, self.status.value)
        return Job.fetch(job_id, self.dsn)

    def remove(self, job: Job | str, delete_job: bool = False) -> int:
        """Delete the job, if it is in this registry: returns 1 if it was, else 0. pgqueue needs
        ``delete_job=True``: a job is in a registry because of its status, so it cannot leave the registry
        and stay as it is (RQ then keeps the job's data without listing it)."""
        job_id = _id_of(job)
        if not delete_job:
            raise InvalidJobOperation(
                f"{type(self).__name__}.remove({job_id!r}) needs delete_job=True: pgqueue's registries are "
                f"queries over pgqueue.jobs, and a job is in the {self.title} because its status is "
                f"{self.status.value}; it leaves by being requeued (requeue()) or deleted (delete_job=True)")
        with translate_errors(self.dsn), own_connection(self.dsn) as conn, conn.transaction():
            row = _store.registry_remove(conn, job_id, self.name, self.status.value)
            if row is not None:  # its dependents are canceled with it (docs/workflows.md)
                _store.notify_done(conn, cancel_all_dependents(conn, [job_id], row.dependents_canceled))
        return int(row is not None)

    def cleanup(self, timestamp: float | None = None) -> None:
        """Nothing to do (RQ's registries need it): workers delete ended jobs past their ttl and rescue the
        jobs of lost workers on their own, and a registry is only a query."""

    # -- internals --------------------------------------------------------------------------------
    def _ids(self, offset: int, limit: int | None) -> list[str]:
        with translate_errors(self.dsn):
            return _store.registry_ids(shared_connection(self.dsn), self.status.value, self.name, offset, limit)

    def _row(self, job_id: str) -> _store.RegistryJobRow | None:
        with translate_errors(self.dsn):
            return _store.registry_job(shared_connection(self.dsn), job_id)

    def _holds(self, row: _store.RegistryJobRow) -> bool:
        return row.status == self.status.value and row.queue == self.name

    def _own_row(self, job_id: str) -> _store.RegistryJobRow:
        row = self._row(job_id)
        if row is None or not self._holds(row):
            raise NoSuchJobError(f"job {job_id} is not in the {self.title} of queue {self.name!r}")
        return row

    def _expiry(self, row: _store.RegistryJobRow) -> datetime | None:
        return row.delete_at

    def _requeue(self, job_id: str, at_front: bool) -> _store.RequeueRow | None:
        for attempt in range(3):
            try:
                with translate_errors(self.dsn):
                    return _store.registry_requeue(shared_connection(self.dsn), job_id, self.name, self.status.value,
                                                   at_front)
            except psycopg.errors.UniqueViolation:  # a job with its key was enqueued meanwhile: look again
                if attempt == 2:
                    raise UniqueKeyHeld(job_id, None, None, self.status.value) from None
        raise AssertionError("unreachable")  # pragma: no cover


class StartedJobRegistry(BaseRegistry):
    """Jobs a worker holds (status ``running``): those it runs, and those it claimed in a batch and starts
    next. In order of start, the ones not started yet last. ``get_expiration_time``: when the worker's
    lease runs out unless its heartbeat is renewed (then any worker may rescue the job). Jobs here cannot
    be requeued or removed: cancel the job, or stop its worker."""

    status = JobStatus.RUNNING
    title = "started job registry"

    def _expiry(self, row: _store.RegistryJobRow) -> datetime | None:
        return row.lease_until

    def requeue(self, job_or_id: Job | str, at_front: bool = False) -> Job:
        raise InvalidJobOperation(f"job {_id_of(job_or_id)} is running: a started job cannot be requeued while a "
                                  "worker runs it (it would run twice at once); cancel it, or wait for it to end")

    def remove(self, job: Job | str, delete_job: bool = False) -> int:
        raise InvalidJobOperation(f"job {_id_of(job)} is running: it cannot leave the started job registry while "
                                  "a worker runs it; cancel it (job.cancel()), or wait for it to end")


class FinishedJobRegistry(BaseRegistry):
    """Finished jobs, the first to finish first. ``get_expiration_time``: when workers delete the job (its
    ``ended_at`` plus ``result_ttl``); ``None`` for a job kept until you delete it."""

    status = JobStatus.FINISHED
    title = "finished job registry"


class FailedJobRegistry(BaseRegistry):
    """Failed jobs (no attempt left), the first to fail first. ``get_expiration_time``: when workers delete
    the job (its ``ended_at`` plus ``failure_ttl``); ``None`` for a job kept until you delete it."""

    status = JobStatus.FAILED
    title = "failed job registry"


class DeferredJobRegistry(BaseRegistry):
    """Jobs waiting for their dependencies, the first enqueued first. ``get_expiration_time``: when the job
    expires unless it starts first (``enqueued_at`` plus ``ttl``); ``None`` without a ``ttl``. ``requeue``
    queues it without waiting for its dependencies."""

    status = JobStatus.DEFERRED
    title = "deferred job registry"

    def _expiry(self, row: _store.RegistryJobRow) -> datetime | None:
        return row.expires_at


class ScheduledJobRegistry(BaseRegistry):
    """Jobs waiting for their time (``enqueue_at`` / ``enqueue_in``, or a retry's interval), the soonest
    first. ``get_expiration_time`` and ``get_scheduled_time``: when the job becomes runnable (RQ's score).
    ``requeue`` queues it now; it keeps the retries it has left."""

    status = JobStatus.SCHEDULED
    title = "scheduled job registry"

    def _expiry(self, row: _store.RegistryJobRow) -> datetime | None:
        return row.scheduled_at

    def get_scheduled_time(self, job_or_id: Job | str) -> datetime:
        """When the job becomes runnable; :class:`NoSuchJobError` if it is not in this registry."""
        return self._own_row(_id_of(job_or_id)).scheduled_at


class CanceledJobRegistry(BaseRegistry):
    """Canceled jobs, expired ones included, by when that happened. Workers never delete them
    (``get_expiration_time`` is ``None``). ``requeue`` runs a canceled job again, which ``job.requeue()``
    does not (that one takes failed jobs only, as in RQ)."""

    status = JobStatus.CANCELED
    title = "canceled job registry"


REGISTRIES: tuple[type[BaseRegistry], ...] = (StartedJobRegistry, FinishedJobRegistry, FailedJobRegistry,
                                              DeferredJobRegistry, ScheduledJobRegistry, CanceledJobRegistry)
