"""OpenTelemetry tracing (``pip install 'pgqueue[tracing]'``; docs/observability.md).

- Enqueue side: :func:`instrument` makes every ``enqueue`` / ``enqueue_many`` call of this process a span
  (``enqueue FUNCTION`` / ``enqueue_many QUEUE``, kind PRODUCER), and stores its W3C traceparent with the
  jobs (the ``jobs.traceparent`` column).
- Worker side: :class:`Tracing`, worker hooks (``pgqueue worker --hooks pgqueue.tracing.Tracing``), makes
  each run a span (``run FUNCTION``, kind CONSUMER) in the job's process, child of the span that enqueued
  the job, and current while the function runs: the spans the job makes are its children.

Spans go to the tracer provider you configure (the OpenTelemetry SDK, or ``opentelemetry-instrument``).
Without one, OpenTelemetry's API records nothing, so nothing is stored either: a job gets a traceparent
only from a span that is recording.
"""

from __future__ import annotations

import contextvars
import multiprocessing.util
import os
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .exceptions import ConfigurationError
from .hooks import Hooks

if TYPE_CHECKING:
    from .job import Job
    from .queue import EnqueueData, Queue

__all__ = ["Tracing", "instrument", "uninstrument"]

#: The enqueue side's tracer while :func:`instrument` is in force; None otherwise (queue.py tests it).
tracer: Any = None
# Set while an enqueue's span is open: what the call does inside it (enqueue_many's inserts) opens none.
_inside: contextvars.ContextVar[bool] = contextvars.ContextVar("pgqueue_tracing_inside", default=False)


def _otel() -> Any:
    """opentelemetry.trace, or ConfigurationError saying what to install."""
    try:
        from opentelemetry import trace
    except ImportError:
        raise ConfigurationError("tracing needs the opentelemetry-api package: "
                                 "pip install 'pgqueue[tracing]'") from None
    return trace


def _tracer(tracer_provider: Any) -> Any:
    from . import __version__

    return _otel().get_tracer("pgqueue", __version__, tracer_provider=tracer_provider)


def instrument(tracer_provider: Any = None) -> None:
    """Trace this process's enqueues: a span per ``enqueue`` (``enqueue_call``, ``enqueue_at``, ...) and per
    ``enqueue_many`` call, its traceparent stored with the jobs. ``tracer_provider``: OpenTelemetry's global
    one by default (set later, it is used from then on)."""
    global tracer
    tracer = _tracer(tracer_provider)


def uninstrument() -> None:
    """Stop tracing enqueues."""
    global tracer
    tracer = None


def inside() -> bool:
    return _inside.get()


def traceparent(span: Any) -> str | None:
    """The W3C traceparent of ``span``, if it records (a span of no configured provider does not)."""
    if not span.is_recording():
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, context=_otel().set_span_in_context(span))
    return carrier.get("traceparent")


def _mark(data: EnqueueData, parent: str) -> EnqueueData:
    data.traceparent = parent
    data.simple = False  # the shortest statements have no traceparent column
    return data


def _attributes(queue: Queue) -> dict[str, Any]:
    return {"messaging.system": "pgqueue", "messaging.operation.type": "send",
            "messaging.destination.name": queue.name, "pgqueue.job.queue": queue.name}


def insert(queue: Queue, batch: list[EnqueueData], connection: Any, batch_id: str | None = None) -> list[Job]:
    """Queue._insert (enqueue, enqueue_call, ...) in a span of its own."""
    from opentelemetry.trace import SpanKind

    name = f"enqueue {batch[0].func_name}" if len(batch) == 1 else f"enqueue_many {queue.name}"
    with tracer.start_as_current_span(name, kind=SpanKind.PRODUCER, attributes=_attributes(queue)) as span:
        parent = traceparent(span)
        token = _inside.set(True)
        try:
            jobs = queue._insert([_mark(d, parent) for d in batch] if parent else batch, connection, batch_id)
        finally:
            _inside.reset(token)
        if len(jobs) == 1:
            span.set_attribute("messaging.message.id", jobs[0].id)
            span.set_attribute("pgqueue.job.id", jobs[0].id)
            span.set_attribute("pgqueue.job.function", jobs[0].func_name)
        else:
            span.set_attribute("messaging.batch.message_count", len(jobs))
        return jobs


def enqueue_many(queue: Queue, items: Iterable[EnqueueData], connection: Any) -> list[Job]:
    """Queue.enqueue_many in a span of its own; ``items`` stays lazy (a generator is marked as it is read)."""
    from opentelemetry.trace import SpanKind

    with tracer.start_as_current_span(f"enqueue_many {queue.name}", kind=SpanKind.PRODUCER,
                                      attributes=_attributes(queue)) as span:
        parent = traceparent(span)
        token = _inside.set(True)
        try:
            jobs = queue.enqueue_many(items if parent is None else _marked(items, parent), connection)
        finally:
            _inside.reset(token)
        span.set_attribute("messaging.batch.message_count", len(jobs))
        return jobs


def _marked(items: Iterable[Any], parent: str) -> Iterator[Any]:
    from .queue import EnqueueData

    for item in items:
        yield _mark(item, parent) if isinstance(item, EnqueueData) else item  # enqueue_many refuses the others


class Tracing(Hooks):
    """Worker hooks: a span per run, in the job's process, child of the span that enqueued the job (if
    tracing was on there), with the attributes ``pgqueue.job.id``, ``.queue``, ``.function``, ``.attempt``,
    ``.status`` (finished, failed) and, for a failure, ``error.type``, an exception event and status ERROR.

    ``tracer_provider``: OpenTelemetry's global one by default. When a job process exits (the worker stops)
    the provider is flushed, so that a BatchSpanProcessor loses none of its spans. A run whose process is
    killed (a hard timeout, a crash) never ends its span, so it is not exported: the supervisor's metrics
    count it."""

    def __init__(self, tracer_provider: Any = None) -> None:
        self._provider = tracer_provider
        self._tracer = _tracer(tracer_provider)
        from opentelemetry import context
        from opentelemetry.trace import SpanKind
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        # Looked up once: an import statement per job costs a microsecond each.
        self._context, self._consumer, self._propagator = context, SpanKind.CONSUMER, TraceContextTextMapPropagator()
        self._in_context = _otel().set_span_in_context
        self._open: dict[int, tuple[Any, Any]] = {}  # id(job) -> (its span, the context token)
        self._pid = 0  # the process whose exit flushes the provider

    def _flush(self) -> None:
        provider = self._provider if self._provider is not None else _otel().get_tracer_provider()
        flush = getattr(provider, "force_flush", None)
        if flush is not None:
            flush()

    def before_job(self, job: Job) -> None:
        if self._pid != os.getpid():  # a job process exits by os._exit, after multiprocessing's finalizers
            self._pid = os.getpid()
            multiprocessing.util.Finalize(None, self._flush, exitpriority=10)
        parent = None
        if job._traceparent:
            parent = self._propagator.extract({"traceparent": job._traceparent})
        span = self._tracer.start_span(f"run {job.func_name}", context=parent, kind=self._consumer, attributes={
            "messaging.system": "pgqueue", "messaging.operation.type": "process",
            "messaging.destination.name": job.queue, "messaging.message.id": job.id, "pgqueue.job.id": job.id,
            "pgqueue.job.queue": job.queue, "pgqueue.job.function": job.func_name,
            "pgqueue.job.attempt": job.attempts})
        self._open[id(job)] = (span, self._context.attach(self._in_context(span)))

    def _close(self, job: Job) -> Any:
        span, token = self._open.pop(id(job), (None, None))
        if token is not None:
            self._context.detach(token)
        return span

    def after_job(self, job: Job, result: Any) -> None:
        span = self._close(job)
        if span is not None:
            span.set_attribute("pgqueue.job.status", "finished")
            span.end()

    def on_failure(self, job: Job, exc_type: type[BaseException], exc: BaseException,
                   tb: TracebackType | None) -> None:
        from opentelemetry.trace import Status, StatusCode

        span = self._close(job)
        if span is not None:
            span.set_attribute("pgqueue.job.status", "failed")
            span.set_attribute("error.type", exc_type.__name__)
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{exc_type.__name__}: {exc}"))
            span.end()
