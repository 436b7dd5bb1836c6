"""RQ's commands that pgqueue's CLI has too, in real processes: `pgqueue empty` and `pgqueue enqueue`."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest
from conftest import run_cli

from pgqueue import Job, JobStatus, Queue, Worker

UNREACHABLE = ("--dsn", "postgresql://nobody@127.0.0.1:1/none")


def statuses(db: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    return db.execute("SELECT queue, status::text FROM pgqueue.jobs ORDER BY queue, status").fetchall()


def test_empty_deletes_the_queued_jobs_of_the_queues_named(db: psycopg.Connection[Any]) -> None:
    for _ in range(3):
        Queue("a").enqueue(tj.noop)
    Queue("b").enqueue(tj.noop)
    Queue("c").enqueue(tj.noop)
    later = Queue("a").enqueue_at(datetime(2100, 1, 1, tzinfo=timezone.utc), tj.noop)
    result = run_cli("empty", "a", "b", "nothing-here")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["3 jobs removed from a queue", "1 jobs removed from b queue",
                                          "0 jobs removed from nothing-here queue"]
    assert statuses(db) == [("a", "scheduled"), ("c", "queued")]  # scheduled jobs stay, as in RQ
    assert later.get_status() == JobStatus.SCHEDULED


def test_empty_all_empties_every_queue_with_queued_jobs(db: psycopg.Connection[Any]) -> None:
    Queue("a").enqueue(tj.noop)
    Queue("b").enqueue(tj.noop)
    Queue("b").enqueue(tj.noop)
    result = run_cli("empty", "--all")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["1 jobs removed from a queue", "2 jobs removed from b queue"]
    assert statuses(db) == []
    assert run_cli("empty", "-a").stdout.strip() == "Nothing to do"


@pytest.mark.nodb
@pytest.mark.parametrize(("args", "says"), [
    (["empty"], "name the QUEUEs to empty, or use --all"),
    (["empty", "a", "--all"], "give QUEUEs or --all, not both"),
    (["empty", ""], "queue names must not be empty."),
    (["empty", "x" * 1001], "a queue name must be at most 1000 bytes"),
])
def test_bad_empty_arguments_are_one_error_line_and_exit_2(args: list[str], says: str) -> None:
    result = run_cli(*args, *UNREACHABLE)
    assert result.returncode == 2, result
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and says in errors[0], result.stderr
    assert result.stdout == ""


# -- pgqueue enqueue ------------------------------------------------------------------------------------
def enqueue(*args: str, **kwargs: Any) -> tuple[str, str]:
    result = run_cli("enqueue", *args, **kwargs)
    assert result.returncode == 0, result.stderr
    return result.stdout, result.stderr


def test_enqueue_reads_rqs_argument_notation_and_prints_the_job_id(tmp_path: Any) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("read from a file\n")
    payload = tmp_path / "payload.json"
    payload.write_text('{"from": "json file"}')
    out, err = enqueue("pgq_testjobs.echo", "text", "name=ada", ":[1, 2]", 'config:={"a": null}', "%(3, 4.5)",
                       "flag%=True", f"@{notes}", f"data:=@{payload}", "--", "-5", "%-5")
    job = Job.fetch(out.strip())
    assert out == f"{job.id}\n"  # stdout is the id alone: `id=$(pgqueue enqueue ...)`
    assert err.strip() == f"Enqueued pgq_testjobs.echo('text', [1, 2], (3, 4.5), 'read from a file\\n', '-5', -5, " \
                          f"name='ada', config={{'a': None}}, flag=True, data={{'from': 'json file'}}) " \
                          f"with job-id '{job.id}'."
    assert Worker(["default"]).work(burst=True)
    assert job.result == {"args": ["text", [1, 2], [3, 4.5], "read from a file\n", "-5", -5],
                          "kwargs": {"name": "ada", "config": {"a": None}, "flag": True,
                                     "data": {"from": "json file"}}}


def test_enqueue_args_and_kwargs_as_json_come_first_and_quiet_prints_only_the_id() -> None:
    result = run_cli("enqueue", "pgq_testjobs.echo", "--args", '[1, "two"]', "--kwargs", '{"k": [true]}', "3",
                     "x=4", "--queue", "q", "--quiet")
    assert result.returncode == 0 and result.stderr == "", result
    job = Job.fetch(result.stdout.strip())
    assert (job.queue, job.args, job.kwargs) == ("q", [1, "two", "3"], {"k": [True], "x": "4"})


def test_enqueue_options_reach_the_job(db: psycopg.Connection[Any]) -> None:
    first = Queue().enqueue(tj.noop)
    out, _ = enqueue("pgq_testjobs.add", "%1", "%2", "--job-id", "cli-1", "--timeout", "90", "--result-ttl", "1h",
                     "--failure-ttl", "-1", "--ttl", "30m", "--description", "from the shell", "--depends-on",
                     first.id, "--priority", "-3", "--unique-key", "add:1", "--retry-max", "2", "--retry-interval",
                     "5", "--retry-interval", "7.5")
    assert out.strip() == "cli-1"
    job = Job.fetch("cli-1")
    assert (job.timeout, job.result_ttl, job.failure_ttl, job.ttl, job.description, job.depends_on, job.priority,
            job.unique_key, job.max_attempts) == (90, 3600, None, 1800, "from the shell", [first.id], -3, "add:1", 3)
    assert job.get_status() == JobStatus.DEFERRED
    row = db.execute("SELECT retry_intervals FROM pgqueue.jobs WHERE id = 'cli-1'").fetchone()
    assert row == ([5.0, 7.5],)
    again, _ = enqueue("pgq_testjobs.add", "%5", "%6", "--job-id", "cli-1")  # idempotent on the id, as enqueue
    assert again.strip() == "cli-1" and Job.fetch("cli-1").args == [1, 2]
    front, _ = enqueue("pgq_testjobs.noop", "--at-front")
    assert Queue().job_ids[0] == front.strip()


def test_enqueue_schedules_in_a_duration_or_at_a_time(db: psycopg.Connection[Any]) -> None:
    later, err = enqueue("pgq_testjobs.noop", "--schedule-in", "5m")
    job = Job.fetch(later.strip())
    assert job.status == JobStatus.SCHEDULED and " to run at " in err
    assert job.scheduled_at - job.enqueued_at == timedelta(minutes=5)  # from the database's now()
    short, _ = enqueue("pgq_testjobs.noop", "--in", "90")
    job = Job.fetch(short.strip())
    assert job.scheduled_at - job.enqueued_at == timedelta(seconds=90)
    at, _ = enqueue("pgq_testjobs.noop", "--schedule-at", "2030-01-01T09:00:00+02:00")
    assert Job.fetch(at.strip()).scheduled_at == datetime(2030, 1, 1, 7, tzinfo=timezone.utc)
    zulu, _ = enqueue("pgq_testjobs.noop", "--at", "2030-01-01T09:00:00Z")
    assert Job.fetch(zulu.strip()).scheduled_at == datetime(2030, 1, 1, 9, tzinfo=timezone.utc)
    # Without an offset: the local time of the machine that runs the command, as rq takes it.
    local, _ = enqueue("pgq_testjobs.noop", "--at", "2030-01-01T09:00:00", env={"TZ": "America/New_York"})
    assert Job.fetch(local.strip()).scheduled_at == datetime(2030, 1, 1, 14, tzinfo=timezone.utc)


@pytest.mark.parametrize(("args", "says"), [
    (["--args", "[1,"], "--args: not valid JSON"),
    (["--args", '{"a": 1}'], "--args takes a JSON array"),
    (["--kwargs", "[1]"], "--kwargs takes a JSON object"),
    (["--kwargs", "{'a': 1}"], "--kwargs: not valid JSON"),
    ([":{nope}"], "argument 1 (':{nope}'): not valid JSON"),
    (["x:=[1"], "argument 'x': not valid JSON"),
    (["%__import__('os').system('true')"], "not a Python literal"),
    (["v%=open('/etc/passwd')"], "argument 'v': not a Python literal"),
    (["a+b=c"], "'a+b' is not a keyword argument's name; to pass text with '=' in it, give it as JSON"),
    (["x=1", "x=2"], "keyword argument 'x' is given twice"),
    (["--kwargs", '{"x": 1}', "x=2"], "keyword argument 'x' is given twice"),
    (["%{1, 2}"], "argument 1 ('%{1, 2}'): pgqueue stores arguments, results and meta as JSON; builtins.set"),
    ([":NaN"], "pgqueue cannot store NaN"),
    (["@/no/such/file"], "cannot read @/no/such/file: No such file or directory"),
    (["--unknown"], "No such option '--unknown'"),
    (["--timeout", "0"], "--timeout=0.0 is not a timeout"),
    (["--result-ttl", "soon"], "--result-ttl='soon' is not a duration"),
    (["--schedule-in", "1y"], "--schedule-in='1y' is not a duration"),
    (["--schedule-at", "tomorrow"], "--schedule-at 'tomorrow' is not an ISO 8601 time"),
    (["--at", "2030-01-01T00:00:00", "--in", "5"], "give --schedule-at or --schedule-in, not both"),
    (["--retry-interval", "5"], "--retry-interval goes with --retry-max N"),
    (["--priority", "2147483648"], "priority=2147483648 is out of range"),
    (["--queue", ""], "the queue name must not be empty."),
])
def test_bad_enqueue_input_is_one_error_line_exit_2_and_nothing_written(
        args: list[str], says: str, db: psycopg.Connection[Any]) -> None:
    result = run_cli("enqueue", "pgq_testjobs.echo", *args)
    assert result.returncode == 2, result
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and says in errors[0], result.stderr
    assert result.stdout == ""
    assert statuses(db) == []


def test_enqueue_refuses_a_function_that_is_no_dotted_path(db: psycopg.Connection[Any]) -> None:
    result = run_cli("enqueue", "print", "hello")
    assert result.returncode == 2 and "must be a dotted path like 'pkg.mod.func', got 'print'" in result.stderr
    assert statuses(db) == []
    result = run_cli("enqueue", "pgq_testjobs.echo", *UNREACHABLE)
    assert result.returncode == 1 and result.stderr.startswith("Error: cannot reach PostgreSQL"), result
