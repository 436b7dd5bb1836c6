"""pgqueue/_store.py is the one gateway to the SQL: each statement's result columns are the fields of the
named row its function returns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue import _store
from pgqueue.sql import QUERIES, statement


def test_every_statement_has_its_row_type() -> None:
    assert set(QUERIES) == set(_store.ROWS)


#: Statements that call an extension's functions, which must exist for the statement to be prepared.
NEEDS_EXTENSION = {"health_pgstattuple": "pgstattuple"}


@pytest.mark.parametrize("name", sorted(n for n, row in _store.ROWS.items() if row is not None))
def test_the_statements_columns_are_its_row_fields(name: str, db: psycopg.Connection[Any],
                                                   new_database: Callable[[], str],
                                                   request: pytest.FixtureRequest) -> None:
    stmt, query, _ = statement(name)
    if name in NEEDS_EXTENSION:  # in a database of its own, so that the others' tests run without it
        url = new_database()
        db = psycopg.connect(url, autocommit=True)
        request.addfinalizer(db.close)
        if not db.execute("SELECT 1 FROM pg_available_extensions WHERE name = %s", [NEEDS_EXTENSION[name]]).fetchone():
            pytest.skip(f"the server has no {NEEDS_EXTENSION[name]} extension")
        pgqueue.migrate(url)
        db.execute(f"CREATE EXTENSION {NEEDS_EXTENSION[name]}")
    pgconn = db.pgconn
    prepared = pgconn.prepare(b"describe_" + stmt, query)
    assert prepared.status == psycopg.pq.ExecStatus.COMMAND_OK, prepared.error_message
    described = pgconn.describe_prepared(b"describe_" + stmt)
    columns = [described.fname(i).decode() for i in range(described.nfields)]  # type: ignore[union-attr]
    assert columns == list(_store.ROWS[name]._fields)  # type: ignore[union-attr]


@pytest.mark.parametrize("name", sorted(n for n, row in _store.ROWS.items()
                                        if row is None and not n.startswith(("copy_", "own_", "worker_"))))
def test_statements_without_a_row_type_return_no_rows(name: str, db: psycopg.Connection[Any]) -> None:
    stmt, query, _ = statement(name)
    pgconn = db.pgconn
    assert pgconn.prepare(b"describe_" + stmt, query).status == psycopg.pq.ExecStatus.COMMAND_OK
    assert pgconn.describe_prepared(b"describe_" + stmt).nfields == 0
