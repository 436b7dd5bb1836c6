"""`pgqueue doctor` and pgqueue.monitor.health (docs/operations.md): what in PostgreSQL hurts a queue, found
on a real server, with the sessions, workers and rows that cause it."""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest
from conftest import run_cli, snapshot_aged, wait_for
from psycopg import sql

import pgqueue
from pgqueue import Queue, SimpleWorker, monitor
from pgqueue.health import CHECKS


def _findings(result: Any, check: str) -> list[dict[str, Any]]:
    report = json.loads(result.stdout)
    return [f for f in report["findings"] if f["check"] == check]


def test_a_transaction_holding_a_snapshot_is_named_with_its_pid_and_age_and_fails(
        db: psycopg.Connection[Any], snapshot_holder: psycopg.Connection[Any]) -> None:
    pid = snapshot_holder.info.backend_pid
    snapshot_aged(db, snapshot_holder)
    result = run_cli("doctor", "--max-transaction-age", "1")
    assert result.returncode == 1, result
    line = next(line for line in result.stdout.splitlines() if line.startswith("PROBLEM  transactions"))
    assert f"pid {pid} (nightly-report, role " in line and "has held back the xmin horizon for " in line, line
    assert "idle in transaction since " in line and line.endswith("query: SELECT count(*) FROM pgqueue.jobs"), line
    found = _findings(run_cli("doctor", "--max-transaction-age", "1", "--json"), "transactions")
    assert [f["details"]["pid"] for f in found] == [pid] and found[0]["severity"] == "problem"
    assert found[0]["details"]["age_seconds"] >= 1 and found[0]["details"]["state"] == "idle in transaction"
    report = monitor.health(thresholds=monitor.Thresholds(max_transaction_age=1))
    assert not report.ok and [f.details["pid"] for f in report.problems if f.check == "transactions"] == [pid]
    # Younger than the default threshold (5 minutes): nothing wrong.
    assert run_cli("doctor").returncode == 0
    snapshot_holder.rollback()
    assert run_cli("doctor", "--max-transaction-age", "1").returncode == 0


def test_with_nothing_wrong_the_doctor_exits_0_and_reports_every_check(db: psycopg.Connection[Any]) -> None:
    job = Queue("fine").enqueue(tj.add, 2, 3)
    SimpleWorker(["fine"]).work(burst=True)
    assert job.get_status() == "finished"
    result = run_cli("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PROBLEM" not in result.stdout and result.stdout.splitlines()[-1].startswith("0 problem(s), ")
    report = json.loads(run_cli("doctor", "--json").stdout)
    assert report["ok"] is True
    assert {f["check"] for f in report["findings"]} == set(CHECKS)
    assert {f["severity"] for f in report["findings"]} <= {"ok", "notice"}
    # A notice here can only be a server that runs without autovacuum (it says so, without failing).
    assert {f["check"] for f in report["findings"] if f["severity"] == "notice"} <= {"autovacuum"}


def test_a_worker_killed_while_running_a_job_is_reported_lost_with_it(
        db: psycopg.Connection[Any], spawn_worker: Callable[..., Any]) -> None:
    worker = spawn_worker("lostq", "--lease", "1", "--name", "doomed")
    job = Queue("lostq").enqueue(tj.hang_on_first_attempt, "lost")
    wait_for(lambda: db.execute("SELECT 1 FROM pgq_test.runs WHERE tag = 'started:lost'").fetchone(),
             message="the job to start")
    os.killpg(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait(10)
    wait_for(lambda: db.execute("SELECT heartbeat_at < now() - interval '1 second' FROM pgqueue.workers "
                                "WHERE name = 'doomed'").fetchone() == (True,), message="the lease to run out")
    result = run_cli("doctor")
    assert result.returncode == 1, result
    line = next(line for line in result.stdout.splitlines() if line.startswith("PROBLEM  lost workers"))
    assert "worker doomed (pid " in line and "queues lostq) has not heartbeated for " in line, line
    assert "past its lease of 1 s; 1 running job(s) wait for a live worker to rescue them" in line, line
    assert db.execute("SELECT status::text FROM pgqueue.jobs WHERE id = %s", [job.id]).fetchone() == ("running",)
    found = _findings(run_cli("doctor", "--json"), "lost_workers")
    assert [(f["details"]["name"], f["details"]["running"]) for f in found] == [("doomed", 1)]


def test_jobs_running_past_their_timeout_are_stuck_unless_they_have_none(db: psycopg.Connection[Any]) -> None:
    """A live worker stops a job at its timeout; one still running well past it means the worker could not
    (hung, or its process is out of reach). The check reads the rows, so rows stand for that here."""
    for id, timeout, started in [("stuck", 60.0, "10 minutes"), ("slow-but-fine", 60.0, "30 seconds"),
                                 ("no-timeout", float("inf"), "3 days")]:
        db.execute("INSERT INTO pgqueue.jobs (id, queue, func_name, status, worker_id, worker_name, claim_count, "
                   "attempts, timeout_seconds, started_at) VALUES (%s, 'q', 'tasks.slow', 'running', 7, 'w7', 1, 1, "
                   "%s, now() - %s::interval)", [id, timeout, started])
    result = run_cli("doctor", "--json")
    assert result.returncode == 1
    found = _findings(result, "stuck_jobs")
    assert [f["details"]["id"] for f in found] == ["stuck"] and found[0]["severity"] == "problem"
    assert "job stuck (tasks.slow on q, worker w7) has run for 10m" in found[0]["summary"]
    assert found[0]["summary"].endswith("past its timeout of 60 s")
    # With a margin of 20 minutes, ten minutes past a one-minute timeout is not stuck yet.
    assert run_cli("doctor", "--stuck-margin", "20m").returncode == 0


def test_dead_rows_with_autovacuum_disabled_on_the_table_are_problems(db: psycopg.Connection[Any]) -> None:
    db.execute("ALTER TABLE pgqueue.jobs SET (autovacuum_enabled = false)")
    try:
        db.execute("INSERT INTO pgqueue.jobs (id, queue, func_name) SELECT 'd' || i, 'q', 'm.f' "
                   "FROM generate_series(1, 300) i")
        db.execute("DELETE FROM pgqueue.jobs")
        db.execute("SELECT pg_stat_force_next_flush()")  # the statistics of this session's writes, at once
        db.execute("SELECT 1")
        wait_for(lambda: db.execute("SELECT n_dead_tup >= 300 FROM pg_stat_user_tables "
                                    "WHERE relid = 'pgqueue.jobs'::regclass").fetchone() == (True,),
                 message="the statistics to count the dead rows")
        result = run_cli("doctor", "--max-dead-rows", "100", "--max-dead-ratio", "0", "--json")
        assert result.returncode == 1
        [autovacuum] = _findings(result, "autovacuum")
        assert autovacuum["severity"] == "problem" and autovacuum["details"]["table_autovacuum"] is False
        assert "autovacuum is disabled on pgqueue.jobs (autovacuum_enabled = false)" in autovacuum["summary"]
        [dead] = _findings(result, "dead_rows")
        assert dead["severity"] == "problem" and dead["details"]["dead_rows"] >= 300
        assert "vacuum does not keep up, or cannot remove them" in dead["summary"]
        # The default thresholds: 300 dead rows are no problem by themselves.
        [dead] = _findings(run_cli("doctor", "--json"), "dead_rows")
        assert dead["severity"] == "ok"
    finally:
        db.execute("ALTER TABLE pgqueue.jobs RESET (autovacuum_enabled)")


def test_paused_queues_and_suspended_workers_are_notices_not_problems(db: psycopg.Connection[Any]) -> None:
    Queue("emails").pause()
    pgqueue.suspend(duration="1h")
    result = run_cli("doctor")
    assert result.returncode == 0, result.stdout
    notices = [line for line in result.stdout.splitlines() if line.startswith("notice   pauses")]
    assert len(notices) == 2, result.stdout
    assert "queue emails is paused since " in notices[1] and notices[1].endswith("until resumed")
    assert "workers are suspended since " in notices[0] and " until resumed" not in notices[0]


@pytest.fixture
def monitor_role(server_dsn: str, dsn: str) -> Iterator[str]:
    """A login role with only the monitoring privileges of docs/security.md (no pg_read_all_stats): its URL."""
    role = f"pgq_monitor_{uuid.uuid4().hex[:8]}"
    ident = sql.Identifier(role)
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA pgqueue TO {}").format(ident))
        conn.execute(sql.SQL("GRANT SELECT ON pgqueue.jobs, pgqueue.workers, pgqueue.pauses TO {}").format(ident))
    try:
        yield psycopg.conninfo.make_conninfo(dsn, user=role)
    finally:
        pgqueue._db.close_shared_connections()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(ident))


def test_without_pg_read_all_stats_other_roles_transactions_are_hidden_and_it_says_so(
        server_dsn: str, monitor_role: str, snapshot_holder: psycopg.Connection[Any],
        db: psycopg.Connection[Any]) -> None:
    pid = snapshot_holder.info.backend_pid
    snapshot_aged(db, snapshot_holder)
    hidden = run_cli("doctor", "--max-transaction-age", "1", "--dsn", monitor_role)
    assert hidden.returncode == 0, hidden.stdout + hidden.stderr  # it cannot see the transaction: no error
    line = next(line for line in hidden.stdout.splitlines() if line.startswith("notice   visibility"))
    assert "sees only its own sessions' transactions" in line and "GRANT pg_read_all_stats" in line, line
    role = psycopg.conninfo.conninfo_to_dict(monitor_role)["user"]
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("GRANT pg_read_all_stats TO {}").format(sql.Identifier(str(role))))
    seen = run_cli("doctor", "--max-transaction-age", "1", "--dsn", monitor_role)
    assert seen.returncode == 1 and f"pid {pid} (nightly-report" in seen.stdout, seen.stdout
    assert "ok       visibility" in seen.stdout


def test_with_pgstattuple_the_claim_index_is_measured(new_database: Callable[[], str]) -> None:
    url = new_database()
    with psycopg.connect(url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pgstattuple'").fetchone():
            pytest.skip("the server has no pgstattuple extension")
        pgqueue.migrate(url)
        conn.execute("CREATE EXTENSION pgstattuple")
        conn.execute("INSERT INTO pgqueue.jobs (id, queue, func_name) SELECT 'j' || i, 'q', 'm.f' "
                     "FROM generate_series(1, 500) i")
    result = run_cli("doctor", "--json", "--dsn", url)
    [index] = _findings(result, "claim_index")
    assert index["severity"] == "ok" and index["details"]["entries"] == 500
    assert index["details"]["avg_leaf_density"] > 0 and index["details"]["leaf_pages"] >= 1
    assert "dead_tuple_percent" in _findings(result, "dead_rows")[0]["details"]
    bloated = run_cli("doctor", "--dsn", url, "--max-claim-index-bloat", "0.1", "--min-claim-index-mb", "0")
    assert bloated.returncode == 1
    assert "REINDEX INDEX CONCURRENTLY pgqueue.jobs_claim_idx" in bloated.stdout


@pytest.mark.nodb
@pytest.mark.parametrize(("args", "says"), [
    (["--max-transaction-age", "soon"], "'soon' is not a duration"),
    (["--max-dead-ratio", "-1"], "-1.0 is not in the range x>=0."),
    (["--max-slot-xmin-age", "many"], "'many' is not a valid integer"),
    (["--stuck-margin", "-5"], "'-5' is not a duration"),
])
def test_bad_thresholds_are_one_error_line_and_exit_2(args: list[str], says: str) -> None:
    result = run_cli("doctor", *args, "--dsn", "postgresql://nobody@127.0.0.1:1/none")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and says in errors[0], result.stderr


@pytest.mark.nodb
def test_an_unreachable_database_is_one_error_line_and_exit_1() -> None:
    result = run_cli("doctor", "--dsn", "postgresql://nobody@127.0.0.1:1/none")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().startswith("Error: cannot reach PostgreSQL at nobody@127.0.0.1:1/none")
    assert len(result.stderr.strip().splitlines()) == 1
