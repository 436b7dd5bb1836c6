"""The web dashboard's statements (``sql/dashboard.sql``), in the SQL gateway (:mod:`pgqueue._store`, whose
``ROWS`` registers these row types too). Each runs through psycopg on the dashboard's connection, inside
the transaction of the page being drawn (:func:`begin_page` sets it up); none writes.

The job lists read by keyset (:func:`scan_jobs`): a bounded number of rows in one index's order, never an
OFFSET, so that a page costs the same on the first page and the thousandth, and on an empty table and one
with millions of ended jobs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from ._run import Conn, _execute, _one


class PageRow(NamedTuple):
    plan_cache_mode: str
    jit: str
    enable_seqscan: str
    statement_timeout: str
    now: datetime


class LiveCountRow(NamedTuple):
    """Jobs of one queue and live status (scheduled, queued, deferred, running), and the oldest one's age."""
    queue: str
    status: str
    jobs: int
    oldest_enqueued_at: datetime | None


class QueueCountRow(NamedTuple):
    """A queue's failed jobs, counted up to the statement's limit."""
    queue: str
    jobs: int


class RecentRow(NamedTuple):
    """Jobs of one queue that ended with one status in one minute; ``since``: the earliest end among them."""
    queue: str
    minute: datetime
    status: str
    jobs: int
    since: datetime


class DashboardWorkerRow(NamedTuple):
    """A row of pgqueue.workers, whether it is live, and the jobs it holds (up to the statement's ``jobs``)."""
    id: int
    name: str
    hostname: str
    pid: int
    queues: list[str]
    concurrency: int
    lease_seconds: float
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    successful_jobs: int
    failed_jobs: int
    working_seconds: float
    live: bool
    running: int
    job_ids: list[str]
    job_funcs: list[str]


class JobDetailRow(NamedTuple):
    """Every column the job page shows (JSON columns as text)."""
    id: str
    queue: str
    func_name: str
    args: str
    kwargs: str
    status: str
    priority: int
    description: str | None
    meta: str
    result: str | None
    exc_info: str | None
    errors: str
    attempts: int
    max_attempts: int
    timeout_seconds: float
    result_ttl: int | None
    failure_ttl: int | None
    ttl: int | None
    depends_on: list[str]
    unique_key: str | None
    worker_name: str | None
    enqueued_at: datetime
    scheduled_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    delete_at: datetime | None
    progress: str | None
    batch_id: str | None
    retry_on: list[str] | None
    callbacks: str | None


class JobListRow(NamedTuple):
    """A job as a list shows it: arguments cut short, the last failure's last line."""
    id: str
    queue: str
    func_name: str
    args: str
    kwargs: str
    status: str
    priority: int
    attempts: int
    max_attempts: int
    worker_name: str | None
    enqueued_at: datetime
    scheduled_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    last_error: str | None
    progress: str | None


class IdRow(NamedTuple):
    id: str


class ScanRow(NamedTuple):
    """A job read by a dashboard_scan_* statement: its sort key (the cursor), and whether it matches."""
    id: str
    key: str
    hit: bool


class Scan(NamedTuple):
    """What :func:`scan_jobs` found: the ids of the page (in order), the cursor to go on from (None: the
    index has no more rows), and how many rows it read."""
    ids: list[str]
    next_key: tuple[str, str] | None
    read: int


#: The scan statement of each job list: by status (and for ``failed`` in one queue, its own index).
SCANS = {"finished": "dashboard_scan_ended", "failed": "dashboard_scan_ended", "canceled": "dashboard_scan_ended",
         "ended": "dashboard_scan_ended", "queued": "dashboard_scan_queued", "scheduled": "dashboard_scan_scheduled",
         "running": "dashboard_scan_running", "deferred": "dashboard_scan_deferred"}
ENDED = ("finished", "failed", "canceled")


def begin_page(conn: Conn, statement_timeout_ms: int) -> datetime:
    """Set up the page's transaction (already begun on ``conn``); returns its now()."""
    return _execute(conn, "dashboard_page", {"statement_timeout": str(statement_timeout_ms)}, PageRow)[0].now


def live_counts(conn: Conn, queue: str | None = None) -> list[LiveCountRow]:
    return _execute(conn, "dashboard_live_counts", {"queue": queue}, LiveCountRow)


def failed_counts(conn: Conn, limit: int, queue: str | None = None) -> list[QueueCountRow]:
    """Failed jobs per queue, each count stopping at ``limit``."""
    return _execute(conn, "dashboard_failed_counts", {"queue": queue, "limit": limit}, QueueCountRow)


def recent_ended(conn: Conn, minutes: int, limit: int) -> list[RecentRow]:
    """The jobs that ended in the last ``minutes``, at most the latest ``limit``, by queue, minute and status."""
    return _execute(conn, "dashboard_recent_ended", {"minutes": minutes, "limit": limit}, RecentRow)


def workers(conn: Conn, limit: int, jobs: int) -> list[DashboardWorkerRow]:
    return _execute(conn, "dashboard_workers", {"limit": limit, "jobs": jobs}, DashboardWorkerRow)


def job(conn: Conn, id: str) -> JobDetailRow | None:
    return _one(_execute(conn, "dashboard_job", {"id": id}, JobDetailRow))


def job_rows(conn: Conn, ids: Sequence[str], chars: int) -> list[JobListRow]:
    """The rows of ``ids`` that exist, in the order of ``ids``."""
    rows = {r.id: r for r in _execute(conn, "dashboard_job_rows", {"ids": list(ids), "chars": chars}, JobListRow)}
    return [rows[i] for i in ids if i in rows]


def dependents(conn: Conn, id: str, limit: int) -> list[str]:
    return [r.id for r in _execute(conn, "dashboard_dependents", {"id": id, "limit": limit}, IdRow)]


def scan_jobs(conn: Conn, status: str, filters: dict[str, Any], after: tuple[str, str] | None, page: int,
              cap: int) -> Scan:
    """Up to ``page`` jobs of ``status`` (or ``ended``: finished, failed and canceled) matching ``filters``
    (``queue``, ``func``, ``since``, ``until``; None: any), after the cursor ``after`` (key, id), reading
    at most ``cap`` rows of the status's index. The first chunk read is a page and one more (enough
    without filters); later chunks are bigger, up to the cap."""
    queue = filters.get("queue")
    name = "dashboard_scan_failed" if status == "failed" and queue is not None else SCANS[status]
    params = {"statuses": list(ENDED) if status == "ended" else [status], "queue": queue,
              "func": filters.get("func"), "since": filters.get("since"), "until": filters.get("until")}
    ids: list[str] = []
    read, chunk, key, last_hit = 0, page + 1, after, after
    while read < cap:
        limit = min(chunk, cap - read)
        rows = _execute(conn, name, {**params, "key": key[0] if key else None, "id": key[1] if key else None,
                                     "limit": limit}, ScanRow)
        for row in rows:
            if row.hit:
                if len(ids) == page:  # a hit past the page: the next page starts after the page's last one
                    return Scan(ids, last_hit, read)
                ids.append(row.id)
                last_hit = (row.key, row.id)
            read += 1
            key = (row.key, row.id)
        if len(rows) < limit:
            return Scan(ids, None, read)
        chunk = min(chunk * 4, 2000)
    return Scan(ids, key, read)  # the cap: the next page goes on from the last row read


#: Each statement's row type, for the test that compares them with the statements' columns.
ROWS: dict[str, type[tuple[Any, ...]] | None] = {
    "dashboard_page": PageRow, "dashboard_live_counts": LiveCountRow, "dashboard_failed_counts": QueueCountRow,
    "dashboard_recent_ended": RecentRow, "dashboard_workers": DashboardWorkerRow, "dashboard_job": JobDetailRow,
    "dashboard_job_rows": JobListRow, "dashboard_dependents": IdRow,
    **{name: ScanRow for name in {*SCANS.values(), "dashboard_scan_failed"}},
}
