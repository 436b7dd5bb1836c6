"""A running job's progress (``get_current_job().set_progress(done, total, message)``): kept in the job's
``progress`` column, read as ``job.progress``, followed with ``job.progress_updates()``.

Writes are throttled: at most one statement every :data:`PROGRESS_INTERVAL` seconds per job run. A report
that comes sooner is kept, and written by the next report after the interval, or when the job's function
ends (returns or raises), before the worker records its outcome: so the last report is always written, and a
job that reports 10,000 times a second makes at most 5 statements a second. Each write wakes the readers
that follow it (``pgqueue_progress``, payload the job's id, through pgqueue._notify).
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import time
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from . import _config, _store
from ._db import connect, shared_connection, translate_errors
from .exceptions import NoSuchJobError, PgQueueError

if TYPE_CHECKING:
    from .job import Job

log = logging.getLogger("pgqueue")

#: Seconds between two writes of one job's progress (reports in between wait for the next write).
PROGRESS_INTERVAL = 0.2

#: Seconds between two looks at a job's progress by ``progress_updates()`` when it cannot LISTEN (behind a
#: transaction pooler without ``PGQUEUE_LISTEN_DATABASE_URL``), as ``job.wait()`` polls.
POLL_INTERVAL = 0.25

_MAX_MESSAGE = 10_000  # characters of a progress message


class Progress(NamedTuple):
    """What a job last reported: ``done`` of ``total`` (None: unknown), a ``message``, and ``at`` when it was
    written (the database's clock)."""

    done: float
    total: float | None
    message: str | None
    at: datetime

    @property
    def fraction(self) -> float | None:
        """``done / total`` (None without a total, or a total of 0)."""
        return self.done / self.total if self.total else None

    def __str__(self) -> str:
        amount = f"{self.done:g}" if self.total is None else f"{self.done:g} of {self.total:g}"
        share = "" if self.fraction is None else f" ({self.fraction:.0%})"
        return f"{amount}{share}{': ' + self.message if self.message else ''}"


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"set_progress({name}=...) takes a finite number, not {value!r}")
    return value  # type: ignore[return-value]  # an int stays an int in the JSON


def progress_json(done: Any, total: Any = None, message: Any = None) -> str:
    """The JSON a report is stored as; ValueError or TypeError, naming the bad value, before anything is sent."""
    done = _number("done", done)
    if total is not None:
        total = _number("total", total)
        if total < 0:
            raise ValueError(f"set_progress(total={total!r}): a total is 0 or more (or None: unknown)")
    if message is not None:
        if not isinstance(message, str):
            raise TypeError(f"set_progress(message=...) takes a str or None, not {type(message).__name__}")
        if "\x00" in message:
            raise ValueError("set_progress(message=...) cannot contain NUL characters")
        if len(message) > _MAX_MESSAGE:
            raise ValueError(f"set_progress(message=...) is {len(message)} characters long; keep it to "
                             f"{_MAX_MESSAGE} (a progress message, not a log)")
    return json.dumps({"done": done, "total": total, "message": message}, ensure_ascii=False)


def parse(text: str | None) -> Progress | None:
    """The Progress a ``progress`` column holds (None: nothing reported)."""
    if text is None:
        return None
    value = json.loads(text)
    at = value.get("at")
    return Progress(value.get("done"), value.get("total"), value.get("message"),
                    datetime.fromisoformat(at) if isinstance(at, str) else at)


class Throttle:
    """One job run's reports: when the last was written, and the one waiting for the next write."""

    __slots__ = ("sent", "pending")

    def __init__(self) -> None:
        self.sent = -math.inf
        self.pending: str | None = None


def report(job: Job, done: Any, total: Any, message: Any) -> None:
    """``job.set_progress``: write now, or keep for the next write (see the module's docstring)."""
    value = progress_json(done, total, message)
    throttle = job.__dict__.get("_throttle")
    if throttle is None:
        throttle = job.__dict__["_throttle"] = Throttle()
    now = time.monotonic()
    if now - throttle.sent < PROGRESS_INTERVAL:
        throttle.pending = value
        return
    _write(job, throttle, value, now)


def flush(job: Job | None) -> None:
    """Write the report a run kept back, if any: when the job's function has ended. Never raises: the job's
    outcome matters more than its last progress (logged if it cannot be written)."""
    throttle = None if job is None else job.__dict__.get("_throttle")
    if throttle is None or throttle.pending is None:
        return
    try:
        _write(job, throttle, throttle.pending, time.monotonic())  # type: ignore[arg-type]
    except (PgQueueError, OSError) as exc:
        log.warning("Job %s: could not write its last progress (%s)", job.id, exc)  # type: ignore[union-attr]


def _write(job: Job, throttle: Throttle, value: str, now: float) -> None:
    throttle.sent, throttle.pending = now, None
    with translate_errors(job._dsn):
        _store.set_progress(shared_connection(job._dsn), job.id, value)


def read(job: Job) -> _store.ProgressRow:
    with translate_errors(job._dsn):
        row = _store.job_progress(shared_connection(job._dsn), job.id)
    if row is None:
        raise NoSuchJobError(f"no job with id {job.id!r}")
    return row


def updates(job: Job, timeout: float | None) -> Iterator[Progress]:
    """``job.progress_updates``: each new progress, until the job ends."""
    from .job import JobStatus, _wait_for_ids

    deadline = None if timeout is None else time.monotonic() + timeout
    last: Progress | None = None
    listen_dsn = _config.listen_dsn()
    conn = None if listen_dsn is None and _config.transaction_pooling() else \
        connect(listen_dsn or job._dsn, role="wait", pooled=False)
    try:
        if conn is not None:
            with translate_errors(job._dsn):
                _store.listen(conn, "progress")
                _store.listen(conn, "done")
        while True:
            row = read(job)  # after LISTEN: a change between the two is not missed
            now = parse(row.progress)
            if now is not None and now != last:
                last = now
                yield now
            if JobStatus(row.status).is_final:
                job.status = JobStatus(row.status)
                return
            if not _wait(conn, job.id, deadline, _wait_for_ids):
                raise TimeoutError(f"job {job.id} did not end within {timeout} seconds")
    finally:
        if conn is not None:
            conn.close()


def _wait(conn: Any, job_id: str, deadline: float | None, wait_for_ids: Any) -> bool:
    """Until a notification names the job (or a poll's interval passed, without LISTEN); False past the
    deadline."""
    if conn is not None:
        with translate_errors():
            return bool(wait_for_ids(conn, {job_id}, deadline))
    remaining = None if deadline is None else deadline - time.monotonic()
    if remaining is not None and remaining <= 0:
        return False
    time.sleep(POLL_INTERVAL if remaining is None else min(POLL_INTERVAL, remaining))
    return True

