"""Every test talks to a real PostgreSQL: ``PGQUEUE_TEST_DATABASE_URL`` if set, else the embedded server.

The run gets its own database (created here, migrated once, dropped at the end), so concurrent runs
and the user's own data are never touched. Each test starts with empty pgqueue tables.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg import sql

import pgqueue
from pgqueue import _db

if TYPE_CHECKING:  # imported by the fixtures when they run, so that servers may import this module
    from servers import PgBouncer, TcpProxy

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _server_dsn() -> str:
    dsn = os.environ.get("PGQUEUE_TEST_DATABASE_URL")
    if dsn:
        return dsn
    from pgqueue._config import embedded_dsn

    return embedded_dsn()


def dsn_for(server_dsn: str, dbname: str) -> str:
    return psycopg.conninfo.make_conninfo(server_dsn, dbname=dbname)


@pytest.fixture(scope="session")
def server_dsn() -> str:
    return _server_dsn()


@pytest.fixture(scope="session")
def new_database(server_dsn: str) -> Iterator[Callable[[], str]]:
    """A factory of empty databases on the test server, all dropped at the end of the run."""
    created: list[str] = []

    def make() -> str:
        name = f"pgqueue_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return dsn_for(server_dsn, name)

    yield make
    _db.close_shared_connections()
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        for name in created:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def dsn(new_database: Callable[[], str]) -> str:
    """The run's migrated database."""
    url = new_database()
    pgqueue.migrate(url)
    return url


@pytest.fixture(autouse=True)
def _clean(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point pgqueue (and any worker process a test spawns) at the test database, emptied."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    if "nodb" in request.keywords:
        monkeypatch.delenv("PGQUEUE_DATABASE_URL", raising=False)
        yield
        return
    url = request.getfixturevalue("dsn")
    monkeypatch.setenv("PGQUEUE_DATABASE_URL", url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE pgqueue.jobs, pgqueue.workers, pgqueue.pauses, pgqueue.batches, pgqueue.dependencies, "
                     "pgq_test.runs")
    yield


@pytest.fixture(scope="session", autouse=True)
def _test_tables(request: pytest.FixtureRequest) -> None:
    """``pgq_test.runs``: one row per execution of a test job, written by the job itself."""
    url = request.getfixturevalue("dsn")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS pgq_test")
        conn.execute("CREATE TABLE IF NOT EXISTS pgq_test.runs (job_id text, tag text, pid int, "
                     "at timestamptz NOT NULL DEFAULT clock_timestamp())")


@pytest.fixture
def tcp_proxy(server_dsn: str) -> Iterator[TcpProxy]:
    """A TCP proxy to the test server that can cut or freeze its connections (``servers.TcpProxy``)."""
    from servers import TcpProxy, server_address

    with TcpProxy(server_address(server_dsn)) as proxy:
        yield proxy


@pytest.fixture(scope="session")
def pgbouncer(server_dsn: str) -> Iterator[PgBouncer]:
    """pgbouncer in transaction pooling mode in front of the test server (``servers.PgBouncer``)."""
    from servers import pgbouncer_binary, start_pgbouncer

    if pgbouncer_binary() is None:
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer; .ci/run installs it)")
    with start_pgbouncer(server_dsn) as bouncer:
        yield bouncer


@pytest.fixture
def snapshot_holder(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """Another connection (application_name nightly-report) in a REPEATABLE READ transaction that has read a
    row, so it holds a snapshot (and with it the xmin horizon) until it ends; rolled back and closed at the
    end of the test."""
    conn = psycopg.connect(dsn, application_name="nightly-report")
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.execute("SELECT count(*) FROM pgqueue.jobs\n  -- the report's second line")
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


def snapshot_aged(db: psycopg.Connection[Any], holder: psycopg.Connection[Any], seconds: float = 1.0) -> None:
    """Wait until ``holder``'s transaction (snapshot_holder's) is older than ``seconds``."""
    wait_for(lambda: db.execute("SELECT now() - xact_start > make_interval(secs => %s) FROM pg_stat_activity "
                                "WHERE pid = %s", [seconds, holder.info.backend_pid]).fetchone() == (True,),
             message=f"the transaction to age {seconds:g} s")


def count_jobs(db: psycopg.Connection[Any]) -> int:
    """How many rows pgqueue.jobs has, as ``db`` sees them."""
    return int(db.execute("SELECT count(*) FROM pgqueue.jobs").fetchone()[0])  # type: ignore[index]


@pytest.fixture
def listener(dsn: str) -> Iterator[Callable[[float], list[str]]]:
    """Notifications on pgqueue_jobs (the worker wake-up channel) as another session sees them."""
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute("LISTEN pgqueue_jobs")

    def received(wait: float) -> list[str]:
        select.select([conn.fileno()], [], [], wait)
        conn.pgconn.consume_input()
        payloads = []
        while (note := conn.pgconn.notifies()) is not None:
            payloads.append(note.extra.decode())
        return payloads

    yield received
    conn.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "nodb: the test does not use the shared test database")


@pytest.fixture
def db(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the test database for assertions."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield conn


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.02,
             message: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


class WorkerProcess:
    """A real ``pgqueue worker`` process, its output captured to a file."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pgqueue.cli", "worker", *args],
            stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
            start_new_session=True,
        )

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 20.0) -> None:
        wait_for(lambda: "*** Listening on" in self.output or self.proc.poll() is not None, timeout,
                 message="the worker to start")
        assert self.proc.poll() is None, f"worker exited early:\n{self.output}"

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        self._log.close()


@pytest.fixture
def spawn_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real worker processes; every one is killed at the end of the test."""
    started: list[WorkerProcess] = []

    def spawn(*args: str, ready: bool = True, env: dict[str, str] | None = None) -> WorkerProcess:
        worker = WorkerProcess(list(args), tmp_path / f"worker{len(started)}.log", env)
        started.append(worker)
        if ready:
            worker.wait_ready()
        return worker

    yield spawn
    for worker in started:
        worker.stop()


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the ``pgqueue`` CLI in a real process."""
    return subprocess.run([sys.executable, "-m", "pgqueue.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)
