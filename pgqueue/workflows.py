"""Workflows: batches of jobs with callbacks, and chains (docs/workflows.md).

A :class:`Batch` is created, filled and closed in one transaction (a ``with`` block): its members exist, and
count, only once it commits. Each member's end (finished, failed for good, canceled, expired, deleted) is
counted in the statement that records it, and the statement that records the end of the last one enqueues
the batch's callbacks: jobs like any other, enqueued once (pgqueue/sql/workflows.sql says how).
:func:`chain` enqueues jobs that run one after the other, each passed the result of the one before if asked.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import psycopg

from . import _callbacks, _options
from ._db import caller_connection, own_connection, shared_connection, translate_errors
from ._ids import new_id
from ._store import workflows as _store_workflows
from .exceptions import InvalidJobOperation, NoSuchJobError, PgQueueError
from .job import Job, JobStatus
from .queue import RESERVED_OPTIONS, EnqueueData, Queue

_IDLE = psycopg.pq.TransactionStatus.IDLE

#: The callback options of a Batch, and which end of the batch each one is for.
CALLBACKS = {"on_success": "success", "on_failure": "failure", "on_complete": "complete"}

#: Members per page of Batch.members() and iter_members(), unless told otherwise.
PAGE = 1000


class NoSuchBatchError(PgQueueError, LookupError):
    """No batch has this id (it never existed, or was deleted with its last job)."""


def _callback_spec(option: str, value: Any, queue: Queue) -> dict[str, Any]:
    """The callback given as ``option`` as pgqueue.batches.callbacks stores it: a job to insert, its id drawn
    now. ``value``: a module-level function or its dotted path, a :class:`~pgqueue.Callback` (its timeout is
    the job's), or ``Queue.prepare_data(f, args=..., **options)`` for arguments and options of its own."""
    spec: dict[str, Any] = {"on": CALLBACKS[option], "id": new_id(), "queue": queue.name,
                            "timeout": queue.default_timeout, "args": [], "kwargs": {}}
    if isinstance(value, _callbacks.Callback):
        spec["func"], spec["timeout"] = value.name, value.timeout
    elif isinstance(value, EnqueueData):
        spec.update(_prepared(option, value, queue))
    else:
        spec["func"] = _callbacks.callback_name(value, f"Batch({option}=...)")
    if math.isinf(spec["timeout"]):
        spec["timeout"] = -1.0  # no timeout, as job_timeout=-1 stores it
    return spec


def _prepared(option: str, d: EnqueueData, queue: Queue) -> dict[str, Any]:
    """The job that ``Queue.prepare_data(...)`` describes, as a callback: refused if it has an option that
    only makes sense for a job enqueued now."""
    unfit = [name for name, given in (
        ("job_id", d.custom_id), ("depends_on", bool(d.depends_on)), ("unique_key", d.unique_key is not None),
        ("at_front", d.at_front), ("scheduled_at", d.scheduled_at is not None),
        ("scheduled_in", d.scheduled_in is not None),
        ("on_success/on_failure/on_stopped", d.callbacks_json is not None),
        ("allow_dependency_failures", d.allow_dependency_failures)) if given]
    if unfit:
        raise ValueError(f"Batch({option}=prepare_data(...)) cannot take {', '.join(unfit)}: a callback is enqueued "
                         "when the batch ends, with a job id of its own; leave these out")
    return {"func": d.func_name, "args": json.loads(d.args_json), "kwargs": json.loads(d.kwargs_json),
            "timeout": d.timeout or queue.default_timeout, "max_attempts": d.max_attempts,
            "retry_intervals": list(d.intervals), "retry_on": None if d.retry_on is None else list(d.retry_on),
            "result_ttl": d.result_ttl, "failure_ttl": d.failure_ttl, "ttl": d.ttl, "priority": d.priority,
            "description": d.description, "meta": json.loads(d.meta_json)}


class Batch:
    """A set of jobs whose end sets off callbacks: ``on_success`` once every member finished, ``on_failure``
    once every member ended and at least one did not finish (failed for good, or was canceled, expired or
    deleted), ``on_complete`` once every member ended, either way.

    ::

        with Batch(q, on_complete=report, description="import 42") as batch:
            batch.enqueue(load, "a.csv")
            batch.enqueue_many(Queue.prepare_data(load, args=(f,)) for f in files)
        batch.id   # the callback is called report(batch.id)

    The ``with`` block is one transaction (``connection=``: the caller's, which it joins and never commits):
    the batch and its members are written when it commits, and nothing of them if it raises. It closes the
    batch: no member can be added afterwards, and from then on the statement that records the end of its
    last member enqueues its callbacks, once, in the same transaction. So a member that ends before the
    others are enqueued, a worker killed in the middle, two workers ending the last members at the same
    moment: none of them can fire a callback twice, or never.

    A callback is a job, enqueued on ``queue``: a module-level function (or its dotted path), called with
    the batch's id, ``f(batch_id)``; a :class:`~pgqueue.Callback` to give it a timeout; or
    ``Queue.prepare_data(f, args=(...), retry=3, ...)`` for arguments after the batch id and options (it
    fails and is retried like any job). ``Batch.fetch(batch_id)`` tells the callback how the members ended.
    ``queue``: where :meth:`enqueue` puts members (``Queue.enqueue_many(items, batch=batch)`` puts them on
    any queue) and where the callbacks go.
    """

    def __init__(self, queue: Queue | str = "default", *, on_success: Any = None, on_failure: Any = None,
                 on_complete: Any = None, description: str | None = None, dsn: str | None = None,
                 connection: Any = None, id: str | None = None) -> None:
        self.queue = queue if isinstance(queue, Queue) else Queue(queue, dsn)
        self.dsn = dsn if dsn is not None else self.queue.dsn
        self.id = new_id() if id is None else _options.key("Batch id", id)
        self.description = description
        options = {"on_success": on_success, "on_failure": on_failure, "on_complete": on_complete}
        # Built now, so that a callback a worker could not import is refused before anything is written.
        self._callbacks = [_callback_spec(o, v, self.queue) for o, v in options.items() if v is not None]
        self._connection = connection
        self._conn: psycopg.Connection[Any] | None = None
        self._stack: contextlib.ExitStack | None = None
        self.total = self.pending = self.finished = self.failed = self.canceled = 0
        self.created_at: datetime | None = None
        self.closed_at: datetime | None = None
        self.completed_at: datetime | None = None
        self.callback_ids: list[str] = []
        self._state = "new"  # new, open (in its with block), closed (or fetched)

    def __repr__(self) -> str:
        return (f"<Batch {self.id} {self.status}: {self.finished} finished, {self.failed} failed, "
                f"{self.canceled} canceled, {self.pending} pending of {self.total}>")

    # -- filling ---------------------------------------------------------------------------------
    def __enter__(self) -> Batch:
        if self._state != "new":
            raise InvalidJobOperation(f"batch {self.id} was opened already: a batch is filled in one with block")
        stack = contextlib.ExitStack()
        try:
            with translate_errors(self.dsn):
                if self._connection is None:
                    conn = stack.enter_context(own_connection(self.dsn))
                else:
                    conn = caller_connection(self._connection)
                if conn.autocommit and conn.info.transaction_status == _IDLE:  # ours, or a caller's outside one
                    stack.enter_context(conn.transaction())
                callbacks = json.dumps(self._callbacks) if self._callbacks else None
                self.created_at = _store_workflows.create_batch(conn, self.id, self.description, callbacks).created_at
        except BaseException:
            stack.close()
            raise
        self._conn, self._stack, self._state = conn, stack, "open"
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        stack, conn = self._stack, self._conn
        assert stack is not None and conn is not None
        self._stack, self._conn = None, None
        if exc is not None:  # a transaction of ours rolls back; a caller's is the caller's to roll back
            self._state = "failed"
            stack.__exit__(kind, exc, tb)
            return
        try:
            with translate_errors(self.dsn):
                _store_workflows.close_batch(conn, self.id)
                row = _store_workflows.fetch_batch(conn, self.id)
        except BaseException as error:
            self._state = "failed"
            stack.__exit__(type(error), error, error.__traceback__)
            raise
        stack.close()  # commits a transaction of ours
        self._state = "closed"
        if row is not None:
            self._load(row)

    def _open_connection(self) -> psycopg.Connection[Any]:
        if self._state != "open" or self._conn is None:
            raise InvalidJobOperation(
                f"batch {self.id} is {'closed' if self._state == 'closed' else 'not open'}: members are enqueued "
                "inside its with block (with Batch(...) as batch: batch.enqueue(...)), and none after it")
        return self._conn

    def enqueue(self, f: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> Job:
        """Enqueue ``f(*args, **kwargs)`` on the batch's queue as a member, with enqueue's options."""
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in RESERVED_OPTIONS}
        return self.enqueue_call(f, args=args, kwargs=kwargs, **options)

    def enqueue_call(self, func: Callable[..., Any] | str, args: Sequence[Any] | None = None,
                     kwargs: dict[str, Any] | None = None, **options: Any) -> Job:
        """Enqueue ``func(*args, **kwargs)`` as a member, with options given as keywords (as enqueue_call)."""
        if "connection" in options:
            raise TypeError("Batch.enqueue takes no connection=: members go in the batch's transaction "
                            "(give Batch(connection=...) instead)")
        data = self.queue._prepare(func, args, kwargs, options)
        conn = self._open_connection()
        return self.queue._insert([data], conn, self.id)[0]

    def enqueue_many(self, items: Iterable[EnqueueData], queue: Queue | str | None = None,
                     connection: Any = None) -> list[Job]:
        """Enqueue prepared jobs as members, on ``queue`` (default: the batch's), streamed as
        ``Queue.enqueue_many`` streams them (plain jobs by COPY): any number of them."""
        conn = self._open_connection()
        if connection is not None and caller_connection(connection) is not conn:
            raise ValueError("a batch's members go in the batch's transaction: give the connection to Batch(...), "
                             "not to enqueue_many")
        target = self.queue if queue is None else queue if isinstance(queue, Queue) else Queue(queue, self.dsn)
        # In a transaction of the batch's own, streamed: a bad item raises in the with block, which rolls back.
        return target._enqueue_many(items, conn, self.id, stream=self._connection is None)

    # -- reading ---------------------------------------------------------------------------------
    @classmethod
    def fetch(cls, id: str, dsn: str | None = None) -> Batch:
        """The batch with this id, its counters as they are now; :class:`NoSuchBatchError` if there is none."""
        batch = cls.__new__(cls)
        batch.id, batch.dsn, batch._state, batch._conn, batch._stack = id, dsn, "closed", None, None
        batch.refresh()
        return batch

    @classmethod
    def recent(cls, limit: int = 20, dsn: str | None = None) -> list[Batch]:
        """The newest ``limit`` batches, newest first (`pgqueue batches`)."""
        with translate_errors(dsn):
            rows = _store_workflows.list_batches(shared_connection(dsn), limit)
        found = []
        for row in rows:
            batch = cls.__new__(cls)
            batch.id, batch.dsn, batch._state, batch._conn, batch._stack = row.id, dsn, "closed", None, None
            batch.description, batch.total, batch.pending = row.description, row.total, row.pending
            batch.finished, batch.failed, batch.canceled = row.finished, row.failed, row.canceled
            batch.created_at, batch.closed_at, batch.completed_at = row.created_at, row.closed_at, row.completed_at
            batch.callback_ids, batch._callbacks = [], []
            found.append(batch)
        return found

    def refresh(self) -> None:
        """Read the batch's counters again."""
        with translate_errors(self.dsn):
            row = _store_workflows.fetch_batch(shared_connection(self.dsn), self.id)
        if row is None:
            raise NoSuchBatchError(f"no batch with id {self.id!r}")
        self._load(row)

    def _load(self, row: _store_workflows.BatchRow) -> None:
        self.description, self.total, self.pending = row.description, row.total, row.pending
        self.finished, self.failed, self.canceled = row.finished, row.failed, row.canceled
        self.created_at, self.closed_at, self.completed_at = row.created_at, row.closed_at, row.completed_at
        self.callback_ids = list(row.callback_ids or [])
        self._callbacks = json.loads(row.callbacks) if row.callbacks else []
        if not hasattr(self, "queue"):
            queue = self._callbacks[0]["queue"] if self._callbacks else "default"
            self.queue = Queue(queue, self.dsn)

    @property
    def status(self) -> str:
        """``open`` (being filled), ``running`` (members pending), ``finished`` (every member finished) or
        ``failed`` (every member ended, at least one without finishing); as last read."""
        if self.closed_at is None:
            return "open"
        if self.completed_at is None:
            return "running"
        return "finished" if self.finished == self.total else "failed"

    @property
    def is_complete(self) -> bool:
        """Whether every member has ended and the callbacks were enqueued (as last read)."""
        return self.completed_at is not None

    def members(self, status: JobStatus | str | None = None, after: str | None = None,
                limit: int = PAGE) -> list[Job]:
        """One page of the members, in the order they were enqueued: up to ``limit`` of them after the member
        ``after`` (a job id: the last of the page before; None: from the first), only those of ``status`` if
        given. :meth:`iter_members` reads them all, a page at a time."""
        position = None
        if after is not None:
            with translate_errors(self.dsn):
                position = _store_workflows.member_position(shared_connection(self.dsn), self.id, after)
            if position is None:
                raise NoSuchJobError(f"job {after!r} is not a member of batch {self.id}")
        return [job for job, _ in self._page(status, position, limit)]

    def iter_members(self, status: JobStatus | str | None = None, page: int = PAGE) -> Iterator[Job]:
        """Every member, in the order they were enqueued, read ``page`` at a time: a 100,000-member batch is
        never loaded whole, and each page costs the same."""
        position = None
        while True:
            found = self._page(status, position, page)
            yield from (job for job, _ in found)
            if len(found) < page:
                return
            position = found[-1][1]

    def _page(self, status: JobStatus | str | None, after: int | None, limit: int) -> list[tuple[Job, int]]:
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 100_000:
            raise ValueError(f"limit must be an int from 1 to 100000, not {limit!r}")
        wanted = None if status is None else JobStatus(status).value
        with translate_errors(self.dsn):
            rows = _store_workflows.batch_members(shared_connection(self.dsn), self.id, after=after, status=wanted,
                                                  limit=limit)
        found = []
        for row in rows:
            job = Job(row.id, self.dsn)
            job._load_row(row)  # type: ignore[arg-type]  # a JobRow, and its position
            found.append((job, row.position))
        return found

    def callback_jobs(self) -> list[Job]:
        """The callbacks enqueued when the batch ended (none before), as jobs; reads the batch again."""
        self.refresh()
        return [j for j in Job.fetch_many(self.callback_ids, self.dsn) if j is not None]


def chain(*items: EnqueueData, queue: Queue | str = "default", pass_result: bool = False,
          connection: Any = None, batch: Batch | None = None) -> list[Job]:
    """Enqueue ``items`` (made by ``Queue.prepare_data``) to run one after the other on ``queue``: each waits
    for the one before it (``depends_on``). With ``pass_result``, each gets the result of the one before as
    its first argument. A link that fails for good, or is canceled, cancels the links after it (the
    dependency failure policy; a link prepared with ``allow_dependency_failures=True`` runs anyway, passed
    None). One statement writes them all; the first may have dependencies of its own, the others not.
    ``batch``: an open Batch they become members of."""
    if not items:
        raise ValueError("chain() needs at least one job: chain(Queue.prepare_data(f, ...), ...)")
    if not all(isinstance(item, EnqueueData) for item in items):
        raise TypeError("chain() takes jobs made by Queue.prepare_data(f, args=..., ...)")
    for n, item in enumerate(items[1:], 2):
        if item.depends_on:
            raise ValueError(f"link {n} of the chain ({item.func_name}) has depends_on of its own: a link after the "
                             "first depends on the link before it only; give depends_on to the first link")
    links: list[EnqueueData] = []
    previous: str | None = None
    for item in items:
        link = copy.copy(item)
        link.simple = False
        if not link.custom_id:
            link.id, link.custom_id = new_id(), True
        if previous is not None:
            link.depends_on = [previous]
            link.with_dependency_result = bool(pass_result)
        links.append(link)
        previous = link.id
    target = queue if isinstance(queue, Queue) else Queue(queue, batch.dsn if batch is not None else None)
    return target.enqueue_many(links, connection=connection, batch=batch)

