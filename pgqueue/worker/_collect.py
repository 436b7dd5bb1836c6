"""The worker's collection of what its slots send: outcomes (handed to _outcomes to write), callback phases,
async jobs handed over to the event-loop process, and the replacement of a dead or timed-out child with what
it held recorded or released. A base class of Worker (pgqueue/worker/_supervisor.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from ._aslot import AsyncSlot
from ._claiming import Claiming
from ._control import Cancels
from ._hooks import JobHooks, WorkerHooks
from ._messages import CallbackEnd, CallbackStart, ExceptionHandler, Message, Outcome, Task
from ._slots import ChildSlot, Slot

log = logging.getLogger("pgqueue.worker")


class Collecting(Claiming):
    """Worker's collection of its slots' messages (see Worker for the attributes)."""

    dsn: str | None
    allow_modules: tuple[str, ...]
    exception_handlers: list[ExceptionHandler]
    async_concurrency: int
    hooks: list[Any]
    _hooks: WorkerHooks | None
    _cancels: Cancels

    def _collect(self, slots: list[Slot]) -> int:
        """Take outcomes from every slot; replace dead or timed-out children. Returns jobs that ran."""
        ran = 0
        now = time.monotonic()
        for slot in slots:
            ran += self._take(slot, slot.received())
            if isinstance(slot, ChildSlot):
                slot.kill_if_late(now)
                if slot.dead:
                    ran += self._take(slot, slot.received())  # what it sent before dying
                    ran += self._replace(slot)
        return ran

    def _take(self, slot: Slot, messages: list[Message]) -> int:
        ran = 0
        now = time.monotonic()
        info = log.isEnabledFor(logging.INFO)
        for msg in messages:
            if isinstance(msg, Outcome):
                ran += 1
                self._took_outcome(slot, msg, now, info)
            elif isinstance(msg, CallbackStart):  # sent just before its job's outcome
                slot.callback_started(msg, now)
            elif isinstance(msg, CallbackEnd):
                if msg.error_type is not None:
                    self._outcomes.callback_failed(msg.id, msg.attempt, msg.name, msg.func, msg.error_type,
                                                   msg.message, msg.traceback)
                if slot.callback_ended(msg, now) and slot.tasks and not slot.announces and not self._signals:
                    self._announce(slot.tasks[0])
            elif msg[0] == "async":  # ("async", (id, claim)): an async job, handed over
                job_id, claim = msg[1]
                self._to_async_slot(slot, job_id, claim, now)
            else:  # ("skipped", [(id, claim), ...]): never started (what give_back took is gone already)
                self._outcomes.release([(t.id, t.claim) for t in slot.drop({(i, c) for i, c in msg[1]})])
        return ran

    def _took_outcome(self, slot: Slot, msg: Outcome, now: float, info: bool) -> None:
        if self._hooks is not None:
            self._hooks.received(slot.tasks, msg)
        if not slot.concurrent:  # the batch size is the sync jobs'
            self._avg_duration = 0.8 * self._avg_duration + 0.2 * (now - slot.current_start)
        slot.took(msg.id, now)
        cancels = self._cancels
        if (cancels.asked or cancels.stopping) and cancels.ended((msg.id, msg.claim)):
            pass  # canceled: its outcome is not recorded (the row says canceled)
        else:
            self._outcomes.add(msg)
            if msg.ok and info:
                log.info("Job OK (%s)", msg.id)
        if slot.tasks and slot.callback is None and not slot.announces and not self._signals:  # next started
            self._announce(slot.tasks[0])

    def _to_async_slot(self, slot: Slot, job_id: str, claim: int, now: float) -> None:
        """A job process handed over the async job it was to run next: send it to the event-loop process
        (started now if not yet), and the next jobs of its function there directly."""
        task = slot.tasks[0] if slot.tasks else None
        if task is None or (task.id, task.claim) != (job_id, claim):
            return
        slot.took(job_id, now)
        if slot.tasks and slot.callback is None and not slot.announces and not self._signals:
            self._announce(slot.tasks[0])
        self._async_funcs.add(task.func_name)
        with self._fence_lock:
            if self._signals or self._lease is None or not self._lease.held:
                self._outcomes.release([(task.id, task.claim)])
                return
            if self._async_slot is None:
                self._async_slot = AsyncSlot(len(self._slots), self.dsn, self.name, self.allow_modules,
                                             self.exception_handlers, self.async_concurrency, self._announce,
                                             JobHooks.of(self.hooks))
                self._slots.append(self._async_slot)
            if not self._async_slot.dispatch([task]):
                self._outcomes.release([(task.id, task.claim)])

    def _callback_cut_short(self, phase: CallbackStart | None, held: Sequence[Task], kind: str, reason: str) -> bool:
        """Whether a callback was running when its process was stopped (by ``kind``: ``reason``): then it is
        recorded as failed, and none of the tasks ``held`` had started. Not so if its job's outcome never came
        (the head task is that job's)."""
        if phase is None or (held and (held[0].id, held[0].claim) == (phase.id, phase.claim)):
            return False
        self._outcomes.callback_failed(phase.id, phase.attempt, phase.name, phase.func, kind, reason)
        return True

    def _replace(self, slot: ChildSlot) -> int:
        reason, kind, phase = slot.exit_reason(), slot.kill_kind, slot.callback
        if isinstance(slot, AsyncSlot):  # every run it held was going on: each a failed attempt
            failed = slot.lost_runs(kind, reason, time.monotonic())
            with self._fence_lock:
                lost = slot.restart()
            for outcome in failed:
                self._outcomes.add(outcome)
            ran = {o.id for o in failed}
            self._outcomes.release([(t.id, t.claim) for t in lost if t.id not in ran])
            log.info("Worker %s: replaced its event-loop process (%s)", self.name, reason)
            return len(failed)
        with self._fence_lock:
            lost = slot.restart()
        if self._callback_cut_short(phase, lost, kind, reason):
            self._outcomes.release([(t.id, t.claim) for t in lost])
            log.info("Worker %s: replaced its child process (%s)", self.name, reason)
            return 0
        if lost:
            head, rest = lost[0], lost[1:]
            if not self._cancels.lost(slot, head):  # a canceled job's outcome is not recorded
                outcome = Outcome(head.id, head.attempt, head.claim, False, None, f"{kind}: {reason}", kind, reason,
                                  time.monotonic() - slot.current_start)
                self._outcomes.add(outcome)
                if self._hooks is not None:
                    self._hooks.received((head,), outcome)
            self._outcomes.release([(t.id, t.claim) for t in rest])
        log.info("Worker %s: replaced its child process (%s)", self.name, reason)
        return 1 if lost else 0
