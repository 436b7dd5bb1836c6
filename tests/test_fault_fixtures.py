"""The fault fixtures themselves (tests/servers.py): the TCP proxy cuts and freezes connections as it says,
and the pgbouncer fixture really pools by transaction, with what that does to prepared statements and
LISTEN in pgbouncer 1.18."""

from __future__ import annotations

import re
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from conftest import wait_for
from psycopg import errors as pgerrors
from psycopg import pq
from servers import PgBouncer, TcpProxy, server_address

# The first packet a libpq client sends; the server answers it with one byte, S or N.
SSL_REQUEST = struct.pack("!ii", 8, 80877103)


def backend_pid(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def readable(sock: int | socket.socket, timeout: float) -> bool:
    """Whether ``sock`` has something to read (data or a close) within ``timeout`` seconds."""
    return bool(select.select([sock], [], [], timeout)[0])


def wait_result(conn: psycopg.Connection[Any], timeout: float = 10) -> pq.abc.PGresult:
    """The result of a query sent with ``pgconn.send_query``, waiting at most ``timeout`` seconds."""
    pgconn = conn.pgconn
    deadline = time.monotonic() + timeout
    while pgconn.is_busy():
        assert readable(pgconn.socket, deadline - time.monotonic()), "no answer in time"
        pgconn.consume_input()
    result = pgconn.get_result()
    assert result is not None
    while pgconn.get_result() is not None:  # the end of the query's results
        pass
    return result


def session_alive(db: psycopg.Connection[Any], pid: int) -> bool:
    return db.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() is not None


# -- the TCP proxy ---------------------------------------------------------------------------------------


def test_proxy_forwards_url_and_keyword_dsns(tcp_proxy: TcpProxy, server_dsn: str, dsn: str) -> None:
    """Both DSN forms keep their database and user through the proxy, and the connections are the
    proxy's (the server sees them come from the proxy's upstream socket, not the client's)."""
    with psycopg.connect(tcp_proxy.dsn(dsn), autocommit=True) as conn:
        assert conn.info.port == tcp_proxy.port
        assert conn.info.dbname == psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
        row = conn.execute("SELECT current_database(), current_user").fetchone()
        assert row == (conn.info.dbname, conn.info.user)
        with psycopg.connect(tcp_proxy.dsn(server_dsn), autocommit=True) as other:
            assert other.info.port == tcp_proxy.port
            assert other.execute("SELECT current_database()").fetchone() == (other.info.dbname,)
            assert tcp_proxy.connections == 2
    wait_for(lambda: tcp_proxy.connections == 0, message="the proxy to drop closed connections")


def test_cut_ends_connections_and_refuses_new_ones(tcp_proxy: TcpProxy, dsn: str,
                                                   db: psycopg.Connection[Any]) -> None:
    conn = psycopg.connect(tcp_proxy.dsn(dsn), autocommit=True)
    pid = backend_pid(conn)

    tcp_proxy.cut()
    assert tcp_proxy.connections == 0
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")
    conn.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", tcp_proxy.port), timeout=5).close()
    with socket.socket() as squatter, pytest.raises(OSError):
        squatter.bind(("127.0.0.1", tcp_proxy.port))  # the port stays the proxy's
    with pytest.raises(psycopg.OperationalError, match="refused"):
        psycopg.connect(tcp_proxy.dsn(dsn), connect_timeout=5)
    # PostgreSQL is up, and saw the proxied session end.
    assert db.execute("SELECT 1").fetchone() == (1,)
    wait_for(lambda: not session_alive(db, pid), message="the server to end the cut session")

    tcp_proxy.restore()
    with psycopg.connect(tcp_proxy.dsn(dsn), autocommit=True) as again:
        assert again.execute("SELECT 2").fetchone() == (2,)


def test_freeze_forwards_nothing_until_restore(tcp_proxy: TcpProxy, dsn: str, server_dsn: str,
                                               db: psycopg.Connection[Any]) -> None:
    """While frozen a query gets no answer and never reaches the server; a new TCP connection is accepted
    but not answered; direct connections work. restore() delivers what was held."""
    conn = psycopg.connect(tcp_proxy.dsn(dsn), autocommit=True)
    pid = backend_pid(conn)
    tcp_proxy.freeze()

    conn.pgconn.send_query(b"SELECT 42 AS frozen_query")
    assert conn.pgconn.flush() == 0  # the query left the client
    newcomer = socket.create_connection(("127.0.0.1", tcp_proxy.port), timeout=5)
    newcomer.sendall(SSL_REQUEST)
    assert not readable(conn.pgconn.socket, 0.5), "a frozen connection answered"
    assert not readable(newcomer, 0.1), "a connection accepted while frozen answered"
    assert db.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() != (
        "SELECT 42 AS frozen_query",), "the server got the query"
    with psycopg.connect(server_dsn, autocommit=True) as direct:
        assert direct.execute("SELECT 1").fetchone() == (1,)

    tcp_proxy.restore()
    result = wait_result(conn)
    assert result.status == pq.ExecStatus.TUPLES_OK and result.get_value(0, 0) == b"42"
    assert readable(newcomer, 10), "the held connection got no answer after restore"
    assert newcomer.recv(1) in (b"S", b"N")
    newcomer.close()
    assert conn.execute("SELECT 1").fetchone() == (1,)
    conn.close()


def test_close_while_frozen_ends_everything(server_dsn: str) -> None:
    """The fixture's teardown (close()) in the frozen state: every connection ends, every thread is
    joined, nothing hangs."""
    proxy = TcpProxy(server_address(server_dsn))
    conn = psycopg.connect(proxy.dsn(server_dsn), autocommit=True)
    proxy.freeze()
    conn.pgconn.send_query(b"SELECT 1")
    conn.pgconn.flush()
    held = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    wait_for(lambda: proxy.connections == 2, message="the proxy to accept while frozen")

    proxy.close()  # raises if a thread is still alive after 10 s
    assert proxy.connections == 0
    assert [t.name for t in threading.enumerate() if t.name.startswith("proxy-")] == []
    assert held.recv(1) == b""  # closed by the proxy
    held.close()
    with pytest.raises(psycopg.OperationalError):
        wait_result(conn)
    conn.close()


# -- pgbouncer -------------------------------------------------------------------------------------------


@pytest.fixture
def own_db(new_database: Callable[[], str]) -> str:
    """A database of this test alone: its pgbouncer pool starts empty, so the backend each transaction
    gets is known (the pool hands out the one released last)."""
    return new_database()


@pytest.fixture
def pooled(pgbouncer: PgBouncer, own_db: str) -> Iterator[Callable[[], psycopg.Connection[Any]]]:
    """Autocommit clients of pgbouncer on ``own_db``, closed at the end."""
    clients: list[psycopg.Connection[Any]] = []

    def connect() -> psycopg.Connection[Any]:
        clients.append(psycopg.connect(pgbouncer.dsn(own_db), autocommit=True))
        return clients[-1]

    yield connect
    for client in clients:
        client.close()


def test_pgbouncer_fixture(pgbouncer: PgBouncer, dsn: str) -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", pgbouncer.version)
    with psycopg.connect(pgbouncer.dsn(dsn), autocommit=True) as conn:
        assert conn.info.port == pgbouncer.port
        assert conn.execute("SELECT current_database()").fetchone() == (conn.info.dbname,)


def test_pgbouncer_pools_by_transaction(pooled: Callable[[], psycopg.Connection[Any]]) -> None:
    a, b = pooled(), pooled()
    first = backend_pid(a)
    b.execute("BEGIN")
    assert backend_pid(b) == first  # A's backend went back to the pool when its transaction ended
    second = backend_pid(a)
    assert second != first  # A's next transaction runs elsewhere while B holds that backend
    b.execute("COMMIT")


def test_pgbouncer_prepared_statements_stay_on_their_backend(pooled: Callable[[], psycopg.Connection[Any]]
                                                             ) -> None:
    """Protocol-level prepared statements (psycopg's prepare=True, and its automatic preparation after
    a few runs) belong to a server backend, not to the client: 1.18 does not track them."""
    a, b, c = pooled(), pooled(), pooled()
    assert a.execute("SELECT 1", prepare=True).fetchone() == (1,)  # _pg3_0 on the pool's one backend
    with pytest.raises(pgerrors.DuplicatePreparedStatement, match="_pg3_0"):
        b.execute("SELECT 2", prepare=True)  # B's first name is _pg3_0 too, on the same backend
    c.execute("BEGIN")
    backend_pid(c)  # C now holds that backend
    with pytest.raises(pgerrors.InvalidSqlStatementName, match="_pg3_0"):
        a.execute("SELECT 1", prepare=True)  # A's next transaction is on another backend
    c.execute("COMMIT")


def test_pgbouncer_drops_notifications_between_transactions(
        pgbouncer: PgBouncer, pooled: Callable[[], psycopg.Connection[Any]], own_db: str) -> None:
    """LISTEN is server-session state: the listening backend goes back to the pool, and pgbouncer drops a
    notification that reaches it there ("got packet 'A' from server when not linked"), even though the
    listener's next transaction runs on that very backend. One that arrives while the listener is in a
    transaction on it is delivered."""
    listener = pooled()
    got: list[str] = []
    listener.add_notify_handler(lambda n: got.append(n.payload))
    listener.execute("LISTEN pgq_fixture_test")
    pid = backend_pid(listener)
    pool = f"{listener.info.dbname}/{listener.info.user}@"

    def dropped() -> int:
        return sum(1 for line in pgbouncer.output.splitlines()
                   if pool in line and "got packet 'A' from server when not linked" in line)

    # Direct: a pooled notifier would get the listener's idle backend and be sent the notification itself.
    with psycopg.connect(own_db, autocommit=True) as notifier:
        notifier.execute("NOTIFY pgq_fixture_test, 'between'")
        wait_for(lambda: dropped() == 1, message="pgbouncer to drop the notification")
        assert backend_pid(listener) == pid
        assert got == []

        listener.execute("BEGIN")
        assert backend_pid(listener) == pid
        notifier.execute("NOTIFY pgq_fixture_test, 'inside'")  # sent at the end of the listener's transaction
        listener.execute("COMMIT")
        assert got == ["inside"]
