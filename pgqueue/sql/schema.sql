-- pgqueue schema, revision 0006 (the newest; migrations/versions/ holds how each revision got here).
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
    stopped_at      timestamptz,
    -- statistics, as RQ's workers keep them (written with the heartbeat)
    successful_jobs bigint NOT NULL DEFAULT 0,
    failed_jobs     bigint NOT NULL DEFAULT 0,
    working_seconds double precision NOT NULL DEFAULT 0
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
    attempts         integer NOT NULL DEFAULT 0,
    -- times a worker took the job; every completion and release is fenced on it
    claim_count      integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL DEFAULT 1,
    retry_intervals  double precision[] NOT NULL DEFAULT '{}',
    timeout_seconds  double precision NOT NULL DEFAULT 180,
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
    -- functions run by the worker when the job ends: {"success"|"failure"|"stopped": {"func", "timeout"}}
    callbacks        jsonb,
    -- exception classes (dotted paths) a failure must be an instance of to be retried; NULL: any
    retry_on         text[],
    -- the batch (pgqueue.batches) the job belongs to
    batch_id         text,
    -- run when a dependency failed or was canceled, instead of being canceled with it
    allow_dependency_failures boolean NOT NULL DEFAULT false,
    -- the (one) dependency's result is passed to the job as its first argument (chains)
    with_dependency_result boolean NOT NULL DEFAULT false,
    -- what a running job reported of its progress: {"done", "total", "message", "at"}
    progress         jsonb,
    -- how often the job snoozed (raise pgqueue.Snooze(seconds)); NULL: never
    snoozes          integer
    -- The rules every row keeps (jobs_rules_idx below): attempts >= 0, claim_count >= 0, max_attempts >= 1,
    -- timeout_seconds > 0; a finished or failed job has ended_at; a running job has worker_id and a claim.
);

-- The claim query's index: only runnable rows live in it, so finished history never slows a claim.
-- It keys on hashtext(queue), not the queue's text: every enqueue inserts into it, and with three
-- fixed-width columns an insert compares integers, not strings through the collation, on every page it
-- passes (about 15% of the server's work per enqueued row; docs/performance.md). Queries that want it say
-- `hashtext(queue) = hashtext($1) AND queue = $1`. position is unique, so deduplication has nothing to do.
CREATE INDEX jobs_claim_idx ON pgqueue.jobs (hashtext(queue), priority, position)
    WITH (deduplicate_items = off) WHERE status IN ('queued', 'scheduled');
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

-- The rules above, enforced. They are what CHECK constraints would say, and they hold for every INSERT,
-- UPDATE and COPY as CHECKs would, but they are the predicate of a partial index: PostgreSQL parses and
-- plans a table's CHECK constraints again for every statement that writes to it (for these six rules,
-- ~130,000 of the ~390,000 instructions the server spends on a one-job enqueue, ~40 us of its ~500 us),
-- while an index keeps its predicate parsed in the relation cache (~40,000 instructions). No valid row
-- matches the predicate, so the index stays empty. A row that breaks a rule would be indexed: computing
-- its key calls jobs_row_rejected, which raises check_violation (SQLSTATE 23514) naming the rule, as a
-- CHECK would, so the statement fails and nothing is written. See docs/performance.md.
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

-- Workers take no jobs of a paused queue (scope 'queue:NAME'), nor any job while scope 'all' is there
-- (`pgqueue suspend`).
CREATE TABLE pgqueue.pauses (
    scope      text PRIMARY KEY CHECK (scope = 'all' OR scope LIKE 'queue:%'),
    paused_at  timestamptz NOT NULL DEFAULT now(),
    until      timestamptz,  -- when the pause ends by itself; NULL: when resumed
    reason     text
);

-- The members of a batch, in enqueue order: Batch.members() reads them a page at a time. No expression
-- (hashtext, as jobs_claim_idx has): every INSERT into jobs would build it again (0.15% of a plain
-- enqueue's server work), and members of one batch have equal batch_ids, which compare as bytes.
CREATE INDEX jobs_batch_idx ON pgqueue.jobs (batch_id, position) WHERE batch_id IS NOT NULL;

-- Periodic jobs: one row per schedule. A tick is enqueued in the transaction that moves next_tick
-- forward (a guarded UPDATE of the locked row), so each tick is enqueued once, whatever the number of
-- schedulers. next_tick: the next tick to enqueue (NULL: not computed yet); last_tick and last_job_id: the
-- tick the last job was enqueued for, and that job; last_outcome: what became of the latest tick (enqueued,
-- or skipped and why); updated_at: when a scheduler last declared the schedule (at its start, then every
-- minute), so a schedule no running scheduler declares shows as such.
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

-- Batches: the callbacks are enqueued in the transaction that records the last member's end, once the
-- batch is closed (closed_at: its enqueueing is over; see pgqueue/sql/workflows.sql). total counts the
-- members, pending those that have not ended; finished, failed and canceled the others (a member deleted
-- before it ended counts as canceled). callbacks: what to enqueue, with the job ids drawn at creation;
-- callback_ids: the callbacks enqueued, at completed_at.
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
-- `pgqueue batches` lists the newest; the Pruner deletes completed batches whose jobs are all gone.
CREATE INDEX batches_created_idx ON pgqueue.batches (created_at);
CREATE INDEX batches_completed_idx ON pgqueue.batches (completed_at) WHERE completed_at IS NOT NULL;

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

-- Observability: the W3C traceparent of the span that enqueued the job (pgqueue.tracing), restored as the
-- parent of the job's span in the worker; NULL unless tracing was on and recording at enqueue.
ALTER TABLE pgqueue.jobs ADD COLUMN traceparent text;

-- The jobs table churns: vacuum it more eagerly than the default so dead tuples do not pile up.
ALTER TABLE pgqueue.jobs SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02,
                              fillfactor = 90);

-- Reporting: views and a function over pgqueue.jobs (docs/reporting.md). Each reads only what an index
-- finds, within a bounded window where the history is concerned; none is on any worker's or enqueue's path.

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
