"""Job control (docs/job-control.md): canceling a running job stops it. Real workers, real processes, a real
database."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any

import pgq_callbacks as cb
import pgq_control as ctl
import psycopg
import pytest
from conftest import wait_for

from pgqueue import Job, JobStatus, Queue, SimpleWorker, Worker


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
    assert after.wait(timeout=5) == 2  # it was claimed behind the canceled job, given back, and run


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
