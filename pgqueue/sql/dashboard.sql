-- The statements of the web dashboard (pgqueue/dashboard/, `pgqueue dashboard`), run from
-- pgqueue/_store/dashboard.py. None is on a worker's or an enqueue's path; every one reads.
--
-- Cost is the point of this file: a dashboard is left open on a busy database, and pgqueue.jobs may hold
-- millions of ended jobs. So no statement here counts or sorts the history kept:
--   * live statuses (scheduled, queued, deferred, running) are counted exactly, through the partial index
--     that holds only them (jobs_claim_idx, jobs_deferred_idx, jobs_running_idx): their cost follows the
--     work waiting or running, never the history;
--   * failed jobs are counted per queue up to a cap, through jobs_failed_idx;
--   * finished and canceled jobs (and the throughput chart) are counted over the last hour only, and over
--     at most `cap` of its latest jobs, through jobs_ended_at_idx;
--   * a job list reads a bounded number of rows in the order of one index (the dashboard_scan_* statements:
--     keyset pagination, never OFFSET), and the page's rows by primary key.
-- benchmarks/dashboard.py times every page on 1,000,000 ended jobs; docs/dashboard.md has the numbers.
--
-- The `ops` branch's views (per-queue counts, throughput per minute) answer similar questions for SQL
-- users; these are the dashboard's own, bounded as above.

-- name: dashboard_page
-- Every page reads in one transaction (one snapshot: its numbers agree with one another), with these
-- settings for that transaction only, so that they also hold behind a transaction pooler. Custom plans:
-- the optional filters below (`%(queue)s IS NULL OR ...`) fold away once their values are known, and the
-- partial index of the status asked for can be proven usable. No JIT: its compile time is wasted on
-- statements this short. No sequential scan where an index serves: the planner otherwise prefers reading
-- the whole table to scanning all of a GIN index (jobs_deferred_idx). A statement_timeout, so that no page
-- holds the server long whatever the data. now(): the page's clock (ages, the chart's minutes).
SELECT set_config('plan_cache_mode', 'force_custom_plan', true) AS plan_cache_mode,
       set_config('jit', 'off', true) AS jit,
       set_config('enable_seqscan', 'off', true) AS enable_seqscan,
       set_config('statement_timeout', %(statement_timeout)s::text, true) AS statement_timeout,
       now() AS now

-- name: dashboard_live_counts
-- Jobs per queue and live status, with the oldest one's enqueued_at: queued and scheduled jobs through
-- jobs_claim_idx (keyed on hashtext(queue), hence both conditions on the queue), running ones through
-- jobs_running_idx, deferred ones through jobs_deferred_idx (`depends_on @> '{}'` holds for every array:
-- it only lets that GIN index serve). Of every queue, or of `queue`.
SELECT queue, status::text AS status, count(*) AS jobs, min(enqueued_at) AS oldest_enqueued_at
FROM pgqueue.jobs
WHERE status IN ('queued', 'scheduled')
  AND (%(queue)s::text IS NULL OR (hashtext(queue) = hashtext(%(queue)s::text) AND queue = %(queue)s::text))
GROUP BY queue, status
UNION ALL
SELECT queue, 'running', count(*), min(enqueued_at)
FROM pgqueue.jobs
WHERE status = 'running' AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
GROUP BY queue
UNION ALL
SELECT queue, 'deferred', count(*), min(enqueued_at)
FROM pgqueue.jobs
WHERE status = 'deferred' AND depends_on @> '{}'::text[] AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
GROUP BY queue

-- name: dashboard_failed_counts
-- Failed jobs per queue, each count stopping at `limit` (the dashboard shows "more than N" past it),
-- through jobs_failed_idx (queue, ended_at): the queues by a skip scan of that index (one probe per
-- queue), then each queue's count reads at most `limit` of its entries. Of every queue, or of `queue`.
WITH RECURSIVE queues(queue) AS (
    (SELECT j.queue FROM pgqueue.jobs j
     WHERE j.status = 'failed' AND (%(queue)s::text IS NULL OR j.queue = %(queue)s::text)
     ORDER BY j.queue LIMIT 1)
    UNION ALL
    SELECT (SELECT j.queue FROM pgqueue.jobs j
            WHERE j.status = 'failed' AND j.queue > q.queue
              AND (%(queue)s::text IS NULL OR j.queue = %(queue)s::text)
            ORDER BY j.queue LIMIT 1)
    FROM queues q WHERE q.queue IS NOT NULL
)
SELECT q.queue,
       (SELECT count(*) FROM (SELECT 1 FROM pgqueue.jobs j
                              WHERE j.queue = q.queue AND j.status = 'failed'
                              LIMIT %(limit)s::int) f) AS jobs
FROM queues q WHERE q.queue IS NOT NULL

-- name: dashboard_recent_ended
-- The jobs that ended in the last `minutes` minutes, by queue, minute and status: the finished, failed and
-- canceled columns of the queue tables and the throughput chart. Through jobs_ended_at_idx, newest first,
-- and at most `limit` of them: past that the counts cover the latest `limit` jobs only, and `since` (the
-- oldest ended_at read) says from when; the page says so.
SELECT r.queue, date_trunc('minute', r.ended_at) AS minute, r.status::text AS status, count(*) AS jobs,
       min(r.ended_at) AS since
FROM (SELECT j.queue, j.status, j.ended_at FROM pgqueue.jobs j
      WHERE j.ended_at IS NOT NULL AND j.ended_at > now() - make_interval(mins => %(minutes)s::int)
      ORDER BY j.ended_at DESC
      LIMIT %(limit)s::int) r
GROUP BY r.queue, date_trunc('minute', r.ended_at), r.status

-- name: dashboard_workers
-- The rows of pgqueue.workers (a small table: workers prune the rows of those gone for an hour), live ones
-- first, each with up to `jobs` of the jobs it holds (jobs_running_idx), the one it started first first.
SELECT w.id, w.name, w.hostname, w.pid, w.queues, w.concurrency, w.lease_seconds, w.started_at,
       w.heartbeat_at, w.stopped_at, w.successful_jobs, w.failed_jobs, w.working_seconds,
       (w.stopped_at IS NULL AND w.heartbeat_at >= now() - make_interval(secs => w.lease_seconds)) AS live,
       r.running, coalesce(r.job_ids[1:%(jobs)s::int], '{}') AS job_ids,
       coalesce(r.job_funcs[1:%(jobs)s::int], '{}') AS job_funcs
FROM pgqueue.workers w
CROSS JOIN LATERAL (
    SELECT count(*) AS running,
           array_agg(j.id ORDER BY j.started_at NULLS LAST, j.id) AS job_ids,
           array_agg(j.func_name ORDER BY j.started_at NULLS LAST, j.id) AS job_funcs
    FROM pgqueue.jobs j WHERE j.worker_id = w.id AND j.status = 'running'
) r
ORDER BY live DESC, w.name, w.id
LIMIT %(limit)s::int

-- name: dashboard_job
-- One job, every column the job page shows (JSON columns as text), by primary key.
SELECT id, queue, func_name, args::text AS args, kwargs::text AS kwargs, status::text AS status, priority,
       description, meta::text AS meta, result::text AS result, exc_info, errors::text AS errors, attempts,
       max_attempts, timeout_seconds, result_ttl, failure_ttl, ttl, depends_on, unique_key, worker_name,
       enqueued_at, scheduled_at, started_at, ended_at, delete_at, progress::text AS progress, batch_id,
       retry_on, callbacks::text AS callbacks
FROM pgqueue.jobs WHERE id = %(id)s::text

-- name: dashboard_job_rows
-- The rows of a page of a job list, or of a job's dependencies, by primary key, in no particular order.
-- Arguments are cut to `chars` characters and the last failure to its last line, so a page stays small
-- whatever the jobs hold.
SELECT id, queue, func_name, left(args::text, %(chars)s::int) AS args, left(kwargs::text, %(chars)s::int) AS kwargs,
       status::text AS status, priority, attempts, max_attempts, worker_name, enqueued_at, scheduled_at,
       started_at, ended_at,
       left((regexp_match(rtrim(exc_info, E' \n\t\r'), '[^\n]*$'))[1], %(chars)s::int) AS last_error,
       progress::text AS progress
FROM pgqueue.jobs WHERE id = ANY (%(ids)s::text[])

-- name: dashboard_dependents
-- The jobs waiting on one job (deferred, through jobs_deferred_idx). No index finds the dependents that
-- have left `deferred`, so they are not listed.
SELECT id FROM pgqueue.jobs
WHERE status = 'deferred' AND depends_on @> ARRAY[%(id)s::text]
ORDER BY enqueued_at, id
LIMIT %(limit)s::int


-- Job lists. Each dashboard_scan_* statement reads up to `limit` jobs of one status in the order of one
-- index, after the cursor (`key`, `id`; NULL: from the start), with only index conditions in its WHERE, so
-- its cost is at most `limit` index entries and rows whatever the filters. Each row says whether the job
-- matches the page's filters (`hit`); the caller reads chunk after chunk until it has a page of hits or
-- has read its cap of rows, and then fetches the page's rows (dashboard_job_rows). `key` is the sort key
-- as text (the cursor the next chunk starts after). Filters: `queue` (exact), `func` (a part of the
-- function's dotted path), `since` / `until` (on the list's time column).

-- name: dashboard_scan_ended
-- finished, failed or canceled jobs (`statuses`), newest end first, through jobs_ended_at_idx; the time
-- range is on ended_at, and an index condition.
SELECT id, ended_at::text AS key,
       (status::text = ANY (%(statuses)s::text[])
        AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
        AND (%(func)s::text IS NULL OR strpos(func_name, %(func)s::text) > 0)) AS hit
FROM pgqueue.jobs
WHERE ended_at IS NOT NULL
  AND ended_at >= coalesce(%(since)s::timestamptz, '-infinity') AND ended_at <= coalesce(%(until)s::timestamptz, 'infinity')
  AND (%(key)s::text IS NULL OR (ended_at <= %(key)s::timestamptz
                                 AND (ended_at, id) < (%(key)s::timestamptz, %(id)s::text)))
ORDER BY ended_at DESC, id DESC
LIMIT %(limit)s::int

-- name: dashboard_scan_failed
-- The failed jobs of one queue, newest failure first, through jobs_failed_idx (queue, ended_at): only that
-- queue's failed jobs are read.
SELECT id, ended_at::text AS key,
       (%(func)s::text IS NULL OR strpos(func_name, %(func)s::text) > 0) AS hit
FROM pgqueue.jobs
WHERE status = 'failed' AND queue = %(queue)s::text
  AND ended_at >= coalesce(%(since)s::timestamptz, '-infinity') AND ended_at <= coalesce(%(until)s::timestamptz, 'infinity')
  AND (%(key)s::text IS NULL OR (ended_at <= %(key)s::timestamptz
                                 AND (ended_at, id) < (%(key)s::timestamptz, %(id)s::text)))
ORDER BY ended_at DESC, id DESC
LIMIT %(limit)s::int

-- name: dashboard_scan_queued
-- Queued jobs in the order workers take them (priority, then FIFO), queue after queue (in the order of
-- their names' hashes), through jobs_claim_idx, which also holds the scheduled jobs (read, not hits). The
-- key is `hashtext(queue),priority,position` (position is unique: no id needed). The time range is on
-- enqueued_at.
SELECT id, concat_ws(',', hashtext(queue), priority, position) AS key,
       (status = 'queued'
        AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
        AND (%(func)s::text IS NULL OR strpos(func_name, %(func)s::text) > 0)
        AND enqueued_at >= coalesce(%(since)s::timestamptz, '-infinity')
        AND enqueued_at <= coalesce(%(until)s::timestamptz, 'infinity')) AS hit
FROM pgqueue.jobs
WHERE status IN ('queued', 'scheduled')
  AND (%(queue)s::text IS NULL OR hashtext(queue) = hashtext(%(queue)s::text))
  AND (%(key)s::text IS NULL
       OR (hashtext(queue), priority, position) > (split_part(%(key)s::text, ',', 1)::int,
                                                   split_part(%(key)s::text, ',', 2)::int,
                                                   split_part(%(key)s::text, ',', 3)::bigint))
ORDER BY hashtext(queue), priority, position
LIMIT %(limit)s::int

-- name: dashboard_scan_scheduled
-- Scheduled jobs, soonest first, through jobs_scheduled_idx; the time range is on scheduled_at, and an
-- index condition.
SELECT id, scheduled_at::text AS key,
       ((%(queue)s::text IS NULL OR queue = %(queue)s::text)
        AND (%(func)s::text IS NULL OR strpos(func_name, %(func)s::text) > 0)) AS hit
FROM pgqueue.jobs
WHERE status = 'scheduled'
  AND scheduled_at >= coalesce(%(since)s::timestamptz, '-infinity')
  AND scheduled_at <= coalesce(%(until)s::timestamptz, 'infinity')
  AND (%(key)s::text IS NULL OR (scheduled_at >= %(key)s::timestamptz
                                 AND (scheduled_at, id) > (%(key)s::timestamptz, %(id)s::text)))
ORDER BY scheduled_at, id
LIMIT %(limit)s::int

-- name: dashboard_scan_running
-- Running jobs worker by worker (jobs_running_idx, keyed on worker_id); the time range is on started_at.
SELECT id, worker_id::text AS key,
       ((%(queue)s::text IS NULL OR queue = %(queue)s::text)
        AND (%(func)s::text IS NULL OR strpos(func_name, %(func)s::text) > 0)
        AND (%(since)s::timestamptz IS NULL OR started_at >= %(since)s::timestamptz)
        AND (%(until)s::timestamptz IS NULL OR started_at <= %(until)s::timestamptz)) AS hit
FROM pgqueue.jobs
WHERE status = 'running'
  AND (%(key)s::text IS NULL OR (worker_id >= %(key)s::bigint AND (worker_id, id) > (%(key)s::bigint, %(id)s::text)))
ORDER BY worker_id, id
LIMIT %(limit)s::int

-- name: dashboard_scan_deferred
-- Deferred jobs, oldest first, through jobs_deferred_idx (GIN, so sorted after reading: deferred jobs
-- are live ones, few next to the history); the time range is on enqueued_at.
SELECT id, enqueued_at::text AS key,
       ((%(queue)s::text IS NULL OR queue = %(queue)s::text)
        AND (%(func)s::text IS NULL OR strpos(func_name, %(func)s::text) > 0)) AS hit
FROM pgqueue.jobs
WHERE status = 'deferred' AND depends_on @> '{}'::text[]
  AND enqueued_at >= coalesce(%(since)s::timestamptz, '-infinity')
  AND enqueued_at <= coalesce(%(until)s::timestamptz, 'infinity')
  AND (%(key)s::text IS NULL OR (enqueued_at >= %(key)s::timestamptz
                                 AND (enqueued_at, id) > (%(key)s::timestamptz, %(id)s::text)))
ORDER BY enqueued_at, id
LIMIT %(limit)s::int
