"""`pgqueue jobs`, `pgqueue show` and `pgqueue purge` (docs/operations.md), run as real CLI processes, and
the Python functions under them (pgqueue.operations)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest
from conftest import run_cli

from pgqueue import Queue, Retry, SimpleWorker, operations


def _ids(stdout: str) -> list[str]:
    """The ids of `pgqueue jobs`'s table (the first column, without the header)."""
    return [line.split()[0] for line in stdout.splitlines()[1:] if line.strip()]


def _next(stderr: str) -> str | None:
    last = stderr.strip().splitlines()[-1]
    return last.rsplit("--after ", 1)[1] if "next page: --after " in last else None


def _insert(db: psycopg.Connection[Any], id: str, status: str, *, queue: str = "q", func: str = "tasks.f",
            enqueued: str = "now()", ended: str | None = None) -> None:
    db.execute(f"INSERT INTO pgqueue.jobs (id, queue, func_name, status, enqueued_at, scheduled_at, ended_at, "
               f"worker_id, claim_count) VALUES (%s, %s, %s, %s, {enqueued}, {enqueued}, {ended or 'NULL'}, %s, %s)",
               [id, queue, func, status, 7 if status == "running" else None, 1 if status == "running" else 0])


def test_jobs_pages_newest_first_by_keyset_until_none_is_left(db: psycopg.Connection[Any]) -> None:
    q = Queue("paged")
    enqueued = [q.enqueue(tj.add, i, i).id for i in range(7)]
    seen: list[str] = []
    after: list[str] = []
    for _ in range(4):
        result = run_cli("jobs", "--limit", "3", *after)
        assert result.returncode == 0, result.stderr
        seen += _ids(result.stdout)
        cursor = _next(result.stderr)
        if cursor is None:
            assert result.stderr.strip().endswith("no more"), result.stderr
            break
        after = ["--after", cursor]
    assert seen == enqueued[::-1]  # newest first, each once
    page = json.loads(run_cli("jobs", "--limit", "2", "--json").stdout)
    assert [j["id"] for j in page["jobs"]] == enqueued[:-3:-1] and page["next_after"] == enqueued[-2]
    assert page["order"] == "id" and page["partial"] is False
    assert {j["status"] for j in page["jobs"]} == {"queued"} and page["jobs"][0]["func_name"] == "pgq_testjobs.add"


def test_jobs_filters_by_queue_status_function_and_time(db: psycopg.Connection[Any]) -> None:
    _insert(db, "a-old", "queued", queue="a", enqueued="now() - interval '3 hours'")
    _insert(db, "a-new", "queued", queue="a", func="tasks.g")
    _insert(db, "b-run", "running", queue="b")
    _insert(db, "b-sched", "scheduled", queue="b", enqueued="now() - interval '90 minutes'")
    _insert(db, "c-dep", "deferred", queue="c")
    _insert(db, "c-done", "finished", queue="c", ended="now()")

    def ids(**filters: Any) -> list[str]:
        return [j.id for j in operations.list_jobs(**filters).jobs]

    assert ids(queues=["a"]) == ["a-old", "a-new"]  # by id, highest first (ids given here sort as text)
    assert ids(statuses=["running"]) == ["b-run"]
    assert ids(statuses=["deferred"]) == ["c-dep"]
    assert sorted(ids(statuses=["queued", "scheduled"])) == ["a-new", "a-old", "b-sched"]
    assert ids(function="tasks.g") == ["a-new"]
    assert sorted(ids(until=timedelta(hours=1))) == ["a-old", "b-sched"]
    assert ids(since=timedelta(hours=2), until=timedelta(hours=1)) == ["b-sched"]
    # The command line: repeated options, a duration, a time with its offset.
    result = run_cli("jobs", "--queue", "a", "--queue", "b", "--since", "2h")
    assert result.returncode == 0, result.stderr
    assert sorted(_ids(result.stdout)) == ["a-new", "b-run", "b-sched"]
    early = db.execute("SELECT (now() - interval '100 minutes')::text").fetchone()[0]  # type: ignore[index]
    assert _ids(run_cli("jobs", "--until", early, "--status", "queued").stdout) == ["a-old"]


def test_jobs_of_ended_statuses_are_the_history_most_recently_ended_first(db: psycopg.Connection[Any]) -> None:
    # Enqueued in one order, ended in another: the history goes by the end.
    _insert(db, "e1", "failed", enqueued="now() - interval '5 hours'", ended="now() - interval '1 minute'")
    _insert(db, "e2", "finished", enqueued="now() - interval '4 hours'", ended="now() - interval '3 hours'")
    _insert(db, "e3", "canceled", enqueued="now() - interval '3 hours'", ended="now() - interval '2 hours'")
    _insert(db, "e4", "failed", enqueued="now() - interval '2 hours'", ended="now() - interval '3 hours'")
    _insert(db, "live", "queued")
    ended = ("--status", "finished", "--status", "failed", "--status", "canceled")
    result = run_cli("jobs", *ended)
    assert result.returncode == 0 and "ENDED" in result.stdout.splitlines()[0], result.stdout
    assert _ids(result.stdout) == ["e1", "e3", "e4", "e2"]  # e2 and e4 ended together: higher id first
    assert "most recently ended first" in result.stderr
    first = run_cli("jobs", *ended, "--limit", "2")
    assert _ids(first.stdout) == ["e1", "e3"] and _next(first.stderr) == "e3"
    second = run_cli("jobs", *ended, "--limit", "2", "--after", "e3")
    assert _ids(second.stdout) == ["e4", "e2"] and _next(second.stderr) is None
    assert _ids(run_cli("jobs", "--status", "failed", "--since", "2h").stdout) == ["e1"]  # ended, not enqueued
    assert _ids(run_cli("jobs", "--status", "failed", "--until", "2h").stdout) == ["e4"]


def test_a_page_no_index_serves_stops_after_scan_jobs_and_the_next_carries_on(db: psycopg.Connection[Any]) -> None:
    db.execute("INSERT INTO pgqueue.jobs (id, queue, func_name) VALUES ('j00', 'q', 'tasks.rare')")
    db.execute("INSERT INTO pgqueue.jobs (id, queue, func_name) "
               "SELECT 'j' || lpad(i::text, 2, '0'), 'q', 'tasks.common' FROM generate_series(1, 11) i")
    page = operations.list_jobs(function="tasks.rare", limit=2, scan=5)
    assert page.jobs == [] and page.partial and page.examined == 5 and page.next_after == "j07"
    result = run_cli("jobs", "--function", "tasks.rare", "--limit", "2", "--scan", "5", "--after", "j07")
    assert _ids(result.stdout) == [] and "stopped after examining 5 jobs" in result.stderr
    assert _next(result.stderr) == "j02"
    last = run_cli("jobs", "--function", "tasks.rare", "--limit", "2", "--scan", "5", "--after", "j02")
    assert _ids(last.stdout) == ["j00"] and _next(last.stderr) is None, last.stderr


def test_show_prints_every_field_and_every_attempt_with_its_traceback(db: psycopg.Connection[Any]) -> None:
    job = Queue("shown").enqueue(tj.fail, "it broke", retry=Retry(max=1), meta={"user": 7})
    SimpleWorker(["shown"]).work(burst=True)
    db.execute("UPDATE pgqueue.jobs SET progress = '{\"done\": 3, \"of\": 10}' WHERE id = %s", [job.id])
    result = run_cli("show", job.id)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    fields = dict(line.split(":", 1) for line in out.splitlines() if not line.startswith(" ") and ":" in line)
    columns = [r[0] for r in db.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = "
                                        "'pgqueue' AND table_name = 'jobs' ORDER BY ordinal_position")]
    assert set(columns) - {"errors", "exc_info"} <= set(fields), set(columns) - set(fields)
    assert fields["status"].strip() == "failed" and fields["meta"].strip() == '{"user": 7}'
    assert json.loads(fields["progress"]) == {"done": 3, "of": 10}
    assert "errors: 2" in out and out.count("ValueError: it broke") >= 2
    assert "attempt 1 at " in out and "attempt 2 at " in out and "Traceback (most recent call last):" in out
    assert 'raise ValueError(message)' in out  # the traceback itself, indented under its attempt
    assert "worker:" in out and ": stopped, last heartbeat" in out
    details = json.loads(run_cli("show", job.id, "--json").stdout)
    assert details["id"] == job.id and len(details["errors"]) == 2 and details["progress"] == {"done": 3, "of": 10}
    assert details["worker"]["alive"] is False and details["exc_info"].startswith("Traceback")


def test_show_of_an_unknown_job_is_one_error_line_and_exit_1() -> None:
    result = run_cli("show", "no-such-job")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == ["Error: no job with id 'no-such-job'"]


def _history(db: psycopg.Connection[Any], n: int) -> None:
    """n finished jobs that ended 8 days ago, and others purge --status finished --older-than 7d keeps."""
    db.execute("INSERT INTO pgqueue.jobs (id, queue, func_name, status, ended_at) SELECT 'old-' || i, "
               "'q' || i %% 2, 'tasks.f', 'finished', now() - interval '8 days' FROM generate_series(1, %s) i", [n])
    _insert(db, "recent", "finished", ended="now() - interval '6 days'")
    _insert(db, "old-failed", "failed", ended="now() - interval '30 days'")
    _insert(db, "waiting", "queued", enqueued="now() - interval '30 days'")
    _insert(db, "running", "running", enqueued="now() - interval '30 days'")
    db.execute("ANALYZE pgqueue.jobs")


def _left(db: psycopg.Connection[Any]) -> list[str]:
    return [r[0] for r in db.execute("SELECT id FROM pgqueue.jobs WHERE id NOT LIKE 'old-%%' OR status <> 'finished' "
                                     "ORDER BY id")]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("n", [10, 100_000])
def test_purge_deletes_old_ended_jobs_of_the_status_and_nothing_else(db: psycopg.Connection[Any], n: int) -> None:
    _history(db, n)
    dry = run_cli("purge", "--status", "finished", "--older-than", "7d", "--dry-run")
    assert dry.returncode == 0 and f"Would delete {n:,} finished job(s)" in dry.stdout, dry
    assert db.execute("SELECT count(*) FROM pgqueue.jobs").fetchone() == (n + 4,)
    result = run_cli("purge", "--status", "finished", "--older-than", "7d")
    assert result.returncode == 0, result.stderr
    assert f"Deleted {n:,} finished job(s) that ended before " in result.stdout
    assert result.stderr == ""  # piped: no progress bar
    assert _left(db) == ["old-failed", "recent", "running", "waiting"]


def test_purge_deletes_in_batches_of_at_most_batch_size(db: psycopg.Connection[Any]) -> None:
    _history(db, 25)
    calls: list[tuple[int, int]] = []
    result = operations.purge(["finished"], 7 * 86400, batch_size=7, progress=lambda d, m: calls.append((d, m)))
    assert calls == [(0, 25), (7, 25), (14, 25), (21, 25), (25, 25)]
    assert (result.matched, result.deleted) == (25, 25)


def test_purge_by_queue_and_several_statuses(db: psycopg.Connection[Any]) -> None:
    _history(db, 10)  # old-1, old-3, ... on q1; old-2, ... on q0; the other rows on q
    result = run_cli("purge", "--status", "finished", "--status", "failed", "--older-than", "7d", "--queue", "q1")
    assert "Deleted 5 finished/failed job(s) of queue q1" in result.stdout, result
    assert db.execute("SELECT count(*) FROM pgqueue.jobs WHERE queue = 'q1'").fetchone() == (0,)
    result = run_cli("purge", "-s", "failed", "-s", "finished", "--older-than", "7d")
    assert "Deleted 6 failed/finished job(s)" in result.stdout, result
    assert _left(db) == ["recent", "running", "waiting"]


def test_purge_shows_a_progress_bar_on_a_terminal(db: psycopg.Connection[Any]) -> None:
    _history(db, 3000)
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "pgqueue.cli", "purge", "--status", "finished", "--older-than",
                               "7d", "--batch-size", "500"], stdout=subprocess.PIPE, stderr=terminal, text=True,
                              env=os.environ, timeout=60)
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(controller)
    assert done.returncode == 0 and "Deleted 3,000 finished job(s)" in done.stdout
    text = shown.decode()
    assert "Purging" in text and "3000/3000" in text, text


@pytest.mark.nodb
@pytest.mark.parametrize(("args", "says"), [
    (["jobs", "--since", "yesterday"], "'yesterday' is neither a time"),
    (["jobs", "--until", "-5"], "'-5' is neither a time"),
    (["jobs", "--limit", "0"], "'--limit' / '-n': 0 is not in the range 1<=x<=10000."),
    (["jobs", "--status", "lost"], "'--status' / '-s': 'lost' is not one of"),
    (["jobs", "--limit", "20", "--scan", "10"], "--scan 10 is less than --limit 20"),
    (["jobs", "--queue", ""], "the queue name must not be empty."),
    (["purge", "--older-than", "7d"], "Missing option '--status'"),
    (["purge", "--status", "finished"], "Missing option '--older-than'"),
    (["purge", "--status", "running", "--older-than", "1d"], "'running' is a live status: purge deletes ended jobs"),
    (["purge", "--status", "finished", "--older-than", "-1"], "'-1' is not a duration"),
    (["purge", "--status", "finished", "--older-than", "soon"], "'soon' is not a duration"),
    (["purge", "--status", "finished", "--older-than", "1d", "--batch-size", "0"], "0 is not in the range"),
])
def test_bad_input_is_one_error_line_and_exit_2(args: list[str], says: str) -> None:
    """Checked before any connection: the database named is unreachable."""
    result = run_cli(*args, "--dsn", "postgresql://nobody@127.0.0.1:1/none")
    assert result.returncode == 2, result
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and says in errors[0], result.stderr


def test_a_cursor_into_the_history_that_is_gone_is_one_error_line(db: psycopg.Connection[Any]) -> None:
    result = run_cli("jobs", "--status", "failed", "--after", "purged-meanwhile")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "Error: no ended job with id 'purged-meanwhile' to start the page after (deleted since, or requeued?): "
        "start again without --after"]
