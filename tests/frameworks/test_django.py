"""pgqueue.contrib.django in a real Django project (tests/frameworks/djproject) on the test database: jobs
enqueued on Django's connection commit and roll back with Django's transactions, the management commands run
the worker and the schema, and misconfigured projects get one clear error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest
from conftest import dsn_for, wait_for

import pgqueue
from pgqueue import ConfigurationError, Job, JobStatus, NoSuchJobError

pytest.importorskip("django")

PROJECT = Path(__file__).resolve().parent / "djproject"


@pytest.fixture(scope="session")
def site(dsn: str) -> str:
    """The project set up in this process on the run's database, its tables made by `migrate`."""
    import django
    from django.core.management import call_command

    os.environ["DJANGO_DATABASE_URL"] = dsn
    os.environ["DJANGO_SETTINGS_MODULE"] = "djsite.settings"
    sys.path.insert(0, str(PROJECT))
    django.setup()
    call_command("migrate", verbosity=0)
    return dsn


@pytest.fixture
def shop(site: str, db: psycopg.Connection[Any]) -> Iterator[None]:
    db.execute("TRUNCATE shop_order")
    yield
    from django.db import connections

    connections.close_all()


def manage(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=PROJECT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


class ManagedWorker:
    """`manage.py pgqueue_worker ...` as a real process, its output in a file."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self._out = open(log, "wb")
        self.proc = subprocess.Popen([sys.executable, "manage.py", "pgqueue_worker", *args], cwd=PROJECT,
                                     stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: "*** Listening on" in self.output or self.proc.poll() is not None,
                 message="the worker to start")
        assert self.proc.poll() is None, self.output

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._out.close()


@pytest.fixture
def worker(tmp_path: Path, shop: None) -> Iterator[Callable[..., ManagedWorker]]:
    started: list[ManagedWorker] = []

    def start(*args: str) -> ManagedWorker:
        started.append(ManagedWorker(list(args), tmp_path / f"worker{len(started)}.log"))
        return started[-1]

    yield start
    for w in started:
        w.stop()


def orders(db: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in db.execute("SELECT item, status FROM shop_order ORDER BY id").fetchall()]


def job_ids(db: psycopg.Connection[Any], queue: str | None = None) -> list[str]:
    return [r[0] for r in db.execute("SELECT id FROM pgqueue.jobs WHERE %s::text IS NULL OR queue = %s ORDER BY id",
                                     (queue, queue)).fetchall()]


# -- enqueueing in Django's transactions --------------------------------------------------------------------
def test_a_view_commits_order_and_job_together_and_the_worker_command_runs_it(
        worker: Callable[..., ManagedWorker], db: psycopg.Connection[Any]) -> None:
    from django.test import Client

    # A 60 s poll: a job that runs within the deadline below was started by the commit's wake-up.
    running = worker("shop", "--poll-interval", "60")
    response = Client().post("/orders/", {"item": "book"}, content_type="application/json")
    assert response.status_code == 201
    job = Job.fetch(response.json()["job"])
    assert (job.func_name, job.args) == ("shop.tasks.ship", [response.json()["order"]])
    wait_for(lambda: Job.fetch(job.id).status == JobStatus.FINISHED, timeout=15, message="the job to run")
    assert Job.fetch(job.id).result == "shipped"
    assert orders(db) == [("book", "shipped")]  # the job used the ORM in the worker's job process
    assert f"Job OK ({job.id})" in running.output
    running.proc.send_signal(signal.SIGTERM)
    assert running.proc.wait(20) == 0


def test_a_view_that_fails_leaves_neither_order_nor_job_nor_wakeup(shop: None, db: psycopg.Connection[Any],
                                                                   wakeups: Callable[[], list[str]]) -> None:
    from django.test import Client

    response = Client(raise_request_exception=False).post("/orders/", {"item": "crash"},
                                                          content_type="application/json")
    assert response.status_code == 500
    assert orders(db) == [] and job_ids(db, "shop") == []
    assert wakeups() == []  # nothing was sent before the marker's wake-up


def test_commit_wakes_workers_once_at_the_commit(shop: None, db: psycopg.Connection[Any],
                                                 wakeups: Callable[[], list[str]]) -> None:
    from django.db import transaction

    from pgqueue.contrib.django import Queue

    with transaction.atomic():
        job = Queue("shop").enqueue(tj.noop, 1)
        assert job_ids(db) == []  # not visible to other sessions before the commit
    assert job_ids(db, "shop") == [job.id]
    assert wakeups() == ["shop"]


def test_a_nested_atomic_block_that_rolls_back_takes_its_jobs_along(shop: None, db: psycopg.Connection[Any]) -> None:
    from django.db import transaction

    from pgqueue.contrib.django import Queue

    q = Queue("shop")
    with transaction.atomic():
        kept = q.enqueue(tj.noop, "outer")
        with pytest.raises(RuntimeError), transaction.atomic():  # a savepoint
            q.enqueue(tj.noop, "inner")
            raise RuntimeError("the inner block fails")
        many = q.enqueue_many([q.prepare_data(tj.noop, args=(i,)) for i in range(3)])  # COPY, in the transaction
    assert job_ids(db) == sorted([kept.id, *(j.id for j in many)])
    with pytest.raises(RuntimeError), transaction.atomic():
        q.enqueue(tj.noop, "all of it")
        q.enqueue_many([q.prepare_data(tj.noop, args=(i,)) for i in range(3)])
        raise RuntimeError("the outer block fails")
    assert len(job_ids(db)) == 4


def test_outside_atomic_djangos_autocommit_commits_the_job_at_once(shop: None, db: psycopg.Connection[Any]) -> None:
    from django.db import connection as django_connection

    from pgqueue.contrib.django import Queue

    job = Queue("shop").enqueue(tj.noop, 1)
    assert job_ids(db) == [job.id]
    assert django_connection.get_autocommit() and not django_connection.in_atomic_block


def test_a_plain_queue_takes_djangos_connection(shop: None, db: psycopg.Connection[Any]) -> None:
    from django.db import transaction

    from pgqueue.contrib.django import connection

    with pytest.raises(RuntimeError), transaction.atomic():
        pgqueue.Queue("shop").enqueue(tj.noop, connection=connection())
        raise RuntimeError("rolled back")
    with transaction.atomic():
        job = pgqueue.Queue("shop").enqueue(tj.noop, connection=connection())
    assert job_ids(db) == [job.id]


def test_unique_keys_and_options_on_djangos_connection(shop: None, db: psycopg.Connection[Any]) -> None:
    from django.db import transaction

    from pgqueue.contrib.django import Queue

    q = Queue("shop")
    with transaction.atomic():
        first = q.enqueue(tj.add, 1, 2, unique_key="order:7", meta={"by": "view"}, job_timeout=30)
        again = q.enqueue(tj.add, 3, 4, unique_key="order:7")  # read back in the same transaction
    assert again.id == first.id and again.args == [1, 2] and again.meta == {"by": "view"}
    assert first.enqueued_at.tzinfo is not None
    assert Job.fetch(first.id).timeout == 30


def test_eager_queue_runs_the_job_in_djangos_transaction(shop: None, db: psycopg.Connection[Any]) -> None:
    from django.db import transaction
    from shop import tasks
    from shop.models import Order

    from pgqueue.contrib.django import Queue

    eager = Queue("shop", is_async=False)
    assert isinstance(eager, Queue) and not eager.is_async
    with pytest.raises(RuntimeError), transaction.atomic():
        order = Order.objects.create(item="lamp")
        job = eager.enqueue(tasks.ship, order.id)
        assert (job.status, job.result) == (JobStatus.FINISHED, "shipped")  # ran, seeing the uncommitted order
        raise RuntimeError("rolled back")
    assert orders(db) == [] and job_ids(db) == []  # the job's row and its ORM writes went with the transaction
    order = Order.objects.create(item="desk")  # autocommit: the job commits at once
    assert eager.enqueue(tasks.ship, order.id).result == "shipped"
    assert orders(db) == [("desk", "shipped")]


def test_the_queues_lookups_go_to_djangos_database(shop: None, site: str) -> None:
    from django.db import transaction
    from django.test import override_settings

    from pgqueue.contrib.django import Queue, dsn

    params = psycopg.conninfo.conninfo_to_dict(dsn())
    assert params["dbname"] == psycopg.conninfo.conninfo_to_dict(site)["dbname"]
    q = Queue("shop")
    with transaction.atomic():
        job = q.enqueue(tj.noop)
        with pytest.raises(NoSuchJobError):
            job.refresh()  # pgqueue's own connection: the job is not committed yet
    assert len(q) == 1 and job.get_status() == JobStatus.QUEUED and q.dsn == dsn()
    other = dsn_for(site, "elsewhere")
    with override_settings(PGQUEUE={"DSN": other}):
        assert dsn() == other and Queue("shop").dsn == other and Queue("shop", dsn="x").dsn == "x"
    with override_settings(PGQUEUE={"DATABSE": "default"}), pytest.raises(ConfigurationError, match="DATABSE"):
        dsn()
    with override_settings(PGQUEUE={"DATABASE": "missing"}), pytest.raises(ConfigurationError, match="'missing'"):
        Queue("shop").enqueue(tj.noop)


# -- management commands --------------------------------------------------------------------------------------
def test_migrate_brings_pgqueues_schema_to_a_new_database(site: str, new_database: Callable[[], str]) -> None:
    url = new_database()
    done = manage("migrate", env={"DJANGO_DATABASE_URL": url})
    assert done.returncode == 0, done.stderr
    assert "pgqueue schema at revision" in done.stdout
    again = manage("migrate", env={"DJANGO_DATABASE_URL": url})
    assert again.returncode == 0 and "pgqueue schema" not in again.stdout  # at its newest already: nothing to do
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT version_num FROM pgqueue.alembic_version").fetchone() == (
            pgqueue._migrate.head_revision(),)
        assert conn.execute("SELECT to_regclass('public.shop_order') IS NOT NULL").fetchone() == (True,)


def test_pgqueue_migrate_command(site: str, new_database: Callable[[], str]) -> None:
    url = new_database()
    done = manage("pgqueue_migrate", "--dsn", url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"pgqueue schema at revision {pgqueue._migrate.head_revision()}"
    with psycopg.connect(url) as conn:  # pgqueue's schema only: Django's migrations did not run
        assert conn.execute("SELECT to_regclass('public.django_migrations') IS NULL").fetchone() == (True,)
    bad = manage("pgqueue_migrate", "--dsn", dsn_for(site, "no_such_database"))
    assert bad.returncode == 1 and "CommandError: cannot reach PostgreSQL" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_worker_command_takes_pgqueue_workers_options(shop: None, db: psycopg.Connection[Any]) -> None:
    from shop import tasks
    from shop.models import Order

    from pgqueue.contrib.django import Queue

    helped = manage("pgqueue_worker", "--help")
    assert helped.returncode == 0 and helped.stdout.startswith("Usage: manage.py pgqueue_worker [OPTIONS] [QUEUES]")
    assert "--concurrency" in helped.stdout and "--burst" in helped.stdout
    wrong = manage("pgqueue_worker", "--concurrency", "0")
    assert wrong.returncode == 2 and "Invalid value for '--concurrency'" in wrong.stderr
    order = Order.objects.create(item="chair")
    job = Queue("shop").enqueue(tasks.ship, order.id)
    done = manage("pgqueue_worker", "shop", "--burst", "--simple", "-v", "--settings", "djsite.settings")
    assert done.returncode == 0, done.stderr
    assert f"Job OK ({job.id})" in done.stderr and orders(db) == [("chair", "shipped")]
    Queue("waiting").enqueue(tasks.ship, order.id)
    info = manage("pgqueue", "info", "--raw", "waiting")  # any pgqueue command, on Django's database
    assert info.returncode == 0 and "queue waiting 1" in info.stdout.splitlines(), info.stdout


def test_a_broken_connection_fails_one_job_not_the_next(worker: Callable[..., ManagedWorker],
                                                        db: psycopg.Connection[Any]) -> None:
    from shop import tasks

    from pgqueue.contrib.django import Queue

    worker("shop")
    q = Queue("shop")

    def run(job: Job) -> Job:
        return wait_for(lambda: (j := Job.fetch(job.id)).status in ("finished", "failed") and j,
                        message=f"job {job.id} to end")

    pid = run(q.enqueue(tasks.backend_pid)).result
    db.execute("SELECT pg_terminate_backend(%s)", (pid,))  # as a server restart would end it
    assert run(q.enqueue(tasks.backend_pid)).status == JobStatus.FAILED  # on the dead connection
    again = run(q.enqueue(tasks.backend_pid))  # the exception handler closed it: the job process reconnects
    assert again.status == JobStatus.FINISHED and again.result != pid


# -- misconfigured projects -----------------------------------------------------------------------------------
CALL_CONNECTION = ("from pgqueue.contrib.django import Queue\n"
                   "try:\n    Queue('shop').enqueue('shop.tasks.ship', 1)\n"
                   "except Exception as exc:\n    print(type(exc).__name__, exc)\n")


def test_on_sqlite_a_clear_error_names_the_fix(site: str) -> None:
    checked = manage("check", "--settings", "djsite.settings_sqlite")
    assert checked.returncode == 1
    assert "(pgqueue.E001) pgqueue keeps its jobs in PostgreSQL, but DATABASES['default'] is sqlite" in checked.stderr
    assert "use ENGINE 'django.db.backends.postgresql'" in checked.stderr
    worker = manage("pgqueue_worker", "--burst", "--settings", "djsite.settings_sqlite")
    assert worker.returncode == 1 and "pgqueue.E001" in worker.stderr  # the system check stops it first
    shell = manage("shell", "--settings", "djsite.settings_sqlite", "-c", CALL_CONNECTION)
    assert "\nConfigurationError pgqueue keeps its jobs in PostgreSQL, but" in shell.stdout, shell.stderr


def test_on_psycopg2_a_clear_error_says_what_to_install(site: str) -> None:
    pytest.importorskip("psycopg2")
    checked = manage("check", "--settings", "djsite.settings_psycopg2")
    assert checked.returncode == 1
    assert "runs on psycopg2, but pgqueue joins Django's transactions through psycopg 3" in checked.stderr
    assert "pip install 'psycopg[binary]>=3.2'" in checked.stderr
    shell = manage("shell", "--settings", "djsite.settings_psycopg2", "-c", CALL_CONNECTION)
    assert "\nConfigurationError Django's connection DATABASES['default'] runs on psycopg2, but" in shell.stdout, \
        shell.stderr


# -- the project's own tests -----------------------------------------------------------------------------------
def test_djangos_test_runner_gets_a_test_database_with_pgqueues_schema(site: str) -> None:
    done = manage("test", "shop", "--noinput", timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Ran 3 tests" in done.stderr and "OK" in done.stderr
