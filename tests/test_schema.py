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
from pgqueue import JobStatus, MigrationError, Queue, SchemaMissing, SchemaTooNew
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
SELECT 'function', p.oid::regprocedure || ' ' || md5(p.prosrc) || ' ' || p.provolatile::text
FROM pg_proc p WHERE p.pronamespace = 'pgqueue'::regnamespace
UNION ALL
SELECT 'view', c.relname || ' ' || md5(pg_get_viewdef(c.oid)) FROM pg_class c
WHERE c.relnamespace = 'pgqueue'::regnamespace AND c.relkind = 'v'
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
    assert pgqueue.migrate(url) == "0006"
    assert pgqueue.migrate(url) == "0006"
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT version_num FROM pgqueue.alembic_version").fetchall() == [("0006",)]
        assert conn.execute("SELECT to_regclass('public.alembic_version')").fetchone() == (None,)


def test_schema_sql_builds_the_same_database_as_the_migrations(dsn: str, new_database: Callable[[], str]) -> None:
    printed = run_cli("schema", "--sql")
    assert printed.returncode == 0, printed.stderr
    url = new_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(printed.stdout)
    assert catalog(url) == catalog(dsn)
    assert pgqueue.migrate(url) == "0006"  # a later `pgqueue migrate` carries on from the printed DDL


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
        assert conn.execute("SELECT version_num FROM pgqueue.alembic_version").fetchall() == [("0006",)]
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



def _one_error_line(result: Any) -> str:
    """The CLI's answer to a user's mistake: exit 1, no traceback, one line on stderr."""
    assert result.returncode == 1, result
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return str(lines[0])


def test_migrate_by_a_role_without_create_is_one_line_saying_what_it_needs(
        server_dsn: str, new_database: Callable[[], str]) -> None:
    url = new_database()
    role = f"pgq_nocreate_{psycopg.conninfo.conninfo_to_dict(url)['dbname'][-8:]}"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN").format(psycopg.sql.Identifier(role)))
    try:
        as_role = psycopg.conninfo.make_conninfo(url, user=role)
        line = _one_error_line(run_cli("migrate", "--dsn", as_role))
        assert f"cannot migrate {role}@" in line and "permission denied for database" in line, line
        assert "CREATE on the database" in line and "docs/security.md" in line, line
        with pytest.raises(MigrationError, match="permission denied for database") as raised:
            pgqueue.migrate(as_role)
        assert str(raised.value) == line.removeprefix("Error: ")
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute(psycopg.sql.SQL("DROP ROLE {}").format(psycopg.sql.Identifier(role)))
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT to_regnamespace('pgqueue')").fetchone() == (None,)


def test_migrate_on_a_database_a_newer_pgqueue_migrated_names_its_revision(new_database: Callable[[], str]) -> None:
    url = new_database()
    pgqueue.migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE pgqueue.alembic_version SET version_num = '0099'")
    line = _one_error_line(run_cli("migrate", "--dsn", url))
    assert "is at revision 0099" in line and "a newer pgqueue migrated this database" in line, line
    assert line.endswith("upgrade pgqueue") and "its newest is 0006" in line, line
    with pytest.raises(SchemaTooNew, match="revision 0099") as raised:
        pgqueue.migrate(url)
    assert isinstance(raised.value, MigrationError) and raised.value.revision == "0099"
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT version_num FROM pgqueue.alembic_version").fetchall() == [("0099",)]

# Each rule of pgqueue.jobs (jobs_rules_idx), a row that breaks it, and a row at its edge that keeps it.
RULES = [
    ("jobs_attempts_check", {"attempts": -1}, {"attempts": 0}),
    ("jobs_claim_count_check", {"claim_count": -1}, {"claim_count": 0}),
    ("jobs_max_attempts_check", {"max_attempts": 0}, {"max_attempts": 1}),
    ("jobs_timeout_seconds_check", {"timeout_seconds": 0.0}, {"timeout_seconds": 0.001}),
    ("jobs_ended_has_time", {"status": "finished"}, {"status": "finished", "ended_at": "now"}),
    ("jobs_ended_has_time", {"status": "failed"}, {"status": "failed", "ended_at": "now"}),
    ("jobs_running_has_worker", {"status": "running", "claim_count": 1},
     {"status": "running", "claim_count": 1, "worker_id": 7}),
    ("jobs_running_has_worker", {"status": "running", "worker_id": 7},
     {"status": "running", "worker_id": 7, "claim_count": 1}),
]


def _insert(db: psycopg.Connection[Any], id: str, columns: dict[str, Any]) -> None:
    names = ["id", "queue", "func_name", *columns]
    db.execute(psycopg.sql.SQL("INSERT INTO pgqueue.jobs ({}) VALUES ({})").format(
        psycopg.sql.SQL(", ").join(map(psycopg.sql.Identifier, names)),
        psycopg.sql.SQL(", ").join(psycopg.sql.Placeholder() * len(names))), [id, "q", "m.f", *columns.values()])


@pytest.mark.parametrize(("rule", "broken", "kept"), RULES)
def test_each_row_rule_refuses_an_insert_and_an_update_that_break_it(
        db: psycopg.Connection[Any], rule: str, broken: dict[str, Any], kept: dict[str, Any]) -> None:
    with pytest.raises(psycopg.errors.CheckViolation) as refused:
        _insert(db, "bad", broken)
    assert refused.value.diag.constraint_name == rule
    assert refused.value.diag.table_name == "jobs" and refused.value.diag.schema_name == "pgqueue"
    assert "Job bad:" in (refused.value.diag.message_detail or "")
    _insert(db, "edge", kept)  # the edge of the rule is a valid row
    _insert(db, "plain", {})
    with pytest.raises(psycopg.errors.CheckViolation) as refused:
        db.execute(psycopg.sql.SQL("UPDATE pgqueue.jobs SET {} WHERE id = 'plain'").format(psycopg.sql.SQL(", ").join(
            psycopg.sql.SQL("{} = {}").format(psycopg.sql.Identifier(k), psycopg.sql.Literal(v))
            for k, v in broken.items())))
    assert refused.value.diag.constraint_name == rule
    assert db.execute("SELECT id FROM pgqueue.jobs ORDER BY id").fetchall() == [("edge",), ("plain",)]
    # No row enters the rules index (the statement that would have put one there failed).
    assert db.execute("SELECT count(*) FROM pgqueue.jobs WHERE attempts < 0 OR claim_count < 0 OR max_attempts < 1 "
                      "OR timeout_seconds <= 0 OR (status IN ('finished', 'failed') AND ended_at IS NULL) "
                      "OR (status = 'running' AND (worker_id IS NULL OR claim_count < 1))").fetchone() == (0,)


def test_the_row_rules_hold_for_copy(db: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.errors.CheckViolation) as refused:
        copying = "COPY pgqueue.jobs (id, queue, func_name, timeout_seconds) FROM STDIN"
        with db.cursor() as cur, cur.copy(copying) as copy:
            copy.write_row(("ok", "q", "m.f", 5.0))
            copy.write_row(("bad", "q", "m.f", -5.0))
    assert refused.value.diag.constraint_name == "jobs_timeout_seconds_check"
    assert db.execute("SELECT count(*) FROM pgqueue.jobs").fetchone() == (0,)


def test_revision_0002_upgrades_0001_with_its_rows_and_downgrades_back(new_database: Callable[[], str]) -> None:
    from pgqueue._migrate import _alembic

    url, fresh_0001 = new_database(), new_database()
    _alembic(fresh_0001, "upgrade", "0001")
    _alembic(url, "upgrade", "0001")
    with psycopg.connect(url, autocommit=True) as conn:
        _insert(conn, "old", {"status": "finished", "ended_at": "now", "attempts": 1})
    _alembic(url, "upgrade", "0002")
    migrated = catalog(url)
    fresh_0002 = new_database()
    _alembic(fresh_0002, "upgrade", "0002")
    assert migrated == catalog(fresh_0002)
    with psycopg.connect(url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.CheckViolation):
            _insert(conn, "bad", {"status": "failed"})
        assert conn.execute("SELECT id, status::text FROM pgqueue.jobs").fetchall() == [("old", "finished")]
    _alembic(url, "downgrade", "0001")
    assert catalog(url) == catalog(fresh_0001)
    with psycopg.connect(url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.CheckViolation) as refused:
            _insert(conn, "bad", {"status": "failed"})
        assert refused.value.diag.constraint_name == "jobs_ended_has_time"


def test_revision_0003_rebuilds_the_claim_index_with_the_queued_jobs_in_it(new_database: Callable[[], str]) -> None:
    from pgqueue._migrate import _alembic

    url, fresh_0002 = new_database(), new_database()
    _alembic(fresh_0002, "upgrade", "0002")
    _alembic(url, "upgrade", "0002")
    with psycopg.connect(url, autocommit=True) as conn:
        for id, queue, priority in [("a1", "a", 0), ("b1", "b", 0), ("a2", "a", -1), ("a3", "a", 0)]:
            conn.execute("INSERT INTO pgqueue.jobs (id, queue, func_name, priority) VALUES (%s, %s, 'm.f', %s)",
                         [id, queue, priority])
    _alembic(url, "upgrade", "0003")
    head = new_database()
    _alembic(head, "upgrade", "0003")
    assert catalog(url) == catalog(head)
    assert Queue("a", dsn=url).job_ids == ["a2", "a1", "a3"]  # read through the rebuilt index
    assert Queue("b", dsn=url).count == 1
    _alembic(url, "downgrade", "0002")
    assert catalog(url) == catalog(fresh_0002)
    assert Queue("a", dsn=url).job_ids == ["a2", "a1", "a3"]


@pytest.mark.parametrize("name", ["claim", "queue_count", "queue_job_ids", "queue_empty"])
def test_the_queue_statements_reach_queued_jobs_through_the_claim_index(db: psycopg.Connection[Any], name: str) -> None:
    """jobs_claim_idx keys on hashtext(queue): a statement that forgot to say so would scan the table."""
    from pgqueue.sql import q

    db.execute("INSERT INTO pgqueue.jobs (id, queue, func_name, status, ended_at) "
               "SELECT 'old' || i, 'q' || i % 3, 'm.f', 'finished', now() FROM generate_series(1, 3000) i")
    db.execute("INSERT INTO pgqueue.jobs (id, queue, func_name) SELECT 'new' || i, 'q' || i % 3, 'm.f' "
               "FROM generate_series(1, 30) i")
    db.execute("ANALYZE pgqueue.jobs")
    params = {"queue": "q1", "limit": 10, "offset": 0, "start_now": 1, "worker_id": None, "worker_name": "w"}
    plan = "\n".join(r[0] for r in db.execute(psycopg.sql.SQL("EXPLAIN ") + psycopg.sql.SQL(q(name)), params))
    assert "jobs_claim_idx" in plan and "Index Cond: (hashtext(queue) = " in plan, plan


def test_queues_whose_names_share_a_hash_keep_their_own_jobs_and_order(db: psycopg.Connection[Any]) -> None:
    """jobs_claim_idx keys on hashtext(queue), a 32-bit hash: two names can share it, and then the index
    holds both queues' jobs under one key. Every statement still checks the name itself."""
    from pgqueue import SimpleWorker

    row = db.execute("SELECT min('q' || i), max('q' || i) FROM generate_series(1, 300000) i "
                     "GROUP BY hashtext('q' || i) HAVING count(*) > 1 LIMIT 1").fetchone()
    assert row is not None, "no two names of 300,000 share a 32-bit hash (expected ~10 pairs)"
    a, b = Queue(row[0]), Queue(row[1])
    ids: dict[str, list[str]] = {a.name: [], b.name: []}
    for i, priority in enumerate([0, 0, -1, 0, -1, 0]):
        for q in (a, b):
            ids[q.name].append(q.enqueue_call("pgq_testjobs.add", args=(i, i), priority=priority).id)
    order = [2, 4, 0, 1, 3, 5]  # priority -1 first, FIFO within a priority
    assert a.job_ids == [ids[a.name][i] for i in order] and b.job_ids == [ids[b.name][i] for i in order]
    assert a.count == b.count == 6
    SimpleWorker([a.name]).work(burst=True)
    assert [pgqueue.Job.fetch(i).get_status() for i in ids[a.name]] == [JobStatus.FINISHED] * 6
    assert b.count == 6 and b.job_ids == [ids[b.name][i] for i in order]
    assert b.empty() == 6 and a.count == 0


ADDED = {
    "0004": ["jobs.callbacks", "jobs.retry_on", "pauses.paused_at", "pauses.reason", "pauses.scope", "pauses.until",
             "workers.failed_jobs", "workers.successful_jobs", "workers.working_seconds"],
    "0005": ["batches.callback_ids", "batches.callbacks", "batches.canceled", "batches.closed_at",
             "batches.completed_at", "batches.created_at", "batches.description", "batches.failed",
             "batches.finished", "batches.id", "batches.pending", "batches.total", "dependencies.job_id",
             "jobs.allow_dependency_failures", "jobs.batch_id", "jobs.progress", "jobs.snoozes",
             "jobs.traceparent", "jobs.with_dependency_result",
             "schedules.expression", "schedules.func_name", "schedules.last_job_id", "schedules.last_outcome",
             "schedules.last_tick", "schedules.name", "schedules.next_tick", "schedules.queue", "schedules.timezone",
             "schedules.updated_at"],
    "0006": ["queue_overview.canceled_last_hour", "queue_overview.deferred", "queue_overview.failed_last_hour",
             "queue_overview.finished_last_hour", "queue_overview.oldest_queued_age",
             "queue_overview.oldest_queued_at", "queue_overview.paused", "queue_overview.queue",
             "queue_overview.queued", "queue_overview.running", "queue_overview.scheduled", "throughput.failed",
             "throughput.finished", "throughput.minute", "throughput.queue"],
}


@pytest.mark.parametrize(("before", "after"), [("0003", "0004"), ("0004", "0005"), ("0005", "0006")])
def test_a_revision_only_adds_so_the_previous_version_runs_on_it(before: str, after: str,
                                                                 new_database: Callable[[], str]) -> None:
    """docs/quickstart.md: migrate first, then deploy. From 0004 on, a revision adds columns (nullable, or
    with a constant default), tables and indexes, and changes nothing of the one before: every statement of
    the previous version still finds what it names. Rows survive the upgrade and the downgrade."""
    from pgqueue._migrate import _alembic

    old, new = new_database(), new_database()
    _alembic(old, "upgrade", before)
    _alembic(new, "upgrade", before)
    with psycopg.connect(new, autocommit=True) as conn:
        conn.execute("INSERT INTO pgqueue.jobs (id, queue, func_name) VALUES ('kept', 'q', 'm.f')")
    _alembic(new, "upgrade", after)
    was = {row for row in catalog(old) if row[0] != "version"}
    now = {row for row in catalog(new) if row[0] != "version"}
    assert was <= now, sorted(was - now)
    added = [row[1] for row in now - was if row[0] == "column"]
    assert sorted(c.split()[0] for c in added) == ADDED[after]
    new_tables = {name.split(".")[0] for name in ADDED[after]} - {"jobs", "workers"}
    assert all(" YES " in c or c.rstrip().endswith(("0", "now()", "false")) for c in added
               if c.split(".")[0] not in new_tables), added
    _alembic(new, "downgrade", before)
    assert catalog(new) == catalog(old)
    with psycopg.connect(new) as conn:
        assert conn.execute("SELECT id FROM pgqueue.jobs").fetchall() == [("kept",)]


def test_the_statements_revision_is_the_alembic_head() -> None:
    from pgqueue._migrate import head_revision
    from pgqueue.sql import REVISION

    assert REVISION == head_revision()


def test_a_worker_on_an_older_schema_stops_with_one_line_saying_to_migrate(new_database: Callable[[], str]) -> None:
    """Its heartbeat writes what 0004 adds: on 0003 it would hold no lease and silently run nothing."""
    from pgqueue._migrate import _alembic

    url = new_database()
    _alembic(url, "upgrade", "0003")
    result = run_cli("worker", "--burst", "--dsn", url)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "revision 0003, this pgqueue needs 0006" in errors[0], result.stderr
    assert "run `pgqueue migrate`" in errors[0]
    Queue("old", dsn=url).enqueue("pgq_testjobs.noop")  # the plain path names nothing 0004 adds
