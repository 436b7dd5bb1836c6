"""Connections: pgqueue's own (one per process and DSN), a caller's psycopg or SQLAlchemy connection
joined for transactional enqueue, and the translation of driver errors into pgqueue's.

pgqueue's own connections come in two modes, chosen where they are made (:func:`connect`):

- direct (the default): session settings (``own_settings``), and the statements of :func:`run` prepared
  once per connection as ``pgqueue_<query>``;
- transaction pooling (``PGQUEUE_TRANSACTION_POOLING``, ``configure()``): nothing that outlives a
  transaction. No session ``SET``; :func:`run` sends unnamed statements, and psycopg prepares nothing
  (``prepare_threshold=None``, which is also how :func:`pooled` tells the mode). Settings a plan needs
  are sent with its statement, for its own transaction only (``run(..., local=...)``)."""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg import pq
from psycopg.adapt import Transformer

from ._config import POOLING_VAR, resolve_dsn, transaction_pooling
from .exceptions import ConfigurationError, DatabaseUnavailable, PgQueueError, SchemaMissing, SchemaOutdated
from .sql import q, statement

_cache: dict[str, psycopg.Connection[Any]] = {}
_spare: dict[str, list[psycopg.Connection[Any]]] = {}  # own_connection's, idle
_cache_lock = threading.Lock()


def _describe(dsn: str) -> str:
    """The DSN without its password, for messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparseable DSN>"
    host = info.get("host") or "localhost"
    port = info.get("port") or "5432"
    return f"{info.get('user') or ''}@{host}:{port}/{info.get('dbname') or ''}".lstrip("@")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class translate_errors:  # noqa: N801 - used as a function: ``with translate_errors(dsn):``
    """Turn driver errors that mean "the database is not usable" into pgqueue's exceptions. A class,
    not a generator context manager: it wraps every enqueue, and costs a quarter as much
    (0.38 against 1.47 µs, timeit)."""

    __slots__ = ("dsn",)

    def __init__(self, dsn: str | None = None) -> None:
        self.dsn = dsn

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc is None or isinstance(exc, PgQueueError):
            return
        if isinstance(exc, pgerrors.UndefinedColumn) or (
                isinstance(exc, pgerrors.UndefinedTable) and "pgqueue." in str(exc)
                and not any(f"pgqueue.{t}" in str(exc) for t in ("jobs", "workers"))):
            raise SchemaOutdated(_first_line(exc)) from None
        if isinstance(exc, (pgerrors.UndefinedTable, pgerrors.InvalidSchemaName, pgerrors.UndefinedObject)):
            if "pgqueue" in str(exc):
                raise SchemaMissing(_first_line(exc)) from None
        elif isinstance(exc, psycopg.OperationalError) and _unreachable(exc):
            where = f" at {_describe(self.dsn)}" if self.dsn else ""
            raise DatabaseUnavailable(f"cannot reach PostgreSQL{where}: {_first_line(exc)}") from None
        elif isinstance(exc, _LOST_STATEMENT) and '"pgqueue_' in str(exc):
            # A statement prepared on this connection is gone, or one of its name is there already: the
            # server session changed under the connection, as it does behind a transaction pooler.
            raise ConfigurationError(
                f"{_first_line(exc)}: the database URL seems to lead to a transaction pooler; set "
                f"{POOLING_VAR}=1 (see pgqueue's docs/transactional.md, PgBouncer)") from None


def _unreachable(exc: psycopg.OperationalError) -> bool:
    """Whether the error means the database cannot be used now: no SQLSTATE (the client lost the
    connection), a connection exception (class 08), or the server shutting down or starting (57P).
    psycopg's OperationalError also covers statement errors such as a lock timeout or a program limit
    (class 54): those are the statement's, not the connection's."""
    state = exc.sqlstate
    return state is None or state.startswith(("08", "57P"))


_LOST_STATEMENT = (pgerrors.InvalidSqlStatementName, pgerrors.DuplicatePreparedStatement)


def connect(dsn: str | None = None, *, autocommit: bool = True, role: str = "", pooled: bool | None = None,
            **kwargs: Any) -> psycopg.Connection[Any]:
    """A new connection of pgqueue's own, with errors translated. ``role`` names what it is for in
    ``pg_stat_activity.application_name`` (``pgqueue:enqueue``, ``pgqueue:HOST.PID:claim``), unless the
    DSN sets an application_name of its own. ``pooled``: in transaction-pooling mode (see the module's
    docstring); None: as configured (``_config.transaction_pooling``)."""
    resolved, pooled = connect_params(resolve_dsn(dsn), role, pooled, kwargs)
    with translate_errors(resolved):
        try:
            conn = psycopg.connect(resolved, autocommit=autocommit, connect_timeout=10, **kwargs)
        except psycopg.OperationalError as exc:  # whatever the reason (a refused login too), not reached
            raise unreachable(resolved, exc) from None
        if autocommit and not pooled:
            conn.execute(q("own_settings"))  # SETs, not startup options, so PgBouncer accepts them
        return conn


def connect_params(resolved: str, role: str, pooled: bool | None, kwargs: dict[str, Any]) -> tuple[str, bool]:
    """What :func:`connect` (and pgqueue._adb's async connect) checks and adds before connecting to the
    resolved DSN: refuses a URL that is not PostgreSQL's, and sets ``kwargs``'s prepare_threshold (in
    transaction-pooling mode) and application_name. Returns the DSN and whether the connection is pooled."""
    if pooled is None:
        pooled = transaction_pooling()
    if pooled:
        kwargs["prepare_threshold"] = None
    scheme, sep, _ = resolved.partition("://")
    if sep and scheme not in ("postgresql", "postgres"):
        raise ConfigurationError(f"invalid database URL: pgqueue needs PostgreSQL (postgresql://...), not {scheme}://")
    try:
        params = psycopg.conninfo.conninfo_to_dict(resolved)
    except psycopg.ProgrammingError as exc:
        raise ConfigurationError(f"invalid database URL: {_first_line(exc)}") from None
    if "application_name" not in params and "application_name" not in kwargs:
        kwargs["application_name"] = application_name(role)
    return resolved, pooled


def unreachable(resolved: str, exc: psycopg.OperationalError) -> DatabaseUnavailable:
    return DatabaseUnavailable(f"cannot reach PostgreSQL at {_describe(resolved)}: {_first_line(exc)}")


def application_name(role: str) -> str:
    """``pgqueue:ROLE``, cut to the 63 bytes PostgreSQL keeps (the end, which names the role, is kept)."""
    name = f"pgqueue:{role}" if role else "pgqueue"
    data = name.encode()
    return name if len(data) <= 63 else "pgqueue:…" + data[-(63 - 11):].decode(errors="ignore")


def pooled(conn: psycopg.Connection[Any]) -> bool:
    """Whether ``conn`` (one of pgqueue's own) is in transaction-pooling mode: it must not keep state in
    its server session, which belongs to whichever client the pooler gives it to next."""
    return conn.prepare_threshold is None


def _forget_parent_connections() -> None:
    """In a forked child, at once: the parent's sockets are not ours to use or close (psycopg leaves a
    connection made in another process open when it is dropped). Run at fork rather than checked on every
    call: getpid() is a system call, and shared_connection() runs on every enqueue. The lock is new too:
    another thread of the parent may have held it when the process forked."""
    global _cache_lock
    _cache_lock = threading.Lock()
    _cache.clear()
    _spare.clear()


os.register_at_fork(after_in_child=_forget_parent_connections)


def shared_connection(dsn: str | None = None) -> psycopg.Connection[Any]:
    """This process's autocommit connection for ``dsn``, reconnected if it broke. psycopg serialises
    use of one connection across threads, so one per process is enough for single statements."""
    resolved = resolve_dsn(dsn)
    with _cache_lock:
        conn = _cache.get(resolved)
        if conn is None or not _usable(conn):
            conn = connect(resolved, role="enqueue")
            _cache[resolved] = conn
        return conn


@contextlib.contextmanager
def own_connection(dsn: str | None = None) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection used by one caller at a time, for a transaction of several statements
    (enqueue_many's COPY): on the shared connection, another thread's statement, or the caller's own
    generator enqueueing, would join that transaction or wait for it. Kept for reuse afterwards (a few)."""
    resolved = resolve_dsn(dsn)
    with _cache_lock:
        spare = _spare.setdefault(resolved, [])
        conn = spare.pop() if spare else None
    if conn is None or not _usable(conn):
        conn = connect(resolved, role="enqueue")
    try:
        yield conn
    finally:
        with _cache_lock:
            idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            # Not kept if _spare was cleared meanwhile (close_shared_connections, or a fork).
            if idle and len(spare) < 4 and _spare.get(resolved) is spare:
                spare.append(conn)
                conn = None
        if conn is not None:
            conn.close()


def _usable(conn: psycopg.Connection[Any]) -> bool:
    """Whether an idle connection of ours can take the next statement: open, and not hung up on by the
    server (a restart, pg_terminate_backend). Nothing is due on an idle connection that does not LISTEN,
    so a readable socket means the server's last words (a FATAL error, then EOF): closed here. One poll,
    no round trip.

    Another thread may be using the connection (shared_connection's is the process's): then it is busy,
    not hung up, and the socket may be readable with that thread's answer. So the check runs only while
    holding the connection's lock, taken without waiting; held elsewhere, the connection counts as usable
    (closing it under the other thread would leave that thread polling a descriptor number that the next
    connection reuses, for ever)."""
    pgconn = conn.pgconn
    if pgconn.status != pq.ConnStatus.OK or conn.broken:
        return False
    if not conn.lock.acquire(blocking=False):
        return True
    try:
        if pgconn.transaction_status != pq.TransactionStatus.IDLE:
            return True
        try:
            hung_up = readable(pgconn.socket, 0)
        except (OSError, ValueError):
            hung_up = True
        if hung_up:
            conn.close()
        return not hung_up
    finally:
        conn.lock.release()


def close_busy_connections() -> None:
    """Close this process's own connections that a statement interrupted mid-way left busy (not idle), so
    that the next caller gets a new one: after a job that a cancel interrupted, in the job's process. One
    whose lock another thread holds is that thread's, busy with its statement (a SimpleWorker's job shares
    the process with the application's threads): left alone."""
    with _cache_lock:
        for dsn, conn in list(_cache.items()):
            if conn.closed or not conn.lock.acquire(blocking=False):
                continue
            try:
                if conn.pgconn.transaction_status != pq.TransactionStatus.IDLE:
                    conn.close()
                    del _cache[dsn]
            finally:
                conn.lock.release()


def close_shared_connections() -> None:
    with _cache_lock:
        for conn in [*_cache.values(), *(c for spare in _spare.values() for c in spare)]:
            conn.close()  # all this process's own: a fork cleared the parent's from the child's cache
        _cache.clear()
        _spare.clear()


class _Prepared:
    """What run() keeps per connection: the statements prepared on it (none in transaction-pooling mode:
    ``named`` is False), psycopg's loaders for it, and the answer to the statement in flight so far."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.names: set[bytes] = set()
        self.named = not pooled(conn)
        self.encoding = conn.info.encoding
        self.loader = Transformer(conn)
        self.pipelined = False  # the statement in flight went in libpq's pipeline mode (with ``local``)
        self.results: list[pq.abc.PGresult] = []


_prepared: weakref.WeakKeyDictionary[psycopg.Connection[Any], _Prepared] = weakref.WeakKeyDictionary()


def run(conn: psycopg.Connection[Any], name: str, params: Mapping[str, Any],
        make_row: Callable[[Sequence[Any]], Any] = tuple, local: str | None = None) -> list[Any]:
    """Run query ``name`` of queries.sql on pgqueue's own autocommit ``conn``, straight through libpq:
    prepared once per connection (unnamed, each time, in transaction-pooling mode), parameters sent as
    text, result rows loaded by psycopg's loaders and made by ``make_row`` (a row type's ``_make``).

    ``local``: a query without parameters that runs first, in the same implicit transaction and round
    trip (libpq's pipeline mode, one Sync): ``set_config(..., true)`` calls that give the statement the
    plan settings a session would otherwise keep, and end with its transaction.

    For the statements an application runs once per call and waits on, enqueue above all: psycopg's
    cursor machinery costs about as much client CPU as the round trip itself, and that time is latency
    (the INSERT alone: ~135 µs of client CPU through a cursor, ~60 µs through this; a whole enqueue went
    from 175-197 to 108-118 µs, docs/performance.md). Parameters are str, int, float, bool,
    timezone-aware datetime or None; the server infers their types from the query."""
    try:
        with conn.lock:
            state = _send(conn, name, params, local)
            result = _result(conn.pgconn, state)
            state.loader.set_pgresult(result)
            return state.loader.load_rows(0, result.ntuples, make_row)
    except BaseException as exc:
        # Broken, or interrupted mid-statement (Ctrl-C, a job's timeout or cancel raised in the job's thread):
        # shared_connection() makes a new one. A statement's own error leaves the connection as it was.
        if not isinstance(exc, psycopg.Error) or isinstance(exc, psycopg.OperationalError):
            conn.close()
        raise


def send(conn: psycopg.Connection[Any], name: str, params: Mapping[str, Any], local: str | None = None) -> None:
    """Send query ``name`` as run() does, without waiting for its answer: receive() reads it. For a
    connection that one caller uses alone (the worker's finisher)."""
    _send(conn, name, params, local)


def receive(conn: psycopg.Connection[Any], make_row: Callable[[Sequence[Any]], Any] = tuple) -> list[Any] | None:
    """The rows answering the statement send() sent, or None while the server is still working on it.
    Raises the statement's error, or OperationalError if the connection broke."""
    pgconn = conn.pgconn
    pgconn.flush()  # what libpq could not send at once (a big batch on a non-blocking connection)
    pgconn.consume_input()
    state = _prepared[conn]
    result = _collect(pgconn, state, block=False)
    if result is None:
        return None
    state.loader.set_pgresult(result)
    return state.loader.load_rows(0, result.ntuples, make_row)


def run_within(conn: psycopg.Connection[Any], name: str, params: Mapping[str, Any], timeout: float) -> int:
    """Run query ``name`` (no result rows) on pgqueue's own autocommit ``conn`` as an unnamed statement,
    giving up after ``timeout`` seconds: for a statement that must not hang when the network or the server
    stops answering (the worker's heartbeat). Returns the rows changed. On timeout the connection is
    closed and DatabaseUnavailable raised."""
    _, query, names = statement(name)
    pgconn, encoding = conn.pgconn, conn.info.encoding
    values = [_text(params[n], encoding) for n in names]
    deadline = time.monotonic() + timeout
    with conn.lock:
        pgconn.send_query_params(query, values)
        while True:
            sending = pgconn.flush()  # non-zero while part of the query is still to be sent
            if not sending:
                pgconn.consume_input()  # raises OperationalError if the connection broke
                if not pgconn.is_busy():
                    break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                conn.close()
                raise DatabaseUnavailable(f"no answer to {name} within {timeout:g} s")
            ready([pgconn.socket], [pgconn.socket] if sending else [], remaining)
        state = _prepared.get(conn)
        if state is None:
            state = _prepared[conn] = _Prepared(conn)
        result = _result(pgconn, state)
    return int(result.command_tuples or 0)


def _send(conn: psycopg.Connection[Any], name: str, params: Mapping[str, Any], local: str | None) -> _Prepared:
    stmt, query, names = statement(name)
    state = _prepared.get(conn)
    if state is None:
        state = _prepared[conn] = _Prepared(conn)
    pgconn = conn.pgconn
    if pgconn.transaction_status != pq.TransactionStatus.IDLE:
        raise psycopg.ProgrammingError(f"run({name!r}) needs an idle autocommit connection")
    encoding = state.encoding
    values = [value.encode(encoding) if type(value) is str and "\x00" not in value else _text(value, encoding)
              for value in map(params.__getitem__, names)]  # str inline: most parameters are
    if state.named and stmt not in state.names:
        pgconn.send_prepare(stmt, query)
        _result(pgconn, state)
        state.names.add(stmt)
    if local is not None:
        pgconn.enter_pipeline_mode()
        state.pipelined = True
        pgconn.send_query_params(statement(local)[1], None)
    if state.named:
        pgconn.send_query_prepared(stmt, values)
    else:
        pgconn.send_query_params(query, values)
    if local is not None:
        pgconn.pipeline_sync()
    return state


def _text(value: Any, encoding: str) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "t" if value else "f"
    elif isinstance(value, int):
        text = str(int(value))
    elif isinstance(value, float):
        text = repr(float(value))
    elif isinstance(value, datetime) and value.tzinfo is not None:
        text = value.isoformat()
    else:
        raise TypeError(f"run() cannot send {type(value).__name__} parameters")
    if "\x00" in text:
        raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
    return text.encode(encoding)


def _result(pgconn: pq.abc.PGconn, state: _Prepared) -> pq.abc.PGresult:
    """Send what libpq holds, wait for the server's answer and return its (last) result, or raise its
    error as psycopg's exception."""
    fd = pgconn.socket
    while pgconn.flush():
        ready([], [fd], None)
    result = _collect(pgconn, state, block=True)
    assert result is not None
    return result


def _collect(pgconn: pq.abc.PGconn, state: _Prepared, block: bool) -> pq.abc.PGresult | None:
    """Read the answer to what was sent, as far as it has come: its last result once all of it is in
    (raising its first error), else None (or, with ``block``, wait for the rest). In pipeline mode the
    answer is each statement's result, a None after each, and a PIPELINE_SYNC at its end."""
    while True:
        while pgconn.is_busy():
            if not block:
                return None
            readable(pgconn.socket, None)
            pgconn.consume_input()
        result = pgconn.get_result()
        if state.pipelined:
            if result is None:
                continue
            if result.status == pq.ExecStatus.PIPELINE_SYNC:
                break
        elif result is None:
            break
        state.results.append(result)
    results, state.results = state.results, []
    if state.pipelined:
        state.pipelined = False
        pgconn.exit_pipeline_mode()
    for result in results:  # a statement after a failed one in the pipeline is PIPELINE_ABORTED
        if result.status == pq.ExecStatus.FATAL_ERROR:
            raise pgerrors.error_from_result(result, encoding=state.encoding)
    if not results:
        raise psycopg.OperationalError("the server sent no result")
    return results[-1]


def readable(fd: int, timeout: float | None) -> bool:
    """Whether ``fd`` is readable within ``timeout`` seconds (None: wait). poll(), where there is one:
    select() refuses descriptors past FD_SETSIZE (1024), which a busy application server may reach.
    ready() for one descriptor, at half its cost (0.9 against 1.8 us): it runs twice per enqueue."""
    if _poll is None:  # pragma: no cover - Windows
        return bool(select.select([fd], [], [], timeout)[0])
    poll = _poll()
    poll.register(fd, select.POLLIN)
    return bool(poll.poll(None if timeout is None else timeout * 1000))


def ready(reads: list[int], writes: list[int], timeout: float | None) -> tuple[set[int], set[int]]:
    """Which of ``reads`` are readable and which of ``writes`` writable within ``timeout`` seconds (None:
    wait), as select() would say (a hung-up, failed or closed descriptor counts as ready), with poll() where
    there is one: a worker's sockets and child pipes may lie past FD_SETSIZE (1024)."""
    if _poll is None:  # pragma: no cover - Windows
        r, w, _ = select.select(reads, writes, [], timeout)
        return set(r), set(w)
    read_set, write_set = set(reads), set(writes)
    poll = _poll()
    for fd in read_set | write_set:
        poll.register(fd, (select.POLLIN if fd in read_set else 0) | (select.POLLOUT if fd in write_set else 0))
    readable_, writable_ = set(), set()
    for fd, events in poll.poll(None if timeout is None else timeout * 1000):
        if events & _READ_EVENTS and fd in read_set:
            readable_.add(fd)
        if events & _WRITE_EVENTS and fd in write_set:
            writable_.add(fd)
    return readable_, writable_


_FAILED = getattr(select, "POLLHUP", 0) | getattr(select, "POLLERR", 0) | getattr(select, "POLLNVAL", 0)
_READ_EVENTS = getattr(select, "POLLIN", 0) | _FAILED
_WRITE_EVENTS = getattr(select, "POLLOUT", 0) | _FAILED


_poll = getattr(select, "poll", None)


def caller_connection(connection: Any) -> psycopg.Connection[Any]:
    """The psycopg 3 connection under what a caller passed as ``connection=``: a psycopg Connection,
    a SQLAlchemy Connection, or a SQLAlchemy Session (its connection for the current transaction), or a
    scoped_session (its current Session)."""
    if isinstance(connection, psycopg.Connection):
        return connection
    try:
        from sqlalchemy.engine import Connection as SAConnection
        from sqlalchemy.orm import Session, scoped_session
    except ImportError:  # pragma: no cover - SQLAlchemy is a dependency
        SAConnection = Session = scoped_session = None  # type: ignore[assignment,misc]
    if scoped_session is not None and isinstance(connection, scoped_session):
        connection = connection()  # the scope's Session: Flask-SQLAlchemy's db.session is one
    if Session is not None and isinstance(connection, Session):
        connection = connection.connection()
    if SAConnection is not None and isinstance(connection, SAConnection):
        if not connection.in_transaction():
            # What SQLAlchemy does before a first statement of its own (autobegin). Without it, the job's
            # statements open a transaction SQLAlchemy does not know of: its commit() does nothing, and
            # the pool's rollback when the connection goes back loses the job.
            connection.begin()
        raw = connection.connection.driver_connection
        if isinstance(raw, psycopg.Connection):
            return raw
        raise ConfigurationError(
            f"connection= needs SQLAlchemy on the psycopg 3 driver, not {type(raw).__module__.split('.')[0]}: "
            "start the engine's URL with postgresql+psycopg:// (SQLAlchemy before 2.1 reads a plain postgresql:// "
            "as psycopg2; with Flask-SQLAlchemy, the URL is SQLALCHEMY_DATABASE_URI)"
        )
    if isinstance(connection, psycopg.AsyncConnection) or type(connection).__module__.startswith(
            "sqlalchemy.ext.asyncio"):
        raise ConfigurationError(
            f"connection= got an async {type(connection).__name__}: Queue's methods are synchronous; enqueue "
            "with pgqueue.AsyncQueue, whose methods take async connections (docs/async.md)")
    from .connections import Connection

    if isinstance(connection, Connection):  # what RQ code gives Queue(connection=...), given here by mistake
        raise ConfigurationError(
            "enqueue's connection= is your open psycopg or SQLAlchemy connection, whose transaction the job joins; "
            "a pgqueue.Connection names the database the jobs live in: give it to Queue(connection=...)")
    raise ConfigurationError(
        "connection= takes a psycopg 3 Connection, a SQLAlchemy Connection or a SQLAlchemy Session, "
        f"not {type(connection).__name__}"
    )
