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
