"""Periodic jobs under faults, with real worker processes: several schedulers racing for every tick, no
scheduler for several ticks, a scheduler killed (kill -9) inside the transaction of a tick. Each tick is
enqueued once: by the row lock and the guarded UPDATE of pgqueue.schedules, never by comparing clocks."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import WorkerProcess, wait_for

from pgqueue._cron import Cron

from ._helpers import db_now

LOCK_KEY = 7302


@pytest.fixture(autouse=True)
def _no_schedules(db: psycopg.Connection[Any]) -> None:
    db.execute("DELETE FROM pgqueue.schedules")


def schedule_module(folder: Path, name: str, schedule: str) -> list[str]:
    """A module of one schedule in ``folder``; returns the worker arguments that run it."""
    (folder / f"{name}.py").write_text(f"from pgqueue import Schedule\nschedules = [{schedule}]\n")
    return ["--with-scheduler", "--schedules", name, "--path", str(folder)]


def ticks_of(db: psycopg.Connection[Any], name: str) -> list[tuple[str, datetime, datetime]]:
    """(id, tick, enqueued_at) of the schedule's jobs, by tick; the tick is the job's scheduled_at."""
    return [(i, s.astimezone(timezone.utc), e) for i, s, e in db.execute(
        "SELECT id, scheduled_at, enqueued_at FROM pgqueue.jobs WHERE id LIKE %s ORDER BY scheduled_at",
        (f"{name}@%",)).fetchall()]


def stop(*workers: WorkerProcess) -> None:
    for worker in workers:
        worker.signal(signal.SIGTERM)
    for worker in workers:
        assert worker.wait() == 0, worker.output


@pytest.mark.timeout(120)  # the one long test: three schedulers for about ten seconds
def test_three_schedulers_enqueue_each_tick_once(db: psycopg.Connection[Any], tmp_path: Path,
                                                 spawn_worker: Callable[..., WorkerProcess]) -> None:
    args = schedule_module(tmp_path, "race_schedules",
                           "Schedule('* * * * * *', 'pgq_periodic_jobs.tick', name='race', args=('race',))")
    workers = [spawn_worker(*args, "--name", f"scheduler{i}", ready=False) for i in range(3)]
    for worker in workers:
        worker.wait_ready()
    wait_for(lambda: len(ticks_of(db, "race")) >= 11, timeout=60, interval=0.2, message="ten seconds of ticks")
    stop(*workers)
    ticks = [tick for _, tick, _ in ticks_of(db, "race")]
    expected = list(Cron("* * * * * *").ticks(ticks[0] - timedelta(seconds=1), ticks[-1]))
    assert ticks == expected  # none twice, none missing between the first and the last
    ran = db.execute("SELECT job_id, count(*) FROM pgq_test.runs WHERE tag = 'race' GROUP BY job_id").fetchall()
    assert ran and all(count == 1 for _, count in ran)
    by_worker = [len(re.findall(r"schedule race: enqueued", w.output)) for w in workers]
    assert sum(by_worker) == len(ticks), by_worker  # each tick logged by the one scheduler that enqueued it
    print(f"ticks enqueued by each scheduler: {by_worker}")


def _downtime(db: psycopg.Connection[Any], tmp_path: Path, spawn_worker: Callable[..., WorkerProcess],
              missed: str) -> tuple[datetime, list[tuple[str, datetime, datetime]], WorkerProcess]:
    """Run the schedule 'down' (every second), stop its scheduler for three ticks and more, start another:
    returns the last tick before the stop, the jobs after it (two at least), and the new worker."""
    args = schedule_module(tmp_path, "down_schedules", "Schedule('* * * * * *', 'pgq_periodic_jobs.tick', "
                                                       f"name='down', args=('down',), missed={missed!r})")
    first = spawn_worker(*args)
    wait_for(lambda: len(ticks_of(db, "down")) >= 2, message="two ticks")
    stop(first)
    last = ticks_of(db, "down")[-1][1]
    wait_for(lambda: db_now(db) >= last + timedelta(seconds=3.5), interval=0.1,
             message="three ticks without a scheduler")
    second = spawn_worker(*args)

    def two_after() -> list[tuple[str, datetime, datetime]]:
        after = [j for j in ticks_of(db, "down") if j[1] > last]
        return after[:2] if len(after) >= 2 else []

    return last, wait_for(two_after, message="two jobs after the restart"), second


def test_after_downtime_a_schedule_runs_once_for_the_ticks_missed(
        db: psycopg.Connection[Any], tmp_path: Path, spawn_worker: Callable[..., WorkerProcess]) -> None:
    last, after, second = _downtime(db, tmp_path, spawn_worker, "once")
    (catch_up_id, catch_up, _), (_, following, _) = after
    caught = re.findall(r"schedule down: enqueued once for (\d+) missed tick\(s\) from (\S+) to (\S+) \((\S+)\)",
                        second.output)
    assert len(caught) == 1, second.output  # one job for all the ticks missed, not one per tick
    count, first_missed, latest, job_id = caught[0]
    missed = list(Cron("* * * * * *").ticks(last, catch_up))
    assert int(count) == len(missed) >= 3 and job_id == catch_up_id
    assert datetime.fromisoformat(first_missed) == last + timedelta(seconds=1)
    assert datetime.fromisoformat(latest) == catch_up
    assert following == catch_up + timedelta(seconds=1)  # then every tick as before


def test_after_downtime_missed_skip_runs_nothing_until_the_next_tick(
        db: psycopg.Connection[Any], tmp_path: Path, spawn_worker: Callable[..., WorkerProcess]) -> None:
    last, after, second = _downtime(db, tmp_path, spawn_worker, "skip")
    assert re.search(r"schedule down: (skipped \d+ missed tick\(s\)|enqueued; skipped \d+ missed tick\(s\) "
                     r"before it) .*\(missed='skip'\)", second.output), second.output
    (_, first_tick, _), (_, following, _) = after
    assert first_tick - last >= timedelta(seconds=3) and following == first_tick + timedelta(seconds=1)
    grace = Cron("* * * * * *").grace(first_tick)
    assert all(enqueued - tick <= grace for _, tick, enqueued in after)  # only ticks seen on time ran


def test_a_scheduler_killed_inside_a_tick_leaves_nothing_and_the_tick_is_enqueued_once(
        db: psycopg.Connection[Any], dsn: str, tmp_path: Path, spawn_worker: Callable[..., WorkerProcess]) -> None:
    args = schedule_module(tmp_path, "killed_schedules",
                           "Schedule('*/5 * * * * *', 'pgq_periodic_jobs.tick', name='killed', args=('killed',))")
    # The transaction of a tick blocks after its job is inserted and its schedule moved, until this test
    # lets it go: the kill lands inside it.
    db.execute(f"""
        CREATE FUNCTION pgq_test.block_tick() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_advisory_xact_lock_shared({LOCK_KEY}); RETURN NULL; END $$;
        CREATE TRIGGER block_tick AFTER UPDATE ON pgqueue.schedules FOR EACH ROW
        WHEN (NEW.name = 'killed' AND NEW.last_job_id IS DISTINCT FROM OLD.last_job_id)
        EXECUTE FUNCTION pgq_test.block_tick()""")
    try:
        with psycopg.connect(dsn, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
            doomed = spawn_worker(*args, "--name", "doomed")
            pid = wait_for(lambda: db.execute(
                "SELECT a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                "AND l.objid = %s AND NOT l.granted AND a.application_name = 'pgqueue:doomed:claim' "
                "AND a.backend_xid IS NOT NULL", (LOCK_KEY,)).fetchone(),
                message="the scheduler to block inside the transaction of its tick (which has written)")[0]
            tick = db.execute("SELECT next_tick FROM pgqueue.schedules WHERE name = 'killed'").fetchone()[0]
            os.killpg(doomed.proc.pid, signal.SIGKILL)
            doomed.proc.wait(10)
            holder.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        wait_for(lambda: not db.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone(),
                 message="the killed scheduler's session to end")
        # Neither the job nor the move: the schedule is as it was before the tick.
        assert ticks_of(db, "killed") == []
        assert db.execute("SELECT next_tick, last_job_id FROM pgqueue.schedules WHERE name = 'killed'").fetchone() == (
            tick, None)
    finally:
        db.execute("DROP TRIGGER IF EXISTS block_tick ON pgqueue.schedules; "
                   "DROP FUNCTION IF EXISTS pgq_test.block_tick()")
    heir = spawn_worker(*args, "--name", "heir")
    first = wait_for(lambda: ticks_of(db, "killed"), message="the next scheduler to enqueue the tick")[0]
    at = tick.astimezone(timezone.utc)
    # The tick itself, or (if the heir came more than a period later) the one job for the ticks missed from it.
    assert first[0] == f"killed@{at:%Y-%m-%dT%H:%M:%SZ}" or f"missed tick(s) from {at.isoformat()}" in heir.output
    wait_for(lambda: db.execute("SELECT count(*) FROM pgq_test.runs WHERE job_id = %s", (first[0],)).fetchone()[0],
             message="the tick's job to run")
    assert db.execute("SELECT count(*) FROM pgq_test.runs WHERE tag = 'killed'").fetchone()[0] >= 1
    assert db.execute("SELECT count(*) FROM pgq_test.runs WHERE job_id = %s", (first[0],)).fetchone() == (1,)
