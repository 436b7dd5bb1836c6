"""Initial schema: pgqueue.jobs, pgqueue.workers, the job_status enum and the claim index.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

It executes pgqueue/sql/schema.sql, which is also what `pgqueue schema --sql` prints. When a second
revision arrives, schema.sql moves on to the new head and this revision keeps a frozen copy of today's.
"""

from alembic import op

from pgqueue.sql import SCHEMA

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Several statements in one string: run them on the psycopg connection under alembic's transaction.
    op.get_bind().connection.driver_connection.execute(SCHEMA)


def downgrade() -> None:
    op.execute("DROP SCHEMA pgqueue CASCADE")
