-- Workflows: batches with callbacks, the dependency failure policy, chains (docs/workflows.md).
--
-- The transaction that records a job's end also decides what follows: its dependents are released or
-- canceled, its batch's counters move, and the batch's callbacks are enqueued once its last member ended.
-- Nothing sweeps up afterwards (the Promoter only finishes what a statement's bound left), so a crash
-- cannot leave a batch half-counted or a callback enqueued twice.
--
-- That work is done by functions of the schema (schema.sql: pgqueue.batch_ends, batch_reopened, jobs_ended,
-- jobs_depended_on), which every statement that ends jobs calls, in its transaction, when one of those jobs
-- is in a batch or has dependents: finish_jobs, fail_jobs, cancel_job, rescue_lost_jobs, prune_jobs,
-- promote_deferred, delete_job, queue_empty and registry_remove (and the requeues, which reopen). Functions,
-- because PostgreSQL prepares every part of a statement each time it runs, whether a row reaches it or not:
-- written into finish_jobs, the same work made it cost 54% more for plain jobs.
--
-- Lock order: the jobs' rows first, then the batches' rows in id order. Dependents are taken with SKIP
-- LOCKED (what is skipped, the Promoter finishes), so no statement waits for another's jobs here.

-- name: create_batch
-- A batch, open: Batch's `with` block, in the transaction that goes on to enqueue its members and close it.
-- `callbacks`: one object per callback, with the id its job will have (see pgqueue.batch_ends).
INSERT INTO pgqueue.batches (id, description, callbacks)
VALUES (%(id)s, %(description)s, %(callbacks)s::jsonb)
RETURNING id, created_at

-- name: add_batch_members
-- Members COPYed into an open batch, in the COPY's transaction (insert_jobs counts the members it writes).
UPDATE pgqueue.batches SET total = total + %(count)s, pending = pending + %(count)s
WHERE id = %(id)s AND closed_at IS NULL
RETURNING id

-- name: close_batch
-- The end of the batch's enqueueing (the end of Batch's `with` block, in the same transaction): from now
-- on, the statement that records the end of its last member enqueues its callbacks; here, if every member
-- has ended already (or there is none). `enqueued`: how many callbacks were enqueued here.
SELECT pgqueue.batch_ends('{}', '{}', '{}', %(id)s) AS enqueued

-- name: fetch_batch
SELECT id, description, total, pending, finished, failed, canceled, callbacks::text AS callbacks, callback_ids,
       created_at, closed_at, completed_at
FROM pgqueue.batches WHERE id = %(id)s

-- name: batch_members
-- One page of a batch's members in enqueue order (position): those after the position `after` (NULL: from
-- the first), of status `status` if given. Through jobs_batch_idx, so a page costs the same on a batch of
-- 10 or 100,000 members (with `status`, the members of other statuses in between are read too).
SELECT id, queue, func_name, args::text AS args, kwargs::text AS kwargs, status::text AS status, priority,
       description, meta::text AS meta, result::text AS result, exc_info, errors::text AS errors, attempts,
       max_attempts, timeout_seconds, result_ttl, failure_ttl, ttl, depends_on, unique_key, worker_name,
       enqueued_at, scheduled_at, started_at, ended_at, position
FROM pgqueue.jobs
WHERE batch_id = %(id)s AND position > coalesce(%(after)s::bigint, -9223372036854775808)  -- in the index
  AND (%(status)s::text IS NULL OR status::text = %(status)s::text)
ORDER BY batch_id, position
LIMIT %(limit)s

-- name: member_position
-- Where the member `job_id` of the batch `id` is in its order (Batch.members(after=job_id)).
SELECT position FROM pgqueue.jobs WHERE id = %(job_id)s AND batch_id = %(id)s

-- name: list_batches
-- `pgqueue batches`: the newest `limit` batches (batches_created_idx).
SELECT id, description, total, pending, finished, failed, canceled, created_at, closed_at, completed_at
FROM pgqueue.batches
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s

-- name: cancel_dependents
-- Deleting jobs before they ended cancels their dependents, and delete_job, queue_empty and registry_remove
-- cancel the first 1,000: job.delete(), q.empty() and a registry's remove() repeat this, in their
-- transaction, while it cancels as many as it may. (A deleted job's row is gone, so the Promoter could not
-- tell its dependents from those of a job that finished and was pruned, which it releases.)
SELECT pgqueue.jobs_ended(%(ids)s::text[], 'deleted', '{}') AS dependents_canceled

-- name: prune_batches
-- The Pruner, after prune_jobs: of the batches whose members it deleted, those that completed, have no
-- member left and no callback that has not ended.
DELETE FROM pgqueue.batches b
WHERE b.id = ANY (%(ids)s::text[]) AND b.completed_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM pgqueue.jobs j WHERE j.batch_id = b.id)
  AND NOT EXISTS (SELECT 1 FROM pgqueue.jobs j WHERE j.id = ANY (b.callback_ids)
                                                 AND j.status IN ('scheduled', 'queued', 'deferred', 'running'))

-- name: copy_simple_batch_jobs
-- Batch.enqueue_many's fastest path: copy_simple_jobs, with the batch's id (add_batch_members counts them).
COPY pgqueue.jobs (id, queue, func_name, args, timeout_seconds, batch_id) FROM STDIN

-- name: copy_batch_jobs
-- copy_jobs, with the batch's id.
COPY pgqueue.jobs (id, queue, func_name, args, kwargs, status, priority, description, meta, max_attempts,
                   retry_intervals, timeout_seconds, result_ttl, failure_ttl, ttl, scheduled_at, traceparent,
                   batch_id)
FROM STDIN

-- name: prune_dependencies
-- The Pruner: of the first `limit` rows of pgqueue.dependencies (the oldest, mostly: rows are appended),
-- those whose job has ended (or is gone). They only told fail_jobs to look for the job's dependents. A
-- bounded look, not a search of the whole table: a chain of 100,000 links waiting has 100,000 rows.
DELETE FROM pgqueue.dependencies
WHERE ctid IN (SELECT w.ctid FROM (SELECT d.ctid, d.job_id FROM pgqueue.dependencies d LIMIT %(limit)s) w
               WHERE NOT EXISTS (SELECT 1 FROM pgqueue.jobs j WHERE j.id = w.job_id
                                   AND j.status IN ('scheduled', 'queued', 'deferred', 'running')))
