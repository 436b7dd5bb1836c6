"""The slot of a worker's async jobs: one long-lived child process running an event loop
(:mod:`pgqueue.worker._aexecute`), where up to ``concurrency`` jobs run at once.

It is a ChildSlot (the same fork, pipes, frames, kill and replacement) whose tasks do not wait for each other:
each task sent starts at once, so the slot knows when each began, gives each its own deadline, and answers for
them in any order. Tasks beyond ``concurrency`` wait here, in the supervisor, and start as others end (or go
back to their queue after ``give_back_after``, as the tasks waiting in a ChildSlot do).

The supervisor learns which functions are async from its child processes: a child that finds a job's function
is a coroutine function hands the job over (``("async", (id, claim))``, see _execute.HandOver) instead of
running it, and the supervisor sends the next jobs of that function here directly.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence

from ._aexecute import async_child_main
from ._hooks import JobHooks
from ._messages import ExceptionHandler, Outcome, Task
from ._slots import CALLBACK_GRACE, ChildSlot, _frame, timeout_message


class AsyncSlot(ChildSlot):
    _main = staticmethod(async_child_main)
    concurrent = True
    announces = True  # each task is logged as it is sent (it starts then)

    def __init__(self, index: int, dsn: str | None, worker_name: str, allow: Sequence[str],
                 handlers: Sequence[ExceptionHandler], concurrency: int, announce: Callable[[Task], None],
                 hooks: JobHooks | None = None) -> None:
        self.concurrency = concurrency
        self._announce = announce
        self.running: dict[str, tuple[Task, float]] = {}  # job id -> (task, monotonic time it was sent)
        self.queued: deque[Task] = deque()  # held here until there is room
        self.marked: set[str] = set()  # running tasks whose run is recorded as started
        self.late: str | None = None  # the job whose lateness got the process killed
        self.appetite = 1  # how many jobs to claim for it: grows while claims bring it async jobs
        super().__init__(index, dsn, worker_name, allow, handlers, hooks=hooks)

    # -- claiming and dispatch ---------------------------------------------------------------------
    def hungry(self, half: int, late: float) -> bool:
        return len(self.tasks) < self.concurrency and not self.stop_flag.value and self.kill_reason is None

    def share(self, batch: int) -> int:
        return max(1, min(self.appetite, self.concurrency - len(self.tasks)))

    def dealt(self, count: int) -> None:
        """A claim brought it ``count`` jobs: claim more next time if it brought some, fewer if none."""
        self.appetite = min(self.concurrency, max(1, 2 * count if count else self.appetite // 2))

    def dispatch(self, tasks: Sequence[Task]) -> bool:
        if self.dead:
            return False
        if not self.queued:
            self.current_start = time.monotonic()  # when the oldest queued task began to wait
        self.tasks.extend(tasks)
        self.queued.extend(tasks)
        self._send()
        return True  # held: if the process is gone by now, replacing it accounts for them

    def stop_job(self, key: tuple[str, int]) -> bool:
        """A canceled job: its asyncio task is cancelled in the process (an async job sees CancelledError, as at
        its timeout). The event loop is never killed for it: the other jobs there go on."""
        entry = self.running.get(key[0])
        if entry is None or entry[0].claim != key[1] or not self.process.is_alive():
            return False
        self._pending += _frame(("cancel", key[0]))
        return self.pump()

    def _send(self) -> None:
        room = self.concurrency - len(self.running)
        if room <= 0 or not self.queued or self.stop_flag.value or self.kill_reason is not None:
            return
        batch = [self.queued.popleft() for _ in range(min(room, len(self.queued)))]
        now = time.monotonic()
        for task in batch:
            self.running[task.id] = (task, now)
            if task.marked:
                self.marked.add(task.id)
            self._announce(task)
        self.current_start = now
        self._pending += _frame((0, [tuple(t) for t in batch]))
        self.pump()

    def took(self, task_id: str, now: float) -> None:
        entry = self.running.pop(task_id, None)
        if entry is not None:
            self.tasks.remove(entry[0])
        self.marked.discard(task_id)
        self._send()

    def drop(self, skipped: set[tuple[str, int]]) -> list[Task]:
        dropped = super().drop(skipped)
        self.queued = deque(t for t in self.queued if (t.id, t.claim) not in skipped)
        return dropped

    @property
    def head_running(self) -> bool:  # the supervisor's one-task marking does not apply: see unmarked()
        return False

    @property
    def waiting(self) -> bool:
        return bool(self.queued)

    def give_back(self) -> list[Task]:
        back = list(self.queued)
        self.queued.clear()
        ids = {t.id for t in back}
        self.tasks = deque(t for t in self.tasks if t.id not in ids)
        return back

    def unmarked(self, now: float, after: float) -> list[tuple[str, int, float]]:
        """(job id, claim, seconds running) of the runs going on for ``after`` seconds and not yet recorded as
        started; they count as recorded from now on."""
        found = [(task.id, task.claim, now - start) for task, start in self.running.values()
                 if task.id not in self.marked and now - start >= after]
        self.marked.update(id for id, _, _ in found)
        return found

    # -- deadlines ---------------------------------------------------------------------------------
    def deadline(self) -> float | None:
        """The next time the supervisor must look at this slot: a kill deadline, or a run to record as
        started (0.1 s after it began; see unmarked)."""
        times = [start + task.timeout + CALLBACK_GRACE for task, start in self.running.values()]
        times += [start + 0.1 for task, start in self.running.values() if task.id not in self.marked]
        return min(times) if times else None

    def kill_if_late(self, now: float) -> None:
        """The job's task is cancelled at its timeout in the process; a job still running a grace period after
        it did not stop (it blocks the event loop, or ignores the cancellation): the process is killed."""
        if self.kill_reason is not None:
            return
        for task, start in self.running.values():
            if now > start + task.timeout + CALLBACK_GRACE:
                self.late = task.id
                self.kill(f"{timeout_message(task.timeout)}: it did not stop when cancelled (it blocked the event "
                          "loop, or ignored the cancellation), so its process was killed", "JobTimeoutError")
                return

    def lost_runs(self, kind: str, reason: str, now: float) -> list[Outcome]:
        """The outcomes of the runs the process's end cut short (it crashed, was killed, or the lease's fence
        stopped it): each a failed attempt, retried as a crash is. The late job's own is the timeout; the
        others' say why their process was killed."""
        outcomes = []
        for task, start in self.running.values():
            k, r = kind, reason
            if kind == "JobTimeoutError" and task.id != self.late:
                k, r = "WorkHorseKilled", (f"the event-loop process running this job was killed: job {self.late} "
                                           f"in it did not stop at its timeout")
            outcomes.append(Outcome(task.id, task.attempt, task.claim, False, None, f"{k}: {r}", k, r, now - start))
        return outcomes

    def restart(self) -> list[Task]:
        lost = super().restart()
        self.running.clear()
        self.queued.clear()
        self.marked.clear()
        self.late = None
        return lost

    def fence(self, reason: str) -> None:
        # From the fence thread. What is queued here is never sent after this (see _send): replacing the
        # process hands it back with the rest, unstarted, and it is released.
        if self.running and self.kill_reason is None:
            self.kill(reason, "LeaseLost")
