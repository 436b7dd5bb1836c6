"""Stopping running jobs that were canceled (``job.cancel()``, ``pgqueue cancel``): how a worker hears of it,
and what it does.

The cancel_job statement marks the job ``canceled`` at once, so its outcome can no longer be recorded, and
tells the job's worker on ``pgqueue_control`` (``cancel:WORKER_ID:CLAIM:JOB_ID``, pgqueue._notify). A worker
without LISTEN (behind a transaction pooler) learns of it at its fallback poll instead, where every worker
also asks once which of the jobs it holds were canceled (one statement over those jobs, never per claim):
that covers a notification lost with its connection.

Then, for a ``Worker`` (:class:`Cancels`, called from the supervisor's loop):

- the tasks claimed behind the canceled one in its slot, not begun, go back to their queue without an
  attempt counted (``give_back``), and so does the canceled one if it had not begun (its release is fenced
  off: it stays canceled);
- the job's process gets ``CANCEL_SIGNAL``, whose handler raises :class:`pgqueue.JobCanceled` in the job's
  function;
- if the job still runs ``grace`` seconds later, its process is killed and replaced; the new process runs
  the job's ``on_stopped`` callback first. A job that stopped in time runs it in its own process, after it
  stopped (pgqueue.worker._execute).

A ``SimpleWorker`` runs the job in its loop, which hears nothing until the job ends; :class:`Watch`, a thread
with a connection of its own, hears for it (LISTEN, or without LISTEN a look every poll interval while a job
runs) and raises JobCanceled in the job through the same signal's handler in the main thread. A job that has
not stopped after the grace is stopped as a timeout is, by the slot's Alarm: an exception an ``except
Exception`` does not catch.

The canceled job's outcome is never recorded: the row says ``canceled`` already.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from .. import _notify, _store
from .._db import connect, readable, ready
from ._clock import CANCELED, TimeUp, cancel_running, running_key
from ._messages import Task
from ._outcomes import Outcomes
from ._slots import CANCEL_SIGNAL, ChildSlot, InProcessSlot, Slot

log = logging.getLogger("pgqueue.worker")

#: Seconds a canceled job may take to stop once told, before its process is killed (``cancel_grace``).
CANCEL_GRACE = 3.0

Key = tuple[str, int]  # (job id, claim): one claim of a job


def _key(task: Task) -> Key:
    return task.id, task.claim


class Cancels:
    """The cancels a Worker heard of and is carrying out. ``asked`` is also filled by a SimpleWorker's Watch
    (another thread: set operations, atomic in CPython)."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.asked: set[Key] = set()  # heard of; not acted on yet
        self.stopping: dict[Key, tuple[ChildSlot, float]] = {}  # told to stop: the slot, and when to kill it

    def heard(self, payload: str, worker_id: int | None) -> bool:
        """A pgqueue_control payload: whether it was a cancel (then noted if the job is this worker's)."""
        cancel = _notify.cancel_of(payload)
        if cancel is None:
            return False
        if cancel[0] == worker_id:
            self.asked.add((cancel[2], cancel[1]))
        return True

    def check(self, conn: psycopg.Connection[Any], worker_id: int | None, slots: Sequence[Slot]) -> None:
        """At the fallback poll: which of the jobs the slots hold were canceled (one statement, if any is held)."""
        held = [_key(t) for slot in slots for t in slot.tasks]
        if held:
            self.asked.update(_store.canceled_jobs(conn, held, worker_id))

    def apply(self, slots: Sequence[Slot], outcomes: Outcomes) -> None:
        """Stop what was asked, and kill what outlived its grace."""
        now = time.monotonic()
        for key in list(self.asked):  # one held by no job process: ended (its outcome came) or run in process
            self.asked.discard(key)
            if key in self.stopping:  # told already (found again at a fallback poll): its deadline holds
                continue
            for slot in slots:
                if isinstance(slot, ChildSlot) and any(_key(t) == key for t in slot.tasks):
                    self._stop(slot, key, outcomes, now)
                    break
        for key, (slot, deadline) in list(self.stopping.items()):
            if now >= deadline and slot.kill_reason is None and slot.callback is None and slot.tasks \
                    and _key(slot.tasks[0]) == key:
                slot.kill(f"the job was canceled and had not stopped {self.grace:g} s after it was told to", CANCELED)
                log.warning("Job canceled (%s): killed its process, the job had not stopped within %g s", key[0],
                            self.grace)

    def _stop(self, slot: ChildSlot, key: Key, outcomes: Outcomes, now: float) -> None:
        taken = slot.give_back()  # what had not begun, the canceled job too if it had not
        outcomes.release([_key(t) for t in taken])
        if any(_key(t) == key for t in taken):
            log.info("Job canceled (%s) before it started", key[0])
        elif slot.stop_job(key):
            self.stopping[key] = (slot, now + self.grace)
            log.info("Job canceled (%s): stopping it", key[0])

    def deadlines(self) -> list[float]:
        return [deadline for _, deadline in self.stopping.values()]

    def ended(self, key: Key) -> bool:
        """The outcome of ``key`` came: whether it is a canceled job's (then it is not recorded)."""
        if self.stopping.pop(key, None) is None:
            if key not in self.asked:
                return False
            self.asked.discard(key)
        log.info("Job canceled (%s): stopped", key[0])
        return True

    def lost(self, slot: ChildSlot, head: Task) -> bool:
        """The process of ``slot`` died (or was killed) running ``head``: whether ``head`` was canceled. Then
        its outcome is not recorded, and the slot's new process runs its on_stopped first, if it has one."""
        key = _key(head)
        if self.stopping.pop(key, None) is None:
            if key not in self.asked:
                return False
            self.asked.discard(key)
        if head.callbacks is not None:
            slot.run_stopped(head, time.monotonic())
        return True


class Watch:
    """A SimpleWorker's ear while its loop runs a job: a thread on a connection of its own (see the module's
    docstring). ``worker`` gives the worker's id, name, DSNs, listen mode and poll interval."""

    _REMEMBER = 5.0  # seconds a cancel heard before its job's dispatch began is kept, to be matched then

    def __init__(self, worker: Any, slot: InProcessSlot, cancels: Cancels) -> None:
        self.worker = worker
        self.slot = slot
        self.cancels = cancels
        self._conn: psycopg.Connection[Any] | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._stopping = False
        self._pending: dict[Key, tuple[float, bool]] = {}  # canceled and held: kill deadline, whether told
        self._unmatched: dict[Key, float] = {}  # canceled, not (yet) seen in a dispatch: until when to look
        self._thread = threading.Thread(target=self._run, name=f"pgqueue-watch-{worker.name}", daemon=True)

    def start(self) -> Watch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping = True
        os.write(self._wake_w, b"x")
        self._thread.join(5)
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _run(self) -> None:
        while not self._stopping:
            try:
                self._turn()
            except Exception as exc:  # logged and retried: the thread must not end
                log.warning("Worker %s: cannot hear of canceled jobs while one runs (%s); retrying in 1 s",
                            self.worker.name, str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
                self._close()
                readable(self._wake_r, 1.0)
        self._close()

    def _connect(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            listen = self.worker.listen
            self._conn = connect((self.worker.listen_dsn or self.worker.dsn) if listen else self.worker.dsn,
                                 role=f"{self.worker.name}:watch", pooled=False if listen else None)
            _store.worker_plan_settings(self._conn)
            if listen:
                _store.listen(self._conn, "control")
            self._check()  # what was canceled before it listened
        return self._conn

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # closing a broken connection must not hide the real error
                pass

    def _turn(self) -> None:
        conn = self._connect()
        listen = self.worker.listen
        timeout = 0.05 if self._pending or self._unmatched else 5.0 if listen else self.worker.poll_interval
        if listen:
            fds, _ = ready([self._wake_r, conn.fileno()], [], timeout)
            if conn.fileno() in fds:
                self._heard(conn)
        else:
            readable(self._wake_r, timeout)
            self._check()
        self._drain()
        self._follow()

    def _heard(self, conn: psycopg.Connection[Any]) -> None:
        pgconn = conn.pgconn
        pgconn.consume_input()
        while (note := pgconn.notifies()) is not None:
            cancel = _notify.cancel_of(note.extra.decode())
            if cancel is not None and cancel[0] == self.worker.worker_id:
                self._cancel((cancel[2], cancel[1]))
        if pgconn.status != psycopg.pq.ConnStatus.OK:
            raise psycopg.OperationalError("the connection was closed")

    def _check(self) -> None:
        held = [_key(t) for t in self.slot.batch[self.slot.position:]]
        if held and self._conn is not None:
            for key in _store.canceled_jobs(self._conn, held, self.worker.worker_id):
                self._cancel(key)

    def _cancel(self, key: Key) -> None:
        if key in self._pending:
            return
        if not self.slot.cancel(key):  # not begun to dispatch yet (claimed a moment ago), or ended already
            self._unmatched[key] = time.monotonic() + self._REMEMBER
            return
        self._unmatched.pop(key, None)
        self.cancels.asked.add(key)  # the loop then records no outcome for it
        self._pending[key] = (time.monotonic() + self.cancels.grace, self.slot.interrupt(key))
        log.info("Job canceled (%s): stopping it", key[0])

    def _follow(self) -> None:
        """Take up cancels heard before their dispatch; tell a canceled job that began since it was canceled;
        stop one past its grace; forget those that ended."""
        now = time.monotonic()
        for key, until in list(self._unmatched.items()):
            if now > until:
                del self._unmatched[key]
            else:
                self._cancel(key)
        left = {_key(t) for t in self.slot.batch[self.slot.position:]}
        for key, (deadline, told) in list(self._pending.items()):
            if key not in left:
                del self._pending[key]
            elif not told:
                self._pending[key] = (deadline, self.slot.interrupt(key))
            elif now >= deadline and self.slot.stop_canceled(
                    key, f"the job was canceled and had not stopped {self.cancels.grace:g} s after it was told to"):
                log.warning("Job canceled (%s): stopped it, the job had not stopped within %g s", key[0],
                            self.cancels.grace)
                del self._pending[key]

    def _drain(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass


def in_process_handler(slot: InProcessSlot) -> Callable[[int, Any], None]:
    """A SimpleWorker's handler of CANCEL_SIGNAL (sent to the main thread by its Watch): in the job running
    now, if the watch named it, raise JobCanceled, or past its grace TimeUp."""
    def handler(signum: int, frame: Any) -> None:
        running = running_key()
        if running is not None and running == slot.stop_key:
            raise TimeUp()
        if running is not None and running == slot.cancel_key:
            cancel_running(running)
    return handler


def install_watch(worker: Any, slot: InProcessSlot, cancels: Cancels) -> tuple[Watch, Any]:
    """In the main thread: start a SimpleWorker's watch and install its signal handler; returns the watch and
    the handler it replaced (to restore once the watch is stopped)."""
    previous = signal.signal(CANCEL_SIGNAL, in_process_handler(slot))
    return Watch(worker, slot, cancels).start(), previous
