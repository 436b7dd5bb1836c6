"""The `pgqueue` CLI in real processes: info, failed, requeue, and one-line errors."""

from __future__ import annotations

import re
import threading
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest
from conftest import run_cli, wait_for

from pgqueue import JobStatus, Queue, Retry, UniqueKeyHeld, Worker


def test_info_shows_bars_totals_and_workers(spawn_worker: Any) -> None:
    for _ in range(4):
        Queue("high").enqueue(tj.noop)
    Queue("low").enqueue(tj.noop)
    spawn_worker("nothing-here", "other", "--name", "idler")
    result = run_cli("info")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"high\s+\|█{40} 4", lines[0])
    assert re.fullmatch(r"low\s+\|█{10} 1", lines[1])
    assert "2 queues, 5 jobs total" in lines
    assert "idler idle: nothing-here, other" in lines
    assert "1 workers, 2 queues" in lines


def test_info_raw_and_by_queue(spawn_worker: Any) -> None:
    Queue("pending").enqueue(tj.noop)  # a queue nobody serves, so the job stays queued
    spawn_worker("high", "low", "--name", "w1")
    raw = run_cli("info", "--raw")
    assert raw.stdout.splitlines() == ["queue pending 1", "worker w1 idle high,low"]
    by_queue = run_cli("info", "--by-queue", "high", "low")
    assert re.search(r"^high:\s+w1 \(idle\)$", by_queue.stdout, re.M)
    assert re.search(r"^low:\s+w1 \(idle\)$", by_queue.stdout, re.M)
    assert re.search(r"^low\s+\| 0$", by_queue.stdout, re.M)  # a named queue with no jobs shows 0


@pytest.mark.parametrize("sigint", ["default", "ignored"])
def test_info_interval_refreshes_until_interrupted(sigint: str) -> None:
    """Also when started with SIGINT ignored, as a shell starts a background command (where Python does not
    turn SIGINT into KeyboardInterrupt by itself)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    argv = ["info", "--raw", "--interval", "0.1"]
    starter = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN if sys.argv[1] == 'ignored' "
               "else signal.default_int_handler); sys.argv = ['pgqueue'] + sys.argv[2:]; "
               "runpy.run_module('pgqueue.cli', run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", starter, sigint, *argv], stdout=subprocess.PIPE, text=True,
                            env=os.environ)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    Queue("later").enqueue(tj.noop)
    deadline = time.monotonic() + 20
    while "queue later 1" not in proc.stdout.readline():
        assert time.monotonic() < deadline, "info --interval never showed the new job"
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=20)  # keep reading: a full pipe would block its last write
    assert proc.returncode == 0
    assert first.startswith("queue ") or first.startswith("worker ") or first == "\n"


def test_failed_lists_and_requeue_puts_back() -> None:
    bad = Queue("a").enqueue(tj.fail, "first")
    other = Queue("b").enqueue(tj.fail, "second")
    Worker(["a", "b"]).work(burst=True)
    listing = run_cli("failed")
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [bad.id, other.id]
    assert "ValueError: first" in lines[0]
    assert run_cli("failed", "b").stdout.split()[0] == other.id

    one = run_cli("requeue", bad.id)
    assert one.returncode == 0 and bad.get_status() == JobStatus.QUEUED
    assert other.get_status() == JobStatus.FAILED
    missing = run_cli("requeue", "no-such-id")
    assert missing.returncode == 1 and "no-such-id" in missing.stderr
    everything = run_cli("requeue", "--all", "--queue", "b")
    assert everything.returncode == 0 and other.get_status() == JobStatus.QUEUED
    assert run_cli("requeue").returncode == 2  # usage error: nothing named


def test_a_failed_job_whose_unique_key_a_live_job_holds_stays_failed_and_is_named() -> None:
    """unique_key allows one live job per key, requeue included: the job stays failed, with a clear error,
    and the other failed jobs go back all the same."""
    q = Queue()
    held, other = q.enqueue(tj.fail, unique_key="k"), q.enqueue(tj.fail)
    Worker().work(burst=True)
    holder = q.enqueue(tj.noop, unique_key="k")
    says = f"job {held.id} stays failed: its unique_key 'k' is held by job {holder.id}"
    with pytest.raises(UniqueKeyHeld, match=says):
        held.requeue()
    assert held.status == JobStatus.FAILED and held.get_status() == JobStatus.FAILED
    result = run_cli("requeue", "--all")
    assert result.returncode == 1, result
    assert "Requeued 1 job(s)" in result.stdout and f"Not requeued: job {held.id} stays failed" in result.stderr
    assert "Traceback" not in result.stderr
    assert other.get_status() == JobStatus.QUEUED and held.get_status() == JobStatus.FAILED
    Worker().work(burst=True)  # the holder finishes: the key is free again
    assert held.requeue() and held.get_status() == JobStatus.QUEUED


def test_a_requeue_racing_an_enqueue_of_the_same_unique_key_reports_the_new_job(
        dsn: str, db: psycopg.Connection[Any]) -> None:
    """The requeue checks for a live holder, then writes; an enqueue committed in between makes the write
    wait on the unique index and fail. The requeue then looks again and names the new job."""
    q = Queue()
    held = q.enqueue(tj.fail, unique_key="k")
    Worker().work(burst=True)
    with psycopg.connect(dsn) as other:  # a transaction of the application's, still open
        holder = q.enqueue_call(tj.noop, unique_key="k", connection=other)
        outcome: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: outcome.update(error=pytest.raises(UniqueKeyHeld, held.requeue)))
        thread.start()
        wait_for(lambda: db.execute(  # db: autocommit, so each poll reads pg_stat_activity afresh
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'transactionid' "
            "AND query LIKE '%UPDATE pgqueue.jobs j SET status = ''queued''%'").fetchone()[0],  # type: ignore[index]
            message="the requeue waiting on the uncommitted enqueue")
        other.commit()
        thread.join(timeout=20)
    assert outcome["error"].value.holder == holder.id
    assert held.get_status() == JobStatus.FAILED


def test_of_failed_jobs_that_share_a_unique_key_the_last_to_end_goes_back() -> None:
    q = Queue()
    first = q.enqueue(tj.fail, unique_key="k")
    Worker().work(burst=True)
    second = q.enqueue(tj.fail, unique_key="k")  # the first one no longer holds the key: it failed
    Worker().work(burst=True)
    result = run_cli("requeue", first.id, second.id)
    assert result.returncode == 1 and f"is held by job {second.id}" in result.stderr, result
    assert first.get_status() == JobStatus.FAILED and second.get_status() == JobStatus.QUEUED


def test_exc_info_keeps_the_last_failure_after_a_retry_succeeds_and_after_a_requeue() -> None:
    """API.md: exc_info is the text of the last failure."""
    job = Queue().enqueue(tj.fail_first_attempt, retry=Retry(max=1, interval=0))
    Worker().work(burst=True)
    job.refresh()
    assert (job.status, job.result, job.attempts) == (JobStatus.FINISHED, "the second succeeds", 2)
    assert job.exc_info is not None and "ValueError: the first attempt fails" in job.exc_info
    assert [e["message"] for e in job.errors] == ["the first attempt fails"]
    failed = Queue().enqueue(tj.fail, "kept")
    Worker().work(burst=True)
    assert failed.requeue() and failed.status == JobStatus.QUEUED and "ValueError: kept" in (failed.exc_info or "")


def test_job_requeue_gives_one_more_attempt() -> None:
    job = Queue().enqueue(tj.fail)
    Worker().work(burst=True)
    assert job.requeue()
    Worker().work(burst=True)
    job.refresh()
    assert job.status == JobStatus.FAILED and job.attempts == 2


@pytest.mark.nodb
@pytest.mark.parametrize("command", [["info"], ["failed"], ["worker", "--burst"], ["requeue", "--all"],
                                     ["migrate"], ["demo"]])
@pytest.mark.parametrize(("url", "says"), [("postgresql://nobody@127.0.0.1:1/none", "cannot reach PostgreSQL"),
                                           ("not a dsn = = =", "invalid database URL"),
                                           ("mysql://app@127.0.0.1/app", "needs PostgreSQL (postgresql://...), not mysql://")])
def test_bad_or_unreachable_database_is_one_line_exit_1(command: list[str], url: str, says: str) -> None:
    result = run_cli(*command, "--dsn", url)
    assert result.returncode == 1, result
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("Error: ") and says in errors[0], result.stderr


@pytest.mark.nodb
def test_database_url_from_the_environment_is_used() -> None:
    result = run_cli("info", env={"PGQUEUE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/from-env"})
    assert result.returncode == 1 and "from-env" in result.stderr
    result = run_cli("info", env={"DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/from-database-url"})
    assert result.returncode == 1 and "from-database-url" in result.stderr


def test_migrate_and_schema_commands(dsn: str) -> None:
    assert run_cli("migrate", "--dsn", dsn).stdout.strip() == "pgqueue schema at revision 0006"
    printed = run_cli("schema", "--sql").stdout
    assert "CREATE TABLE pgqueue.jobs" in printed and "jobs_claim_idx" in printed


@pytest.mark.nodb
@pytest.mark.parametrize(("args", "says"), [
    (["info", "--interval", "0"], "'--interval' / '-i': 0.0 is not in the range x>=0.1."),
    (["info", "--interval", "-1"], "'--interval' / '-i': -1.0 is not in the range x>=0.1."),
    (["info", "--interval", "nan"], "'--interval' / '-i': nan is not a finite number of seconds."),
    (["info", "--interval", "inf"], "'--interval' / '-i': inf is not a finite number of seconds."),
    (["info", "--raw", "--by-queue"], "--by-queue does not go with --raw"),
    (["info", ""], "queue names must not be empty."),
    (["worker", "--burst", "--max-jobs", "0"], "'--max-jobs': 0 is not in the range x>=1."),
    (["worker", "--burst", "--max-jobs", "-1"], "'--max-jobs': -1 is not in the range x>=1."),
    (["worker", "--burst", "--lease", "2", "--lease-margin", "2"], "lease_margin (2 s) must be shorter than the lease"),
    (["worker", "--burst", "--lease", "nan"], "'--lease': nan is not a finite number of seconds."),
    (["worker", "--burst", "--poll-interval", "inf"], "'--poll-interval': inf is not a finite number of seconds."),
    (["worker", "--burst", "--grace", "nan"], "'--grace': nan is not a finite number of seconds."),
    (["worker", "--burst", "--give-back-after", "inf"], "'--give-back-after': inf is not a finite number"),
    (["worker", "--burst", ""], "queue names must not be empty."),
    (["worker", "--burst", "--allow-module", ""], "'--allow-module': a module prefix must not be empty."),
    (["worker", "--burst", "--path", "/no/such/folder"], "Directory '/no/such/folder' does not exist."),
    (["failed", " "], "queue names must not be empty."),
    (["requeue", "--all", "--queue", ""], "'--queue' / '-q': the queue name must not be empty."),
])
def test_bad_option_values_are_refused_with_one_error_line_and_exit_2(args: list[str], says: str) -> None:
    """Before: --interval 0 redrew without pause, -1/nan/inf ended in a traceback from time.sleep; --max-jobs 0
    and -1 ran a worker that did nothing; an empty queue name was a traceback (worker) or a silent empty
    answer; --path to no folder was silently of no effect. The database named is
    unreachable: the options are checked before any connection (and no embedded server is started)."""
    result = run_cli(*args, "--dsn", "postgresql://nobody@127.0.0.1:1/none")
    assert result.returncode == 2, result
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and says in errors[0], result.stderr
    assert result.stdout == ""
