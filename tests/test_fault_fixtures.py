"""The fault fixtures themselves (tests/servers.py): the TCP proxy cuts and freezes connections as it says."""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from typing import Any

import psycopg
import pytest
from conftest import wait_for
from psycopg import pq
from servers import TcpProxy, server_address

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
