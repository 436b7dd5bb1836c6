"""Network faults and poolers between the tests and their PostgreSQL server.

``TcpProxy``: a TCP proxy in the test process that can cut or freeze the connections going through it
while PostgreSQL stays up. ``PgBouncer``: a private pgbouncer process in transaction pooling mode. Both
forward to the server of a DSN: its TCP address, or its Unix socket (the embedded server). The fixtures
``tcp_proxy`` and ``pgbouncer`` in conftest.py make them.
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import psycopg
from conftest import wait_for

Address = str | tuple[str, int]  # a Unix socket's path, or (host, port)


@functools.cache
def server_address(dsn: str) -> Address:
    """Where the server of ``dsn`` listens, as libpq resolved it (defaults and environment included):
    ``(host, port)`` for TCP, else the Unix socket's path."""
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        host, port = conn.info.host, conn.info.port
        hostaddr = conn.info.hostaddr
    if host.startswith("/"):
        return f"{host}/.s.PGSQL.{port}"
    return (hostaddr or host, port)


def reroute(dsn: str, port: int) -> str:
    """``dsn`` (a URL or key=value string) with its host and port replaced by 127.0.0.1:``port``; the
    database, user, password and options stay. The result is in key=value form."""
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    params.pop("hostaddr", None)
    params.update(host="127.0.0.1", port=str(port))
    return psycopg.conninfo.make_conninfo(**params)


def _shut(sock: socket.socket | None) -> None:
    """Shut a socket down both ways, waking any thread blocked on it (closing would not)."""
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # never connected, or already shut


class _Link:
    """One proxied connection: the client's socket and, once forwarding started, the server's."""

    def __init__(self, client: socket.socket) -> None:
        self.client = client
        self.upstream: socket.socket | None = None
        self.dead = False

    def kill(self) -> None:
        """Under the proxy's lock. Both sockets are shut, not closed: the link's own thread closes them."""
        self.dead = True
        _shut(self.client)
        _shut(self.upstream)


class TcpProxy:
    """A TCP proxy on 127.0.0.1:``port`` forwarding to ``target`` (``(host, port)`` or a Unix socket path).

    ``cut()``: every proxied connection is closed at once (both sides see the connection end, so the
    server ends those sessions, rolling their transactions back), and new connections are refused
    (ECONNREFUSED) until ``restore()``. The port stays reserved meanwhile.

    ``freeze()``: a black hole. Every connection stays open, nothing is forwarded either way (not even a
    close), and new connections are accepted but not forwarded (the server never sees them). The
    client's and the server's kernels see a live peer, the proxy's own sockets: TCP keepalives and
    ``tcp_user_timeout`` do not fire, only the application's own time-outs do.

    ``restore()``: forward again. After ``freeze()`` the frozen connections resume: what was held is
    delivered, in order, and connections accepted while frozen are then connected to the server (unless
    one side closed meanwhile: then its close is what goes through). For frozen connections that should
    end instead, call ``cut()`` and then ``restore()``.

    ``close()`` (the fixture's teardown) ends every connection and joins every thread, in any state.
    """

    def __init__(self, target: Address) -> None:
        self.target = target
        self._cond = threading.Condition()
        self._state = "open"  # open, frozen, cut or closed
        self._links: set[_Link] = set()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        # Holds the port while cut (bound, never listening), so that restore() can listen on it again.
        self._holder = self._bound_socket(0)
        self.port: int = self._holder.getsockname()[1]
        self._listen()

    # -- the API ---------------------------------------------------------------------------------------

    def dsn(self, dsn: str) -> str:
        """``dsn`` going through this proxy (same database, user and options)."""
        return reroute(dsn, self.port)

    @property
    def connections(self) -> int:
        """How many client connections the proxy holds now (forwarding or frozen)."""
        with self._cond:
            return len(self._links)

    def cut(self) -> None:
        """Close every proxied connection and refuse new ones; returns once they are all closed."""
        with self._cond:
            self._state = "cut"
        self._stop_listening()
        self._kill_links()

    def freeze(self) -> None:
        """Forward nothing, in either direction, on old and new connections, until ``restore()``."""
        self._set_state("frozen")

    def restore(self) -> None:
        """Accept and forward again (frozen connections resume)."""
        self._set_state("open")

    def close(self) -> None:
        """End every connection, stop listening and join every thread."""
        with self._cond:
            self._state = "closed"
        try:
            self._stop_listening()
            self._kill_links()
        finally:
            self._holder.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- listening -------------------------------------------------------------------------------------

    def _bound_socket(self, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
        return sock

    def _set_state(self, state: str) -> None:
        with self._cond:
            if self._state == "closed":
                raise RuntimeError("the proxy is closed")
            self._state = state
            self._cond.notify_all()
        if self._listener is None:
            self._listen()

    def _listen(self) -> None:
        listener = self._bound_socket(self.port)
        listener.listen(64)
        self._listener = listener
        self._acceptor = threading.Thread(target=self._accept, args=(listener,), name="proxy-accept", daemon=True)
        self._acceptor.start()

    def _stop_listening(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            _shut(listener)  # wakes accept() with EINVAL; the accepting thread closes it
        if self._acceptor is not None:
            self._acceptor.join()
            self._acceptor = None

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while True:
                try:
                    client, _ = listener.accept()
                except OSError:
                    if self._listener is not listener:
                        return  # stopped
                    continue  # e.g. ECONNABORTED: a client gave up before we accepted it
                self._add_link(client)

    def _add_link(self, client: socket.socket) -> None:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = _Link(client)
        thread = threading.Thread(target=self._serve, args=(link,), name="proxy-link", daemon=True)
        with self._cond:
            if self._state in ("cut", "closed"):  # accepted just as we stopped listening
                client.close()
                return
            self._links.add(link)
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    # -- forwarding ------------------------------------------------------------------------------------

    def _kill_links(self) -> None:
        with self._cond:
            for link in self._links:
                link.kill()
            self._cond.notify_all()
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=10)
        stuck = [t for t in threads if t.is_alive()]
        if stuck:
            raise RuntimeError(f"{len(stuck)} proxy thread(s) did not end")

    def _connect_upstream(self) -> socket.socket:
        if isinstance(self.target, str):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(5)
            sock.connect(self.target)
        else:
            sock = socket.create_connection(self.target, timeout=5)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(None)
        return sock

    def _gate(self, link: _Link) -> bool:
        """Wait while frozen; whether the link may go on (it was not killed)."""
        with self._cond:
            self._cond.wait_for(lambda: link.dead or self._state != "frozen")
            return not link.dead

    def _serve(self, link: _Link) -> None:
        """A link's own thread: connects to the server once the gate opens, forwards client to server
        (a second thread forwards back), and closes both sockets at the end."""
        try:
            if not self._gate(link):
                return
            upstream = self._connect_upstream()
            with self._cond:
                link.upstream = upstream
                if link.dead:  # killed while connecting
                    _shut(upstream)
            back = threading.Thread(target=self._pump, args=(link, upstream, link.client), name="proxy-pump",
                                    daemon=True)
            back.start()
            self._pump(link, link.client, upstream)
            back.join()
        except OSError:
            pass  # the server refused: the client sees its connection closed
        finally:
            with self._cond:
                link.kill()
                self._links.discard(link)
            link.client.close()
            if link.upstream is not None:
                link.upstream.close()

    def _pump(self, link: _Link, src: socket.socket, dst: socket.socket) -> None:
        """Forward ``src`` to ``dst`` until either end closes; an end (or error) ends the whole link."""
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not self._gate(link) or not data:
                break
            try:
                dst.sendall(data)
            except OSError:
                break
        with self._cond:
            link.kill()


def pgbouncer_binary() -> str | None:
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/local/sbin")


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as(target: Address) -> pwd.struct_passwd | None:
    """The user pgbouncer runs as: None (ourselves) unless we are root, which pgbouncer refuses. Then the
    owner of the server's socket directory, who can reach the socket (the embedded server's directory is
    private to its own user); else ``postgres``, else ``nobody``."""
    if os.geteuid() != 0:
        return None
    if isinstance(target, str):
        owner = os.stat(os.path.dirname(target)).st_uid
        if owner != 0:
            return pwd.getpwuid(owner)
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
    raise RuntimeError("running as root, and no user to run pgbouncer as (postgres or nobody)")


class PgBouncer:
    """A private pgbouncer process in front of the server of ``server_dsn``: transaction pooling, every
    database of that server (a fallback ``*`` entry), on 127.0.0.1:``port``, files in its own temporary
    directory. Clients log in without a password (``auth_type = trust``) as any role that could log in
    when it started; it logs in to the server as the same role, with the DSN's password if it has one.
    Idle server connections are reused last-in first-out (``server_round_robin = 0``)."""

    def __init__(self, server_dsn: str, *, pool_size: int = 4, max_client_conn: int = 200,
                 binary: str | None = None) -> None:
        found = binary or pgbouncer_binary()
        if found is None:
            raise FileNotFoundError("pgbouncer is not installed")
        self.binary = found
        self.server_dsn = server_dsn
        self.pool_size = pool_size
        self.max_client_conn = max_client_conn
        first_line = subprocess.run([found, "--version"], capture_output=True, text=True, check=True).stdout
        self.version: str = first_line.split()[1]  # "PgBouncer 1.18.0" -> "1.18.0"
        self.target = server_address(server_dsn)
        self.dir = Path(tempfile.mkdtemp(prefix="pgq-bouncer-"))
        self.log_path = self.dir / "pgbouncer.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def dsn(self, dsn: str) -> str:
        """``dsn`` going through pgbouncer (same database, user and options)."""
        return reroute(dsn, self.port)

    def start(self, attempts: int = 3) -> None:
        """Start pgbouncer and wait until it serves; retried on another port if it exits (the free port
        it was given may have been taken meanwhile)."""
        user = _run_as(self.target)
        self._write_files(user)
        for attempt in range(attempts):
            self.port = _free_port()
            self._write_config()
            self._spawn(user)
            if self._wait_serving():
                return
            if attempt == attempts - 1:
                raise RuntimeError(f"pgbouncer did not start:\n{self.output}")

    def close(self) -> None:
        """Stop pgbouncer (its server connections end) and delete its files."""
        self._stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PgBouncer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write_files(self, user: pwd.struct_passwd | None) -> None:
        with psycopg.connect(self.server_dsn, autocommit=True) as conn:
            roles = [r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolcanlogin")]
        params = psycopg.conninfo.conninfo_to_dict(self.server_dsn)
        passwords = {str(params.get("user", "")): str(params.get("password", ""))}
        lines = [f"{_quote(role)} {_quote(passwords.get(role, ''))}\n" for role in roles]
        (self.dir / "users.txt").write_text("".join(lines))
        if user is not None:
            for path in (self.dir, self.dir / "users.txt"):
                os.chown(path, user.pw_uid, user.pw_gid)

    def _write_config(self) -> None:
        if isinstance(self.target, str):  # a Unix socket: pgbouncer wants its directory and port
            directory, _, name = self.target.rpartition("/")
            server = f"host={directory} port={name.rsplit('.', 1)[1]}"
        else:
            server = f"host={self.target[0]} port={self.target[1]}"
        (self.dir / "pgbouncer.ini").write_text(f"""\
[databases]
* = {server}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.dir / "users.txt"}
pool_mode = transaction
default_pool_size = {self.pool_size}
max_client_conn = {self.max_client_conn}
server_round_robin = 0
""")

    def _spawn(self, user: pwd.struct_passwd | None) -> None:
        self._stop()
        args = [self.binary, *(["-u", user.pw_name] if user else []), str(self.dir / "pgbouncer.ini")]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    def _stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # pgbouncer's immediate shutdown
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def _wait_serving(self) -> bool:
        """Whether pgbouncer serves (a query through it works), False if it exited first."""
        def serving() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return True
            try:
                with psycopg.connect(self.dsn(self.server_dsn), connect_timeout=5) as conn:
                    conn.execute("SELECT 1")
                return True
            except psycopg.OperationalError:
                return False

        try:
            wait_for(serving, timeout=20, interval=0.05, message="pgbouncer to serve")
        except AssertionError as exc:
            raise RuntimeError(f"{exc}; its log:\n{self.output}") from None
        assert self.proc is not None
        return self.proc.poll() is None


def start_pgbouncer(server_dsn: str, **kwargs: Any) -> PgBouncer:
    """A started ``PgBouncer`` (``kwargs``: pool_size, max_client_conn); close() it, or use it in ``with``."""
    bouncer = PgBouncer(server_dsn, **kwargs)
    try:
        bouncer.start()
    except BaseException:
        bouncer.close()
        raise
    return bouncer
