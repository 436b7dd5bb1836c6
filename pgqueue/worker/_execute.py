"""Running one job: import its function by dotted path (honouring the allow-list), call it, and turn
the outcome into what the supervisor records. Used by child processes and by SimpleWorker alike."""

from __future__ import annotations

import importlib
import logging
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

import psycopg

from .. import _notify, _serialize, _store
from .._db import connect
from ..exceptions import PgQueueError
from ..job import Job, JobStatus, _current_job, _PendingJob
from ..sql import number_array, text_array

_cache: dict[str, Callable[..., Any]] = {}
log = logging.getLogger("pgqueue.worker")

#: RQ's exception handler: ``handler(job, exc_type, exc_value, traceback)``; returning False (anything false
#: but None) stops the chain.
ExceptionHandler = Callable[..., Any]


class AbortJob(BaseException):
    """Raised inside an in-process job to stop it (a hard timeout, or a second stop signal)."""


class Task(NamedTuple):
    """A claimed job as the supervisor hands it to whatever runs it."""

    id: str
    queue: str
    func_name: str
    args_json: str
    kwargs_json: str
    timeout: float
    attempt: int  # the run number this will be if it starts (attempts so far + 1)
    meta_json: str
    claim: int  # the job's claim_count for this claim: what completions are fenced on
    marked: bool  # the claim already recorded the run as started (it went to an idle process)
    worker_id: int


class Outcome(NamedTuple):
    """What running a task produced: ``ok`` with ``result_json``, or not, with ``exc_info`` (text) and
    ``error`` (type and message) for the job's history."""

    id: str
    attempt: int
    claim: int
    ok: bool
    result_json: str | None
    exc_info: str | None
    error_type: str | None
    error_message: str | None
    duration: float = 0.0  # seconds the run took, so started_at = ended_at - duration
    recorded: bool = False  # an atomic job's completion was already committed with its own writes


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


_atomic_conn: psycopg.Connection[Any] | None = None


def _connection(dsn: str | None) -> psycopg.Connection[Any]:
    """This process's connection for atomic jobs (a child process keeps it across jobs)."""
    global _atomic_conn
    if _atomic_conn is None or _atomic_conn.closed or _atomic_conn.broken:
        _atomic_conn = connect(dsn, role="atomic job")
    return _atomic_conn


class LeaseLost(Exception):
    """An atomic job's completion found the job no longer held by this worker (it was rescued after the
    lease ran out): its writes were rolled back, so the run that holds the job now has the only effect."""


def _call_atomic(task: Task, dsn: str | None, pending: _PendingJob, func: Callable[..., Any], args: Any,
                 kwargs: Any, started: float) -> str:
    conn = _connection(dsn)
    with conn.transaction():
        pending.set_connection(conn)
        try:
            result_json = _serialize.dumps(func(*args, **kwargs))
            row = _store.finish_jobs(conn, {
                "ids": text_array([task.id]), "claims": number_array([task.claim]),
                "results": text_array([result_json]), "durations": number_array([time.perf_counter() - started]),
                "chunks": number_array(_notify.chunk_numbers([task.id])), "worker_id": task.worker_id})
            if row.finished != 1:
                raise LeaseLost(f"job {task.id} is no longer held by this worker; its writes were rolled back")
        finally:
            pending.set_connection(None)
    return result_json


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


def run(task: Task, dsn: str | None, worker_name: str, allow: Sequence[str] = (),
        handlers: Sequence[ExceptionHandler] = ()) -> Outcome:
    """Run one task to completion and describe what happened. Never raises for the job's own errors."""
    started = time.perf_counter()
    pending = _PendingJob(lambda: _job_of(task, dsn, worker_name, started))
    token = _current_job.set(pending)
    atomic = False
    try:
        func = import_func(task.func_name, allow)
        args = _serialize.loads(task.args_json)
        kwargs = {} if task.kwargs_json == "{}" else _serialize.loads(task.kwargs_json)
        if type(args) is not list or type(kwargs) is not dict:  # a row written by SQL directly
            _refuse_arguments(args, kwargs)
        atomic = getattr(func, "__pgqueue_atomic__", False)
        if atomic:
            result_json = _call_atomic(task, dsn, pending, func, args, kwargs, started)
        else:
            result_json = _serialize.dumps(func(*args, **kwargs))
    except AbortJob:
        raise
    except BaseException as exc:  # a job that raises SystemExit or KeyboardInterrupt has failed too
        # PostgreSQL text cannot hold NUL: a message with one is recorded with it spelled out.
        failed = Outcome(task.id, task.attempt, task.claim, False, None, traceback.format_exc().replace("\0", "\\0"),
                         type(exc).__name__, str(exc).replace("\0", "\\0"), time.perf_counter() - started)
        if handlers:
            _handle_exception(handlers, pending, exc)
        return failed
    finally:
        _current_job.reset(token)
    return Outcome(task.id, task.attempt, task.claim, True, result_json, None, None, None,
                   time.perf_counter() - started, bool(atomic))
