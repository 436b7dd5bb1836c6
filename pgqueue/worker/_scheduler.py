"""The scheduler of periodic jobs: one more maintenance service (see _maintenance), run only by the workers
started with ``--with-scheduler``. A worker without it does nothing new.

Each run is one transaction of its own, with the maintenance lock and statement timeouts:

1. At the first run the scheduler writes its schedules' rows (declare_schedules); then, every minute, it
   marks them as still declared (touch_schedules).
2. It locks the schedules whose next tick is due (``FOR UPDATE SKIP LOCKED``: any number of schedulers
   may run; a row one of them holds, the others skip), computes each one's tick from the database's
   ``now()`` read by that same statement, enqueues the tick's job (or skips it, and records why), and
   moves next_tick forward with a guarded UPDATE. The job and the move commit together or not at all: a
   scheduler killed in the middle leaves neither, and the next scheduler to lock the row does the tick.
3. It reads when the next tick is due, and runs again then (sooner if another scheduler held a due row:
   that one may die before it commits).

So each tick is enqueued once, enforced by the row lock and the guarded UPDATE (and a tick's job id,
NAME@TICK, is a primary key too), never by comparing clocks: the worker's own clock only says when to look.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from types import ModuleType
from typing import Any, NamedTuple

from .._store import schedules as _store_schedules
from ..exceptions import PgQueueError
from ..scheduling import LIVE_STATUSES, REFRESH, Schedule, declared, load_schedules
from ._maintenance import BATCH, Conn, Service

log = logging.getLogger("pgqueue.worker")

RETRY_HELD = 0.25  # seconds before looking again at a due schedule that another scheduler held
MISSED_COUNT_LIMIT = 10_000  # missed ticks counted for the log and last_outcome (a seconds schedule down a day)


class Plan(NamedTuple):
    """What to do with a due schedule: enqueue the job of ``tick`` (None: nothing), move next_tick to
    ``next_tick``, and record ``outcome`` (None: keep the last one)."""
    tick: datetime | None
    next_tick: datetime
    outcome: str | None


def _at(schedule: Schedule, tick: datetime) -> str:
    return tick.astimezone(schedule.cron.zone).isoformat()


def plan_tick(schedule: Schedule, next_tick: datetime | None, last_job_id: str | None, last_status: str | None,
              now: datetime) -> Plan:
    """The plan for ``schedule`` whose row says ``next_tick``, when the database's time is ``now``. A pure
    function of the instants given: tests give their own.

    The tick enqueued is the latest one at or before ``now``: after a time without any scheduler, one job
    for all the ticks missed (``missed="once"``), or none if that tick is late (``missed="skip"``: it is
    late once more than its grace, half the time to the next tick and at most a minute, has passed)."""
    cron = schedule.cron
    if next_tick is None:  # new, or its expression changed: starts from now
        return Plan(None, cron.next_after(now), None)
    latest = cron.latest_until(now)
    following = cron.next_after(latest)
    if latest < next_tick:  # next_tick is not a tick of this expression (another version wrote it)
        return Plan(None, following, None)
    earlier = sum(1 for _ in cron.ticks(next_tick, latest, MISSED_COUNT_LIMIT)) if latest > next_tick else 0
    count = f"{earlier + 1}{'+' if earlier >= MISSED_COUNT_LIMIT else ''}"
    span = f"from {_at(schedule, next_tick)} to {_at(schedule, latest)}"
    late = now - latest > cron.grace(latest)
    if not schedule.overlap and last_status in LIVE_STATUSES:
        return Plan(None, following, f"skipped the tick of {_at(schedule, latest)}: the previous run "
                                     f"({last_job_id}) was still {last_status} (overlap=False)")
    if schedule.missed == "skip" and late:
        return Plan(None, following, f"skipped {count} missed tick(s) {span} (missed='skip')")
    if schedule.missed == "skip" and earlier:
        return Plan(latest, following, f"enqueued; skipped {earlier} missed tick(s) before it (missed='skip')")
    if earlier or late:
        return Plan(latest, following, f"enqueued once for {count} missed tick(s) {span}")
    return Plan(latest, following, "enqueued")


def worker_schedules(with_scheduler: bool, schedules: Any) -> list[Schedule]:
    """The schedules a worker runs: those of ``schedules`` (module names, modules, Schedule objects), or
    without it every @periodic declared in the process so far; none without ``with_scheduler``."""
    if schedules is None:
        return declared() if with_scheduler else []
    if not with_scheduler:
        raise ValueError("schedules= goes with with_scheduler=True: only workers with the scheduler enqueue "
                         "periodic jobs")
    if isinstance(schedules, (str, ModuleType, Schedule)) or not isinstance(schedules, Iterable):
        schedules = [schedules]
    return load_schedules(*schedules)


class Scheduler(Service):
    name = "scheduler"

    def __init__(self, worker_name: str, schedules: Sequence[Schedule], dsn: str | None) -> None:
        super().__init__()
        self.worker_name = worker_name
        self.dsn = dsn
        self.schedules = {s.name: s for s in schedules}
        self.names = sorted(self.schedules)
        self.definitions = [self.schedules[n].definition() for n in self.names]
        self.declared_at: float | None = None  # monotonic time of the last declaration committed
        self._pending: tuple[float | None, float, list[str]] = (None, REFRESH, [])  # until the run commits

    def run(self, conn: Conn) -> tuple[bool, int]:
        started = time.monotonic()
        declared_at = self.declared_at
        if declared_at is None:
            _store_schedules.declare_schedules(conn, self.definitions)
            declared_at = started
        elif started - declared_at >= REFRESH:
            _store_schedules.touch_schedules(conn, self.definitions)
            declared_at = started
        rows = _store_schedules.lock_due_schedules(conn, self.names, BATCH)
        lines: list[str] = []
        enqueued = sum(self._tick(conn, row, lines) for row in rows)
        seconds = _store_schedules.next_schedule_tick(conn, self.names)
        if seconds is None:
            wait = REFRESH
        elif seconds <= 0:  # due, but another scheduler holds it (or a new one's next tick is being computed)
            wait = RETRY_HELD
        else:
            wait = seconds + 0.001
        wait = min(wait, max(0.0, declared_at + REFRESH - started))
        self._pending = (declared_at, wait, lines)
        return len(rows) >= BATCH, enqueued

    def committed(self, interval: float) -> float:
        declared_at, wait, lines = self._pending
        self.declared_at = declared_at
        for line in lines:
            log.info("Worker %s: %s", self.worker_name, line)
        return wait

    def _tick(self, conn: Conn, row: _store_schedules.DueRow, lines: list[str]) -> int:
        schedule = self.schedules[row.name]
        plan = plan_tick(schedule, row.next_tick, row.last_job_id, row.last_status, row.now)
        job_id = None if plan.tick is None else schedule.enqueue_tick(conn, plan.tick, self.dsn).id
        if not _store_schedules.advance_schedule(conn, name=row.name, expected=row.next_tick, next_tick=plan.next_tick,
                                                 last_tick=plan.tick, last_job_id=job_id, outcome=plan.outcome):
            raise PgQueueError(f"schedule {row.name!r} changed while it was locked; nothing of its tick is kept")
        if plan.outcome is not None:
            lines.append(f"schedule {row.name}: {plan.outcome}" + (f" ({job_id})" if job_id else ""))
        return 0 if job_id is None else 1
