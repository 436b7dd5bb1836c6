"""procrastinate driver: runs in benchmarks/.venvs/procrastinate.

Enqueue: ``task.defer(i=...)`` from synchronous code (procrastinate's documented sync path: the app's
``PsycopgConnector`` hands out a ``SyncPsycopgConnector`` when opened synchronously), one INSERT
transaction per call; bulk: ``task.batch_defer(*kwargs)``, one call.
Workers: ``procrastinate --log-level=warning --app=procrastinate_app.app worker --one-shot --queues bench``
(exits when the queue is empty; warning level because procrastinate logs two INFO lines per job, and
the other systems' workers run quiet too); the documented throughput knob is ``--concurrency``
(sub-workers in one process; a synchronous task runs in a thread).
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import version
from typing import Any

import pgutil
import psycopg
from base import PgSystem, main
from common import venv_bin

QUEUE = "bench"
CONCURRENCY = 10


class Procrastinate(PgSystem):
    name = "procrastinate"
    drain_configs = {
        "default": "procrastinate worker --one-shot (concurrency 1, the default)",
        "best": f"procrastinate worker --one-shot --concurrency {CONCURRENCY} (documented way to run several "
                "jobs at once in one worker; job rows kept, as by default)",
    }
    _config_flags = {"default": [], "best": ["--concurrency", str(CONCURRENCY)]}

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        self.app: Any = None
        self.task: Any = None
        self.poll: psycopg.Connection[Any] | None = None

    def versions(self) -> dict[str, str]:
        return {"procrastinate": version("procrastinate"), "psycopg": version("psycopg")}

    def setup(self) -> None:
        self.create_database()
        os.environ["BENCH_DSN"] = self.dsn
        import procrastinate_app  # reads BENCH_DSN

        self.app = procrastinate_app.app
        self.task = procrastinate_app.f
        self.app.open()  # synchronous open: a SyncPsycopgConnector pool
        self.app.schema_manager.apply_schema()
        self.poll = psycopg.connect(self.dsn, autocommit=True)

    def teardown(self) -> None:
        if self.poll is not None:
            self.poll.close()
        if self.app is not None:
            self.app.close()
        self.drop_database()

    def reset(self) -> None:
        pgutil.execute(self.dsn, "TRUNCATE procrastinate_jobs, procrastinate_workers CASCADE")

    def enqueue_single(self, n: int) -> None:
        defer = self.task.defer
        for i in range(n):
            defer(i=i)

    def enqueue_bulk(self, n: int) -> None:
        self.task.batch_defer(*[{"i": i} for i in range(n)])

    def drain_cmd(self, config: str) -> list[str]:
        return [venv_bin("procrastinate"), "--log-level=warning", "--app=procrastinate_app.app", "worker",
                "--one-shot", "--queues", QUEUE, *self._config_flags[config]]

    def latency_cmd(self) -> list[str]:
        return [venv_bin("procrastinate"), "--log-level=warning", "--app=procrastinate_app.app", "worker",
                "--queues", QUEUE]

    def drain_window(self) -> tuple[int, float, float]:
        # procrastinate's event log: 'started' when a worker fetched the job, 'succeeded' when it
        # recorded the result (both the database clock).
        return pgutil.query_window(self.dsn, """
            SELECT count(*) FILTER (WHERE type = 'succeeded'),
                   extract(epoch FROM min(at) FILTER (WHERE type = 'started')),
                   extract(epoch FROM max(at) FILTER (WHERE type = 'succeeded'))
            FROM procrastinate_events""")

    def latency_enqueue(self, k: int) -> int:
        return self.task.defer(i=k)

    def latency_started(self, job_id: int) -> float | None:
        assert self.poll is not None
        row = self.poll.execute(
            "SELECT j.status::text, (SELECT extract(epoch FROM e.at) FROM procrastinate_events e "
            "WHERE e.job_id = j.id AND e.type = 'started' ORDER BY e.at LIMIT 1) "
            "FROM procrastinate_jobs j WHERE j.id = %s", (job_id,)).fetchone()
        if row is None or row[0] in ("todo", "doing"):
            return None
        if row[0] != "succeeded":
            raise RuntimeError(f"latency job {job_id} ended as {row[0]}")
        return float(row[1])


if __name__ == "__main__":
    sys.exit(main(Procrastinate))
