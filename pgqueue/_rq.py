"""What RQ's constructors take that pgqueue does not, and the few queue methods RQ code calls besides.

RQ's ``Queue``, ``Worker``, registries and ``Job`` take options that choose a class or a serializer
(``job_class``, ``serializer``, ``death_penalty_class``, ...). pgqueue has none to choose: a job is a row
of ``pgqueue.jobs``, stored as JSON. Ported code that passes one of them at RQ's default (``None``,
``False``) runs as it is; any other value is refused with the reason and what to do instead (see
docs/coming-from-rq.md), rather than ignored: code that asks for a serializer or a job class of its own
expects it to be used.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, ClassVar

from . import _store
from ._db import shared_connection, translate_errors
from .connections import Connection
from .exceptions import InvalidJobOperation
from .job import Job, JobStatus

_CLASSES = "a job is a row of pgqueue.jobs, and queues, registries and workers make pgqueue.Job objects"
_REASONS = {
    "serializer": "pgqueue stores arguments, results and meta as JSON (jsonb), readable in SQL, and never pickles, "
                  "so there is no serializer to choose; leave serializer out (docs/security.md#serialisation)",
    "job_class": f"pgqueue has no job classes: {_CLASSES}; leave job_class out",
    "queue_class": f"pgqueue has no queue classes: {_CLASSES}; leave queue_class out",
    "death_penalty_class": "a job past its timeout is killed with its process (SIGKILL), or in a SimpleWorker "
                           "interrupted by SIGALRM, so there is no death penalty class to choose "
                           "(docs/concepts.md#timeouts)",
    "disable_default_exception_handler": "RQ's default handler moves a failed job to its FailedJobRegistry, while a "
                                         "pgqueue job is a row whose failure is always recorded (status failed, "
                                         "exc_info); enqueue with failure_ttl= to have failed jobs deleted",
    "work_horse_killed_handler": "pgqueue calls no handler when a job's process dies: that attempt fails with the "
                                 "exc_info 'WorkHorseKilled: ...' and is retried like any failure (see failed jobs "
                                 "with FailedJobRegistry or `pgqueue failed`)",
    "default_result_ttl": "pgqueue keeps finished jobs until told otherwise: enqueue with result_ttl= (seconds) to "
                          "have them deleted",
    "worker_ttl": "pgqueue's is lease= (seconds a worker's heartbeat keeps its jobs its own, default 30)",
}

_HINTS = {
    "async_": "synchronous mode is is_async=False, as in RQ, which ignores async_",
    "async": "synchronous mode is is_async=False, RQ's name for it since 0.13",
}

QUEUE_OPTIONS = ("job_class", "serializer", "death_penalty_class")
WORKER_OPTIONS = ("job_class", "queue_class", "serializer", "disable_default_exception_handler",
                  "work_horse_killed_handler", "default_result_ttl", "worker_ttl")


def refuse(where: str, options: Mapping[str, Any], names: Collection[str]) -> None:
    """Refuse ``options`` (RQ's keyword arguments of ``where``) unless each is one of ``names`` at RQ's default
    (``None`` or ``False``; ``job_class=pgqueue.Job``); a name RQ does not have there either is the
    ``TypeError`` Python would raise."""
    for name, value in options.items():
        if name not in names:
            hint = f" ({_HINTS[name]})" if name in _HINTS else ""
            raise TypeError(f"{where}() got an unexpected keyword argument {name!r}{hint}")
        if value is None or value is False or (name == "job_class" and value is Job):
            continue
        shown = getattr(value, "__name__", None) or repr(value)
        raise TypeError(f"{where}({name}={shown}): {_REASONS[name]}")


class QueueMethods:
    """What RQ's ``Queue`` has besides pgqueue's own methods (a base class of :class:`pgqueue.Queue`)."""

    name: str
    dsn: str | None
    empty: Callable[[], int]  # Queue's
    #: RQ's ``Queue.job_class``: always pgqueue's Job (a subclass that sets another is refused when made).
    job_class: ClassVar[type[Job]] = Job

    def _check_rq_options(self, options: Mapping[str, Any]) -> None:
        refuse(type(self).__name__, options, QUEUE_OPTIONS)
        if self.job_class is not Job:
            refuse(type(self).__name__, {"job_class": self.job_class}, QUEUE_OPTIONS)

    @property
    def connection(self) -> Connection:
        """RQ's ``queue.connection``: the database this queue's jobs live in, as a :class:`Connection` (give it
        to ``Worker(..., connection=)``, ``Job.fetch(..., connection=)``, registries, ...)."""
        return Connection(self.dsn)

    def __contains__(self, job_or_id: Job | str) -> bool:
        """Whether the job (or job id) is queued in this queue: among ``q.job_ids`` (one query by its id)."""
        job_id = job_or_id.id if isinstance(job_or_id, Job) else job_or_id
        if not isinstance(job_id, str):
            raise TypeError(f"`in` takes a Job or a job id (str), not {type(job_or_id).__name__}")
        with translate_errors(self.dsn):
            row = _store.registry_job(shared_connection(self.dsn), job_id)
        return row is not None and row.queue == self.name and row.status == JobStatus.QUEUED.value

    def delete(self, delete_jobs: bool = True) -> int:
        """RQ's ``queue.delete(delete_jobs=True)``: delete the queue's queued jobs, as ``empty()``, and return
        how many. A queue is only the name its jobs carry, so there is nothing else to delete: enqueueing
        to it again works at once, and its other jobs (running, finished, failed, ...) stay. RQ's
        ``delete_jobs=False`` drops the queue but keeps its queued jobs, which pgqueue cannot: refused."""
        if not delete_jobs:
            raise InvalidJobOperation(f"queue {self.name!r} cannot be deleted without its queued jobs: a pgqueue "
                                      "queue is only the name its jobs carry; delete(delete_jobs=True) deletes "
                                      "them, as empty() does")
        return self.empty()
