"""Suspending workers and pausing queues: ``suspend``, ``resume`` and ``is_suspended`` have the names of
RQ's ``rq.suspension`` (and ``pgqueue suspend`` / ``pgqueue resume`` those of ``rq suspend`` / ``rq
resume``); ``Queue.pause`` / ``Queue.resume`` pause one queue, which RQ cannot.

A pause is a row of ``pgqueue.pauses``. Writing it notifies the workers (channel ``pgqueue_control``, at
commit); each worker keeps the pauses in memory, and reads them again when told and at each fallback poll,
never per claim. A suspended worker, or one whose queues are all paused, finishes the jobs it runs and
claims no others. A pause given a duration ends by itself: its end is kept with it, and a pause whose end
has passed counts as gone wherever it is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from . import _options, _store
from ._db import shared_connection, translate_errors
from ._notify import pause_scope
from .connections import database

Duration = int | float | timedelta | str
_FOREVER = "None, for a pause that lasts until resumed"


def pause_seconds(duration: Duration | None) -> float | None:
    """``duration`` in seconds (None: no end). A duration is more than 0 seconds and at most 68 years:
    seconds, a timedelta, or a string such as ``"30m"``; ValueError or TypeError otherwise."""
    if duration is None:
        return None
    seconds = _options.seconds("duration", duration)
    if not 0 < seconds <= _options.INT32_MAX:
        raise ValueError(f"duration={duration!r} is not a pause's length: pass more than 0 seconds and at most "
                         f"{_options.INT32_MAX} (68 years), or {_FOREVER}")
    return seconds


def pause_scopes(dsn: str | None, queue: str | None, duration: Duration | None) -> datetime | None:
    """Pause ``queue`` (None: every worker) for ``duration``; returns when the pause ends (None: no end)."""
    scope, seconds = pause_scope(queue), pause_seconds(duration)
    with translate_errors(dsn):
        return _store.pause(shared_connection(dsn), scope, seconds).until


def resume_scopes(dsn: str | None, queues: Sequence[str | None]) -> list[str | None]:
    """End the pauses of ``queues`` (None: the suspension of every worker); returns those that were in force."""
    scopes = {pause_scope(q): q for q in queues}
    with translate_errors(dsn):
        return [scopes[s] for s in _store.resume(shared_connection(dsn), list(scopes))]


def paused(dsn: str | None, queue: str | None) -> bool:
    """Whether the pause of ``queue`` (None: of every worker) is in force."""
    scope = pause_scope(queue)
    with translate_errors(dsn):
        return any(row.scope == scope for row in _store.pauses(shared_connection(dsn)))


def suspend(dsn: Any = None, duration: Duration | None = None, *, connection: Any = None,
            ttl: Duration | None = None) -> datetime | None:
    """Suspend every worker (as ``rq suspend``): running jobs finish, no worker starts another until
    :func:`resume`, or until ``duration`` has passed (seconds, a timedelta or a string such as ``"30m"``;
    RQ's ``ttl``, which is taken too). Returns when the suspension ends, by the database's clock (None: when
    resumed). Suspending again replaces the duration. ``dsn`` or RQ's ``connection``: a URL or a
    :class:`pgqueue.Connection`, as RQ's ``suspend(connection)``."""
    if ttl is not None:
        if duration is not None:
            raise TypeError("suspend() takes duration= or RQ's ttl=, not both")
        duration = ttl
    return pause_scopes(database(dsn, connection, where="suspend()"), None, duration)


def resume(dsn: Any = None, *, connection: Any = None) -> bool:
    """End the suspension of :func:`suspend`; returns whether there was one. Paused queues stay paused."""
    return bool(resume_scopes(database(dsn, connection, where="resume()"), [None]))


def is_suspended(dsn: Any = None, *, connection: Any = None) -> bool:
    """Whether workers are suspended (by :func:`suspend` or ``pgqueue suspend``)."""
    return paused(database(dsn, connection, where="is_suspended()"), None)
