"""Prometheus metrics (``pip install 'pgqueue[metrics]'``; docs/observability.md lists every metric).

Two sources, so that nothing is counted twice when Prometheus adds them up:

- :class:`WorkerMetrics`: what one worker did, counted in its supervisor, which sees every outcome (its job
  processes report to it; a killed one is reported by it): runs by status, failures by error, run time,
  rescues. ``pgqueue worker --metrics-port N`` / ``Worker(metrics_port=N)`` serve them. They are worker
  hooks (:mod:`pgqueue.hooks`), so ``Worker(hooks=[WorkerMetrics(registry=...)])`` adds them to a
  registry of your own instead.
- :class:`DatabaseCollector`: the state of the database, the same whoever asks: live jobs by queue and
  status, the age of the oldest runnable job, live workers, and the problems ``pgqueue doctor`` finds. Read
  on each scrape, through partial indexes and the server's statistics views only. ``pgqueue metrics --port
  N`` serves them (run one per database); or register a collector in your application's registry.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import psycopg

from .exceptions import ConfigurationError, PgQueueError
from .health import CHECKS, Health, Thresholds
from .health import check as check_health
from .hooks import Hooks, JobOutcome, RescuedJob

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

    from .worker import Worker

log = logging.getLogger("pgqueue.metrics")

__all__ = ["DatabaseCollector", "WorkerMetrics", "serve"]

#: Run-time buckets (seconds): from a few milliseconds (most jobs) to an hour.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

#: The statuses of live jobs that DatabaseCollector reports, each queue always all four.
LIVE_STATUSES = ("scheduled", "queued", "deferred", "running")


def prometheus() -> Any:
    """The prometheus_client module, or ConfigurationError saying what to install."""
    try:
        import prometheus_client
    except ImportError:
        raise ConfigurationError("Prometheus metrics need the prometheus-client package: "
                                 "pip install 'pgqueue[metrics]'") from None
    return prometheus_client


def _listen(registry: Any, port: int, addr: str) -> tuple[Any, int]:
    """Serve ``registry`` on http://addr:port/metrics from a daemon thread; the server and the port it got
    (``port`` 0: any free one). ConfigurationError if the port cannot be had."""
    try:
        server, _ = prometheus().start_http_server(port, addr=addr, registry=registry)
    except OSError as exc:
        raise ConfigurationError(f"cannot serve metrics on {addr}:{port}: {exc.strerror or exc}") from None
    return server, server.server_address[1]


class WorkerMetrics(Hooks):
    """One worker's own metrics, as worker hooks (its supervisor counts; nothing runs in the job's process).

    ``port``: serve them over HTTP while the worker runs (``/metrics``; 0: any free port, then in
    :attr:`port`); None: only count, in ``registry`` (default: a registry of its own, :attr:`registry`).
    """

    def __init__(self, port: int | None = None, addr: str = "0.0.0.0", registry: CollectorRegistry | None = None,
                 buckets: Sequence[float] = DURATION_BUCKETS) -> None:
        pc = prometheus()
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535):
            raise ValueError(f"metrics_port must be a port number (0 for any free port), not {port!r}")
        self.port, self.addr = port, addr
        self.registry = pc.CollectorRegistry() if registry is None else registry
        self.runs = pc.Counter(
            "pgqueue_job_runs", "Runs of jobs this worker ran to an end, by what became of them: finished, "
            "failed, retried (failed, another attempt scheduled), superseded (the job was no longer this "
            "worker's)", ["queue", "function", "status"], registry=self.registry)
        self.failures = pc.Counter(
            "pgqueue_job_failures", "Failed runs by error: the exception's class name, or JobTimeoutError, "
            "WorkHorseKilled, LeaseLost", ["queue", "function", "error"], registry=self.registry)
        self.duration = pc.Histogram(
            "pgqueue_job_duration_seconds", "Run time of the runs this worker ran to an end, failed ones too",
            ["queue", "function"], buckets=tuple(buckets), registry=self.registry)
        self.rescued = pc.Counter(
            "pgqueue_jobs_rescued", "Jobs of lost workers that this worker's maintenance rescued: back on their "
            "queue (queued) or failed", ["queue", "status"], registry=self.registry)
        self.concurrency = pc.Gauge("pgqueue_worker_concurrency", "Jobs this worker runs at once",
                                    registry=self.registry)
        self.running = pc.Gauge("pgqueue_worker_running_jobs", "Jobs this worker is running now",
                                registry=self.registry)
        self._worker: Worker | None = None
        self.running.set_function(self._running_jobs)
        # (queue, function, status) -> the runs counter and the duration histogram of those labels: looked
        # up once, as labels() costs more than counting (1.3 us against 0.4, on every outcome).
        self._series: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._server: Any = None

    def _running_jobs(self) -> float:
        worker = self._worker
        return 0.0 if worker is None else float(sum(slot.head_running for slot in list(worker._slots)))

    def on_worker_start(self, worker: Worker) -> None:
        self._worker = worker
        self.concurrency.set(1 if worker._in_process else worker.concurrency)
        if self.port is not None:
            self._server, self.port = _listen(self.registry, self.port, self.addr)
            log.info("Worker %s: metrics on http://%s:%d/metrics", worker.name, self.addr, self.port)

    def on_worker_stop(self, worker: Worker) -> None:
        self._worker = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def on_outcome(self, worker: Worker, outcome: JobOutcome) -> None:
        key = (outcome.queue, outcome.func_name, outcome.status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = (self.runs.labels(*key), self.duration.labels(*key[:2]))
        series[0].inc()
        series[1].observe(outcome.duration)
        if outcome.error_type is not None:
            self.failures.labels(outcome.queue, outcome.func_name, outcome.error_type).inc()

    def on_rescue(self, worker: Worker, jobs: Sequence[RescuedJob]) -> None:
        for job in jobs:
            self.rescued.labels(job.queue, job.status).inc()


class DatabaseCollector:
    """Database-wide gauges, read from ``dsn`` on each scrape (a prometheus_client collector): live jobs by
    queue and status, the age of each queue's oldest runnable job, live workers idle and busy, and what
    ``pgqueue doctor`` finds wrong (``pgqueue_health_problems`` per check, judged by ``thresholds``).

    A queue keeps reporting (zeros) once it has been seen, or if it is in ``queues``, so that a queue that
    empties shows 0 rather than no series. A scrape that cannot read the database reports
    ``pgqueue_database_up 0`` and logs why."""

    def __init__(self, dsn: str | None = None, queues: Iterable[str] = (), statement_timeout: float = 5.0,
                 thresholds: Thresholds | None = None) -> None:
        prometheus()
        self.dsn = dsn
        self.thresholds = thresholds or Thresholds()
        self.statement_timeout = statement_timeout
        self.queues: set[str] = set(queues)
        self._conn: Any = None
        self._lock = threading.Lock()  # the HTTP server runs scrapes in threads; one connection serves them

    def check(self) -> None:
        """Connect, and check the schema: DatabaseUnavailable, SchemaMissing or SchemaOutdated, with a hint."""
        from . import _db, _store

        with self._lock:
            self._connected()
            with _db.translate_errors(self.dsn):
                _store.check_revision(self._conn)

    def _connected(self) -> None:
        from . import _db

        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = _db.connect(self.dsn, role="metrics")

    def _snapshot(self) -> tuple[list[Any], Any, Health | None]:
        """Live jobs and workers, and the doctor's report (None if it could not be made: logged)."""
        from ._store.metrics import metrics_snapshot

        with self._lock:
            self._connected()
            try:
                rows, workers = metrics_snapshot(self._conn, self.statement_timeout)
            except Exception:
                self._conn.close()  # the next scrape connects afresh
                raise
            try:
                return rows, workers, check_health(self._conn, self.thresholds)
            except psycopg.Error as exc:
                log.error("metrics: cannot check the database's health: %s",
                          (str(exc).strip().splitlines() or [repr(exc)])[0])
                return rows, workers, None

    @staticmethod
    def _families() -> dict[str, Any]:
        from prometheus_client.core import GaugeMetricFamily

        return {family.name: family for family in (
            GaugeMetricFamily("pgqueue_database_up", "Whether the last scrape could read pgqueue's tables"),
            GaugeMetricFamily("pgqueue_jobs", "Live jobs by queue and status: scheduled (waiting for their time), "
                              "queued (runnable now), deferred (waiting for dependencies), running",
                              labels=["queue", "status"]),
            GaugeMetricFamily("pgqueue_oldest_queued_job_age_seconds", "How long the job of each queue that became "
                              "runnable first has waited (0: none waits)", labels=["queue"]),
            GaugeMetricFamily("pgqueue_workers", "Live workers (heartbeat within their lease): busy running a job, "
                              "or idle", labels=["state"]),
            GaugeMetricFamily("pgqueue_health_problems", "Problems `pgqueue doctor` finds, by check (0: none): "
                              "a transaction holding back the xmin horizon, dead rows, lost workers, stuck jobs, ...",
                              labels=["check"]),
            GaugeMetricFamily("pgqueue_scrape_duration_seconds", "How long reading these gauges took"))}

    def describe(self) -> Iterator[Any]:
        """The families, without reading the database (what a registry asks when the collector is registered)."""
        yield from self._families().values()

    def collect(self) -> Iterator[Any]:
        started = time.perf_counter()
        families = self._families()
        up = families.pop("pgqueue_database_up")
        try:
            rows, workers, report = self._snapshot()
        except (PgQueueError, psycopg.Error) as exc:
            log.error("metrics: cannot read the database: %s", (str(exc).strip().splitlines() or [repr(exc)])[0])
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        jobs, oldest = families["pgqueue_jobs"], families["pgqueue_oldest_queued_job_age_seconds"]
        self.queues.update(r.queue for r in rows)
        counts = {(r.queue, r.status): r for r in rows}
        for queue in sorted(self.queues):
            for status in LIVE_STATUSES:
                row = counts.get((queue, status))
                jobs.add_metric([queue, status], row.jobs if row else 0)
            waiting = counts.get((queue, "queued"))
            oldest.add_metric([queue], max(0.0, waiting.oldest_seconds or 0.0) if waiting else 0.0)
        families["pgqueue_workers"].add_metric(["idle"], workers.idle)
        families["pgqueue_workers"].add_metric(["busy"], workers.busy)
        problems = families.pop("pgqueue_health_problems")
        if report is not None:
            for name in CHECKS:
                problems.add_metric([name], sum(f.check == name for f in report.problems))
            families["pgqueue_health_problems"] = problems
        families["pgqueue_scrape_duration_seconds"].add_metric([], time.perf_counter() - started)
        yield up
        yield from families.values()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def serve(port: int, addr: str = "0.0.0.0", dsn: str | None = None, queues: Iterable[str] = (),
          stop: threading.Event | None = None, thresholds: Thresholds | None = None) -> None:
    """Serve :class:`DatabaseCollector`'s gauges on http://addr:port/metrics until ``stop`` is set (or
    forever): ``pgqueue metrics``."""
    pc = prometheus()
    registry = pc.CollectorRegistry()
    collector = DatabaseCollector(dsn, queues, thresholds=thresholds)
    collector.check()  # a wrong URL or a missing schema: one clear error now, not a gauge saying 0 later
    registry.register(collector)
    server, bound = _listen(registry, port, addr)
    log.info("pgqueue metrics: the database's metrics on http://%s:%d/metrics", addr, bound)
    try:
        (stop or threading.Event()).wait()
    finally:
        server.shutdown()
        server.server_close()
        collector.close()
