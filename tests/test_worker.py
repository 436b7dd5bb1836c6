"""The worker: order, outcomes, waiting, signals, concurrency, and jobs that misbehave."""

from __future__ import annotations

import signal
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest
from conftest import wait_for

from pgqueue import Job, JobFailed, JobStatus, Queue, Retry, SimpleWorker, Worker


def tags(db: psycopg.Connection[Any]) -> list[str]:
    return [r[0] for r in db.execute("SELECT tag FROM pgq_test.runs ORDER BY at, tag").fetchall()]


@pytest.mark.parametrize("worker_class", [SimpleWorker, Worker])
def test_queues_in_priority_order_then_job_priority_then_fifo(worker_class: type[Worker],
                                                              db: psycopg.Connection[Any]) -> None:
    low, high = Queue("low"), Queue("high")
    low.enqueue(tj.record, "low-1")
    high.enqueue(tj.record, "high-2")
    high.enqueue(tj.record, "high-3")
    high.enqueue(tj.record, "high-1", priority=-5)
    low.enqueue(tj.record, "low-2")
    assert worker_class(["high", "low"]).work(burst=True)
    assert tags(db) == ["high-1", "high-2", "high-3", "low-1", "low-2"]


def finished_tags(db: psycopg.Connection[Any]) -> list[str]:
    return [t for t in tags(db) if not t.startswith("started:")]


@pytest.mark.parametrize("simple", [False, True])
@pytest.mark.parametrize("urgent", ["high queue", "priority", "at_front"])
def test_a_job_that_comes_first_runs_before_claimed_jobs_that_have_not_started(
        simple: bool, urgent: str, spawn_worker: Any, db: psycopg.Connection[Any]) -> None:
    # Claims are batched: the worker took all five low jobs at once. The four not started go back to their
    # queue once the first has run a while, so the job that comes first by the queue order runs next.
    low = Queue("low")
    for i in range(5):
        low.enqueue(tj.record_sleep_record, 0.4, f"low{i}")
    worker = spawn_worker("high", "low", *(["--simple"] if simple else []))
    wait_for(lambda: "started:low0" in tags(db), message="the first low job to start")
    if urgent == "high queue":
        Queue("high").enqueue(tj.record_sleep_record, 0, "urgent")
    else:
        low.enqueue(tj.record_sleep_record, 0, "urgent", **({"priority": -1} if urgent == "priority" else
                                                              {"at_front": True}))
    wait_for(lambda: len(finished_tags(db)) == 6, timeout=30, message="all six jobs to run")
    assert finished_tags(db) == ["low0", "urgent", "low1", "low2", "low3", "low4"], worker.output


def test_jobs_behind_a_long_one_go_back_to_their_queue_for_other_workers(
        spawn_worker: Any, db: psycopg.Connection[Any]) -> None:
    q = Queue()
    jobs = [q.enqueue(tj.record_sleep_record, 3 if i == 0 else 0, f"job{i}") for i in range(4)]
    first = spawn_worker("default")
    wait_for(lambda: "started:job0" in tags(db), message="the long job to start")
    # Given back, not started: queued again with no attempt used, while the long one runs.
    wait_for(lambda: len(q) == 3, message="the jobs behind the long one to be queued again")
    behind = [Job.fetch(j.id) for j in jobs[1:]]
    assert [(j.status, j.attempts) for j in behind] == [(JobStatus.QUEUED, 0)] * 3
    second = spawn_worker("default", "--name", "second")
    wait_for(lambda: len(finished_tags(db)) == 3, message="the second worker to run them")
    assert "started:job0" in tags(db) and "job0" not in finished_tags(db)  # the long one still runs
    assert {Job.fetch(j.id).worker_name for j in jobs[1:]} == {"second"}
    wait_for(lambda: Job.fetch(jobs[0].id).status == JobStatus.FINISHED, message="the long job to finish")
    assert [Job.fetch(j.id).attempts for j in jobs] == [1, 1, 1, 1], (first.output, second.output)


def test_no_queue_named_serves_default(db: psycopg.Connection[Any]) -> None:
    Queue().enqueue(tj.record, "d")
    Queue("other").enqueue(tj.record, "o")
    SimpleWorker().work(burst=True)
    assert tags(db) == ["d"]


def test_results_and_failures_are_stored() -> None:
    q = Queue()
    ok = q.enqueue(tj.add, 6, 7)
    bad = q.enqueue(tj.fail, "bad input")
    unknown = q.enqueue("pgq_testjobs.does_not_exist")
    missing_module = q.enqueue("no_such_module.f")
    unserialisable = q.enqueue(tj.returns_object)
    nul_result = q.enqueue(tj.identity_of, "a\\x00b")  # returns "a\x00b": jsonb cannot hold NUL
    nul_error = q.enqueue(tj.fail_escaped, "bad\\x00byte")  # PostgreSQL text cannot either
    after = q.enqueue(tj.add, 1, 1)
    Worker(["default"]).work(burst=True)
    assert ok.result == 13 and ok.get_status() == JobStatus.FINISHED
    fetched = Job.fetch(ok.id)
    assert fetched.attempts == 1 and fetched.worker_name and fetched.started_at and fetched.ended_at
    assert fetched.started_at <= fetched.ended_at
    assert bad.get_status() == JobStatus.FAILED
    assert "Traceback" in bad.exc_info and "ValueError: bad input" in bad.exc_info
    error = Job.fetch(bad.id).errors[-1]
    assert (error["type"], error["message"], error["attempt"]) == ("ValueError", "bad input", 1)
    assert "ImportError" in unknown.exc_info and "does_not_exist" in unknown.exc_info
    assert "no_such_module" in missing_module.exc_info
    assert "not JSON-serialisable" in unserialisable.exc_info
    assert "NUL character" in nul_result.exc_info
    assert "ValueError: bad\\0byte" in nul_error.exc_info
    assert Job.fetch(nul_error.id).errors[-1]["message"] == "bad\\0byte"
    assert after.result == 2  # the worker kept serving


def test_a_worker_without_listen_polls(spawn_worker: Any, db: psycopg.Connection[Any]) -> None:
    worker = spawn_worker("default", "--no-listen", "--poll-interval", "0.2")
    assert "not listening for new jobs (listen=False); polling every 0.2s" in worker.output
    job = Queue().enqueue(tj.add, 1, 2)  # no worker listens for its notification: the poll finds it
    wait_for(lambda: job.get_status() == JobStatus.FINISHED, message="the poll to find the job")
    listeners = db.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND query LIKE 'LISTEN%'").fetchone()
    assert listeners == (0,)


def test_wait_returns_the_result_woken_by_notify(spawn_worker: Any) -> None:
    spawn_worker("default", "--poll-interval", "60")
    assert Queue().enqueue(tj.add, 2, 3).wait(timeout=15) == 5
    failing = Queue().enqueue(tj.fail, "nope")
    with pytest.raises(JobFailed, match="ValueError: nope") as info:
        failing.wait(timeout=15)
    assert "Traceback" in (info.value.exc_info or "")


def test_wait_times_out() -> None:
    with pytest.raises(TimeoutError):
        Queue("nobody-serves-this").enqueue(tj.noop).wait(timeout=0.3)


def test_current_job_inside_a_job() -> None:
    job = Queue().enqueue(tj.current_job_info, meta={"keep": True})
    Worker().work(burst=True)
    assert job.result == {"id": job.id, "queue": "default", "attempts": 1, "func_name": "pgq_testjobs.current_job_info"}
    assert Job.fetch(job.id).meta == {"keep": True, "progress": 50}


@pytest.mark.parametrize("worker", [Worker, SimpleWorker])
def test_current_job_has_every_attribute_of_the_row_and_the_run_as_it_is(worker: type[Worker]) -> None:
    # Three jobs: one claim, so the later two start while the database has not recorded their runs yet.
    jobs = [Queue().enqueue(tj.current_job_view, job_timeout=30, description=f"view {i}", priority=-i,
                            retry=2, meta={"i": i}) for i in range(3)]
    worker(name="viewer").work(burst=True)
    for i, job in enumerate(jobs):
        assert job.get_status() == JobStatus.FINISHED, job.exc_info
        assert job.result == {"status": "running", "attempts": 1, "description": f"view {i}", "priority": -i,
                              "max_attempts": 3, "timeout": 30.0, "worker_name": "viewer", "args": [],
                              "meta": {"i": i}, "times": [True, True, True], "started_after_enqueue": True,
                              "after_refresh": ["running", 1, True]}


def test_concurrency_runs_jobs_at_once(db: psycopg.Connection[Any]) -> None:
    jobs = [Queue().enqueue(tj.wait_for_peers, "together", 3, 20) for _ in range(3)]
    Worker(concurrency=3).work(burst=True)
    assert all(j.get_status() == JobStatus.FINISHED for j in jobs), [j.exc_info for j in jobs]
    assert len({r[0] for r in db.execute("SELECT pid FROM pgq_test.runs").fetchall()}) == 3


def test_sigterm_finishes_the_running_job_and_exits_0(spawn_worker: Any, db: psycopg.Connection[Any]) -> None:
    worker = spawn_worker("default")
    running = Queue().enqueue(tj.record_sleep_record, 1.5, "finished anyway")
    waiting = Queue().enqueue(tj.record, "never started")
    wait_for(lambda: "started:finished anyway" in tags(db), message="the job to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert running.get_status() == JobStatus.FINISHED
    assert waiting.get_status() == JobStatus.QUEUED and Job.fetch(waiting.id).attempts == 0
    assert tags(db) == ["started:finished anyway", "finished anyway"]
    with psycopg.connect(db.info.dsn) as conn:
        assert conn.execute("SELECT stopped_at IS NOT NULL FROM pgqueue.workers").fetchall() == [(True,)]


def test_second_signal_stops_at_once_and_requeues(spawn_worker: Any, db: psycopg.Connection[Any]) -> None:
    worker = spawn_worker("default")
    job = Queue().enqueue(tj.record_sleep_record, 60, "too slow")
    wait_for(lambda: "started:too slow" in tags(db), message="the job to start")
    worker.signal(signal.SIGINT)
    wait_for(lambda: "warm shut down" in worker.output, message="the first signal to register")
    worker.signal(signal.SIGINT)
    assert worker.wait(30) == 0
    assert job.get_status() == JobStatus.QUEUED
    assert "too slow" not in tags(db)


def test_hard_timeout_kills_a_stuck_job_and_the_worker_goes_on() -> None:
    stuck = Queue().enqueue(tj.spin_forever, job_timeout=1)
    after = Queue().enqueue(tj.add, 1, 2)
    Worker().work(burst=True)
    assert stuck.get_status() == JobStatus.FAILED
    assert "timeout of 1 seconds" in stuck.exc_info
    assert after.result == 3


def test_simple_worker_enforces_timeouts_too() -> None:
    stuck = Queue().enqueue(tj.spin_forever, job_timeout=0.5)
    SimpleWorker().work(burst=True)
    assert stuck.get_status() == JobStatus.FAILED and "timeout" in stuck.exc_info


@pytest.mark.parametrize("func, text", [(tj.exit_process, "exited with code 3"), (tj.kill_self, "signal SIGKILL")])
def test_a_job_that_kills_its_process_fails_clearly(func: Any, text: str) -> None:
    crash = Queue().enqueue(func)
    after = Queue().enqueue(tj.add, 2, 2)
    Worker().work(burst=True)
    assert crash.get_status() == JobStatus.FAILED
    assert text in crash.exc_info
    assert after.result == 4


def test_retries_then_fails_keeping_every_attempts_error(db: psycopg.Connection[Any]) -> None:
    job = Queue().enqueue(tj.fail_then_record, "try", retry=Retry(max=2))
    Worker().work(burst=True)
    fetched = Job.fetch(job.id)
    assert fetched.status == JobStatus.FAILED and fetched.attempts == 3
    assert [e["attempt"] for e in fetched.errors] == [1, 2, 3]
    assert tags(db) == ["try", "try", "try"]


def test_retry_interval_reschedules(db: psycopg.Connection[Any]) -> None:
    job = Queue().enqueue(tj.fail_then_record, "later", retry=Retry(max=1, interval=3600))
    Worker().work(burst=True)
    fetched = Job.fetch(job.id)
    assert fetched.status == JobStatus.SCHEDULED and fetched.attempts == 1
    assert db.execute("SELECT scheduled_at > now() + interval '59 minutes' FROM pgqueue.jobs").fetchone() == (True,)


def test_allow_list_refuses_other_modules() -> None:
    allowed = Queue().enqueue(tj.add, 1, 1)
    refused = Queue().enqueue("os.getcwd")
    Worker(allow_modules=["pgq_testjobs"]).work(burst=True)
    assert allowed.result == 2
    assert refused.get_status() == JobStatus.FAILED and "not under an allowed module" in refused.exc_info


def test_workers_register_and_show_in_info(spawn_worker: Any) -> None:
    from pgqueue import monitor

    spawn_worker("high", "low", "--name", "w-one")
    workers = monitor.live_workers()
    assert [(w.name, w.queues, w.state) for w in workers] == [("w-one", ["high", "low"], "idle")]


def test_allow_list_applies_even_to_functions_already_imported() -> None:
    first = Queue().enqueue(tj.add, 1, 1)
    SimpleWorker().work(burst=True)
    assert first.result == 2
    again = Queue().enqueue(tj.add, 1, 1)
    SimpleWorker(allow_modules=["somewhere.else"]).work(burst=True)
    assert again.get_status() == JobStatus.FAILED and "not under an allowed module" in again.exc_info


def test_simple_worker_second_signal_interrupts_and_requeues(spawn_worker: Any, db: psycopg.Connection[Any]) -> None:
    worker = spawn_worker("default", "--simple")
    job = Queue().enqueue(tj.record_sleep_record, 60, "interrupted")
    wait_for(lambda: "started:interrupted" in tags(db), message="the job to start")
    worker.signal(signal.SIGTERM)
    wait_for(lambda: "warm shut down" in worker.output, message="the first signal to register")
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0, worker.output
    assert job.get_status() == JobStatus.QUEUED and Job.fetch(job.id).attempts == 0
    assert "Traceback" not in worker.output


def test_worker_imports_job_modules_from_path(spawn_worker: Any, tmp_path: Any) -> None:
    (tmp_path / "mytasks.py").write_text("def triple(x):\n    return 3 * x\n")
    job = Queue().enqueue("mytasks.triple", 5)
    worker = spawn_worker("--burst", "--path", str(tmp_path), ready=False)
    assert worker.wait(30) == 0
    assert job.result == 15


def test_grace_period_bounds_a_warm_shutdown(spawn_worker: Any, db: psycopg.Connection[Any]) -> None:
    worker = spawn_worker("default", "--grace", "0.5")
    job = Queue().enqueue(tj.record_sleep_record, 60, "outlives the grace")
    wait_for(lambda: "started:outlives the grace" in tags(db), message="the job to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert "grace period of 0.5s over" in worker.output
    assert job.get_status() == JobStatus.QUEUED and Job.fetch(job.id).attempts == 0


def test_dead_worker_rows_are_cleaned_up(db: psycopg.Connection[Any]) -> None:
    old = "INSERT INTO pgqueue.workers (name, hostname, pid, queues, concurrency, lease_seconds, heartbeat_at{}) " \
          "VALUES (%s, 'h', 1, '{{default}}', 1, 30, now() - interval '2 hours'{}) RETURNING id"
    stopped = db.execute(old.format(", stopped_at", ", now() - interval '2 hours'"), ("stopped",)).fetchone()
    vanished = db.execute(old.format("", ""), ("vanished",)).fetchone()
    recent = db.execute("INSERT INTO pgqueue.workers (name, hostname, pid, queues, concurrency, lease_seconds, "
                        "stopped_at) VALUES ('recent', 'h', 1, '{default}', 1, 30, now()) RETURNING id").fetchone()
    SimpleWorker().work(burst=True)  # its maintenance pass prunes
    left = {r[0] for r in db.execute("SELECT id FROM pgqueue.workers").fetchall()}
    assert stopped is not None and vanished is not None and recent is not None
    assert stopped[0] not in left and vanished[0] not in left
    assert recent[0] in left  # a worker that stopped a moment ago stays visible for a while


def test_a_worker_with_descriptors_past_1024_serves() -> None:
    # select() refuses descriptors past FD_SETSIZE (1024), which a worker with a high file limit (as
    # containers give) reaches through its connections and child pipes, or because its process has
    # many files open already. Here the process has 1,100 open before the worker starts.
    import os
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1300:
        # The filler plus the worker's own descriptors need ~1,300; with a hard limit of 1,024 or less (a
        # common default) no descriptor can pass FD_SETSIZE, so select() could not have failed either.
        pytest.skip(f"the hard limit on open files ({hard}) keeps descriptors below 1300")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1300) if soft != resource.RLIM_INFINITY else soft, hard))
    filler = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        jobs = [Queue().enqueue(tj.add, i, 1) for i in range(20)]
        Worker(concurrency=2).work(burst=True)
        simple = Queue().enqueue(tj.add, 20, 1)
        SimpleWorker().work(burst=True)
    finally:
        for fd in filler:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert [j.get_status() for j in jobs + [simple]] == [JobStatus.FINISHED] * 21
    assert [j.result for j in jobs + [simple]] == [i + 1 for i in range(21)]


def test_a_retried_attempt_logs_its_retry_and_the_last_one_logs_the_failure(spawn_worker: Any) -> None:
    """Before, a retried attempt logged exactly like a final failure."""
    worker = spawn_worker("default")
    job = Queue().enqueue(tj.fail, "again", retry=Retry(max=2, interval=[0.2, 0.3]))
    with pytest.raises(JobFailed):
        job.wait(timeout=20)
    wait_for(lambda: f"Job failed ({job.id})" in worker.output, 10, message="the final failure's log line")
    lines = [line.split(" ", 1)[1] for line in worker.output.splitlines() if job.id in line and "failed" in line]
    assert lines == [f"Job failed, retry 1 of 2 in 0.2 s ({job.id}): ValueError: again",
                     f"Job failed, retry 2 of 2 in 0.3 s ({job.id}): ValueError: again",
                     f"Job failed ({job.id}): ValueError: again"]


def test_connections_name_their_worker_and_role_in_pg_stat_activity(spawn_worker: Any,
                                                                     db: psycopg.Connection[Any]) -> None:
    worker = spawn_worker("default", "--name", "w1")
    Queue().enqueue(tj.noop)  # this process's enqueue connection
    expected = {"pgqueue:w1:claim", "pgqueue:w1:finish", "pgqueue:w1:listen", "pgqueue:w1:heartbeat",
                "pgqueue:enqueue"}

    def names() -> set[str]:
        return {r[0] for r in db.execute(
            "SELECT application_name FROM pg_stat_activity WHERE datname = current_database()").fetchall()}
    wait_for(lambda: expected <= names(), 10, message=f"connections named {expected}")
    assert worker.proc.poll() is None


def test_a_simple_worker_outside_the_main_thread_warns_that_it_cannot_stop_a_job(
        caplog: pytest.LogCaptureFixture) -> None:
    import threading

    Queue().enqueue(tj.noop)
    thread = threading.Thread(target=lambda: SimpleWorker(name="in-a-thread").work(burst=True))
    with caplog.at_level("WARNING", logger="pgqueue"):
        thread.start()
        thread.join(30)
    warnings = [r.getMessage() for r in caplog.records if "outside the main thread" in r.getMessage()]
    assert warnings == ["Worker in-a-thread: a SimpleWorker outside the main thread cannot stop a job: neither its "
                        "timeout, a lost lease nor a cancel interrupts it (run it in the main thread, or use Worker)"]
    SimpleWorker(name="main").work(burst=True)  # in the main thread: no warning
    assert len([r for r in caplog.records if "outside the main thread" in r.getMessage()]) == 1


@pytest.mark.parametrize("worker_class", [SimpleWorker, Worker])
def test_a_row_whose_args_or_kwargs_are_not_an_array_and_an_object_fails_naming_the_column(
        worker_class: type[Worker], db: psycopg.Connection[Any]) -> None:
    # The jobs table is public SQL: a row written there directly can hold any JSON in args and kwargs.
    bad = {'"xy"': ("args", "string"), '{"a": 1}': ("args", "object"), "5": ("args", "number"),
           "null": ("args", "null")}
    bad_kwargs = {"[1]": ("kwargs", "array"), '"s"': ("kwargs", "string"), "true": ("kwargs", "boolean")}
    jobs = {}
    for value, expected in bad.items():
        job = Queue().enqueue(tj.echo)
        db.execute("UPDATE pgqueue.jobs SET args = %s::jsonb WHERE id = %s", (value, job.id))
        jobs[job.id] = expected
    for value, expected in bad_kwargs.items():
        job = Queue().enqueue(tj.echo)
        db.execute("UPDATE pgqueue.jobs SET kwargs = %s::jsonb WHERE id = %s", (value, job.id))
        jobs[job.id] = expected
    good = Queue().enqueue(tj.echo, 1, x=2)
    worker_class().work(burst=True)
    for id, (column, kind) in jobs.items():
        job = Job.fetch(id)
        assert job.status == JobStatus.FAILED, (column, kind)
        expected = "array" if column == "args" else "object"
        assert f"TypeError: pgqueue.jobs.{column} must be a JSON {expected}, got {kind}" in job.exc_info
    assert good.result == {"args": [1], "kwargs": {"x": 2}}
