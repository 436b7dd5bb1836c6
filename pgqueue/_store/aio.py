"""The async side of the SQL gateway, for :class:`pgqueue.AsyncQueue`: the same statements (sql/*.sql), the
same parameters and the same row types as the sync functions of the same names, run on a psycopg
``AsyncConnection``: through psycopg's ``execute`` on a caller's connection (inside its transaction) or
with array parameters, else through :func:`pgqueue._adb.arun` (prepared, parameters as text)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import psycopg

from .. import _adb, _notify
from ..exceptions import ConfigurationError
from ..sql import q
from ._run import _one
from .jobs import CancelRow, CountRow, InsertedRow, JobRow, NowRow, SimpleInsertedRow, StatusRow
from .worker import NotifiedRow

AConn = psycopg.AsyncConnection[Any]
R = TypeVar("R", bound=tuple[Any, ...])


async def _execute(conn: AConn, name: str, params: dict[str, Any] | None, row: type[R]) -> list[R]:
    cur = await conn.execute(q(name), params)
    return [row._make(r) for r in await cur.fetchall()]  # type: ignore[attr-defined]


async def _fast(conn: AConn, name: str, params: dict[str, Any], row: type[R]) -> list[R]:
    return await _adb.arun(conn, name, params, row._make)  # type: ignore[attr-defined]


async def _rows(conn: AConn, caller: bool, name: str, params: dict[str, Any], row: type[R]) -> list[R]:
    return await (_execute(conn, name, params, row) if caller else _fast(conn, name, params, row))


async def insert_simple_job(conn: AConn, caller: bool, *, id: str, queue: str, func_name: str, args: str,
                            timeout: float) -> SimpleInsertedRow:
    return (await _rows(conn, caller, "insert_simple_job",
                        {"id": id, "queue": queue, "func_name": func_name, "args": args, "timeout": timeout},
                        SimpleInsertedRow))[0]


async def insert_job(conn: AConn, caller: bool, params: dict[str, Any]) -> list[InsertedRow]:
    return await _rows(conn, caller, "insert_job", params, InsertedRow)


async def insert_jobs(conn: AConn, params: dict[str, Any]) -> list[InsertedRow]:
    return await _execute(conn, "insert_jobs", params, InsertedRow)


async def wake_queues(conn: AConn, queues: Sequence[str]) -> NowRow:
    return (await _execute(conn, "wake_queues", {"queues": list(queues)}, NowRow))[0]


def copy_jobs(cur: psycopg.AsyncCursor[Any], simple: bool) -> AbstractAsyncContextManager[psycopg.AsyncCopy]:
    return cur.copy(q("copy_simple_jobs" if simple else "copy_jobs"))


async def find_live_duplicate(conn: AConn, caller: bool, *, id: str, unique_key: str | None) -> JobRow | None:
    return _one(await _rows(conn, caller, "find_live_duplicate", {"id": id, "unique_key": unique_key}, JobRow))


async def replace_unique(conn: AConn, caller: bool, params: dict[str, Any]) -> JobRow | None:
    """jobs.replace_unique, awaited (unique_key_conflict="replace")."""
    return _one(await _rows(conn, caller, "replace_unique", params, JobRow))


async def fetch_job(conn: AConn, id: str, caller: bool = False) -> JobRow | None:
    return _one(await _rows(conn, caller, "fetch_job", {"id": id}, JobRow))


async def job_status(conn: AConn, id: str) -> str | None:
    row = _one(await _fast(conn, "job_status", {"id": id}, StatusRow))
    return None if row is None else row.status


async def cancel_job(conn: AConn, id: str) -> bool:
    """As _store.cancel_job; wakes the waiters of the dependents canceled with the job too."""
    rows = await _fast(conn, "cancel_job", {"id": id, "notify": _notify.fits(id), "stop": _notify.cancel_fits(id)},
                       CancelRow)
    payloads = _notify.payloads(rows[0].dependents_canceled) if rows else []
    if payloads:
        await _execute(conn, "notify_done", {"payloads": payloads}, NotifiedRow)
    return bool(rows)


async def queue_count(conn: AConn, queue: str) -> int:
    return (await _fast(conn, "queue_count", {"queue": queue}, CountRow))[0].jobs


async def listen_done(conn: AConn) -> None:
    """LISTEN for ended jobs (see the sync listen()); refused in transaction-pooling mode."""
    if conn.prepare_threshold is None:
        raise ConfigurationError("LISTEN needs a direct connection, not one through a transaction pooler "
                                 "(set PGQUEUE_LISTEN_DATABASE_URL, or poll)")
    await conn.execute(q("listen_done"))
