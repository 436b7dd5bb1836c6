"""``Queue(is_async=False)``, RQ's synchronous mode: enqueue writes the job as always, then runs it at once in
the calling process and records its outcome as a worker would, through the worker's own code
(pgqueue.worker._execute.execute, and the statements that record outcomes). For tests and scripts.

A run needs a worker: the job's row says which worker holds it while it runs, and a job whose worker is
lost is rescued by the others. So each enqueue that runs jobs registers the calling process as a worker of
its own (``sync:HOST.PID``), takes the jobs it runs in the transaction that wrote them (no worker can take
them first), and marks itself stopped at the end. Its lease covers the longest job it runs: if the process
dies mid-job, the other workers rescue the job once that has passed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import psycopg

from . import _store
from ._db import caller_connection, own_connection, translate_errors
from .job import Job
from .queue import EnqueueData, Queue, _take
from .worker._clock import Alarm
from .worker._execute import execute
from .worker._messages import CallbackEnd, Outcome, Task
from .worker._outcomes import (
    callback_error,
    fail_params,
    finish_params,
    log_callback_failure,
    log_snoozes,
    snooze_params,
)

log = logging.getLogger("pgqueue.worker")

_NO_LEASE = 10 * 365 * 86400.0  # a lease for jobs nothing can stop (no timeout, or not in the main thread)
_LEASE_MARGIN = 60.0  # seconds of lease past the longest timeout of the jobs run
_IDLE = psycopg.pq.TransactionStatus.IDLE

_classes: dict[type, type] = {}


def sync_class(cls: type[Queue]) -> type[Queue]:
    """The class of ``cls(..., is_async=False)``: SyncQueue, or for a subclass of Queue, one of both."""
    if issubclass(cls, SyncQueue):
        return cls
    if cls is Queue:
        return SyncQueue
    made = _classes.get(cls)
    if made is None:
        made = _classes[cls] = type(cls.__name__, (SyncQueue, cls),
                                    {"__module__": cls.__module__, "__qualname__": cls.__qualname__})
    return made


class SyncQueue(Queue):
    """A Queue whose enqueue runs the job at once (``Queue(name, is_async=False)`` makes one)."""

    is_async = False

    def __repr__(self) -> str:
        return f"Queue({self.name!r}, is_async=False)"

    def _copy(self, first: list[EnqueueData], more: Iterator[EnqueueData], connection: Any,
              batch_id: str | None = None) -> list[Job]:
        return self._insert(first + _take(more, None), connection, batch_id)

    def _insert(self, batch: list[EnqueueData], connection: Any, batch_id: str | None = None) -> list[Job]:
        with translate_errors(self.dsn):
            if connection is not None:
                return self._insert_and_run(batch, caller_connection(connection), batch_id)
            with own_connection(self.dsn) as conn:
                return self._insert_and_run(batch, conn, batch_id)

    def _insert_and_run(self, batch: list[EnqueueData], conn: psycopg.Connection[Any],
                        batch_id: str | None = None) -> list[Job]:
        """Write ``batch``, take the jobs it returned that run now (in one transaction: the caller's, or
        one of ours), run them one by one and record each outcome (in the caller's transaction, or as they
        come). Returns the Jobs, reloaded once run."""
        alone = conn.autocommit and conn.info.transaction_status == _IDLE  # ours, or a caller's outside one
        worker = f"sync:{socket.gethostname()}.{os.getpid()}"
        with conn.transaction() if alone else contextlib.nullcontext():
            jobs = super()._insert(batch, conn, batch_id)
            # As in RQ, jobs given a time (enqueue_at, enqueue_in) wait for it, and for a worker.
            wanted = [j for j, d in zip(jobs, batch, strict=True) if d.scheduled_at is None and d.scheduled_in is None]
            if not wanted:
                return jobs
            ids = list(dict.fromkeys(j.id for j in wanted))
            worker_id = _store.register_worker(conn, name=worker, hostname=socket.gethostname(), pid=os.getpid(),
                                               queues=[self.name], concurrency=1, lease=_lease(wanted))
            order = {id: n for n, id in enumerate(ids)}
            rows = sorted(_store.claim_by_id(conn, ids=ids, worker_id=worker_id, worker_name=worker),
                          key=lambda r: order[r.id])
        try:
            for n, row in enumerate(rows):
                if n and alone:  # the lease counts from the last heartbeat: one per job
                    _store.heartbeat(conn, worker_id, 10.0)
                self._run(conn, Task(row.id, row.queue, row.func_name, row.args_json, row.kwargs_json, row.timeout,
                                     row.attempt, row.meta_json, row.claim, True, worker_id, row.callbacks,
                                     row.retry_on, row.traceparent), worker, None if alone else conn)
        except BaseException:
            with contextlib.suppress(psycopg.Error):
                _store.deregister_worker(conn, worker_id)
            raise
        _store.deregister_worker(conn, worker_id)
        ran = {row.id for row in rows}
        for job in jobs:
            found = _store.fetch_job(conn, job.id, caller=True) if job.id in ran else None
            if found is not None:
                job._load_row(found)
        return jobs

    def _run(self, conn: psycopg.Connection[Any], task: Task, worker: str,
             transaction: psycopg.Connection[Any] | None) -> None:
        """Run one task, as a SimpleWorker would, recording its outcome and a failed callback on ``conn``. No
        retry, as in RQ. ``transaction``: the caller's, where atomic jobs write and which callbacks get."""
        for msg in execute(task, self.dsn, worker, (), Alarm(always=True), transaction, retry=False):
            if isinstance(msg, Outcome):
                if msg.snooze is not None:  # scheduled again: a worker runs it then (as enqueue_in's jobs)
                    log_snoozes([msg], _store.snooze_jobs(conn, snooze_params([msg], task.worker_id)))
                    continue
                if not msg.ok:
                    rows = _store.fail_jobs(conn, fail_params([msg], worker, task.worker_id))
                    if rows and rows[0].dependents_canceled:  # jobs that depended on it (docs/workflows.md)
                        _store.notify_done(conn, rows[0].dependents_canceled)
                    log.info("Job failed (%s): %s: %s", msg.id, msg.error_type, msg.error_message)
                    continue
                if not msg.recorded:
                    _store.finish_jobs(conn, finish_params([msg], task.worker_id))
                log.info("Job OK (%s)", msg.id)
            elif isinstance(msg, CallbackEnd) and msg.error_type is not None:
                log_callback_failure(msg.id, msg.name, msg.func, msg.error_type, msg.message)
                _store.record_callback_failures(conn, [msg.id], [callback_error(
                    worker, msg.attempt, msg.name, msg.func, msg.error_type, msg.message, msg.traceback)])


def _lease(jobs: list[Job]) -> float:
    """How long the registration holds its jobs without a heartbeat: past the longest job's timeout, if the
    jobs can be stopped at it (an alarm, in the main thread); else for good (a dead process's jobs then stay
    running: delete them, or their worker's row)."""
    longest = max(job.timeout for job in jobs)
    if threading.current_thread() is not threading.main_thread() or math.isinf(longest):
        return _NO_LEASE
    return longest + _LEASE_MARGIN
