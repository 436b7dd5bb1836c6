"""``pgqueue cancel``, thin over the Python API (``pgqueue show`` is in pgqueue._cli_ops). Added to the
``pgqueue`` group by pgqueue.cli (kept apart for size)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from . import monitor


def add_commands(group: click.Group, friendly: Callable[[Any], Any], dsn_option: Callable[[Any], Any]) -> None:
    """Add ``cancel`` to ``group`` (``friendly`` and ``dsn_option``: pgqueue.cli's)."""

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
