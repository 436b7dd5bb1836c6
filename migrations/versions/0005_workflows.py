"""Periodic jobs, workflows and job control: schedules, batches, dependency failure policy, chains that
pass results, progress.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

Additive only, as 0004: the previous version of pgqueue keeps working on this revision (migrate first,
then deploy). Each section belongs to one feature; pgqueue/sql/schema.sql carries the same DDL.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Frozen here as this revision wrote it; pgqueue/sql/schema.sql carries it on to newer revisions.
UPGRADE = r"""
-- Periodic jobs (pgqueue/scheduling.py, the worker's scheduler): one row per schedule. A tick is enqueued
-- in the transaction that moves next_tick forward, so each tick is enqueued once, whatever the number of
-- schedulers. next_tick is the next tick to enqueue, so that the due schedules are found, and locked, by
-- SQL alone; updated_at is when a scheduler last declared the schedule (docs/scheduling.md).
CREATE TABLE pgqueue.schedules (
    name         text PRIMARY KEY,
    expression   text NOT NULL,
    timezone     text NOT NULL,
    func_name    text NOT NULL,
    queue        text NOT NULL,
    last_tick    timestamptz,
    last_job_id  text,
    last_outcome text,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    next_tick    timestamptz
);

-- Workflows: batches whose callbacks are enqueued in the transaction that records the last member's end;
-- dependents canceled when a dependency fails (or run anyway); chains that pass a result on.
CREATE TABLE pgqueue.batches (
    id           text PRIMARY KEY,
    description  text,
    total        integer NOT NULL DEFAULT 0,
    pending      integer NOT NULL DEFAULT 0,
    finished     integer NOT NULL DEFAULT 0,
    failed       integer NOT NULL DEFAULT 0,
    canceled     integer NOT NULL DEFAULT 0,
    callbacks    jsonb,
    callback_ids text[],
    created_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    CHECK (pending >= 0 AND total >= 0)
);
ALTER TABLE pgqueue.jobs
    ADD COLUMN batch_id text,
    ADD COLUMN allow_dependency_failures boolean NOT NULL DEFAULT false,
    ADD COLUMN with_dependency_result boolean NOT NULL DEFAULT false;
CREATE INDEX jobs_batch_idx ON pgqueue.jobs (batch_id) WHERE batch_id IS NOT NULL;

-- Job control: progress reported by a running job; how often it snoozed (raise pgqueue.Snooze(seconds):
-- NULL for none, so that an enqueue writes nothing more).
ALTER TABLE pgqueue.jobs ADD COLUMN progress jsonb, ADD COLUMN snoozes integer;

-- Observability: the W3C traceparent of the span that enqueued the job (pgqueue.tracing), restored as the
-- parent of the job's span in the worker. NULL unless tracing was on and recording at enqueue. A column
-- of its own, not a key of meta: meta stays the user's, and the claim returns it to the worker as it is.
ALTER TABLE pgqueue.jobs ADD COLUMN traceparent text;
"""

DOWNGRADE = r"""
ALTER TABLE pgqueue.jobs DROP COLUMN traceparent;
ALTER TABLE pgqueue.jobs DROP COLUMN progress, DROP COLUMN snoozes;
DROP INDEX pgqueue.jobs_batch_idx;
ALTER TABLE pgqueue.jobs DROP COLUMN batch_id, DROP COLUMN allow_dependency_failures,
    DROP COLUMN with_dependency_result;
DROP TABLE pgqueue.batches;
DROP TABLE pgqueue.schedules;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
