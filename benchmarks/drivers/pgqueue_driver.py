"""pgqueue driver: runs in benchmarks/.venvs/pgqueue (``pip install -e`` of this repository).

Enqueue: ``Queue.enqueue`` (its own autocommit transaction per call) and ``Queue.enqueue_many`` of
``Queue.prepare_data`` items (one streamed COPY) from a generator; the same from a prebuilt list is
recorded as ``enqueue_bulk_list``. Workers: the ``pgqueue worker`` CLI in burst mode.
Extra workloads (pgqueue only): drain rate with 0 / 100k / 1M finished jobs kept in ``pgqueue.jobs``,
and the worker's memory; the async API (``AsyncQueue.enqueue`` one by one, ``AsyncQueue.enqueue_many`` of an
async generator, each in ``asyncio.run``) and the drain of ``async def`` no-op jobs (``benchjobs.af``), which
run in the worker's event-loop process. procrastinate and pgqueuer are async libraries: their enqueue and
drain rows are the comparison.

The same driver runs an earlier commit's pgqueue (``run.py --baseline REF``, system "baseline"), in a venv
of its own (``pip install -e`` of an export of that commit). The config's ``baseline`` entry then names the
commit; what that commit's pgqueue lacks is done without, or fails as one recorded workload.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import benchjobs
import pgutil
import psycopg
from base import PgSystem, main, median_of, timed
from common import LongWorker, Recorder, measure_latency, run_drain, venv_bin

import pgqueue
from pgqueue import Job, JobStatus, Queue

try:
    from pgqueue import AsyncQueue
except ImportError:  # a baseline commit without it: the async workloads fail, recorded as errors
    AsyncQueue = None  # type: ignore[assignment,misc]

QUEUE = "bench"


class PgQueue(PgSystem):
    name = "pgqueue"
    drain_configs = {
        "default": "pgqueue worker bench --burst (one child process runs the jobs; claims and "
                   "completions batched automatically)",
        "best": "pgqueue worker bench --burst --simple (SimpleWorker: jobs run in the worker process, no child "
                "process; gives up crash isolation, as RQ's SimpleWorker does)",
    }
    _config_flags = {"default": [], "best": ["--simple"]}

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        # "pgqueue", or "baseline" for an earlier commit: names the logs, the database and the output.
        self.name = cfg.get("system", "pgqueue")
        self.baseline: dict[str, str] | None = cfg.get("baseline")
        self.queue: Queue | None = None

    def versions(self) -> dict[str, str]:
        root = Path(pgqueue.__file__).resolve().parents[1]
        if self.baseline:
            # An export has no .git of its own (git here would describe the checkout around it); and a
            # venv that imports another pgqueue than the export's would compare nothing.
            if root != Path(self.baseline["path"]).resolve():
                raise RuntimeError(f"the baseline venv imports pgqueue from {root}, not from the export "
                                   f"{self.baseline['path']}")
            rev = f"{self.baseline['sha'][:12]}, {self.baseline['ref']}"
        else:
            rev = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"], capture_output=True,
                                 text=True).stdout.strip()
        return {"pgqueue": f"{pgqueue.__version__} ({rev})" if rev else pgqueue.__version__,
                "psycopg": psycopg.__version__}

    def setup(self) -> None:
        self.create_database()
        pgqueue.migrate(self.dsn)
        self.queue = Queue(QUEUE, dsn=self.dsn)

    def teardown(self) -> None:
        try:  # release the DSN before dropping the database (DROP ... WITH (FORCE) copes without it)
            from pgqueue._db import close_shared_connections
        except ImportError:  # a baseline commit without it
            pass
        else:
            close_shared_connections()
        self.drop_database()

    def reset(self) -> None:
        pgutil.execute(self.dsn, "TRUNCATE pgqueue.jobs, pgqueue.workers")

    def enqueue_single(self, n: int) -> None:
        q = self.queue
        assert q is not None
        for i in range(n):
            q.enqueue(benchjobs.f, i)

    def enqueue_bulk(self, n: int) -> None:
        # A generator: enqueue_many streams it, preparing jobs while the server writes the ones before.
        assert self.queue is not None
        self.queue.enqueue_many(Queue.prepare_data(benchjobs.f, args=(i,)) for i in range(n))

    def _enqueue_bulk_list(self, n: int) -> None:
        # The same jobs as one prebuilt list (the shape the other systems' batch APIs take).
        assert self.queue is not None
        self.queue.enqueue_many([Queue.prepare_data(benchjobs.f, args=(i,)) for i in range(n)])

    def drain_cmd(self, config: str) -> list[str]:
        return [venv_bin("pgqueue"), "worker", QUEUE, "--burst", "--quiet", "--dsn", self.dsn,
                *self._config_flags[config]]

    def latency_cmd(self) -> list[str]:
        return [venv_bin("pgqueue"), "worker", QUEUE, "--quiet", "--dsn", self.dsn]

    def drain_window(self) -> tuple[int, float, float]:
        # Finished jobs of this drain (history rows have ids 'hist-*'); started_at is when the worker
        # claimed the job, ended_at when it recorded the outcome (both the database clock).
        return pgutil.query_window(self.dsn, """
            SELECT count(*), extract(epoch FROM min(started_at)), extract(epoch FROM max(ended_at))
            FROM pgqueue.jobs WHERE queue = %s AND status = 'finished' AND id NOT LIKE 'hist-%%'""", (QUEUE,))

    def latency_enqueue(self, k: int) -> Any:
        assert self.queue is not None
        return self.queue.enqueue(benchjobs.f, k)

    def latency_started(self, job: Job) -> float | None:
        fresh = Job.fetch(job.id, dsn=self.dsn)
        if fresh.status == JobStatus.FINISHED:
            return fresh.started_at.timestamp()
        if fresh.status.is_final:
            raise RuntimeError(f"latency job {job.id} ended as {fresh.status}: {fresh.exc_info}")
        return None

    # -- pgqueue only: history and memory ---------------------------------------------------------
    def extra_workloads(self, rec: Recorder) -> None:
        n = self.cfg["bulk_jobs"]

        def bulk_list() -> dict[str, Any]:
            self.reset()
            self.settle()
            return timed(lambda: self._enqueue_bulk_list(n), n)
        rec.run("enqueue_bulk_list", lambda: median_of(self.cfg.get("repeats", 1), bulk_list))
        self._async_workloads(rec)
        for history in self.cfg["history_sizes"]:
            rec.run(f"history.{history}", lambda history=history: self._history_drain(history))

    def _async_workloads(self, rec: Recorder) -> None:
        repeats = self.cfg.get("repeats", 1)
        single, bulk, drained = self.cfg["single_jobs"], self.cfg["bulk_jobs"], self.cfg["drain_jobs"]

        def enqueue_one() -> dict[str, Any]:
            self.reset()
            self.settle()
            return timed(lambda: asyncio.run(self._async_enqueue_single(single)), single)

        def enqueue_bulk() -> dict[str, Any]:
            self.reset()
            self.settle()
            return timed(lambda: asyncio.run(self._async_enqueue_bulk(bulk)), bulk)

        def drain() -> dict[str, Any]:
            self.reset()
            assert self.queue is not None
            self.queue.enqueue_many(Queue.prepare_data(benchjobs.af, args=(i,)) for i in range(drained))
            self.settle()
            return run_drain([self.drain_cmd("default")], env=self.env(), window=self.drain_window, total=drained,
                             log_path=self.logs / f"{self.name}-drain-async.log", timeout=self.cfg["drain_timeout"],
                             max_seconds=self.cfg["drain_max_seconds"])

        rec.run("async_enqueue_single", lambda: median_of(repeats, enqueue_one))
        rec.run("async_enqueue_bulk", lambda: median_of(repeats, enqueue_bulk))
        rec.run("drain_async.default.1p", lambda: median_of(repeats, drain))

    async def _async_enqueue_single(self, n: int) -> None:
        q = AsyncQueue(QUEUE, dsn=self.dsn)
        for i in range(n):
            await q.enqueue(benchjobs.f, i)

    async def _async_enqueue_bulk(self, n: int) -> None:
        async def items() -> Any:
            for i in range(n):
                yield Queue.prepare_data(benchjobs.f, args=(i,))

        await AsyncQueue(QUEUE, dsn=self.dsn).enqueue_many(items())

    def _history_drain(self, history: int) -> dict[str, Any]:
        self.reset()
        t = time.perf_counter()
        if history:
            # Ended jobs as a worker leaves them (result or error kept, ended_at set), spread over the last
            # week, in the same queue. Inserted by SQL because enqueue+drain of 1M jobs would take minutes.
            # One in ten failed, with its error, as a worker leaves a job that ran out of attempts.
            pgutil.execute(self.dsn, f"""
                INSERT INTO pgqueue.jobs (id, queue, func_name, args, status, result, exc_info, attempts,
                                          worker_name, enqueued_at, scheduled_at, started_at, ended_at)
                SELECT 'hist-' || g, '{QUEUE}', 'benchjobs.f', jsonb_build_array(g), st::pgqueue.job_status,
                       CASE WHEN st = 'finished' THEN to_jsonb(g) END,
                       CASE WHEN st = 'failed' THEN 'Traceback ...\nValueError: ' || g END, 1,
                       'history', ts, ts, ts, ts + interval '1 millisecond'
                FROM generate_series(1, {int(history)}) AS g,
                     LATERAL (SELECT now() - (g % 604800) * interval '1 second',
                                     CASE WHEN g % 10 = 0 THEN 'failed' ELSE 'finished' END) AS t(ts, st)
            """)
        insert_s = time.perf_counter() - t
        jobs = self.cfg["drain_jobs"]

        def drain() -> dict[str, Any]:
            pgutil.execute(self.dsn, "DELETE FROM pgqueue.jobs WHERE id NOT LIKE 'hist-%'")  # earlier drains
            self.enqueue_bulk(jobs)
            self.settle()  # VACUUM ANALYZE (history included) + CHECKPOINT
            return run_drain([self.drain_cmd("default")], env=self.env(), window=self.drain_window, total=jobs,
                             log_path=self.logs / f"{self.name}-history-{history}.log",
                             timeout=self.cfg["drain_timeout"], max_seconds=self.cfg["drain_max_seconds"])

        result = median_of(self.cfg.get("repeats", 1), drain)
        # Enqueue-to-start latency on an idle worker with the same history: the claim of a lone job.
        pgutil.execute(self.dsn, "DELETE FROM pgqueue.jobs WHERE id NOT LIKE 'hist-%'")
        self.settle()
        with LongWorker(self.latency_cmd(), self.env(), self.logs / f"{self.name}-history-{history}-latency.log") as w:
            latency = measure_latency(enqueue=self.latency_enqueue, started_at=self.latency_started, worker=w,
                                      samples=max(20, self.cfg["latency_samples"] // 2), warmup=3)
        result.update(latency_p50_ms=latency["p50_ms"], latency_p99_ms=latency["p99_ms"])
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            size = conn.execute("SELECT pg_total_relation_size('pgqueue.jobs')").fetchone()[0]  # type: ignore[index]
        result.update(history=history, history_insert_seconds=round(insert_s, 1),
                      table_size_mb=round(size / 2**20, 1))
        return result


if __name__ == "__main__":
    sys.exit(main(PgQueue))
