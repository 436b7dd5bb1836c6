"""Job control (docs/job-control.md): canceling a running job stops it, snoozing, progress, and unique keys
whose holder is replaced. Real workers, real processes, a real database."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from typing import Any

import pgq_callbacks as cb
import pgq_control as ctl
import psycopg
import pytest
from conftest import wait_for

from pgqueue import Job, JobStatus, Queue, SimpleWorker, Worker, _db


def tags(db: psycopg.Connection[Any], job: Job) -> list[str]:
    return [t for (t,) in db.execute("SELECT tag FROM pgq_test.runs WHERE job_id = %s ORDER BY at", (job.id,))]


def pids(db: psycopg.Connection[Any], job: Job, tag: str) -> set[int]:
    return {p for (p,) in db.execute("SELECT pid FROM pgq_test.runs WHERE job_id = %s AND tag = %s", (job.id, tag))}


def began(db: psycopg.Connection[Any], *jobs: Job) -> bool:
    return all("began" in tags(db, job) for job in jobs)


def row(db: psycopg.Connection[Any], job: Job, columns: str) -> tuple[Any, ...]:
    found = db.execute(f"SELECT {columns} FROM pgqueue.jobs WHERE id = %s", (job.id,)).fetchone()
    assert found is not None
    return tuple(found)


def go(db: psycopg.Connection[Any]) -> None:
    db.execute("INSERT INTO pgq_test.runs (tag) VALUES ('go')")


STOPPED = '{"callback": "stopped"}'  # the row pgq_callbacks.on_stopped writes


# -- canceling a running job -----------------------------------------------------------------------

def test_cancel_stops_a_running_job_and_leaves_the_other_slot_alone(db: psycopg.Connection[Any],
                                                                     spawn_worker: Any) -> None:
    q = Queue("ctl")
    canceled = q.enqueue(ctl.stoppable, on_stopped=cb.on_stopped)
    other = q.enqueue(ctl.wait_for_go, on_stopped=cb.on_stopped)
    worker = spawn_worker("ctl", "--concurrency", "2")
    wait_for(lambda: began(db, canceled, other), message="both jobs to begin")

    assert canceled.cancel() is True
    wait_for(lambda: STOPPED in tags(db, canceled), message="the canceled job's on_stopped")
    assert tags(db, canceled) == ["began", "canceled", STOPPED]  # JobCanceled raised in it, then on_stopped
    assert pids(db, canceled, STOPPED) == pids(db, canceled, "began")  # in its own process, which lives on
    assert row(db, canceled, "status, result, exc_info, errors, attempts") == ("canceled", None, None, [], 1)
    assert other.get_status() == JobStatus.RUNNING and tags(db, other) == ["began"]

    go(db)
    assert other.wait(timeout=20) == "went"
    assert tags(db, other) == ["began", "went"]  # no JobCanceled, no on_stopped
    after = q.enqueue(ctl.wait_for_go)  # the worker serves on
    assert after.wait(timeout=20) == "went" and worker.proc.poll() is None
    assert f"Job canceled ({canceled.id}): stopping it" in worker.output
    assert f"Job canceled ({canceled.id}): stopped" in worker.output


def test_a_canceled_job_that_returns_all_the_same_stays_canceled(db: psycopg.Connection[Any],
                                                                 spawn_worker: Any) -> None:
    job = Queue("ctl").enqueue(ctl.swallows, on_stopped=cb.on_stopped, on_success=cb.on_success)
    worker = spawn_worker("ctl")
    wait_for(lambda: began(db, job), message="the job to begin")
    job.cancel()
    wait_for(lambda: STOPPED in tags(db, job), message="on_stopped")
    assert tags(db, job) == ["began", "returning anyway", STOPPED]  # on_stopped, not on_success
    assert row(db, job, "status, result") == ("canceled", None)
    assert f"Job canceled ({job.id}): stopped" in worker.output and f"Job OK ({job.id})" not in worker.output


def test_jobs_claimed_behind_a_canceled_one_go_back_to_their_queue_unused(db: psycopg.Connection[Any],
                                                                           spawn_worker: Any) -> None:
    q = Queue("ctl")
    canceled = q.enqueue(ctl.stoppable)
    behind = [q.enqueue("pgq_testjobs.add", i, i) for i in range(4)]  # a fresh worker's first claim takes 5
    # --give-back-after 600: only the cancel gives back what waits behind the canceled job in its process
    worker = spawn_worker("ctl", "--give-back-after", "600")
    wait_for(lambda: began(db, canceled), message="the job to begin")
    held = db.execute("SELECT count(*) FROM pgqueue.jobs WHERE id = ANY(%s) AND status = 'running' "
                      "AND started_at IS NULL", ([j.id for j in behind],)).fetchone()[0]
    assert held == 4, "the worker's first claim took the four jobs behind the first in one batch"

    canceled.cancel()
    for job in behind:
        assert job.wait(timeout=20) == job.args[0] * 2
    assert [row(db, j, "attempts, claim_count") for j in behind] == [(1, 2)] * 4  # claimed twice, ran once
    assert tags(db, canceled) == ["began", "canceled"]
    assert worker.proc.poll() is None


def test_a_job_that_ignores_the_cancel_is_killed_after_the_grace_and_on_stopped_runs(
        db: psycopg.Connection[Any], spawn_worker: Any) -> None:
    q = Queue("ctl")
    deaf = q.enqueue(ctl.deaf, on_stopped=cb.on_stopped)
    worker = spawn_worker("ctl", "--cancel-grace", "0.5")
    wait_for(lambda: began(db, deaf), message="the job to begin")
    deaf.cancel()
    wait_for(lambda: STOPPED in tags(db, deaf), message="on_stopped after the kill")
    assert tags(db, deaf) == ["began", "ignored JobCanceled", STOPPED]  # it never slept its 60 s out
    assert not pids(db, deaf, STOPPED) & pids(db, deaf, "began")  # run by the process that replaced it
    assert row(db, deaf, "status, errors, attempts") == ("canceled", [], 1)
    assert "killed its process, the job had not stopped within 0.5 s" in worker.output
    assert q.enqueue("pgq_testjobs.add", 2, 3).wait(timeout=20) == 5  # served on


@pytest.mark.parametrize("mode", ["--no-listen", "--simple"])
def test_cancel_stops_a_job_of_a_poll_only_worker_and_of_a_simple_worker(mode: str, db: psycopg.Connection[Any],
                                                                        spawn_worker: Any) -> None:
    """Without LISTEN the worker finds the cancel at its fallback poll; a SimpleWorker, busy with the job in
    its loop, hears of it through a thread of its own."""
    q = Queue("ctl")
    job = q.enqueue(ctl.stoppable, on_stopped=cb.on_stopped)
    worker = spawn_worker("ctl", mode, "--poll-interval", "0.2")
    wait_for(lambda: began(db, job), message="the job to begin")
    job.cancel()
    wait_for(lambda: STOPPED in tags(db, job), message="on_stopped")
    assert tags(db, job) == ["began", "canceled", STOPPED]
    assert row(db, job, "status, errors") == ("canceled", [])
    assert q.enqueue("pgq_testjobs.add", 2, 3).wait(timeout=20) == 5
    assert worker.proc.poll() is None


def test_a_simple_worker_without_listen_stops_a_deaf_job_after_the_grace(db: psycopg.Connection[Any],
                                                                        spawn_worker: Any) -> None:
    q = Queue("ctl")
    deaf = q.enqueue(ctl.deaf, on_stopped=cb.on_stopped)
    worker = spawn_worker("ctl", "--simple", "--no-listen", "--poll-interval", "0.2", "--cancel-grace", "0.5")
    wait_for(lambda: began(db, deaf), message="the job to begin")
    deaf.cancel()
    wait_for(lambda: STOPPED in tags(db, deaf), message="on_stopped")
    assert tags(db, deaf) == ["began", "ignored JobCanceled", STOPPED]
    assert "stopped it, the job had not stopped within 0.5 s" in worker.output
    assert q.enqueue("pgq_testjobs.add", 2, 3).wait(timeout=20) == 5


def test_a_simple_worker_in_this_process_stops_a_job_canceled_from_another_thread(
        db: psycopg.Connection[Any]) -> None:
    q = Queue("ctl")
    job = q.enqueue(ctl.stoppable, on_stopped=cb.on_stopped)
    after = q.enqueue("pgq_testjobs.add", 1, 1)

    def cancel() -> None:
        wait_for(lambda: began(db, job), message="the job to begin")
        job.cancel()

    canceler = threading.Thread(target=cancel)
    canceler.start()
    SimpleWorker(["ctl"]).work(burst=True)
    canceler.join()
    assert tags(db, job) == ["began", "canceled", STOPPED]
    assert Job.fetch(job.id).status == JobStatus.CANCELED
    assert after.wait(timeout=5) == 2  # given back if it was claimed behind the canceled job, and run


def test_a_cancel_in_process_leaves_the_connections_of_other_threads_alone(db: psycopg.Connection[Any],
                                                                          dsn: str) -> None:
    """After a cancel, a job's process replaces its own connections that the job left mid-statement; in a
    SimpleWorker that process is the application's, and a connection another thread is using is not the job's."""
    job = Queue("ctl").enqueue(ctl.stoppable)
    shared = _db.shared_connection()  # this process's, which the job uses too (get_current_job)
    slept: list[str] = []

    def sleep_on_it() -> None:
        slept.append(shared.execute("SELECT 'slept' FROM pg_sleep(1.5)").fetchone()[0])  # type: ignore[index]

    def cancel() -> None:
        wait_for(lambda: began(db, job), message="the job to begin")
        sleeper = threading.Thread(target=sleep_on_it)
        sleeper.start()
        wait_for(lambda: db.execute("SELECT 1 FROM pg_stat_activity WHERE state = 'active' AND query LIKE "
                                    "'%pg_sleep(1.5)%' AND pid <> pg_backend_pid()").fetchone(),
                 message="the other thread's statement")
        Job(job.id, psycopg.conninfo.make_conninfo(dsn, application_name="canceler")).cancel()
        sleeper.join()

    canceler = threading.Thread(target=cancel)
    canceler.start()
    SimpleWorker(["ctl"]).work(burst=True)
    canceler.join()
    assert tags(db, job) == ["began", "canceled"] and slept == ["slept"]


def test_cancel_grace_is_checked(spawn_worker: Any) -> None:
    for bad in (-1, float("nan"), "3"):
        with pytest.raises(ValueError, match="cancel_grace must be a finite number of seconds >= 0"):
            Worker(["ctl"], cancel_grace=bad)  # type: ignore[arg-type]
    done = subprocess.run([sys.executable, "-m", "pgqueue.cli", "worker", "--cancel-grace", "-1", "--burst"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "--cancel-grace" in done.stderr


# -- pgqueue cancel ---------------------------------------------------------------------------------

def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgqueue.cli", *args], capture_output=True, text=True,
                          env=os.environ.copy())


def test_pgqueue_cancel_says_what_became_of_each_job(db: psycopg.Connection[Any], spawn_worker: Any) -> None:
    q = Queue("ctl")
    running = q.enqueue(ctl.stoppable)
    queued = q.enqueue_in(3600, "pgq_testjobs.add", 1, 2)
    ended = Queue("ctl", is_async=False).enqueue("pgq_testjobs.add", 1, 2)
    spawn_worker("ctl")
    wait_for(lambda: began(db, running), message="the job to begin")

    done = _cli("cancel", running.id, queued.id, "nope", ended.id)
    assert done.stdout.splitlines() == [
        f"{running.id}: canceled (it was running: its worker stops it)",
        f"{queued.id}: canceled",
        "nope: not found",
        f"{ended.id}: not canceled: it has ended (finished)",
    ]
    assert done.returncode == 1 and done.stderr == ""
    wait_for(lambda: "canceled" in tags(db, running), message="the job to stop")
    assert [Job.fetch(j.id).status for j in (running, queued, ended)] == ["canceled", "canceled", "finished"]

    again = _cli("cancel", queued.id)
    assert again.returncode == 1 and again.stdout == f"{queued.id}: not canceled: it has ended (canceled)\n"
    fresh = q.enqueue_in(3600, "pgq_testjobs.add", 1, 2)
    assert _cli("cancel", fresh.id).returncode == 0
    usage = _cli("cancel")
    assert usage.returncode == 2 and "JOB_ID" in usage.stderr


# -- snooze -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("worker", [Worker, SimpleWorker])
def test_a_snoozed_job_runs_again_without_using_an_attempt(worker: type[Worker], db: psycopg.Connection[Any]) -> None:
    job = Queue("snooze").enqueue(ctl.snoozes, 2, retry=1, on_failure=cb.on_failure, on_success=cb.on_success)
    worker(["snooze"]).work(burst=True)  # scheduled_at = now() + 0: runnable again at once, in the same burst
    assert job.wait(timeout=5) == {"attempts": 1, "snoozes": 2}
    assert tags(db, job)[:3] == ["run attempts=1 snoozes=0", "run attempts=1 snoozes=1", "run attempts=1 snoozes=2"]
    assert row(db, job, "status, attempts, errors, exc_info, snoozes") == ("finished", 1, [], None, 2)
    assert job.snoozes == 2
    assert [json.loads(t)["callback"] for t in tags(db, job)[3:]] == ["success"]  # no callback for a snooze


def test_snooze_moves_scheduled_at_by_the_databases_clock(db: psycopg.Connection[Any]) -> None:
    job = Queue("snooze").enqueue(ctl.snoozes, 1, 3600)
    SimpleWorker(["snooze"]).work(burst=True)
    status, attempts, errors, snoozes, due_in = row(
        db, job, "status, attempts, errors, snoozes, extract(epoch FROM scheduled_at - now())")
    assert (status, attempts, errors, snoozes) == ("scheduled", 0, [], 1)
    assert 3500 < due_in <= 3600
    assert Job.fetch(job.id).started_at is None
    db.execute("UPDATE pgqueue.jobs SET scheduled_at = now() WHERE id = %s", (job.id,))  # its time has come
    SimpleWorker(["snooze"]).work(burst=True)
    assert job.wait(timeout=5) == {"attempts": 1, "snoozes": 1}


def test_a_snooze_in_a_child_process_is_recorded_by_a_cli_worker(db: psycopg.Connection[Any],
                                                               spawn_worker: Any) -> None:
    job = Queue("snooze").enqueue(ctl.snoozes, 1, 0.2)
    worker = spawn_worker("snooze")
    assert job.wait(timeout=20) == {"attempts": 1, "snoozes": 1}
    assert f"Job snoozed for 0.2 s, snooze 1 ({job.id})" in worker.output


def test_snooze_in_synchronous_mode_leaves_the_job_scheduled_for_a_worker(db: psycopg.Connection[Any]) -> None:
    job = Queue("snooze", is_async=False).enqueue(ctl.snoozes, 1, 0)
    assert (job.status, job.attempts, job.snoozes) == (JobStatus.SCHEDULED, 0, 1)
    Worker(["snooze"]).work(burst=True)
    assert job.wait(timeout=5) == {"attempts": 1, "snoozes": 1}


def test_a_bad_snooze_fails_the_job_saying_why(db: psycopg.Connection[Any]) -> None:
    job = Queue("snooze").enqueue("pgq_control.snooze_with", -5)
    SimpleWorker(["snooze"]).work(burst=True)
    assert job.get_status() == JobStatus.FAILED
    assert job.exc_info.splitlines()[-1] == ("ValueError: Snooze(-5) is in the past: pass 0 seconds or more (0: as "
                                             "soon as a worker is free)")


# -- progress ---------------------------------------------------------------------------------------

def test_progress_is_set_read_and_kept_after_the_job_ends(db: psycopg.Connection[Any]) -> None:
    job = Queue("progress").enqueue(ctl.progress, 3, 0, 3)
    assert job.progress is None
    SimpleWorker(["progress"]).work(burst=True)
    progress = job.progress
    assert progress is not None and (progress.done, progress.total, progress.message) == (3, 3, "step 3")
    assert progress.fraction == 1 and str(progress) == "3 of 3 (100%): step 3"
    stored = db.execute("SELECT progress FROM pgqueue.jobs WHERE id = %s", (job.id,)).fetchone()
    assert stored is not None and {k: v for k, v in stored[0].items() if k != "at"} == {
        "done": 3, "total": 3, "message": "step 3"}


def test_progress_updates_are_woken_while_the_job_runs_and_end_with_it(db: psycopg.Connection[Any],
                                                                       spawn_worker: Any) -> None:
    job = Queue("progress").enqueue("pgq_control.progress_until_go")
    listener = psycopg.connect(db.info.dsn, autocommit=True)
    listener.execute("LISTEN pgqueue_progress")
    spawn_worker("progress")
    updates = job.progress_updates(timeout=20)
    first = next(updates)  # the job waits for 'go' meanwhile: this came from a running job
    assert (first.done, first.total, first.message) == (1, 2, "half") and job.get_status() == JobStatus.RUNNING
    assert [n.payload for n in listener.notifies(timeout=5, stop_after=1)] == [job.id]
    go(db)
    assert [(p.done, p.message) for p in updates] == [(2, "done")]  # then the job ended: so did the updates
    assert job.get_status() == JobStatus.FINISHED
    listener.close()


def test_progress_updates_poll_without_listen(db: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch,
                                              spawn_worker: Any) -> None:
    job = Queue("progress").enqueue("pgq_control.progress_until_go")
    spawn_worker("progress")
    monkeypatch.setenv("PGQUEUE_TRANSACTION_POOLING", "1")  # this process: no LISTEN, as behind a pooler
    updates = job.progress_updates(timeout=20)
    assert next(updates).message == "half"
    go(db)
    assert [p.message for p in updates] == ["done"]


def test_frequent_reports_are_throttled_and_the_last_one_is_written(db: psycopg.Connection[Any]) -> None:
    """10,000 reports in a tight loop: at most one write every 0.2 s, counted by a trigger, and the last."""
    db.execute("CREATE FUNCTION pgq_test.count_progress() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
               "INSERT INTO pgq_test.runs (job_id, tag) VALUES (NEW.id, 'progress written'); RETURN NEW; END $$")
    db.execute("CREATE TRIGGER count_progress AFTER UPDATE OF progress ON pgqueue.jobs FOR EACH ROW "
               "EXECUTE FUNCTION pgq_test.count_progress()")
    try:
        job = Queue("progress").enqueue("pgq_control.report_often", 10_000)
        SimpleWorker(["progress"]).work(burst=True)
        took = job.wait(timeout=5)  # the seconds the job's loop took, by its own clock
        writes = tags(db, job).count("progress written")
        assert 1 <= writes <= 2 + took / 0.2, (writes, took)
        assert job.progress is not None and job.progress.done == 10_000
    finally:
        db.execute("DROP TRIGGER count_progress ON pgqueue.jobs")
        db.execute("DROP FUNCTION pgq_test.count_progress()")


def test_set_progress_refuses_bad_values_and_writes_nothing(db: psycopg.Connection[Any]) -> None:
    job = Queue("progress").enqueue("pgq_testjobs.add", 1, 2)
    db.execute("UPDATE pgqueue.jobs SET status = 'running', worker_id = 1, claim_count = 1 WHERE id = %s", (job.id,))
    for args, error, message in [(("3",), ValueError, "set_progress(done=...) takes a finite number, not '3'"),
                                 ((True,), ValueError, "not True"), ((float("nan"),), ValueError, "not nan"),
                                 ((1, -1), ValueError, "a total is 0 or more"),
                                 ((1, 2, 3), TypeError, "message=...) takes a str or None, not int")]:
        with pytest.raises(error, match=re.escape(message)):
            job.set_progress(*args)
    assert job.progress is None
    job.set_progress(1, None, "no total")
    assert str(job.progress) == "1: no total"


def test_pgqueue_show_prints_a_jobs_progress_and_snoozes(db: psycopg.Connection[Any]) -> None:
    job = Queue("progress").enqueue(ctl.progress, 2, 0, 4)
    SimpleWorker(["progress"]).work(burst=True)
    shown = _cli("show", job.id, "--json")
    assert shown.returncode == 0, shown.stderr
    details = json.loads(shown.stdout)
    assert details["status"] == "finished" and details["snoozes"] is None
    assert {k: details["progress"][k] for k in ("done", "total", "message")} == {"done": 2, "total": 4,
                                                                                  "message": "step 2"}
    text = _cli("show", job.id).stdout
    assert any(line.startswith("progress:") and '"done": 2' in line for line in text.splitlines()), text


# -- unique keys: replace (debounce) ----------------------------------------------------------------

def _live(db: psycopg.Connection[Any], key: str) -> list[tuple[Any, ...]]:
    return db.execute("SELECT id, args, status FROM pgqueue.jobs WHERE unique_key = %s "
                      "AND status IN ('scheduled', 'queued', 'deferred', 'running')", (key,)).fetchall()


def test_replace_pushes_a_scheduled_holders_arguments_and_run_time_back(db: psycopg.Connection[Any]) -> None:
    q = Queue("debounce")
    first = q.enqueue_in(5, "pgq_testjobs.identity", "v1", unique_key="user:7", unique_key_conflict="replace")
    due = row(db, first, "scheduled_at")[0]
    second = q.enqueue_in(60, "pgq_testjobs.echo", "v2", x=1, unique_key="user:7", unique_key_conflict="replace")
    assert second.id == first.id and (second.func_name, second.args, second.kwargs) == ("pgq_testjobs.echo", ["v2"],
                                                                                       {"x": 1})
    assert second.status == JobStatus.SCHEDULED and second.scheduled_at is not None and second.scheduled_at > due
    assert _live(db, "user:7") == [(first.id, ["v2"], "scheduled")]
    listener = psycopg.connect(db.info.dsn, autocommit=True)
    listener.execute("LISTEN pgqueue_jobs")
    now = q.enqueue("pgq_testjobs.identity", "v3", unique_key="user:7", unique_key_conflict="replace")
    assert (now.id, now.status, now.args) == (first.id, JobStatus.QUEUED, ["v3"])  # due now: queued
    assert [n.payload for n in listener.notifies(timeout=5, stop_after=1)] == ["debounce"]  # idle workers woken
    listener.close()
    kept = q.enqueue("pgq_testjobs.identity", "v4", unique_key="user:7")  # "keep", the default
    assert (kept.id, kept.args) == (first.id, ["v3"])
    SimpleWorker(["debounce"]).work(burst=True)
    assert first.wait(timeout=5) == "v3"
    again = q.enqueue("pgq_testjobs.identity", "v5", unique_key="user:7", unique_key_conflict="replace")
    assert again.id != first.id and again.args == ["v5"]  # the key was free: a new job


def test_a_running_holder_is_not_replaced_and_is_returned(db: psycopg.Connection[Any], spawn_worker: Any) -> None:
    q = Queue("debounce")
    running = q.enqueue("pgq_control.wait_for_go", unique_key="k", unique_key_conflict="replace")
    spawn_worker("debounce")
    wait_for(lambda: began(db, running), message="the job to begin")
    same = q.enqueue("pgq_control.wait_for_go", 5, unique_key="k", unique_key_conflict="replace")
    assert (same.id, same.status, same.args) == (running.id, JobStatus.RUNNING, [])
    assert len(_live(db, "k")) == 1
    go(db)
    assert running.wait(timeout=20) == "went"


def test_replace_in_one_batch_and_in_a_callers_transaction(db: psycopg.Connection[Any], dsn: str) -> None:
    q = Queue("debounce")
    jobs = q.enqueue_many([Queue.prepare_data("pgq_testjobs.identity", (n,), unique_key="b",
                                              unique_key_conflict="replace") for n in (1, 2, 3)])
    assert len({j.id for j in jobs}) == 1 and _live(db, "b") == [(jobs[0].id, [3], "queued")]
    with psycopg.connect(dsn) as conn:
        inside = q.enqueue("pgq_testjobs.identity", 4, unique_key="b", unique_key_conflict="replace", connection=conn)
        assert (inside.id, inside.args) == (jobs[0].id, [4])
        conn.rollback()
    assert _live(db, "b") == [(jobs[0].id, [3], "queued")]  # a rollback leaves the holder as it was


def test_bad_unique_key_conflicts_are_refused_before_anything_is_written(db: psycopg.Connection[Any]) -> None:
    q = Queue("debounce")
    with pytest.raises(ValueError, match="unique_key_conflict='overwrite': pass 'keep'"):
        q.enqueue("pgq_testjobs.identity", 1, unique_key="k", unique_key_conflict="overwrite")
    with pytest.raises(ValueError, match="unique_key_conflict='replace' goes with a unique_key"):
        q.enqueue("pgq_testjobs.identity", 1, unique_key_conflict="replace")
    done = _cli("enqueue", "pgq_testjobs.identity", "x", "--unique-key-conflict", "replace")
    assert done.returncode == 2 and "Error: unique_key_conflict='replace' goes with a unique_key" in done.stderr
    assert db.execute("SELECT count(*) FROM pgqueue.jobs").fetchone() == (0,)
    shell = _cli("enqueue", "pgq_testjobs.identity", "y", "--unique-key", "k", "--unique-key-conflict", "replace",
                 "--quiet")
    again = _cli("enqueue", "pgq_testjobs.identity", "z", "--unique-key", "k", "--unique-key-conflict", "replace",
                 "--quiet")
    assert shell.stdout == again.stdout and _live(db, "k") == [(shell.stdout.strip(), ["z"], "queued")]
