"""``pgqueue dashboard``: parse, check, then serve (pgqueue.dashboard.server). Its own module so that the
CLI imports the optional extra (Starlette, Jinja2, uvicorn) only when this command runs."""

from __future__ import annotations

import sys

import click

from ._cli_ops import threshold_options
from .exceptions import ConfigurationError
from .health import Thresholds

EXTRA = "pip install 'pgqueue[dashboard]'"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Any but a loopback one needs --token.")
@click.option("--port", "-p", default=9181, show_default=True, type=click.IntRange(0, 65535), help="Port.")
@click.option("--read-only", is_flag=True, help="Show no action and refuse every one (requeue, cancel, delete, "
                                                 "pause, ...).")
@click.option("--token", envvar="PGQUEUE_DASHBOARD_TOKEN", default=None, metavar="TOKEN", show_envvar=True,
              help="Every request must carry this token (login form, or Authorization: Bearer TOKEN).")
@click.option("--refresh", default=5.0, show_default=True, type=click.FloatRange(min=0), metavar="SECONDS",
              help="Live refresh of open pages every SECONDS (0: none).")
@click.option("--root-path", default="", metavar="PATH", help="URL prefix when served behind a proxy under one "
                                                               "(e.g. /pgqueue).")
@threshold_options
@click.option("--dsn", "-u", "dsn", default=None, metavar="URL",
              help="PostgreSQL URL (default: $PGQUEUE_DATABASE_URL, $DATABASE_URL, else embedded).")
def dashboard(host: str, port: int, read_only: bool, token: str | None, refresh: float, root_path: str,
              thresholds: Thresholds, dsn: str | None) -> None:
    """The web dashboard: queues, jobs, workers, the database's health (judged by the --max-... options, as
    `pgqueue doctor`'s), and actions on them."""
    try:
        from .dashboard.server import serve
    except ImportError as exc:
        raise ConfigurationError(f"the dashboard needs its extra ({exc.name} is missing): {EXTRA}") from None
    if token is not None and not token.strip():
        raise click.BadParameter("must not be empty.", param_hint="--token")
    try:
        serve(dsn, host, port, read_only=read_only, token=token, refresh=refresh, root_path=root_path.rstrip("/"),
              thresholds=thresholds)
    except ValueError as exc:  # a non-loopback host without a token: one line, nothing listens
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
