"""pgqueuer driver: runs in benchmarks/.venvs/pgqueuer.

Enqueue: ``Queries(AsyncpgDriver(conn)).enqueue("f", payload)`` once per job (one autocommit INSERT),
and the list form ``enqueue([...], [...], [...])`` for bulk, one call (as pgqueuer's producer example).
Workers: ``pgq run pgqueuer_app:main --mode drain`` (exits when the queue is empty). The documented
throughput knob is ``--batch-size`` (jobs per dequeue round trip, default 10; pgqueuer's tuning guide
says to raise it for short jobs). Durability stays at the default ``durable`` (logged tables), the
same crash guarantees as the other PostgreSQL systems.
"""

from __future__ import annotations

import asyncio
import sys
from importlib.metadata import version
from typing import Any

import asyncpg
import pgutil
import psycopg
from base import PgSystem, main
from common import venv_bin
from pgqueuer.db import AsyncpgDriver
from pgqueuer.queries import Queries

ENTRYPOINT = "f"
BEST_BATCH = 100


class PgQueuer(PgSystem):
    name = "pgqueuer"
    drain_configs = {
        "default": "pgq run --mode drain (batch size 10, the default; asyncpg driver as in pgqueuer's examples)",
        "best": f"pgq run --mode drain --batch-size {BEST_BATCH} (pgqueuer's tuning guide: larger batches for "
                "short jobs)",
    }
    _batch = {"default": 10, "best": BEST_BATCH}

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        self.loop = asyncio.new_event_loop()
        self.conn: Any = None
        self.q: Queries | None = None
        self.poll: psycopg.Connection[Any] | None = None

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def versions(self) -> dict[str, str]:
        return {"pgqueuer": version("pgqueuer"), "asyncpg": version("asyncpg")}

    def setup(self) -> None:
        self.create_database()
        self.conn = self.run(asyncpg.connect(self.dsn))
        self.q = Queries(AsyncpgDriver(self.conn))
        self.run(self.q.install())
        self.poll = psycopg.connect(self.dsn, autocommit=True)

    def teardown(self) -> None:
        if self.poll is not None:
            self.poll.close()
        if self.conn is not None:
            self.run(self.conn.close())
        self.loop.close()
        self.drop_database()

    def reset(self) -> None:
        pgutil.execute(self.dsn, "TRUNCATE pgqueuer, pgqueuer_log, pgqueuer_statistics")

    def enqueue_single(self, n: int) -> None:
        q = self.q
        assert q is not None

        async def go() -> None:
            for i in range(n):
                await q.enqueue(ENTRYPOINT, str(i).encode())
        self.run(go())

    def enqueue_bulk(self, n: int) -> None:
        assert self.q is not None

        async def go() -> None:
            await self.q.enqueue([ENTRYPOINT] * n, [str(i).encode() for i in range(n)], [0] * n)
        self.run(go())

    def drain_cmd(self, config: str) -> list[str]:
        return [venv_bin("pgq"), "run", "pgqueuer_app:main", "--mode", "drain", "--batch-size",
                str(self._batch[config])]

    def latency_cmd(self) -> list[str]:
        return [venv_bin("pgq"), "run", "pgqueuer_app:main"]

    def drain_window(self) -> tuple[int, float, float]:
        # pgqueuer's log table: a 'picked' row when a worker dequeued the job, a 'successful' row when it
        # wrote the outcome (written in batches, at most ~0.1 s after the job ended).
        return pgutil.query_window(self.dsn, """
            SELECT count(*) FILTER (WHERE status = 'successful'),
                   extract(epoch FROM min(created) FILTER (WHERE status = 'picked')),
                   extract(epoch FROM max(created) FILTER (WHERE status = 'successful'))
            FROM pgqueuer_log""")

    def latency_enqueue(self, k: int) -> int:
        assert self.q is not None
        return int(self.run(self.q.enqueue(ENTRYPOINT, str(k).encode()))[0])

    def latency_started(self, job_id: int) -> float | None:
        assert self.poll is not None
        row = self.poll.execute(
            "SELECT EXISTS (SELECT 1 FROM pgqueuer WHERE id = %s), "
            "(SELECT extract(epoch FROM created) FROM pgqueuer_log WHERE job_id = %s AND status = 'picked' "
            " ORDER BY created LIMIT 1), "
            "(SELECT status::text FROM pgqueuer_log WHERE job_id = %s AND status NOT IN ('queued', 'picked') "
            " ORDER BY created DESC LIMIT 1)", (job_id, job_id, job_id)).fetchone()
        assert row is not None
        still_queued, picked, final = row
        if still_queued or final is None:
            return None
        if final != "successful":
            raise RuntimeError(f"latency job {job_id} ended as {final}")
        return float(picked)


if __name__ == "__main__":
    sys.exit(main(PgQueuer))
