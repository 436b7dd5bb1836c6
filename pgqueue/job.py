"""Jobs: a row of ``pgqueue.jobs`` seen from Python, its status enum, and the retry policy."""

from __future__ import annotations

import contextvars
import enum
import inspect
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

from . import _callbacks, _config, _progress, _serialize, _store, monitor
from ._db import connect, own_connection, readable, shared_connection, translate_errors
from ._store.workflows import cancel_all_dependents
from .connections import database
from .exceptions import JobFailed, NoSuchJobError
from .results import Result, results_of


class JobStatus(str, enum.Enum):
    """The lifecycle of a job; the values are the ``status`` column's."""

    SCHEDULED = "scheduled"
    QUEUED = "queued"
    DEFERRED = "deferred"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELED = "canceled"
    STARTED = "running"  # RQ's name for a job a worker runs: the same member as RUNNING

    def __str__(self) -> str:
        return self.value

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELED})

#: Seconds between two looks at a job's status by ``job.wait()`` when it cannot LISTEN: in
#: transaction-pooling mode without ``PGQUEUE_LISTEN_DATABASE_URL``. Each look is one short statement.
WAIT_POLL_INTERVAL = 0.25


_INT32_MAX = 2**31 - 1  # max_attempts (1 + max) is an integer column; intervals are capped alike (68 years)


class Retry:
    """How often a failed job runs again, and after how long.

    ``Retry(max=3)`` allows three retries after the first failure (up to four runs), at once.
    ``interval`` is seconds before each retry: one number for all, or a list whose last value repeats.
    :meth:`exponential` builds a capped exponential back-off with jitter.
    ``on`` (pgqueue's, not RQ's) retries only exceptions of these classes (classes or dotted paths): a job
    that raises anything else fails at once, its remaining retries unused. A timeout, a crashed process or
    a lost worker is no exception of the job's and is retried as without ``on``.
    """

    def __init__(self, max: int, interval: float | Sequence[float] = 0,
                 on: type[BaseException] | str | Iterable[type[BaseException] | str] | None = None) -> None:
        if not isinstance(max, int) or isinstance(max, bool) or not 0 <= max < _INT32_MAX:
            raise ValueError(f"Retry(max=...) must be an int from 0 to {_INT32_MAX - 1}, not {max!r}")
        intervals = [float(interval)] if isinstance(interval, (int, float)) else [float(i) for i in interval]
        # A worker adds the interval to now() when the job fails: NaN, infinity or an interval past the
        # timestamps PostgreSQL has would fail that statement, so they are refused here.
        if not all(0 <= i <= _INT32_MAX for i in intervals):
            raise ValueError(f"Retry intervals must be from 0 to {_INT32_MAX} seconds, not {interval!r}")
        self.max = max
        self.intervals: list[float] = intervals
        #: The dotted paths of the exception classes retried (None: every failure).
        self.on: tuple[str, ...] | None = None if on is None else _callbacks.exception_names(on)

    @classmethod
    def exponential(
        cls, max: int, base: float = 1.0, factor: float = 2.0, cap: float = 300.0, jitter: float = 0.1,
        on: type[BaseException] | str | Iterable[type[BaseException] | str] | None = None,
    ) -> Retry:
        """``base * factor**n`` seconds before retry ``n`` (0-based), at most ``cap``, each stretched by a
        random fraction up to ``jitter`` so that jobs failing together do not retry together."""
        intervals = [min(cap, base * factor**n) * (1 + random.uniform(0, jitter)) for n in range(max)]
        return cls(max=max, interval=intervals or [0], on=on)

    def __repr__(self) -> str:
        on = "" if self.on is None else f", on={self.on!r}"
        return f"Retry(max={self.max}, interval={self.intervals!r}{on})"


class Dependency:
    """RQ's way to say what a job waits for: ``depends_on=Dependency(jobs=[a, b], allow_failure=True)``.
    ``allow_failure=True`` is ``allow_dependency_failures=True``: the job runs once every one of ``jobs``
    has ended, however it ended, instead of being canceled when one fails or is canceled."""

    def __init__(self, jobs: Job | str | Sequence[Job | str], allow_failure: bool = False,
                 enqueue_at_front: bool = False) -> None:
        listed = [jobs] if isinstance(jobs, (Job, str)) else list(jobs)
        if not listed or not all(isinstance(j, (Job, str)) for j in listed):
            raise ValueError(f"Dependency(jobs=...) takes a Job, a job id, or a non-empty list of them, not {jobs!r}")
        if enqueue_at_front:
            raise ValueError("Dependency(enqueue_at_front=True) is not supported: a dependent job takes its place "
                             "in its queue when it is enqueued; give it a priority instead")
        self.jobs = listed
        self.allow_failure = bool(allow_failure)

    def __repr__(self) -> str:
        ids = [j.id if isinstance(j, Job) else j for j in self.jobs]
        return f"Dependency(jobs={ids!r}, allow_failure={self.allow_failure})"


class _PendingJob:
    """What a worker sets while a job runs: the Job is only built if the job asks for it. ``connection``
    is an atomic job's transaction, given to the Job as its ``connection`` while the function runs."""

    __slots__ = ("_make", "_job", "connection")

    def __init__(self, make: Callable[[], Job]) -> None:
        self._make = make
        self._job: Job | None = None
        self.connection: Any = None

    def get(self) -> Job:
        if self._job is None:
            self._job = self._make()
            self._job.connection = self.connection
        return self._job

    def set_connection(self, connection: Any) -> None:
        self.connection = connection
        if self._job is not None:
            self._job.connection = connection


_current_job: contextvars.ContextVar[_PendingJob | None] = contextvars.ContextVar("pgqueue_current_job",
                                                                                  default=None)


F = TypeVar("F", bound=Callable[..., Any])


def atomic(func: F) -> F:
    """Mark a job function whose database writes must commit together with its completion.

    The worker opens a transaction, the function writes through ``get_current_job().connection``, and the
    same transaction records the job as finished (fenced like every completion). A crash, a timeout or a
    lost lease therefore keeps both or neither: the writes happen exactly once per finished job.

    Sync functions only: an ``async def`` is refused here (its transaction would be a sync connection's,
    blocking the event loop that runs the other async jobs).
    """
    if inspect.iscoroutinefunction(func):
        raise TypeError(f"@pgqueue.atomic does not take async def functions ({func.__qualname__}): an atomic job "
                        "writes through a sync connection's transaction; make it a plain def, or write and "
                        "commit in the async job yourself (see docs/async.md)")
    func.__pgqueue_atomic__ = True  # type: ignore[attr-defined]
    return func


def get_current_job() -> Job | None:
    """The job being run, when called from inside a job function; ``None`` elsewhere."""
    pending = _current_job.get()
    return None if pending is None else pending.get()


class _Fresh:
    """A Job attribute whose default is a new empty list or dict, made on first read and kept in the
    instance's ``__dict__`` (a non-data descriptor: what the instance holds wins). A Job from
    ``enqueue_many`` then carries four entries less (0.60 -> 0.37 us per Job's dict)."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = obj.__dict__[self._name] = self._factory()
        return value


class Job:
    """A job. Attributes mirror the columns of ``pgqueue.jobs``; :meth:`refresh` reloads them."""

    # Defaults live on the class (empty lists and dicts: _Fresh): a Job made by enqueue_many only stores what
    # differs (100,000s of them).
    id: str
    queue: str = ""
    func_name: str = ""
    args: list[Any] = _Fresh(list)  # type: ignore[assignment]
    kwargs: dict[str, Any] = _Fresh(dict)  # type: ignore[assignment]
    status: JobStatus = JobStatus.QUEUED
    priority: int = 0
    description: str | None = None
    meta: dict[str, Any] = _Fresh(dict)  # type: ignore[assignment]
    attempts: int = 0
    max_attempts: int = 1
    errors: list[dict[str, Any]] = _Fresh(list)  # type: ignore[assignment]
    timeout: float = 180.0
    result_ttl: int | None = None
    failure_ttl: int | None = None
    ttl: int | None = None
    depends_on: list[str] = _Fresh(list)  # type: ignore[assignment]
    unique_key: str | None = None
    worker_name: str | None = None
    enqueued_at: datetime | None = None
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    _result: Any = None
    _exc_info: str | None = None
    _final_loaded = False  # whether result/exc_info were loaded once the job had ended
    # Inside a running job (get_current_job): (attempt, started_at, worker_name) of this run, which the
    # row may not show yet (a run claimed in a batch is recorded as started after a while, or at its end).
    _run: tuple[int, datetime, str] | None = None
    # In a worker's job hooks (pgqueue.hooks): the W3C traceparent the job was enqueued under (pgqueue.tracing).
    _traceparent: str | None = None

    connection: Any = None
    """Inside an :func:`atomic` job: the psycopg connection whose transaction also marks the job
    finished. ``None`` elsewhere."""

    def __init__(self, id: str, dsn: Any = None, **fields: Any) -> None:
        connection = None
        if "connection" in fields or "serializer" in fields:  # RQ's Job(id, connection=redis, serializer=...)
            connection = fields.pop("connection", None)
            _refuse_serializer("Job", fields.pop("serializer", None))
        self.__dict__.update(fields)
        self.id = id
        self._dsn = database(dsn, connection, where="Job()")

    @classmethod
    def _from_dict(cls, attributes: dict[str, Any]) -> Job:
        """A Job whose ``__dict__`` is ``attributes`` (which holds at least ``id`` and ``_dsn``): no
        per-attribute work, for enqueue_many's 100,000s of Jobs."""
        job = cls.__new__(cls)
        job.__dict__ = attributes
        return job

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.func_name} {self.status.value}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    # -- loading ---------------------------------------------------------------------------------
    @classmethod
    def fetch(cls, id: str, dsn: Any = None, *, connection: Any = None, serializer: Any = None) -> Job:
        """The job with this id, raising :class:`NoSuchJobError` if there is none. ``dsn`` or RQ's
        ``connection``: a URL or a :class:`pgqueue.Connection`."""
        _refuse_serializer("Job.fetch", serializer)
        job = cls(id, database(dsn, connection, where="Job.fetch()"))
        job.refresh()
        return job

    @classmethod
    def fetch_many(cls, job_ids: Iterable[str], dsn: Any = None, *, connection: Any = None,
                   serializer: Any = None) -> list[Job | None]:
        """The jobs with these ids, in the same order, ``None`` where there is none (as RQ): one query."""
        _refuse_serializer("Job.fetch_many", serializer)
        dsn = database(dsn, connection, where="Job.fetch_many()")
        ids = [str(i) for i in job_ids]
        with translate_errors(dsn):
            rows = {r.id: r for r in _store.fetch_jobs(shared_connection(dsn), ids)} if ids else {}
        jobs: list[Job | None] = []
        for id in ids:
            row = rows.get(id)
            if row is None:
                jobs.append(None)
                continue
            job = cls(id, dsn)
            job._load_row(row)
            jobs.append(job)
        return jobs

    @classmethod
    def exists(cls, job_id: str, dsn: Any = None, *, connection: Any = None) -> bool:
        """Whether a job with this id exists."""
        dsn = database(dsn, connection, where="Job.exists()")
        with translate_errors(dsn):
            return _store.job_status(shared_connection(dsn), job_id) is not None

    def refresh(self) -> None:
        """Reload every attribute from the database."""
        with translate_errors(self._dsn):
            row = _store.fetch_job(shared_connection(self._dsn), self.id)
        if row is None:
            raise NoSuchJobError(f"no job with id {self.id!r}")
        self._load_row(row)
        if self._run is not None and self.status == JobStatus.RUNNING:
            attempt, started_at, self.worker_name = self._run
            self.attempts = max(self.attempts, attempt)
            self.started_at = self.started_at or started_at

    def _load_row(self, row: _store.JobRow) -> None:
        self.id, self.queue, self.func_name = row.id, row.queue, row.func_name
        self.args = _serialize.loads(row.args)
        self.kwargs = _serialize.loads(row.kwargs)
        self.status = JobStatus(row.status)
        self.priority, self.description = row.priority, row.description
        self.meta = _serialize.loads(row.meta)
        self._result = _serialize.loads(row.result)
        self._exc_info = row.exc_info
        self.errors = _serialize.loads(row.errors)
        self.attempts, self.max_attempts, self.timeout = row.attempts, row.max_attempts, row.timeout_seconds
        self.result_ttl, self.failure_ttl, self.ttl = row.result_ttl, row.failure_ttl, row.ttl
        self.depends_on = list(row.depends_on)
        self.unique_key, self.worker_name = row.unique_key, row.worker_name
        self.enqueued_at, self.scheduled_at = row.enqueued_at, row.scheduled_at
        self.started_at, self.ended_at = row.started_at, row.ended_at
        self._final_loaded = self.status.is_final

    # -- state -----------------------------------------------------------------------------------
    def get_status(self, refresh: bool = True) -> JobStatus:
        if refresh:
            with translate_errors(self._dsn):  # polled in loops: through libpq directly, as enqueue
                status = _store.job_status(shared_connection(self._dsn), self.id)
            if status is None:
                raise NoSuchJobError(f"no job with id {self.id!r}")
            self.status = JobStatus(status)
        return self.status

    def _refresh_unless_final(self) -> None:
        if not self._final_loaded:
            self.refresh()

    @property
    def result(self) -> Any:
        """The return value of a finished job (``None`` until it finishes)."""
        self._refresh_unless_final()
        return self._result

    def return_value(self, refresh: bool = False) -> Any:
        """The return value of the job's run, if it finished; else ``None`` (RQ's method). The row is read
        again unless the job was seen ended (as RQ keeps the result it fetched), or if ``refresh``."""
        if refresh:
            self.refresh()
        else:
            self._refresh_unless_final()
        return self._result if self.status == JobStatus.FINISHED else None

    def results(self) -> list[Result]:
        """Every run that ended, newest first: the failed attempts (from ``errors``) and the run that
        finished. Reads the row again. A run still going, or stopped by a cold shutdown, has none."""
        self.refresh()
        return results_of(self)

    def latest_result(self, timeout: float = 0) -> Result | None:
        """The newest of :meth:`results`, or ``None``. With ``timeout`` (seconds) and no result yet, waits
        until the job ends, woken as :meth:`wait` is, for at most that long (an attempt that fails and will
        be retried does not end the wait: the job has not ended)."""
        results = self.results()
        if results or not timeout:
            return results[0] if results else None
        try:
            self.wait(timeout)
        except (JobFailed, TimeoutError):
            pass
        results = self.results()
        return results[0] if results else None

    @property
    def exc_info(self) -> str | None:
        """The last failure's text: the traceback, or why the job timed out or its process died."""
        self._refresh_unless_final()
        return self._exc_info

    @property
    def is_finished(self) -> bool:
        return self.get_status() == JobStatus.FINISHED

    @property
    def is_failed(self) -> bool:
        return self.get_status() == JobStatus.FAILED

    @property
    def is_queued(self) -> bool:
        return self.get_status() == JobStatus.QUEUED

    @property
    def is_started(self) -> bool:
        """Whether a worker holds the job (status ``running``: RQ's ``started``)."""
        return self.get_status() == JobStatus.RUNNING

    @property
    def is_scheduled(self) -> bool:
        return self.get_status() == JobStatus.SCHEDULED

    @property
    def is_deferred(self) -> bool:
        return self.get_status() == JobStatus.DEFERRED

    @property
    def is_canceled(self) -> bool:
        return self.get_status() == JobStatus.CANCELED

    @property
    def is_stopped(self) -> bool:
        """Always ``False``: RQ's ``stopped`` is a status of its own, for a job a stop command interrupted;
        pgqueue has none: a running job that ``job.cancel()`` stops is ``canceled``."""
        self.get_status()  # as RQ, the property asks the database: a job that is gone raises
        return False

    # -- job control (docs/job-control.md) ------------------------------------------------------------
    @property
    def progress(self) -> _progress.Progress | None:
        """What the job last reported with :meth:`set_progress` (read from its row; None: nothing yet)."""
        return _progress.parse(_progress.read(self).progress)

    @property
    def snoozes(self) -> int:
        """How often the job snoozed (``raise pgqueue.Snooze(seconds)``), read from its row."""
        return _progress.read(self).snoozes

    def set_progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """From inside the running job (``get_current_job()``): report ``done`` of ``total`` (None: unknown),
        with a ``message``. At most one write every 0.2 s (PROGRESS_INTERVAL); the last report is written
        when the job's function ends. Nothing is written once the job has ended or was canceled."""
        _progress.report(self, done, total, message)

    def progress_updates(self, timeout: float | None = None) -> Iterator[_progress.Progress]:
        """Yield the job's progress, the current one first if there is one, then each new one as it is
        written (woken by NOTIFY, as :meth:`wait`), until the job ends. Raises ``TimeoutError`` if it has not
        ended within ``timeout`` seconds. Reports written closer together than one wake-up are seen as the
        last of them."""
        return _progress.updates(self, timeout)

    @property
    def origin(self) -> str:
        """The queue's name (RQ's name for :attr:`queue`)."""
        return self.queue

    @property
    def created_at(self) -> datetime | None:
        """When the job was enqueued: its row is written then (:attr:`enqueued_at`)."""
        return self.enqueued_at

    @property
    def func(self) -> Callable[..., Any]:
        """The job's function, imported by its dotted path :attr:`func_name` as a worker imports it."""
        from .worker._execute import import_func

        return import_func(self.func_name)

    @property
    def dependency_ids(self) -> list[str]:
        """The ids of the jobs this one depends on (``depends_on``)."""
        return list(self.depends_on)

    @property
    def dependency(self) -> Job | None:
        """The first job this one depends on, fetched; ``None`` without dependencies."""
        return Job.fetch(self.depends_on[0], self._dsn) if self.depends_on else None

    @property
    def retries_left(self) -> int | None:
        """Retries this job has not used (as RQ counts them: 3 for ``retry=3`` until a run fails); ``None``
        for a job enqueued without ``retry`` (and not requeued since). From the attributes as loaded."""
        if self.max_attempts <= 1:
            return None
        # The run that finished, or the one going on, has not failed.
        ok_run = self.status == JobStatus.FINISHED or (self.status == JobStatus.RUNNING and self.started_at is not None)
        failed_runs = self.attempts - (1 if ok_run and self.attempts else 0)
        return max(0, self.max_attempts - 1 - failed_runs)

    def get_position(self) -> int | None:
        """The job's place (0 first) among the queued jobs of its queue, in the order workers take them
        (``q.job_ids``); ``None`` unless it is queued."""
        with translate_errors(self._dsn):
            return _store.job_position(shared_connection(self._dsn), self.id)

    def get_meta(self, refresh: bool = True) -> dict[str, Any]:
        """``meta``, read again from the database unless ``refresh`` is false."""
        if refresh:
            with translate_errors(self._dsn):
                meta = _store.job_meta(shared_connection(self._dsn), self.id)
            if meta is None:
                raise NoSuchJobError(f"no job with id {self.id!r}")
            self.meta = _serialize.loads(meta)
        return self.meta

    def get_call_string(self) -> str:
        """``tasks.add(1, b=2)``: the call the job makes, as RQ's log lines and descriptions show it."""
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.func_name}({', '.join(parts)})"

    def to_dict(self, include_meta: bool = True, include_result: bool = True) -> dict[str, Any]:
        """The job's attributes as loaded, under RQ's names where it has them (``origin``, ``created_at``,
        ``dependency_ids``, ...), as Python values; ``meta`` and ``result`` / ``exc_info`` only if asked.
        Not RQ's Redis hash: nothing is pickled or compressed."""
        data: dict[str, Any] = {
            "id": self.id, "origin": self.queue, "func_name": self.func_name, "args": list(self.args),
            "kwargs": dict(self.kwargs), "description": self.description, "status": self.status.value,
            "priority": self.priority, "created_at": self.enqueued_at, "enqueued_at": self.enqueued_at,
            "scheduled_at": self.scheduled_at, "started_at": self.started_at, "ended_at": self.ended_at,
            "timeout": self.timeout, "result_ttl": self.result_ttl, "failure_ttl": self.failure_ttl, "ttl": self.ttl,
            "dependency_ids": list(self.depends_on), "attempts": self.attempts, "retries_left": self.retries_left,
            "unique_key": self.unique_key, "worker_name": self.worker_name}
        if include_meta:
            data["meta"] = dict(self.meta)
        if include_result:
            data["result"] = self._result
            data["exc_info"] = self._exc_info
        return data

    # -- changes ---------------------------------------------------------------------------------
    def save_meta(self) -> None:
        """Write ``job.meta`` to the database (e.g. progress reported from inside a running job)."""
        conn = shared_connection(self._dsn)
        with translate_errors(self._dsn):
            if not _store.save_meta(conn, self.id, _serialize.dumps(self.meta)):
                raise NoSuchJobError(f"no job with id {self.id!r}")

    def cancel(self) -> bool:
        """Cancel the job if it has not ended; returns whether it was canceled. A running job's worker is told
        at once and stops it: :class:`~pgqueue.JobCanceled` is raised in the job, whose process is killed if
        it has not stopped within the worker's ``cancel_grace``; its ``on_stopped`` callback runs. Either
        way its outcome is not recorded (docs/job-control.md). The jobs that depend on it are canceled too
        (and theirs), unless they allow dependency failures (docs/workflows.md)."""
        canceled = monitor.cancel([self.id], self._dsn)[0].canceled
        self.refresh()
        return canceled

    def requeue(self) -> bool:
        """Put a failed job back on its queue, allowing one more attempt. Returns whether it was failed;
        raises :class:`UniqueKeyHeld` if another job holds its ``unique_key`` (it stays failed then)."""
        requeued, refused = monitor.requeue([self.id], None, self._dsn)
        self.refresh()
        if refused:
            raise refused[0]
        return bool(requeued)

    def delete(self) -> None:
        """Delete the job's row. If it had not ended, the jobs that depend on it are canceled (unless they
        allow dependency failures) and its batch counts it as canceled."""
        with translate_errors(self._dsn), own_connection(self._dsn) as conn, conn.transaction():
            row = _store.delete_job(conn, self.id)
            if row is not None:
                _store.notify_done(conn, cancel_all_dependents(conn, [self.id], row.dependents_canceled))

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the job ends and return its result. Woken by the worker's NOTIFY, not by polling,
        on a connection of its own (to ``PGQUEUE_LISTEN_DATABASE_URL`` if set). In transaction-pooling
        mode without that URL it looks at the job's status every :data:`WAIT_POLL_INTERVAL` seconds instead.
        Raises :class:`JobFailed` if it failed or was canceled, ``TimeoutError`` if ``timeout`` passes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        listen_dsn = _config.listen_dsn()
        if listen_dsn is None and _config.transaction_pooling():
            return self._poll_until_ended(deadline, timeout)
        with connect(listen_dsn or self._dsn, role="wait", pooled=False) as conn, translate_errors(self._dsn):
            _store.listen(conn, "done")
            while True:
                self.refresh()  # after LISTEN, so an end between the two cannot be missed
                if self.status.is_final:
                    return self._outcome()
                if not _wait_for_ids(conn, {self.id}, deadline):
                    raise TimeoutError(f"job {self.id} did not end within {timeout} seconds")

    def _poll_until_ended(self, deadline: float | None, timeout: float | None) -> Any:
        while not self.get_status().is_final:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"job {self.id} did not end within {timeout} seconds")
            time.sleep(WAIT_POLL_INTERVAL if remaining is None else min(WAIT_POLL_INTERVAL, remaining))
        self.refresh()
        return self._outcome()

    def _outcome(self) -> Any:
        """The result of a job that ended (as last loaded), or JobFailed."""
        if self.status == JobStatus.FINISHED:
            return self._result
        raise JobFailed(self.id, self.status.value, self._exc_info)


def _refuse_serializer(where: str, serializer: Any) -> None:
    if serializer is not None:
        from ._rq import refuse

        refuse(where, {"serializer": serializer}, ("serializer",))


def _wait_for_ids(conn: Any, ids: set[str], deadline: float | None) -> bool:
    """Wait for a pgqueue_done notification naming one of ``ids``; False if the deadline passes."""
    pgconn = conn.pgconn
    while True:
        pgconn.consume_input()
        while (note := pgconn.notifies()) is not None:
            if ids.intersection(note.extra.decode().split(",")):
                return True
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return False
        ready = readable(conn.fileno(), 5.0 if remaining is None else min(remaining, 5.0))
        if not ready and (remaining is None or remaining > 5.0):
            return True  # a slow re-check, in case the connection silently lost a notification
