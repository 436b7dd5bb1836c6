-- Periodic jobs: the statements of the worker's scheduler (pgqueue/worker/_scheduler.py) and of
-- `pgqueue schedules`. One row of pgqueue.schedules per schedule; next_tick is the next tick to enqueue.
-- Every time is the database's: now() is read in the same statement that decides what is due.

-- name: declare_schedules
-- A scheduler's schedules as it loaded them: new ones inserted, the others updated and marked declared
-- (updated_at). A changed expression or timezone starts the schedule afresh: next_tick is computed again,
-- from now. In name order, so that schedulers that start together take the row locks in the same order.
INSERT INTO pgqueue.schedules AS s (name, expression, timezone, func_name, queue)
SELECT d.name, d.expression, d.timezone, d.func_name, d.queue
FROM unnest(%(names)s::text[], %(expressions)s::text[], %(timezones)s::text[], %(func_names)s::text[],
            %(queues)s::text[]) AS d(name, expression, timezone, func_name, queue)
ORDER BY d.name
ON CONFLICT (name) DO UPDATE
SET expression = excluded.expression, timezone = excluded.timezone, func_name = excluded.func_name,
    queue = excluded.queue, updated_at = now(),
    next_tick = CASE WHEN (s.expression, s.timezone) = (excluded.expression, excluded.timezone)
                     THEN s.next_tick END

-- name: touch_schedules
-- A running scheduler's schedules are still declared: updated_at is renewed (rows another scheduler has
-- locked are skipped: they are being ticked) and rows deleted meanwhile come back, without next_tick.
-- The definition is left as the last scheduler to load it wrote it. Returns how many rows it renewed.
WITH missing AS (
    INSERT INTO pgqueue.schedules (name, expression, timezone, func_name, queue)
    SELECT d.name, d.expression, d.timezone, d.func_name, d.queue
    FROM unnest(%(names)s::text[], %(expressions)s::text[], %(timezones)s::text[], %(func_names)s::text[],
                %(queues)s::text[]) AS d(name, expression, timezone, func_name, queue)
    ORDER BY d.name
    ON CONFLICT (name) DO NOTHING
    RETURNING name
), renewed AS (
    UPDATE pgqueue.schedules SET updated_at = now()
    WHERE name IN (SELECT name FROM pgqueue.schedules WHERE name = ANY (%(names)s::text[])
                   ORDER BY name FOR UPDATE SKIP LOCKED)
    RETURNING name
)
SELECT (SELECT count(*) FROM renewed) + (SELECT count(*) FROM missing) AS declared

-- name: lock_due_schedules
-- Up to `limit` of the given schedules whose next tick is due (or not computed yet), locked until the
-- transaction ends; those another scheduler holds are skipped. With the status of each one's last job
-- (overlap=False) and the transaction's now(), from which the scheduler computes the ticks.
SELECT s.name, s.next_tick, s.last_job_id, j.status::text AS last_status, now() AS now
FROM pgqueue.schedules s LEFT JOIN pgqueue.jobs j ON j.id = s.last_job_id
WHERE s.name = ANY (%(names)s::text[]) AND (s.next_tick IS NULL OR s.next_tick <= now())
ORDER BY s.name
LIMIT %(limit)s
FOR UPDATE OF s SKIP LOCKED

-- name: advance_schedule
-- The guarded UPDATE that moves a locked schedule to its next tick, in the transaction that enqueued the
-- tick's job (if any): it changes the row only if next_tick is still what the scheduler read, and only
-- forward. last_tick, last_job_id and last_outcome keep their values where NULL is given.
UPDATE pgqueue.schedules
SET next_tick = %(next_tick)s, last_tick = coalesce(%(last_tick)s, last_tick),
    last_job_id = coalesce(%(last_job_id)s, last_job_id), last_outcome = coalesce(%(outcome)s, last_outcome)
WHERE name = %(name)s AND next_tick IS NOT DISTINCT FROM %(expected)s
  AND (next_tick IS NULL OR next_tick < %(next_tick)s)
RETURNING name

-- name: next_schedule_tick
-- Seconds until the earliest next tick of the given schedules: 0 or less if one is due that another
-- scheduler holds (or whose next tick it is computing), NULL if none of them has a row.
SELECT CASE WHEN bool_or(next_tick IS NULL) THEN 0
            ELSE extract(epoch FROM min(next_tick) - now())::float8 END AS seconds
FROM pgqueue.schedules WHERE name = ANY (%(names)s::text[])

-- name: list_schedules
-- `pgqueue schedules`: every schedule, with its last job's status and whether a scheduler declared it
-- within the last `declared_within` seconds.
SELECT s.name, s.expression, s.timezone, s.func_name, s.queue, s.next_tick, s.last_tick, s.last_job_id,
       j.status::text AS last_job_status, s.last_outcome, s.updated_at,
       s.updated_at >= now() - make_interval(secs => %(declared_within)s) AS declared, now() AS now
FROM pgqueue.schedules s LEFT JOIN pgqueue.jobs j ON j.id = s.last_job_id
ORDER BY s.name

-- name: database_now
SELECT now() AS now
