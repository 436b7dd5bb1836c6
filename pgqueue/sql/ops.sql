-- The statements of `pgqueue jobs`, `pgqueue show` and `pgqueue purge` (pgqueue/operations.py). Loaded with queries.sql; none of them is on a worker's or an enqueue's path.
--
-- pgqueue's connections plan with generic plans (own_settings), so a parameter never decides which index a
-- statement can use: each status is written out, switched on or off by a boolean parameter
-- (`%(queued)s AND status = 'queued'`), which keeps every arm provably inside its partial index's predicate.
-- docs/operations.md says what each statement costs on a million jobs (benchmarks/reporting_cost.py).

-- name: list_jobs
-- `pgqueue jobs` without a status, or with one no index serves by itself (deferred, or live and ended
-- together): newest id first (pgqueue's ids start with the enqueue time), after the id `after`. The walk
-- down the primary key examines at most `scan` jobs, so a page costs at most that much whatever the
-- filters, and stops as soon as it has `limit` jobs. A page that found fewer examined them all: list_walked
-- says how far that walk went, where the next page carries on. Two branches, one of which finds nothing at
-- once: `id < after` must be the index scan's own condition (a generic plan cannot make one of
-- `after IS NULL OR id < after`), or each page would walk from the top.
SELECT id, queue, func_name, status::text AS status, priority, attempts, max_attempts, enqueued_at,
       scheduled_at, started_at, ended_at, worker_name, exc_info, progress::text AS progress
FROM ((SELECT id, queue, func_name, status, priority, attempts, max_attempts, enqueued_at, scheduled_at,
              started_at, ended_at, worker_name, exc_info, progress
       FROM pgqueue.jobs WHERE %(after)s::text IS NULL ORDER BY id DESC LIMIT %(scan)s)
      UNION ALL
      (SELECT id, queue, func_name, status, priority, attempts, max_attempts, enqueued_at, scheduled_at,
              started_at, ended_at, worker_name, exc_info, progress
       FROM pgqueue.jobs WHERE id < %(after)s::text ORDER BY id DESC LIMIT %(scan)s)) AS walked
WHERE ((%(scheduled)s AND status = 'scheduled') OR (%(queued)s AND status = 'queued')
       OR (%(deferred)s AND status = 'deferred') OR (%(running)s AND status = 'running')
       OR (%(finished)s AND status = 'finished') OR (%(failed)s AND status = 'failed')
       OR (%(canceled)s AND status = 'canceled'))
  AND (%(queues)s::text[] IS NULL OR queue = ANY (%(queues)s::text[]))
  AND (%(function)s::text IS NULL OR func_name = %(function)s::text)
  AND enqueued_at >= coalesce(%(since)s::timestamptz, now() - make_interval(secs => %(since_seconds)s::float8),
                              '-infinity')
  AND enqueued_at < coalesce(%(until)s::timestamptz, now() - make_interval(secs => %(until_seconds)s::float8),
                             'infinity')
ORDER BY id DESC
LIMIT %(limit)s

-- name: list_walked
-- How far the walk of list_jobs went after `after`: how many ids it examined (at most `scan`), and the last
-- one, where the next page starts. Only the primary key is read (an index-only scan, mostly).
SELECT count(*) AS walked, min(id) AS walked_to
FROM ((SELECT id FROM pgqueue.jobs WHERE %(after)s::text IS NULL ORDER BY id DESC LIMIT %(scan)s)
      UNION ALL
      (SELECT id FROM pgqueue.jobs WHERE id < %(after)s::text ORDER BY id DESC LIMIT %(scan)s)) AS walked

-- name: list_live_jobs
-- `pgqueue jobs --status` scheduled, queued or running (any of them): newest id first, after `after`.
-- Through the partial indexes of those statuses (jobs_claim_idx, jobs_running_idx): the cost follows the
-- jobs waiting and running, not the history.
SELECT id, queue, func_name, status::text AS status, priority, attempts, max_attempts, enqueued_at,
       scheduled_at, started_at, ended_at, worker_name, exc_info, progress::text AS progress
FROM pgqueue.jobs
WHERE ((%(scheduled)s AND status = 'scheduled') OR (%(queued)s AND status = 'queued')
       OR (%(running)s AND status = 'running'))
  AND (%(after)s::text IS NULL OR id < %(after)s::text)
  AND (%(queues)s::text[] IS NULL OR queue = ANY (%(queues)s::text[]))
  AND (%(function)s::text IS NULL OR func_name = %(function)s::text)
  AND enqueued_at >= coalesce(%(since)s::timestamptz, now() - make_interval(secs => %(since_seconds)s::float8),
                              '-infinity')
  AND enqueued_at < coalesce(%(until)s::timestamptz, now() - make_interval(secs => %(until_seconds)s::float8),
                             'infinity')
ORDER BY id DESC
LIMIT %(limit)s

-- name: list_ended_jobs
-- `pgqueue jobs --status` finished, failed or canceled (any of them): the history, most recently ended
-- first, `since` and `until` bounding ended_at, after the job that ended at `after_ended_at` with the id
-- `after`. Through jobs_ended_at_idx (or jobs_failed_idx): the cost follows the jobs of the window that
-- come before the page, not the whole history.
SELECT id, queue, func_name, status::text AS status, priority, attempts, max_attempts, enqueued_at,
       scheduled_at, started_at, ended_at, worker_name, exc_info, progress::text AS progress
FROM pgqueue.jobs
WHERE ended_at >= coalesce(%(since)s::timestamptz, now() - make_interval(secs => %(since_seconds)s::float8),
                           '-infinity')
  AND ended_at < coalesce(%(until)s::timestamptz, now() - make_interval(secs => %(until_seconds)s::float8),
                          'infinity')
  AND ended_at <= coalesce(%(after_ended_at)s::timestamptz, 'infinity')
  AND (%(after_ended_at)s::timestamptz IS NULL OR (ended_at, id) < (%(after_ended_at)s::timestamptz, %(after)s::text))
  AND ((%(finished)s AND status = 'finished') OR (%(failed)s AND status = 'failed')
       OR (%(canceled)s AND status = 'canceled'))
  AND (%(queues)s::text[] IS NULL OR queue = ANY (%(queues)s::text[]))
  AND (%(function)s::text IS NULL OR func_name = %(function)s::text)
ORDER BY ended_at DESC, id DESC
LIMIT %(limit)s

-- name: job_ended_at
-- Where a page of the history starts: when the job `id` ended (no row if it does not exist).
SELECT ended_at FROM pgqueue.jobs WHERE id = %(id)s

-- name: job_details
-- `pgqueue show`: every column of the job, in order, as a JSON object (so columns added later show too),
-- with the worker that holds or last ran it and whether that worker is alive.
SELECT row_to_json(j)::text AS job,
       (SELECT jsonb_build_object('name', w.name, 'hostname', w.hostname, 'pid', w.pid, 'queues', w.queues,
                                  'heartbeat_at', w.heartbeat_at, 'lease_seconds', w.lease_seconds,
                                  'stopped_at', w.stopped_at,
                                  'alive', w.stopped_at IS NULL
                                           AND w.heartbeat_at >= now() - make_interval(secs => w.lease_seconds))::text
        FROM pgqueue.workers w WHERE w.id = j.worker_id) AS worker,
       now() AS now
FROM pgqueue.jobs j WHERE j.id = %(id)s

-- name: purge_count
-- `pgqueue purge`: the moment before which ended jobs go (now minus `older_than` seconds, the database's
-- now), and how many jobs of `statuses` (of `queue`, if given) ended before it. Through jobs_ended_at_idx
-- (jobs_failed_idx for one queue's failed jobs): it reads the jobs it counts.
WITH cutoff AS (SELECT now() - make_interval(secs => %(older_than)s::float8) AS cutoff)
SELECT c.cutoff,
       (SELECT count(*) FROM pgqueue.jobs j
        WHERE j.ended_at < c.cutoff
          AND ((%(finished)s AND j.status = 'finished') OR (%(failed)s AND j.status = 'failed')
               OR (%(canceled)s AND j.status = 'canceled'))
          AND (%(queue)s::text IS NULL OR j.queue = %(queue)s::text)) AS jobs
FROM cutoff c

-- name: purge_batch
-- Deletes up to `limit` of those jobs, oldest first, in its own transaction, skipping rows another
-- transaction holds (they stay for a later run). Only ended jobs, whatever the flags say: the status arms
-- are finished, failed and canceled alone. Returns how many it deleted.
WITH doomed AS (
    SELECT id FROM pgqueue.jobs j
    WHERE j.ended_at < %(cutoff)s::timestamptz
      AND ((%(finished)s AND j.status = 'finished') OR (%(failed)s AND j.status = 'failed')
           OR (%(canceled)s AND j.status = 'canceled'))
      AND (%(queue)s::text IS NULL OR j.queue = %(queue)s::text)
    ORDER BY j.ended_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), deleted AS (
    DELETE FROM pgqueue.jobs j USING doomed d
    WHERE j.id = d.id AND j.status IN ('finished', 'failed', 'canceled')
    RETURNING j.id
)
SELECT count(*) AS deleted FROM deleted

