"""OpenTelemetry tracing: a span per enqueue call (pgqueue.tracing.instrument), its traceparent stored with the
job, and a span per run in the job's process (pgqueue.tracing.Tracing hooks), child of the enqueue's span."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pgq_obs_jobs as obs
import pgq_testjobs as tj
import psycopg
import pytest
from conftest import run_cli
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracerProvider, SpanKind, StatusCode

from pgqueue import JobStatus, Queue, SimpleWorker
from pgqueue import tracing as pgqueue_tracing
from pgqueue.tracing import Tracing


class Spans:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("tests")

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.name == name]


@pytest.fixture
def spans() -> Iterator[Spans]:
    """An SDK tracer provider whose spans are kept in memory; enqueues of this process traced through it."""
    found = Spans()
    pgqueue_tracing.instrument(found.provider)
    try:
        yield found
    finally:
        pgqueue_tracing.uninstrument()


def traceparent(db: psycopg.Connection[Any], job_id: str) -> str | None:
    return db.execute("SELECT traceparent FROM pgqueue.jobs WHERE id = %s", (job_id,)).fetchone()[0]  # type: ignore[index]


def w3c(span: ReadableSpan) -> str:
    """The span's W3C traceparent (version 00)."""
    context = span.context
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def test_the_span_that_enqueued_a_job_is_the_parent_of_its_run(spans: Spans, db: psycopg.Connection[Any]) -> None:
    with spans.tracer.start_as_current_span("request") as request:
        job = Queue("traced").enqueue(obs.current_span)
        bad = Queue("traced").enqueue(tj.fail, "oops")
    trace_id = request.get_span_context().trace_id
    [enqueue] = spans.named("enqueue pgq_obs_jobs.current_span")
    assert enqueue.kind == SpanKind.PRODUCER and enqueue.parent is not None
    assert enqueue.parent.span_id == request.get_span_context().span_id
    assert enqueue.attributes["pgqueue.job.id"] == job.id and enqueue.attributes["pgqueue.job.queue"] == "traced"
    assert traceparent(db, job.id) == w3c(enqueue)

    assert SimpleWorker(["traced"], hooks=[Tracing(spans.provider)]).work(burst=True)
    [run] = spans.named("run pgq_obs_jobs.current_span")
    assert run.kind == SpanKind.CONSUMER and run.parent is not None
    assert run.parent.span_id == enqueue.context.span_id and run.context.trace_id == trace_id
    assert dict(run.attributes or {}) == {
        "messaging.system": "pgqueue", "messaging.operation.type": "process", "messaging.destination.name": "traced",
        "messaging.message.id": job.id, "pgqueue.job.id": job.id, "pgqueue.job.queue": "traced",
        "pgqueue.job.function": "pgq_obs_jobs.current_span", "pgqueue.job.attempt": 1,
        "pgqueue.job.status": "finished"}
    # The run's span is current while the function runs: the spans a job makes are its children.
    assert job.wait(timeout=5) == {"trace_id": f"{trace_id:032x}", "span_id": f"{run.context.span_id:016x}"}

    [failed] = spans.named("run pgq_testjobs.fail")
    [bad_enqueue] = spans.named("enqueue pgq_testjobs.fail")
    assert failed.parent is not None and failed.parent.span_id == bad_enqueue.context.span_id
    assert failed.status.status_code == StatusCode.ERROR and failed.status.description == "ValueError: oops"
    assert failed.attributes is not None and failed.attributes["pgqueue.job.status"] == "failed"
    assert failed.attributes["error.type"] == "ValueError"
    assert [e.name for e in failed.events] == ["exception"]
    assert bad.get_status(refresh=True) == JobStatus.FAILED


@pytest.mark.parametrize("func", [obs.current_span, obs.async_current_span])
def test_the_trace_goes_from_the_enqueuer_to_a_worker_process(spans: Spans, tmp_path: Path,
                                                              db: psycopg.Connection[Any], func: Any) -> None:
    """The worker is another process (the CLI), the run in its child (an async job's: its event-loop
    process): spans come back through a file."""
    name = f"pgq_obs_jobs.{func.__name__}"
    with spans.tracer.start_as_current_span("request") as request:
        job = Queue().enqueue(func)
    [enqueue] = spans.named(f"enqueue {name}")
    path = tmp_path / "spans.jsonl"
    done = run_cli("worker", "--burst", "--hooks", "pgq_obs_jobs.file_tracing", env={"PGQ_SPANS": str(path)})
    assert done.returncode == 0, done.stderr
    [run] = [json.loads(line) for line in path.read_text().splitlines()]
    trace_id = f"{request.get_span_context().trace_id:032x}"
    assert run["name"] == f"run {name}" and run["kind"] == "SpanKind.CONSUMER"
    assert run["context"]["trace_id"] == "0x" + trace_id
    assert run["parent_id"] == f"0x{enqueue.context.span_id:016x}"
    assert run["attributes"]["pgqueue.job.id"] == job.id and run["attributes"]["pgqueue.job.status"] == "finished"
    assert job.wait(timeout=5) == {"trace_id": trace_id, "span_id": run["context"]["span_id"][2:]}


def test_enqueue_many_is_one_span_whose_context_every_job_keeps(spans: Spans, db: psycopg.Connection[Any]) -> None:
    queue = Queue("bulk")
    with spans.tracer.start_as_current_span("import"):
        plain = queue.enqueue_many(Queue.prepare_data(tj.add, args=(i, i)) for i in range(5))  # COPY
        first = queue.enqueue(tj.noop)
        chained = queue.enqueue_many([Queue.prepare_data(tj.noop, depends_on=first),  # insert_jobs
                                      Queue.prepare_data(tj.noop, job_id="named")])
    copied, inserted = spans.named("enqueue_many bulk")
    assert copied.attributes is not None and copied.attributes["messaging.batch.message_count"] == 5
    assert inserted.attributes is not None and inserted.attributes["messaging.batch.message_count"] == 2
    assert len(spans.exporter.get_finished_spans()) == 4  # the calls' own spans only: import, 2 batches, 1 job
    for jobs, span in ((plain, copied), (chained, inserted)):
        assert {traceparent(db, j.id) for j in jobs} == {w3c(span)}
    assert Queue("bulk").enqueue_many([]) == []


def test_nothing_is_stored_without_a_recording_tracer(db: psycopg.Connection[Any]) -> None:
    active = Spans()
    with active.tracer.start_as_current_span("request"):
        untraced = Queue().enqueue(tj.noop)  # tracing not instrumented
        pgqueue_tracing.instrument(NoOpTracerProvider())  # instrumented, but no provider records anything
        try:
            unrecorded = Queue().enqueue(tj.noop)
            many = Queue().enqueue_many([Queue.prepare_data(tj.noop)])
        finally:
            pgqueue_tracing.uninstrument()
    assert [traceparent(db, j.id) for j in (untraced, unrecorded, *many)] == [None, None, None]


@pytest.mark.nodb
def test_without_opentelemetry_tracing_says_what_to_install() -> None:
    script = ("import sys; sys.modules['opentelemetry'] = None\n"
              "import pgqueue, pgqueue.tracing\n"
              "for make in (pgqueue.tracing.instrument, pgqueue.tracing.Tracing):\n"
              "    try:\n        make()\n    except pgqueue.ConfigurationError as exc:\n        print(exc)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    says = "tracing needs the opentelemetry-api package: pip install 'pgqueue[tracing]'"
    assert done.stdout.splitlines() == [says, says]


@pytest.mark.nodb
def test_without_opentelemetry_the_worker_says_what_to_install() -> None:
    script = "import sys; sys.modules['opentelemetry'] = None\nfrom pgqueue.cli import main\nmain()\n"
    done = subprocess.run([sys.executable, "-c", script, "worker", "--burst", "--hooks", "pgqueue.tracing.Tracing",
                           "--dsn", "postgresql://nobody@127.0.0.1:1/none"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done
    assert done.stderr.strip().splitlines() == [
        "Error: tracing needs the opentelemetry-api package: pip install 'pgqueue[tracing]'"]
