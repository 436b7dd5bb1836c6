"""The raw-SQL floor's worker: the least a PostgreSQL queue worker can do and still be safe.

Loop: claim up to --batch queued rows with ``FOR UPDATE SKIP LOCKED`` (one transaction, committed, so a
claimed job is visibly running), run ``benchjobs.f`` on each, record all results in one UPDATE
(a second transaction). No heartbeats, retries, timeouts, child processes or notifications of
completion: it is a floor to measure the queues against, not a queue.

    python raw_worker.py --dsn DSN --batch 100 [--burst]

Without --burst it sleeps on LISTEN raw_jobs (1 s fallback poll) when the table has nothing queued.
"""

import argparse
import signal
import sys

import benchjobs
import psycopg
from psycopg.types.json import Jsonb

CLAIM = """
UPDATE raw_jobs SET status = 'running', started_at = clock_timestamp()
WHERE id IN (SELECT id FROM raw_jobs WHERE status = 'queued' ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)
RETURNING id, args
"""
COMPLETE_ONE = "UPDATE raw_jobs SET status = 'done', result = %s, ended_at = clock_timestamp() WHERE id = %s"
COMPLETE_MANY = """
UPDATE raw_jobs j SET status = 'done', result = r.result, ended_at = clock_timestamp()
FROM unnest(%s::bigint[], %s::jsonb[]) AS r(id, result) WHERE j.id = r.id
"""

stopping = False


def on_signal(signum, frame):
    global stopping
    stopping = True


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--dsn", required=True)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--burst", action="store_true")
    a = p.parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    conn = psycopg.connect(a.dsn)
    listen = None
    if not a.burst:
        listen = psycopg.connect(a.dsn, autocommit=True)
        listen.execute("LISTEN raw_jobs")
    f = benchjobs.f
    while not stopping:
        with conn.transaction():
            rows = conn.execute(CLAIM, (a.batch,)).fetchall()
        if not rows:
            if a.burst:
                return 0
            for _ in listen.notifies(timeout=1.0, stop_after=1):
                pass
            continue
        done = [(job_id, Jsonb(f(*args))) for job_id, args in rows]
        with conn.transaction():
            if len(done) == 1:
                conn.execute(COMPLETE_ONE, (done[0][1], done[0][0]))
            else:
                conn.execute(COMPLETE_MANY, ([d[0] for d in done], [d[1] for d in done]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
