"""``pgqueue cancel`` and ``pgqueue show``: commands about single jobs, thin over the Python API. Added to the
``pgqueue`` group by pgqueue.cli (kept apart for size)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

import click

from . import monitor
from .exceptions import NoSuchJobError
from .job import Job


def _time(when: datetime | None) -> str:
    return "-" if when is None else f"{when:%Y-%m-%d %H:%M:%S %Z}"


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "-"


def job_lines(job: Job) -> list[str]:
    """What ``pgqueue show`` prints of one job, a field a line."""
    progress = job.progress
    return [
        f"id:        {job.id}",
        f"status:    {job.status}",
        f"queue:     {job.queue}",
        f"call:      {job.get_call_string()}",
        f"attempts:  {job.attempts} (at most {job.max_attempts})",
        f"snoozes:   {job.snoozes}",
        f"progress:  {'-' if progress is None else f'{progress}, at {_time(progress.at)}'}",
        f"worker:    {job.worker_name or '-'}",
        f"enqueued:  {_time(job.enqueued_at)}",
        f"scheduled: {_time(job.scheduled_at)}",
        f"started:   {_time(job.started_at)}",
        f"ended:     {_time(job.ended_at)}",
        f"error:     {_last_line(job.exc_info)}",
    ]


def add_commands(group: click.Group, friendly: Callable[[Any], Any], dsn_option: Callable[[Any], Any]) -> None:
    """Add ``cancel`` and ``show`` to ``group`` (``friendly`` and ``dsn_option``: pgqueue.cli's)."""

    @group.command()
    @click.argument("job_ids", nargs=-1, required=True)
    @dsn_option
    @friendly
    def cancel(job_ids: tuple[str, ...], dsn: str | None) -> None:
        """Cancel jobs that have not ended; a running one is stopped by its worker.

        One line per JOB_ID: canceled, not found, or not canceled because it has ended. Exits 1 if any job was
        not canceled."""
        results = monitor.cancel(list(dict.fromkeys(job_ids)), dsn)
        for r in results:
            if r.canceled:
                click.echo(f"{r.id}: canceled{' (it was running: its worker stops it)' if r.running else ''}")
            elif r.status is None:
                click.echo(f"{r.id}: not found")
            else:
                click.echo(f"{r.id}: not canceled: it has ended ({r.status})")
        if not all(r.canceled for r in results):
            sys.exit(1)

    @group.command()
    @click.argument("job_ids", nargs=-1, required=True)
    @dsn_option
    @friendly
    def show(job_ids: tuple[str, ...], dsn: str | None) -> None:
        """A job's status, call, attempts, snoozes, progress, times and last error, a field a line.

        Several JOB_IDs: a blank line between jobs. Exits 1 after the others if one is not found."""
        missing = []
        for n, job_id in enumerate(dict.fromkeys(job_ids)):
            try:
                job = Job.fetch(job_id, dsn)
            except NoSuchJobError:
                missing.append(job_id)
                continue
            if n:
                click.echo()
            click.echo("\n".join(job_lines(job)))
        if missing:
            raise NoSuchJobError(f"no job with id {', '.join(map(repr, missing))}")
