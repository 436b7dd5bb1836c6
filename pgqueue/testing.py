"""Helpers for testing code that uses pgqueue (docs/testing.md).

- :func:`drain`: run the queued jobs in this process until none is runnable (a SimpleWorker in burst mode),
  sync and ``async def`` jobs alike; returns the jobs it ran.
- :class:`Databases`: a migrated template database on a PostgreSQL server, and fresh databases made from it
  (``CREATE DATABASE ... TEMPLATE``): a clean, migrated database per test for the price of a copy.
- A pytest plugin, opt-in: ``pytest -p pgqueue.testing``, or ``pytest_plugins = ["pgqueue.testing"]`` in your
  top-level conftest.py. Its fixtures: ``pgqueue_database`` (a fresh database per test, which
  ``PGQUEUE_DATABASE_URL`` points to during the test), ``pgqueue_databases`` (the session's
  :class:`Databases`), ``pgqueue_server_url`` and ``pgqueue_database_setup`` (override it to add your own
  schema to the template). It is not registered as a pytest11 entry point: installing pgqueue adds nothing to
  anybody's test runs.

The eager mode is ``Queue(name, is_async=False)`` (RQ's): each enqueue runs its job at once, in this process.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from . import _db
from ._config import ENV_VARS, embedded_dsn
from ._migrate import migrate
from .exceptions import ConfigurationError, JobFailed
from .job import Job, JobStatus
from .worker import SimpleWorker

if TYPE_CHECKING:
    import pytest

__all__ = ["SERVER_URL_VAR", "Databases", "close_connections", "drain", "server_url"]

#: The environment variable naming the PostgreSQL server that test databases are made on.
SERVER_URL_VAR = "PGQUEUE_TEST_DATABASE_URL"

_RUNNABLE_QUEUES = ("SELECT DISTINCT queue FROM pgqueue.jobs WHERE status = 'queued' "
                    "OR (status = 'scheduled' AND scheduled_at <= now()) ORDER BY queue")


# -- running jobs --------------------------------------------------------------------------------------------
def drain(queues: Iterable[str] | None = None, *, dsn: str | None = None, max_jobs: int | None = None,
          raise_failures: bool = False) -> list[Job]:
    """Run the runnable jobs of ``queues`` (None: of every queue) in this process, one at a time, until none
    is left: a :class:`~pgqueue.SimpleWorker` in burst mode, so jobs run exactly as a worker runs them (sync and
    ``async def`` jobs, retries due now, callbacks, dependents made runnable, in any queue with ``None``).
    Jobs scheduled for later, and retries waiting for their interval, stay where they are.

    Returns the jobs it ran, in the order they ended, each as it ended (``job.result``, ``job.exc_info``).
    ``raise_failures``: raise :class:`~pgqueue.JobFailed` for the first of them that failed, once all ran.
    Call it from the main thread (a job's timeout needs the main thread's alarm); from async code,
    ``await asyncio.to_thread(drain)`` runs it, without timeouts."""
    name = f"drain:{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"
    fixed = None if queues is None else [queues] if isinstance(queues, str) else list(queues)
    ran = True
    while ran:
        names = fixed if fixed is not None else _runnable_queues(dsn)
        left = None if max_jobs is None else max_jobs - len(_ended_by(name, dsn))
        if not names or (left is not None and left <= 0):
            break
        ran = SimpleWorker(names, dsn=dsn, name=name).work(burst=True, max_jobs=left)
    jobs = [job for job in Job.fetch_many(_ended_by(name, dsn), dsn) if job is not None]
    if raise_failures:
        for job in jobs:
            if job.status in (JobStatus.FAILED, JobStatus.CANCELED):
                raise JobFailed(job.id, job.status.value, job.exc_info)
    return jobs


def _runnable_queues(dsn: str | None) -> list[str]:
    with _db.translate_errors(dsn):
        return [row[0] for row in _db.shared_connection(dsn).execute(_RUNNABLE_QUEUES)]


def _ended_by(worker_name: str, dsn: str | None) -> list[str]:
    """The jobs that the drain's worker ran last (whatever their status now), in the order they ended."""
    with _db.translate_errors(dsn):
        return [row[0] for row in _db.shared_connection(dsn).execute(
            "SELECT id FROM pgqueue.jobs WHERE worker_name = %s ORDER BY ended_at NULLS LAST, id", (worker_name,))]


def close_connections() -> None:
    """Close the connections pgqueue keeps open in this process (``Queue``'s, ``Job``'s): before dropping a
    database they lead to, which PostgreSQL refuses while sessions are connected. The next use reconnects."""
    _db.close_shared_connections()


# -- databases -----------------------------------------------------------------------------------------------
def server_url() -> str:
    """The PostgreSQL server that test databases are made on: ``$PGQUEUE_TEST_DATABASE_URL``, else pgqueue's
    embedded server (``pgqueue[embedded]``). Its role needs CREATEDB."""
    return os.environ.get(SERVER_URL_VAR) or embedded_dsn()


class Databases:
    """Databases on the server at ``server`` (a URL; default :func:`server_url`), each a copy of one template
    that ``setup(url)`` prepared once (default: :func:`pgqueue.migrate`; add your own schema there). Every
    database made here, the template too, is dropped by :meth:`close`.

        databases = Databases()
        url = databases.create()      # migrated, empty: CREATE DATABASE ... TEMPLATE
        ...
        databases.drop(url)
        databases.close()
    """

    def __init__(self, server: str | None = None, setup: Callable[[str], Any] | None = None,
                 prefix: str = "pgqueue_test") -> None:
        self.server = server or server_url()
        self.setup = setup or migrate
        self.prefix = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self._template: str | None = None
        self._made: list[str] = []
        self._count = 0

    def url(self, dbname: str) -> str:
        """The server's URL with ``dbname`` as its database."""
        return psycopg.conninfo.make_conninfo(_db.resolve_dsn(self.server), dbname=dbname)

    @property
    def template(self) -> str:
        """The template database's name, made and prepared on first use."""
        if self._template is None:
            name = f"{self.prefix}_template"
            self._execute("CREATE DATABASE {}", name)
            self._made.append(name)
            self.setup(self.url(name))
            close_connections()  # CREATE DATABASE ... TEMPLATE needs the template without sessions
            self._template = name
        return self._template

    def create(self) -> str:
        """A new database copied from the template; returns its URL."""
        template = self.template
        self._count += 1
        name = f"{self.prefix}_{self._count}"
        self._execute("CREATE DATABASE {} TEMPLATE {}", name, template)
        self._made.append(name)
        return self.url(name)

    def drop(self, url: str) -> None:
        """Drop a database made here, ending its sessions (pgqueue's own are closed first)."""
        name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
        close_connections()
        self._execute("DROP DATABASE IF EXISTS {} WITH (FORCE)", str(name))
        if name in self._made:
            self._made.remove(str(name))

    def close(self) -> None:
        """Drop every database made here, the template last."""
        close_connections()
        for name in reversed(self._made):
            self._execute("DROP DATABASE IF EXISTS {} WITH (FORCE)", name)
        self._made.clear()
        self._template = None

    def _execute(self, statement: str, *names: str) -> None:
        query = sql.SQL(statement).format(*map(sql.Identifier, names))
        with _db.translate_errors(self.server), _db.connect(self.server, role="testing") as admin:
            admin.execute(query)


# -- the pytest plugin ---------------------------------------------------------------------------------------
try:
    import pytest as _pytest
except ImportError:  # pragma: no cover - the helpers above work without pytest
    _pytest = None  # type: ignore[assignment]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--pgqueue-server-url", default=None, metavar="URL",
                     help=f"PostgreSQL server for pgqueue's test databases (default: ${SERVER_URL_VAR}, else "
                          "pgqueue's embedded server).")


if _pytest is not None:
    @_pytest.fixture(scope="session")
    def pgqueue_server_url(request: pytest.FixtureRequest) -> str:
        """The server the test databases are made on: --pgqueue-server-url, $PGQUEUE_TEST_DATABASE_URL, else the
        embedded server."""
        given = request.config.getoption("--pgqueue-server-url", default=None)
        try:
            return str(given or server_url())
        except ConfigurationError as exc:
            raise _pytest.UsageError(f"pgqueue.testing: {exc}; or pass --pgqueue-server-url") from None

    @_pytest.fixture(scope="session")
    def pgqueue_database_setup() -> Callable[[str], Any]:
        """What prepares the template database, given its URL: pgqueue's migrations. Override it to add your
        own schema (call ``pgqueue.migrate(url)`` in yours)."""
        return migrate

    @_pytest.fixture(scope="session")
    def pgqueue_databases(pgqueue_server_url: str,
                          pgqueue_database_setup: Callable[[str], Any]) -> Iterator[Databases]:
        """The session's :class:`Databases` (one template, prepared once per test process)."""
        databases = Databases(pgqueue_server_url, pgqueue_database_setup)
        yield databases
        databases.close()

    @_pytest.fixture
    def pgqueue_database(pgqueue_databases: Databases, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
        """A fresh database for this test, copied from the migrated template; its URL. pgqueue finds it by
        itself during the test: ``PGQUEUE_DATABASE_URL`` points to it (and ``DATABASE_URL`` is unset), so
        ``Queue()``, ``Worker()`` and worker processes started by the test use it. Dropped afterwards."""
        url = pgqueue_databases.create()
        for var in ENV_VARS:
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv(ENV_VARS[0], url)
        yield url
        pgqueue_databases.drop(url)
