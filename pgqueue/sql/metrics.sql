-- The statements of pgqueue.metrics' database collector (`pgqueue metrics`), which Prometheus runs on every
-- scrape. Each reads live rows only, through the partial indexes that hold them (pgqueue/sql/schema.sql),
-- never the history of ended jobs: a scrape costs the same with 1,000 or 10,000,000 ended jobs kept
-- (docs/observability.md says what it costs, measured by benchmarks/metrics_scrape.py).

-- name: metrics_settings
-- For the scrape's own transaction: index paths only, whatever the statistics say (a table whose
-- statistics were taken while a million jobs were queued would otherwise be scanned whole), no parallel
-- workers (such statistics made the planner start two, for 10,000 rows: 44 ms a scrape instead of 18),
-- and a bound on how long a scrape may run.
SELECT set_config('enable_seqscan', 'off', true) AS enable_seqscan,
       set_config('max_parallel_workers_per_gather', '0', true) AS max_parallel_workers_per_gather,
       set_config('statement_timeout', %(statement_timeout)s, true) AS statement_timeout

-- name: metrics_jobs
-- Live jobs by queue and status. `queued` is what is runnable now: status queued, or scheduled and due (a
-- due scheduled job is claimed as it is, never promoted), and `oldest_seconds` how long the one that became
-- runnable first has waited. Each part of the union is the predicate of one partial index: jobs_claim_idx
-- (queued, scheduled), jobs_running_idx, jobs_deferred_idx (every array contains the empty one, as in
-- registry_deferred_ids).
SELECT queue, status, count(*) AS jobs, extract(epoch FROM now() - min(since))::float8 AS oldest_seconds
FROM (
    SELECT queue, CASE WHEN scheduled_at <= now() THEN 'queued' ELSE 'scheduled' END AS status,
           CASE WHEN scheduled_at <= now() THEN scheduled_at END AS since
    FROM pgqueue.jobs WHERE status IN ('queued', 'scheduled')
    UNION ALL
    SELECT queue, 'running', NULL FROM pgqueue.jobs WHERE status = 'running'
    UNION ALL
    SELECT queue, 'deferred', NULL FROM pgqueue.jobs WHERE status = 'deferred' AND depends_on @> '{}'::text[]
) live
GROUP BY queue, status
ORDER BY queue, status

-- name: metrics_workers
-- Live workers (heartbeat within their lease), busy or idle: running a job (jobs_running_idx) or not.
SELECT count(*) FILTER (WHERE NOT busy) AS idle, count(*) FILTER (WHERE busy) AS busy
FROM (SELECT EXISTS (SELECT 1 FROM pgqueue.jobs j WHERE j.worker_id = w.id AND j.status = 'running') AS busy
      FROM pgqueue.workers w
      WHERE w.stopped_at IS NULL AND w.heartbeat_at >= now() - make_interval(secs => w.lease_seconds)) s
