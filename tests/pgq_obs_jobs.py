"""Worker hooks, job functions and tracing setup for tests/test_hooks.py, test_metrics.py and
test_tracing.py. Workers import them by dotted path (tests/ is on PYTHONPATH)."""

from __future__ import annotations

import contextvars
import os
from collections.abc import Sequence
from typing import Any

import pgq_testjobs as tj

from pgqueue import Hooks, Job
from pgqueue.hooks import JobOutcome, RescuedJob

#: Set by Recorder.before_job; job functions read it (a hook's context is the job's).
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


def note(job_id: str | None, tag: str) -> None:
    """One row of pgq_test.runs: the hook that ran, what it was given, in which process."""
    tj._db().execute("INSERT INTO pgq_test.runs (job_id, tag, pid) VALUES (%s, %s, %s)", (job_id, tag, os.getpid()))


class Recorder(Hooks):
    """Notes every call as a row of pgq_test.runs (tag ``NAME:method:...``)."""

    name = "first"

    def before_job(self, job: Job) -> None:
        REQUEST_ID.set(f"{self.name}:{job.id}")
        note(job.id, f"{self.name}:before:{job.func_name}:{job.queue}:{job.attempts}:{job.args}:{job.status}")

    def after_job(self, job: Job, result: Any) -> None:
        note(job.id, f"{self.name}:after:{result!r}")

    def on_failure(self, job: Job, exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
        note(job.id, f"{self.name}:failure:{exc_type.__name__}:{exc}:{tb is not None}")

    def on_worker_start(self, worker: Any) -> None:
        note(None, f"{self.name}:start:{worker.worker_id is not None}")

    def on_worker_stop(self, worker: Any) -> None:
        note(None, f"{self.name}:stop")

    def on_outcome(self, worker: Any, outcome: JobOutcome) -> None:
        note(outcome.job_id, f"{self.name}:outcome:{outcome.func_name}:{outcome.queue}:{outcome.attempt}:"
                             f"{outcome.status}:{outcome.error_type}")

    def on_rescue(self, worker: Any, jobs: Sequence[RescuedJob]) -> None:
        for job in jobs:
            note(job.job_id, f"{self.name}:rescue:{job.queue}:{job.status}")


class Second(Recorder):
    name = "second"


class Broken(Hooks):
    """Every hook raises."""

    def before_job(self, job: Job) -> None:
        raise RuntimeError("before_job is broken")

    def after_job(self, job: Job, result: Any) -> None:
        raise RuntimeError("after_job is broken")

    def on_failure(self, job: Job, exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
        raise RuntimeError("on_failure is broken")

    def on_outcome(self, worker: Any, outcome: JobOutcome) -> None:
        raise RuntimeError("on_outcome is broken")

    def on_worker_stop(self, worker: Any) -> None:
        raise RuntimeError("on_worker_stop is broken")


class BrokenStart(Hooks):
    def on_worker_start(self, worker: Any) -> None:
        raise RuntimeError("cannot start: no Sentry DSN")


class NotHooks:
    """Has none of the hooks' methods."""

    def before(self, job: Job) -> None:
        pass


def request_id() -> str:
    """The job function: what REQUEST_ID holds while it runs."""
    return REQUEST_ID.get()


async def async_request_id() -> str:
    """The same, as an ``async def`` job (run on the worker's event loop)."""
    return REQUEST_ID.get()


# -- tracing in a worker process: spans written to a file, one JSON object per line ------------------------
def file_tracing() -> Hooks:
    """pgqueue.tracing.Tracing with an SDK provider of its own that writes spans to the file $PGQ_SPANS (the
    job's process appends to it: it is forked with the open file). In batches, sent only when a minute has
    passed or the process exits: what Tracing flushes when the job's process exits."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    from pgqueue.tracing import Tracing

    provider = TracerProvider()
    out = open(os.environ["PGQ_SPANS"], "a")  # noqa: SIM115 - open for the life of the process
    provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(
        out=out, formatter=lambda span: span.to_json(indent=None) + "\n"), schedule_delay_millis=60_000))
    return Tracing(tracer_provider=provider)


def current_span() -> dict[str, str]:
    """The job function: the span current while it runs, as hex ids (what a span it made would be a child of)."""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


async def async_current_span() -> dict[str, str]:
    """current_span as an ``async def`` job: its run's span is current in its asyncio task."""
    return current_span()
