"""RQ's custom exception handlers (`--exception-handler`, `Worker(exception_handlers=[...])`): called in the
job's process with (job, exc_type, exc_value, traceback), in order; False stops the chain; a handler that
raises is logged and the job's failure is recorded all the same."""

from __future__ import annotations

from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest
from conftest import run_cli, wait_for

from pgqueue import Job, JobStatus, Queue, Retry, SimpleWorker, Worker


def runs(db: psycopg.Connection[Any]) -> list[tuple[str, str, int]]:
    return db.execute("SELECT job_id, tag, pid FROM pgq_test.runs ORDER BY at, tag").fetchall()


def test_handlers_run_in_the_jobs_process_in_order(spawn_worker: Any, db: psycopg.Connection[Any]) -> None:
    worker = spawn_worker("default", "--exception-handler", "rqparity_jobs.note_first",
                          "--exception-handler", "rqparity_jobs.note_second")
    job = Queue().enqueue(tj.fail_then_record, "ran")
    wait_for(lambda: job.get_status() == JobStatus.FAILED, message="the job to fail")
    [(_, ran, job_pid), (_, first, first_pid), (_, second, second_pid)] = runs(db)
    assert (ran, first, second) == ("ran", "first:RuntimeError:attempt failed: ran:True:True:running",
                                    "second:RuntimeError:attempt failed: ran:True:True:running")
    # The job's own process (a child of the worker), and the Job that get_current_job() returns there.
    assert first_pid == second_pid == job_pid != worker.proc.pid
    assert "RuntimeError: attempt failed: ran" in (Job.fetch(job.id).exc_info or "")

    ok = Queue().enqueue(tj.add, 1, 2)  # a job that succeeds calls no handler
    assert ok.wait(timeout=20) == 3
    assert len(runs(db)) == 3


def test_a_handler_returning_false_stops_the_chain(spawn_worker: Any, db: psycopg.Connection[Any]) -> None:
    spawn_worker("default", "--exception-handler", "rqparity_jobs.note_and_stop",
                 "--exception-handler", "rqparity_jobs.note_second")
    job = Queue().enqueue(tj.fail, "stop here")
    wait_for(lambda: job.get_status() == JobStatus.FAILED, message="the job to fail")
    assert [tag for _, tag, _ in runs(db)] == ["stop:ValueError:stop here:True:True:running"]


def test_a_handler_that_raises_is_logged_and_loses_nothing(spawn_worker: Any, db: psycopg.Connection[Any]) -> None:
    worker = spawn_worker("default", "--exception-handler", "rqparity_jobs.raising_handler",
                          "--exception-handler", "rqparity_jobs.note_second")
    job = Queue().enqueue(tj.fail, "the job's own error")
    wait_for(lambda: job.get_status() == JobStatus.FAILED, message="the job to fail")
    job.refresh()
    assert "ValueError: the job's own error" in (job.exc_info or "") and "broken" not in (job.exc_info or "")
    assert [tag for _, tag, _ in runs(db)] == ["second:ValueError:the job's own error:True:True:running"]
    wait_for(lambda: "exception handler raising_handler raised RuntimeError: the handler itself is broken"
             in worker.output, message="the handler's error in the log")
    assert Queue().enqueue(tj.add, 2, 3).wait(timeout=20) == 5  # the worker serves on


def test_each_failed_attempt_calls_the_handlers(db: psycopg.Connection[Any]) -> None:
    job = Queue().enqueue(tj.fail, "again", retry=Retry(max=1))
    Worker(["default"], exception_handlers=["rqparity_jobs.note_first"]).work(burst=True)
    assert job.get_status() == JobStatus.FAILED
    assert [tag for _, tag, _ in runs(db)] == ["first:ValueError:again:True:True:running"] * 2


def test_simple_worker_calls_python_handlers_in_process() -> None:
    calls: list[tuple[Any, ...]] = []

    def handler(job: Job, exc_type: type[BaseException], exc_value: BaseException, tb: Any) -> None:
        calls.append((job.id, job.func_name, job.args, exc_type, str(exc_value), tb.tb_frame is not None))

    job = Queue().enqueue(tj.fail, "in process")
    assert SimpleWorker(["default"], exception_handlers=[handler]).work(burst=True)
    assert calls == [(job.id, "pgq_testjobs.fail", ["in process"], ValueError, "in process", True)]
    assert job.get_status() == JobStatus.FAILED


@pytest.mark.parametrize(("handlers", "error", "says"), [
    (["no_such_module.handler"], ValueError, "exception handler 'no_such_module.handler' cannot be imported"),
    (["rqparity_jobs.no_such_handler"], ValueError, "has no attribute 'no_such_handler'"),
    (["rqparity_jobs.not_callable"], ValueError, "'rqparity_jobs.not_callable' is not callable"),
    ([42], TypeError, "an exception handler must be callable"),
])
def test_a_handler_that_cannot_be_called_is_refused_at_once(handlers: list[Any], error: type[Exception],
                                                           says: str) -> None:
    with pytest.raises(error, match=says):
        Worker(["default"], exception_handlers=handlers)


@pytest.mark.nodb
@pytest.mark.parametrize(("args", "says"), [
    (["--exception-handler", "no_such_module.handler"], "exception handler 'no_such_module.handler' cannot be"),
    (["--exception-handler", "rqparity_jobs.not_callable"], "is not callable"),
    (["--disable-default-exception-handler"], "--disable-default-exception-handler has no pgqueue equivalent"),
    (["-d"], "failure is always recorded"),
])
def test_bad_handler_options_are_one_error_line_and_exit_2(args: list[str], says: str) -> None:
    result = run_cli("worker", "--burst", *args, "--dsn", "postgresql://nobody@127.0.0.1:1/none")
    assert result.returncode == 2, result
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and says in errors[0], result.stderr
