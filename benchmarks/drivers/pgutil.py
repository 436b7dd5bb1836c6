"""psycopg helpers shared by the PostgreSQL drivers (every PostgreSQL venv has psycopg 3)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

SETTINGS = (
    "server_version", "shared_buffers", "synchronous_commit", "fsync", "wal_level", "full_page_writes",
    "max_connections", "work_mem", "maintenance_work_mem", "effective_cache_size", "checkpoint_timeout",
    "max_wal_size", "random_page_cost", "autovacuum", "autovacuum_naptime", "jit", "max_worker_processes",
)


def dsn_for(admin_dsn: str, dbname: str) -> str:
    """The admin DSN pointed at another database; a URL stays a URL (asyncpg takes URLs only)."""
    if admin_dsn.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(admin_dsn)
        return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))
    info = conninfo_to_dict(admin_dsn)
    info["dbname"] = dbname
    return make_conninfo(**info)


def create_database(admin_dsn: str, dbname: str) -> str:
    """A fresh, empty database (dropped first if a previous run left it). Names must start with bench_."""
    if not dbname.startswith("bench_"):
        raise ValueError("benchmark databases are named bench_*")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    return dsn_for(admin_dsn, dbname)


def drop_database(admin_dsn: str, dbname: str) -> None:
    if not dbname.startswith("bench_"):
        raise ValueError("benchmark databases are named bench_*")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))


@contextlib.contextmanager
def bench_database(admin_dsn: str, dbname: str, keep: bool = False) -> Iterator[str]:
    dsn = create_database(admin_dsn, dbname)
    try:
        yield dsn
    finally:
        if not keep:
            drop_database(admin_dsn, dbname)


def execute(dsn: str, *statements: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for stmt in statements:
            conn.execute(stmt)  # type: ignore[arg-type]


def settle(dsn: str, analyze: bool = True) -> None:
    """Before a timed phase: VACUUM ANALYZE (what autovacuum would have done after the backlog was
    loaded; without statistics the planner takes a 20k-row queue table for an empty one, and some
    systems' claim queries then scan it on every fetch), then CHECKPOINT, so that a checkpoint does not
    land inside the measurement."""
    execute(dsn, *(["VACUUM ANALYZE"] if analyze else []), "CHECKPOINT")


def pg_settings(dsn: str) -> dict[str, Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in SETTINGS}  # type: ignore[index]


def query_window(dsn: str, query: str, params: Any = None) -> tuple[int, float, float]:
    """(count, first start, last end) from one row of count/epoch/epoch."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        n, first, last = conn.execute(query, params).fetchone()  # type: ignore[misc]
    return int(n), float(first or 0), float(last or 0)
