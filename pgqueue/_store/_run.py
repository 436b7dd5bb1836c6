"""How a statement runs: through psycopg (a caller's transaction, or array parameters) or through libpq
directly on pgqueue's own connection (see the package's docstring)."""

from __future__ import annotations

from typing import Any, TypeVar

import psycopg

from .. import _db
from ..sql import q

Conn = psycopg.Connection[Any]
R = TypeVar("R", bound=tuple[Any, ...])


def _execute(conn: Conn, name: str, params: dict[str, Any] | None, row: type[R]) -> list[R]:
    """Query ``name`` through psycopg (a caller's transaction, or array parameters)."""
    return [row._make(r) for r in conn.execute(q(name), params).fetchall()]  # type: ignore[attr-defined]


def _do(conn: Conn, name: str, params: dict[str, Any] | None = None) -> int:
    """Statement ``name``, which returns no rows, through psycopg; returns the rows it changed."""
    return conn.execute(q(name), params).rowcount


def _fast(conn: Conn, name: str, params: dict[str, Any], row: type[R]) -> list[R]:
    """Query ``name`` on pgqueue's own autocommit connection, through libpq directly (scalar parameters)."""
    return _db.run(conn, name, params, row._make)  # type: ignore[attr-defined]


def _rows(conn: Conn, caller: bool, name: str, params: dict[str, Any], row: type[R]) -> list[R]:
    return _execute(conn, name, params, row) if caller else _fast(conn, name, params, row)


def _outcome(conn: Conn, name: str, params: dict[str, Any], row: type[R]) -> list[R]:
    """One of the worker's fenced outcome statements (see the comment above mark_started in queries.sql).
    Their plans need the worker's plan settings: its session has them (worker_plan_settings); in
    transaction-pooling mode they go with the statement, for its own transaction. Measured there on
    20,000 jobs: finish_jobs of 1,000 outcomes took 270-440 ms with the custom plan an unnamed statement
    gets (a nested loop comparing every outcome with every running job), 27 ms with them."""
    if _db.pooled(conn):
        return _db.run(conn, name, params, row._make, local="worker_plan_local")  # type: ignore[attr-defined]
    return _execute(conn, name, params, row)


def _one(rows: list[R]) -> R | None:
    return rows[0] if rows else None
