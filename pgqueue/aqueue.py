"""AsyncQueue: enqueueing and waiting from asyncio code, on psycopg's ``AsyncConnection``.

A thin layer over the sync API: the same prepared jobs (:class:`~pgqueue.queue.EnqueueData`: options checked
and arguments serialised the same way, with the same errors), the same statement for each kind of job, the
same COPY lines, the same retries of a conflicting insert, the same ``Job`` objects. Only the waiting
differs: on the event loop instead of a socket, through the async gateway (:mod:`pgqueue._store.aio`) on
the loop's own connection (:mod:`pgqueue._adb`) or the caller's. See docs/async.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import psycopg

from . import _config, _copy
from ._adb import AsyncConn, aconnect, caller_aconnection, own_aconnection, shared_aconnection
from ._db import translate_errors
from ._ids import new_id, new_ids
from ._notify import check_queue_name
from ._options import delay as _delay
from ._store import aio as _astore
from .exceptions import NoSuchJobError, PgQueueError
from .job import WAIT_POLL_INTERVAL, Job, JobStatus
from .queue import (
    _CONFLICT_ATTEMPTS,
    _COPY_CHUNK,
    RESERVED_OPTIONS,
    Duration,
    EnqueueData,
    Queue,
    _gc_paused,
    _refuse_cycles,
    _take,
)

_IDLE = psycopg.pq.TransactionStatus.IDLE
_RECHECK = 5.0  # seconds: wait() looks at the job again after this long without a notification


class _Items:
    """enqueue_many's items, from an iterable or an async iterable, taken a chunk at a time."""

    def __init__(self, items: Iterable[EnqueueData] | AsyncIterable[EnqueueData]) -> None:
        self._sync: Iterator[EnqueueData] | None = None
        self._async: AsyncIterator[EnqueueData] | None = None
        if isinstance(items, AsyncIterable):
            self._async = aiter(items)
        else:
            self._sync = iter(items)

    async def take(self, n: int | None) -> list[EnqueueData]:
        """The next ``n`` items (all with None), refused unless every one is an EnqueueData."""
        if self._async is None:
            assert self._sync is not None
            return _take(self._sync, n)
        taken: list[EnqueueData] = []
        while n is None or len(taken) < n:
            try:
                taken.append(await anext(self._async))
            except StopAsyncIteration:
                break
        return _take(iter(taken), None)


class AsyncQueue:
    """A named queue of jobs in PostgreSQL, for asyncio code: :class:`~pgqueue.Queue`'s enqueueing as
    coroutines, and ``fetch_job``, ``cancel`` and ``wait`` for the jobs.

    ``connection=`` joins the caller's open transaction, as with Queue: a psycopg ``AsyncConnection``, or
    SQLAlchemy's ``AsyncConnection`` or ``AsyncSession`` on ``create_async_engine("postgresql+psycopg://...")``.
    Otherwise each running event loop has connections of its own (see :mod:`pgqueue._adb`).
    """

    def __init__(self, name: str = "default", dsn: str | None = None, *,
                 default_timeout: Duration | None = None) -> None:
        self._queue = Queue(check_queue_name(name), dsn, default_timeout=default_timeout)  # its parameters
        self.name, self.dsn, self.default_timeout = name, dsn, self._queue.default_timeout

    def __repr__(self) -> str:
        return f"AsyncQueue({self.name!r})"

    prepare_data = staticmethod(Queue.prepare_data)

    # -- enqueueing ------------------------------------------------------------------------------
    async def enqueue(self, f: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> Job:
        """Enqueue ``f(*args, **kwargs)``: :meth:`pgqueue.Queue.enqueue`, with the same reserved keywords."""
        if not kwargs:
            return (await self._insert([EnqueueData(f, args)], None))[0]
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in RESERVED_OPTIONS}
        return await self.enqueue_call(f, args=args, kwargs=kwargs, **options)

    async def enqueue_call(self, func: Callable[..., Any] | str, args: Sequence[Any] | None = None,
                           kwargs: dict[str, Any] | None = None, *, connection: Any = None, **options: Any) -> Job:
        """Enqueue ``func(*args, **kwargs)`` with options given as keywords (:meth:`pgqueue.Queue.enqueue_call`)."""
        data = self._queue._prepare(func, args, kwargs, options)
        return (await self._insert([data], connection))[0]

    async def _enqueue_scheduled(self, when: dict[str, Any], f: Callable[..., Any] | str, args: Sequence[Any],
                                 kwargs: dict[str, Any]) -> Job:
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in RESERVED_OPTIONS}
        return await self.enqueue_call(f, args=args, kwargs=kwargs, **when, **options)

    async def enqueue_at(self, when: datetime, f: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> Job:
        """Enqueue ``f(*args, **kwargs)`` to run at ``when`` (a timezone-aware datetime)."""
        return await self._enqueue_scheduled({"scheduled_at": when}, f, args, kwargs)

    async def enqueue_in(self, delay: Duration, f: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> Job:
        """Enqueue ``f(*args, **kwargs)`` to run after ``delay`` (seconds, a timedelta or a string)."""
        return await self._enqueue_scheduled({"scheduled_in": _delay("enqueue_in delay", delay)}, f, args, kwargs)

    async def enqueue_many(self, items: Iterable[EnqueueData] | AsyncIterable[EnqueueData],
                           connection: Any = None) -> list[Job]:
        """Enqueue many prepared jobs (:meth:`pgqueue.Queue.enqueue_many`); all or none are written. ``items``
        may be an iterable or an async iterable (an async generator), consumed while the server writes the
        jobs that came before."""
        source = _Items(items)
        if connection is not None:  # the caller's transaction: refuse bad items before writing in it
            taken = await source.take(None)
            _refuse_cycles(taken)
            source = _Items(taken)
        with _gc_paused():
            first = await source.take(_COPY_CHUNK)
            if not first:
                return []
            if not first[0].plain:
                return await self._insert(first + await source.take(None), connection)
            if connection is None:
                async with own_aconnection(self.dsn) as conn:
                    return await self._copy_on(conn, first, source)
            with translate_errors(self.dsn):
                conn = await caller_aconnection(connection)
            return await self._copy_on(conn, first, source)

    async def _connection(self, connection: Any) -> AsyncConn:
        return await (shared_aconnection(self.dsn) if connection is None else caller_aconnection(connection))

    async def _insert(self, batch: list[EnqueueData], connection: Any) -> list[Job]:
        """Queue._insert, awaited: the same statements for the same kinds of batch."""
        if len(batch) > 1:
            _refuse_cycles(batch)
        caller = connection is not None
        with translate_errors(self.dsn):
            conn = await self._connection(connection)
            if len(batch) == 1 and batch[0].simple:
                d, id, timeout = batch[0], new_id(), self.default_timeout
                at = (await _astore.insert_simple_job(conn, caller, id=id, queue=self.name, func_name=d.func_name,
                                                      args=d.args_json, timeout=timeout)).enqueued_at
                return [d.to_job(id, self.name, self.dsn, timeout, JobStatus.QUEUED, at, at, 0)]
            ids = [d.id if d.id is not None else new_id() for d in batch]
            jobs: list[Job | None] = [None] * len(batch)
            pending: Sequence[int] = range(len(batch))
            for _ in range(_CONFLICT_ATTEMPTS):
                pending = await self._insert_some(conn, caller, batch, ids, pending, jobs)
                if not pending:
                    return jobs  # type: ignore[return-value]
        d, id = batch[pending[0]], ids[pending[0]]
        held = f"unique_key {d.unique_key!r}" if d.unique_key else f"job_id {id!r}"
        raise PgQueueError(
            f"enqueue gave up on job {id} after {_CONFLICT_ATTEMPTS} attempts: each time its {held} was held by "
            "a job that had ended (or was deleted) before it could be read, as if that key's jobs ended as fast "
            "as they are enqueued; retry later")

    async def _insert_some(self, conn: AsyncConn, caller: bool, batch: list[EnqueueData], ids: list[str],
                           which: Sequence[int], jobs: list[Job | None]) -> list[int]:
        """Queue._insert_some, awaited: insert ``batch[i]`` for each i in ``which``, fill in ``jobs[i]``, and
        return the i whose conflicting job ended before it could be read."""
        part = [batch[i] for i in which]
        part_ids = [ids[i] for i in which]
        q = self._queue
        if len(part) == 1 and not (part[0].depends_on or part[0].unique_key or part[0].at_front or part[0].extras):
            inserted = await _astore.insert_job(conn, caller, q._single_params(part[0], part_ids[0]))
        else:
            inserted = await _astore.insert_jobs(conn, q._batch_params(part, part_ids, None))
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
            found = await _astore.replace_unique(conn, caller, q._replace_params(data, id)) if data.replace else None
            found = found or await _astore.find_live_duplicate(conn, caller, id=id, unique_key=data.unique_key)
            if found is None:
                again.append(i)
            else:
                jobs[i] = existing = Job(found.id, self.dsn)
                existing._load_row(found)
        return again

    async def _copy_on(self, conn: AsyncConn, first: list[EnqueueData], more: _Items) -> list[Job]:
        """Queue._copy_on, awaited: COPY ``first``, then ``more`` in chunks; from the first job COPY cannot
        write on, the rest go to _insert. A caller's open transaction is joined, never committed here."""
        own = conn.autocommit and conn.info.transaction_status == _IDLE
        txn = conn.transaction() if own else contextlib.nullcontext()
        name, dsn, queue, default = self.name, self.dsn, _copy.text_field(self.name), self.default_timeout
        jobs: list[Job] = []
        rest: list[EnqueueData] = []
        with translate_errors(self.dsn):
            async with txn, conn.cursor() as cur:
                now = (await _astore.wake_queues(conn, [name])).now
                queued, scheduled = JobStatus.QUEUED, JobStatus.SCHEDULED
                chunk, simple = first, first[0].simple
                while chunk:
                    line = _copy.simple_line if simple else _copy.plain_line
                    async with _astore.copy_jobs(cur, simple) as copy:
                        while chunk:
                            for i, d in enumerate(chunk):
                                if not (d.simple if simple else d.plain):
                                    chunk, rest = chunk[:i], chunk[i:]
                                    break
                            if not chunk:
                                break
                            ids = new_ids(len(chunk))
                            timeouts = [d.timeout or default for d in chunk]
                            await copy.write("".join(map(line, chunk, ids, itertools.repeat(queue), timeouts)))
                            jobs += [d.to_job(i, name, dsn, t, scheduled if d.scheduled_at else queued, now,
                                              d.scheduled_at or now, d.priority)
                                     for d, i, t in zip(chunk, ids, timeouts, strict=True)]
                            chunk = [] if rest else await more.take(_COPY_CHUNK)
                    if simple and rest and rest[0].plain:
                        chunk, rest, simple = rest, [], False
                if rest:
                    jobs += await self._insert(rest + await more.take(None), conn)
        return jobs

    # -- jobs and the queue ----------------------------------------------------------------------
    async def count(self) -> int:
        """The number of this queue's jobs whose status is ``queued`` (Queue.count)."""
        with translate_errors(self.dsn):
            return await _astore.queue_count(await shared_aconnection(self.dsn), self.name)

    async def fetch_job(self, job_id: str) -> Job | None:
        """The job with this id (in any queue), freshly read, or ``None`` if there is none."""
        with translate_errors(self.dsn):
            row = await _astore.fetch_job(await shared_aconnection(self.dsn), str(job_id))
        if row is None:
            return None
        job = Job(row.id, self.dsn)
        job._load_row(row)
        return job

    async def _fetch(self, job_id: str) -> Job:
        job = await self.fetch_job(job_id)
        if job is None:
            raise NoSuchJobError(f"no job with id {job_id!r}")
        return job

    async def cancel(self, job: Job | str) -> bool:
        """Cancel the job (a Job or its id) if it has not ended, as ``job.cancel()`` does; returns whether it
        was canceled. A Job passed in is reloaded."""
        job_id = job.id if isinstance(job, Job) else str(job)
        with translate_errors(self.dsn):
            done = await _astore.cancel_job(await shared_aconnection(self.dsn), job_id)
        if isinstance(job, Job):
            fresh = await self._fetch(job_id)
            job.__dict__.update(fresh.__dict__)
        return done

    async def wait(self, job: Job | str, timeout: float | None = None) -> Any:
        """Wait until the job (a Job or its id) ends and return its result, as ``job.wait()`` does: woken by
        the worker's NOTIFY on an async connection of its own (to ``PGQUEUE_LISTEN_DATABASE_URL`` if set), or
        in transaction-pooling mode without that URL by looking at its status every
        :data:`pgqueue.job.WAIT_POLL_INTERVAL` seconds. Raises :class:`pgqueue.JobFailed` if it failed or was
        canceled, ``TimeoutError`` once ``timeout`` seconds have passed, :class:`pgqueue.NoSuchJobError` if
        there is no such job. Other tasks of the loop run meanwhile."""
        job_id = job.id if isinstance(job, Job) else str(job)
        deadline = None if timeout is None else time.monotonic() + timeout
        listen_dsn = _config.listen_dsn()
        if listen_dsn is None and _config.transaction_pooling():
            return await self._poll_until_ended(job_id, deadline, timeout)
        conn = await aconnect(listen_dsn or self.dsn, role="wait", pooled=False)
        try:
            with translate_errors(self.dsn):
                await _astore.listen_done(conn)
                while True:
                    fresh = await self._fetch(job_id)  # after LISTEN: an end between the two is not missed
                    if fresh.status.is_final:
                        return fresh._outcome()
                    if not await _notified(conn, job_id, deadline):
                        raise TimeoutError(f"job {job_id} did not end within {timeout} seconds")
        finally:
            await conn.close()

    async def _poll_until_ended(self, job_id: str, deadline: float | None, timeout: float | None) -> Any:
        while True:
            fresh = await self._fetch(job_id)
            if fresh.status.is_final:
                return fresh._outcome()
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"job {job_id} did not end within {timeout} seconds")
            await asyncio.sleep(WAIT_POLL_INTERVAL if remaining is None else min(WAIT_POLL_INTERVAL, remaining))


async def _notified(conn: AsyncConn, job_id: str, deadline: float | None) -> bool:
    """Wait for a pgqueue_done notification naming ``job_id`` (True), at most until ``deadline`` (False then).
    True too after a few seconds without one: the caller looks again, in case a notification was lost."""
    remaining = None if deadline is None else deadline - time.monotonic()
    if remaining is not None and remaining <= 0:
        return False
    wait = _RECHECK if remaining is None else min(remaining, _RECHECK)
    async with contextlib.aclosing(conn.notifies(timeout=wait)) as notes:  # closed: it holds the conn's lock
        async for note in notes:
            if job_id in note.payload.split(","):
                return True
    return remaining is None or remaining > _RECHECK
