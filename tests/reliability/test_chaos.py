"""Four workers drain 20,000 jobs while their job processes are killed at random: nothing is lost, and
every job that ran twice says why."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest
from conftest import wait_for

from pgqueue import Queue, Retry

from ._helpers import children_of

JOBS = 20_000
KILLS = 10
WORKERS = 4


def _unsettled(db: psycopg.Connection[Any]) -> int:
    row = db.execute("SELECT count(*) FROM pgqueue.jobs "
                     "WHERE status IN ('queued', 'scheduled', 'deferred', 'running')").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.timeout(120)
def test_workers_drain_20000_jobs_while_job_processes_are_killed(
        spawn_worker: Callable[..., Any], db: psycopg.Connection[Any]) -> None:
    workers = [spawn_worker("default", "--concurrency", "2", "--lease", "5", "--poll-interval", "0.5")
               for _ in range(WORKERS)]
    q = Queue()
    q.enqueue_many([Queue.prepare_data(tj.record, [str(i)], retry=Retry(max=3)) for i in range(JOBS)])
    start = time.monotonic()

    killed: list[int] = []
    stop = threading.Event()
    rng = random.Random(os.getpid())

    def chaos() -> None:
        # A bounded number of kills, spread over the first seconds of the drain.
        while len(killed) < KILLS and not stop.wait(rng.uniform(0.1, 0.4)):
            pids = [p for w in workers for p in children_of(w.proc.pid)]
            if pids:
                pid = rng.choice(pids)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                killed.append(pid)

    thread = threading.Thread(target=chaos, name="chaos", daemon=True)
    thread.start()
    try:
        wait_for(lambda: not thread.is_alive(), 30, message="the chaos thread to finish its kills")
        still_running = _unsettled(db)
        wait_for(lambda: _unsettled(db) == 0 or all(w.proc.poll() is not None for w in workers), 60,
                 interval=0.2, message="the queue to drain")
    finally:
        stop.set()
        thread.join(5)
    problems = [f"worker {i} (a supervisor, never signalled) exited with code {w.proc.poll()}; its log ends:\n"
                + "\n".join(w.output.splitlines()[-3:])
                for i, w in enumerate(workers) if w.proc.poll() is not None]
    if _unsettled(db):  # every supervisor died: a last worker finishes the queue so the jobs can be checked
        spawn_worker("default", "--burst", "--concurrency", "2", "--lease", "2", ready=False).wait(60)
    elapsed = time.monotonic() - start
    assert len(killed) == KILLS
    assert still_running > 0, "the queue drained before the kills were done: they tested nothing"

    rows = db.execute("""
        SELECT j.id, j.status::text, j.exc_info, j.errors, j.attempts, count(r.job_id)
        FROM pgqueue.jobs j LEFT JOIN pgq_test.runs r ON r.job_id = j.id
        GROUP BY j.id""").fetchall()
    assert len(rows) == JOBS, "jobs are missing"
    orphans = db.execute("SELECT count(*) FROM pgq_test.runs r "
                         "WHERE NOT EXISTS (SELECT 1 FROM pgqueue.jobs j WHERE j.id = r.job_id)").fetchone()
    assert orphans == (0,)
    killed_jobs = 0
    for job_id, status, exc_info, errors, attempts, runs in rows:
        kinds = [e["type"] for e in errors]
        killed_jobs += "WorkHorseKilled" in kinds
        if status == "finished" and runs < 1:
            problems.append(f"{job_id}: finished without running")
        elif status == "failed" and not exc_info:
            problems.append(f"{job_id}: failed without a reason")
        elif status not in ("finished", "failed"):
            problems.append(f"{job_id}: ended {status}")
        if runs > attempts:
            problems.append(f"{job_id}: ran {runs} times in {attempts} attempts")
        explained = [k for k in kinds if k in ("WorkHorseKilled", "WorkerLost")]
        if runs > 1 and len(explained) < runs - 1:
            problems.append(f"{job_id}: ran {runs} times, errors explain {len(explained)} re-run(s): {kinds}")
    assert problems == [], "\n".join(problems[:20])
    assert killed_jobs >= 1, "no kill hit a running job"
    replaced = sum(w.output.count("replaced its child process") for w in workers)
    assert replaced == KILLS, f"{KILLS} job processes killed, {replaced} replaced"
    print(f"drained {JOBS} jobs in {elapsed:.1f}s; {killed_jobs} jobs hit by the {KILLS} kills")
