"""Looking for jobs, looking at one, and deleting history: what ``pgqueue jobs``, ``pgqueue show`` and
``pgqueue purge`` do, as Python functions (a dashboard calls the same). docs/operations.md says what each
costs on a big history.

Listing comes in pages, by keyset: a page ends with the cursor of the next one (``JobPage.next_after``), so
the tenth page costs what the first does. Which order, and which index, depends on the statuses asked for:

- only ended ones (finished, failed, canceled): the history, most recently ended first, ``since`` and
  ``until`` bounding ``ended_at`` (jobs_ended_at_idx);
- only scheduled, queued or running: newest first by id, through those statuses' partial indexes;
- anything else (every status, deferred, or live and ended together): newest first by id, walking the
  primary key, at most ``scan`` jobs per page whatever the filters, so a page that found too few stops
  there and says so (``JobPage.examined``); the next page carries on from where it stopped.

pgqueue's own ids are UUIDv7, which start with the enqueue time: newest id first is newest enqueued first
(ids given with ``job_id=`` sort by their text).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from . import _store
from ._db import shared_connection, translate_errors
from ._store.ops import ENDED_STATUSES, LIVE_STATUSES, STATUSES, JobListRow
from .exceptions import NoSuchJobError

#: At most this many jobs examined per page of a listing no index serves (see the module's docstring).
SCAN = 10_000

Moment = datetime | timedelta  # a time, or how long before the database's now()


@dataclass(frozen=True)
class JobSummary:
    """A job as ``pgqueue jobs`` lists it. ``progress`` is the JSON a running job reported, if any."""
    id: str
    queue: str
    func_name: str
    status: str
    priority: int
    attempts: int
    max_attempts: int
    enqueued_at: datetime
    scheduled_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    worker_name: str | None
    exc_info: str | None
    progress: Any

    @property
    def last_error(self) -> str:
        """The last line of the last failure's text: ``ValueError: bad input``; empty if none."""
        lines = [line for line in (self.exc_info or "").strip().splitlines() if line.strip()]
        return lines[-1].strip() if lines else ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: times in ISO 8601, the last error's line beside the full text."""
        d = asdict(self)
        for key, value in d.items():
            if isinstance(value, datetime):
                d[key] = value.isoformat()
        d["last_error"] = self.last_error or None
        return d


@dataclass(frozen=True)
class JobPage:
    """A page of jobs. ``next_after``: pass it as ``after=`` for the next page (None: this was the last).
    ``order``: ``"ended"`` (most recently ended first) or ``"id"`` (newest first). ``examined``: for a
    listing no index serves that found fewer than ``limit`` jobs, how many it examined; ``partial`` when it
    stopped at the scan bound, in which case the next page carries on from where it stopped."""
    jobs: list[JobSummary]
    next_after: str | None
    order: str
    examined: int | None = None
    partial: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"jobs": [j.to_dict() for j in self.jobs], "next_after": self.next_after, "order": self.order,
                "examined": self.examined, "partial": self.partial}


def _statuses(statuses: Sequence[str] | None) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(statuses or ()))
    unknown = [s for s in chosen if s not in STATUSES]
    if unknown:
        raise ValueError(f"unknown status {unknown[0]!r}: a job's status is one of {', '.join(STATUSES)}")
    return chosen


def _moment(name: str, value: Moment | None) -> dict[str, Any]:
    """``since`` / ``until`` as the statements take them: an instant, or seconds before the database's now."""
    if value is None:
        return {name: None, f"{name}_seconds": None}
    if isinstance(value, timedelta):
        return {name: None, f"{name}_seconds": value.total_seconds()}
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{name}={value!r} has no time zone: pass an aware datetime (or a timedelta)")
        return {name: value, f"{name}_seconds": None}
    raise TypeError(f"{name} takes a datetime or a timedelta, not {type(value).__name__}")


def _kind(statuses: tuple[str, ...]) -> str:
    if statuses and set(statuses) <= set(ENDED_STATUSES):
        return "ended"
    if statuses and set(statuses) <= set(LIVE_STATUSES) - {"deferred"}:
        return "live"
    return "all"


def list_jobs(*, queues: Sequence[str] | None = None, statuses: Sequence[str] | None = None,
              function: str | None = None, since: Moment | None = None, until: Moment | None = None,
              after: str | None = None, limit: int = 50, scan: int = SCAN, dsn: str | None = None) -> JobPage:
    """One page of jobs (see the module's docstring for the order): of ``queues``, with one of ``statuses``
    (default: any), of the dotted path ``function``, from ``since`` to ``until`` (a datetime, or a timedelta
    before now: the enqueue time, or for ended statuses only the end), after the job ``after`` (the
    previous page's ``next_after``), at most ``limit`` of them."""
    chosen = _statuses(statuses)
    if not 1 <= limit <= 10_000:
        raise ValueError(f"limit={limit!r}: pass 1 to 10000 jobs per page")
    if scan < limit:
        raise ValueError(f"scan={scan!r} is less than limit={limit!r}")
    kind = _kind(chosen)
    filters = {"queues": list(queues) if queues else None, "function": function, "after": after,
               "limit": limit + 1, **_moment("since", since), **_moment("until", until)}
    with translate_errors(dsn):
        conn = shared_connection(dsn)
        if kind == "ended":
            filters["after_ended_at"] = None
            if after is not None:
                start = _store.ops.job_ended_at(conn, after)
                if start is None or start.ended_at is None:
                    raise NoSuchJobError(f"no ended job with id {after!r} to start the page after (deleted since, "
                                         "or requeued?): start again without --after")
                filters["after_ended_at"] = start.ended_at
        elif kind == "all":
            filters["scan"] = scan
        rows = _store.ops.list_jobs(conn, kind, chosen or STATUSES, filters)
        jobs = [_summary(r) for r in rows]
        if len(jobs) > limit:  # it asked for one more, to know whether there is a next page
            return JobPage(jobs[:limit], jobs[limit - 1].id, "ended" if kind == "ended" else "id")
        if kind != "all":
            return JobPage(jobs, None, "ended" if kind == "ended" else "id")
        # Fewer than asked for: the walk reached the oldest job, or stopped after its `scan` jobs, and then
        # the next page carries on from the last one it examined.
        walk = _store.ops.list_walked(conn, after, scan)
    partial = walk.walked >= scan
    return JobPage(jobs, walk.walked_to if partial else None, "id", walk.walked, partial)


def _summary(row: JobListRow) -> JobSummary:
    fields = row._asdict()
    fields["progress"] = None if row.progress is None else json.loads(row.progress)
    return JobSummary(**fields)


@dataclass(frozen=True)
class PurgeResult:
    """What ``purge`` did: the jobs that ended before ``cutoff`` with one of ``statuses`` (``matched``, counted
    first), and how many it deleted (0 for a dry run). Rows another transaction held were skipped."""
    statuses: tuple[str, ...]
    cutoff: datetime
    queue: str | None
    matched: int
    deleted: int
    dry_run: bool


def purge(statuses: Sequence[str], older_than: float | timedelta, *, queue: str | None = None,
          batch_size: int = 1000, dry_run: bool = False, progress: Callable[[int, int], None] | None = None,
          dsn: str | None = None) -> PurgeResult:
    """Delete the ended jobs of ``statuses`` (finished, failed, canceled; a live status is refused) that
    ended more than ``older_than`` (seconds or a timedelta) before the database's now, of ``queue`` if given,
    in transactions of at most ``batch_size`` jobs, oldest first. ``progress(deleted, matched)`` is called
    once they are counted and after each batch, with the jobs deleted so far and those counted first.
    ``dry_run``: count them only."""
    chosen = _statuses(statuses)
    live = [s for s in chosen if s not in ENDED_STATUSES]
    if not chosen or live:
        raise ValueError(f"purge deletes ended jobs only ({', '.join(ENDED_STATUSES)})" +
                         (f", not {live[0]} ones: cancel a job first" if live else ": name their statuses"))
    seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else float(older_than)
    if not 0 <= seconds < 1e10:
        raise ValueError(f"older_than={older_than!r}: pass 0 or more seconds")
    if not 1 <= batch_size <= 100_000:
        raise ValueError(f"batch_size={batch_size!r}: pass 1 to 100000")
    with translate_errors(dsn):
        conn = shared_connection(dsn)
        counted = _store.ops.purge_count(conn, chosen, seconds, queue)
        deleted = 0
        if progress is not None and not dry_run:
            progress(0, counted.jobs)
        while not dry_run:
            done = _store.ops.purge_batch(conn, chosen, counted.cutoff, queue, batch_size)
            if not done:
                break
            deleted += done
            if progress is not None:
                progress(deleted, counted.jobs)
    return PurgeResult(chosen, counted.cutoff, queue, counted.jobs, deleted, dry_run)


def job_details(job_id: str, dsn: str | None = None) -> dict[str, Any]:
    """Every column of the job (JSON values decoded; times as ISO 8601 strings, as PostgreSQL writes them in
    JSON), with ``"worker"``: the worker that holds or last ran it (name, host, pid, heartbeat, ``alive``),
    or None. Raises NoSuchJobError for an unknown id."""
    with translate_errors(dsn):
        row = _store.ops.job_details(shared_connection(dsn), job_id)
    if row is None:
        raise NoSuchJobError(f"no job with id {job_id!r}")
    details: dict[str, Any] = json.loads(row.job)
    details["worker"] = None if row.worker is None else json.loads(row.worker)
    details["checked_at"] = row.now.isoformat()
    return details
