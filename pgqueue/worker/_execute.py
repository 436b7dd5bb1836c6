"""Running one job: import its function by dotted path (honouring the allow-list), call it, turn the outcome
into what the supervisor records, then run the job's callback for that outcome, if it has one. Used by child
processes, by SimpleWorker and by Queue(is_async=False) alike: :func:`execute`."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import importlib
import inspect
import logging
import os
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import psycopg

from .. import _db, _notify, _progress, _serialize, _store
from .._callbacks import stored_callback
from .._db import connect
from ..exceptions import JobTimeoutError, PgQueueError, Snooze
from ..job import Job, JobStatus, _current_job, _PendingJob
from ..sql import number_array, text_array
from ._clock import _NO_CLOCK, _UNLIMITED, CANCELED, AbortJob, Clock, TimeUp, _running, timeout_message
from ._messages import CallbackEnd, CallbackStart, ExceptionHandler, Message, Outcome, Task, handed_over

if TYPE_CHECKING:
    from ._hooks import JobHooks

log = logging.getLogger("pgqueue.worker")

_cache: dict[str, Callable[..., Any]] = {}


class HandOver(AbortJob):
    """Raised in a worker's child process for a job whose function is a coroutine function: the worker's
    event-loop process runs it instead (pgqueue.worker._aexecute), with the job's other async jobs."""


# Whether this process hands coroutine jobs over (a worker's child process, when the worker runs async jobs
# in an event-loop process); elsewhere (SimpleWorker, Queue(is_async=False), --async-concurrency 0) each
# runs here, on an event loop of its own: see run_coroutine.
_hand_over = False


def hand_over_async(enabled: bool) -> None:
    global _hand_over
    _hand_over = enabled


def run_coroutine(coro: Any) -> Any:
    """Run an async job's coroutine to its end where jobs run one at a time: ``asyncio.run``, so each job
    gets a fresh event loop; in a thread of its own (with the job's context) if this thread runs a loop
    already (Queue(is_async=False) called from async code). Its timeout is the sync job's: the Alarm or the
    process's kill, whichever the caller has."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pgqueue-async-job") as pool:
        return pool.submit(contextvars.copy_context().run, asyncio.run, coro).result()


def _handed_over_first(task: Task, allow: Sequence[str]) -> bool:
    """Whether this process hands the job over without calling it (see HandOver): its function is a coroutine
    function. Asked before the job hooks run, so that they run once, where the job runs (the event loop)."""
    if not _hand_over:
        return False
    try:
        return inspect.iscoroutinefunction(import_func(task.func_name, allow))
    except Exception:  # not importable: the run says why
        return False


def _awaited(coro: Any) -> Any:
    """The value of an async job's coroutine (see HandOver, run_coroutine)."""
    if _hand_over:
        coro.close()  # never started: nothing ran, nothing to warn about
        raise HandOver()
    return run_coroutine(coro)


def import_func(name: str, allow: Sequence[str] = ()) -> Callable[..., Any]:
    """Import ``pkg.module.func`` (or ``pkg.module.Class.method``). With an allow-list, only names under
    one of its module prefixes are imported: whoever can write the jobs table can otherwise name any
    importable callable."""
    if allow and not any(name == p or name.startswith(p.rstrip(".") + ".") for p in allow):
        raise PermissionError(f"{name} is not under an allowed module ({', '.join(allow)})")
    func = _cache.get(name)
    if func is not None:
        return func
    parts = name.split(".")
    error: BaseException | None = None
    for split in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:split])
        try:
            obj: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):  # this prefix is not a module: try shorter
                error = exc
                continue
            raise
        try:
            for attr in parts[split:]:
                obj = getattr(obj, attr)
        except AttributeError:
            raise ImportError(f"cannot import job function {name!r}: module {module_name!r} has no "
                              f"attribute {'.'.join(parts[split:])!r}") from None
        if not callable(obj):
            raise ImportError(f"job function {name!r} is not callable")
        _cache[name] = obj
        return obj
    raise ImportError(f"cannot import job function {name!r}: {error}")


# -- the job ---------------------------------------------------------------------------------------
_atomic_conn: psycopg.Connection[Any] | None = None


def _connection(dsn: str | None) -> psycopg.Connection[Any]:
    """This process's connection for atomic jobs and callbacks (a child process keeps it across jobs)."""
    global _atomic_conn
    if _atomic_conn is None or _atomic_conn.closed or _atomic_conn.broken:
        _atomic_conn = connect(dsn, role="atomic job")
    return _atomic_conn


def _forget_parent_connection() -> None:
    """In a forked child: the parent's connection is not ours to use (both would talk on one session: its
    prepared statements, its transaction), nor to close (psycopg leaves it open when dropped in another
    process). A process that ran callbacks or atomic jobs itself (SimpleWorker, Queue(is_async=False)) may
    go on to fork a worker's children."""
    global _atomic_conn
    _atomic_conn = None


os.register_at_fork(after_in_child=_forget_parent_connection)


class LeaseLost(Exception):
    """An atomic job's completion found the job no longer held by this worker (it was rescued after the
    lease ran out): its writes were rolled back, so the run that holds the job now has the only effect."""


def _call_atomic(task: Task, conn: psycopg.Connection[Any], pending: _PendingJob, func: Callable[..., Any],
                 args: Any, kwargs: Any, started: float) -> tuple[Any, str]:
    with conn.transaction():
        pending.set_connection(conn)
        try:
            value = func(*args, **kwargs)
            _progress.flush(pending._job)  # before the job is finished, in its own statement
            result_json = _serialize.dumps(value)
            row = _store.finish_jobs(conn, {
                "ids": text_array([task.id]), "claims": number_array([task.claim]),
                "results": text_array([result_json]), "durations": number_array([time.perf_counter() - started]),
                "chunks": number_array(_notify.chunk_numbers([task.id])), "worker_id": task.worker_id})
            if row.finished != 1:
                raise LeaseLost(f"job {task.id} is no longer held by this worker; its writes were rolled back")
        finally:
            pending.set_connection(None)
    return value, result_json


def _job_of(task: Task, dsn: str | None, worker_name: str, started: float) -> Job:
    """The Job that get_current_job() returns inside the task (built only if it is asked for): the job's
    row as the database has it, and this run as it is. A job claimed in a batch only has its run recorded
    as started when it ends or has run for a while, so the row may not say yet what is true now."""
    # When the run started, by this machine's clock (the row has it only once the run is recorded).
    started_at = datetime.now(timezone.utc) - timedelta(seconds=time.perf_counter() - started)
    job = Job._from_dict({
        "id": task.id, "_dsn": dsn, "queue": task.queue, "func_name": task.func_name, "timeout": task.timeout,
        "args": _serialize.loads(task.args_json), "kwargs": _serialize.loads(task.kwargs_json),
        "meta": _serialize.loads(task.meta_json), "status": JobStatus.RUNNING, "attempts": task.attempt,
        "started_at": started_at, "worker_name": worker_name, "_run": (task.attempt, started_at, worker_name)})
    try:
        job.refresh()  # description, times, priority, max_attempts, errors of earlier runs, ...; and _run
    except PgQueueError:  # the database cannot be reached (or the row is gone): what the task says
        pass
    return job


# JSON's name for what the column held (an object that _serialize read as a date, UUID, ...: "object").
_JSON_TYPES = {str: "string", dict: "object", list: "array", bool: "boolean", type(None): "null", int: "number",
               float: "number"}


def _refuse_arguments(args: Any, kwargs: Any) -> None:
    """Fail a job whose args are not a JSON array or whose kwargs are not an object: unpacked anyway,
    ``"xy"`` would call ``f('x', 'y')``. enqueue never writes such a row; SQL of someone's own can."""
    for column, value, kind in (("args", args, list), ("kwargs", kwargs, dict)):
        if type(value) is not kind:
            raise TypeError(f"pgqueue.jobs.{column} must be a JSON {_JSON_TYPES[kind]}, "
                            f"got {_JSON_TYPES.get(type(value), 'object')}")


def _exception_classes(names: Sequence[str], allow: Sequence[str]) -> tuple[type[BaseException], ...]:
    """The classes of Retry(on=...) this process can import (with an allow-list: under it, or builtins)."""
    classes = []
    for name in names:
        try:
            cls = import_func(name, (*allow, "builtins") if allow else ())
        except Exception as exc:  # noqa: BLE001 - a module that fails to import in any way
            log.warning("Retry(on=...) names %s, which this worker cannot import (%s): no failure matches it",
                        name, exc)
            continue
        if isinstance(cls, type) and issubclass(cls, BaseException):
            classes.append(cls)
        else:
            log.warning("Retry(on=...) names %s, which is not an exception class: no failure matches it", name)
    return tuple(classes)


def exception_handlers(handlers: Sequence[ExceptionHandler | str]) -> list[ExceptionHandler]:
    """The worker's exception handlers: callables, or dotted paths imported here (``--exception-handler``).
    ValueError for a path that does not import, TypeError for what cannot be called."""
    found = []
    for handler in [handlers] if isinstance(handlers, str) or callable(handlers) else handlers:
        if isinstance(handler, str):
            try:
                handler = import_func(handler)
            except ImportError as exc:
                raise ValueError(f"exception handler {handler!r} cannot be imported: {exc}") from None
        if not callable(handler):
            raise TypeError(f"an exception handler must be callable (job, exc_type, exc_value, traceback), "
                            f"not {handler!r}")
        found.append(handler)
    return found


def _handle_exception(handlers: Sequence[ExceptionHandler], pending: _PendingJob, exc: BaseException) -> None:
    """RQ's exception handlers, in order, in the job's process, with get_current_job()'s Job: a handler
    that returns False (anything false but None) stops the chain. One that raises is logged and the chain
    goes on; the job's failure is recorded all the same."""
    job = pending.get()
    for handler in handlers:
        try:
            go_on = handler(job, type(exc), exc, exc.__traceback__)
        except AbortJob:
            raise
        except BaseException as error:
            log.error("Job %s: exception handler %s raised %s: %s (the job's failure is recorded all the same)",
                      job.id, getattr(handler, "__qualname__", handler), type(error).__name__, error,
                      exc_info=True)
            continue
        if go_on is not None and not go_on:
            break


def _attempt(task: Task, dsn: str | None, allow: Sequence[str], pending: _PendingJob, started: float,
             connection: psycopg.Connection[Any] | None, retry: bool,
             handlers: Sequence[ExceptionHandler] = ()) -> tuple[Outcome, BaseException | None, Any]:
    """Run the job function: its Outcome, and the exception it raised (None if it returned) or its value.
    AbortJob (and TimeUp) goes through: see execute(). A job that raises Snooze has neither succeeded nor
    failed: its Outcome says when it runs again."""
    atomic = False
    running = _running
    try:
        func = import_func(task.func_name, allow)
        args = _serialize.loads(task.args_json)
        kwargs = {} if task.kwargs_json == "{}" else _serialize.loads(task.kwargs_json)
        if type(args) is not list or type(kwargs) is not dict:  # a row written by SQL directly
            _refuse_arguments(args, kwargs)
        atomic = getattr(func, "__pgqueue_atomic__", False)
        running.task = task  # from here to the function's end, a cancel raises JobCanceled in it
        try:
            if atomic:
                value, result_json = _call_atomic(task, connection if connection is not None
                                                  else _connection(dsn), pending, func, args, kwargs, started)
            else:
                value = func(*args, **kwargs)
                try:
                    result_json = _serialize.dumps(value)
                except TypeError:  # a coroutine among them: an async def job (checked here, not per job)
                    if not inspect.iscoroutine(value):
                        raise
                    value = _awaited(value)
                    result_json = _serialize.dumps(value)
        finally:
            running.task = None
            if pending._job is not None:  # it asked for its Job: write the report it kept back, if any
                _progress.flush(pending._job)
    except AbortJob:
        raise
    except Snooze as exc:
        return Outcome(task.id, task.attempt, task.claim, False, None, None, "Snooze", str(exc),
                       time.perf_counter() - started, False, False, exc.seconds), exc, None
    except BaseException as exc:  # a job that raises SystemExit or KeyboardInterrupt has failed too
        again = retry and (task.retry_on is None or isinstance(exc, _exception_classes(task.retry_on, allow)))
        # PostgreSQL text cannot hold NUL: a message with one is recorded with it spelled out.
        failed = Outcome(task.id, task.attempt, task.claim, False, None, traceback.format_exc().replace("\0", "\\0"),
                         type(exc).__name__, str(exc).replace("\0", "\\0"), time.perf_counter() - started, False,
                         again)
        if running.canceled is task:  # not a failure, and no outcome is recorded; it may have been mid-statement
            _forget_busy_connections()
        elif handlers:
            _handle_exception(handlers, pending, exc)
        return failed, exc, None
    return Outcome(task.id, task.attempt, task.claim, True, result_json, None, None, None,
                   time.perf_counter() - started, bool(atomic)), None, value


def _stopped(task: Task, clock: Clock, exc: TimeUp, started: float,
             retry: bool) -> tuple[Outcome, BaseException | None]:
    """The outcome of a job its clock stopped: at its timeout (a JobTimeoutError, for its on_failure), or for
    ``clock.reason`` (the lease's fence: no callback runs)."""
    kind, message = clock.reason or ("JobTimeoutError", timeout_message(task.timeout))
    error = None if clock.reason else JobTimeoutError(message).with_traceback(exc.__traceback__)
    return Outcome(task.id, task.attempt, task.claim, False, None, f"{kind}: {message}", kind, message,
                   time.perf_counter() - started, False, retry), error


# -- its callback ----------------------------------------------------------------------------------
def _callback_of(task: Task, outcome: Outcome, clock: Clock) -> tuple[str, str, float] | CallbackEnd | None:
    """The callback to run after ``outcome``: (option, dotted path, timeout); None if there is none (nor
    after a run the lease's fence stopped, nor after a snooze); a CallbackEnd saying why, for a callbacks column
    that cannot be read. A canceled job's callback is on_stopped, whatever its function did then."""
    if task.callbacks is None:
        return None
    if _running.canceled is task or (clock.reason is not None and clock.reason[0] == CANCELED):
        key = "stopped"
    elif clock.reason is not None or outcome.snooze is not None:
        return None
    else:
        key = "success" if outcome.ok else "failure"
    try:
        return stored_callback(task.callbacks, key)
    except ValueError as exc:
        return CallbackEnd(task.id, task.claim, task.attempt, f"on_{key}", "", "ValueError", str(exc), None)


def _ended(job: Job, outcome: Outcome, stopped: bool = False) -> Job:
    """The Job a callback gets: its row when the callback began, with this run's end, which the worker records
    (soon) after the callback has begun. As RQ's, the status says finished or failed, or for a failure that a
    retry follows, ``scheduled``; ``canceled`` for on_stopped."""
    if stopped:
        job.status = JobStatus.CANCELED
    elif outcome.ok:
        job.status = JobStatus.FINISHED
        job._result = _serialize.loads(outcome.result_json)
    else:
        again = outcome.retryable and job.attempts < job.max_attempts
        job.status = JobStatus.SCHEDULED if again else JobStatus.FAILED
        job._exc_info = outcome.exc_info
    job._final_loaded = True
    job.ended_at = datetime.now(timezone.utc)
    return job


def _tidy(conn: psycopg.Connection[Any]) -> None:
    """Leave the process's own connection as the next job and callback expect it: idle, autocommit."""
    try:
        if conn.closed:
            return
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        if not conn.autocommit:
            conn.autocommit = True
    except psycopg.Error:
        conn.close()


def _call_back(task: Task, outcome: Outcome, error: BaseException | None, value: Any, call: tuple[str, str, float],
               pending: _PendingJob, dsn: str | None, allow: Sequence[str], clock: Clock,
               connection: psycopg.Connection[Any] | None) -> CallbackEnd:
    """Run the callback ``call`` with RQ's arguments: on_success(job, connection, result), on_failure(job,
    connection, type, value, traceback), on_stopped(job, connection). Never raises for the callback's own
    errors."""
    name, func_name, timeout = call
    failure: tuple[str | None, str | None, str | None] = (None, None, None)
    conn = None
    try:
        with clock.limit(timeout):
            func = import_func(func_name, allow)
            job = _ended(pending.get(), outcome, name == "on_stopped")
            conn = connection if connection is not None else _connection(dsn)
            if name == "on_stopped":
                func(job, conn)
            elif outcome.ok:
                func(job, conn, value)
            else:
                func(job, conn, type(error), error, error.__traceback__ if error is not None else None)
    except TimeUp:
        failure = (*(clock.reason or ("CallbackTimeout", f"the {name} callback {func_name} exceeded its timeout "
                                                         f"of {timeout:g} seconds and was stopped")), None)
    except AbortJob:
        raise
    except BaseException as exc:  # noqa: BLE001 - whatever the callback raised is recorded, never lost
        failure = (type(exc).__name__, str(exc).replace("\0", "\\0"), traceback.format_exc().replace("\0", "\\0"))
    finally:
        if conn is not None and connection is None:
            _tidy(conn)
    return CallbackEnd(task.id, task.claim, task.attempt, name, func_name, *failure)


def run(task: Task, dsn: str | None, worker_name: str, allow: Sequence[str] = (),
        handlers: Sequence[ExceptionHandler] = (), hooks: JobHooks | None = None
        ) -> Outcome | tuple[str, tuple[str, int]]:
    """Run a task that has no callbacks (``task.callbacks`` is None) in a child process, where the supervisor
    enforces its timeout: :func:`execute` without the generator, for the jobs most workers run."""
    started = time.perf_counter()
    pending = _PendingJob(lambda: _job_of(task, dsn, worker_name, started))
    token = _current_job.set(pending)
    try:
        if hooks is None:
            return _attempt(task, dsn, allow, pending, started, None, True, handlers)[0]
        if _handed_over_first(task, allow):
            return handed_over(task)
        job = hooks.begin(task, dsn, worker_name)  # the worker's job hooks (pgqueue.hooks), around the function
        outcome, error, value = _attempt(task, dsn, allow, pending, started, None, True, handlers)
        hooks.end(job, outcome, error, value)
        return outcome
    except HandOver:
        return handed_over(task)
    finally:
        _current_job.reset(token)


def execute(task: Task, dsn: str | None, worker_name: str, allow: Sequence[str] = (), clock: Clock | None = None,
            connection: psycopg.Connection[Any] | None = None, retry: bool = True,
            handlers: Sequence[ExceptionHandler] = (), hooks: JobHooks | None = None
            ) -> Iterator[Message]:
    """Run one task and yield its Outcome; when the job has a callback for that outcome, yield a CallbackStart
    first and, once the callback has run in this process, a CallbackEnd. Never raises for the job's or the
    callback's own errors.

    ``clock`` stops what outlives its time (see :class:`Clock`). ``connection``: the transaction that an atomic
    job writes in and that callbacks get (Queue(is_async=False) with ``connection=``); by default this
    process's own connection. ``retry``: whether a failure may be retried."""
    clock = clock or _NO_CLOCK
    started = time.perf_counter()
    pending = _PendingJob(lambda: _job_of(task, dsn, worker_name, started))
    token = _current_job.set(pending)
    try:
        value = None
        if hooks is not None and _handed_over_first(task, allow):
            yield handed_over(task)
            return
        job = None if hooks is None else hooks.begin(task, dsn, worker_name)  # the job hooks (pgqueue.hooks)
        try:
            with clock.limit(task.timeout) if clock.always or task.callbacks is not None else _UNLIMITED:
                outcome, error, value = _attempt(task, dsn, allow, pending, started, connection, retry, handlers)
        except TimeUp as exc:
            outcome, error = _stopped(task, clock, exc, started, retry)
            if outcome.error_type == CANCELED:
                _forget_busy_connections()
        except HandOver:
            yield handed_over(task)
            return
        if hooks is not None and job is not None:
            hooks.end(job, outcome, error, value)
        call = _callback_of(task, outcome, clock)
        if call is None or isinstance(call, CallbackEnd):
            yield outcome
            if call is not None:
                yield call
            return
        yield CallbackStart(task.id, task.claim, task.attempt, *call)
        yield outcome
        yield _call_back(task, outcome, error, value, call, pending, dsn, allow, clock, connection)
    finally:
        _current_job.reset(token)


def run_stopped(task: Task, dsn: str | None, worker_name: str, allow: Sequence[str], clock: Clock) -> CallbackEnd:
    """Run the on_stopped callback of ``task``, a canceled job whose process was killed (it did not stop within
    the worker's cancel_grace): in the process that replaced it, before any other task."""
    try:
        call = stored_callback(task.callbacks or "{}", "stopped")
    except ValueError as exc:
        return CallbackEnd(task.id, task.claim, task.attempt, "on_stopped", "", "ValueError", str(exc), None)
    if call is None:
        return CallbackEnd(task.id, task.claim, task.attempt, "on_stopped", "", None, None, None)
    started = time.perf_counter()
    pending = _PendingJob(lambda: _job_of(task, dsn, worker_name, started))
    token = _current_job.set(pending)
    try:
        outcome = Outcome(task.id, task.attempt, task.claim, False, None, None, CANCELED, "canceled")
        return _call_back(task, outcome, None, None, call, pending, dsn, allow, clock, None)
    finally:
        _current_job.reset(token)


def _forget_busy_connections() -> None:
    """After a run a cancel interrupted: close this process's connections that it left mid-statement or
    mid-transaction, so that the next job gets working ones."""
    if _atomic_conn is not None:
        _tidy(_atomic_conn)
    _db.close_busy_connections()
