"""`pgqueue doctor` and a forgotten prepared transaction: on a server of the test's own, since the shared
one has max_prepared_transactions = 0 and tests must not reconfigure it."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from conftest import run_cli, wait_for

import pgqueue

from .conftest import OwnedServer


def _line(result: Any, check: str) -> str:
    return next(line for line in result.stdout.splitlines() if line[9:].startswith(check))


@pytest.mark.timeout(120)
def test_a_forgotten_prepared_transaction_is_named_and_fails_until_it_is_rolled_back(
        owned_server: OwnedServer) -> None:
    uri = owned_server.uri
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET max_prepared_transactions = 2")
    owned_server.restart()
    pgqueue.migrate(uri)

    with psycopg.connect(uri) as conn:
        conn.execute("SELECT count(*) FROM pgqueue.jobs")
        conn.execute("PREPARE TRANSACTION 'nightly-export'")  # the session may end: the transaction stays
    with psycopg.connect(uri, autocommit=True) as conn:
        wait_for(lambda: conn.execute("SELECT now() - prepared > interval '1 second' FROM pg_prepared_xacts "
                                      "WHERE gid = 'nightly-export'").fetchone() == (True,),
                 message="the prepared transaction to age 1 s")
        found = run_cli("doctor", "--max-transaction-age", "1", "--dsn", uri)
        assert found.returncode == 1, found.stdout + found.stderr
        line = _line(found, "prepared transactions")
        assert line.startswith("PROBLEM") and "prepared transaction 'nightly-export' (owner " in line, line
        assert "has held back the xmin horizon for " in line, line

        conn.execute("ROLLBACK PREPARED 'nightly-export'")
    cleared = run_cli("doctor", "--max-transaction-age", "1", "--dsn", uri)
    assert cleared.returncode == 0, cleared.stdout + cleared.stderr
    assert _line(cleared, "prepared transactions").startswith("ok "), cleared.stdout
