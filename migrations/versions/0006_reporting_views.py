"""Reporting: the views pgqueue.queue_overview and pgqueue.throughput, and the function
pgqueue.runtime_percentiles(period), documented in docs/reporting.md.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

Additive only: two views and a function, nothing of 0005 changed (tests/test_schema.py checks), so the
previous version of pgqueue keeps working on this revision. A view costs nothing until it is queried; none
of these is on an enqueue's or a worker's path.
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Frozen here as this revision wrote it; pgqueue/sql/schema.sql carries it on to newer revisions.
UPGRADE = r"""
-- One row per queue that has live jobs or jobs that ended in the last hour: counts by status, the oldest
-- job waiting to run, and whether workers take its jobs. The live statuses come through their partial
-- indexes (the claim index, jobs_running_idx, and jobs_deferred_idx, all of whose entries
-- `depends_on @> '{}'` reads), the last hour through jobs_ended_at_idx: the cost follows the backlog and
-- the last hour's jobs, never the history kept.
CREATE VIEW pgqueue.queue_overview AS
WITH jobs AS (
    SELECT queue, status, scheduled_at FROM pgqueue.jobs WHERE status IN ('queued', 'scheduled')
    UNION ALL
    SELECT queue, status, scheduled_at FROM pgqueue.jobs WHERE status = 'running'
    UNION ALL
    SELECT queue, status, scheduled_at FROM pgqueue.jobs WHERE status = 'deferred' AND depends_on @> '{}'
    UNION ALL
    SELECT queue, status, scheduled_at FROM pgqueue.jobs
    WHERE ended_at >= now() - interval '1 hour' AND status IN ('finished', 'failed', 'canceled')
), counts AS (
    SELECT queue,
           count(*) FILTER (WHERE status = 'queued') AS queued,
           count(*) FILTER (WHERE status = 'scheduled') AS scheduled,
           count(*) FILTER (WHERE status = 'deferred') AS deferred,
           count(*) FILTER (WHERE status = 'running') AS running,
           count(*) FILTER (WHERE status = 'finished') AS finished_last_hour,
           count(*) FILTER (WHERE status = 'failed') AS failed_last_hour,
           count(*) FILTER (WHERE status = 'canceled') AS canceled_last_hour,
           min(scheduled_at) FILTER (WHERE status = 'queued' OR (status = 'scheduled' AND scheduled_at <= now()))
               AS oldest_queued_at
    FROM jobs
    GROUP BY queue
)
SELECT c.queue, c.queued, c.scheduled, c.deferred, c.running, c.finished_last_hour, c.failed_last_hour,
       c.canceled_last_hour, c.oldest_queued_at, now() - c.oldest_queued_at AS oldest_queued_age,
       EXISTS (SELECT FROM pgqueue.pauses p
               WHERE p.scope IN ('all', 'queue:' || c.queue) AND (p.until IS NULL OR p.until > now())) AS paused
FROM counts c;

-- Jobs that finished and failed per minute and queue over the last hour (60 rows per queue that ended
-- a job in it, minutes without any included, the current minute so far), through jobs_ended_at_idx.
CREATE VIEW pgqueue.throughput AS
WITH ended AS (
    SELECT queue, date_trunc('minute', ended_at) AS minute,
           count(*) FILTER (WHERE status = 'finished') AS finished,
           count(*) FILTER (WHERE status = 'failed') AS failed
    FROM pgqueue.jobs
    WHERE ended_at >= date_trunc('minute', now()) - interval '59 minutes' AND status IN ('finished', 'failed')
    GROUP BY 1, 2
)
SELECT m.minute, q.queue, coalesce(e.finished, 0) AS finished, coalesce(e.failed, 0) AS failed
FROM generate_series(date_trunc('minute', now()) - interval '59 minutes', date_trunc('minute', now()),
                     interval '1 minute') AS m(minute)
CROSS JOIN (SELECT DISTINCT queue FROM ended) AS q
LEFT JOIN ended e ON e.minute = m.minute AND e.queue = q.queue;

-- Run time of the jobs that finished within `period` before now, per function: runs, mean, median,
-- 95th and 99th percentile and maximum, in seconds, slowest p95 first. A function rather than a view,
-- because a view cannot take the window. Through jobs_ended_at_idx: the cost follows the jobs in the
-- window (and a sort of their run times per function).
CREATE FUNCTION pgqueue.runtime_percentiles(period interval DEFAULT interval '1 hour')
RETURNS TABLE (func_name text, runs bigint, mean_seconds double precision, p50_seconds double precision,
               p95_seconds double precision, p99_seconds double precision, max_seconds double precision)
LANGUAGE sql STABLE AS $$
    SELECT j.func_name, count(*), avg(r.seconds),
           percentile_cont(0.50) WITHIN GROUP (ORDER BY r.seconds),
           percentile_cont(0.95) WITHIN GROUP (ORDER BY r.seconds),
           percentile_cont(0.99) WITHIN GROUP (ORDER BY r.seconds),
           max(r.seconds)
    FROM pgqueue.jobs j
    CROSS JOIN LATERAL (SELECT extract(epoch FROM j.ended_at - j.started_at)::float8 AS seconds) r
    WHERE j.ended_at >= now() - period AND j.status = 'finished' AND j.started_at IS NOT NULL
    GROUP BY j.func_name
    ORDER BY 5 DESC, 1
$$;
"""

DOWNGRADE = r"""
DROP FUNCTION pgqueue.runtime_percentiles(interval);
DROP VIEW pgqueue.throughput;
DROP VIEW pgqueue.queue_overview;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
