"""pgqueue.testing as a user meets it: drain() in this process, and the opt-in pytest plugin run by pytester on a
user's test files in a pytest subprocess, against the test server."""

from __future__ import annotations

import asyncio
import importlib.metadata
import textwrap
from pathlib import Path
from typing import Any

import pgq_asyncjobs as aj
import pgq_testjobs as tj
import psycopg
import pytest

from pgqueue import JobFailed, JobStatus, Queue, Retry
from pgqueue.testing import Databases, drain

pytest_plugins = ["pytester"]


# -- drain ---------------------------------------------------------------------------------------------------
def test_drain_runs_every_queues_jobs_in_this_process(db: psycopg.Connection[Any]) -> None:
    first = Queue("a").enqueue(tj.add, 1, 2)
    then = Queue("b").enqueue(tj.add, 3, 4, depends_on=first)  # runnable once `first` finished
    coro = Queue("c").enqueue(aj.add, 5, 6)  # an async def job
    later = Queue("a").enqueue_in(3600, tj.add, 0, 0)
    ran = drain()
    order = [job.id for job in ran]
    assert order.index(first.id) < order.index(then.id)  # the dependent in queue b ran after its dependency
    assert {job.id: job.result for job in ran} == {first.id: 3, then.id: 7, coro.id: 11}
    assert all(job.status == JobStatus.FINISHED for job in ran)
    assert later.get_status() == JobStatus.SCHEDULED  # not due: left alone
    assert drain() == []  # nothing runnable is left
    assert db.execute("SELECT count(*) FROM pgqueue.workers WHERE stopped_at IS NULL").fetchone() == (0,)


def test_drain_named_queues_only_and_at_most_max_jobs() -> None:
    mine = [Queue("mine").enqueue(tj.add, i, i) for i in range(3)]
    other = Queue("other").enqueue(tj.add, 1, 1)
    assert [job.id for job in drain(["mine"], max_jobs=2)] == [j.id for j in mine[:2]]
    assert [job.id for job in drain("mine")] == [mine[2].id]
    assert other.get_status() == JobStatus.QUEUED


def test_drain_reports_failures_and_can_raise_them() -> None:
    broken = Queue("a").enqueue(tj.fail, "no stock", retry=Retry(max=1))  # retried at once, then failed
    ok = Queue("a").enqueue(tj.add, 1, 1)
    ran = drain()
    assert {job.id: job.status for job in ran} == {broken.id: JobStatus.FAILED, ok.id: JobStatus.FINISHED}
    assert [job.attempts for job in ran if job.id == broken.id] == [2]
    Queue("a").enqueue(tj.fail, "again")
    with pytest.raises(JobFailed, match="failed") as failed:
        drain(raise_failures=True)  # only this drain's jobs: not the one that failed before
    assert "again" in (failed.value.exc_info or "") and "no stock" not in (failed.value.exc_info or "")


def test_drain_from_async_code_through_a_thread() -> None:
    async def steps() -> list[Any]:
        Queue("a").enqueue(aj.add, 1, 1)
        return [job.result for job in await asyncio.to_thread(drain)]

    assert asyncio.run(steps()) == [2]


# -- Databases -----------------------------------------------------------------------------------------------
def test_databases_copy_a_template_prepared_once(server_dsn: str) -> None:
    setups: list[str] = []

    def setup(url: str) -> None:
        import pgqueue

        setups.append(url)
        pgqueue.migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE accounts (id int)")

    databases = Databases(server_dsn, setup)
    one, two = databases.create(), databases.create()
    assert one != two and len(setups) == 1
    for url in (one, two):
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT to_regclass('pgqueue.jobs') IS NOT NULL, "
                                "to_regclass('public.accounts') IS NOT NULL").fetchone() == (True, True)
    Queue("a", dsn=one).enqueue(tj.noop)  # a connection of pgqueue's own to it: drop closes it first
    databases.drop(one)
    names = {psycopg.conninfo.conninfo_to_dict(u)["dbname"] for u in (one, two, setups[0])}
    databases.close()
    with psycopg.connect(server_dsn) as admin:
        left = admin.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", (list(names),)).fetchall()
    assert left == []


# -- the pytest plugin, in a user's test run ------------------------------------------------------------------
JOBS = '''
def add(a, b):
    return a + b


async def double(x):
    return 2 * x
'''

USER_TESTS = '''
import os

import psycopg
import pytest

from pgqueue import Queue, Worker
from pgqueue.testing import drain

import jobs


@pytest.fixture(scope="session")
def pgqueue_database_setup():
    import pgqueue

    def setup(url):
        pgqueue.migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE orders (id int)")
    return setup


@pytest.mark.parametrize("n", [1, 2, 3])
def test_each_test_has_a_clean_migrated_database(pgqueue_database, n):
    assert os.environ["PGQUEUE_DATABASE_URL"] == pgqueue_database
    with open("databases.txt", "a") as seen:
        seen.write(psycopg.conninfo.conninfo_to_dict(pgqueue_database)["dbname"] + "\\n")
    q = Queue("default")
    assert len(q) == 0  # nothing left by the test before
    with psycopg.connect(pgqueue_database) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (0,)
        conn.execute("INSERT INTO orders VALUES (%s)", (n,))
    sync_job, async_job = q.enqueue(jobs.add, n, n), q.enqueue(jobs.double, n)
    assert [job.result for job in drain()] == [2 * n, 2 * n]
    assert sync_job.get_status() == "finished" and async_job.get_status() == "finished"


def test_a_worker_and_the_eager_mode(pgqueue_database):
    job = Queue("default").enqueue(jobs.add, 2, 3)
    Worker(["default"]).work(burst=True)  # a real worker, with its child process
    assert job.result == 5
    assert Queue("default", is_async=False).enqueue(jobs.add, 1, 1).result == 2
'''


def database_names(pytester: pytest.Pytester) -> list[str]:
    return (pytester.path / "databases.txt").read_text().split()


def test_the_plugin_gives_each_test_a_clean_migrated_database(pytester: pytest.Pytester, server_dsn: str) -> None:
    pytester.makepyfile(jobs=JOBS, test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "pgqueue.testing", "-p", "no:cacheprovider",
                                           f"--pgqueue-server-url={server_dsn}")
    result.assert_outcomes(passed=4)
    names = database_names(pytester)
    assert len(set(names)) == 3  # one database per test
    with psycopg.connect(server_dsn) as admin:  # the run dropped them, and its template
        prefix = names[0].rsplit("_", 1)[0]
        assert admin.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                             (prefix.replace("_", r"\_") + "%",)).fetchall() == []


def test_the_plugin_is_opt_in(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(jobs=JOBS, test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=4)
    result.stdout.fnmatch_lines(["*fixture 'pgqueue_database' not found*"])
    assert not [e for e in importlib.metadata.entry_points(group="pytest11") if e.value.startswith("pgqueue")]


def test_the_plugin_from_conftest_and_the_environment(pytester: pytest.Pytester, server_dsn: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeconftest('pytest_plugins = ["pgqueue.testing"]\n')
    pytester.makepyfile(jobs=JOBS, test_user=textwrap.dedent('''
        from pgqueue import Queue
        from pgqueue.testing import drain

        import jobs


        def test_enqueue_and_drain(pgqueue_database):
            Queue("emails").enqueue(jobs.add, 20, 22)
            assert [job.result for job in drain(["emails"])] == [42]
    '''))
    monkeypatch.setenv("PGQUEUE_TEST_DATABASE_URL", server_dsn)
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_an_unreachable_server_is_one_clear_error(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(test_user="def test_it(pgqueue_database):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "pgqueue.testing", "-p", "no:cacheprovider",
                                           "--pgqueue-server-url=postgresql://nobody@127.0.0.1:1/x")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*DatabaseUnavailable: cannot reach PostgreSQL at *127.0.0.1:1*"])
