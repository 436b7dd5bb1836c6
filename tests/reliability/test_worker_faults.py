"""Worker faults: a supervisor or a job process killed with SIGKILL, a job that never returns, a warm
shutdown mid-job, and a worker restarted under the name of one that was killed.

Every test runs real ``pgqueue worker`` processes with a short lease, and proves what ran from the rows
the jobs themselves wrote to ``pgq_test.runs``."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest
from conftest import wait_for

from pgqueue import Queue, Retry, Worker
from pgqueue.sql import q as q_sql
from pgqueue.worker import _slots

from . import reliability_jobs as rj
from ._helpers import alive, children_of, db_now, job_row, run_rows, wait_started, wait_status, worker_row

FAST = ("--lease", "2", "--poll-interval", "0.5")


@pytest.mark.timeout(60)
def test_killed_supervisor_its_job_reruns_on_another_worker_after_the_lease(
        spawn_worker: Callable[..., Any], db: psycopg.Connection[Any],
        note_recovery: Callable[[str, float], None]) -> None:
    victim = spawn_worker("default", *FAST, "--name", "victim")
    job = Queue().enqueue(rj.record_sleep_first_attempt, 60, "t1", retry=Retry(max=1))
    [(first_pid, _)] = wait_started(db, "t1")
    assert job_row(db, job.id)["worker_name"] == "victim"
    # The rescuer's own lease is long, but the victim's jobs are judged by the victim's lease (2 s): the
    # rescuer checks for lost workers within half the shortest lease of the running workers, not its own.
    spawn_worker("default", "--lease", "60", "--poll-interval", "0.5", "--name", "rescuer")

    os.killpg(victim.proc.pid, signal.SIGKILL)  # the supervisor and its job process, at once
    victim.proc.wait(10)
    killed_at = db_now(db)
    wait_for(lambda: not alive(first_pid), 5, message="the victim's job process to die")

    done = wait_status(db, job.id, "finished", timeout=20)
    started = run_rows(db, "started:t1")
    completed = run_rows(db, "t1")
    assert len(started) == 2, "the crash explains one re-run, and there must be no other"
    assert len(completed) == 1, "the first run was killed before it completed"
    assert started[1][0] != first_pid and completed[0][0] == started[1][0]
    assert done["attempts"] == 2 and done["worker_name"] == "rescuer"
    assert [e["type"] for e in done["errors"]] == ["WorkerLost"]
    assert "victim" in done["errors"][0]["message"] and done["errors"][0]["attempt"] == 1

    # Not before the lease: the rescue needs the victim's last heartbeat to be older than its lease.
    victim_row = worker_row(db, _worker_id_of(db, "victim"))
    assert started[1][1] >= victim_row["heartbeat_at"] + timedelta(seconds=victim_row["lease_seconds"])
    note_recovery("1. supervisor SIGKILL (lease 2s): victim's last heartbeat -> kill",
                  (killed_at - victim_row["heartbeat_at"]).total_seconds())
    note_recovery("1. supervisor SIGKILL (lease 2s): kill -> job re-run started",
                  (started[1][1] - killed_at).total_seconds())
    note_recovery("1. supervisor SIGKILL (lease 2s): kill -> job finished",
                  (completed[0][1] - killed_at).total_seconds())


@pytest.mark.timeout(60)
def test_job_processes_of_a_killed_supervisor_exit_on_their_own(spawn_worker: Callable[..., Any]) -> None:
    # Each child holds only the read end of its own task pipe: when the supervisor dies, the pipe
    # closes and an idle child exits, rather than lingering as an orphan.
    worker = spawn_worker("default", *FAST, "--concurrency", "3")
    wait_for(lambda: len(children_of(worker.proc.pid)) == 3, 15, message="three job processes")
    Queue().enqueue(tj.add, 1, 2).wait(timeout=15)  # they have taken work and are idle again
    kids = children_of(worker.proc.pid)
    os.kill(worker.proc.pid, signal.SIGKILL)  # the supervisor only
    worker.proc.wait(10)
    wait_for(lambda: not any(alive(pid) for pid in kids), 10, message="the orphaned job processes to exit")


def _worker_id_of(db: psycopg.Connection[Any], name: str) -> int:
    row = db.execute("SELECT id FROM pgqueue.workers WHERE name = %s ORDER BY id LIMIT 1", (name,)).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.timeout(60)
def test_killed_job_process_fails_the_job_and_the_worker_serves_on(
        spawn_worker: Callable[..., Any], db: psycopg.Connection[Any],
        note_recovery: Callable[[str, float], None]) -> None:
    worker = spawn_worker("default", *FAST)
    q = Queue()

    # No retry: the attempt fails, with the signal as the reason.
    doomed = q.enqueue(rj.record_sleep_first_attempt, 60, "t2")
    [(pid, _)] = wait_started(db, "t2")
    assert pid in children_of(worker.proc.pid)
    os.kill(pid, signal.SIGKILL)
    killed_at = db_now(db)
    failed = wait_status(db, doomed.id, "failed", timeout=15)
    assert failed["exc_info"] == "WorkHorseKilled: the job's process was killed by signal SIGKILL"
    assert [(e["type"], e["attempt"]) for e in failed["errors"]] == [("WorkHorseKilled", 1)]
    assert failed["attempts"] == 1 and run_rows(db, "t2") == []
    note_recovery("2. job process SIGKILL: kill -> job recorded failed",
                  (failed["ended_at"] - killed_at).total_seconds())

    # The worker replaced the process and serves the next job.
    after = q.enqueue(tj.record, "after-kill")
    wait_status(db, after.id, "finished", timeout=15)
    [(after_pid, _)] = run_rows(db, "after-kill")
    assert after_pid != pid and after_pid in children_of(worker.proc.pid)

    # With a retry allowed, the killed attempt runs again and finishes.
    retried = q.enqueue(rj.record_sleep_first_attempt, 60, "t2r", retry=Retry(max=1))
    [(pid, _)] = wait_started(db, "t2r")
    os.kill(pid, signal.SIGKILL)
    killed_at = db_now(db)
    done = wait_status(db, retried.id, "finished", timeout=15)
    started, completed = run_rows(db, "started:t2r"), run_rows(db, "t2r")
    assert len(started) == 2 and len(completed) == 1 and started[1][0] != pid
    assert done["attempts"] == 2 and [e["type"] for e in done["errors"]] == ["WorkHorseKilled"]
    note_recovery("2. job process SIGKILL, retry allowed: kill -> job re-run started",
                  (started[1][1] - killed_at).total_seconds())
    note_recovery("2. job process SIGKILL, retry allowed: kill -> job finished",
                  (completed[0][1] - killed_at).total_seconds())
    assert worker.proc.poll() is None
    assert "replaced its child process (the job's process was killed by signal SIGKILL)" in worker.output


@pytest.mark.timeout(60)
def test_job_past_its_hard_timeout_is_killed_and_the_next_job_runs(
        spawn_worker: Callable[..., Any], db: psycopg.Connection[Any]) -> None:
    worker = spawn_worker("default", *FAST)
    q = Queue()
    spinning = q.enqueue(tj.spin_forever, job_timeout=1)
    after = q.enqueue(tj.record, "after-timeout")
    failed = wait_status(db, spinning.id, "failed", timeout=15)
    assert failed["exc_info"] == "JobTimeoutError: the job exceeded its timeout of 1 seconds and was stopped"
    assert [(e["type"], e["attempt"]) for e in failed["errors"]] == [("JobTimeoutError", 1)]
    ran_for = (failed["ended_at"] - failed["started_at"]).total_seconds()
    assert 1 <= ran_for < 5, ran_for
    done = wait_status(db, after.id, "finished", timeout=15)
    assert done["attempts"] == 1  # claimed behind the spinning job, released unstarted, then run once
    assert len(run_rows(db, "after-timeout")) == 1
    assert worker.proc.poll() is None


@pytest.mark.timeout(60)
def test_sigterm_mid_job_finishes_the_job_exits_0_and_deregisters(
        spawn_worker: Callable[..., Any], db: psycopg.Connection[Any]) -> None:
    worker = spawn_worker("default", *FAST)
    q = Queue()
    running = q.enqueue(rj.record_sleep_first_attempt, 1.5, "t4")
    behind = q.enqueue(tj.record, "behind")
    wait_started(db, "t4")
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0, worker.output
    done = job_row(db, running.id)
    assert (done["status"], done["attempts"], done["errors"]) == ("finished", 1, [])
    assert len(run_rows(db, "t4")) == 1
    waiting = job_row(db, behind.id)  # never started: back on its queue without using an attempt
    assert (waiting["status"], waiting["attempts"], waiting["worker_id"]) == ("queued", 0, None)
    assert run_rows(db, "behind") == []
    rows = db.execute("SELECT stopped_at FROM pgqueue.workers").fetchall()
    assert len(rows) == 1 and rows[0][0] is not None
    assert "warm shut down" in worker.output


@pytest.mark.timeout(60)
def test_second_sigterm_kills_the_job_and_requeues_it_without_using_an_attempt(
        spawn_worker: Callable[..., Any], db: psycopg.Connection[Any]) -> None:
    worker = spawn_worker("default", *FAST)
    job = Queue().enqueue(rj.record_sleep_first_attempt, 60, "cold")
    [(pid, _)] = wait_started(db, "cold")
    worker.signal(signal.SIGTERM)
    wait_for(lambda: "warm shut down" in worker.output, 10, message="the first signal to be handled")
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0, worker.output
    wait_for(lambda: not alive(pid), 5, message="the job process to be killed")
    back = job_row(db, job.id)
    assert (back["status"], back["attempts"], back["worker_id"]) == ("queued", 0, None)
    assert run_rows(db, "cold") == []
    rows = db.execute("SELECT stopped_at FROM pgqueue.workers").fetchall()
    assert len(rows) == 1 and rows[0][0] is not None


@pytest.mark.timeout(60)
def test_worker_restarted_under_the_same_name_does_not_double_run(
        spawn_worker: Callable[..., Any], db: psycopg.Connection[Any],
        note_recovery: Callable[[str, float], None]) -> None:
    first = spawn_worker("default", *FAST, "--name", "same")
    job = Queue().enqueue(rj.record_sleep_first_attempt, 60, "t8", retry=Retry(max=1))
    [(first_pid, _)] = wait_started(db, "t8")
    old_id = job_row(db, job.id)["worker_id"]
    os.killpg(first.proc.pid, signal.SIGKILL)
    first.proc.wait(10)
    killed_at = db_now(db)

    second = spawn_worker("default", *FAST, "--name", "same")
    # The new registration is a new worker: it must not take the job while the old lease holds.
    held = job_row(db, job.id)
    assert (held["status"], held["worker_id"]) == ("running", old_id)
    done = wait_status(db, job.id, "finished", timeout=20)
    started, completed = run_rows(db, "started:t8"), run_rows(db, "t8")
    assert len(started) == 2 and len(completed) == 1
    assert started[1][0] != first_pid and started[1][0] in children_of(second.proc.pid)
    old = worker_row(db, old_id)
    assert started[1][1] >= old["heartbeat_at"] + timedelta(seconds=old["lease_seconds"]), \
        "re-run before the killed worker's lease ran out"
    assert done["attempts"] == 2 and done["worker_id"] != old_id
    assert [e["type"] for e in done["errors"]] == ["WorkerLost"]
    note_recovery("8. supervisor SIGKILL, same name restarted (lease 2s): kill -> job finished",
                  (completed[0][1] - killed_at).total_seconds())


@pytest.mark.timeout(60)
def test_job_process_dying_just_before_a_dispatch_does_not_stop_the_worker(
        db: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The deterministic form of a race the chaos test runs into: a job process dies (SIGKILL, the OOM
    killer) after the supervisor last looked at it and before the supervisor sends it the next batch.
    The supervisor must replace the process and run the batch, not exit."""
    real_dispatch = _slots.ChildSlot.dispatch
    crashed: list[int] = []

    def dispatch(self: _slots.ChildSlot, tasks: Any) -> bool:
        if not crashed:  # the crash lands in the window, once
            crashed.append(self.process.pid)  # type: ignore[arg-type]
            os.kill(self.process.pid, signal.SIGKILL)  # type: ignore[arg-type]
            self.process.join(5)
        return real_dispatch(self, tasks)

    monkeypatch.setattr(_slots.ChildSlot, "dispatch", dispatch)
    job = Queue().enqueue(tj.record, "after-race", retry=Retry(max=1))
    try:
        Worker(lease=2, poll_interval=0.5).work(burst=True)
    except OSError as exc:
        pytest.fail(f"the worker crashed instead of replacing its dead job process: {exc!r}")
    assert crashed
    done = job_row(db, job.id)
    assert done["status"] == "finished", done
    assert len(run_rows(db, "after-race")) == 1


@pytest.mark.timeout(60)
def test_jobs_a_killed_worker_claimed_but_never_started_still_run(
        spawn_worker: Callable[..., Any], db: psycopg.Connection[Any]) -> None:
    """A worker claims fast jobs in batches, so when it is killed it holds jobs it never started. The
    docs promise every job runs at least once: those must run, retry or not."""
    # --give-back-after 600: the jobs stay claimed behind the slow one (by default they go back after 0.1 s).
    victim = spawn_worker("default", *FAST, "--name", "victim", "--give-back-after", "600")
    q = Queue()
    q.enqueue_many([Queue.prepare_data(rj.record_sleep_first_attempt, [60, "head"]),
                    *(Queue.prepare_data(tj.record, [f"held-{i}"]) for i in range(4))])
    wait_started(db, "head")
    held = db.execute("SELECT id FROM pgqueue.jobs WHERE status = 'running' AND func_name = %s",
                      ("pgq_testjobs.record",)).fetchall()
    # The five jobs arrive in one transaction and a fresh worker claims five at a time (about 50 ms of
    # work at its initial estimate of 10 ms a job), so the four quick jobs sit claimed behind the slow one.
    assert held, "the worker claimed the slow job alone; this test needs the four others held in its batch"
    os.killpg(victim.proc.pid, signal.SIGKILL)
    victim.proc.wait(10)
    spawn_worker("default", *FAST, "--name", "rescuer")
    wait_for(lambda: db.execute("SELECT count(*) FROM pgqueue.jobs WHERE status IN ('queued', 'running', "
                                "'scheduled')").fetchone() == (0,), 20, message="every job to end")
    never_ran = [(job_id, status, exc_info)
                 for job_id, status, exc_info, runs in db.execute("""
                     SELECT j.id, j.status::text, j.exc_info, count(r.job_id) FROM pgqueue.jobs j
                     LEFT JOIN pgq_test.runs r ON r.job_id = j.id
                     WHERE j.func_name = 'pgq_testjobs.record' GROUP BY j.id""").fetchall() if runs == 0]
    assert never_ran == [], f"{len(held)} jobs held unstarted by the killed worker; these never ran: {never_ran}"


@pytest.mark.timeout(60)
def test_a_stale_release_does_not_requeue_the_newer_attempt_of_a_job(
        spawn_worker: Callable[..., Any], db: psycopg.Connection[Any]) -> None:
    """A worker that was declared lost (its heartbeat stalled past its lease: a database outage, a paused
    VM) but lives on may claim a rescued job again while the old claim still sits unstarted in one of
    its batches. Releasing that old claim must not touch the newer attempt: releases, like completions,
    must be fenced on the attempt."""
    # --give-back-after 600: J stays claimed behind A (by default it would go back to its queue after 0.1 s).
    worker = spawn_worker("default", "--concurrency", "2", "--lease", "30", "--poll-interval", "0.5",
                          "--give-back-after", "600")
    # One claim, dealt round robin over the two job processes: [A (long), J] to the first, [B (0.3 s)] to
    # the second. B's duration makes the batch size 1, so when J is queued again only the idle second
    # process takes it.
    q = Queue()
    head, _, job = q.enqueue_many([
        Queue.prepare_data(rj.record_sleep_first_attempt, [60, "a"]),
        Queue.prepare_data(rj.sleep_then_record, [0.3, "b"]),
        Queue.prepare_data(tj.record_sleep_record, [3, "j"], retry=Retry(max=1)),
    ])
    [(a_pid, _)] = wait_started(db, "a")
    wait_for(lambda: run_rows(db, "b"), 10, message="job b to finish")
    assert job_row(db, job.id)["status"] == "running" and run_rows(db, "started:j") == []

    # The worker is declared lost: another worker's maintenance pass rescues its jobs (run here as a
    # worker runs it). J goes back to its queue, and the worker, alive, claims it again (attempt 2).
    worker_id = job_row(db, job.id)["worker_id"]
    db.execute("UPDATE pgqueue.workers SET heartbeat_at = now() - interval '1 hour' WHERE id = %s", (worker_id,))
    db.execute(q_sql("rescue_lost_jobs"), {"limit": 1000})
    [(j_pid, _)] = wait_started(db, "j")
    assert job_row(db, job.id)["claim_count"] == 2  # claimed twice; only runs that start count as attempts

    # The first job process dies: J's old, unstarted claim (attempt 1) is released.
    os.kill(a_pid, signal.SIGKILL)
    wait_for(lambda: "replaced its child process" in worker.output, 10, message="the dead process to be replaced")
    wait_for(lambda: run_rows(db, "j"), 15, message="job j to finish")
    wait_for(lambda: job_row(db, job.id)["status"] not in ("queued", "running"), 15, message="job j to end")
    started = run_rows(db, "started:j")
    assert len(started) == 1, (f"job j was started {len(started)} times: the release of its stale attempt 1 "
                               f"requeued attempt 2 while it ran (pids {[p for p, _ in started]}, first {j_pid})")
    assert job_row(db, job.id)["status"] == "finished"
