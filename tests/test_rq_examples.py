"""RQ's own documentation examples, run against pgqueue with only their import lines changed.

Each test is one example of RQ's docs (rq/rq, docs/docs/*.md: index, jobs, results, job_registries, workers,
exceptions, scheduling, testing, monitoring, connections), its code as RQ writes it. What changed:

- the import lines: ``from rq ...`` becomes ``from pgqueue ...``, ``from redis import Redis`` becomes
  ``from pgqueue import Connection as Redis`` (see docs/coming-from-rq.md), and ``from somewhere import f``
  imports the job functions RQ's docs define or assume from ``rqdocs`` (tests/rqdocs/), where workers import
  them. A function RQ's example defines inline moves there too (a worker cannot import it from a test);
- a line that only waits for a worker running elsewhere (``time.sleep(2)``) is replaced by what runs one
  and waits for it: a real ``pgqueue worker --burst`` (:func:`a_worker_runs`), or ``wait_for`` on the job
  with a worker the test started before the example; each such line says so (``# not ported: ...``);
- a name an example uses without defining it (``redis``, ``q``, ``foo``) is defined just before it, marked
  ``# (set up: ...)``, and what the example assumes exists (a job ``my_id``) is made first;
- the command line: ``rq`` becomes ``pgqueue``, and a Redis URL (``-u redis://...``) the test database's.

Where pgqueue differs on purpose (no serializers, no job classes, JSON instead of pickle, timezone-aware
times), the test runs the example's lines up to the one that differs and shows the clear error it raises.
The assertions after an example check what its comments and prints say.

Not ported (nothing in pgqueue to port them to; docs/coming-from-rq.md lists each with what to use):
``Job.create`` / ``q.enqueue_job`` and ``Job.create(..., result_ttl=600, ttl=43)`` (jobs.md), batches
(``rq.batch``, index.md), ``Dependency(allow_failure=...)`` (index.md), ``send_stop_job_command``,
``send_shutdown_command``, ``send_kill_horse_command`` (jobs.md, workers.md), ``cancel_job(...,
enqueue_dependents=True)`` (jobs.md), ``Repeat`` (scheduling.md), ``rq cron`` / ``CronScheduler``
(cron.md; pgqueue has ``@periodic``), ``rq worker-pool`` (workers.md; ``pgqueue worker --concurrency N``),
``rq worker -c settings`` and ``-w`` worker classes (workers.md), the ``Connection`` context manager and
``push_connection`` / ``pop_connection`` (connections.md; removed in RQ 2.0), Sentinel settings
(connections.md), ``rq-dashboard`` (monitoring.md).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import run_cli, wait_for

from pgqueue import Job as PgJob
from pgqueue import JobStatus, PgQueueError
from pgqueue import Queue as PgQueue
from pgqueue import SimpleWorker as PgSimpleWorker
from pgqueue import Worker as PgWorker


def a_worker_runs(*args: str) -> str:
    """What stands in for an example's ``time.sleep(...)`` while a worker runs elsewhere: a real ``pgqueue
    worker ARGS --burst`` (queues and options) runs the jobs now, and this returns its log once it has
    exited."""
    result = run_cli("worker", *args, "--burst")
    assert result.returncode == 0, result.stderr
    return result.stderr


def tags(db: psycopg.Connection[Any]) -> list[str]:
    """What the jobs and callbacks of rqdocs recorded, in order."""
    return [r[0] for r in db.execute("SELECT tag FROM pgq_test.runs ORDER BY at")]


# ==== index.md: queues, enqueueing, dependencies, callbacks, the decorator, bypassing workers ===============
def test_index_enqueue_then_read_the_result_once_a_worker_ran_it(capsys: pytest.CaptureFixture[str]) -> None:
    from pgqueue import Queue  # RQ: from rq import Queue
    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from rqdocs.tasks import count_words_at_url  # RQ: from somewhere import count_words_at_url
    # RQ: import time (only the line below used it)

    # Tell RQ what Redis connection to use
    redis_conn = Redis()
    q = Queue(connection=redis_conn)  # no args implies the default queue

    # Delay execution of count_words_at_url('http://nvie.com')
    job = q.enqueue(count_words_at_url, 'http://nvie.com')
    print(job.result)   # => None  # Changed to job.return_value() in RQ >= 1.12.0

    # Now, wait a while, until the worker is finished
    a_worker_runs("default")  # not ported: time.sleep(2), while a worker runs elsewhere
    print(job.result)   # => 889  # Changed to job.return_value() in RQ >= 1.12.0

    assert capsys.readouterr().out == "None\n889\n"
    assert job.return_value() == 889


def test_index_a_queue_by_name() -> None:
    from pgqueue import Queue  # RQ: from rq import Queue
    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from rqdocs.tasks import count_words_at_url  # RQ: from somewhere import count_words_at_url

    redis_conn = Redis()  # (set up: as the example before)
    q = Queue('low', connection=redis_conn)
    q.enqueue(count_words_at_url, 'http://nvie.com')

    assert len(Queue('low')) == 1 and len(Queue()) == 0


def test_index_explicit_args_and_kwargs_leave_the_options_to_enqueue() -> None:
    from pgqueue import Queue  # RQ: from rq import Queue
    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from rqdocs.tasks import count_words_at_url  # RQ: from somewhere import count_words_at_url

    redis_conn = Redis()  # (set up: as the example before)
    q = Queue('low', connection=redis_conn)
    q.enqueue(count_words_at_url,
              ttl=30,  # This ttl will be used by RQ
              args=('http://nvie.com',),
              kwargs={
                  'description': 'Function description', # This is passed on to count_words_at_url
                  'ttl': 15  # This is passed on to count_words_at_url function
              })

    job = q.jobs[0]
    assert (job.ttl, job.args, job.kwargs) == (30, ['http://nvie.com'], {'description': 'Function description',
                                                                         'ttl': 15})


def test_index_a_function_named_by_its_dotted_path_is_not_imported_by_the_enqueuer() -> None:
    from pgqueue import Queue  # RQ: from rq import Queue
    from pgqueue import Connection as Redis  # RQ: from redis import Redis

    redis_conn = Redis()  # (set up: as the example before)
    q = Queue('low', connection=redis_conn)
    q.enqueue('my_package.my_module.my_func', 3, 4)

    job = q.jobs[0]
    assert (job.func_name, job.args) == ('my_package.my_module.my_func', [3, 4])  # no such module here: never run


def test_index_enqueue_many() -> None:
    from pgqueue import Queue  # RQ: from rq import Queue
    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from rqdocs.tasks import count_words_at_url  # RQ: from somewhere import count_words_at_url

    q = Queue(connection=Redis())  # (set up: as the examples before)
    jobs = q.enqueue_many(
      [
        Queue.prepare_data(count_words_at_url, ('http://nvie.com',), job_id='my_job_id'),
        Queue.prepare_data(count_words_at_url, ('http://nvie.com',), job_id='my_other_job_id'),
      ]
    )

    assert [job.id for job in jobs] == ['my_job_id', 'my_other_job_id']
    a_worker_runs("default")
    assert [job.return_value() for job in jobs] == [889, 889]


def test_index_enqueue_many_in_a_redis_pipeline_is_refused_saying_what_to_use() -> None:
    from pgqueue import Queue  # RQ: from rq import Queue
    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from rqdocs.tasks import count_words_at_url  # RQ: from somewhere import count_words_at_url

    q = Queue(connection=Redis())  # (set up: as the examples before)
    with pytest.raises(PgQueueError, match=r"no Redis pipeline: enqueue_many\(\) already writes all its jobs in one "
                                           r"transaction .* enqueue_many\(items, connection=conn\)"):
        with q.connection.pipeline() as pipe:
          jobs = q.enqueue_many(
            [
              Queue.prepare_data(count_words_at_url, ('http://nvie.com',), job_id='my_job_id'),
              Queue.prepare_data(count_words_at_url, ('http://nvie.com',), job_id='my_other_job_id'),
            ],
            pipeline=pipe
          )
          pipe.execute()
    assert len(q) == 0 and 'jobs' not in locals()


def test_index_a_job_runs_after_the_job_it_depends_on(db: psycopg.Connection[Any]) -> None:
    from pgqueue import Queue  # RQ: from rq import Queue
    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from rqdocs.tasks import generate_report, send_report  # RQ: (assumed defined)

    my_redis_conn = Redis()  # (set up: the example's connection)
    q = Queue('low', connection=my_redis_conn)
    report_job = q.enqueue(generate_report)
    q.enqueue(send_report, depends_on=report_job)

    assert [j.func_name for j in q.jobs] == ["rqdocs.tasks.generate_report"] and q.deferred_job_registry.count == 1
    a_worker_runs("low")
    assert tags(db) == ["generate_report", "send_report"]


def test_index_a_job_runs_after_all_the_jobs_it_depends_on(db: psycopg.Connection[Any]) -> None:
    from pgqueue import Queue  # RQ: from rq import Queue
    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from rqdocs.tasks import bar, baz, foo  # RQ: (assumed defined)

    redis = Redis()  # (set up: the example's connection)
    queue = Queue('low', connection=redis)
    foo_job = queue.enqueue(foo)
    bar_job = queue.enqueue(bar)
    baz_job = queue.enqueue(baz, depends_on=[foo_job, bar_job])

    assert baz_job.get_status() == JobStatus.DEFERRED
    a_worker_runs("low")
    assert tags(db)[-1] == "baz" and sorted(tags(db)) == ["bar", "baz", "foo"]


def test_index_callbacks_run_after_the_job(db: psycopg.Connection[Any]) -> None:
    from pgqueue import Queue  # RQ: from rq import Queue
    from rqdocs.tasks import report_failure, report_stopped, report_success, say_hello  # RQ: (defined on the page)

    queue = Queue()  # (set up: the example's queue)
    queue.enqueue(say_hello, on_success=report_success, on_failure=report_failure, on_stopped=report_stopped)

    a_worker_runs("default")
    assert tags(db) == ["report_success:Hello World!"]


def test_index_a_failure_callback_gets_the_exception(db: psycopg.Connection[Any]) -> None:
    """The line is RQ 1.11's Dependency example (``job_1 = ...``); its Dependency part is not ported."""
    from pgqueue import Queue  # RQ: from rq import Queue
    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from rqdocs.tasks import div_by_zero, report_failure, report_success  # RQ: (defined on the page)

    queue = Queue(connection=Redis())
    job_1 = queue.enqueue(div_by_zero, on_success=report_success, on_failure=report_failure)

    assert job_1.get_status() == JobStatus.QUEUED
    a_worker_runs("default")
    assert tags(db) == ["report_failure:ZeroDivisionError:division by zero"]


def test_index_callback_objects_with_their_timeouts(db: psycopg.Connection[Any]) -> None:
    from pgqueue import Callback  # RQ: from rq import Callback
    from pgqueue import Queue  # RQ: from rq import Queue
    from rqdocs.tasks import report_failure, report_stopped, report_success, say_hello  # RQ: (defined on the page)

    queue = Queue()  # (set up: the example's queue)
    queue.enqueue(say_hello,
                  on_success=Callback(report_success),  # default callback timeout (60 seconds)
                  on_failure=Callback(report_failure, timeout=10), # 10 seconds timeout
                  on_stopped=Callback(report_stopped, timeout="2m")) # 2 minute timeout

    assert db.execute("SELECT callbacks FROM pgqueue.jobs").fetchone() == ({
        "success": {"func": "rqdocs.tasks.report_success", "timeout": 60},
        "failure": {"func": "rqdocs.tasks.report_failure", "timeout": 10},
        "stopped": {"func": "rqdocs.tasks.report_stopped", "timeout": 120}},)
    a_worker_runs("default")
    assert tags(db) == ["report_success:Hello World!"]


# `rq enqueue` examples (index.md, "CLI Enqueueing"): each line `rq enqueue path.to.func ARG` and the call
# RQ's docs say it makes. pgqueue does not import the function at enqueue time either, so path.to.func stays.
FILE_TEXT, FILE_JSON = "the file's text\n", {"from": "a JSON file"}


@pytest.mark.parametrize(("argument", "args", "kwargs"), [
    ("abc", ["abc"], {}),
    ("abc=def", [], {"abc": "def"}),
    (':{"json": "abc"}', [{"json": "abc"}], {}),
    ('key:={"json": "abc"}', [], {"key": {"json": "abc"}}),
    ("%1, 2", [[1, 2]], {}),  # (1, 2): a tuple is stored as a JSON array
    ("%None", [None], {}),
    ("%True", [True], {}),
    ("key%=(1, 2)", [], {"key": [1, 2]}),
    ('key%={"foo": True}', [], {"key": {"foo": True}}),
    ("@path/to/file", [FILE_TEXT], {}),
    ("key=@path/to/file", [], {"key": FILE_TEXT}),
    (":@path/to/file.json", [FILE_JSON], {}),
    ("key:=@path/to/file.json", [], {"key": FILE_JSON}),
])
def test_index_rq_enqueue_argument_notation(argument: str, args: list[Any], kwargs: dict[str, Any], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "path" / "to").mkdir(parents=True)
    (tmp_path / "path" / "to" / "file").write_text(FILE_TEXT)
    (tmp_path / "path" / "to" / "file.json").write_text('{"from": "a JSON file"}')
    monkeypatch.chdir(tmp_path)
    result = run_cli("enqueue", "path.to.func", argument)  # RQ: rq enqueue path.to.func ARGUMENT
    assert result.returncode == 0, result.stderr
    job = PgJob.fetch(result.stdout.strip())
    assert (job.func_name, job.args, job.kwargs) == ("path.to.func", args, kwargs)


def test_index_working_with_queues(capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(3):  # (set up: what the example looks at, with a job my_id)
        PgQueue().enqueue("rqdocs.tasks.fib", i, job_id="my_id" if i == 1 else None)

    from pgqueue import Queue  # RQ: from rq import Queue
    from pgqueue import Connection as Redis  # RQ: from redis import Redis

    redis_conn = Redis()
    q = Queue(connection=redis_conn)

    # Getting the number of jobs in the queue
    # Note: Only queued jobs are counted, not including deferred ones
    print(len(q))

    # Retrieving jobs
    queued_job_ids = q.job_ids # Gets a list of job IDs from the queue
    queued_jobs = q.jobs # Gets a list of enqueued job instances
    job = q.fetch_job('my_id') # Returns job having ID "my_id"

    # Emptying a queue, this will delete all jobs in this queue
    q.empty()

    # Deleting a queue
    q.delete(delete_jobs=True) # Passing in `True` will remove all jobs in the queue
    # queue is now unusable. It can be recreated by enqueueing jobs to it.

    assert capsys.readouterr().out == "3\n"
    assert queued_job_ids == [j.id for j in queued_jobs] and queued_job_ids[1] == job.id == "my_id"
    assert len(q) == 0 and not PgJob.exists("my_id")
    assert q.enqueue("rqdocs.tasks.fib", 8).get_position() == 0  # pgqueue's queue is usable again at once


def test_index_the_job_decorator(capsys: pytest.CaptureFixture[str]) -> None:
    from rqdocs.decorated import add  # RQ: @job('low', connection=my_redis_conn, timeout=5) def add(x, y) above

    job = add.delay(3, 4)
    a_worker_runs("low")  # not ported: time.sleep(1), while a worker runs elsewhere
    print(job.result)  # Changed to job.return_value() in RQ >= 1.12.0

    assert capsys.readouterr().out == "7\n"
    assert (job.queue, job.timeout) == ("low", 5)
    assert add(3, 4) == 7  # still a plain function


def test_index_bypassing_workers_runs_the_job_at_once() -> None:
    from pgqueue import Queue  # RQ: from rq import Queue
    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from rqdocs.tasks import fib  # RQ: (assumed defined)

    my_redis_conn = Redis()  # (set up: the example's connection)
    # RQ's example is an interactive session: >>> q = ..., >>> job = ..., >>> job.result, 21
    q = Queue('low', is_async=False, connection=my_redis_conn)
    job = q.enqueue(fib, 8)
    assert job.result == 21


# ==== jobs.md ================================================================================================
def test_jobs_job_creation_and_its_id(capsys: pytest.CaptureFixture[str]) -> None:
    from pgqueue import Queue  # RQ: from rq import Queue
    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from rqdocs.tasks import count_words_at_url  # RQ: from somewhere import count_words_at_url

    redis_conn = Redis()
    q = Queue(connection=redis_conn)  # no args implies the default queue

    # Delay execution of count_words_at_url('http://nvie.com')
    job = q.enqueue(count_words_at_url, 'http://nvie.com')
    print('Job id: %s' % job.id)

    job = q.enqueue(count_words_at_url, 'http://nvie.com', job_id='my_job_id')

    first = q.job_ids[0]
    assert capsys.readouterr().out == f"Job id: {first}\n" and job.id == 'my_job_id' and len(q) == 2


def test_jobs_retrieving_a_job_and_its_attributes(capsys: pytest.CaptureFixture[str]) -> None:
    PgQueue().enqueue("rqdocs.tasks.count_words_at_url", "http://nvie.com", job_id="my_job_id")  # (set up)

    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from pgqueue.job import Job  # RQ: from rq.job import Job

    redis = Redis()
    job = Job.fetch('my_job_id', connection=redis)
    print('Status: %s' % job.get_status())

    assert capsys.readouterr().out == "Status: queued\n"
    # "Some interesting job attributes include" (all but job.last_heartbeat, which pgqueue has not):
    a_worker_runs("default")
    job.refresh()
    assert (job.get_status(refresh=True), job.get_meta(refresh=True), job.origin, job.func_name, job.args,
            job.kwargs, job.result, job.exc_info) == (
        "finished", {}, "default", "rqdocs.tasks.count_words_at_url", ["http://nvie.com"], {}, 889, None)
    assert job.enqueued_at <= job.started_at <= job.ended_at and job.worker_name  # type: ignore[operator]


def test_jobs_fetch_many(capsys: pytest.CaptureFixture[str]) -> None:
    for job_id in ("foo_id", "bar_id"):  # (set up)
        PgQueue().enqueue("rqdocs.tasks.fib", 1, job_id=job_id)

    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from pgqueue.job import Job  # RQ: from rq.job import Job
    redis = Redis()  # (set up: as the example before)

    jobs = Job.fetch_many(['foo_id', 'bar_id'], connection=redis)
    for job in jobs:
        print('Job %s: %s' % (job.id, job.func_name))

    assert capsys.readouterr().out == "Job foo_id: rqdocs.tasks.fib\nJob bar_id: rqdocs.tasks.fib\n"


def test_jobs_canceling_a_job(capsys: pytest.CaptureFixture[str]) -> None:
    PgQueue().enqueue("rqdocs.tasks.fib", 1, job_id="my_job_id")  # (set up)

    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from pgqueue.job import Job  # RQ: from rq.job import Job
    from pgqueue.registry import CanceledJobRegistry  # RQ: from rq.registry import CanceledJobRegistry
    from pgqueue import Queue  # noqa: F401  # RQ: from .queue import Queue (unused there too)

    redis = Redis()
    job = Job.fetch('my_job_id', connection=redis)
    job.cancel()

    job.get_status()  # Job status is CANCELED

    registry = CanceledJobRegistry(job.origin, connection=job.connection)
    print(job in registry)  # Job is in CanceledJobRegistry

    assert capsys.readouterr().out == "True\n" and job.get_status() == JobStatus.CANCELED
    assert PgJob.exists("my_job_id")  # "job.cancel() does not delete the job itself", here either


def test_jobs_a_custom_serializer_is_refused_saying_pgqueue_stores_json() -> None:
    from pgqueue import Queue  # RQ: from rq import Queue
    from pgqueue.job import Job  # RQ: from rq.job import Job
    from rqdocs.serializers import JSONSerializer  # RQ: from rq.serializers import JSONSerializer
    from pgqueue import Connection as Redis  # (set up: the example's connection)
    connection = Redis()  # (set up)

    with pytest.raises(TypeError, match=r"Job\(serializer=JSONSerializer\): pgqueue stores arguments, results and "
                                        r"meta as JSON \(jsonb\).*leave serializer out"):
        job = Job(id="my-job", connection=connection, serializer=JSONSerializer)
    with pytest.raises(TypeError, match=r"Queue\(serializer=JSONSerializer\): pgqueue stores arguments"):
        queue = Queue(connection=connection, serializer=JSONSerializer)
    assert "job" not in locals() and "queue" not in locals()


def test_jobs_the_current_job_from_within_the_job_function(capsys: pytest.CaptureFixture[str]) -> None:
    from pgqueue import Queue, SimpleWorker, get_current_job  # (the test's: it runs the job in this process)
    from rqdocs.current_job import add  # RQ: def add(x, y): job = get_current_job(); print(...)

    job = Queue().enqueue(add, 1, 2)
    SimpleWorker(["default"]).work(burst=True)

    assert capsys.readouterr().out == f"Current job: {job.id}\n" and job.return_value() == 3
    assert get_current_job() is None  # "outside of the context of a job function will return None"


def test_jobs_storing_arbitrary_data_on_jobs_while_they_run(spawn_worker: Any) -> None:
    from pgqueue import Queue  # (the test's)
    from rqdocs.meta import add  # RQ: def add(x, y): job.meta['handled_by'] = socket.gethostname(); ...

    spawn_worker("default")
    job = Queue().enqueue(add, 1, 2)

    wait_for(lambda: job.get_meta().get("handled_by"), message="the job to save its meta")
    assert job.get_meta() == {"handled_by": socket.gethostname()}
    assert job.get_status() == JobStatus.RUNNING  # seen while the job does more work (time.sleep(1))
    assert job.latest_result(timeout=10).return_value == 3  # type: ignore[union-attr]


def test_jobs_time_to_live() -> None:
    from pgqueue import Queue  # RQ: from rq import Queue
    from rqdocs.tasks import count_words_at_url  # RQ: from somewhere import count_words_at_url
    q = Queue()  # (set up)
    # Not ported: job = Job.create(func=say_hello, result_ttl=600, ttl=43) (no Job.create in pgqueue)

    # or when queueing a new job:
    job = q.enqueue(count_words_at_url,
                    'http://nvie.com',
                    result_ttl=600,  # how long to keep the job (if successful) and its results
                    ttl=43  # maximum queued time
                   )

    assert (job.result_ttl, job.ttl) == (600, 43)


def test_jobs_job_position_in_queue() -> None:
    from pgqueue import Queue  # RQ: from rq import Queue
    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from rqdocs.tasks import say_hello  # RQ: from hello import say_hello

    redis_conn = Redis()
    q = Queue(connection=redis_conn)

    job = q.enqueue(say_hello)
    job2 = q.enqueue(say_hello)

    assert job2.get_position() == 1  # RQ: job2.get_position()  # returns 1

    assert q.get_job_position(job) == 0  # RQ: q.get_job_position(job)  # return 0


def test_jobs_failed_jobs_go_to_the_failed_job_registry_and_can_be_requeued() -> None:
    from pgqueue import Queue, Worker  # RQ: from rq import Queue (and Worker, which the example uses)
    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from pgqueue.job import Job  # noqa: F401  # RQ: from rq.job import Job (unused there too)
    from rqdocs.tasks import div_by_zero  # RQ: def div_by_zero(x): return x / 0, defined in the example

    connection = Redis()
    queue = Queue(connection=connection)
    job = queue.enqueue(div_by_zero, 1)
    registry = queue.failed_job_registry

    worker = Worker([queue])
    worker.work(burst=True)

    assert len(registry) == 1  # Failed jobs are kept in FailedJobRegistry

    # The rest is the example's first version (RQ <= 1.x docs):
    registry.requeue(job)  # Puts job back in its original queue

    assert len(registry) == 0

    assert queue.count == 1


def test_jobs_failure_ttl() -> None:
    from pgqueue import Queue  # RQ: from rq import Queue
    from rqdocs.tasks import foo_job  # RQ: (assumed defined)
    queue = Queue()  # (set up)

    job = queue.enqueue(foo_job, failure_ttl=300)  # 5 minutes in seconds

    assert job.failure_ttl == 300


def test_jobs_requeuing_failed_jobs() -> None:
    for _ in range(2):  # (set up: failed jobs)
        PgQueue().enqueue("rqdocs.tasks.foo_job")
    PgSimpleWorker(["default"]).work(burst=True)

    from pgqueue import Queue  # RQ: from rq import Queue
    from pgqueue import Connection as Redis  # RQ: from redis import Redis

    connection = Redis()
    queue = Queue(connection=connection)
    registry = queue.failed_job_registry

    # This is how to get jobs from FailedJobRegistry
    for job_id in registry.get_job_ids():
        registry.requeue(job_id)  # Puts job back in its original queue

    assert len(registry) == 0  # Registry will be empty when job is requeued

    assert len(queue) == 2


def test_jobs_requeuing_failed_jobs_from_the_command_line(dsn: str) -> None:
    for job_id in ("foo_job_id", "bar_job_id", "other_job_id"):  # (set up: failed jobs of myqueue)
        PgQueue("myqueue").enqueue("rqdocs.tasks.foo_job", job_id=job_id)
    PgQueue("elsewhere").enqueue("rqdocs.tasks.foo_job", job_id="elsewhere_id")
    PgSimpleWorker(["myqueue", "elsewhere"]).work(burst=True)

    # This will requeue foo_job_id and bar_job_id from myqueue's failed job registry
    some = run_cli("requeue", "--queue", "myqueue", "-u", dsn, "foo_job_id", "bar_job_id", "elsewhere_id")
    assert some.returncode == 1 and some.stdout == "Requeued 2 job(s)\n"  # elsewhere_id is not myqueue's
    assert some.stderr == "Not failed in queue myqueue or not found: elsewhere_id\n"
    assert PgQueue("myqueue").job_ids == ["foo_job_id", "bar_job_id"]

    # This command will requeue all jobs in myqueue's failed job registry
    every = run_cli("requeue", "--queue", "myqueue", "-u", dsn, "--all")
    assert every.returncode == 0 and every.stdout == "Requeued 1 job(s)\n"
    assert len(PgQueue("myqueue")) == 3 and PgJob.fetch("elsewhere_id").get_status() == JobStatus.FAILED


# ==== results.md ===============================================================================================
@pytest.fixture
def my_id() -> PgJob:
    """The finished job ``my_id`` that results.md's examples fetch."""
    job = PgQueue().enqueue("rqdocs.tasks.count_words_at_url", "http://nvie.com", job_id="my_id")
    PgSimpleWorker(["default"]).work(burst=True)
    return job


def test_results_the_latest_result(my_id: PgJob, capsys: pytest.CaptureFixture[str]) -> None:
    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from pgqueue.job import Job  # RQ: from rq.job import Job
    redis = Redis()  # (set up)

    job = Job.fetch(id='my_id', connection=redis)
    result = job.latest_result()  #  returns Result(id=uid, type=SUCCESSFUL)
    if result.type == result.Type.SUCCESSFUL:
        print(result.return_value)
    elif result.type == result.Type.FAILED:
        print(result.exc_string)

    job = Job.fetch(id='my_id', connection=redis)
    print(job.return_value())  # Shortcut for job.latest_result().return_value

    job = Job.fetch(id='my_id', connection=redis)
    for result in job.results():
        print(result.created_at, result.type)

    latest = my_id.latest_result()
    assert latest is not None and capsys.readouterr().out == f"889\n889\n{latest.created_at} {latest.type}\n"


def test_results_latest_result_waits_for_the_job(spawn_worker: Any) -> None:
    from pgqueue import Queue  # (set up: the example's queue)
    from rqdocs.tasks import sleep_for_a_second as sleep_for_10_seconds  # (it is one second here, to keep it short)
    queue = Queue()
    spawn_worker("default")

    job = queue.enqueue(sleep_for_10_seconds)
    result = job.latest_result(timeout=60)  # Will hang for about 10 seconds.

    assert result is not None and (result.type, result.return_value) == (result.Type.SUCCESSFUL, "slept")


def test_results_result_ttl() -> None:
    from pgqueue import Queue  # (set up)
    from rqdocs.tasks import foo, func_without_rv
    q = Queue()

    # RQ's example is an indented block, as here:
    a = q.enqueue(foo)  # result expires after 500 secs (the default)
    b = q.enqueue(foo, result_ttl=86400)  # result expires after 1 day
    c = q.enqueue(foo, result_ttl=0)  # result gets deleted immediately
    d = q.enqueue(foo, result_ttl=-1)  # result never expires--you should delete jobs manually
    e = q.enqueue(func_without_rv, result_ttl=500)  # job kept explicitly

    # pgqueue differs on the default: a finished job is kept until told otherwise (None), not for 500 s.
    assert [j.result_ttl for j in (a, b, c, d, e)] == [None, 86400, 0, None, 500]


def test_results_a_job_that_returns_retry_is_not_retried_yet_and_fails_with_a_clear_error() -> None:
    """RQ 2.1's ``return Retry(...)`` from a job (beta in RQ): not in pgqueue yet. Such a job's result cannot be
    stored, so the job fails saying why; give ``retry=Retry(...)`` to enqueue instead, or raise."""
    from pgqueue import Queue  # (set up)
    from rqdocs.results import count_words_at_url  # RQ: def count_words_at_url(url, max=1, interval=60): ...
    queue = Queue()

    job = queue.enqueue(count_words_at_url, 'https://python-rq.org', max=3, interval=60)

    a_worker_runs("default")
    job.refresh()
    assert (job.status, job.attempts) == (JobStatus.FAILED, 1)
    assert job.exc_info is not None and "pgqueue.job.Retry is not JSON-serialisable" in job.exc_info


def test_results_job_timeouts() -> None:
    from pgqueue import Queue  # RQ: from rq import Queue
    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from rqdocs.tasks import mytask, really_really_slow
    foo, qux = "foo", "qux"  # (set up: the example's values)

    q = Queue(connection=Redis())
    q.enqueue(mytask, args=(foo,), kwargs={'bar': qux}, job_timeout=600)  # 10 mins

    # High prio jobs should end in 8 secs, while low prio
    # work may take up to 10 mins
    high = Queue('high', connection=Redis(), default_timeout=8)  # 8 secs
    low = Queue('low', connection=Redis(), default_timeout=600)  # 10 mins

    # Individual jobs can still override these defaults
    low.enqueue(really_really_slow, job_timeout=3600)  # 1 hr

    job = q.jobs[0]
    assert (job.timeout, job.args, job.kwargs) == (600, ["foo"], {"bar": "qux"})
    assert high.enqueue(really_really_slow).timeout == 8 and low.jobs[0].timeout == 3600
    a_worker_runs("default")
    assert job.return_value() == {"foo": "foo", "bar": "qux"}


# ==== job_registries.md ========================================================================================
def test_registries_the_started_job_registry(spawn_worker: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from rqdocs import offline_requests
    spawn_worker("default", env={"RQDOCS_SLOW_URL": "http://nvie.com"})  # (set up: a worker; the page is slow)

    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from pgqueue import Queue  # RQ: from rq import Queue
    from pgqueue.registry import StartedJobRegistry  # RQ: from rq.registry import StartedJobRegistry
    from rqdocs.tasks import count_words_at_url  # RQ: from somewhere import count_words_at_url
    # RQ: import time (only the line below used it)

    redis = Redis()
    queue = Queue(connection=redis)
    job = queue.enqueue(count_words_at_url, 'http://nvie.com')

    # get StartedJobRegistry by queue
    registry = StartedJobRegistry(queue=queue)

    # or get StartedJobRegistry by queue name and connection
    registry2 = StartedJobRegistry(name='my_queue', connection=redis)

    # sleep for a moment while job is taken off the queue
    wait_for(lambda: job.is_started)  # not ported: time.sleep(0.1), which is not sure to be long enough

    print('Queue associated with the registry: %s' % registry.get_queue())
    print('Number of jobs in registry %s' % registry.count)

    # get the list of ids for the jobs in the registry
    print('IDs in registry %s' % registry.get_job_ids())

    # test if a job is in the registry using the job instance or job id
    print('Job in registry %s' % (job in registry))
    print('Job in registry %s' % (job.id in registry))

    assert capsys.readouterr().out.splitlines() == [
        "Queue associated with the registry: Queue('default')", "Number of jobs in registry 1",
        f"IDs in registry ['{job.id}']", "Job in registry True", "Job in registry True"]
    assert registry2.name == "my_queue" and registry2.count == 0
    offline_requests.release("http://nvie.com")
    assert job.latest_result(timeout=10).return_value == 889  # type: ignore[union-attr]
    assert job not in registry and registry.count == 0


def test_registries_from_the_queue() -> None:
    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from pgqueue import Queue  # RQ: from rq import Queue
    from pgqueue import registry as r  # (the test's, to check the classes)

    redis = Redis()
    queue = Queue(connection=redis)

    queue.started_job_registry  # Returns StartedJobRegistry  # noqa: B018
    queue.deferred_job_registry   # Returns DeferredJobRegistry  # noqa: B018
    queue.finished_job_registry  # Returns FinishedJobRegistry  # noqa: B018
    queue.failed_job_registry  # Returns FailedJobRegistry  # noqa: B018
    queue.scheduled_job_registry  # Returns ScheduledJobRegistry  # noqa: B018

    assert [type(g) for g in (queue.started_job_registry, queue.deferred_job_registry, queue.finished_job_registry,
                              queue.failed_job_registry, queue.scheduled_job_registry)] == [
        r.StartedJobRegistry, r.DeferredJobRegistry, r.FinishedJobRegistry, r.FailedJobRegistry,
        r.ScheduledJobRegistry]


def test_registries_removing_jobs_needs_delete_job_in_pgqueue() -> None:
    """RQ's ``registry.remove(job_id)`` drops a job from the list and keeps it; a pgqueue registry is the jobs
    with its status, so a job leaves it by being requeued or deleted: refused, saying so."""
    for _ in range(2):  # (set up: failed jobs)
        PgQueue().enqueue("rqdocs.tasks.foo_job")
    PgSimpleWorker(["default"]).work(burst=True)

    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from pgqueue import InvalidJobOperation, Queue  # RQ: from rq import Queue
    from pgqueue.registry import FailedJobRegistry  # RQ: from rq.registry import FailedJobRegistry

    redis = Redis()
    queue = Queue(connection=redis)
    registry = FailedJobRegistry(queue=queue)

    # This is how to remove a job from a registry
    with pytest.raises(InvalidJobOperation, match=r"needs delete_job=True: .* it leaves by being requeued "):
        for job_id in registry.get_job_ids():
            registry.remove(job_id)

    # If you want to remove a job from a registry AND delete the job,
    # use `delete_job=True`
    for job_id in registry.get_job_ids():
        registry.remove(job_id, delete_job=True)

    assert len(registry) == 0 and PgQueue.all() == []  # the jobs are gone


# ==== workers.md ===============================================================================================
def test_workers_starting_a_worker(spawn_worker: Any, db: psycopg.Connection[Any]) -> None:
    worker = spawn_worker("high", "default", "low")  # RQ: $ rq worker high default low
    job = PgQueue().enqueue("rqdocs.tasks.send_newsletter", "me@nvie.com")
    job.wait(timeout=10)
    assert "*** Listening on high, default, low..." in worker.output
    assert f"default: rqdocs.tasks.send_newsletter('me@nvie.com') ({job.id})" in worker.output
    assert tags(db) == ["newsletter:me@nvie.com"]


def test_workers_burst_mode(db: psycopg.Connection[Any]) -> None:
    job = PgQueue().enqueue("rqdocs.tasks.send_newsletter", "me@nvie.com")
    result = run_cli("worker", "--burst", "high", "default", "low")  # RQ: $ rq worker --burst high default low
    assert result.returncode == 0 and f"Job OK ({job.id})" in result.stderr
    assert job.get_status() == JobStatus.FINISHED


def test_workers_a_worker_script_that_preloads_libraries(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(
        "#!/usr/bin/env python\n"
        "from pgqueue import Connection as Redis  # RQ: from redis import Redis\n"
        "from pgqueue import Worker  # RQ: from rq import Worker\n"
        "\n"
        "# Preload libraries\n"
        "import rqdocs.tasks as library_that_you_want_preloaded  # RQ: import library_that_you_want_preloaded\n"
        "\n"
        "# Provide the worker with the list of queues (str) to listen to.\n"
        "w = Worker(['default'], connection=Redis())\n"
        "w.work()\n")
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: PgWorker.count(queue="default"), message="the script's worker to register")
        job = PgQueue().enqueue("rqdocs.tasks.fib", 10)
        assert job.wait(timeout=10) == 55
        process.send_signal(signal.SIGTERM)  # a warm shutdown, as Ctrl-C or `kill` would
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_workers_worker_names() -> None:
    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from pgqueue import Queue, Worker  # RQ: from rq import Queue, Worker

    redis = Redis()
    queue = Queue('queue_name')

    # Start a worker with a custom name
    worker = Worker([queue], connection=redis, name='foo')

    assert (worker.name, worker.queue_names()) == ('foo', ['queue_name'])


def test_workers_retrieving_worker_information(spawn_worker: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """RQ's example adds a str and an int: ``'Successful jobs: ' + worker.successful_job_count`` raises
    TypeError in RQ as here (both counts are ints). The test shows that, and checks the counts."""
    spawn_worker("queue_name", "--name", "reporter")  # (set up: a worker to retrieve)

    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from pgqueue import Queue, Worker  # RQ: from rq import Queue, Worker

    # Returns all workers registered in this connection
    redis = Redis()
    workers = Worker.all(connection=redis)

    # Returns all workers in this queue (new in version 0.10.0)
    queue = Queue('queue_name')
    workers = Worker.all(queue=queue)
    worker = workers[0]
    print(worker.name)

    with pytest.raises(TypeError, match='can only concatenate str'):
        print('Successful jobs: ' + worker.successful_job_count)  # type: ignore[operator]
    # not reached: the same for failed_job_count and total_working_time

    assert capsys.readouterr().out == "reporter\n"
    assert (worker.successful_job_count, worker.failed_job_count, worker.total_working_time) == (0, 0, 0)
    assert (worker.hostname, worker.queues, worker.state) == (socket.gethostname(), ["queue_name"], "idle")
    assert worker.pid > 0 and worker.birth_date <= worker.last_heartbeat  # type: ignore[operator]


def test_workers_counting_workers(spawn_worker: Any) -> None:
    spawn_worker("queue_name")  # (set up: a worker to count)

    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from pgqueue import Queue  # RQ: (Queue, which the example uses)
    from pgqueue import Worker  # RQ: from rq import Worker

    redis = Redis()

    # Count the number of workers in this Redis connection
    workers = Worker.count(connection=redis)
    assert workers == 1

    # Count the number of workers for a specific queue
    queue = Queue('queue_name', connection=redis)
    workers = Worker.all(queue=queue)
    assert [w.queue_names() for w in workers] == [["queue_name"]]


def test_workers_a_custom_serializer_is_refused() -> None:
    from pgqueue import Queue, Worker  # RQ: from rq import Queue, Worker
    from rqdocs.serializers import JSONSerializer  # RQ: from rq.serializers import JSONSerializer

    with pytest.raises(TypeError, match=r"Worker\(serializer=JSONSerializer\): pgqueue stores arguments"):
        job = Worker('foo', serializer=JSONSerializer)
    with pytest.raises(TypeError, match=r"Queue\(serializer=JSONSerializer\): pgqueue stores arguments"):
        w = Queue('foo', serializer=JSONSerializer)
    assert "job" not in locals() and "w" not in locals()


def test_workers_dequeue_strategies(db: psycopg.Connection[Any]) -> None:
    for finished, strategy in ((3, "round_robin"), (6, "random")):
        for name in ("q1", "q2", "q3"):
            PgQueue(name).enqueue("rqdocs.tasks.fib", 3)
        a_worker_runs("q1", "q2", "q3", "-ds", strategy)  # RQ: rq worker q1 q2 q3 -ds round_robin (-ds random)
        assert db.execute("SELECT count(*) FROM pgqueue.jobs WHERE status = 'finished'").fetchone() == (finished,)


def test_workers_custom_job_and_queue_classes_are_refused() -> None:
    from pgqueue import Queue  # RQ: from rq import Queue
    from pgqueue.job import Job  # RQ: from rq.job import Job
    from pgqueue import Connection as Redis  # (set up: the example's connection)
    from rqdocs.tasks import some_func
    redis_conn = Redis()  # (set up)

    class CustomJob(Job):
        pass

    class CustomQueue(Queue):
        job_class = CustomJob

    with pytest.raises(TypeError, match=r"CustomQueue\(job_class=CustomJob\): pgqueue has no job classes"):
        queue = CustomQueue('default', connection=redis_conn)
        queue.enqueue(some_func)

    # RQ: $ rq worker --job-class 'custom.JobClass' --queue-class 'custom.QueueClass'
    result = run_cli("worker", "--job-class", "custom.JobClass", "--queue-class", "custom.QueueClass")
    assert result.returncode == 2 and "No such option '--job-class'" in result.stderr


def test_workers_custom_exception_handlers_from_the_command_line(db: psycopg.Connection[Any]) -> None:
    job = PgQueue().enqueue("rqdocs.tasks.foo_job")
    # RQ: $ rq worker --exception-handler 'path.to.my.ErrorHandler' --exception-handler 'another.ErrorHandler'
    a_worker_runs("--exception-handler", "rqdocs.exception_handlers.foo_handler",
                  "--exception-handler", "rqdocs.exception_handlers.bar_handler")
    assert tags(db) == ["foo_handler:RuntimeError:foo_job always fails",
                        "bar_handler:RuntimeError:foo_job always fails"]
    assert job.get_status() == JobStatus.FAILED

    # RQ: $ rq worker --exception-handler 'path.to.my.ErrorHandler' --disable-default-exception-handler
    refused = run_cli("worker", "--exception-handler", "rqdocs.exception_handlers.foo_handler",
                      "--disable-default-exception-handler")
    assert refused.returncode == 2
    assert "--disable-default-exception-handler has no pgqueue equivalent" in refused.stderr


# ==== exceptions.md ============================================================================================
def test_exceptions_show_failed_jobs_and_their_exceptions(capsys: pytest.CaptureFixture[str]) -> None:
    PgQueue().enqueue("rqdocs.tasks.foo_job")  # (set up: a failed job)
    PgSimpleWorker(["default"]).work(burst=True)

    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from pgqueue import Queue  # RQ: from rq import Queue
    from pgqueue.job import Job  # RQ: from rq.job import Job
    from pgqueue.registry import FailedJobRegistry  # RQ: from rq.registry import FailedJobRegistry

    redis = Redis()
    queue = Queue(connection=redis)
    registry = FailedJobRegistry(queue=queue)

    # Show all failed job IDs and the exceptions they caused during runtime
    for job_id in registry.get_job_ids():
        job = Job.fetch(job_id, connection=redis)
        print(job_id, job.exc_info)

    out = capsys.readouterr().out
    assert out.startswith(f"{job.id} Traceback (most recent call last):")
    assert out.rstrip().endswith("RuntimeError: foo_job always fails")


def test_exceptions_retrying_failed_jobs() -> None:
    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from pgqueue import Retry, Queue  # RQ: from rq import Retry, Queue

    from rqdocs.tasks import my_func  # RQ: from somewhere import my_func
    redis = Redis()  # (set up: the page's connection)

    queue = Queue(connection=redis)
    # Retry up to 3 times, failed job will be requeued immediately
    queue.enqueue(my_func, retry=Retry(max=3))

    # Retry up to 3 times, with 60 seconds interval in between executions
    queue.enqueue(my_func, retry=Retry(max=3, interval=60))

    # Retry up to 3 times, with longer interval in between retries
    queue.enqueue(my_func, retry=Retry(max=3, interval=[10, 30, 60]))

    now, later, longer = queue.jobs
    a_worker_runs("default")  # no --with-scheduler needed: every pgqueue worker runs retries when due
    for job in (now, later, longer):
        job.refresh()
    assert (now.status, now.attempts) == (JobStatus.FAILED, 4)
    assert (later.status, later.attempts, longer.status, longer.attempts) == ("scheduled", 1, "scheduled", 1)
    in_a_minute, in_ten_seconds = (j.scheduled_at - datetime.now(timezone.utc) for j in (later, longer))  # type: ignore
    assert timedelta(seconds=50) < in_a_minute <= timedelta(seconds=60)
    assert timedelta(seconds=1) < in_ten_seconds <= timedelta(seconds=10)


def test_exceptions_custom_exception_handlers(db: psycopg.Connection[Any]) -> None:
    from pgqueue import Worker  # RQ: from rq import Worker
    from rqdocs.exception_handlers import foo_handler, bar_handler  # RQ: from exception_handlers import ...
    from pgqueue import Queue  # (set up: the example's queue, with a job that fails)
    q = Queue()
    job = q.enqueue("rqdocs.tasks.foo_job")

    w = Worker([q], exception_handlers=[foo_handler, bar_handler])

    w.work(burst=True)
    assert tags(db) == ["foo_handler:RuntimeError:foo_job always fails",
                        "bar_handler:RuntimeError:foo_job always fails"]
    assert job.get_status() == JobStatus.FAILED


def test_exceptions_handlers_with_exc_info_as_args_and_a_chain_that_stops(db: psycopg.Connection[Any]) -> None:
    from pgqueue import Queue, Worker  # (set up)
    from rqdocs.exception_handlers import black_hole, foo_handler, my_handler  # RQ: defined in the example
    q = Queue()
    q.enqueue("rqdocs.tasks.foo_job")

    Worker([q], exception_handlers=[my_handler, black_hole, foo_handler]).work(burst=True)

    # black_hole returns False: "stop processing exceptions", so foo_handler is not called.
    assert tags(db) == ["my_handler:RuntimeError:foo_job always fails", "black_hole:RuntimeError:foo_job always fails"]


def test_exceptions_disabling_the_default_handler_is_refused_saying_why() -> None:
    from pgqueue import Queue, Worker  # (set up)
    from rqdocs.exception_handlers import foo_handler  # RQ: from exception_handlers import foo_handler
    q = Queue()

    with pytest.raises(TypeError, match=r"Worker\(disable_default_exception_handler=True\): RQ's default handler "
                                        r"moves a failed job to its FailedJobRegistry, while a pgqueue job is a row"):
        w = Worker([q], exception_handlers=[foo_handler],
                   disable_default_exception_handler=True)
    assert "w" not in locals()


def test_exceptions_a_work_horse_killed_handler_is_refused_saying_why() -> None:
    from pgqueue import Queue, Worker  # (set up)
    from rqdocs.exception_handlers import my_work_horse_killed_handler  # RQ: from my_handlers import ...
    q = Queue()

    with pytest.raises(TypeError, match=r"Worker\(work_horse_killed_handler=my_work_horse_killed_handler\): "
                                        r"pgqueue calls no handler when a job's process dies"):
        w = Worker([q], work_horse_killed_handler=my_work_horse_killed_handler)
    assert "w" not in locals()


# ==== scheduling.md ============================================================================================
def test_scheduling_enqueue_at_takes_a_timezone_aware_time() -> None:
    """RQ reads a naive datetime as local time; pgqueue refuses it (docs/quickstart.md#enqueue), saying so."""
    from datetime import datetime  # noqa: F811
    from pgqueue import Queue  # RQ: from rq import Queue
    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from rqdocs.tasks import say_hello  # RQ: from somewhere import say_hello

    queue = Queue(name='default', connection=Redis())

    # Schedules job to be run at 9:15, October 10th in the local timezone
    with pytest.raises(ValueError, match="scheduled times must be timezone-aware"):
        job = queue.enqueue_at(datetime(2019, 10, 8, 9, 15), say_hello)

    assert "job" not in locals() and len(queue) == 0
    job = queue.enqueue_at(datetime(2019, 10, 8, 9, 15).astimezone(), say_hello)  # local time, made explicit
    assert job.get_status() == JobStatus.QUEUED  # a time gone by: runnable at once


def test_scheduling_enqueue_in_puts_the_job_in_the_scheduled_registry(capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import timedelta  # noqa: F811
    from pgqueue import Queue  # RQ: from rq import Queue
    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from rqdocs.tasks import say_hello  # RQ: from somewhere import say_hello

    queue = Queue(name='default', connection=Redis())

    # Schedules job to be run in 10 seconds
    job = queue.enqueue_in(timedelta(seconds=10), say_hello)

    assert job.scheduled_at - job.enqueued_at == timedelta(seconds=10)  # type: ignore[operator]

    from pgqueue.registry import ScheduledJobRegistry  # RQ: from rq.registry import ScheduledJobRegistry
    from rqdocs.tasks import say_nothing  # RQ: (assumed defined)

    queue = Queue(name='default', connection=Redis())
    job = queue.enqueue_in(timedelta(seconds=10), say_nothing)
    print(job in queue)  # Outputs False as job is not enqueued

    registry = ScheduledJobRegistry(queue=queue)
    print(job in registry)  # Outputs True as job is placed in ScheduledJobRegistry

    assert capsys.readouterr().out == "False\nTrue\n"


def test_scheduling_running_the_scheduler_from_the_command_line(spawn_worker: Any) -> None:
    spawn_worker("--with-scheduler")  # RQ: $ rq worker --with-scheduler
    job = PgQueue().enqueue_in(timedelta(seconds=0.2), "rqdocs.tasks.say_hello")
    assert job.wait(timeout=10) == "Hello World!"


def test_scheduling_running_the_scheduler_from_python(tmp_path: Path) -> None:
    script = tmp_path / "scheduler.py"
    script.write_text(
        "from pgqueue import Worker, Queue  # RQ: from rq import Worker, Queue\n"
        "from pgqueue import Connection as Redis  # RQ: from redis import Redis\n"
        "\n"
        "redis = Redis()\n"
        "queue = Queue(connection=redis)\n"
        "\n"
        "# When running `with_scheduler=True` this is necessary\n"
        "if __name__ == '__main__':\n"
        "    worker = Worker(queues=[queue], connection=redis)\n"
        "    worker.work(with_scheduler=True)\n")
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: PgWorker.count(queue="default"), message="the script's worker to register")
        job = PgQueue().enqueue_at(datetime.now(timezone.utc) + timedelta(seconds=0.2), "rqdocs.tasks.say_hello")
        assert job.wait(timeout=10) == "Hello World!"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# ==== testing.md ===============================================================================================
def test_testing_a_simple_worker_inside_unit_tests() -> None:
    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from pgqueue import SimpleWorker, Queue  # RQ: from rq import SimpleWorker, Queue
    from rqdocs.tasks import my_long_running_job  # RQ: (assumed defined)

    queue = Queue(connection=Redis())
    queue.enqueue(my_long_running_job)
    worker = SimpleWorker([queue], connection=queue.connection)
    worker.work(burst=True)  # Runs enqueued job
    # Check for result...

    assert PgQueue().finished_job_registry.count == 1 and worker.successful_job_count == 1


def test_testing_async_is_is_async_in_pgqueue() -> None:
    """RQ's page writes ``async_=False``, which RQ 2 ignores (its keyword is ``is_async``, as RQ's "Bypassing
    workers" has it): pgqueue refuses the unknown keyword, saying which one to use."""
    from pgqueue import Connection as FakeStrictRedis  # RQ: from fakeredis import FakeStrictRedis
    from pgqueue import Queue  # RQ: from rq import Queue
    from rqdocs.tasks import my_long_running_job  # RQ: (assumed defined)

    with pytest.raises(TypeError, match=r"unexpected keyword argument 'async_' \(synchronous mode is is_async=False"):
        queue = Queue(async_=False, connection=FakeStrictRedis())
        job = queue.enqueue(my_long_running_job)
        assert job.is_finished

    queue = Queue(is_async=False, connection=FakeStrictRedis())  # the keyword RQ and pgqueue take
    job = queue.enqueue(my_long_running_job)
    assert job.is_finished


# ==== monitoring.md ============================================================================================
@pytest.fixture
def queues_and_workers(spawn_worker: Any) -> None:
    """RQ's output: 20 jobs on high, 12 on low, 8 on default, and idle workers. The queues are paused, so that
    the workers leave the jobs queued."""
    for name, count in (("high", 20), ("low", 12), ("default", 8)):
        PgQueue(name).pause()
        PgQueue(name).enqueue_many([PgQueue.prepare_data("rqdocs.tasks.fib", (i,)) for i in range(count)])
    spawn_worker("low", "--name", "Bricktop.19233")
    spawn_worker("high", "default", "low", "--name", "Bricktop.19232")
    spawn_worker("default", "--name", "Bricktop.18349")


def info_lines(*args: str) -> list[str]:
    result = run_cli("info", *args)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if "paused since" not in line and "Updated:" not in line]


def test_monitoring_rq_info_every_queue_some_queues_and_workers_by_queue(queues_and_workers: None) -> None:
    assert info_lines() == [  # RQ: $ rq info
        "default  |" + "█" * 16 + " 8 (paused)", "high     |" + "█" * 40 + " 20 (paused)",
        "low      |" + "█" * 24 + " 12 (paused)", "3 queues, 40 jobs total", "",
        "Bricktop.18349 idle: default", "Bricktop.19232 idle: high, default, low", "Bricktop.19233 idle: low",
        "3 workers, 3 queues", ""]

    assert info_lines("high", "default") == [  # RQ: $ rq info high default
        "high     |" + "█" * 40 + " 20 (paused)", "default  |" + "█" * 16 + " 8 (paused)",
        "2 queues, 28 jobs total", "",
        "Bricktop.18349 idle: default", "Bricktop.19232 idle: high, default, low",
        "2 workers, 2 queues", ""]

    assert info_lines("-R")[5:] == [  # RQ: $ rq info -R
        "default:  Bricktop.18349 (idle), Bricktop.19232 (idle)", "high:     Bricktop.19232 (idle)",
        "low:      Bricktop.19232 (idle), Bricktop.19233 (idle)", "3 workers, 3 queues", ""]


def test_monitoring_interval_polling() -> None:
    PgQueue("high").enqueue("rqdocs.tasks.fib", 1)
    process = subprocess.Popen([sys.executable, "-m", "pgqueue.cli", "info", "--interval", "0.5"],  # RQ: $ rq info
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # --interval 0.5
    try:
        out = process.stdout
        assert out is not None
        drawn = 0
        while drawn < 2:  # two screens: it redraws by itself
            line = out.readline()
            assert line, process.stderr.read() if process.stderr else "no output"
            drawn += line.startswith("Updated:")
        process.send_signal(signal.SIGINT)  # Ctrl-C ends it
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# ==== connections.md ===========================================================================================
def test_connections_the_connection_parameter() -> None:
    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from pgqueue import Queue  # RQ: from rq import Queue

    redis = Redis('localhost', 6789)
    q = Queue(connection=redis)

    assert q.enqueue("rqdocs.tasks.fib", 5).get_status() == JobStatus.QUEUED  # in the test database
    assert redis.redis_arguments == {"arg0": "localhost", "arg1": 6789} and redis.dsn is None


def test_connections_two_redis_servers_are_one_database_unless_given_urls(dsn: str) -> None:
    """Redis's host and port say nothing to pgqueue: both queues use the database of PGQUEUE_DATABASE_URL.
    To keep jobs in two databases, give each Connection its URL (docs/coming-from-rq.md)."""
    from pgqueue import Queue  # RQ: from rq import Queue
    from pgqueue import Connection as Redis  # RQ: from redis import Redis

    conn1 = Redis('localhost', 6379)
    conn2 = Redis('remote.host.org', 9836)

    q1 = Queue('foo', connection=conn1)
    q2 = Queue('bar', connection=conn2)

    assert q1.connection == q2.connection == Redis()
    assert Queue('bar', connection=Redis(dsn)).connection != q1.connection  # a URL: that database


def test_connections_redis_socket_and_decoding_arguments_are_accepted_and_ignored() -> None:
    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from pgqueue import Queue  # RQ: from rq import Queue

    conn = Redis('localhost', 6379, socket_timeout=500)
    q = Queue(connection=conn)

    conn = Redis(..., decode_responses=True) # This is not supported (in RQ; pgqueue ignores it)
    q = Queue(connection=conn)

    assert q.connection == Redis() and q.connection.ping()


# ==== rq.suspension, from Python (as docs/cli.md shows) ========================================================
def test_suspend_and_resume_take_the_connection() -> None:
    from pgqueue import Connection as Redis  # RQ: from redis import Redis
    from pgqueue.suspension import is_suspended, resume, suspend  # RQ: from rq.suspension import ...

    redis = Redis()
    suspend(redis)
    assert is_suspended(redis)
    resume(redis)
    assert not is_suspended(redis)
    until = suspend(redis, ttl=1800)
    assert until is not None and is_suspended(connection=redis) and resume(connection=redis)

