"""Job functions the tests enqueue. Workers import them by dotted path (tests/ is on PYTHONPATH)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import psycopg

import pgqueue

_conn: psycopg.Connection[Any] | None = None
_conn_pid = 0


def _db() -> psycopg.Connection[Any]:
    global _conn, _conn_pid
    if _conn is None or _conn_pid != os.getpid() or _conn.closed:
        # No prepared statements: the URL may lead to a transaction pooler (tests/test_pgbouncer.py).
        _conn = psycopg.connect(os.environ["PGQUEUE_DATABASE_URL"], autocommit=True, prepare_threshold=None)
        _conn_pid = os.getpid()
    return _conn


def record(tag: str = "") -> str:
    """Write one row to pgq_test.runs: the proof that this job ran (and how many times)."""
    job = pgqueue.get_current_job()
    job_id = job.id if job else None
    _db().execute("INSERT INTO pgq_test.runs (job_id, tag, pid) VALUES (%s, %s, %s)", (job_id, tag, os.getpid()))
    return tag


def add(a: Any, b: Any) -> Any:
    return a + b


def echo(*args: Any, **kwargs: Any) -> Any:
    return {"args": list(args), "kwargs": kwargs}


def identity(value: Any) -> Any:
    return value


def noop(i: int = 0) -> int:
    return i


def fail(message: str = "boom") -> None:
    raise ValueError(message)


def fail_then_record(tag: str) -> str:
    record(tag)
    raise RuntimeError(f"attempt failed: {tag}")


def fail_first_attempt() -> str:
    job = pgqueue.get_current_job()
    assert job is not None
    if job.attempts == 1:
        raise ValueError("the first attempt fails")
    return "the second succeeds"


def sleep_then_record(seconds: float, tag: str = "") -> str:
    time.sleep(seconds)
    return record(tag)


def wait_for_peers(tag: str, peers: int, timeout: float = 20.0) -> int:
    """Record, then wait until ``peers`` jobs with this tag are running at once (needs concurrency)."""
    record(tag)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = _db().execute("SELECT count(*) FROM pgq_test.runs WHERE tag = %s", (tag,)).fetchone()
        if row and row[0] >= peers:
            return int(row[0])
        time.sleep(0.01)
    raise TimeoutError(f"only saw fewer than {peers} concurrent jobs")


def hang_on_first_attempt(tag: str) -> str:
    """Record ``started:TAG``; the first attempt then hangs (until killed), a later one records ``TAG``."""
    record(f"started:{tag}")
    job = pgqueue.get_current_job()
    assert job is not None
    if job.attempts == 1:
        time.sleep(600)
    return record(tag)


def spin_forever() -> None:
    while True:
        pass


def exit_process(code: int = 3) -> None:
    os._exit(code)


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def current_job_info() -> dict[str, Any]:
    job = pgqueue.get_current_job()
    assert job is not None
    job.meta["progress"] = 50
    job.save_meta()
    return {"id": job.id, "queue": job.queue, "attempts": job.attempts, "func_name": job.func_name}


def current_job_view() -> dict[str, Any]:
    """What get_current_job() says of the running job, as JSON-friendly values."""
    job = pgqueue.get_current_job()
    assert job is not None
    return {"status": str(job.status), "attempts": job.attempts, "description": job.description,
            "priority": job.priority, "max_attempts": job.max_attempts, "timeout": job.timeout,
            "worker_name": job.worker_name, "args": job.args, "meta": job.meta,
            "times": [t is not None for t in (job.enqueued_at, job.scheduled_at, job.started_at)],
            "started_after_enqueue": job.started_at >= job.enqueued_at if job.started_at and job.enqueued_at else None,
            "after_refresh": _refreshed(job)}


def _refreshed(job: pgqueue.Job) -> list[Any]:
    job.refresh()
    return [str(job.status), job.attempts, job.started_at is not None]


def returns_object() -> object:
    return object()


def identity_of(escaped: str) -> str:
    """Returns ``escaped`` with its backslash escapes decoded (so a test can ask for a NUL character in
    a result without putting one in the job's arguments, which enqueue refuses)."""
    return escaped.encode().decode("unicode_escape")


def fail_escaped(escaped: str) -> None:
    raise ValueError(identity_of(escaped))


@pgqueue.job("decorated", retry=2, job_timeout=30, description="decorated job")
def decorated_add(a: int, b: int) -> int:
    return a + b


def record_sleep_record(seconds: float, tag: str) -> str:
    """Record ``started:TAG``, sleep, record ``TAG``: tests wait for the first row to know it started."""
    record(f"started:{tag}")
    time.sleep(seconds)
    return record(tag)


@pgqueue.atomic
def atomic_write(tag: str, fail: bool = False, steal_first: bool = False) -> str:
    """Writes through the job's own transaction, which also marks it finished."""
    job = pgqueue.get_current_job()
    assert job is not None and job.connection is not None
    job.connection.execute("INSERT INTO pgq_test.runs (job_id, tag) VALUES (%s, %s)", (job.id, tag))
    if fail:
        raise RuntimeError("fails after writing")
    if steal_first and job.attempts == 1:
        # Another session takes the job away, as a rescue after a lost lease would.
        _db().execute("UPDATE pgqueue.jobs SET status = 'queued', worker_id = NULL WHERE id = %s", (job.id,))
    return tag


@pgqueue.atomic
def atomic_sleep(seconds: float) -> float:
    """An atomic job that takes ``seconds`` (measured here) between its transaction's start and its end."""
    started = time.monotonic()
    job = pgqueue.get_current_job()
    assert job is not None and job.connection is not None
    job.connection.execute("SELECT 1")  # the transaction has begun: its now() is fixed from here on
    time.sleep(seconds)
    return time.monotonic() - started


class Jobs:
    """Methods of every kind, for the tests of what enqueue accepts."""

    @classmethod
    def which(cls, x: Any) -> list[Any]:
        return [cls.__name__, x]

    @staticmethod
    def double(x: Any) -> Any:
        return 2 * x

    def method(self, x: Any) -> Any:
        return x


class MoreJobs(Jobs):
    pass


class CallableJob:
    def __call__(self, x: Any) -> Any:
        return x


jobs_instance = Jobs()  # a module-level instance: its methods have a dotted path a worker can import


# -- workflows (tests/test_batches.py, test_dependency_policy.py, test_chains.py) ---------------------
def batch_callback(batch_id: str, kind: str = "complete") -> dict[str, Any]:
    """A batch's callback: records ``KIND:BATCH_ID`` and returns what Batch.fetch says of the batch."""
    record(f"{kind}:{batch_id}")
    batch = pgqueue.Batch.fetch(batch_id)
    statuses: dict[str, int] = {}
    for member in batch.iter_members(page=7):
        statuses[member.status.value] = statuses.get(member.status.value, 0) + 1
    return {"status": batch.status, "total": batch.total, "finished": batch.finished, "failed": batch.failed,
            "canceled": batch.canceled, "pending": batch.pending, "members": statuses}


def flaky_callback(batch_id: str) -> str:
    """A callback whose first attempt raises (it is a job: it is retried)."""
    record(f"flaky:{batch_id}")
    job = pgqueue.get_current_job()
    assert job is not None
    if job.attempts == 1:
        raise RuntimeError("the callback's first attempt fails")
    return "second attempt"


def prefixed(value: Any, *rest: Any) -> list[Any]:
    """A chain's link: what it was passed, in order."""
    return [value, *rest]
