"""The ``pgqueue`` command: thin over the Python API (parse, call, print)."""

from __future__ import annotations

import functools
import logging
import signal
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import click
import psycopg

from . import monitor
from .exceptions import PgQueueError

F = TypeVar("F", bound=Callable[..., Any])

dsn_option = click.option("--dsn", "-u", "dsn", default=None, metavar="URL",
                          help="PostgreSQL URL (default: $PGQUEUE_DATABASE_URL, $DATABASE_URL, else embedded).")


def _log_to_stderr(level: int) -> None:
    """pgqueue's own log lines, RQ-style (``14:23:01 Job OK (id)``); other libraries stay quiet."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    logger = logging.getLogger("pgqueue")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def _friendly(func: F) -> F:
    """One clear line and exit code 1 for pgqueue's errors: no traceback for a user's mistake."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PgQueueError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)
        except psycopg.Error as exc:  # e.g. permission denied: the server's own words, on one line
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            click.echo(f"Error: database error: {first}", err=True)
            sys.exit(1)
    return wrapper  # type: ignore[return-value]


@click.group()
@click.version_option(package_name="pgqueue")
def main() -> None:
    """pgqueue: job queues in PostgreSQL."""


@main.command()
@click.argument("queues", nargs=-1)
@click.option("--burst", "-b", is_flag=True, help="Exit 0 when nothing is runnable.")
@click.option("--concurrency", "-c", default=1, show_default=True, type=click.IntRange(min=1),
              help="Jobs run at once, each in a child process.")
@click.option("--name", "-n", default=None, help="Worker name (default HOST.PID).")
@click.option("--with-scheduler", is_flag=True,
              help="Accepted for RQ compatibility: every worker runs scheduled jobs when due.")
@click.option("--lease", default=30.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Seconds this worker's heartbeat keeps its jobs its own.")
@click.option("--poll-interval", default=None, type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Fallback poll when no notification comes (default 5); without LISTEN, the poll (default 1).")
@click.option("--listen/--no-listen", default=None,
              help="Sleep on LISTEN for new jobs, or only poll. Default: listen, except behind a transaction "
                   "pooler ($PGQUEUE_TRANSACTION_POOLING) without --listen-dsn.")
@click.option("--listen-dsn", default=None, metavar="URL",
              help="A direct URL of the same database to LISTEN on, when --dsn leads to a transaction pooler "
                   "(default: $PGQUEUE_LISTEN_DATABASE_URL).")
@click.option("--allow-module", "allow_modules", multiple=True, metavar="PREFIX",
              help="Only run job functions under this module prefix (repeatable).")
@click.option("--grace", type=click.FloatRange(min=0), default=None,
              help="On SIGTERM, stop jobs still running after this many seconds and requeue them "
                   "(default: wait for them to finish).")
@click.option("--give-back-after", default=0.1, show_default=True, type=click.FloatRange(min=0), metavar="SECONDS",
              help="Claimed jobs waiting behind a job that has run this long go back to their queue.")
@click.option("--simple", is_flag=True, help="Run jobs in this process (no child processes), like RQ's SimpleWorker.")
@click.option("--max-jobs", type=int, default=None, help="Exit after this many jobs.")
@click.option("--path", "-P", "paths", multiple=True, default=["."], show_default=True,
              help="Put this folder on sys.path, so job modules import from it (repeatable; as in RQ).")
@click.option("--quiet", "-q", is_flag=True, help="Log warnings and errors only.")
@click.option("--verbose", "-v", is_flag=True, help="Log debug messages too.")
@dsn_option
@_friendly
def worker(queues: tuple[str, ...], burst: bool, concurrency: int, name: str | None, with_scheduler: bool,
           lease: float, poll_interval: float | None, listen: bool | None, listen_dsn: str | None,
           allow_modules: tuple[str, ...], grace: float | None, give_back_after: float, simple: bool,
           max_jobs: int | None, paths: tuple[str, ...], quiet: bool, verbose: bool, dsn: str | None) -> None:
    """Run jobs from QUEUES (default: default), in the priority order given."""
    import os

    from .worker import SimpleWorker, Worker

    for path in reversed(paths):
        sys.path.insert(0, os.path.abspath(path))
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    _log_to_stderr(level)
    cls = SimpleWorker if simple else Worker
    w = cls(list(queues) or ["default"], dsn=dsn, name=name, concurrency=concurrency, lease=lease,
            poll_interval=poll_interval, allow_modules=allow_modules, grace=grace, give_back_after=give_back_after,
            listen=listen, listen_dsn=listen_dsn)
    w.work(burst=burst, max_jobs=max_jobs)


def _bar(count: int, widest: int, width: int = 40) -> str:
    return "█" * (max(1, round(count / widest * width)) if count else 0)


def _render_info(queues: tuple[str, ...], raw: bool, by_queue: bool, dsn: str | None) -> str:
    stats = monitor.queue_stats(list(queues) or None, dsn)
    workers = monitor.live_workers(dsn)
    if queues:
        workers = [w for w in workers if set(w.queues) & set(queues)]
    lines: list[str] = []
    if raw:
        lines += [f"queue {s.name} {s.queued}" for s in stats]
        lines += [f"worker {w.name} {w.state} {','.join(w.queues)}" for w in workers]
        return "\n".join(lines)
    widest = max([s.queued for s in stats] + [1])
    name_width = max([len(s.name) for s in stats] + [8])
    for s in stats:
        lines.append(f"{s.name:<{name_width}} |{_bar(s.queued, widest)} {s.queued}")
    lines.append(f"{len(stats)} queues, {sum(s.queued for s in stats)} jobs total")
    lines.append("")
    if by_queue:
        names = list(queues) or sorted({n for w in workers for n in w.queues})
        for name in names:
            here = [f"{w.name} ({w.state})" for w in workers if name in w.queues]
            lines.append(f"{name + ':':<{name_width + 1}} {', '.join(here) or '–'}")
    else:
        lines += [f"{w.name} {w.state}: {', '.join(w.queues)}" for w in workers]
    lines.append(f"{len(workers)} workers, {len(stats)} queues")
    lines.append("")
    lines.append(f"Updated: {datetime.now():%Y-%m-%d %H:%M:%S}")
    return "\n".join(lines)


@main.command()
@click.argument("queues", nargs=-1)
@click.option("--raw", "-r", is_flag=True, help="Print `queue NAME COUNT` and `worker NAME STATE QUEUES` lines.")
@click.option("--by-queue", "-R", is_flag=True, help="Group workers by queue.")
@click.option("--interval", "-i", type=float, default=None, help="Refresh every SECONDS until Ctrl-C.")
@dsn_option
@_friendly
def info(queues: tuple[str, ...], raw: bool, by_queue: bool, interval: float | None, dsn: str | None) -> None:
    """Queued jobs per queue, and workers with their state (like rqinfo)."""
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
@click.argument("queues", nargs=-1)
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
@click.option("--queue", "-q", default=None, help="With --all: only this queue's failed jobs.")
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
        click.echo(f"Not failed or not found: {', '.join(sorted(missing))}", err=True)
    if held or missing:
        sys.exit(1)


@main.command()
@dsn_option
@_friendly
def migrate(dsn: str | None) -> None:
    """Bring the database to pgqueue's newest schema (alembic; version table pgqueue.alembic_version)."""
    from ._migrate import migrate as do_migrate

    click.echo(f"pgqueue schema at revision {do_migrate(dsn)}")


@main.command()
@click.option("--sql", "as_sql", is_flag=True, required=True, help="Print the DDL.")
def schema(as_sql: bool) -> None:
    """Print the schema's DDL, for teams that apply SQL with their own tools."""
    from ._migrate import schema_sql

    click.echo(schema_sql())


@main.command()
@dsn_option
@_friendly
def demo(dsn: str | None) -> None:
    """Enqueue a few jobs, run a burst worker, show the results (uses the embedded server by default)."""
    from . import demo as demo_module

    _log_to_stderr(logging.INFO)
    demo_module.run(dsn)


if __name__ == "__main__":  # pragma: no cover
    main()
