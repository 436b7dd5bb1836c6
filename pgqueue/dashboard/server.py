"""``pgqueue dashboard``: the app under uvicorn, after the checks that must pass before anything listens."""

from __future__ import annotations

import sys

from .. import _db
from .._store import pauses
from ..health import Thresholds
from .app import create_app
from .data import Limits, Reader
from .security import check_bind, is_loopback

DEFAULT_PORT = 9181  # rq-dashboard's


def url_of(host: str, port: int) -> str:
    name = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{name}:{port}/"


def check_database(dsn: str | None) -> None:
    """Raise pgqueue's error (DatabaseUnavailable, SchemaMissing, ...) now rather than on the first page."""
    reader = Reader(dsn, Limits())
    try:
        with reader.page() as (conn, _):
            pauses(conn)
    finally:
        reader.close()


def serve(dsn: str | None, host: str, port: int, *, read_only: bool = False, token: str | None = None,
          refresh: float = 5.0, root_path: str = "", thresholds: Thresholds | None = None) -> None:
    """Serve the dashboard until SIGINT or SIGTERM. ValueError (before listening) if ``host`` is not a
    loopback address and there is no ``token``."""
    import uvicorn

    check_bind(host, token)
    check_database(dsn)
    app = create_app(dsn, read_only=read_only, token=token, refresh=refresh, health=thresholds)
    notes = ["read-only" if read_only else "actions enabled",
             "token required" if token else "no token: loopback only"]
    where = _db._describe(dsn) if dsn else "PGQUEUE_DATABASE_URL / DATABASE_URL"
    print(f"pgqueue dashboard on {url_of(host, port)}{root_path.lstrip('/')} (database {where}; "
          f"{'; '.join(notes)}). Ctrl-C stops it.", file=sys.stderr, flush=True)
    if not is_loopback(host):
        print(f"Listening on {host}, beyond this machine: every request needs the token. Put a TLS-terminating "
              "proxy in front of it, or the token travels in clear text.", file=sys.stderr, flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, server_header=False,
                root_path=root_path, proxy_headers=False)
