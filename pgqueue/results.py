"""The results of a job's runs, shaped like RQ's ``rq.results.Result``.

RQ writes one Result per run to a Redis stream. pgqueue keeps what that stream would hold in the job's
row: each failed attempt is an entry of ``errors`` (written by the statement that records the failure),
and the run that finished is ``result`` and ``ended_at``. So a job's results cost nothing to keep, and are
read with the job: :meth:`pgqueue.Job.results` and :meth:`pgqueue.Job.latest_result` build them from it.
"""

from __future__ import annotations

import enum
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .job import Job


class Result:
    """One run of a job: ``type`` says how it ended; ``return_value`` (a successful run) or ``exc_string``
    (a failed one) says with what. ``id`` is ``"JOB_ID:ATTEMPT"``: a run's number (``attempt``, from 1)
    names it within its job, as the stream entry's id does in RQ."""

    class Type(enum.Enum):
        """RQ's result types. pgqueue records SUCCESSFUL and FAILED runs; it has no stop command, so no run
        ends STOPPED, and a run that failed and will be retried is FAILED (the job is then ``scheduled``)."""

        SUCCESSFUL = 1
        FAILED = 2
        STOPPED = 3
        RETRIED = 4

    def __init__(self, job_id: str, type: Result.Type, attempt: int, created_at: datetime | None,
                 return_value: Any = None, exc_string: str | None = None, worker_name: str = "") -> None:
        self.job_id = job_id
        self.type = type
        self.attempt = attempt
        self.id = f"{job_id}:{attempt}"
        self.created_at = created_at
        self.return_value = return_value
        self.exc_string = exc_string
        self.worker_name = worker_name

    def __repr__(self) -> str:
        return f"Result(id={self.id}, type={self.type.name})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Result) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @classmethod
    def all(cls, job: Job) -> list[Result]:
        """Every result of ``job``, newest first (as ``job.results()``)."""
        return job.results()

    @classmethod
    def fetch_latest(cls, job: Job, timeout: float = 0) -> Result | None:
        """The newest result of ``job`` (as ``job.latest_result(timeout)``)."""
        return job.latest_result(timeout)

    @classmethod
    def count(cls, job: Job) -> int:
        return len(job.results())


def results_of(job: Job) -> list[Result]:
    """The results the loaded row of ``job`` holds, newest first: its failed attempts, then its success."""
    results = [_failure(job.id, entry) for entry in job.errors if isinstance(entry, dict)]
    if job.status == "finished":
        results.append(Result(job.id, Result.Type.SUCCESSFUL, job.attempts, job.ended_at,
                              return_value=job._result, worker_name=job.worker_name or ""))
    results.reverse()
    return results


def _failure(job_id: str, entry: dict[str, Any]) -> Result:
    """An entry of ``errors``: {"attempt", "worker", "at", "type", "message", "traceback"} (the traceback is
    null for a worker that was lost: its message says so)."""
    text = entry.get("traceback") or f"{entry.get('type') or 'Error'}: {entry.get('message') or ''}"
    return Result(job_id, Result.Type.FAILED, int(entry.get("attempt") or 0), _timestamp(entry.get("at")),
                  exc_string=text, worker_name=entry.get("worker") or "")


_FRACTION = re.compile(r"\.(\d+)")


def _timestamp(value: Any) -> datetime | None:
    """A timestamptz as PostgreSQL writes it in JSON (``2026-11-23T06:37:06.8594+00:00``). Python 3.10's
    fromisoformat wants 0, 3 or 6 digits of fraction and a minutes part in the offset."""
    if not isinstance(value, str):
        return None
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), value, count=1)
    if re.search(r"[+-]\d\d$", text):
        text += ":00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
