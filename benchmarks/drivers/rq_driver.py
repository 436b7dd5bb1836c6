"""RQ driver: runs in benchmarks/.venvs/rq, against the local Redis.

Enqueue: ``Queue.enqueue(f, i)`` (one MULTI/EXEC pipeline per job) and ``Queue.enqueue_many`` of
``Queue.prepare_data`` items (one pipeline for the whole batch). Workers: ``rq worker --burst`` with the
default forking ``Worker`` (a new work-horse process per job) and with ``SimpleWorker`` (jobs run in the
worker process; RQ's documented choice when fork-per-job costs too much).

Redis isolation: everything happens in one Redis database (default 13, ``--redis`` of run.py); the
driver refuses to start if that database holds keys outside RQ's ``rq:`` namespace, and resets by
deleting ``rq:*`` keys there only.
"""

from __future__ import annotations

import sys
from importlib.metadata import version
from typing import Any

import benchjobs
import redis
from base import System, main
from common import venv_bin
from rq import Queue
from rq.job import Job, JobStatus
from rq.utils import utcparse

QUEUE = "bench"


class RQ(System):
    name = "rq"
    drain_configs = {
        "default": "rq worker --burst (default Worker: forks a work horse per job)",
        "best": "rq worker --burst --worker-class rq.worker.SimpleWorker (no fork per job)",
    }
    _config_flags = {"default": [], "best": ["--worker-class", "rq.worker.SimpleWorker"]}

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        self.url = cfg["redis_url"]
        self.r = redis.Redis.from_url(self.url)
        self.q = Queue(QUEUE, connection=self.r)

    def versions(self) -> dict[str, str]:
        server = self.r.info("server").get("redis_version", "?")
        return {"rq": version("rq"), "redis-py": version("redis"), "redis-server": str(server)}

    def setup(self) -> None:
        foreign = [k for k in self.r.scan_iter(count=1000) if not k.startswith(b"rq:")]
        if foreign:
            raise RuntimeError(f"Redis database {self.url} holds {len(foreign)} non-RQ key(s) (e.g. "
                               f"{foreign[0]!r}); choose an unused database with run.py --redis")
        self.reset()

    def teardown(self) -> None:
        self.reset()

    def reset(self) -> None:
        batch: list[bytes] = []
        for key in self.r.scan_iter(match="rq:*", count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                self.r.unlink(*batch)
                batch = []
        if batch:
            self.r.unlink(*batch)

    def enqueue_single(self, n: int) -> None:
        enqueue = self.q.enqueue
        for i in range(n):
            enqueue(benchjobs.f, i)

    def enqueue_bulk(self, n: int) -> None:
        self.q.enqueue_many([Queue.prepare_data(benchjobs.f, args=(i,)) for i in range(n)])

    def drain_cmd(self, config: str) -> list[str]:
        return [venv_bin("rq"), "worker", "--burst", "--quiet", "--url", self.url, *self._config_flags[config],
                QUEUE]

    def latency_cmd(self) -> list[str]:
        return [venv_bin("rq"), "worker", "--quiet", "--url", self.url, QUEUE]

    def drain_window(self) -> tuple[int, float, float]:
        # Finished jobs and the worker's own started_at / ended_at on each job hash.
        ids = self.q.finished_job_registry.get_job_ids()
        pipe = self.r.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(Job.key_for(job_id), "started_at", "ended_at")
        starts, ends = [], []
        for started, ended in pipe.execute():
            if started and ended:
                starts.append(utcparse(started.decode()).timestamp())
                ends.append(utcparse(ended.decode()).timestamp())
        return len(ends), min(starts, default=0.0), max(ends, default=0.0)

    def latency_enqueue(self, k: int) -> str:
        return self.q.enqueue(benchjobs.f, k).id

    def latency_started(self, job_id: str) -> float | None:
        job = Job.fetch(job_id, connection=self.r)
        status = job.get_status(refresh=False)
        if status in (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED):
            return None
        if status != JobStatus.FINISHED:
            raise RuntimeError(f"latency job {job_id} ended as {status}")
        return job.started_at.timestamp()


if __name__ == "__main__":
    sys.exit(main(RQ))
