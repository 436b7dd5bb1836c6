"""What each page shows, read in one transaction per page through the SQL gateway (pgqueue._store.dashboard),
and the actions, done through pgqueue's Python API (``Job``, ``Queue``, ``monitor``, ``suspension``). No
HTML here: the routes (app.py) hand these values to the templates."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg

from .. import _db, _notify, _options, _serialize, monitor, suspension
from .._store import dashboard as store
from .._store import pauses as store_pauses
from ..exceptions import NoSuchJobError, UniqueKeyHeld
from ..health import Thresholds
from ..health import check as check_health
from ..job import Job
from ..queue import Queue

LIVE = ("queued", "scheduled", "deferred", "running")
STATUSES = ("queued", "scheduled", "deferred", "running", "finished", "failed", "canceled", "ended")
#: The column each list's time range applies to (and sorts by).
TIME_COLUMN = {"queued": "enqueued", "scheduled": "scheduled for", "deferred": "enqueued", "running": "started",
               "finished": "ended", "failed": "ended", "canceled": "ended", "ended": "ended"}

#: How each list is ordered (said under it).
ORDER = {"queued": "Queued jobs are listed queue by queue, each in the order workers take them (priority, then "
                   "first in, first out).",
         "scheduled": "Soonest first.", "deferred": "Oldest first.", "running": "Worker by worker.",
         **{s: "Newest end first." for s in ("finished", "failed", "canceled", "ended")}}


@dataclass(frozen=True)
class Limits:
    """The bounds that keep every page cheap on a big history (docs/dashboard.md explains each)."""
    page: int = 50  # jobs per page of a list
    scan: int = 10_000  # rows a list reads at most per page
    failed: int = 10_000  # failed jobs counted per queue; past it: "more than"
    recent: int = 20_000  # ended jobs read for the last hour's counts and chart
    minutes: int = 60  # the window of those counts and of the chart
    workers: int = 200  # workers listed
    worker_jobs: int = 10  # current jobs listed per worker
    chars: int = 200  # characters of arguments and errors in a list
    statement_timeout_ms: int = 5_000


class BadRequest(ValueError):
    """A filter or cursor the dashboard cannot use: the page says why (HTTP 400)."""


class Reader:
    """The dashboard's connections (a few, kept for reuse) and its page transactions."""

    def __init__(self, dsn: str | None, limits: Limits) -> None:
        self.dsn = dsn
        self.limits = limits
        self._idle: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def page(self) -> Iterator[tuple[psycopg.Connection[Any], datetime]]:
        """A connection in a transaction set up for a page (store.begin_page), and the page's now()."""
        with _db.translate_errors(self.dsn):
            conn = self._take()
            try:
                with conn.transaction():
                    yield conn, store.begin_page(conn, self.limits.statement_timeout_ms)
            finally:
                self._give(conn)

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection outside any transaction (autocommit), for work that a page's transaction cannot
        hold: the health checks, one of which may fail on its own."""
        with _db.translate_errors(self.dsn):
            conn = self._take()
            try:
                yield conn
            finally:
                self._give(conn)

    def _take(self) -> psycopg.Connection[Any]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None or not _db._usable(conn):
            conn = _db.connect(self.dsn, role="dashboard")
        return conn

    def _give(self, conn: psycopg.Connection[Any]) -> None:
        idle = not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with self._lock:
            if idle and len(self._idle) < 4:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


# -- queues and the overview ---------------------------------------------------------------------------
@dataclass
class QueueView:
    name: str
    counts: dict[str, int] = field(default_factory=dict)  # live statuses: exact
    oldest_queued_at: datetime | None = None
    failed: int = 0  # up to Limits.failed + 1
    recent: dict[str, int] = field(default_factory=dict)  # finished/failed/canceled in the window
    paused: monitor.Pause | None = None

    def count(self, status: str) -> int:
        return self.counts.get(status, 0)


@dataclass
class Window:
    """The window of the recent counts: the last ``minutes``, or since ``since`` if the cap was reached."""
    minutes: int
    capped: bool
    since: datetime | None
    cap: int


@dataclass
class Bar:
    minute: datetime
    finished: int
    failed: int
    canceled: int

    @property
    def total(self) -> int:
        return self.finished + self.failed + self.canceled


def _pauses(conn: psycopg.Connection[Any]) -> tuple[monitor.Pause | None, dict[str, monitor.Pause]]:
    suspended, queues = None, {}
    for row in store_pauses(conn):
        if row.scope == _notify.ALL:
            suspended = monitor.Pause(None, row.paused_at, row.until)
        elif row.scope.startswith(_notify.QUEUE_SCOPE):
            name = row.scope[len(_notify.QUEUE_SCOPE):]
            queues[name] = monitor.Pause(name, row.paused_at, row.until)
    return suspended, queues


def _queues(conn: psycopg.Connection[Any], limits: Limits, only: str | None) -> tuple[list[QueueView], Window,
                                                                                       list[Bar]]:
    """Every queue with live jobs, failed jobs, jobs that ended in the window, or a pause (or only ``only``),
    with their counts; the window; and the throughput chart's bars (every queue's, or ``only``'s)."""
    views: dict[str, QueueView] = {}

    def view(name: str) -> QueueView:
        return views.setdefault(name, QueueView(name))

    for row in store.live_counts(conn, only):
        v = view(row.queue)
        v.counts[row.status] = row.jobs
        if row.status == "queued":
            v.oldest_queued_at = row.oldest_enqueued_at
    for c in store.failed_counts(conn, limits.failed + 1, only):
        view(c.queue).failed = c.jobs
    recent = store.recent_ended(conn, limits.minutes, limits.recent)
    read = sum(r.jobs for r in recent)
    window = Window(limits.minutes, read >= limits.recent, min((r.since for r in recent), default=None), limits.recent)
    minutes: dict[datetime, Bar] = {}
    for r in recent:
        if only is not None and r.queue != only:
            continue
        v = view(r.queue)
        v.recent[r.status] = v.recent.get(r.status, 0) + r.jobs
        bar = minutes.setdefault(r.minute, Bar(r.minute, 0, 0, 0))
        setattr(bar, r.status, getattr(bar, r.status) + r.jobs)
    return list(views.values()), window, list(minutes.values())


def chart(bars: list[Bar], now: datetime, minutes: int) -> dict[str, Any]:
    """The throughput chart's geometry: one bar per minute of the window (finished, failed and canceled
    stacked), the current minute last, heights scaled to the busiest minute."""
    by_minute = {b.minute: b for b in bars}
    end = now.replace(second=0, microsecond=0)
    columns = [by_minute.get(end - timedelta(minutes=i)) or Bar(end - timedelta(minutes=i), 0, 0, 0)
               for i in reversed(range(minutes))]
    top = max([b.total for b in columns] + [1])
    width, height, gap = 10, 100, 2
    out = []
    for i, b in enumerate(columns):
        y = height
        parts = []
        for kind in ("finished", "failed", "canceled"):
            n = getattr(b, kind)
            h = round(n / top * height, 2)
            if n:
                y -= h
                parts.append({"kind": kind, "y": round(y, 2), "h": h})
        out.append({"x": i * width, "w": width - gap, "bar": b, "parts": parts})
    return {"columns": out, "top": top, "width": minutes * width, "height": height,
            "total": sum(b.total for b in columns), "failed": sum(b.failed for b in columns)}


@dataclass
class WorkerView:
    row: store.DashboardWorkerRow
    state: str  # busy, idle, suspended, stopped, lost

    @property
    def jobs(self) -> list[tuple[str, str]]:
        return list(zip(self.row.job_ids, self.row.job_funcs, strict=True))


def _workers(conn: psycopg.Connection[Any], limits: Limits, suspended: bool) -> list[WorkerView]:
    views = []
    for row in store.workers(conn, limits.workers, limits.worker_jobs):
        if row.stopped_at is not None:
            state = "stopped"
        elif not row.live:
            state = "lost"
        elif row.running:
            state = "busy"
        else:  # as `pgqueue info` (and RQ) says it: idle while workers are suspended is "suspended"
            state = "suspended" if suspended else "idle"
        views.append(WorkerView(row, state))
    return views


def overview(reader: Reader) -> dict[str, Any]:
    with reader.page() as (conn, now):
        suspended, paused = _pauses(conn)
        queues, window, bars = _queues(conn, reader.limits, None)
        workers = _workers(conn, reader.limits, suspended is not None)
    live = [w for w in workers if w.state not in ("stopped", "lost")]
    # Queues without a job to count, but paused, or served by a live worker: shown all the same.
    for name in ({*paused} | {n for w in live for n in w.row.queues}) - {q.name for q in queues}:
        queues.append(QueueView(name))
    for q in queues:
        q.paused = paused.get(q.name)
    queues.sort(key=lambda q: q.name)
    return {"now": now, "queues": queues, "window": window, "chart": chart(bars, now, window.minutes),
            "workers": live, "suspended": suspended, "limits": reader.limits}


def workers_page(reader: Reader) -> dict[str, Any]:
    with reader.page() as (conn, now):
        suspended, _ = _pauses(conn)
        workers = _workers(conn, reader.limits, suspended is not None)
    return {"now": now, "workers": workers, "suspended": suspended, "limits": reader.limits}


def health_page(reader: Reader, thresholds: Thresholds) -> dict[str, Any]:
    """What `pgqueue doctor` finds, problems first, then notices, then the checks that found nothing."""
    with reader.connection() as conn:
        report = check_health(conn, thresholds)
    rank = {"problem": 0, "notice": 1, "ok": 2}
    findings = sorted(report.findings, key=lambda f: rank[f.severity])  # stable: CHECKS order within each
    return {"now": report.checked_at, "report": report, "findings": findings}


# -- job lists -----------------------------------------------------------------------------------------
@dataclass
class Filters:
    status: str = "queued"
    queue: str | None = None
    func: str | None = None
    since: str | None = None  # as typed: an ISO time (UTC unless it says), or a duration ago ("1h")
    until: str | None = None
    after: str | None = None  # the cursor

    def query(self, **changes: Any) -> dict[str, str]:
        """The filters as query parameters (those set), with ``changes``."""
        values = {**self.__dict__, **changes}
        return {k: v for k, v in values.items() if v not in (None, "")}


def parse_filters(params: dict[str, str], default_status: str = "queued") -> Filters:
    status = params.get("status") or default_status
    if status not in STATUSES:
        raise BadRequest(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    text = {k: (params.get(k) or "").strip() or None for k in ("queue", "func", "since", "until", "after")}
    return Filters(status, **text)


def _when(value: str | None, now: datetime, what: str) -> datetime | None:
    """A filter's time: ISO 8601 (UTC unless it has an offset), or a duration before now (``30m``, ``24h``)."""
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
        return at if at.tzinfo else at.replace(tzinfo=timezone.utc)
    except ValueError:
        pass
    try:
        return now - timedelta(seconds=_options.seconds(what, value))
    except (ValueError, TypeError):
        raise BadRequest(f"{what}: {value!r} is neither a time (2030-01-31T12:00, UTC unless it says) nor a "
                         "duration before now (30m, 24h, 7d)") from None


def encode_cursor(key: tuple[str, str] | None) -> str | None:
    return None if key is None else base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def _decode_cursor(value: str | None) -> tuple[str, str] | None:
    if value is None:
        return None
    try:
        key, id = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        if isinstance(key, str) and isinstance(id, str):
            return key, id
    except (ValueError, binascii.Error, TypeError):
        pass
    raise BadRequest("the page cursor (after=) is not one this dashboard made: start from the first page")


def _list(conn: psycopg.Connection[Any], now: datetime, limits: Limits, filters: Filters) -> dict[str, Any]:
    after = _decode_cursor(filters.after)
    bounds = {"queue": filters.queue, "func": filters.func,
              "since": _when(filters.since, now, "since"), "until": _when(filters.until, now, "until")}
    try:
        with conn.transaction():  # a savepoint: a cursor that does not parse fails alone
            scan = store.scan_jobs(conn, filters.status, bounds, after, limits.page, limits.scan)
    except psycopg.errors.DataError:
        raise BadRequest("the page cursor (after=) does not fit this list: start from the first page") from None
    rows = store.job_rows(conn, scan.ids, limits.chars + 1)
    return {"filters": filters, "jobs": rows, "next": encode_cursor(scan.next_key), "read": scan.read,
            "scan_capped": scan.read >= limits.scan and scan.next_key is not None and len(rows) < limits.page,
            "time_column": TIME_COLUMN[filters.status]}


def job_list(reader: Reader, filters: Filters) -> dict[str, Any]:
    with reader.page() as (conn, now):
        return {"now": now, "limits": reader.limits, **_list(conn, now, reader.limits, filters)}


def queue_page(reader: Reader, name: str, filters: Filters) -> dict[str, Any]:
    with reader.page() as (conn, now):
        suspended, paused = _pauses(conn)
        queues, window, bars = _queues(conn, reader.limits, name)
        listing = _list(conn, now, reader.limits, filters)
    view = queues[0] if queues else QueueView(name)
    view.paused = paused.get(name)
    return {**listing, "now": now, "queue": view, "window": window, "chart": chart(bars, now, window.minutes),
            "suspended": suspended, "limits": reader.limits}


# -- a job ---------------------------------------------------------------------------------------------
def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def job_page(reader: Reader, id: str) -> dict[str, Any] | None:
    chars = reader.limits.chars + 1
    with reader.page() as (conn, now):
        row = store.job(conn, id)
        if row is None:
            return None
        dependencies = {r.id: r for r in store.job_rows(conn, row.depends_on, chars)}
        waiting = store.job_rows(conn, store.dependents(conn, id, reader.limits.page), chars)
    errors = _json(row.errors) or []
    return {"now": now, "job": row, "call": call_string(row), "args": _json(row.args), "kwargs": _json(row.kwargs),
            "meta": _json(row.meta), "result": _json(row.result), "progress": _json(row.progress),
            "errors": errors, "dependencies": [(d, dependencies.get(d)) for d in row.depends_on],
            "dependents": waiting, "timeline": timeline(row, errors), "limits": reader.limits}


def call_string(row: store.JobDetailRow, limit: int = 2000) -> str:
    """``tasks.add(1, b=2)``, as RQ's log lines show a job (its arguments as Python values), cut at ``limit``."""
    args, kwargs = _serialize.loads(row.args), _serialize.loads(row.kwargs)
    parts = [repr(a) for a in args] if isinstance(args, list) else [repr(args)]
    parts += [f"{k}={v!r}" for k, v in kwargs.items()] if isinstance(kwargs, dict) else [repr(kwargs)]
    text = f"{row.func_name}({', '.join(parts)})"
    return text if len(text) <= limit else text[:limit] + "…"


def timeline(row: store.JobDetailRow, errors: list[dict[str, Any]]) -> list[tuple[datetime, str]]:
    """The job's moments in order: enqueued, scheduled (if later), each failed attempt, started, ended (at
    the same instant, in that order)."""
    events: list[tuple[datetime, int, str]] = [(row.enqueued_at, 0, "enqueued")]
    if row.scheduled_at > row.enqueued_at:
        events.append((row.scheduled_at, 1, "scheduled for" if row.status == "scheduled" else "runnable from"))
    if row.started_at:
        events.append((row.started_at, 2, "started" if row.attempts <= 1 else f"attempt {row.attempts} started"))
    for e in errors:
        try:
            at = datetime.fromisoformat(str(e.get("at")))
        except ValueError:
            continue
        events.append((at, 3, f"attempt {e.get('attempt', '?')} failed: {e.get('type', '?')}"))
    if row.ended_at:
        events.append((row.ended_at, 4, row.status if row.status in ("finished", "failed", "canceled") else "ended"))
    return [(at, what) for at, _, what in sorted(events, key=lambda e: (e[0], e[1]))]


# -- actions (the Python API) --------------------------------------------------------------------------
def requeue_job(dsn: str | None, id: str) -> str:
    try:
        requeued, refused = monitor.requeue([id], None, dsn)
    except UniqueKeyHeld as exc:
        return str(exc)
    if refused:
        return str(refused[0])
    return f"Job {id} requeued." if requeued else f"Job {id} is not failed: nothing to requeue."


def cancel_job(dsn: str | None, id: str) -> str:
    try:
        canceled = Job.fetch(id, dsn).cancel()
    except NoSuchJobError:
        return f"No job {id}."
    return f"Job {id} canceled." if canceled else f"Job {id} had ended: nothing to cancel."


def delete_job(dsn: str | None, id: str) -> str:
    if not Job.exists(id, dsn):
        return f"No job {id}."
    Job(id, dsn).delete()
    return f"Job {id} deleted."


def requeue_failed(dsn: str | None, queue: str) -> str:
    requeued, refused = monitor.requeue(None, queue, dsn)
    held = f"; {len(refused)} stay failed: another job holds their unique_key" if refused else ""
    return f"{len(requeued)} failed jobs of {queue} requeued{held}."


def pause_queue(dsn: str | None, queue: str) -> str:
    Queue(queue, dsn).pause()
    return f"Queue {queue} paused: workers start none of its jobs until it is resumed."


def resume_queue(dsn: str | None, queue: str) -> str:
    return f"Queue {queue} resumed." if Queue(queue, dsn).resume() else f"Queue {queue} was not paused."


def suspend_workers(dsn: str | None) -> str:
    suspension.suspend(dsn)
    return "Workers suspended: they finish what they run and start nothing more until resumed."


def resume_workers(dsn: str | None) -> str:
    return "Workers resumed." if suspension.resume(dsn) else "Workers were not suspended."
