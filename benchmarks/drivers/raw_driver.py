"""Raw-SQL floor driver: runs in benchmarks/.venvs/raw (psycopg 3 only).

A minimal jobs table (bigserial id, jsonb args, status text, result, three timestamps; one partial index
on queued rows). Enqueue: a single ``INSERT`` + COMMIT per job; bulk: ``COPY``. Workers: raw_worker.py,
claim + complete with ``FOR UPDATE SKIP LOCKED``, batch 1 ("default") and batch 100 ("best").
For the latency workload the enqueue also sends ``NOTIFY raw_jobs`` in the same transaction, and the
long-running worker sleeps on LISTEN.
"""

from __future__ import annotations

import sys
from importlib.metadata import version
from typing import Any

import pgutil
import psycopg
from base import PgSystem, main
from common import HERE
from psycopg.types.json import Jsonb

SCHEMA = """
CREATE TABLE raw_jobs (
    id          bigserial PRIMARY KEY,
    args        jsonb NOT NULL,
    status      text NOT NULL DEFAULT 'queued',
    result      jsonb,
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    started_at  timestamptz,
    ended_at    timestamptz
);
CREATE INDEX raw_jobs_queued_idx ON raw_jobs (id) WHERE status = 'queued';
"""


class Raw(PgSystem):
    name = "raw"
    drain_configs = {
        "default": "raw_worker.py --batch 1 (claim 1 row with FOR UPDATE SKIP LOCKED, commit, run, "
                   "UPDATE ... done, commit)",
        "best": "raw_worker.py --batch 100 (same, 100 rows per claim and per completing UPDATE)",
    }
    _batch = {"default": 1, "best": 100}

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        self.conn: psycopg.Connection[Any] | None = None

    def versions(self) -> dict[str, str]:
        return {"psycopg": version("psycopg")}

    def setup(self) -> None:
        self.create_database()
        pgutil.execute(self.dsn, SCHEMA)
        self.conn = psycopg.connect(self.dsn, autocommit=True)

    def teardown(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.drop_database()

    def reset(self) -> None:
        pgutil.execute(self.dsn, "TRUNCATE raw_jobs")

    def enqueue_single(self, n: int) -> None:
        conn = self.conn
        assert conn is not None
        for i in range(n):  # autocommit: each INSERT is its own transaction
            conn.execute("INSERT INTO raw_jobs (args) VALUES (%s)", (Jsonb([i]),))

    def enqueue_bulk(self, n: int) -> None:
        conn = self.conn
        assert conn is not None
        with conn.transaction(), conn.cursor() as cur, cur.copy("COPY raw_jobs (args) FROM STDIN") as copy:
            for i in range(n):
                copy.write_row((f"[{i}]",))

    def _worker(self, batch: int, burst: bool) -> list[str]:
        return [sys.executable, str(HERE / "raw_worker.py"), "--dsn", self.dsn, "--batch", str(batch),
                *(["--burst"] if burst else [])]

    def drain_cmd(self, config: str) -> list[str]:
        return self._worker(self._batch[config], True)

    def latency_cmd(self) -> list[str]:
        return self._worker(1, False)

    def drain_window(self) -> tuple[int, float, float]:
        return pgutil.query_window(self.dsn, "SELECT count(*), extract(epoch FROM min(started_at)), "
                                             "extract(epoch FROM max(ended_at)) FROM raw_jobs WHERE status = 'done'")

    def latency_enqueue(self, k: int) -> int:
        conn = self.conn
        assert conn is not None
        with conn.transaction():
            job_id = conn.execute("INSERT INTO raw_jobs (args) VALUES (%s) RETURNING id", (Jsonb([k]),)).fetchone()[0]
            conn.execute("NOTIFY raw_jobs")
        return int(job_id)

    def latency_started(self, job_id: int) -> float | None:
        assert self.conn is not None
        row = self.conn.execute("SELECT status, extract(epoch FROM started_at) FROM raw_jobs WHERE id = %s",
                                (job_id,)).fetchone()
        if row is None or row[0] != "done":
            return None
        return float(row[1])


if __name__ == "__main__":
    sys.exit(main(Raw))
