"""What RQ parity needs: job callbacks, retrying on chosen exceptions, worker statistics, and pausing
(``pgqueue suspend`` and paused queues).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04

Additive only: new nullable columns or columns with a constant default (no table is rewritten, PostgreSQL
11+), and a new table. So the previous version of pgqueue keeps working on this revision, and the upgrade
is: `pgqueue migrate` first, then deploy (tests/test_schema.py checks that nothing of 0003 changed).
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Frozen here as this revision wrote it; pgqueue/sql/schema.sql carries it on to newer revisions.
UPGRADE = r"""
ALTER TABLE pgqueue.jobs
    ADD COLUMN callbacks jsonb,
    ADD COLUMN retry_on text[];
ALTER TABLE pgqueue.workers
    ADD COLUMN successful_jobs bigint NOT NULL DEFAULT 0,
    ADD COLUMN failed_jobs bigint NOT NULL DEFAULT 0,
    ADD COLUMN working_seconds double precision NOT NULL DEFAULT 0;
CREATE TABLE pgqueue.pauses (
    scope      text PRIMARY KEY CHECK (scope = 'all' OR scope LIKE 'queue:%'),
    paused_at  timestamptz NOT NULL DEFAULT now(),
    until      timestamptz,  -- when the pause ends by itself; NULL: when resumed
    reason     text
);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE pgqueue.pauses")
    op.execute("ALTER TABLE pgqueue.workers DROP COLUMN successful_jobs, DROP COLUMN failed_jobs, "
               "DROP COLUMN working_seconds")
    op.execute("ALTER TABLE pgqueue.jobs DROP COLUMN callbacks, DROP COLUMN retry_on")
