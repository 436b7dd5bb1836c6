"""Claiming and dispatching, for the worker loop (a part of Worker, kept apart for size): how many jobs to
claim, from which queues, and which job process gets which. Claims are batched: a worker takes as many jobs
as fill about 50 ms of work per slot."""

from __future__ import annotations

import logging
import operator
import threading
import time
from collections.abc import Sequence
from typing import Any

import psycopg

from .. import _serialize, _store
from ._aslot import AsyncSlot
from ._lease import Lease
from ._messages import Task
from ._outcomes import Outcomes
from ._queues import ClaimOrder
from ._slots import Slot

log = logging.getLogger("pgqueue.worker")

_BATCH_WINDOW = 0.05  # seconds of work a slot is given per claim
_PRIORITY_ORDER = operator.attrgetter("priority", "position")


class _Call:
    """Formats ``tasks.f(6, 7)`` for the log only if the line is emitted."""

    __slots__ = ("task",)

    def __init__(self, task: Task) -> None:
        self.task = task

    def __str__(self) -> str:
        args = _serialize.loads(self.task.args_json)
        kwargs = _serialize.loads(self.task.kwargs_json)
        args_text = ", ".join(repr(a) for a in args) if isinstance(args, list) else repr(args)
        kwargs_text = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) if isinstance(kwargs, dict) else repr(kwargs)
        return f"{self.task.func_name}({', '.join(p for p in (args_text, kwargs_text) if p)})"


class Claiming:
    """Worker's claim round and dispatch (see Worker for the attributes)."""

    name: str
    max_batch: int
    give_back_after: float
    poll_interval: float
    worker_id: int | None
    _in_process: bool
    _signals: int
    _want_claim: bool
    _claimed: int
    _avg_duration: float
    _next_poll: float
    _order: ClaimOrder
    _lease: Lease | None
    _fence_lock: threading.Lock
    _outcomes: Outcomes
    _conn: psycopg.Connection[Any] | None
    _slots: list[Slot]
    _async_slot: AsyncSlot | None
    _async_funcs: set[str]

    def _claim_round(self, slots: list[Slot], max_jobs: int | None) -> bool:
        """Claim for the slots that take more work; True if jobs were claimed."""
        if self._signals or not self._want_claim or (max_jobs is not None and self._claimed >= max_jobs):
            return False
        if not self._order.serving:  # suspended, or every queue of ours paused
            log.debug("Worker %s: claims nothing: %s", self.name,
                      "suspended" if self._order.suspended else "all its queues are paused")
            self._want_claim = False
            return False
        if self._lease is None or not self._lease.held:
            return False  # the fence stopped our jobs: nothing new until the heartbeat is renewed
        # Idle slots first: the first jobs of a claim go to them and start at once.
        hungry = sorted(self._hungry(slots), key=lambda s: s.busy)
        if not hungry:
            return False
        batch = self._batch_size()
        limit = sum(s.share(batch) for s in hungry)
        if max_jobs is not None:
            limit = min(limit, max_jobs - self._claimed)
        tasks = self._claim(limit, sum(not s.busy for s in hungry))
        self._claimed += len(tasks)
        self._dispatch(tasks, hungry)  # first: the jobs start while we look further ahead
        if len(tasks) < limit:
            self._want_claim = False
            self._next_poll = min(self._next_poll, self._next_scheduled(time.monotonic()))
        return bool(tasks)

    def _batch_size(self) -> int:
        return max(1, min(self.max_batch, int(_BATCH_WINDOW / max(self._avg_duration, 1e-6))))

    def _hungry(self, slots: Sequence[Slot]) -> list[Slot]:
        """Slots that take more tasks: those with at most half a batch left, unless the task they run has
        gone on past give_back_after (what waits behind it goes back to its queue; more would too)."""
        half, late = self._batch_size() // 2, time.monotonic() - self.give_back_after
        return [s for s in slots if s.hungry(half, late)]

    def _claim(self, limit: int, start_now: int) -> list[Task]:
        """Claim up to ``limit`` jobs, queues in the strategy's order; the first ``start_now`` start at once."""
        assert self._conn is not None
        tasks: list[Task] = []
        for queue in self._order.order():
            rows = _store.claim(self._conn, queue=queue, limit=limit - len(tasks), worker_id=self.worker_id,
                                worker_name=self.name, start_now=max(0, start_now - len(tasks)))
            rows.sort(key=_PRIORITY_ORDER)
            if rows:
                self._order.last_served = queue  # round_robin starts the next claim after it
            tasks.extend([Task(r.id, r.queue, r.func_name, r.args_json, r.kwargs_json, r.timeout, r.attempt,
                               r.meta_json, r.claim, r.marked, self.worker_id, r.callbacks, r.retry_on,  # type: ignore[arg-type]
                               r.traceparent)
                          for r in rows])
            if len(tasks) >= limit:
                break
        return tasks

    def _dispatch(self, tasks: list[Task], slots: list[Slot]) -> None:
        if self._in_process:
            self._deal(tasks, slots)  # runs the jobs here and now: the fence interrupts them instead
            return
        with self._fence_lock:
            if self._lease is not None and self._lease.held:
                self._deal(tasks, slots)
            else:  # the fence fired since the claim: these jobs must not start
                self._outcomes.release([(t.id, t.claim) for t in tasks])

    def _deal(self, tasks: list[Task], slots: list[Slot]) -> None:
        if self._async_slot is not None:  # the jobs of functions known to be async go to their process
            tasks, slots = self._deal_async(tasks, slots, self._async_slot)
        # Round robin, idle slots first: the first jobs claimed (those recorded as starting now) become
        # the idle slots' heads, and each slot gets its share of a small claim.
        for i, slot in enumerate(slots):
            chunk = tasks[i::len(slots)]
            if not chunk:
                break
            idle = not slot.busy
            if not slot.dispatch(chunk):
                self._outcomes.release([(t.id, t.claim) for t in chunk])
            elif idle and not slot.announces:  # it starts now
                self._announce(chunk[0])

    def _deal_async(self, tasks: list[Task], slots: list[Slot], target: AsyncSlot) -> tuple[list[Task], list[Slot]]:
        """Send the async jobs among ``tasks`` to ``target``; the rest, and the slots left for them (all the
        others if only ``target`` was hungry)."""
        funcs = self._async_funcs
        mine = [t for t in tasks if t.func_name in funcs]
        target.dealt(len(mine))
        if mine:
            tasks = [t for t in tasks if t.func_name not in funcs]
            if not target.dispatch(mine):
                self._outcomes.release([(t.id, t.claim) for t in mine])
        others = [s for s in slots if s is not target]
        return tasks, others or [s for s in self._slots if s is not target]

    def _announce(self, task: Task) -> None:
        """The log line of a job that starts: ``queue: tasks.f(6, 7) (JOB_ID)``."""
        if log.isEnabledFor(logging.INFO):
            log.info("%s: %s (%s)", task.queue, _Call(task), task.id)

    def _next_scheduled(self, now: float) -> float:
        """When the earliest scheduled job of our queues becomes due (monotonic clock)."""
        assert self._conn is not None
        seconds = _store.next_scheduled(self._conn, self._order.serving)
        return now + (self.poll_interval if seconds is None else max(0.0, seconds))
