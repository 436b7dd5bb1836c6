"""What the ``pgqueue`` commands share: the ``--dsn`` option, checks of names and durations, and one
``Error:`` line for pgqueue's and the database's errors. Commands live in :mod:`pgqueue.cli` and in modules of
their own, which import these from here."""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
import psycopg

from ._notify import check_queue_name
from .exceptions import PgQueueError

F = TypeVar("F", bound=Callable[..., Any])

dsn_option = click.option("--dsn", "-u", "dsn", default=None, metavar="URL",
                          help="PostgreSQL URL (default: $PGQUEUE_DATABASE_URL, $DATABASE_URL, else embedded).")


class _Seconds(click.FloatRange):
    """A duration in seconds: a finite number in range. FloatRange alone lets ``nan`` (no comparison holds)
    and ``inf`` through, which end in time.sleep's ValueError or OverflowError, or a database error."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value} is not a finite number of seconds.", param, ctx)
        return number


def _names(what: str, blank: str = " ") -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A callback refusing empty names (or made only of ``blank``): an unset shell variable
    (``pgqueue worker "$QUEUE"``) must not become a queue no job is ever on, or a module prefix no
    function is under."""
    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        values = value if isinstance(value, tuple) else (value,)
        if any(v is not None and not v.strip(blank) for v in values):
            raise click.BadParameter(f"{what} must not be empty.", ctx, param)
        return value
    return check


def _queue_names(what: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """_names, and each name one a queue may have (not too long, no NUL)."""
    not_empty = _names(what)

    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        not_empty(ctx, param, value)
        for name in value if isinstance(value, tuple) else (value,):
            try:
                if name is not None:
                    check_queue_name(name)
            except ValueError as exc:
                raise click.BadParameter(str(exc), ctx, param) from None
        return value
    return check


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
