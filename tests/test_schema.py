"""Schema: alembic migrations, `pgqueue schema --sql`, and clear errors when the schema is missing."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import run_cli

import pgqueue
from pgqueue import JobStatus, Queue, SchemaMissing
from pgqueue._schema import metadata

CATALOG = """
SELECT 'column', c.table_name || '.' || c.column_name || ' ' || c.udt_name || ' ' || c.is_nullable
       || ' ' || coalesce(c.column_default, '')
FROM information_schema.columns c WHERE c.table_schema = 'pgqueue'
UNION ALL
SELECT 'index', indexdef FROM pg_indexes WHERE schemaname = 'pgqueue'
UNION ALL
SELECT 'constraint', conrelid::regclass || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = 'pgqueue'::regnamespace
UNION ALL
SELECT 'enum', enumlabel || ' ' || enumsortorder FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
WHERE t.typnamespace = 'pgqueue'::regnamespace
UNION ALL
SELECT 'reloptions', relname || ' ' || coalesce(array_to_string(reloptions, ','), '') FROM pg_class
WHERE relnamespace = 'pgqueue'::regnamespace AND relkind = 'r'
UNION ALL
SELECT 'version', version_num FROM pgqueue.alembic_version
ORDER BY 1, 2
"""


def catalog(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(CATALOG).fetchall()


def test_migrate_is_idempotent_and_records_its_own_version(new_database: Callable[[], str]) -> None:
    url = new_database()
    assert pgqueue.migrate(url) == "0001"
    assert pgqueue.migrate(url) == "0001"
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT version_num FROM pgqueue.alembic_version").fetchall() == [("0001",)]
        assert conn.execute("SELECT to_regclass('public.alembic_version')").fetchone() == (None,)


def test_schema_sql_builds_the_same_database_as_the_migrations(dsn: str, new_database: Callable[[], str]) -> None:
    printed = run_cli("schema", "--sql")
    assert printed.returncode == 0, printed.stderr
    url = new_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(printed.stdout)
    assert catalog(url) == catalog(dsn)
    assert pgqueue.migrate(url) == "0001"  # a later `pgqueue migrate` carries on from the printed DDL


def test_sqlalchemy_tables_match_the_database(db: psycopg.Connection[Any]) -> None:
    for table in metadata.tables.values():
        rows = db.execute(
            "SELECT column_name, is_nullable FROM information_schema.columns "
            "WHERE table_schema = 'pgqueue' AND table_name = %s ORDER BY ordinal_position", (table.name,)
        ).fetchall()
        assert [(c.name, "YES" if c.nullable else "NO") for c in table.columns] == rows


def test_an_applications_own_alembic_history_is_untouched(new_database: Callable[[], str], tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    url = new_database()
    versions = tmp_path / "app_migrations" / "versions"
    versions.mkdir(parents=True)
    (tmp_path / "app_migrations" / "env.py").write_text(textwrap.dedent("""
        import psycopg
        from alembic import context
        from sqlalchemy import create_engine
        dsn = context.config.get_main_option("pg_dsn")
        engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(dsn))
        with engine.connect() as connection:
            context.configure(connection=connection)
            with context.begin_transaction():
                context.run_migrations()
    """))
    (tmp_path / "app_migrations" / "script.py.mako").write_text("")
    (versions / "a1_orders.py").write_text(textwrap.dedent("""
        from alembic import op
        revision, down_revision, branch_labels, depends_on = "a1", None, None, None
        def upgrade():
            op.execute("CREATE TABLE orders (id serial PRIMARY KEY)")
        def downgrade():
            op.execute("DROP TABLE orders")
    """))
    cfg = Config()
    cfg.set_main_option("script_location", str(tmp_path / "app_migrations"))
    cfg.set_main_option("pg_dsn", url)
    command.upgrade(cfg, "head")

    pgqueue.migrate(url)

    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT version_num FROM public.alembic_version").fetchall() == [("a1",)]
        assert conn.execute("SELECT version_num FROM pgqueue.alembic_version").fetchall() == [("0001",)]
    command.downgrade(cfg, "base")  # the app's history still works on its own
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT to_regclass('public.orders')").fetchone() == (None,)
        assert conn.execute("SELECT to_regclass('pgqueue.jobs')").fetchone() != (None,)


def test_missing_schema_is_one_clear_error(new_database: Callable[[], str]) -> None:
    url = new_database()
    q = Queue("default", dsn=url)
    with pytest.raises(SchemaMissing, match="pgqueue migrate"):
        q.enqueue("pgq_testjobs.noop")
    with pytest.raises(SchemaMissing, match="pgqueue migrate"):
        q.enqueue("pgq_testjobs.noop", job_timeout=5)
    for args in (["info"], ["failed"], ["worker", "--burst"], ["requeue", "--all"]):
        result = run_cli(*args, "--dsn", url)
        assert result.returncode == 1, (args, result)
        assert "pgqueue migrate" in result.stderr
        assert "Traceback" not in result.stderr + result.stdout
    # The failed statements were not remembered as prepared: once migrated, the same process enqueues.
    pgqueue.migrate(url)
    assert q.enqueue("pgq_testjobs.noop").get_status() == JobStatus.QUEUED
    assert q.enqueue("pgq_testjobs.noop", job_timeout=5).get_status() == JobStatus.QUEUED
