"""What the supervisor and the processes that run jobs send each other: a claimed job (Task), what running it
produced (Outcome), and the start and end of its callback."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

#: RQ's exception handler: ``handler(job, exc_type, exc_value, traceback)``; returning False (anything false
#: but None) stops the chain.
ExceptionHandler = Callable[..., Any]


def handed_over(task: Task) -> tuple[str, tuple[str, int]]:
    """What a child process sends instead of an outcome for a job it hands over (see HandOver)."""
    return ("async", (task.id, task.claim))


class Task(NamedTuple):
    """A claimed job as the supervisor hands it to whatever runs it."""

    id: str
    queue: str
    func_name: str
    args_json: str
    kwargs_json: str
    timeout: float
    attempt: int  # the run number this will be if it starts (attempts so far + 1)
    meta_json: str
    claim: int  # the job's claim_count for this claim: what completions are fenced on
    marked: bool  # the claim already recorded the run as started (it went to an idle process)
    worker_id: int
    callbacks: str | None = None  # jobs.callbacks (JSON text), None for most jobs
    retry_on: Sequence[str] | None = None  # jobs.retry_on: dotted paths of the exceptions retried (None: all)
    traceparent: str | None = None  # jobs.traceparent: the span that enqueued the job (pgqueue.tracing)


class Outcome(NamedTuple):
    """What running a task produced: ``ok`` with ``result_json``, or not, with ``exc_info`` (text) and
    ``error`` (type and message) for the job's history."""

    id: str
    attempt: int
    claim: int
    ok: bool
    result_json: str | None
    exc_info: str | None
    error_type: str | None
    error_message: str | None
    duration: float = 0.0  # seconds the run took, so started_at = ended_at - duration
    recorded: bool = False  # an atomic job's completion was already committed with its own writes
    retryable: bool = True  # False: a failure that fails the job at once (not in its Retry(on=...))
    snooze: float | None = None  # the job raised Snooze(seconds): it runs again that long after (not ok)


class CallbackStart(NamedTuple):
    """Sent just before the outcome of a job that has a callback for it: after the outcome, the job's process
    runs this callback, so the supervisor gives the callback its own deadline and records how it ends."""

    id: str
    claim: int
    attempt: int
    name: str  # the option: on_success, on_failure, on_stopped
    func: str
    timeout: float  # seconds; infinity for none


class CallbackEnd(NamedTuple):
    """The callback returned (``error_type`` None), or failed: it raised, or was stopped at its timeout."""

    id: str
    claim: int
    attempt: int
    name: str
    func: str
    error_type: str | None
    message: str | None
    traceback: str | None


#: What a job's process sends its supervisor: an outcome, the start or end of a callback,
#: ("skipped", [(job id, claim), ...]) for tasks not started (told to stop, or given back), or
#: ("async", (job id, claim)) for an async job handed over (_execute.HandOver).
Message = Outcome | CallbackStart | CallbackEnd | tuple[str, Any]
