"""Queues: enqueueing jobs (alone, in bulk, scheduled, inside the caller's transaction) and looking at
what is waiting."""

from __future__ import annotations

import contextlib
import gc
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg

from . import _callbacks, _copy, _options, _serialize, _store, suspension
from . import tracing as _tracing
from ._db import caller_connection, own_connection, shared_connection, translate_errors
from ._ids import new_id, new_ids
from ._notify import check_queue_name
from ._options import func_name_of
from ._rq import QUEUE_OPTIONS, QueueMethods, refuse
from ._store import workflows as _store_workflows
from .connections import database
from .exceptions import NoSuchJobError, PgQueueError
from .job import Dependency, Job, JobStatus, Retry
from .sql import number_array

if TYPE_CHECKING:
    from .registry import (
        CanceledJobRegistry,
        DeferredJobRegistry,
        FailedJobRegistry,
        FinishedJobRegistry,
        ScheduledJobRegistry,
        StartedJobRegistry,
    )
    from .workflows import Batch

DEFAULT_TIMEOUT = 180.0
#: What a duration option takes: seconds, a timedelta, or a string such as "30m" (see _options.seconds).
Duration = int | float | timedelta | str

#: The keyword arguments ``enqueue`` keeps for itself (as RQ does); ``enqueue_call`` passes the
#: function's own arguments only through ``args=`` and ``kwargs=``.
RESERVED_OPTIONS = frozenset({
    "job_id", "job_timeout", "result_ttl", "ttl", "failure_ttl", "retry", "priority", "depends_on",
    "at_front", "meta", "description", "unique_key", "connection", "on_success", "on_failure", "on_stopped",
    "unique_key_conflict", "allow_dependency_failures",
})
_PREPARE_OPTIONS = RESERVED_OPTIONS - {"connection"} | {"scheduled_at", "scheduled_in"}


def _ids_of(depends_on: Any) -> Sequence[str]:
    if depends_on is None:
        return ()
    if isinstance(depends_on, Dependency):
        depends_on = depends_on.jobs
    if isinstance(depends_on, (Job, str)):
        depends_on = [depends_on]
    return list(dict.fromkeys(d.id if isinstance(d, Job) else str(d) for d in depends_on))


def _refuse_cycles(batch: Sequence[EnqueueData]) -> None:
    """Refuse a batch whose jobs (by their job_id) depend on each other in a cycle: all would stay
    deferred for ever. Run before anything of the batch is written."""
    graph = {d.id: d.depends_on for d in batch if d.custom_id and d.depends_on}
    cycle = _options.dependency_cycle(graph) if len(graph) > 1 else None  # type: ignore[arg-type]
    if cycle:
        raise ValueError(f"jobs {' -> '.join(map(repr, cycle))} depend on each other in a cycle, so none of "
                         "them could ever run: remove one of these dependencies")


def _attempts_of(retry: Retry | int) -> tuple[int, Sequence[float], Sequence[str] | None]:
    """max_attempts, retry intervals and the exceptions retried (None: all) of ``retry=``: a Retry, or an int
    (Retry(max=retry))."""
    if isinstance(retry, bool) or not isinstance(retry, (Retry, int)):
        raise TypeError(f"retry= takes Retry(max=..., interval=...) or an int, not {retry!r}")
    if isinstance(retry, int):
        retry = Retry(max=retry)
    return 1 + retry.max, retry.intervals, retry.on


def _explicit(args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[Sequence[Any], dict[str, Any]]:
    """RQ's explicit form, ``enqueue(f, args=(1, 2), kwargs={"a": 1}, ttl=30)``: the function's arguments are
    ``args=`` and ``kwargs=`` when either is given (then with no other positional or keyword argument),
    so that ``kwargs={"ttl": 15}`` reaches the function while ``ttl=30`` is the job's."""
    if "args" not in kwargs and "kwargs" not in kwargs:
        return args, kwargs
    explicit_args, explicit_kwargs = kwargs.pop("args", None), kwargs.pop("kwargs", None)
    if args or kwargs:
        extra = [f"{len(args)} positional argument(s)"] * bool(args) + [f"{k}=" for k in kwargs]
        raise TypeError(f"enqueue(f, args=..., kwargs=...) passes the function's arguments only through args= and "
                        f"kwargs= (as in RQ), not also {', '.join(extra)}: put them in args= / kwargs=")
    return explicit_args or (), explicit_kwargs or {}


class EnqueueData:
    """One job ready to insert: its function, serialised arguments and options. Built by
    :meth:`Queue.prepare_data`; ``enqueue_many`` writes many of these in one round trip.

    Kept lean, as enqueue_many prepares 100,000s: the options' defaults live on the class, and an
    instance made without options holds three attributes (``simple``)."""

    id: str | None = None  # a job_id given here is the job's; otherwise each enqueue draws a new UUIDv7
    custom_id = False
    kwargs: dict[str, Any] | None = None  # None, not {}: the Job gets its own dict
    kwargs_json = "{}"
    meta: dict[str, Any] | None = None
    meta_json = "{}"
    max_attempts = 1
    intervals: Sequence[float] = ()
    priority = 0
    at_front = False
    description: str | None = None
    timeout: float | None = None  # None: the queue's default_timeout
    result_ttl: int | None = None
    failure_ttl: int | None = None
    ttl: int | None = None
    depends_on: Sequence[str] = ()
    unique_key: str | None = None
    replace = False  # unique_key_conflict="replace": a holder not started yet takes this call
    scheduled_at: datetime | None = None
    scheduled_in: float | None = None  # seconds after the database's now(), not this machine's clock
    callbacks_json: str | None = None  # jobs.callbacks (pgqueue._callbacks)
    retry_on: Sequence[str] | None = None  # jobs.retry_on: the exceptions retried, dotted paths (None: all)
    traceparent: str | None = None  # jobs.traceparent: set by pgqueue.tracing (the job is then not simple)
    extras = False  # callbacks or retry_on: columns only insert_jobs writes
    simple = True  # no kwargs, every option at its default
    allow_dependency_failures = False  # run once every dependency ended, however (else: canceled with it)
    with_dependency_result = False  # chain(pass_result=True): the dependency's result goes first in args

    def __init__(self, func: Callable[..., Any] | str, args: Sequence[Any] | None = None,
                 kwargs: dict[str, Any] | None = None, **options: Any) -> None:
        self.func_name = func_name_of(func)
        # Serialise everything first: an unserialisable value raises TypeError before anything is written.
        self.args = args = tuple(args) if args else ()  # the GC stops tracking a tuple of plain values
        self.args_json = _serialize.dumps(args)
        if kwargs or options:
            self.simple = False
            self._set_options(kwargs, **options)

    def _set_options(self, kwargs: dict[str, Any] | None, *, job_id: str | None = None,
                     job_timeout: Duration | None = None, result_ttl: Duration | None = None,
                     ttl: Duration | None = None, failure_ttl: Duration | None = None,
                     retry: Retry | int | None = None, priority: int = 0, depends_on: Any = None,
                     at_front: bool = False, meta: dict[str, Any] | None = None, description: str | None = None,
                     unique_key: str | None = None, scheduled_at: datetime | None = None,
                     scheduled_in: Duration | None = None, on_success: Any = None, on_failure: Any = None,
                     on_stopped: Any = None, unique_key_conflict: str = "keep",
                     allow_dependency_failures: bool = False) -> None:
        if kwargs:
            self.kwargs = dict(kwargs)
            self.kwargs_json = _serialize.dumps(self.kwargs)
        if meta:
            self.meta = dict(meta)
            self.meta_json = _serialize.dumps(self.meta)
        if job_id is not None:
            self.custom_id, self.id = True, _options.key("job_id", job_id)
        if retry is not None:
            self.max_attempts, self.intervals, retry_on = _attempts_of(retry)
            if retry_on is not None:
                self.retry_on, self.extras = retry_on, True
        if on_success is not None or on_failure is not None or on_stopped is not None:
            self.callbacks_json, self.extras = _callbacks.callbacks_json(on_success, on_failure, on_stopped), True
        self.priority = priority if priority == 0 and type(priority) is int else _options.priority(priority)
        self.at_front = bool(at_front)
        self.description = description
        self._set_durations(job_timeout, result_ttl, failure_ttl, ttl)
        self.depends_on = _ids_of(depends_on)
        if allow_dependency_failures or (isinstance(depends_on, Dependency) and depends_on.allow_failure):
            self.allow_dependency_failures = True
        if self.custom_id and self.id in self.depends_on:
            raise ValueError(f"job {self.id!r} depends on itself, so it could never run: "
                             f"remove {self.id!r} from its depends_on")
        self.unique_key = None if unique_key is None else _options.key("unique_key", unique_key)
        self.replace = _options.unique_key_conflict(unique_key_conflict, self.unique_key)
        if scheduled_at is not None and scheduled_at.tzinfo is None:
            raise ValueError("scheduled times must be timezone-aware (e.g. datetime(..., tzinfo=timezone.utc))")
        self.scheduled_at = scheduled_at
        self.scheduled_in = None if scheduled_in is None else _options.delay("scheduled_in", scheduled_in)

    def _set_durations(self, job_timeout: Duration | None, result_ttl: Duration | None,
                       failure_ttl: Duration | None, ttl: Duration | None) -> None:
        """Each given duration, checked and in seconds (None: the default, set on the class)."""
        if job_timeout is not None:
            self.timeout = _options.timeout("job_timeout", job_timeout)  # -1: no timeout (infinity)
        # As in RQ, a negative result_ttl or failure_ttl keeps the row forever (as does None, the default).
        if result_ttl is not None:
            self.result_ttl = _options.kept_for("result_ttl", result_ttl)
        if failure_ttl is not None:
            self.failure_ttl = _options.kept_for("failure_ttl", failure_ttl)
        if ttl is not None:
            self.ttl = _options.ttl(ttl)  # -1: no limit

    @property
    def plain(self) -> bool:
        """Whether COPY can write this job: no option that needs the database to decide at insert time."""
        return self.simple or not (self.custom_id or self.depends_on or self.unique_key or self.at_front
                                   or self.scheduled_in is not None or self.extras)

    def to_job(self, id: str, queue: str, dsn: str | None, timeout: float, status: JobStatus,
               enqueued_at: datetime, scheduled_at: datetime, priority: int) -> Job:
        attributes: dict[str, Any] = {
            "id": id, "_dsn": dsn, "queue": queue, "func_name": self.func_name, "args": list(self.args),
            "timeout": timeout, "status": status, "enqueued_at": enqueued_at, "scheduled_at": scheduled_at}
        if not self.simple:  # a simple job's other attributes are Job's class defaults (to_job 1.09 -> 0.82 us)
            attributes.update({
                "kwargs": self.kwargs or {}, "meta": self.meta or {}, "depends_on": list(self.depends_on),
                "priority": priority, "description": self.description, "max_attempts": self.max_attempts,
                "result_ttl": self.result_ttl, "failure_ttl": self.failure_ttl, "ttl": self.ttl,
                "unique_key": self.unique_key})
        return Job._from_dict(attributes)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector during enqueue_many, whose items and Jobs are acyclic objects,
    several per job: otherwise it runs every 700 of them and rescans the growing heap each time (client
    CPU per job of 50,000: 12.8 -> 8 us when this was added). Reference counting still frees as usual."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_CONFLICT_ATTEMPTS = 5  # inserts of a job whose conflicting job keeps ending before it can be read
_COPY_CHUNK = 2000  # jobs per COPY write: the server writes one chunk while the next is prepared
_IDLE = psycopg.pq.TransactionStatus.IDLE


def _take(items: Iterator[Any], n: int | None) -> list[EnqueueData]:
    """The next ``n`` items (all with None), refused unless every one is an EnqueueData."""
    taken = list(itertools.islice(items, n))
    if not all(isinstance(item, EnqueueData) for item in taken):
        raise TypeError("enqueue_many takes items made by Queue.prepare_data(...)")
    return taken


class Queue(QueueMethods):
    """A named queue of jobs in PostgreSQL.

    ``dsn`` is where the jobs live (default: ``PGQUEUE_DATABASE_URL``, ``DATABASE_URL``, else the
    embedded server): a URL, or a :class:`pgqueue.Connection`, which RQ's ``connection=`` takes too.
    RQ's ``job_class``, ``serializer`` and ``death_penalty_class`` are accepted at their defaults only
    (pgqueue._rq says why). ``default_timeout`` applies to jobs enqueued without ``job_timeout``.
    ``is_async=False`` (RQ's synchronous mode, for tests) runs each job at once, in the process that
    enqueues it, and records its outcome as a worker would (see docs/callbacks-and-retries.md).
    """

    #: False for a queue whose enqueue runs the job at once (``Queue(is_async=False)``).
    is_async = True

    def __new__(cls, *args: Any, **kwargs: Any) -> Queue:
        # Only is_async matters here (a subclass's own arguments go to its __init__).
        if not kwargs.get("is_async", True):
            from ._sync import sync_class

            cls = sync_class(cls)
        return super().__new__(cls)

    def __init__(self, name: str = "default", dsn: Any = None, *,
                 default_timeout: Duration | None = None, is_async: bool = True, connection: Any = None,
                 **rq_options: Any) -> None:
        self.name = check_queue_name(name)
        self.dsn = database(dsn, connection, where="Queue()")
        self._check_rq_options(rq_options)
        self.default_timeout = (DEFAULT_TIMEOUT if default_timeout is None
                                else _options.timeout("default_timeout", default_timeout))

    def __repr__(self) -> str:
        return f"Queue({self.name!r})"

    # -- enqueueing ------------------------------------------------------------------------------
    @staticmethod
    def prepare_data(func: Callable[..., Any] | str, args: Sequence[Any] | None = None,
                     kwargs: dict[str, Any] | None = None, **options: Any) -> EnqueueData:
        """Prepare one job for :meth:`enqueue_many`; takes the same options as :meth:`enqueue`."""
        if options and not _PREPARE_OPTIONS.issuperset(options):
            unknown = ", ".join(sorted(set(options) - _PREPARE_OPTIONS))
            raise TypeError(f"unknown option(s) for prepare_data: {unknown}")
        return EnqueueData(func, args, kwargs, **options)

    def enqueue(self, f: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> Job:
        """Enqueue ``f(*args, **kwargs)``. The keywords in :data:`RESERVED_OPTIONS` are options of the
        job, not arguments of ``f``; to pass such names to ``f``, use :meth:`enqueue_call`, or RQ's explicit
        form ``enqueue(f, args=(...), kwargs={...}, ttl=30)``."""
        if not kwargs:  # the common call: no options to sort out
            return self._insert([EnqueueData(f, args)], None)[0]
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in RESERVED_OPTIONS}
        call_args, kwargs = _explicit(args, kwargs)
        return self.enqueue_call(f, args=call_args, kwargs=kwargs, **options)

    def _enqueue_scheduled(self, when: dict[str, Any], f: Callable[..., Any] | str, args: Sequence[Any],
                           kwargs: dict[str, Any]) -> Job:
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in RESERVED_OPTIONS}
        args, kwargs = _explicit(args, kwargs)
        return self.enqueue_call(f, args=args, kwargs=kwargs, **when, **options)

    def enqueue_call(self, func: Callable[..., Any] | str, args: Sequence[Any] | None = None,
                     kwargs: dict[str, Any] | None = None, *, connection: Any = None,
                     **options: Any) -> Job:
        """Enqueue ``func(*args, **kwargs)`` with options given as keywords."""
        data = self._prepare(func, args, kwargs, options)
        return self._insert([data], connection)[0]

    def enqueue_at(self, when: datetime, f: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> Job:
        """Enqueue ``f(*args, **kwargs)`` to run at ``when`` (a timezone-aware datetime)."""
        return self._enqueue_scheduled({"scheduled_at": when}, f, args, kwargs)

    def enqueue_in(self, delay: Duration, f: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> Job:
        """Enqueue ``f(*args, **kwargs)`` to run after ``delay`` (a timedelta, seconds, or a string such as
        ``"5m"``)."""
        return self._enqueue_scheduled({"scheduled_in": _options.delay("enqueue_in delay", delay)}, f, args, kwargs)

    def enqueue_many(self, items: Iterable[EnqueueData], connection: Any = None,
                     batch: Batch | None = None) -> list[Job]:
        """Enqueue many prepared jobs; all or none are written. Plain jobs go in by one streamed COPY:
        ``items`` may be a generator, consumed while the server writes the jobs that came before it.
        ``batch``: an open :class:`~pgqueue.Batch` whose members they become, in its transaction."""
        if batch is not None:
            return batch.enqueue_many(items, queue=self, connection=connection)
        if _tracing.tracer is not None and not _tracing.inside():  # pgqueue.tracing.instrument(): in a span
            return _tracing.enqueue_many(self, items, connection)
        return self._enqueue_many(items, connection, None)

    def _enqueue_many(self, items: Iterable[EnqueueData], connection: Any, batch_id: str | None,
                      stream: bool = False) -> list[Job]:
        """``stream``: ``connection`` is in a transaction of pgqueue's own (a Batch's), which an error rolls back:
        its items need not be refused before the first is written."""
        it = iter(items)
        if connection is not None and not stream:  # the caller's transaction: refuse bad items before writing
            taken = _take(it, None)
            _refuse_cycles(taken)
            it = iter(taken)
        with _gc_paused():
            first = _take(it, _COPY_CHUNK)
            if not first:
                return []
            if not first[0].plain:
                return self._insert(first + _take(it, None), connection, batch_id)
            return self._copy(first, it, connection, batch_id)

    def _prepare(self, func: Callable[..., Any] | str, args: Sequence[Any] | None,
                 kwargs: dict[str, Any] | None, options: dict[str, Any]) -> EnqueueData:
        unknown = set(options) - _PREPARE_OPTIONS
        if unknown:
            raise TypeError(f"unknown enqueue option(s): {', '.join(sorted(unknown))}")
        return EnqueueData(func, args, kwargs, **options)

    def _connection(self, connection: Any) -> psycopg.Connection[Any]:
        return shared_connection(self.dsn) if connection is None else caller_connection(connection)

    def _batch_params(self, batch: list[EnqueueData], ids: list[str], batch_id: str | None) -> dict[str, Any]:
        return {
            "ids": ids, "queues": [self.name] * len(batch),
            "func_names": [d.func_name for d in batch], "args": [d.args_json for d in batch],
            "kwargs": [d.kwargs_json for d in batch], "priorities": [d.priority for d in batch],
            "at_fronts": [d.at_front for d in batch], "descriptions": [d.description for d in batch],
            "metas": [d.meta_json for d in batch], "max_attempts": [d.max_attempts for d in batch],
            "retry_intervals": [_serialize.dumps(d.intervals) for d in batch],
            "timeouts": [d.timeout or self.default_timeout for d in batch],
            "result_ttls": [d.result_ttl for d in batch],
            "failure_ttls": [d.failure_ttl for d in batch], "ttls": [d.ttl for d in batch],
            "depends_on": [_serialize.dumps(d.depends_on) for d in batch],
            "unique_keys": [d.unique_key for d in batch], "scheduled_ats": [d.scheduled_at for d in batch],
            "delays": [d.scheduled_in for d in batch], "callbacks": [d.callbacks_json for d in batch],
            "retry_on": [None if d.retry_on is None else _serialize.dumps(list(d.retry_on)) for d in batch],
            "traceparents": [d.traceparent for d in batch],
            "allow_failures": [d.allow_dependency_failures for d in batch],
            "with_results": [d.with_dependency_result for d in batch], "batch_id": batch_id,
        }

    def _single_params(self, d: EnqueueData, id: str) -> dict[str, Any]:
        return {
            "id": id, "queue": self.name, "func_name": d.func_name, "args": d.args_json,
            "kwargs": d.kwargs_json, "priority": d.priority, "description": d.description,
            "meta": d.meta_json, "max_attempts": d.max_attempts, "retry_intervals": number_array(d.intervals),
            "timeout": d.timeout or self.default_timeout, "result_ttl": d.result_ttl,
            "failure_ttl": d.failure_ttl, "ttl": d.ttl, "scheduled_at": d.scheduled_at, "delay": d.scheduled_in,
            "traceparent": d.traceparent,
        }

    def _replace_params(self, d: EnqueueData, id: str) -> dict[str, Any]:
        return {"id": id, "unique_key": d.unique_key, "func_name": d.func_name, "args": d.args_json,
                "kwargs": d.kwargs_json, "scheduled_at": d.scheduled_at, "delay": d.scheduled_in}

    def _insert(self, batch: list[EnqueueData], connection: Any, batch_id: str | None = None) -> list[Job]:
        """Insert ``batch`` (members of the batch ``batch_id`` if given: in its transaction, ``connection``)."""
        if _tracing.tracer is not None and not _tracing.inside():  # pgqueue.tracing.instrument(): in a span
            return _tracing.insert(self, batch, connection, batch_id)
        if len(batch) > 1:  # before anything is written (a COPY before this is in a transaction of ours)
            _refuse_cycles(batch)
        caller = connection is not None
        with translate_errors(self.dsn):
            conn = self._connection(connection)
            if len(batch) == 1 and batch[0].simple and batch_id is None:  # enqueue(f, *args): the shortest
                d, id, timeout = batch[0], new_id(), self.default_timeout
                at = _store.insert_simple_job(conn, caller, id=id, queue=self.name, func_name=d.func_name,
                                              args=d.args_json, timeout=timeout).enqueued_at
                return [d.to_job(id, self.name, self.dsn, timeout, JobStatus.QUEUED, at, at, 0)]
            ids = [d.id if d.id is not None else new_id() for d in batch]
            jobs: list[Job | None] = [None] * len(batch)
            pending: Sequence[int] = range(len(batch))
            for _ in range(_CONFLICT_ATTEMPTS):
                pending = self._insert_some(conn, caller, batch, ids, pending, jobs, batch_id)
                if not pending:
                    return jobs  # type: ignore[return-value]  # every one filled in
        d, id = batch[pending[0]], ids[pending[0]]
        held = f"unique_key {d.unique_key!r}" if d.unique_key else f"job_id {id!r}"
        raise PgQueueError(
            f"enqueue gave up on job {id} after {_CONFLICT_ATTEMPTS} attempts: each time its {held} was held by "
            "a job that had ended (or was deleted) before it could be read, as if that key's jobs ended as fast "
            "as they are enqueued; retry later")

    def _insert_some(self, conn: psycopg.Connection[Any], caller: bool, batch: list[EnqueueData], ids: list[str],
                     which: Sequence[int], jobs: list[Job | None], batch_id: str | None = None) -> list[int]:
        """Insert ``batch[i]`` for each i in ``which`` (one statement) and fill in ``jobs[i]``: the new job,
        or the one it conflicted with (ON CONFLICT: the job with its id, or the live job with its unique key).
        Returns the i whose conflicting job ended before it could be read: nothing blocks them now, so the
        caller inserts them again. ON CONFLICT DO NOTHING raises nothing, so in a caller's transaction the
        statement after it runs as usual (no savepoint needed)."""
        part = [batch[i] for i in which]
        part_ids = [ids[i] for i in which]
        one = part[0]
        if len(part) == 1 and not (one.depends_on or one.unique_key or one.at_front or one.extras or batch_id):
            inserted = _store.insert_job(conn, caller, self._single_params(one, part_ids[0]))
        else:
            inserted = _store.insert_jobs(conn, self._batch_params(part, part_ids, batch_id))
        rows = {r.id: r for r in inserted}
        again = []
        for i in which:
            data, id = batch[i], ids[i]
            row = rows.get(id)
            if row is not None:
                jobs[i] = data.to_job(id, self.name, self.dsn, data.timeout or self.default_timeout,
                                      JobStatus(row.status), row.enqueued_at, row.scheduled_at, row.priority)
                continue
            # Read on the same connection: the job may be in the caller's uncommitted transaction.
            found = _store.replace_unique(conn, caller, self._replace_params(data, id)) if data.replace else None
            found = found or _store.find_live_duplicate(conn, caller, id=id, unique_key=data.unique_key)
            if found is None:
                again.append(i)
            else:
                jobs[i] = existing = Job(found.id, self.dsn)
                existing._load_row(found)
        return again

    def _copy(self, first: list[EnqueueData], more: Iterator[EnqueueData], connection: Any,
              batch_id: str | None = None) -> list[Job]:
        """COPY ``first``, then ``more`` in chunks, building each chunk's Jobs while the server writes it.
        From the first job that COPY cannot write (see EnqueueData.plain) on, the rest go to _insert.
        Members of the batch ``batch_id`` go by the same COPYs with its id (in its transaction)."""
        if connection is None:
            with own_connection(self.dsn) as conn:
                return self._copy_on(conn, first, more, batch_id)
        return self._copy_on(caller_connection(connection), first, more, batch_id)

    def _copy_on(self, conn: psycopg.Connection[Any], first: list[EnqueueData],
                 more: Iterator[EnqueueData], batch_id: str | None = None) -> list[Job]:
        # An autocommit connection outside a transaction (ours, or a caller's): one transaction of our own.
        # A caller's open transaction: joined, never committed here (psycopg's transaction() would COMMIT
        # if the caller had not started one yet).
        own = conn.autocommit and conn.info.transaction_status == _IDLE
        txn = conn.transaction() if own else contextlib.nullcontext()
        name, dsn, queue, default = self.name, self.dsn, _copy.text_field(self.name), self.default_timeout
        jobs: list[Job] = []
        rest: list[EnqueueData] = []
        with translate_errors(self.dsn):
            with txn, conn.cursor() as cur:
                # The wake-up is sent at commit; now() is the transaction's, the rows' enqueued_at.
                now = _store.wake_queues(conn, [name]).now
                queued, scheduled = JobStatus.QUEUED, JobStatus.SCHEDULED
                # Jobs without options go by the five-column COPY until one with options comes; from
                # there on, the sixteen-column one; from the first job COPY cannot write on, _insert.
                chunk, simple = first, first[0].simple
                while chunk:
                    line = _copy.simple_line if simple else _copy.plain_line
                    if batch_id is not None:
                        line = _copy.member_line(line, batch_id)
                    with (_store.copy_jobs(cur, simple) if batch_id is None
                          else _store_workflows.copy_batch_jobs(cur, simple)) as copy:
                        while chunk:
                            for i, d in enumerate(chunk):
                                if not (d.simple if simple else d.plain):
                                    chunk, rest = chunk[:i], chunk[i:]
                                    break
                            if not chunk:  # the chunk began with a job this COPY cannot write
                                break
                            ids = new_ids(len(chunk))
                            timeouts = [d.timeout or default for d in chunk]
                            copy.write("".join(map(line, chunk, ids, itertools.repeat(queue), timeouts)))
                            jobs += [d.to_job(i, name, dsn, t, scheduled if d.scheduled_at else queued, now,
                                              d.scheduled_at or now, d.priority)
                                     for d, i, t in zip(chunk, ids, timeouts, strict=True)]
                            chunk = [] if rest else _take(more, _COPY_CHUNK)
                    if simple and rest and rest[0].plain:  # a job with options: go on with the wide COPY
                        chunk, rest, simple = rest, [], False
                if batch_id is not None:  # the batch counts the members COPYed
                    _store_workflows.add_batch_members(conn, batch_id, len(jobs))
                if rest:
                    jobs += self._insert(rest + _take(more, None), conn, batch_id)
        return jobs

    # -- looking ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return True

    @property
    def count(self) -> int:
        """The number of jobs in this queue whose status is ``queued``."""
        with translate_errors(self.dsn):
            return _store.queue_count(shared_connection(self.dsn), self.name)

    def get_job_ids(self, offset: int = 0, length: int = -1) -> list[str]:
        """Ids of queued jobs in the order workers will take them."""
        with translate_errors(self.dsn):
            return _store.queue_job_ids(shared_connection(self.dsn), self.name, offset, None if length < 0 else length)

    @property
    def job_ids(self) -> list[str]:
        return self.get_job_ids()

    @property
    def jobs(self) -> list[Job]:
        """The queued jobs, in the order workers will take them."""
        return [job for job in (self.fetch_job(i) for i in self.job_ids) if job is not None]

    def fetch_job(self, job_id: str) -> Job | None:
        """The job with this id, or ``None`` if there is none."""
        try:
            return Job.fetch(job_id, self.dsn)
        except NoSuchJobError:
            return None

    def empty(self) -> int:
        """Delete this queue's queued jobs; returns how many. The jobs that depend on them are canceled
        (unless they allow dependency failures), and their batches count them as canceled."""
        with translate_errors(self.dsn), own_connection(self.dsn) as conn, conn.transaction():
            row = _store.queue_empty(conn, self.name)
            _store.notify_done(conn, _store_workflows.cancel_all_dependents(conn, row.deleted, row.dependents_canceled))
            return row.jobs

    # -- RQ's inspection API: every queue, a job's place, the registries -------------------------
    @classmethod
    def all(cls, dsn: Any = None, *, connection: Any = None, **rq_options: Any) -> list[Queue]:
        """Every queue that has a job (of any status), by name. Reads the whole jobs table: its cost grows
        with the history kept (docs/jobs-and-registries.md). ``dsn`` or RQ's ``connection``: a URL or a
        :class:`pgqueue.Connection`."""
        dsn = database(dsn, connection, where="Queue.all()")
        refuse("Queue.all", rq_options, QUEUE_OPTIONS)
        with translate_errors(dsn):
            return [cls(name, dsn) for name in _store.queue_names(shared_connection(dsn))]

    def get_job_position(self, job_or_id: Job | str) -> int | None:
        """The job's place (0 first) among this queue's queued jobs; ``None`` unless it is queued here."""
        job_id = job_or_id.id if isinstance(job_or_id, Job) else str(job_or_id)
        with translate_errors(self.dsn):
            return _store.job_position(shared_connection(self.dsn), job_id, self.name)

    @property
    def started_job_registry(self) -> StartedJobRegistry:
        from .registry import StartedJobRegistry

        return StartedJobRegistry(queue=self)

    @property
    def finished_job_registry(self) -> FinishedJobRegistry:
        from .registry import FinishedJobRegistry

        return FinishedJobRegistry(queue=self)

    @property
    def failed_job_registry(self) -> FailedJobRegistry:
        from .registry import FailedJobRegistry

        return FailedJobRegistry(queue=self)

    @property
    def deferred_job_registry(self) -> DeferredJobRegistry:
        from .registry import DeferredJobRegistry

        return DeferredJobRegistry(queue=self)

    @property
    def scheduled_job_registry(self) -> ScheduledJobRegistry:
        from .registry import ScheduledJobRegistry

        return ScheduledJobRegistry(queue=self)

    @property
    def canceled_job_registry(self) -> CanceledJobRegistry:
        from .registry import CanceledJobRegistry

        return CanceledJobRegistry(queue=self)

    # -- pausing ---------------------------------------------------------------------------------
    def pause(self, duration: Duration | None = None) -> datetime | None:
        """Stop workers from starting this queue's jobs (those running finish), until :meth:`resume`, or
        until ``duration`` has passed (seconds, a timedelta or a string such as ``"30m"``). Jobs can still
        be enqueued. Returns when the pause ends, by the database's clock (None: when resumed)."""
        return suspension.pause_scopes(self.dsn, self.name, duration)

    def resume(self) -> bool:
        """End this queue's pause; returns whether it was paused."""
        return bool(suspension.resume_scopes(self.dsn, [self.name]))

    @property
    def is_paused(self) -> bool:
        """Whether this queue is paused (not whether workers are suspended: see pgqueue.is_suspended)."""
        return suspension.paused(self.dsn, self.name)
