-- The statements of RQ's inspection API: Job.fetch_many, positions, Queue.all, the registries
-- (pgqueue/registry.py) and Worker.all. Loaded with queries.sql (pgqueue/sql/__init__.py), kept apart
-- because none of them is on a worker's or an enqueue's path.
--
-- Registries are queries over pgqueue.jobs, one pair (ids in order, count) per status, each written so
-- that a partial index of that status serves it: a parameter in place of the status would hide which one
-- (pgqueue's connections use generic plans). docs/jobs-and-registries.md says what each one costs.

-- name: fetch_jobs
-- Job.fetch_many: the rows of the ids asked for (by primary key); the caller puts them in order.
SELECT id, queue, func_name, args::text AS args, kwargs::text AS kwargs, status::text AS status, priority,
       description, meta::text AS meta, result::text AS result, exc_info, errors::text AS errors, attempts,
       max_attempts, timeout_seconds, result_ttl, failure_ttl, ttl, depends_on, unique_key, worker_name,
       enqueued_at, scheduled_at, started_at, ended_at
FROM pgqueue.jobs WHERE id = ANY (%(ids)s::text[])

-- name: job_meta
SELECT meta::text AS meta FROM pgqueue.jobs WHERE id = %(id)s

-- name: job_position
-- How many queued jobs of its queue come before a queued job (its 0-based place in the order workers
-- take them, as q.job_ids lists them); no row if the job is not queued (in `queue`, if given). Walks
-- jobs_claim_idx up to the job.
SELECT (SELECT count(*) FROM pgqueue.jobs o
        WHERE hashtext(o.queue) = hashtext(j.queue) AND o.queue = j.queue AND o.status = 'queued'
          AND (o.priority, o.position) < (j.priority, j.position)) AS position
FROM pgqueue.jobs j
WHERE j.id = %(id)s AND j.status = 'queued' AND (%(queue)s::text IS NULL OR j.queue = %(queue)s::text)

-- name: queue_names
-- Queue.all(): every queue that has a job, whatever its status. No index leads with the queue over all
-- rows, so this reads the whole table: its cost grows with the history kept (docs/jobs-and-registries.md).
SELECT DISTINCT queue AS name FROM pgqueue.jobs ORDER BY queue

-- name: registry_started_ids
-- Jobs a worker holds: started, or claimed in a batch and about to start (jobs_running_idx).
SELECT id FROM pgqueue.jobs
WHERE status = 'running' AND queue = %(queue)s
ORDER BY started_at NULLS LAST, id
LIMIT %(limit)s OFFSET %(offset)s

-- name: registry_started_count
SELECT count(*) AS jobs FROM pgqueue.jobs
WHERE status = 'running' AND queue = %(queue)s

-- name: registry_finished_ids
-- Finished jobs, oldest first, through jobs_ended_at_idx (every ended job; ended_at is implied, and said so
-- the planner can use that index). The count reads every ended job's row: it grows with the history.
SELECT id FROM pgqueue.jobs
WHERE status = 'finished' AND queue = %(queue)s AND ended_at IS NOT NULL
ORDER BY ended_at, id
LIMIT %(limit)s OFFSET %(offset)s

-- name: registry_finished_count
SELECT count(*) AS jobs FROM pgqueue.jobs
WHERE status = 'finished' AND queue = %(queue)s AND ended_at IS NOT NULL

-- name: registry_failed_ids
-- Failed jobs, oldest failure first (jobs_failed_idx: only failed jobs, by queue).
SELECT id FROM pgqueue.jobs
WHERE queue = %(queue)s AND status = 'failed'
ORDER BY ended_at, id
LIMIT %(limit)s OFFSET %(offset)s

-- name: registry_failed_count
SELECT count(*) AS jobs FROM pgqueue.jobs
WHERE queue = %(queue)s AND status = 'failed'

-- name: registry_deferred_ids
-- Deferred jobs, oldest first. Every array contains the empty one: the condition only lets the planner
-- scan jobs_deferred_idx (a GIN index of deferred jobs alone) whole.
SELECT id FROM pgqueue.jobs
WHERE status = 'deferred' AND depends_on @> '{}'::text[] AND queue = %(queue)s
ORDER BY enqueued_at, id
LIMIT %(limit)s OFFSET %(offset)s

-- name: registry_deferred_count
SELECT count(*) AS jobs FROM pgqueue.jobs
WHERE status = 'deferred' AND depends_on @> '{}'::text[] AND queue = %(queue)s

-- name: registry_scheduled_ids
-- Scheduled jobs (enqueue_at/enqueue_in, or waiting out a retry interval), soonest first (jobs_claim_idx
-- or jobs_scheduled_idx).
SELECT id FROM pgqueue.jobs
WHERE status = 'scheduled' AND hashtext(queue) = hashtext(%(queue)s) AND queue = %(queue)s
ORDER BY scheduled_at, id
LIMIT %(limit)s OFFSET %(offset)s

-- name: registry_scheduled_count
SELECT count(*) AS jobs FROM pgqueue.jobs
WHERE status = 'scheduled' AND hashtext(queue) = hashtext(%(queue)s) AND queue = %(queue)s

-- name: registry_canceled_ids
-- Canceled (and expired) jobs, by when that happened, through jobs_ended_at_idx as finished jobs are.
SELECT id FROM pgqueue.jobs
WHERE status = 'canceled' AND queue = %(queue)s AND ended_at IS NOT NULL
ORDER BY ended_at, id
LIMIT %(limit)s OFFSET %(offset)s

-- name: registry_canceled_count
SELECT count(*) AS jobs FROM pgqueue.jobs
WHERE status = 'canceled' AND queue = %(queue)s AND ended_at IS NOT NULL

-- name: registry_job
-- One job as the registries see it: which registry it is in (status, queue) and the times RQ's
-- get_expiration_time and get_scheduled_time answer with.
SELECT j.status::text AS status, j.queue, j.delete_at, j.scheduled_at,
       j.enqueued_at + make_interval(secs => j.ttl) AS expires_at,
       (SELECT w.heartbeat_at + make_interval(secs => w.lease_seconds) FROM pgqueue.workers w
        WHERE w.id = j.worker_id) AS lease_until
FROM pgqueue.jobs j WHERE j.id = %(id)s

-- name: registry_remove
-- Workflows: a job deleted before it ended cancels its dependents and counts as canceled in its batch, as in
-- delete_job (queries.sql).
WITH d AS (
    DELETE FROM pgqueue.jobs
    WHERE id = %(id)s AND queue = %(queue)s AND status = %(status)s::pgqueue.job_status
    RETURNING id, status IN ('scheduled', 'queued', 'deferred', 'running') AS live, batch_id
)
SELECT d.id,
       CASE WHEN d.live THEN pgqueue.jobs_ended(ARRAY[d.id], 'deleted', ARRAY_REMOVE(ARRAY[d.batch_id], NULL))
            ELSE '{}' END AS dependents_canceled
FROM d

-- name: registry_requeue
-- One job of a registry (its status and queue) back to its queue, queued now: a job that ended gets one
-- more attempt (as requeue_jobs), a scheduled or deferred one keeps its retries and runs without waiting.
-- at_front puts it ahead of every waiting job of its queue, as enqueue's at_front does. A job whose
-- unique_key another live job holds stays where it is (holder names that job).
WITH j AS (
    SELECT id, unique_key FROM pgqueue.jobs
    WHERE id = %(id)s AND queue = %(queue)s AND status = %(status)s::pgqueue.job_status
    FOR UPDATE
), h AS (
    SELECT j.id, j.unique_key,
           (SELECT l.id FROM pgqueue.jobs l
            WHERE l.unique_key = j.unique_key AND l.id <> j.id
              AND l.status IN ('scheduled', 'queued', 'deferred', 'running')
            LIMIT 1) AS holder
    FROM j
), r AS (
    UPDATE pgqueue.jobs x
    SET status = 'queued', scheduled_at = now(), ended_at = NULL, started_at = NULL, worker_id = NULL,
        delete_at = NULL, result = NULL, max_attempts = GREATEST(x.max_attempts, x.attempts + 1),
        priority = CASE WHEN %(at_front)s::bool THEN LEAST(x.priority, (
                            SELECT min(w.priority) FROM pgqueue.jobs w
                            WHERE hashtext(w.queue) = hashtext(x.queue) AND w.queue = x.queue
                              AND w.status IN ('queued', 'scheduled')))
                        ELSE x.priority END,
        position = CASE WHEN %(at_front)s::bool THEN -nextval('pgqueue.job_position_seq') ELSE x.position END
    FROM h WHERE x.id = h.id AND h.holder IS NULL
    RETURNING x.id, x.queue, x.batch_id
), reopened AS (
    -- Workflows: a member of a batch that had ended counts as pending in it again (workflows.sql)
    SELECT pgqueue.batch_reopened(ARRAY(SELECT batch_id FROM r WHERE batch_id IS NOT NULL), %(status)s::text)
           AS batches
    WHERE %(status)s::text IN ('finished', 'failed', 'canceled')
)
SELECT h.id, r.id IS NOT NULL AS requeued, h.holder, h.unique_key,
       (SELECT count(pg_notify('pgqueue_jobs', r.queue)) FROM r) AS woken,
       coalesce((SELECT batches FROM reopened), 0) AS reopened
FROM h LEFT JOIN r ON r.id = h.id

-- name: worker_details
-- Worker.all(): the live workers (heartbeat within their lease), of one queue if `queue` is given; or,
-- with `worker_id`, that worker whatever its state (Worker.refresh). Its running jobs through
-- jobs_running_idx; the current job is the one it started first.
SELECT w.id, w.name, w.queues, w.pid, w.hostname, w.concurrency, w.lease_seconds, w.started_at,
       w.heartbeat_at, w.stopped_at, w.successful_jobs, w.failed_jobs, w.working_seconds,
       (SELECT count(*) FROM pgqueue.jobs j WHERE j.worker_id = w.id AND j.status = 'running') AS running,
       (SELECT j.id FROM pgqueue.jobs j
        WHERE j.worker_id = w.id AND j.status = 'running' AND j.started_at IS NOT NULL
        ORDER BY j.started_at, j.id LIMIT 1) AS current_job_id
FROM pgqueue.workers w
WHERE CASE WHEN %(worker_id)s::bigint IS NULL
           THEN w.stopped_at IS NULL AND w.heartbeat_at >= now() - make_interval(secs => w.lease_seconds)
                AND (%(queue)s::text IS NULL OR %(queue)s::text = ANY (w.queues))
           ELSE w.id = %(worker_id)s::bigint END
ORDER BY w.name, w.id
