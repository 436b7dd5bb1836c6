"""The ``pgqueue`` commands that operate a queue in production: ``jobs`` (list, filter, page), ``show`` (one
job, every attempt), ``purge`` (delete old history) and ``doctor`` (what hurts the queue in PostgreSQL).
Thin, as the rest of the CLI: parse, call :mod:`pgqueue.operations` / :mod:`pgqueue.health`, print.
docs/operations.md documents them; :mod:`pgqueue.cli` registers them."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import click

from . import _options, health, operations
from ._cli_common import _friendly, _names, _queue_names, dsn_option
from ._store.ops import ENDED_STATUSES, STATUSES


def _moment(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | timedelta | None:
    """``--since`` / ``--until``: an ISO 8601 time (without an offset: this machine's local time), or a
    duration (``90``, ``30m``, ``1h30m``, ``7d``) meaning that long ago, by the database's clock."""
    if value is None:
        return None
    text = value.strip()
    try:
        return timedelta(seconds=_duration(text))
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a time (ISO 8601, such as 2030-01-01T09:00 or "
                                 "2030-01-01T09:00:00+00:00) nor a duration (such as 90, 30m, 1h30m, 7d)",
                                 ctx, param) from None
    return when if when.tzinfo is not None else when.astimezone()


def _duration(text: str) -> float:
    """Seconds from ``90``, ``0.5``, ``30m``, ``1h30m`` or ``7d``; ValueError for anything else (a negative
    number included: no duration goes back in time here)."""
    try:
        number = float(text)
    except ValueError:
        number = _options.seconds("duration", text)  # ValueError unless units such as 1h30m
    if not 0 <= number < 1e10:
        raise ValueError(text)
    return number


class _Age(click.ParamType):
    """``--older-than``: a duration of 0 or more (``7d``, ``12h``, ``3600``)."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float):
            return value
        try:
            return _duration(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is not a duration: pass seconds, or a string such as 12h, 7d or 1d12h", param, ctx)


def _local(instant: datetime | None) -> str:
    return "-" if instant is None else f"{instant.astimezone():%Y-%m-%d %H:%M:%S}"


def _cell(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _job_lines(page: operations.JobPage) -> list[str]:
    when = "ENDED" if page.order == "ended" else "ENQUEUED"
    header = ("ID", "STATUS", "QUEUE", "FUNCTION", "TRIES", when, "LAST ERROR / PROGRESS")
    rows = []
    for j in page.jobs:
        note = j.last_error if j.status == "failed" else (json.dumps(j.progress) if j.progress is not None else "")
        rows.append((j.id, j.status, _cell(j.queue, 20), _cell(j.func_name, 40), f"{j.attempts}/{j.max_attempts}",
                     _local(j.ended_at if page.order == "ended" else j.enqueued_at), _cell(note, 60)))
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]


@click.command()
@click.option("--queue", "-q", "queues", multiple=True, callback=_queue_names("the queue name"),
              help="Only this queue's jobs (repeatable).")
@click.option("--status", "-s", "statuses", multiple=True, type=click.Choice(STATUSES),
              help="Only jobs with this status (repeatable). Only ended ones: the history, most recently ended first.")
@click.option("--function", "-f", default=None, callback=_names("the function"), metavar="DOTTED.PATH",
              help="Only jobs of this function.")
@click.option("--since", default=None, callback=_moment, metavar="TIME|DURATION",
              help="Enqueued (ended, for ended statuses) at or after this: a time, or a duration ago (1h, 7d).")
@click.option("--until", default=None, callback=_moment, metavar="TIME|DURATION",
              help="Enqueued (ended, for ended statuses) before this: a time, or a duration ago.")
@click.option("--limit", "-n", default=50, show_default=True, type=click.IntRange(1, 10_000),
              help="Jobs per page.")
@click.option("--after", default=None, metavar="JOB_ID", help="The page after this job (the cursor printed last).")
@click.option("--scan", default=operations.SCAN, show_default=True, type=click.IntRange(1, 10_000_000),
              help="Without --status (or with deferred), examine at most this many jobs per page.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: jobs, next_after, order, examined, partial.")
@dsn_option
@_friendly
def jobs(queues: tuple[str, ...], statuses: tuple[str, ...], function: str | None, since: Any, until: Any,
         limit: int, after: str | None, scan: int, as_json: bool, dsn: str | None) -> None:
    """List jobs, newest first, a page at a time (see docs/operations.md)."""
    if scan < limit:
        raise click.UsageError(f"--scan {scan} is less than --limit {limit}")
    page = operations.list_jobs(queues=queues, statuses=statuses, function=function, since=since, until=until,
                                after=after, limit=limit, scan=scan, dsn=dsn)
    if as_json:
        click.echo(json.dumps(page.to_dict(), indent=2))
        return
    for line in _job_lines(page) if page.jobs else []:
        click.echo(line)
    order = "most recently ended first" if page.order == "ended" else "newest first"
    found = f"{len(page.jobs)} job(s), {order}"
    if page.partial:
        found += f"; the page stopped after examining {page.examined:,} jobs (--scan)"
    if page.next_after:
        click.echo(f"{found}; next page: --after {page.next_after}", err=True)
    else:
        click.echo(f"{found}; no more", err=True)


_SHOWN_LAST = ("errors", "exc_info", "worker", "checked_at")


def _show_lines(d: dict[str, Any]) -> list[str]:
    width = max(len(k) for k in d) + 1
    lines = []
    for key, value in d.items():
        if key in _SHOWN_LAST or (key == "progress" and value is None):
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        lines.append(f"{key + ':':<{width}} {text}")
    worker = d.get("worker")
    if worker:
        state = ("alive" if worker["alive"] else "stopped" if worker["stopped_at"]
                 else "lost (no heartbeat within its lease)")
        lines.append(f"{'worker:':<{width}} {worker['name']} on {worker['hostname']}, pid {worker['pid']}: {state}, "
                     f"last heartbeat {worker['heartbeat_at']}")
    errors = d.get("errors") or []
    lines.append(f"errors: {len(errors)}" if errors else "errors: none")
    for e in errors:
        head = f"  attempt {e.get('attempt', '?')} at {e.get('at', '?')}"
        if e.get("worker"):
            head += f" on {e['worker']}"
        lines.append(f"{head}: {e.get('type', '?')}: {e.get('message', '')}".rstrip(": "))
        lines += ["    " + line for line in str(e.get("traceback") or e.get("error") or "").rstrip().splitlines()]
    if d.get("exc_info") and not errors:  # e.g. an expired job's reason: no attempt failed
        lines.append("exc_info:")
        lines += ["    " + line for line in d["exc_info"].rstrip().splitlines()]
    return lines


@click.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: every column, and the worker.")
@dsn_option
@_friendly
def show(job_id: str, as_json: bool, dsn: str | None) -> None:
    """Every field of one job, and every failed attempt with its traceback."""
    details = operations.job_details(job_id, dsn)
    if as_json:
        click.echo(json.dumps(details, indent=2))
        return
    for line in _show_lines(details):
        click.echo(line)


@click.command()
@click.option("--status", "-s", "statuses", multiple=True, required=True, type=click.Choice(STATUSES),
              help=f"Delete jobs with this status (repeatable): {', '.join(ENDED_STATUSES)}.")
@click.option("--older-than", required=True, type=_Age(), metavar="DURATION",
              help="That ended more than this long ago: seconds, or e.g. 12h, 7d, 1d12h (0: every one).")
@click.option("--queue", "-q", default=None, callback=_queue_names("the queue name"), help="Only this queue's jobs.")
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1, 100_000),
              help="Jobs deleted per transaction.")
@click.option("--dry-run", is_flag=True, help="Count them; delete nothing.")
@dsn_option
@_friendly
def purge(statuses: tuple[str, ...], older_than: float, queue: str | None, batch_size: int, dry_run: bool,
          dsn: str | None) -> None:
    """Delete ended jobs by status and age, in batches (a progress bar on a terminal)."""
    live = [s for s in statuses if s not in ENDED_STATUSES]
    if live:
        raise click.BadParameter(f"{live[0]!r} is a live status: purge deletes ended jobs only "
                                 f"({', '.join(ENDED_STATUSES)}); cancel a job to end it", param_hint="'--status'")
    with contextlib.ExitStack() as stack:
        bar = _Bar(stack) if sys.stderr.isatty() and not dry_run else None
        result = operations.purge(statuses, older_than, queue=queue, batch_size=batch_size, dry_run=dry_run,
                                  progress=bar, dsn=dsn)
    what = f"{'/'.join(result.statuses)} job(s){f' of queue {result.queue}' if result.queue else ''} " \
           f"that ended before {_local(result.cutoff)}"
    if dry_run:
        click.echo(f"Would delete {result.matched:,} {what} (dry run: nothing deleted).")
    else:
        click.echo(f"Deleted {result.deleted:,} {what}.")


class _Bar:
    """purge's progress bar on stderr (a terminal's), made once the jobs to delete are counted."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self.stack = stack
        self.bar: Any = None

    def __call__(self, deleted: int, matched: int) -> None:
        if self.bar is None:
            self.bar = self.stack.enter_context(
                click.progressbar(length=matched, label="Purging", file=sys.stderr, show_pos=True))
        self.bar.update(deleted - self.bar.pos)


_DEFAULTS = health.Thresholds()
_THRESHOLD_OPTIONS = [
    click.option("--max-transaction-age", default=_DEFAULTS.max_transaction_age, type=_Age(), metavar="DURATION",
                 show_default=True, help="A transaction (or prepared one) holding back the xmin horizon longer: a "
                                         "problem. Seconds, or e.g. 30s, 5m."),
    click.option("--max-slot-xmin-age", default=_DEFAULTS.max_slot_xmin_age, type=click.IntRange(0), metavar="XIDS",
                 show_default=True, help="A replication slot's xmin older by more transactions: a problem."),
    click.option("--max-dead-rows", default=_DEFAULTS.max_dead_rows, type=click.IntRange(0), metavar="N",
                 show_default=True, help="More dead rows in pgqueue.jobs than this and than --max-dead-ratio of the "
                                         "live ones: a problem."),
    click.option("--max-dead-ratio", default=_DEFAULTS.max_dead_ratio, type=click.FloatRange(0), metavar="RATIO",
                 show_default=True, help="See --max-dead-rows."),
    click.option("--max-claim-index-bloat", default=_DEFAULTS.max_claim_index_bloat, type=click.FloatRange(0),
                 metavar="FACTOR", show_default=True,
                 help="The claim index bigger than this many times what its entries need, and than "
                      "--min-claim-index-mb: a problem."),
    click.option("--min-claim-index-mb", default=_DEFAULTS.min_claim_index_mb, type=click.FloatRange(0),
                 metavar="MB", show_default=True, help="See --max-claim-index-bloat."),
    click.option("--stuck-margin", default=_DEFAULTS.stuck_margin, type=_Age(), metavar="DURATION",
                 show_default=True, help="A running job this long past its timeout: a problem."),
]


def threshold_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The doctor's thresholds as options (``pgqueue doctor``, ``dashboard``, ``metrics``), given to the
    command as one ``thresholds`` argument (a health.Thresholds)."""
    names = [f.name for f in dataclasses.fields(health.Thresholds)]

    @functools.wraps(command)
    def with_thresholds(**kwargs: Any) -> Any:
        limits = health.Thresholds(**{name: kwargs.pop(name) for name in names})
        return command(thresholds=limits, **kwargs)

    for option in reversed(_THRESHOLD_OPTIONS):
        with_thresholds = option(with_thresholds)
    return with_thresholds


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object: ok, checked_at, thresholds, findings.")
@threshold_options
@dsn_option
@_friendly
def doctor(as_json: bool, thresholds: health.Thresholds, dsn: str | None) -> None:
    """Check what in PostgreSQL hurts the queue; exit 1 if anything is wrong (see docs/operations.md)."""
    report = health.health(dsn, thresholds)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        width = max(len(c) for c in health.CHECKS)
        for f in report.findings:
            click.echo(f"{f.severity.upper() if f.severity == 'problem' else f.severity:<7}  "
                       f"{f.check.replace('_', ' '):<{width}}  {f.summary}")
        notices = sum(f.severity == "notice" for f in report.findings)
        click.echo(f"{len(report.problems)} problem(s), {notices} notice(s)")
    if not report.ok:
        sys.exit(1)


COMMANDS = [jobs, show, purge, doctor]
