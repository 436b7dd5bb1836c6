"""Prometheus metrics: a worker's own counters (`--metrics-port`, WorkerMetrics), scraped over HTTP, and the
database's gauges (`pgqueue metrics`, DatabaseCollector), which read live rows through partial indexes."""

from __future__ import annotations

import logging
import re
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest
from conftest import snapshot_aged, wait_for
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from pgqueue import ConfigurationError, JobStatus, Queue, Retry, Worker
from pgqueue.health import CHECKS
from pgqueue.metrics import DatabaseCollector, WorkerMetrics
from pgqueue.sql import q

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
_PORT = re.compile(r"metrics on http://[^ ]+:(\d+)/metrics")


def parse(text: str) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return parse(response.read().decode())


def port_in(output: str) -> int:
    found = _PORT.search(output)
    assert found, output
    return int(found.group(1))


def test_a_worker_serves_the_metrics_of_the_runs_it_ran(spawn_worker: Any) -> None:
    worker = spawn_worker("met", "--metrics-port", "0", "--concurrency", "2")
    port = port_in(worker.output)  # logged before "*** Listening on", which spawn_worker waited for
    queue = Queue("met")
    jobs = [queue.enqueue(tj.add, i, i) for i in range(3)]
    bad = queue.enqueue(tj.fail, "nope", retry=Retry(max=1))
    assert [j.wait(timeout=20) for j in jobs] == [0, 2, 4]
    wait_for(lambda: bad.get_status(refresh=True) == JobStatus.FAILED, message="the job to fail twice")

    def runs(status: str, function: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        return ("pgqueue_job_runs_total", (("function", function), ("queue", "met"), ("status", status)))

    # The failure is counted once the database has recorded it, which the job's status may show first.
    samples = wait_for(lambda: (s := scrape(port)).get(runs("failed", "pgq_testjobs.fail")) == 1 and s,
                       message="the last failure in the metrics")
    assert samples[runs("finished", "pgq_testjobs.add")] == 3
    assert samples[runs("retried", "pgq_testjobs.fail")] == 1
    assert samples[("pgqueue_job_failures_total",
                    (("error", "ValueError"), ("function", "pgq_testjobs.fail"), ("queue", "met")))] == 2
    assert samples[("pgqueue_job_duration_seconds_count", (("function", "pgq_testjobs.add"), ("queue", "met")))] == 3
    assert samples[("pgqueue_job_duration_seconds_count", (("function", "pgq_testjobs.fail"), ("queue", "met")))] == 2
    assert samples[("pgqueue_worker_concurrency", ())] == 2
    assert samples[("pgqueue_worker_running_jobs", ())] == 0
    assert not any(name.startswith(("pgqueue_jobs", "pgqueue_workers")) and not name.startswith("pgqueue_jobs_")
                   for name, _ in samples)  # the database's gauges are `pgqueue metrics`'s, not a worker's


def test_worker_metrics_count_killed_runs_and_rescues(db: psycopg.Connection[Any]) -> None:
    """Counted in the supervisor: a run whose process was killed at its timeout, a job of a lost worker."""
    lost = db.execute("INSERT INTO pgqueue.workers (name, hostname, pid, queues, concurrency, lease_seconds, "
                      "heartbeat_at) VALUES ('gone', 'h', 1, '{default}', 1, 1, now() - interval '1 hour') "
                      "RETURNING id").fetchone()[0]  # type: ignore[index]
    held = Queue().enqueue(tj.add, 1, 1, retry=1)
    db.execute("UPDATE pgqueue.jobs SET status = 'running', worker_id = %s, claim_count = 1, attempts = 1, "
               "started_at = now() WHERE id = %s", (lost, held.id))
    hung = Queue().enqueue(tj.spin_forever, job_timeout=0.5)
    metrics = WorkerMetrics()
    Worker(["default"], hooks=[metrics]).work(burst=True)
    assert held.wait(timeout=5) == 2 and hung.get_status(refresh=True) == JobStatus.FAILED

    def value(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    assert value("pgqueue_jobs_rescued_total", queue="default", status="queued") == 1
    assert value("pgqueue_job_runs_total", queue="default", function="pgq_testjobs.add", status="finished") == 1
    assert value("pgqueue_job_runs_total", queue="default", function="pgq_testjobs.spin_forever",
                 status="failed") == 1
    assert value("pgqueue_job_failures_total", queue="default", function="pgq_testjobs.spin_forever",
                 error="JobTimeoutError") == 1
    assert value("pgqueue_worker_concurrency") == 1


def test_a_busy_metrics_port_stops_the_worker_with_one_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        job = Queue().enqueue(tj.add, 1, 2)
        with pytest.raises(ConfigurationError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            Worker(["default"], hooks=[WorkerMetrics(port=port, addr="127.0.0.1")]).work(burst=True)
    assert job.get_status(refresh=True) == JobStatus.QUEUED


@pytest.fixture
def metrics_server(tmp_path: Path) -> Iterator[Callable[..., int]]:
    """Start `pgqueue metrics --port 0 ARGS...`; returns the port it serves on. Stopped at the end."""
    started: list[tuple[subprocess.Popen[bytes], Any]] = []

    def start(*args: str) -> int:
        log_path = tmp_path / f"metrics{len(started)}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - closed at the end
        proc = subprocess.Popen([sys.executable, "-m", "pgqueue.cli", "metrics", "--port", "0", *args],
                                stdout=log, stderr=subprocess.STDOUT)
        started.append((proc, log))
        wait_for(lambda: _PORT.search(log_path.read_text()) or proc.poll() is not None, message="the server")
        assert proc.poll() is None, log_path.read_text()
        return port_in(log_path.read_text())

    yield start
    for proc, log in started:
        proc.kill()
        proc.wait(10)
        log.close()


def _live_worker(db: psycopg.Connection[Any], name: str, heartbeat: str = "now()") -> int:
    return db.execute(f"INSERT INTO pgqueue.workers (name, hostname, pid, queues, concurrency, lease_seconds, "
                      f"heartbeat_at) VALUES (%s, 'h', 1, '{{a,b}}', 1, 30, {heartbeat}) RETURNING id",
                      (name,)).fetchone()[0]  # type: ignore[index]


def test_the_database_gauges_match_the_database(metrics_server: Callable[..., int],
                                                db: psycopg.Connection[Any]) -> None:
    a, b = Queue("a"), Queue("b")
    first = a.enqueue(tj.add, 1, 1)
    a.enqueue(tj.add, 2, 2)
    a.enqueue(tj.noop)
    a.enqueue_in(timedelta(hours=1), tj.noop)  # scheduled, not due
    due = a.enqueue_in(timedelta(hours=1), tj.noop)
    a.enqueue(tj.noop, depends_on=first)  # deferred
    running = b.enqueue(tj.noop)
    finished = Queue("c").enqueue(tj.noop)
    busy = _live_worker(db, "busy")
    _live_worker(db, "idle")
    _live_worker(db, "lost", "now() - interval '1 hour'")
    # A scheduled job whose time has come is runnable (claimed as it is): it counts as queued, and it has
    # waited longest; one of b's jobs runs; c's only job has ended (history: no live series for c).
    db.execute("UPDATE pgqueue.jobs SET scheduled_at = now() - interval '2 hours' WHERE id = %s", (due.id,))
    db.execute("UPDATE pgqueue.jobs SET status = 'running', worker_id = %s, claim_count = 1 WHERE id = %s",
               (busy, running.id))
    db.execute("UPDATE pgqueue.jobs SET status = 'finished', ended_at = now() WHERE id = %s", (finished.id,))

    port = metrics_server("--queue", "z")
    samples = scrape(port)
    jobs = {labels: value for (name, labels), value in samples.items() if name == "pgqueue_jobs"}
    expected = {("a", "queued"): 4, ("a", "scheduled"): 1, ("a", "deferred"): 1, ("a", "running"): 0,
                ("b", "queued"): 0, ("b", "scheduled"): 0, ("b", "deferred"): 0, ("b", "running"): 1,
                **{("z", status): 0 for status in ("queued", "scheduled", "deferred", "running")}}
    assert jobs == {(("queue", queue), ("status", status)): n for (queue, status), n in expected.items()}
    # The same from the table itself.
    counted = dict(db.execute(
        "SELECT queue || '/' || CASE WHEN status IN ('queued', 'scheduled') AND scheduled_at <= now() THEN 'queued' "
        "ELSE status::text END, count(*) FROM pgqueue.jobs WHERE status <> 'finished' GROUP BY 1").fetchall())
    assert counted == {f"{q_}/{s}": n for (q_, s), n in expected.items() if n}
    oldest = {labels[0][1]: value for (name, labels), value in samples.items()
              if name == "pgqueue_oldest_queued_job_age_seconds"}
    assert 7200 <= oldest["a"] < 7200 + 600 and oldest["b"] == 0 and oldest["z"] == 0
    assert samples[("pgqueue_workers", (("state", "busy"),))] == 1
    assert samples[("pgqueue_workers", (("state", "idle"),))] == 1
    assert samples[("pgqueue_database_up", ())] == 1
    problems = {labels[0][1]: value for (name, labels), value in samples.items() if name == "pgqueue_health_problems"}
    assert problems == {check: 1 if check == "lost_workers" else 0 for check in CHECKS}  # the doctor's findings

    db.execute("DELETE FROM pgqueue.jobs WHERE queue = 'a'")  # a queue that empties reports zeros
    after = scrape(port)
    assert all(after[("pgqueue_jobs", (("queue", "a"), ("status", s)))] == 0 for s in
               ("queued", "scheduled", "deferred", "running"))


def test_the_health_gauge_counts_a_transaction_holding_back_vacuum(
        metrics_server: Callable[..., int], db: psycopg.Connection[Any],
        snapshot_holder: psycopg.Connection[Any]) -> None:
    port = metrics_server("--max-transaction-age", "1")  # the doctor's thresholds, as its options
    snapshot_aged(db, snapshot_holder)
    assert scrape(port)[("pgqueue_health_problems", (("check", "transactions"),))] == 1
    snapshot_holder.rollback()
    assert scrape(port)[("pgqueue_health_problems", (("check", "transactions"),))] == 0


def test_a_scrape_reads_partial_indexes_only(db: psycopg.Connection[Any]) -> None:
    """With sequential scans off (as the scrape runs), every part has an index path: no Seq Scan of the jobs
    table, whose history may hold millions of ended jobs."""
    with db.transaction():
        db.execute(q("metrics_settings"), {"statement_timeout": "5000"})
        plans = {name: "\n".join(r[0] for r in db.execute("EXPLAIN " + q(name)).fetchall())
                 for name in ("metrics_jobs", "metrics_workers")}
    assert "Seq Scan on jobs" not in plans["metrics_jobs"], plans["metrics_jobs"]
    for index in ("jobs_claim_idx", "jobs_running_idx", "jobs_deferred_idx"):
        assert index in plans["metrics_jobs"], plans["metrics_jobs"]
    assert "Seq Scan on jobs" not in plans["metrics_workers"], plans["metrics_workers"]


@pytest.mark.nodb
def test_a_scrape_of_an_unreachable_database_says_it_is_down(caplog: pytest.LogCaptureFixture) -> None:
    collector = DatabaseCollector("postgresql://nobody@127.0.0.1:1/none")
    with caplog.at_level(logging.ERROR, logger="pgqueue.metrics"):
        # Registering asks for the names only (describe): it reads nothing, so it cannot fail.
        CollectorRegistry(auto_describe=True).register(collector)
    assert caplog.records == []
    with caplog.at_level(logging.ERROR, logger="pgqueue.metrics"):
        families = {f.name: f for f in collector.collect()}
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["metrics"]
    assert [s.value for s in families["pgqueue_database_up"].samples] == [0]
    assert "pgqueue_jobs" not in families


@pytest.mark.nodb
@pytest.mark.parametrize("code", [
    "pgqueue.Worker(['default'], metrics_port=0)",
    "pgqueue.metrics.DatabaseCollector()",
])
def test_without_prometheus_client_metrics_say_what_to_install(code: str) -> None:
    script = ("import sys; sys.modules['prometheus_client'] = None\n"
              "import pgqueue, pgqueue.metrics\n"
              "pgqueue.Worker(['default'])  # no metrics asked for: no error\n"
              f"try:\n    {code}\nexcept pgqueue.ConfigurationError as exc:\n    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("Prometheus metrics need the prometheus-client package: "
                                   "pip install 'pgqueue[metrics]'")


@pytest.mark.nodb
@pytest.mark.parametrize("args", [["worker", "--burst", "--metrics-port", "0"], ["metrics", "--port", "0"]])
def test_without_prometheus_client_the_cli_says_what_to_install(args: list[str]) -> None:
    script = "import sys; sys.modules['prometheus_client'] = None\nfrom pgqueue.cli import main\nmain()\n"
    done = subprocess.run([sys.executable, "-c", script, *args, "--dsn", "postgresql://nobody@127.0.0.1:1/none"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done
    assert done.stderr.strip().splitlines() == [
        "Error: Prometheus metrics need the prometheus-client package: pip install 'pgqueue[metrics]'"]


@pytest.mark.nodb
def test_the_metrics_server_refuses_a_database_it_cannot_reach() -> None:
    done = subprocess.run([sys.executable, "-m", "pgqueue.cli", "metrics", "--port", "0",
                           "--dsn", "postgresql://nobody@127.0.0.1:1/none"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "cannot reach PostgreSQL" in errors[0], done.stderr
