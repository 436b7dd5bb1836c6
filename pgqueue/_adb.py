"""Async connections, for :class:`pgqueue.AsyncQueue`: pgqueue's own psycopg ``AsyncConnection`` per event
loop and database, a caller's async connection joined for transactional enqueue, and :func:`arun`, the async
twin of :func:`pgqueue._db.run`.

An async connection belongs to the event loop it was made in (its lock and its waits are that loop's), and an
asyncio program may run several loops one after another (``asyncio.run`` twice, a test per loop): so each
running loop gets its own connections, made on first use. Those of a loop that has ended are closed when the
loop is garbage-collected, or when a new loop first asks for connections, whichever comes first.

The connections are made as :func:`pgqueue._db.connect` makes its own (the same settings, application name
and transaction-pooling mode), and :func:`arun` sends the statements an application waits on as
``pgqueue_<query>`` prepared statements, as :func:`pgqueue._db.run` does (unnamed in transaction-pooling
mode), waiting through psycopg's own non-blocking generators."""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg import pq
from psycopg.generators import execute as _execute

from ._config import resolve_dsn
from ._db import _Prepared, _text, connect_params, readable, translate_errors, unreachable
from .exceptions import ConfigurationError
from .sql import q, statement

AsyncConn = psycopg.AsyncConnection[Any]
_IDLE = pq.TransactionStatus.IDLE
_SPARE = 4  # idle connections kept per loop and database for enqueue_many's transactions


class _LoopConnections:
    """One event loop's connections: the shared autocommit one per DSN, and idle ones for transactions."""

    def __init__(self) -> None:
        self.shared: dict[str, AsyncConn] = {}
        self.spare: dict[str, list[AsyncConn]] = {}
        self.connecting: dict[str, asyncio.Lock] = {}

    def finish(self) -> None:
        """Close every connection at once (libpq's PQfinish: no await, for a loop that is gone)."""
        for conn in [*self.shared.values(), *(c for spare in self.spare.values() for c in spare)]:
            conn.pgconn.finish()
        self.shared.clear()
        self.spare.clear()


_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopConnections] = weakref.WeakKeyDictionary()
_finalizers: list[weakref.finalize[Any, Any]] = []


def _forget_parent_connections() -> None:
    """In a forked child: the parent's connections are not ours to use, nor to close (PQfinish would end the
    parent's sessions)."""
    for finalizer in _finalizers:
        finalizer.detach()
    _finalizers.clear()
    _loops.clear()


os.register_at_fork(after_in_child=_forget_parent_connections)


def _state() -> _LoopConnections:
    loop = asyncio.get_running_loop()
    state = _loops.get(loop)
    if state is None:
        for other, old in list(_loops.items()):  # loops that ended but are still referenced somewhere
            if other.is_closed():
                old.finish()
                del _loops[other]
        state = _loops[loop] = _LoopConnections()
        _finalizers.append(weakref.finalize(loop, state.finish))
    return state


async def aconnect(dsn: str | None = None, *, autocommit: bool = True, role: str = "", pooled: bool | None = None,
                   **kwargs: Any) -> AsyncConn:
    """A new async connection of pgqueue's own, made as :func:`pgqueue._db.connect` makes a sync one."""
    resolved, pooled = connect_params(resolve_dsn(dsn), role, pooled, kwargs)
    with translate_errors(resolved):
        try:
            conn = await psycopg.AsyncConnection.connect(resolved, autocommit=autocommit, connect_timeout=10,
                                                         **kwargs)
        except psycopg.OperationalError as exc:
            raise unreachable(resolved, exc) from None
        if autocommit and not pooled:
            await conn.execute(q("own_settings"))
        return conn


def _usable(conn: AsyncConn) -> bool:
    """As _db._usable: open, and not hung up on by the server while idle (one poll, no round trip)."""
    pgconn = conn.pgconn
    if pgconn.status != pq.ConnStatus.OK or conn.broken:
        return False
    if conn.lock.locked() or pgconn.transaction_status != _IDLE:
        return True  # in use by another task of this loop
    try:
        hung_up = readable(pgconn.socket, 0)
    except (OSError, ValueError):
        hung_up = True
    if hung_up:
        pgconn.finish()
    return not hung_up


async def shared_aconnection(dsn: str | None = None) -> AsyncConn:
    """This event loop's autocommit connection for ``dsn``, reconnected if it broke. Tasks of the loop take
    turns on it (psycopg's lock), as threads do on the sync shared connection."""
    resolved = resolve_dsn(dsn)
    state = _state()
    conn = state.shared.get(resolved)
    if conn is not None and _usable(conn):
        return conn
    lock = state.connecting.setdefault(resolved, asyncio.Lock())
    async with lock:  # one connect for the tasks that all found none
        conn = state.shared.get(resolved)
        if conn is None or not _usable(conn):
            conn = state.shared[resolved] = await aconnect(resolved, role="enqueue")
        return conn


@contextlib.asynccontextmanager
async def own_aconnection(dsn: str | None = None) -> AsyncIterator[AsyncConn]:
    """An autocommit connection that one task uses alone, for a transaction (enqueue_many's COPY); kept
    for reuse afterwards (a few per loop)."""
    resolved = resolve_dsn(dsn)
    state = _state()
    spare = state.spare.setdefault(resolved, [])
    conn = spare.pop() if spare else None
    if conn is None or not _usable(conn):
        conn = await aconnect(resolved, role="enqueue")
    try:
        yield conn
    finally:
        if not conn.closed and conn.info.transaction_status == _IDLE and len(spare) < _SPARE \
                and state.spare.get(resolved) is spare:
            spare.append(conn)
        else:
            conn.pgconn.finish()


_prepared: weakref.WeakKeyDictionary[AsyncConn, _Prepared] = weakref.WeakKeyDictionary()


def _last(results: list[pq.abc.PGresult], state: _Prepared) -> pq.abc.PGresult:
    for result in results:
        if result.status == pq.ExecStatus.FATAL_ERROR:
            raise pgerrors.error_from_result(result, encoding=state.encoding)
    if not results:
        raise psycopg.OperationalError("the server sent no result")
    return results[-1]


def _settle(pgconn: pq.abc.PGconn) -> None:
    """After a statement's wait was cancelled: read what is left of its answer if it is all in (psycopg's
    wait sent the server a cancel request and read the rest, if the statement was still running), or close
    the connection if not, whose state is then unknown."""
    try:
        pgconn.consume_input()
        while not pgconn.is_busy() and pgconn.get_result() is not None:
            pass
        if pgconn.is_busy():
            pgconn.finish()
    except psycopg.Error:
        pgconn.finish()


async def arun(conn: AsyncConn, name: str, params: Mapping[str, Any],
               make_row: Callable[[Sequence[Any]], Any] = tuple) -> list[Any]:
    """Run query ``name`` on pgqueue's own autocommit async ``conn`` as :func:`pgqueue._db.run` does: a
    statement prepared once per connection (unnamed in transaction-pooling mode), parameters as text, rows
    made by psycopg's loaders, through psycopg's non-blocking generators and its wait (which cancels the
    statement in the server if the task is cancelled). Broken, the connection is closed (the next call makes
    another), as it is when a task is cancelled while its statement is being prepared."""
    stmt, query, names = statement(name)
    state = _prepared.get(conn)
    if state is None:
        state = _prepared[conn] = _Prepared(conn)  # type: ignore[arg-type]  # reads what both kinds have
    encoding = state.encoding
    values = [value.encode(encoding) if type(value) is str and "\x00" not in value else _text(value, encoding)
              for value in map(params.__getitem__, names)]
    pgconn = conn.pgconn
    async with conn.lock:
        if pgconn.transaction_status != _IDLE:
            raise psycopg.ProgrammingError(f"arun({name!r}) needs an idle autocommit connection")
        try:
            if state.named and stmt not in state.names:
                pgconn.send_prepare(stmt, query)
                try:
                    _last(await conn.wait(_execute(pgconn)), state)
                except asyncio.CancelledError:  # prepared or not: unknown, so that session is done with
                    pgconn.finish()
                    raise
                state.names.add(stmt)
            if state.named:
                pgconn.send_query_prepared(stmt, values)
            else:
                pgconn.send_query_params(query, values)
            result = _last(await conn.wait(_execute(pgconn)), state)
        except asyncio.CancelledError:
            _settle(pgconn)
            raise
        except psycopg.OperationalError:
            pgconn.finish()
            raise
        state.loader.set_pgresult(result)
        return state.loader.load_rows(0, result.ntuples, make_row)


# -- a caller's connection -----------------------------------------------------------------------------
async def caller_aconnection(connection: Any) -> AsyncConn:
    """The psycopg ``AsyncConnection`` under what a caller passed as ``connection=`` to AsyncQueue: a psycopg
    AsyncConnection, or SQLAlchemy's async ``AsyncConnection`` or ``AsyncSession`` on the psycopg driver
    (``create_async_engine("postgresql+psycopg://...")``), whose transaction it begins if none has begun."""
    if isinstance(connection, psycopg.AsyncConnection):
        return connection
    try:
        from sqlalchemy.ext.asyncio import AsyncConnection as SAAsyncConnection
        from sqlalchemy.ext.asyncio import AsyncSession
    except ImportError:  # pragma: no cover - SQLAlchemy is a dependency
        SAAsyncConnection = AsyncSession = None  # type: ignore[assignment,misc]
    if AsyncSession is not None and isinstance(connection, AsyncSession):
        connection = await connection.connection()  # the session's connection for its transaction (autobegin)
    if SAAsyncConnection is not None and isinstance(connection, SAAsyncConnection):
        if not connection.in_transaction():
            await connection.begin()  # as caller_connection does: a transaction SQLAlchemy knows of
        raw = (await connection.get_raw_connection()).driver_connection
        if isinstance(raw, psycopg.AsyncConnection):
            return raw
        raise ConfigurationError(
            "connection= needs SQLAlchemy's async engine on the psycopg 3 driver "
            "(create_async_engine(\"postgresql+psycopg://...\")), not "
            f"{type(raw).__module__.split('.')[0]}: pgqueue runs its statements through psycopg")
    if isinstance(connection, psycopg.Connection) or type(connection).__module__.startswith("sqlalchemy."):
        raise ConfigurationError(
            f"connection= got a synchronous {type(connection).__name__}: AsyncQueue takes a psycopg "
            "AsyncConnection, or SQLAlchemy's AsyncConnection or AsyncSession; enqueue with pgqueue.Queue "
            "in synchronous code")
    raise ConfigurationError(
        "connection= takes a psycopg 3 AsyncConnection, a SQLAlchemy AsyncConnection or a SQLAlchemy "
        f"AsyncSession (on postgresql+psycopg://), not {type(connection).__module__}.{type(connection).__name__}")
