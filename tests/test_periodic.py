"""Periodic jobs: declarations and their errors, ticks around daylight-saving changes (pure functions of
given instants), what a scheduler decides for a due tick, and, against the real database with real worker
processes, the scheduler's behaviour and `pgqueue schedules`. The faults (several schedulers, downtime,
kill -9 mid-tick) are in tests/reliability/test_scheduler.py."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pgq_periodic_jobs
import psycopg
import pytest
from conftest import WorkerProcess, run_cli, wait_for

from pgqueue import ConfigurationError, Schedule, SimpleWorker, periodic, scheduling
from pgqueue._cron import Cron, zone
from pgqueue.scheduling import load_schedules
from pgqueue.worker._scheduler import plan_tick

UTC = timezone.utc
TICK = "pgq_periodic_jobs.tick"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.fixture
def registry() -> Iterator[None]:
    """@periodic declarations made by a test are forgotten after it."""
    saved = dict(scheduling._declared)
    yield
    scheduling._declared.clear()
    scheduling._declared.update(saved)


@pytest.fixture
def schedule_module(tmp_path: Path) -> Callable[[str, str], str]:
    """Write a module of schedules into tmp_path (workers get ``--path tmp_path``); returns its name."""
    def write(name: str, body: str) -> str:
        (tmp_path / f"{name}.py").write_text("from pgqueue import Schedule, periodic\n" + body)
        return name

    return write


def schedule_row(db: psycopg.Connection[Any], name: str) -> dict[str, Any]:
    cur = db.execute("SELECT * FROM pgqueue.schedules WHERE name = %s", (name,))
    row = cur.fetchone()
    assert row is not None and cur.description is not None, f"no row for schedule {name}"
    return dict(zip([c.name for c in cur.description], row, strict=True))


def jobs_of(db: psycopg.Connection[Any], name: str) -> list[tuple[str, str, datetime, str | None]]:
    """(id, status, scheduled_at, exc_info) of the schedule's jobs, by tick."""
    return db.execute("SELECT id, status::text, scheduled_at, exc_info FROM pgqueue.jobs WHERE id LIKE %s "
                      "ORDER BY scheduled_at", (f"{name}@%",)).fetchall()


@pytest.fixture(autouse=True)
def _no_schedules(request: pytest.FixtureRequest) -> None:
    if "nodb" not in request.keywords:
        with psycopg.connect(request.getfixturevalue("dsn"), autocommit=True) as conn:
            conn.execute("DELETE FROM pgqueue.schedules")


# -- declarations ----------------------------------------------------------------------------------
@pytest.mark.nodb
@pytest.mark.parametrize(("expression", "says"), [
    ("61 * * * *", "out of range"), ("* * * *", "4 field(s)"), ("0 0 1 1 * * 2030", "7 field(s)"),
    ("@every_5m", "unknown alias"), ("0 0 30 2 *", "never matches"), ("*/0 * * * *", "step"),
    ("H * * * * * extra", "7 field(s)")])
def test_an_invalid_cron_expression_is_refused_at_declaration_naming_it(expression: str, says: str) -> None:
    with pytest.raises(ValueError, match="invalid cron expression") as info:
        Schedule(expression, TICK, name="nightly")
    assert repr(expression) in str(info.value) and "'nightly'" in str(info.value) and says in str(info.value)
    assert "6 fields with seconds first" in str(info.value)  # what to write instead


@pytest.mark.nodb
def test_an_unknown_timezone_or_a_bad_option_is_refused_naming_it(registry: None) -> None:
    with pytest.raises(ValueError, match=r"schedule 'x': unknown timezone 'Europe/Pariss': use an IANA name"):
        Schedule("* * * * *", TICK, name="x", timezone="Europe/Pariss")
    with pytest.raises(TypeError, match=r"unknown option retyr=: did you mean retry=\?"):
        Schedule("* * * * *", TICK, retyr=3)
    with pytest.raises(TypeError, match="does not take job_id=: each tick's job gets its own id"):
        Schedule("* * * * *", TICK, job_id="fixed")
    with pytest.raises(TypeError, match="does not take unique_key=: pass overlap=False"):
        Schedule("* * * * *", TICK, unique_key="k")
    with pytest.raises(ValueError, match="missed='sometimes': pass missed='once'"):
        Schedule("* * * * *", TICK, missed="sometimes")
    with pytest.raises(TypeError, match="overlap must be True or False"):
        Schedule("* * * * *", TICK, overlap="no")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="job_timeout"):
        Schedule("* * * * *", TICK, job_timeout=0)  # enqueue's own checks, at declaration
    with pytest.raises(ValueError, match=r"takes the cron expression first.*Schedule\('\* \* \* \* \*', 'a.b'\)"):
        Schedule("a.b", "* * * * *")
    with pytest.raises(ValueError, match="must be defined at module level"):
        periodic("* * * * *")(lambda: None)
    with pytest.raises(TypeError, match="schedule 'a.b': pgqueue stores arguments.*as JSON"):
        Schedule("* * * * *", "a.b", args=(object(),))


@pytest.mark.nodb
def test_two_different_schedules_under_one_name_are_refused(registry: None) -> None:
    periodic("*/5 * * * *", args=("a",))(pgq_periodic_jobs.tick)
    periodic("*/5 * * * *", args=("a",))(pgq_periodic_jobs.tick)  # the same again (a module imported again)
    with pytest.raises(ValueError, match=r"two different schedules are named 'pgq_periodic_jobs.tick'.*own name="):
        periodic("0 9 * * *", args=("a",))(pgq_periodic_jobs.tick)
    periodic("0 9 * * *", name="morning", args=("a",))(pgq_periodic_jobs.tick)
    assert [s.name for s in scheduling.declared()] == ["morning", "pgq_periodic_jobs.tick"]
    with pytest.raises(ConfigurationError, match="two different schedules are named 'morning'"):
        load_schedules(pgq_periodic_jobs, [Schedule("0 10 * * *", TICK, name="morning", args=("a",))])
    assert [s.name for s in load_schedules(pgq_periodic_jobs)] == ["morning", "pgq_periodic_jobs.tick"]


@pytest.mark.nodb
def test_a_function_its_dotted_path_does_not_lead_back_to_is_refused_when_loaded() -> None:
    def tick(tag: str) -> str:
        return tag

    tick.__module__, tick.__qualname__ = "pgq_periodic_jobs", "tick"  # as a copy of the real one would be
    schedule = Schedule("* * * * *", tick, args=("x",))
    with pytest.raises(ConfigurationError, match="importing pgq_periodic_jobs.tick gives .* not the function"):
        load_schedules(schedule)
    missing = Schedule("* * * * *", TICK.replace("tick", "nope"))  # a dotted path: not imported at declaration
    assert load_schedules(missing) == [missing]


# -- ticks, from given instants --------------------------------------------------------------------
@pytest.mark.nodb
def test_a_time_the_clocks_skip_runs_once_after_the_gap_and_a_time_they_repeat_runs_twice() -> None:
    paris = Cron("30 2 * * *", "Europe/Paris")
    # 2025-03-30: at 02:00 the clocks go forward to 03:00; 02:30 does not exist that night.
    spring = list(paris.ticks(utc(2025, 3, 28, 12), utc(2025, 4, 1, 12)))
    assert spring == [utc(2025, 3, 29, 1, 30), utc(2025, 3, 30, 1, 0), utc(2025, 3, 31, 0, 30), utc(2025, 4, 1, 0, 30)]
    assert spring[1].astimezone(paris.zone).strftime("%H:%M %Z") == "03:00 CEST"
    # 2025-10-26: at 03:00 the clocks go back to 02:00; 02:30 happens twice, an hour apart.
    autumn = list(paris.ticks(utc(2025, 10, 25, 12), utc(2025, 10, 27, 12)))
    assert autumn == [utc(2025, 10, 26, 0, 30), utc(2025, 10, 26, 1, 30), utc(2025, 10, 27, 1, 30)]
    assert [t.astimezone(paris.zone).strftime("%H:%M %Z") for t in autumn] == ["02:30 CEST", "02:30 CET", "02:30 CET"]
    # An hourly schedule keeps one tick per hour through both changes.
    hourly = Cron("0 * * * *", "Europe/Paris")
    for night in (utc(2025, 3, 29, 21), utc(2025, 10, 25, 21)):
        ticks = list(hourly.ticks(night, night + timedelta(hours=8)))
        assert ticks == [night + timedelta(hours=h) for h in range(1, 9)]
    # The same expression in UTC knows no such night.
    assert list(Cron("30 2 * * *").ticks(utc(2025, 10, 25, 12), utc(2025, 10, 27, 12))) == [
        utc(2025, 10, 26, 2, 30), utc(2025, 10, 27, 2, 30)]


@pytest.mark.nodb
def test_ticks_are_instants_after_or_at_a_given_instant() -> None:
    every_ten = Cron("*/10 * * * * *")  # six fields: seconds first
    assert every_ten.next_after(utc(2026, 1, 1, 12, 0, 0)) == utc(2026, 1, 1, 12, 0, 10)
    assert every_ten.next_after(utc(2026, 1, 1, 12, 0, 9, 999999)) == utc(2026, 1, 1, 12, 0, 10)
    assert every_ten.latest_until(utc(2026, 1, 1, 12, 0, 10)) == utc(2026, 1, 1, 12, 0, 10)
    assert every_ten.latest_until(utc(2026, 1, 1, 12, 0, 19, 999999)) == utc(2026, 1, 1, 12, 0, 10)
    new_york = Cron("@daily", "America/New_York")
    assert new_york.next_after(utc(2026, 3, 8, 12)) == utc(2026, 3, 9, 4)  # midnight EDT, the day after the change
    assert new_york.next_after(utc(2026, 3, 7, 12)) == utc(2026, 3, 8, 5)  # midnight EST
    assert Cron("@HOURLY").expression == "@hourly" and Cron(" 0  *  * * * ").expression == "0 * * * *"
    spread = [Cron("H H * * *", hash_id=name).next_after(utc(2026, 1, 1)) for name in ("a", "b", "a")]
    assert spread[0] == spread[2] != spread[1] and all(t.date() == utc(2026, 1, 1).date() for t in spread)
    assert Cron("*/5 * * * *").grace(utc(2026, 1, 1)) == timedelta(seconds=60)
    assert Cron("* * * * * *").grace(utc(2026, 1, 1)) == timedelta(seconds=0.5)


@pytest.mark.nodb
def test_what_a_scheduler_does_with_a_due_tick() -> None:
    def plan(now: datetime, next_tick: datetime | None, status: str | None = None, **options: Any) -> Any:
        return plan_tick(Schedule("*/5 * * * *", TICK, name="s", args=("t",), **options), next_tick,
                         "s@x" if status else None, status, now)

    noon = utc(2026, 1, 1, 12)
    assert plan(noon + timedelta(seconds=3), None) == (None, noon + timedelta(minutes=5), None)  # new: from now on
    assert plan(noon + timedelta(seconds=1), noon) == (noon, noon + timedelta(minutes=5), "enqueued")
    # After an hour without scheduler: once for the twelve ticks missed...
    once = plan(noon + timedelta(hours=1, seconds=30), noon)
    assert once.tick == noon + timedelta(hours=1) and once.next_tick == noon + timedelta(hours=1, minutes=5)
    assert once.outcome.startswith("enqueued once for 13 missed tick(s) from 2026-01-01T12:00:00+00:00")
    # ... or none with missed="skip", unless the latest tick is still on time (within its grace).
    skipped = plan(noon + timedelta(hours=1, seconds=61), noon, missed="skip")
    assert skipped.tick is None and skipped.next_tick == noon + timedelta(hours=1, minutes=5)
    assert skipped.outcome.startswith("skipped 13 missed tick(s)")
    on_time = plan(noon + timedelta(hours=1, seconds=59), noon, missed="skip")
    assert on_time.tick == noon + timedelta(hours=1) and "skipped 12 missed tick(s) before it" in on_time.outcome
    # A single tick seen late is missed too.
    assert plan(noon + timedelta(minutes=2), noon).outcome.startswith("enqueued once for 1 missed tick(s)")
    assert plan(noon + timedelta(minutes=2), noon, missed="skip").tick is None
    # overlap=False: nothing while the previous run is live, whatever the ticks.
    held = plan(noon + timedelta(seconds=1), noon, "running", overlap=False)
    assert held.tick is None and held.next_tick == noon + timedelta(minutes=5)
    assert held.outcome == ("skipped the tick of 2026-01-01T12:00:00+00:00: the previous run (s@x) was still "
                            "running (overlap=False)")
    assert plan(noon + timedelta(seconds=1), noon, "finished", overlap=False).tick == noon
    assert plan(noon + timedelta(seconds=1), noon, "running").tick == noon  # overlap=True, the default


# -- the scheduler, against the database -----------------------------------------------------------
def test_only_a_worker_with_the_scheduler_writes_schedules(db: psycopg.Connection[Any], registry: None) -> None:
    periodic("* * * * * *", args=("ignored",))(pgq_periodic_jobs.tick)
    SimpleWorker(["default"]).work(burst=True)
    assert db.execute("SELECT count(*) FROM pgqueue.schedules").fetchone() == (0,)
    SimpleWorker(["default"], with_scheduler=True).work(burst=True)  # every @periodic of the process
    row = schedule_row(db, TICK)
    assert (row["expression"], row["timezone"], row["func_name"], row["queue"]) == ("* * * * * *", "UTC", TICK,
                                                                                    "default")
    assert row["next_tick"] is not None and row["last_tick"] is None
    done = run_cli("worker", "--burst", "--schedules", "pgq_periodic_jobs")
    assert done.returncode == 2 and "Error: --schedules goes with --with-scheduler" in done.stderr


def test_a_new_expression_starts_the_schedule_afresh(db: psycopg.Connection[Any]) -> None:
    def declare(expression: str) -> datetime:
        SimpleWorker(with_scheduler=True, schedules=[Schedule(expression, TICK, name="s", args=("x",))]).work(
            burst=True)
        return schedule_row(db, "s")["next_tick"]  # type: ignore[no-any-return]

    first = declare("0 3 * * *").astimezone(UTC)
    assert (first.hour, first.minute) == (3, 0)
    db.execute("UPDATE pgqueue.schedules SET next_tick = next_tick + interval '1 day'")  # as if it had ticked
    assert declare("0 3 * * *") == first + timedelta(days=1)  # the same schedule: its next tick stays
    again = declare("0 4 * * *").astimezone(UTC)
    assert (again.hour, again.minute) == (4, 0) and again < first + timedelta(days=1)


def test_overlap_false_skips_ticks_while_the_previous_run_runs(
        db: psycopg.Connection[Any], spawn_worker: Callable[..., WorkerProcess], tmp_path: Path,
        schedule_module: Callable[[str, str], str]) -> None:
    module = schedule_module("overlap_schedules", "schedules = [Schedule('* * * * * *', 'pgq_periodic_jobs.hold', "
                                                  "name='slow', args=(7301, 'slow'), overlap=False)]\n")
    with psycopg.connect(db.info.dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(7301)")
        spawn_worker("--with-scheduler", "--schedules", module, "--path", str(tmp_path), "--concurrency", "2")
        wait_for(lambda: db.execute("SELECT 1 FROM pgq_test.runs WHERE tag = 'started:slow'").fetchone(),
                 message="the first run to start")
        wait_for(lambda: "overlap=False" in (schedule_row(db, "slow")["last_outcome"] or ""),
                 message="a tick skipped while the first run runs")
        skipped = schedule_row(db, "slow")
        assert [status for _, status, _, _ in jobs_of(db, "slow")] == ["running"]
        assert f"the previous run ({skipped['last_job_id']}) was still running" in skipped["last_outcome"]
        holder.execute("SELECT pg_advisory_unlock(7301)")
    wait_for(lambda: len(jobs_of(db, "slow")) >= 2, message="the tick after the first run ended")
    first, second = jobs_of(db, "slow")[:2]
    assert first[1] == "finished" and second[2] >= skipped["next_tick"]  # ticks in between were skipped


def test_a_function_that_does_not_import_fails_its_jobs_and_the_schedule_goes_on(
        db: psycopg.Connection[Any], spawn_worker: Callable[..., WorkerProcess], tmp_path: Path,
        schedule_module: Callable[[str, str], str]) -> None:
    module = schedule_module("broken_schedules", "schedules = [Schedule('* * * * * *', 'no_such_module.job', "
                                                 "name='broken')]\n")
    spawn_worker("--with-scheduler", "--schedules", module, "--path", str(tmp_path))

    def failed_jobs() -> list[Any]:
        failed = [j for j in jobs_of(db, "broken") if j[1] == "failed"]
        return failed if len(failed) >= 2 else []

    failed = wait_for(failed_jobs, message="two failed ticks")
    assert all("ImportError: cannot import job function 'no_such_module.job': No module named 'no_such_module'"
               in (j[3] or "") for j in failed)
    assert failed[1][2] - failed[0][2] == timedelta(seconds=1)  # one job per tick, the next tick too


def test_pgqueue_schedules_lists_each_schedule(
        db: psycopg.Connection[Any], spawn_worker: Callable[..., WorkerProcess], tmp_path: Path,
        schedule_module: Callable[[str, str], str]) -> None:
    module = schedule_module("listed_schedules", """
schedules = [Schedule('* * * * * *', 'pgq_periodic_jobs.tick', name='every-second', args=('listed',))]

@periodic('30 2 * * *', timezone='Europe/Paris', args=('nightly',))
def nightly(tag):
    return tag
""")
    worker = spawn_worker("--with-scheduler", "--path", str(tmp_path), "--schedules", f"{module}")
    wait_for(lambda: any(j[1] == "finished" for j in jobs_of(db, "every-second")), message="a finished tick")
    worker.stop()
    db.execute("UPDATE pgqueue.schedules SET updated_at = now() - interval '1 hour' WHERE name = 'every-second'")
    db.execute(f"DELETE FROM pgqueue.schedules WHERE name = '{module}.nightly'")
    row = schedule_row(db, "every-second")
    listed = run_cli("schedules")
    assert listed.returncode == 0, listed.stderr
    header, line, *notes = listed.stdout.splitlines()
    assert header.split() == ["NAME", "EXPRESSION", "TIMEZONE", "NEXT", "RUN", "LAST", "RUN", "LAST", "JOB"]
    last_status = db.execute("SELECT status::text FROM pgqueue.jobs WHERE id = %s", (row["last_job_id"],)).fetchone()
    assert last_status is not None
    next_run, last_run, declared = (f"{row[c].astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
                                    for c in ("next_tick", "last_tick", "updated_at"))
    assert line.split() == ["every-second", *"* * * * * *".split(), "UTC", *next_run.split(), *last_run.split(),
                            last_status[0]]
    assert notes == [f"every-second: no running scheduler declares it (last declared {declared}); "
                     "it runs again once one does"]
    listed = run_cli("schedules", "--json", "--schedules", module, "--path", str(tmp_path))
    assert listed.returncode == 0, listed.stderr
    by_name = {s["name"]: s for s in json.loads(listed.stdout)}
    assert by_name["every-second"] == {
        "name": "every-second", "expression": "* * * * * *", "timezone": "UTC", "func_name": TICK, "queue": "default",
        "next_run": row["next_tick"].astimezone(UTC).isoformat(),
        "last_run": row["last_tick"].astimezone(UTC).isoformat(),
        "last_job_id": row["last_job_id"], "last_job_status": last_status[0], "last_outcome": row["last_outcome"],
        "updated_at": row["updated_at"].astimezone(UTC).isoformat(), "in_database": True, "declared": False}
    nightly = by_name[f"{module}.nightly"]  # declared in the module, not in the database
    assert (nightly["in_database"], nightly["last_run"], nightly["timezone"]) == (False, None, "Europe/Paris")
    assert datetime.fromisoformat(nightly["next_run"]).astimezone(zone("Europe/Paris")).strftime(
        "%H:%M") in ("02:30", "03:00")
    bad = run_cli("schedules", "--schedules", "no_such_schedules_module")
    assert bad.returncode == 1 and bad.stderr.splitlines() == [
        "Error: cannot load schedules from 'no_such_schedules_module': ModuleNotFoundError: No module named "
        "'no_such_schedules_module'"]
