"""Row rules as an index predicate: the six CHECK constraints of pgqueue.jobs become the predicate of
jobs_rules_idx, a partial index that no valid row enters.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

PostgreSQL parses and plans a table's CHECK constraints again for every statement that writes to it; an
index keeps its predicate parsed in the relation cache. The rules are the same (see pgqueue/sql/schema.sql
and docs/performance.md); a row that breaks one still fails with check_violation, naming the rule by the
constraint's old name. Upgrading builds the (empty) index with one scan of pgqueue.jobs, which blocks
writes to it while it runs (about a second per million rows), and rewrites nothing.
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Frozen here as this revision wrote them; pgqueue/sql/schema.sql carries them on to newer revisions.
RULES = r"""
CREATE FUNCTION pgqueue.jobs_row_rejected(
    id text, status pgqueue.job_status, ended_at timestamptz, worker_id bigint, attempts integer,
    claim_count integer, max_attempts integer, timeout_seconds double precision
) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    rule text;
    says text;
BEGIN
    IF attempts < 0 THEN
        rule := 'jobs_attempts_check'; says := 'attempts >= 0';
    ELSIF claim_count < 0 THEN
        rule := 'jobs_claim_count_check'; says := 'claim_count >= 0';
    ELSIF max_attempts < 1 THEN
        rule := 'jobs_max_attempts_check'; says := 'max_attempts >= 1';
    ELSIF timeout_seconds <= 0 THEN
        rule := 'jobs_timeout_seconds_check'; says := 'timeout_seconds > 0';
    ELSIF status IN ('finished', 'failed') THEN
        rule := 'jobs_ended_has_time'; says := 'a finished or failed job has ended_at';
    ELSE
        rule := 'jobs_running_has_worker'; says := 'a running job has worker_id and claim_count >= 1';
    END IF;
    RAISE EXCEPTION 'new row for relation "jobs" violates rule "%": %', rule, says
        USING ERRCODE = 'check_violation', SCHEMA = 'pgqueue', TABLE = 'jobs', CONSTRAINT = rule,
              DETAIL = format('Job %s: status %s, ended_at %L, worker_id %L, attempts %s, claim_count %s, '
                              'max_attempts %s, timeout_seconds %s.', id, status, ended_at, worker_id,
                              attempts, claim_count, max_attempts, timeout_seconds);
END
$$;
CREATE INDEX jobs_rules_idx ON pgqueue.jobs (pgqueue.jobs_row_rejected(
    id, status, ended_at, worker_id, attempts, claim_count, max_attempts, timeout_seconds))
    WHERE attempts < 0 OR claim_count < 0 OR max_attempts < 1 OR timeout_seconds <= 0
       OR (status IN ('finished', 'failed') AND ended_at IS NULL)
       OR (status = 'running' AND (worker_id IS NULL OR claim_count < 1));
"""

CHECKS = ["jobs_attempts_check", "jobs_claim_count_check", "jobs_max_attempts_check",
          "jobs_timeout_seconds_check", "jobs_ended_has_time", "jobs_running_has_worker"]


def upgrade() -> None:
    # The index first: building it checks every existing row against the rules (the CHECKs held them).
    op.get_bind().connection.driver_connection.execute(RULES)
    op.execute("ALTER TABLE pgqueue.jobs " + ", ".join(f"DROP CONSTRAINT {name}" for name in CHECKS))


def downgrade() -> None:
    op.execute("""
        ALTER TABLE pgqueue.jobs
            ADD CONSTRAINT jobs_attempts_check CHECK (attempts >= 0),
            ADD CONSTRAINT jobs_claim_count_check CHECK (claim_count >= 0),
            ADD CONSTRAINT jobs_max_attempts_check CHECK (max_attempts >= 1),
            ADD CONSTRAINT jobs_timeout_seconds_check CHECK (timeout_seconds > 0),
            ADD CONSTRAINT jobs_ended_has_time CHECK (status NOT IN ('finished', 'failed') OR ended_at IS NOT NULL),
            ADD CONSTRAINT jobs_running_has_worker CHECK (
                status <> 'running' OR (worker_id IS NOT NULL AND claim_count >= 1))
    """)
    op.execute("DROP INDEX pgqueue.jobs_rules_idx")
    op.execute("DROP FUNCTION pgqueue.jobs_row_rejected")
