-- The statements of `pgqueue jobs`, `pgqueue show`, `pgqueue purge` and `pgqueue doctor` (pgqueue/operations.py,
-- pgqueue/health.py). Loaded with queries.sql; none of them is on a worker's or an enqueue's path.
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


-- `pgqueue doctor` (pgqueue/health.py). Each reads the server's statistics views, or what an index of
-- pgqueue's finds: the running jobs, the workers, the waiting jobs; none reads the history.

-- name: health_sessions
-- Sessions of this database whose transaction holds back the xmin horizon (a snapshot, or a transaction
-- id) and began more than `max_age` seconds ago. Of other roles' sessions, pg_stat_activity shows these
-- columns only to members of pg_read_all_stats (health_visibility counts those hidden).
SELECT pid, usename AS role, application_name, host(client_addr) AS client_addr, state, xact_start,
       query_start, state_change, extract(epoch FROM now() - xact_start)::float8 AS seconds,
       age(coalesce(backend_xmin, backend_xid)) AS xid_age,
       left(split_part(ltrim(query, E' \t\r\n'), E'\n', 1), 200) AS query
FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()
  AND (backend_xmin IS NOT NULL OR backend_xid IS NOT NULL)
  AND xact_start < now() - make_interval(secs => %(max_age)s::float8)
ORDER BY xact_start, pid

-- name: health_visibility
-- Whether this role sees every session's transaction (a superuser, or a member of pg_read_all_stats), and
-- how many client sessions of this database it cannot see into.
SELECT coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false)
           OR pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS sees_all,
       (SELECT count(*) FROM pg_stat_activity
        WHERE datname = current_database() AND backend_type = 'client backend' AND state IS NULL
          AND pid <> pg_backend_pid()) AS hidden

-- name: health_prepared
-- Prepared transactions (two-phase commit) of this database older than `max_age` seconds: each holds back
-- the xmin horizon, and its locks, until COMMIT PREPARED or ROLLBACK PREPARED.
SELECT gid, owner, prepared, extract(epoch FROM now() - prepared)::float8 AS seconds,
       age(transaction) AS xid_age
FROM pg_prepared_xacts
WHERE database = current_database() AND prepared < now() - make_interval(secs => %(max_age)s::float8)
ORDER BY prepared

-- name: health_slots
-- Replication slots whose xmin (kept for a standby's queries, hot_standby_feedback) is more than
-- `max_xid_age` transactions old: it holds back the horizon of every database of the server.
SELECT slot_name, slot_type, active, active_pid, age(xmin) AS xid_age, wal_status
FROM pg_replication_slots
WHERE xmin IS NOT NULL AND age(xmin) > %(max_xid_age)s::int
ORDER BY age(xmin) DESC

-- name: health_table
-- pgqueue.jobs and its claim index: the statistics collector's live and dead rows and vacuums, whether
-- autovacuum may run on it, the dead rows at which it would (autovacuum_vacuum_threshold plus
-- autovacuum_vacuum_scale_factor of the rows, the table's own settings first), the sizes, and the entries
-- the claim index should hold (the waiting jobs, counted through it). Whether pgstattuple is installed
-- (health_pgstattuple then measures).
SELECT s.n_live_tup AS live_rows, s.n_dead_tup AS dead_rows, s.last_vacuum, s.last_autovacuum,
       s.autovacuum_count, s.vacuum_count,
       current_setting('autovacuum') = 'on' AS autovacuum_on, current_setting('track_counts') = 'on' AS track_counts,
       coalesce((SELECT lower(option_value) IN ('on', 'true', 'yes', '1')
                 FROM pg_options_to_table(c.reloptions) WHERE option_name = 'autovacuum_enabled'), true)
           AS table_autovacuum,
       (coalesce((SELECT option_value::float8 FROM pg_options_to_table(c.reloptions)
                  WHERE option_name = 'autovacuum_vacuum_threshold'),
                 current_setting('autovacuum_vacuum_threshold')::float8)
        + coalesce((SELECT option_value::float8 FROM pg_options_to_table(c.reloptions)
                    WHERE option_name = 'autovacuum_vacuum_scale_factor'),
                   current_setting('autovacuum_vacuum_scale_factor')::float8) * greatest(c.reltuples, 0))::bigint
           AS vacuum_due_at,
       pg_relation_size(c.oid) AS table_bytes,
       pg_relation_size('pgqueue.jobs_claim_idx'::regclass) AS claim_index_bytes,
       (SELECT count(*) FROM pgqueue.jobs WHERE status IN ('queued', 'scheduled')) AS claim_index_rows,
       EXISTS (SELECT FROM pg_extension WHERE extname = 'pgstattuple') AS pgstattuple
FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.oid = 'pgqueue.jobs'::regclass

-- name: health_pgstattuple
-- With pgstattuple installed (and the role allowed to run it: pg_stat_scan_tables): the claim index's leaf
-- density and the table's dead rows, measured. pgstattuple_approx reads the pages the visibility map does
-- not vouch for; pgstatindex reads the whole claim index (small: only waiting jobs are in it).
SELECT i.avg_leaf_density, i.leaf_pages, i.deleted_pages, t.dead_tuple_percent, t.approx_free_percent
FROM pgstatindex('pgqueue.jobs_claim_idx') i, pgstattuple_approx('pgqueue.jobs'::regclass) t

-- name: health_lost_workers
-- Workers that stopped heartbeating without stopping (their last heartbeat older than their lease), with
-- the running jobs they still hold (jobs_running_idx). Running workers delete these rows an hour on.
SELECT w.name, w.hostname, w.pid, w.queues, w.lease_seconds, w.heartbeat_at,
       extract(epoch FROM now() - w.heartbeat_at)::float8 AS silent_seconds,
       (SELECT count(*) FROM pgqueue.jobs j WHERE j.worker_id = w.id AND j.status = 'running') AS running
FROM pgqueue.workers w
WHERE w.stopped_at IS NULL AND w.heartbeat_at < now() - make_interval(secs => w.lease_seconds)
ORDER BY w.heartbeat_at, w.id

-- name: health_stuck_jobs
-- Running jobs that have run longer than their timeout plus `margin` seconds: the worker should have
-- stopped them (jobs_running_idx). A job without a timeout ('Infinity') is never stuck. At most 100.
SELECT id, queue, func_name, worker_name, started_at, timeout_seconds,
       extract(epoch FROM now() - started_at)::float8 AS running_seconds
FROM pgqueue.jobs
WHERE status = 'running' AND extract(epoch FROM now() - started_at) > timeout_seconds + %(margin)s::float8
ORDER BY started_at, id
LIMIT 100
