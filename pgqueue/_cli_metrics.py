"""``pgqueue metrics``: serve the database's Prometheus gauges (pgqueue.metrics). A module of its own, so that
the CLI imports prometheus-client (the optional extra ``pgqueue[metrics]``) only when this command runs."""

from __future__ import annotations

import logging

import click

from ._cli_ops import threshold_options
from ._notify import check_queue_name
from .health import Thresholds


@click.command()
@click.option("--port", "-p", type=click.IntRange(0, 65535), default=9188, show_default=True,
              help="Port to serve /metrics on (0: any free one).")
@click.option("--addr", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--queue", "-q", "queues", multiple=True, metavar="QUEUE",
              help="Always report this queue, zeros included (repeatable; queues seen with jobs are reported).")
@threshold_options
@click.option("--dsn", "-u", "dsn", default=None, metavar="URL",
              help="PostgreSQL URL (default: $PGQUEUE_DATABASE_URL, $DATABASE_URL, else embedded).")
def metrics(port: int, addr: str, queues: tuple[str, ...], thresholds: Thresholds, dsn: str | None) -> None:
    """Serve the database's Prometheus gauges: live jobs by queue and status, the oldest runnable job's age,
    live workers, the problems `pgqueue doctor` finds (judged by the --max-... options, as the doctor's). One
    per database is enough; each worker serves its own counters (--metrics-port)."""
    from . import metrics as metrics_module
    from .cli import _log_to_stderr

    for name in queues:
        try:
            check_queue_name(name)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--queue") from None
    _log_to_stderr(logging.INFO)
    metrics_module.serve(port, addr, dsn, queues, thresholds=thresholds)
