"""Worker hooks (pgqueue.Hooks, `Worker(hooks=[...])`, `pgqueue worker --hooks`): job hooks in the job's
process around the function, in order (the after hooks nested), worker hooks in the supervisor; a hook that
raises is logged and the job's outcome kept."""

from __future__ import annotations

import logging
import os
from typing import Any

import pgq_asyncjobs as aj
import pgq_obs_jobs as obs
import pgq_testjobs as tj
import psycopg
import pytest
from conftest import run_cli, wait_for

from pgqueue import Hooks, Job, JobStatus, Queue, Retry, SimpleWorker, Worker
from pgqueue.hooks import JobOutcome


def notes(db: psycopg.Connection[Any]) -> list[tuple[str | None, str, int]]:
    return db.execute("SELECT job_id, tag, pid FROM pgq_test.runs ORDER BY at").fetchall()


def test_a_workers_hooks_run_in_order_job_hooks_in_the_jobs_process(db: psycopg.Connection[Any]) -> None:
    ok = Queue("hooked").enqueue(tj.add, 2, 3)
    bad = Queue("hooked").enqueue(tj.fail, "no luck")
    worker = Worker(["hooked"], hooks=["pgq_obs_jobs.Recorder", obs.Second()])
    assert worker.work(burst=True)

    rows = notes(db)
    tags = [tag for _, tag, _ in rows]
    assert tags[:2] == ["first:start:True", "second:start:True"] and tags[-2:] == ["first:stop", "second:stop"]
    # Each job's own calls, in the order they came (the job's process, then the supervisor).
    assert [tag for job_id, tag, _ in rows if job_id == ok.id] == [
        "first:before:pgq_testjobs.add:hooked:1:[2, 3]:running",
        "second:before:pgq_testjobs.add:hooked:1:[2, 3]:running",
        "second:after:5", "first:after:5",
        "first:outcome:pgq_testjobs.add:hooked:1:finished:None",
        "second:outcome:pgq_testjobs.add:hooked:1:finished:None"]
    assert [tag for job_id, tag, _ in rows if job_id == bad.id] == [
        "first:before:pgq_testjobs.fail:hooked:1:['no luck']:running",
        "second:before:pgq_testjobs.fail:hooked:1:['no luck']:running",
        "second:failure:ValueError:no luck:True", "first:failure:ValueError:no luck:True",
        "first:outcome:pgq_testjobs.fail:hooked:1:failed:ValueError",
        "second:outcome:pgq_testjobs.fail:hooked:1:failed:ValueError"]
    pids = {tag.split(":")[1]: pid for _, tag, pid in rows}
    assert pids["start"] == pids["outcome"] == pids["stop"] == os.getpid()  # the supervisor: this process
    assert pids["before"] == pids["after"] == pids["failure"] != os.getpid()  # the job's: a child
    assert ok.wait(timeout=5) == 5 and bad.get_status(refresh=True) == JobStatus.FAILED


def test_a_simple_workers_hooks_get_the_job_the_result_and_the_exception() -> None:
    calls: list[tuple[Any, ...]] = []

    class Spy(Hooks):
        def before_job(self, job: Job) -> None:
            calls.append(("before", job.id, job.func_name, job.queue, job.attempts, job.args, job.kwargs))

        def after_job(self, job: Job, result: Any) -> None:
            calls.append(("after", job.id, result))

        def on_failure(self, job: Job, exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
            calls.append(("failure", job.id, exc_type, str(exc), tb.tb_frame is not None))

        def on_worker_start(self, worker: Any) -> None:
            calls.append(("start", worker is simple, worker.worker_id is not None))

        def on_worker_stop(self, worker: Any) -> None:
            calls.append(("stop", worker is simple))

        def on_outcome(self, worker: Any, outcome: JobOutcome) -> None:
            calls.append(("outcome", outcome.job_id, outcome.status, outcome.attempt, outcome.error_type,
                          outcome.duration >= 0))

    ok = Queue().enqueue(tj.echo, 1, key="v")
    bad = Queue().enqueue(tj.fail, "twice", retry=Retry(max=1))
    simple = SimpleWorker(["default"], hooks=[Spy()])
    assert simple.work(burst=True)
    assert calls[0] == ("start", True, True) and calls[-1] == ("stop", True)
    assert [c for c in calls if c[1] == ok.id] == [
        ("before", ok.id, "pgq_testjobs.echo", "default", 1, [1], {"key": "v"}),
        ("after", ok.id, {"args": [1], "kwargs": {"key": "v"}}),
        ("outcome", ok.id, "finished", 1, None, True)]
    assert [c for c in calls if c[1] == bad.id] == [
        ("before", bad.id, "pgq_testjobs.fail", "default", 1, ["twice"], {}),
        ("failure", bad.id, ValueError, "twice", True),
        ("outcome", bad.id, "retried", 1, "ValueError", True),
        ("before", bad.id, "pgq_testjobs.fail", "default", 2, ["twice"], {}),
        ("failure", bad.id, ValueError, "twice", True),
        ("outcome", bad.id, "failed", 2, "ValueError", True)]
    assert len(calls) == 11


@pytest.mark.parametrize("cls", [Worker, SimpleWorker])
@pytest.mark.parametrize("func", [obs.request_id, obs.async_request_id])
def test_what_before_job_sets_in_a_context_variable_the_job_sees(cls: type[Worker], func: Any) -> None:
    jobs = [Queue().enqueue(func) for _ in range(3)]  # async ones: each in its own asyncio task
    cls(["default"], hooks=[obs.Recorder]).work(burst=True)
    assert [job.wait(timeout=5) for job in jobs] == [f"first:{job.id}" for job in jobs]


def test_async_jobs_call_their_hooks_once_in_the_event_loop_process(db: psycopg.Connection[Any]) -> None:
    """The first job of an async function is handed over by a job process to the event-loop process: its
    hooks run there, once, as every later job's do."""
    ok = [Queue("hooked").enqueue(aj.add, i, 1) for i in range(3)]
    bad = Queue("hooked").enqueue(aj.fail, "no luck")
    assert Worker(["hooked"], hooks=["pgq_obs_jobs.Recorder", obs.Second()]).work(burst=True)

    rows = notes(db)
    for i, job in enumerate(ok):
        assert [tag for job_id, tag, _ in rows if job_id == job.id] == [
            f"first:before:pgq_asyncjobs.add:hooked:1:[{i}, 1]:running",
            f"second:before:pgq_asyncjobs.add:hooked:1:[{i}, 1]:running",
            f"second:after:{i + 1}", f"first:after:{i + 1}",
            "first:outcome:pgq_asyncjobs.add:hooked:1:finished:None",
            "second:outcome:pgq_asyncjobs.add:hooked:1:finished:None"]
    assert [tag for job_id, tag, _ in rows if job_id == bad.id] == [
        "first:before:pgq_asyncjobs.fail:hooked:1:['no luck']:running",
        "second:before:pgq_asyncjobs.fail:hooked:1:['no luck']:running",
        "second:failure:ValueError:no luck:True", "first:failure:ValueError:no luck:True",
        "first:outcome:pgq_asyncjobs.fail:hooked:1:failed:ValueError",
        "second:outcome:pgq_asyncjobs.fail:hooked:1:failed:ValueError"]
    loop_pids = {pid for _, tag, pid in rows if tag.split(":")[1] in ("before", "after", "failure")}
    assert len(loop_pids) == 1 and os.getpid() not in loop_pids  # one process: the event loop's


def test_a_canceled_async_job_calls_on_failure_with_job_canceled(spawn_worker: Any,
                                                                 db: psycopg.Connection[Any]) -> None:
    job = Queue("hooked").enqueue(aj.wait_to_be_canceled, "doomed")
    spawn_worker("hooked", "--hooks", "pgq_obs_jobs.Recorder")
    wait_for(lambda: any(tag == "doomed:start" for _, tag, _ in notes(db)), 20, message="the job to start")
    assert job.cancel() is True
    wait_for(lambda: any(":failure:" in tag for job_id, tag, _ in notes(db) if job_id == job.id), 20,
             message="on_failure")
    assert [tag for job_id, tag, _ in notes(db) if job_id == job.id and ":failure:" in tag] == [
        f"first:failure:JobCanceled:job {job.id} was canceled:True"]


def test_a_raising_hook_is_logged_and_the_outcome_kept(caplog: pytest.LogCaptureFixture,
                                                       db: psycopg.Connection[Any]) -> None:
    ok = Queue().enqueue(tj.add, 1, 1)
    bad = Queue().enqueue(tj.fail, "the job's own error")
    with caplog.at_level(logging.ERROR, logger="pgqueue.worker"):
        assert SimpleWorker(["default"], hooks=[obs.Broken(), obs.Recorder()]).work(burst=True)
    assert ok.wait(timeout=5) == 2
    bad.refresh()
    assert bad.get_status() == JobStatus.FAILED and "ValueError: the job's own error" in (bad.exc_info or "")
    assert "broken" not in (bad.exc_info or "")
    logged = [r.getMessage() for r in caplog.records]
    for method in ("before_job", "after_job", "on_failure", "on_outcome", "on_worker_stop"):
        assert any(f"hook Broken.{method} raised RuntimeError: {method} is broken (ignored)" in m for m in logged), \
            (method, logged)
    # The other hooks were called all the same.
    tags = [tag for _, tag, _ in notes(db)]
    assert "first:after:2" in tags and "first:failure:ValueError:the job's own error:True" in tags
    assert "first:outcome:pgq_testjobs.add:default:1:finished:None" in tags and "first:stop" in tags


def test_a_raising_hook_in_a_worker_process_is_logged(spawn_worker: Any) -> None:
    worker = spawn_worker("default", "--hooks", "pgq_obs_jobs.Broken")
    job = Queue().enqueue(tj.add, 20, 22)
    assert job.wait(timeout=20) == 42
    wait_for(lambda: "hook Broken.before_job raised RuntimeError: before_job is broken (ignored)" in worker.output
             and "hook Broken.on_outcome raised RuntimeError" in worker.output, message="the hooks' errors logged")


def test_a_failing_on_worker_start_stops_the_worker_before_it_claims(db: psycopg.Connection[Any]) -> None:
    job = Queue().enqueue(tj.add, 1, 2)
    with pytest.raises(RuntimeError, match="no Sentry DSN"):
        Worker(["default"], hooks=[obs.Recorder(), obs.BrokenStart()]).work(burst=True)
    assert job.get_status(refresh=True) == JobStatus.QUEUED
    assert [tag for _, tag, _ in notes(db)] == ["first:start:True", "first:stop"]
    assert db.execute("SELECT count(*) FROM pgqueue.workers WHERE stopped_at IS NULL").fetchone() == (0,)


def test_a_killed_job_calls_no_job_hook_but_its_outcome_is_seen(db: psycopg.Connection[Any]) -> None:
    """A hard timeout kills the job's process: nothing runs there, the supervisor reports the outcome."""
    job = Queue().enqueue(tj.spin_forever, job_timeout=0.5)
    Worker(["default"], hooks=[obs.Recorder()]).work(burst=True)
    assert job.get_status(refresh=True) == JobStatus.FAILED
    tags = [tag for _, tag, _ in notes(db)]
    assert tags == ["first:start:True", "first:before:pgq_testjobs.spin_forever:default:1:[]:running",
                    "first:outcome:pgq_testjobs.spin_forever:default:1:failed:JobTimeoutError", "first:stop"]


def test_a_job_stopped_at_its_timeout_in_process_calls_on_failure(db: psycopg.Connection[Any]) -> None:
    job = Queue().enqueue(tj.spin_forever, job_timeout=0.2)
    SimpleWorker(["default"], hooks=[obs.Recorder()]).work(burst=True)
    assert job.get_status(refresh=True) == JobStatus.FAILED
    tags = [tag for _, tag, _ in notes(db)]
    assert tags[2].startswith("first:failure:JobTimeoutError:the job exceeded its timeout of 0.2 seconds"), tags


def test_a_rescue_is_told_to_the_hooks(db: psycopg.Connection[Any]) -> None:
    """A job held by a worker whose heartbeat stopped long ago: the next worker rescues it, then runs it."""
    lost = db.execute("INSERT INTO pgqueue.workers (name, hostname, pid, queues, concurrency, lease_seconds, "
                      "heartbeat_at) VALUES ('gone', 'h', 1, '{default}', 1, 1, now() - interval '1 hour') "
                      "RETURNING id").fetchone()[0]  # type: ignore[index]
    job = Queue().enqueue(tj.add, 4, 4, retry=1)
    db.execute("UPDATE pgqueue.jobs SET status = 'running', worker_id = %s, claim_count = 1, attempts = 1, "
               "started_at = now() WHERE id = %s", (lost, job.id))
    SimpleWorker(["default"], hooks=[obs.Recorder()]).work(burst=True)
    assert job.wait(timeout=5) == 8
    tags = [tag for _, tag, _ in notes(db)]
    assert "first:rescue:default:queued" in tags
    assert tags.index("first:rescue:default:queued") < tags.index("first:outcome:pgq_testjobs.add:default:2:"
                                                                  "finished:None")


def test_hooks_given_by_path_on_the_command_line(db: psycopg.Connection[Any]) -> None:
    job = Queue().enqueue(tj.add, 3, 4)
    done = run_cli("worker", "--burst", "--hooks", "pgq_obs_jobs.Recorder", "--hooks", "pgq_obs_jobs.Second")
    assert done.returncode == 0, done.stderr
    assert job.wait(timeout=5) == 7
    tags = [tag for _, tag, _ in notes(db)]
    assert tags[:2] == ["first:start:True", "second:start:True"] and tags[-2:] == ["first:stop", "second:stop"]
    assert tags.index("second:after:7") < tags.index("first:after:7")


@pytest.mark.parametrize(("hooks", "error", "says"), [
    (["no_such_module.Hooks"], ValueError, "hooks 'no_such_module.Hooks' cannot be imported"),
    (["pgq_obs_jobs.NotHooks"], TypeError, "is not worker hooks: it has none of the methods of pgqueue.Hooks"),
    ([object()], TypeError, "is not worker hooks"),
])
def test_what_is_not_hooks_is_refused_at_once(hooks: list[Any], error: type[Exception], says: str) -> None:
    with pytest.raises(error, match=says):
        Worker(["default"], hooks=hooks)


@pytest.mark.nodb
def test_a_bad_hooks_option_is_one_error_line_and_exit_2() -> None:
    result = run_cli("worker", "--burst", "--hooks", "pgq_obs_jobs.NotHooks",
                     "--dsn", "postgresql://nobody@127.0.0.1:1/none")
    assert result.returncode == 2, result
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "is not worker hooks" in errors[0], result.stderr
    assert "Traceback" not in result.stderr

