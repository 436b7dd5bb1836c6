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
    closed_at    timestamptz,
    CHECK (pending >= 0 AND total >= 0)
);
CREATE INDEX batches_created_idx ON pgqueue.batches (created_at);
CREATE INDEX batches_completed_idx ON pgqueue.batches (completed_at) WHERE completed_at IS NOT NULL;
ALTER TABLE pgqueue.jobs
    ADD COLUMN batch_id text,
    ADD COLUMN allow_dependency_failures boolean NOT NULL DEFAULT false,
    ADD COLUMN with_dependency_result boolean NOT NULL DEFAULT false;
CREATE INDEX jobs_batch_idx ON pgqueue.jobs (batch_id, position) WHERE batch_id IS NOT NULL;

-- Jobs that jobs enqueued deferred wait for (job_id; a job may be here twice): fail_jobs looks for the
-- dependents of a job that failed only if it is here, so that a plain job's failure costs nothing more. A
-- table of its own, written without locking the job's row (an enqueue must not hold up a worker); the
-- Pruner deletes the rows of jobs that ended.
CREATE TABLE pgqueue.dependencies (
    job_id text NOT NULL
);
CREATE INDEX dependencies_job_idx ON pgqueue.dependencies (job_id);

-- Workflows (pgqueue/sql/workflows.sql): what the end of a job sets off, run by the statements that end
-- jobs, in their transaction, when one of those jobs is in a batch or has dependents. Functions, not CTEs
-- of those statements: PostgreSQL prepares every part of a statement each time it runs, whether a row
-- reaches it or not; written into finish_jobs, the same work cost it 54% more server instructions for plain
-- jobs, called from it as a function 2% (the batch check alone; benchmarks/server_cost.py --outcomes).

-- Members of batches ended: `finished_in`, `failed_in` and `canceled_in` hold the batch id of each member
-- that finished, failed or was canceled (or deleted before it ended); `closed`, a batch whose enqueueing
-- is over. The batches' rows are locked in id order, so that statements ending members of the same
-- batches wait for each other and cannot deadlock, and their counters move in the caller's transaction,
-- with the members' status. A closed batch whose last member ended has its callbacks enqueued here: once,
-- as completed_at is set under the row lock (a locking read returns the newest version of the row), and
-- with the job ids drawn when the batch was created. Returns how many callbacks it enqueued.
CREATE FUNCTION pgqueue.batch_ends(finished_in text[], failed_in text[], canceled_in text[], closed text)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    _b record;
    _ended integer;
    _fires boolean;
    _ids text[];
    _n integer;
    _enqueued integer := 0;
BEGIN
    FOR _b IN
        SELECT x.id, x.total, x.pending, x.finished, x.callbacks, x.closed_at, x.completed_at,
               c.finished AS f, c.failed AS e, c.canceled AS k, c.closing
        FROM (SELECT m.id, count(*) FILTER (WHERE m.how = 'f') AS finished,
                     count(*) FILTER (WHERE m.how = 'e') AS failed, count(*) FILTER (WHERE m.how = 'k') AS canceled,
                     bool_or(m.how = 'c') AS closing
              FROM (SELECT unnest(finished_in) AS id, 'f' AS how UNION ALL SELECT unnest(failed_in), 'e'
                    UNION ALL SELECT unnest(canceled_in), 'k' UNION ALL SELECT closed, 'c' WHERE closed IS NOT NULL) m
              GROUP BY m.id) c
        JOIN pgqueue.batches x ON x.id = c.id
        ORDER BY x.id
        FOR UPDATE OF x
    LOOP
        _ended := _b.f + _b.e + _b.k;
        _fires := _b.completed_at IS NULL AND (_b.closed_at IS NOT NULL OR _b.closing) AND _b.pending = _ended;
        IF _fires THEN  -- on_success if every member finished, else on_failure; on_complete either way
            _ids := ARRAY(SELECT c->>'id' FROM jsonb_array_elements(_b.callbacks) c
                          WHERE c->>'on' = 'complete' OR (c->>'on' = 'success') = (_b.finished + _b.f = _b.total));
        END IF;
        UPDATE pgqueue.batches
        SET pending = pending - _ended, finished = finished + _b.f, failed = failed + _b.e,
            canceled = canceled + _b.k,
            closed_at = CASE WHEN _b.closing THEN coalesce(closed_at, statement_timestamp()) ELSE closed_at END,
            completed_at = CASE WHEN _fires THEN statement_timestamp() ELSE completed_at END,
            callback_ids = CASE WHEN _fires THEN _ids ELSE callback_ids END
        WHERE id = _b.id;
        IF _fires AND cardinality(_ids) > 0 THEN
            WITH ins AS (
                INSERT INTO pgqueue.jobs (id, queue, func_name, args, kwargs, priority, description, meta,
                                          max_attempts, retry_intervals, timeout_seconds, result_ttl, failure_ttl,
                                          ttl, retry_on)
                SELECT c->>'id', c->>'queue', c->>'func', jsonb_build_array(_b.id) || coalesce(c->'args', '[]'),
                       coalesce(c->'kwargs', '{}'), coalesce((c->>'priority')::int, 0), c->>'description',
                       coalesce(c->'meta', '{}'), coalesce((c->>'max_attempts')::int, 1),
                       ARRAY(SELECT jsonb_array_elements_text(coalesce(c->'retry_intervals', '[]'))::float8),
                       coalesce((c->>'timeout')::float8, 180), (c->>'result_ttl')::int, (c->>'failure_ttl')::int,
                       (c->>'ttl')::int,
                       CASE WHEN jsonb_typeof(c->'retry_on') = 'array'
                            THEN ARRAY(SELECT jsonb_array_elements_text(c->'retry_on')) END
                FROM jsonb_array_elements(_b.callbacks) c
                WHERE c->>'id' = ANY (_ids)
                ON CONFLICT DO NOTHING
                RETURNING queue
            )
            SELECT count(pg_notify('pgqueue_jobs', ins.queue)) INTO _n FROM ins;
            _enqueued := _enqueued + _n;
        END IF;
    END LOOP;
    RETURN _enqueued;
END
$$;

-- Members of batches that ended are back (requeued): `batch_ids` holds the batch id of each, `how` what
-- they had become (finished, failed or canceled). Their batches count them as pending again; one that
-- completed keeps its completed_at, so its callbacks are not enqueued a second time.
CREATE FUNCTION pgqueue.batch_reopened(batch_ids text[], how text) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    _n integer;
BEGIN
    PERFORM 1 FROM pgqueue.batches b WHERE b.id = ANY (batch_ids) ORDER BY b.id FOR UPDATE;
    UPDATE pgqueue.batches b
    SET pending = b.pending + c.n, finished = b.finished - CASE WHEN how = 'finished' THEN c.n ELSE 0 END,
        failed = b.failed - CASE WHEN how = 'failed' THEN c.n ELSE 0 END,
        canceled = b.canceled - CASE WHEN how = 'canceled' THEN c.n ELSE 0 END
    FROM (SELECT m.id, count(*) AS n FROM unnest(batch_ids) m(id) GROUP BY m.id) c
    WHERE b.id = c.id;
    GET DIAGNOSTICS _n = ROW_COUNT;
    RETURN _n;
END
$$;

-- The dependency failure policy, for jobs that ended without finishing (`how`: failed, canceled, expired or
-- deleted); `batch_ids` holds the batch id of each of them that is a member of one (NULL: read from their
-- rows, which a deleted job no longer has). Their deferred
-- dependents, and the dependents of those in turn, are canceled with the reason in exc_info ("dependency
-- failed: ID"): up to 1,000 a call, taking no row another transaction holds (SKIP LOCKED); the Promoter
-- finishes what a call left. Dependents enqueued with allow_dependency_failures are released instead, once
-- every dependency of theirs has ended (up to 1,000 a call). Then the batches count their members that
-- ended (batch_ends, once, for the locks' order). Returns the ids of the jobs canceled here (the caller
-- notifies their waiters: pgqueue._notify sizes the payloads).
CREATE FUNCTION pgqueue.jobs_ended(ids text[], how text, batch_ids text[] DEFAULT NULL) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    _waiting boolean;
    _members text[];
    _parents text[] := ids;
    _how text := how;
    _level text[];
    _batches text[];
    _canceled text[] := '{}';
    _canceled_batches text[] := '{}';
    _n integer;
BEGIN
    -- One look first: for a job nothing waits on (the usual one) this is all, with its batch's counting.
    -- pgqueue.dependencies lists the jobs that deferred jobs wait for (cheaper than jobs_deferred_idx for
    -- 100,000 ids: q.empty()); one that a race left out is the Promoter's.
    SELECT EXISTS (SELECT 1 FROM pgqueue.dependencies x WHERE x.job_id = ANY (ids)),
           coalesce(batch_ids, ARRAY(SELECT s.b FROM (SELECT j.batch_id AS b FROM pgqueue.jobs j
                                                       WHERE j.id = ANY (ids) OFFSET 0) s  -- by primary key
                                      WHERE s.b IS NOT NULL))
    INTO _waiting, _members;
    IF _waiting THEN
        WHILE cardinality(_parents) > 0 AND cardinality(_canceled) < 1000 LOOP
            WITH doomed AS (  -- (a job with two of these parents is here twice: it is updated once)
                SELECT d.id, 'dependency ' || _how || ': ' || p.id AS cause
                FROM unnest(_parents) p(id)
                JOIN pgqueue.jobs d ON d.depends_on @> ARRAY[p.id]
                WHERE d.status = 'deferred' AND NOT d.allow_dependency_failures AND d.id <> ALL (ids)
                LIMIT 1000 - cardinality(_canceled)
            ), locked AS (
                SELECT j.id, doomed.cause FROM doomed JOIN pgqueue.jobs j ON j.id = doomed.id
                WHERE j.status = 'deferred'
                FOR UPDATE OF j SKIP LOCKED
            ), canceled AS (
                UPDATE pgqueue.jobs j SET status = 'canceled', ended_at = now(), exc_info = l.cause
                FROM locked l WHERE j.id = l.id
                RETURNING j.id, j.batch_id
            )
            SELECT coalesce(array_agg(c.id), '{}'),
                   coalesce(array_agg(c.batch_id) FILTER (WHERE c.batch_id IS NOT NULL), '{}')
            INTO _level, _batches FROM canceled c;
            _canceled := _canceled || _level;
            _canceled_batches := _canceled_batches || _batches;
            _parents := _level;
            _how := 'canceled';
        END LOOP;
        WITH released AS (
            UPDATE pgqueue.jobs d
            SET status = CASE WHEN d.scheduled_at > now() THEN 'scheduled' ELSE 'queued' END::pgqueue.job_status,
                args = CASE WHEN d.with_dependency_result
                            THEN jsonb_build_array((SELECT x.result FROM pgqueue.jobs x
                                                    WHERE x.id = d.depends_on[1] AND x.status = 'finished')) || d.args
                            ELSE d.args END
            WHERE d.id IN (SELECT a.id FROM pgqueue.jobs a
                           WHERE a.status = 'deferred' AND a.allow_dependency_failures
                             AND a.depends_on && (ids || _canceled) AND a.id <> ALL (ids)
                             AND NOT EXISTS (SELECT 1 FROM pgqueue.jobs x
                                             WHERE x.id = ANY (a.depends_on) AND x.id <> ALL (ids)
                                               AND x.status IN ('scheduled', 'queued', 'deferred', 'running'))
                           LIMIT 1000
                           FOR UPDATE SKIP LOCKED)
            RETURNING d.queue
        )
        SELECT count(pg_notify('pgqueue_jobs', q)) INTO _n FROM (SELECT DISTINCT r.queue AS q FROM released r) s;
    END IF;
    IF cardinality(_members) > 0 OR cardinality(_canceled_batches) > 0 THEN
        PERFORM pgqueue.batch_ends('{}', CASE WHEN how = 'failed' THEN _members ELSE '{}' END,
                                   CASE WHEN how = 'failed' THEN '{}' ELSE _members END || _canceled_batches, NULL);
    END IF;
    RETURN _canceled;
END
$$;

-- Jobs that others now wait for (insert_jobs calls this for the jobs it wrote deferred): pgqueue.dependencies
-- tells fail_jobs to look for the jobs that wait. Rows already there are not written again (two enqueues at
-- once may both write one: no unique index, so that neither waits for the other's commit).
CREATE FUNCTION pgqueue.jobs_depended_on(ids text[]) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    _n integer;
BEGIN
    INSERT INTO pgqueue.dependencies (job_id)
    SELECT DISTINCT p.id FROM unnest(ids) p(id)
    WHERE NOT EXISTS (SELECT 1 FROM pgqueue.dependencies d WHERE d.job_id = p.id);
    GET DIAGNOSTICS _n = ROW_COUNT;
    RETURN _n;
END
$$;

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
DROP FUNCTION pgqueue.jobs_depended_on(text[]);
DROP FUNCTION pgqueue.jobs_ended(text[], text, text[]);
DROP FUNCTION pgqueue.batch_reopened(text[], text);
DROP FUNCTION pgqueue.batch_ends(text[], text[], text[], text);
DROP INDEX pgqueue.jobs_batch_idx;
ALTER TABLE pgqueue.jobs DROP COLUMN batch_id, DROP COLUMN allow_dependency_failures,
    DROP COLUMN with_dependency_result;
DROP TABLE pgqueue.batches;
DROP TABLE pgqueue.dependencies;
DROP TABLE pgqueue.schedules;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
