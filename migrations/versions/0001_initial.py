"""Initial schema: pgqueue.jobs, pgqueue.workers, the job_status enum and the claim index.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

The DDL below is frozen: it is what pgqueue/sql/schema.sql held at this revision. schema.sql moves on with
the newest revision (it is what `pgqueue schema --sql` prints); later revisions alter what this one made.
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = r"""
-- pgqueue schema, revision 0001.
-- Applied by `pgqueue migrate` (alembic) or printed by `pgqueue schema --sql` for teams that apply
-- DDL with their own tools. Everything lives in the `pgqueue` schema so it never collides with the
-- application's tables, and so reports read naturally: SELECT ... FROM pgqueue.jobs.

CREATE SCHEMA IF NOT EXISTS pgqueue;

CREATE TYPE pgqueue.job_status AS ENUM (
    'scheduled',  -- waiting for scheduled_at (enqueue_at/enqueue_in, or a retry's back-off)
    'queued',     -- runnable now
    'deferred',   -- waiting for the jobs in depends_on to finish
    'running',    -- claimed by a worker (see worker_id / worker_name)
    'finished',   -- ran and returned; result holds the return value
    'failed',     -- ran out of attempts; exc_info holds the last error, errors every attempt's
    'canceled'    -- canceled by job.cancel(), or expired (ttl) before it started
);

-- FIFO tie-breaker within a priority. at_front jobs take a negative position (see queries.sql).
CREATE SEQUENCE pgqueue.job_position_seq AS bigint;

CREATE TABLE pgqueue.workers (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL,
    hostname        text NOT NULL,
    pid             integer NOT NULL,
    queues          text[] NOT NULL,
    concurrency     integer NOT NULL CHECK (concurrency >= 1),
    lease_seconds   double precision NOT NULL CHECK (lease_seconds > 0),
    started_at      timestamptz NOT NULL DEFAULT now(),
    heartbeat_at    timestamptz NOT NULL DEFAULT now(),
    stopped_at      timestamptz
);
CREATE INDEX workers_name_idx ON pgqueue.workers (name);

CREATE TABLE pgqueue.jobs (
    id               text PRIMARY KEY,
    queue            text NOT NULL,
    func_name        text NOT NULL,
    args             jsonb NOT NULL DEFAULT '[]',
    kwargs           jsonb NOT NULL DEFAULT '{}',
    status           pgqueue.job_status NOT NULL DEFAULT 'queued',
    priority         integer NOT NULL DEFAULT 0,
    position         bigint NOT NULL DEFAULT nextval('pgqueue.job_position_seq'),
    description      text,
    meta             jsonb NOT NULL DEFAULT '{}',
    result           jsonb,
    exc_info         text,
    -- one object per failed attempt: {"attempt", "worker", "at", "type", "message", "traceback"}
    errors           jsonb NOT NULL DEFAULT '[]',
    -- runs that started; a job claimed in a batch but never started does not count
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- times a worker took the job; every completion and release is fenced on it
    claim_count      integer NOT NULL DEFAULT 0 CHECK (claim_count >= 0),
    max_attempts     integer NOT NULL DEFAULT 1 CHECK (max_attempts >= 1),
    retry_intervals  double precision[] NOT NULL DEFAULT '{}',
    timeout_seconds  double precision NOT NULL DEFAULT 180 CHECK (timeout_seconds > 0),
    result_ttl       integer,
    failure_ttl      integer,
    ttl              integer,
    depends_on       text[] NOT NULL DEFAULT '{}',
    unique_key       text,
    worker_id        bigint,
    worker_name      text,
    enqueued_at      timestamptz NOT NULL DEFAULT now(),
    scheduled_at     timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    ended_at         timestamptz,
    -- when pruning deletes an ended job: ended_at + result_ttl (finished) or + failure_ttl (failed)
    delete_at        timestamptz,
    CONSTRAINT jobs_ended_has_time CHECK (
        status NOT IN ('finished', 'failed') OR ended_at IS NOT NULL),
    CONSTRAINT jobs_running_has_worker CHECK (status <> 'running' OR (worker_id IS NOT NULL AND claim_count >= 1))
);

-- The claim query's index: only runnable rows live in it, so finished history never slows a claim.
CREATE INDEX jobs_claim_idx ON pgqueue.jobs (queue, priority, position)
    WHERE status IN ('queued', 'scheduled');
-- Rescue: running jobs by the worker that holds them.
CREATE INDEX jobs_running_idx ON pgqueue.jobs (worker_id) WHERE status = 'running';
-- Idle workers sleep until the earliest scheduled job of their queues.
CREATE INDEX jobs_scheduled_idx ON pgqueue.jobs (scheduled_at) WHERE status = 'scheduled';
-- Dependents waiting on a job.
CREATE INDEX jobs_deferred_idx ON pgqueue.jobs USING gin (depends_on) WHERE status = 'deferred';
-- Reporting and pruning of history. No full (queue, status) index: every job changes status twice on
-- the hot path, and each change would insert into it; failed jobs, the ones people list, get their own.
CREATE INDEX jobs_failed_idx ON pgqueue.jobs (queue, ended_at) WHERE status = 'failed';
CREATE INDEX jobs_ended_at_idx ON pgqueue.jobs (ended_at) WHERE ended_at IS NOT NULL;
CREATE INDEX jobs_delete_at_idx ON pgqueue.jobs (delete_at) WHERE delete_at IS NOT NULL;
-- Jobs with a ttl that may expire before they start.
CREATE INDEX jobs_ttl_idx ON pgqueue.jobs (enqueued_at)
    WHERE ttl IS NOT NULL AND status IN ('scheduled', 'queued', 'deferred');
-- unique_key: at most one live job per key; race-free through ON CONFLICT.
CREATE UNIQUE INDEX jobs_unique_key_idx ON pgqueue.jobs (unique_key)
    WHERE unique_key IS NOT NULL AND status IN ('scheduled', 'queued', 'deferred', 'running');

-- The jobs table churns: vacuum it more eagerly than the default so dead tuples do not pile up.
ALTER TABLE pgqueue.jobs SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02,
                              fillfactor = 90);
"""


def upgrade() -> None:
    # Several statements in one string: run them on the psycopg connection under alembic's transaction.
    op.get_bind().connection.driver_connection.execute(SCHEMA)


def downgrade() -> None:
    op.execute("DROP SCHEMA pgqueue CASCADE")
