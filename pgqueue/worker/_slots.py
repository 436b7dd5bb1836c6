"""Where jobs run. A worker has ``concurrency`` slots; each runs its tasks one after another, in order.

``ChildSlot`` runs them in a long-lived child process, so a job that hangs, crashes or leaks cannot take
the worker down: the supervisor kills and replaces the process. ``InProcessSlot`` runs them in the
worker's own process (SimpleWorker), for tests and debuggers.

A job's callback runs in the same process right after the job, once its outcome is on its way: the slot
is then in its callback phase (``callback``), with the callback's deadline, until the callback ends.
"""

from __future__ import annotations

import fcntl
import gc
import marshal
import multiprocessing
import os
import signal
import struct
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._callbacks import stored_callback
from .._db import ready
from ._clock import CANCELED, Alarm, cancel_running, running_key, timeout_message
from ._execute import execute, hand_over_async, run, run_stopped
from ._messages import CallbackEnd, CallbackStart, ExceptionHandler, Message, Outcome, Task

if TYPE_CHECKING:
    from ._hooks import JobHooks

__all__ = ["ChildSlot", "InProcessSlot", "Slot", "timeout_message"]


# A job with callbacks stops itself at its timeout (so that its on_failure runs), and a callback at its own:
# the supervisor kills the process only this long after either, if it has not.
CALLBACK_GRACE = 2.0


class Slot:
    """Common state: the tasks handed over and not yet answered for, in the order they run."""

    tasks: deque[Task]
    current_start: float  # monotonic time the head task started
    announces = False  # whether the slot logs each task as it starts (else the supervisor does)
    concurrent = False  # whether its tasks run at once (an AsyncSlot), not one after another

    def __init__(self) -> None:
        self.tasks = deque()
        self.current_start = 0.0
        self.head_marked = False  # whether the head task's run was recorded as started
        self.callback: CallbackStart | None = None  # the callback running after its job, if any
        self.callback_deadline = 0.0

    @property
    def busy(self) -> bool:
        return bool(self.tasks) or self.callback is not None

    @property
    def head_running(self) -> bool:
        """Whether the head task runs now (not while a callback of the task before it does)."""
        return bool(self.tasks) and self.callback is None

    def deadline(self) -> float | None:
        if self.callback is not None:
            return self.callback_deadline
        if not self.tasks:
            return None
        head = self.tasks[0]
        return self.current_start + head.timeout + (CALLBACK_GRACE if head.callbacks is not None else 0.0)

    def callback_started(self, msg: CallbackStart, now: float) -> None:
        self.callback, self.callback_deadline = msg, now + msg.timeout + CALLBACK_GRACE

    def callback_ended(self, msg: CallbackEnd, now: float) -> bool:
        """The callback ``msg`` ended; the next task starts now. False if it was not this slot's current one."""
        phase = self.callback
        if phase is None or (phase.id, phase.claim) != (msg.id, msg.claim):
            return False
        self.callback = None
        self.current_start = now
        self.head_marked = bool(self.tasks) and self.tasks[0].marked
        return True

    def hungry(self, half: int, late: float) -> bool:
        """Whether to claim for this slot: at most half a batch left, unless the task it runs has gone on past
        give_back_after (``late``: what waits behind it goes back to its queue; more would too)."""
        return len(self.tasks) <= half and not (self.tasks and self.current_start <= late)

    def share(self, batch: int) -> int:
        """How many jobs to claim for this slot when it is hungry."""
        return batch

    def dispatch(self, tasks: Sequence[Task]) -> bool:
        raise NotImplementedError

    def received(self) -> list[Message]:
        raise NotImplementedError

    def took(self, task_id: str, now: float) -> None:
        """The head task answered: the next one started ``now`` (monotonic clock)."""
        tasks = self.tasks
        if tasks and tasks[0].id == task_id:
            tasks.popleft()
        self.current_start = now
        self.head_marked = bool(tasks) and tasks[0].marked

    def fds(self) -> list[int]:
        """What to wait on for outcomes (and a child's exit)."""
        return []

    def write_fds(self) -> list[int]:
        """What to wait on for room to hand over more tasks."""
        return []

    def pump(self) -> bool:
        """Hand over what dispatch could not yet; False if whatever runs the tasks is gone."""
        return True

    def request_stop(self) -> None:
        """Run nothing new after the current task."""

    def fence(self, reason: str) -> None:
        """The worker's lease is lost: stop the running task at once (the supervisor records it as a failed
        attempt of kind ``LeaseLost``, if nobody rescued the job meanwhile) and start no other."""

    @property
    def waiting(self) -> bool:
        """Whether tasks wait behind the running one (or callback) that give_back() could return."""
        return False

    def give_back(self) -> list[Task]:
        """Take back the tasks that have not started and will not: the caller releases their claims."""
        return []

    def drop(self, skipped: set[tuple[str, int]]) -> list[Task]:
        """Forget the tasks answered as skipped (by job id and claim); returns those it held."""
        dropped = [t for t in self.tasks if (t.id, t.claim) in skipped]
        if dropped:
            self.tasks = deque(t for t in self.tasks if (t.id, t.claim) not in skipped)
        return dropped

    def close(self) -> None:
        pass


#: The signal that tells a job process to stop its job (the job sees pgqueue.JobCanceled raised in it).
CANCEL_SIGNAL = signal.SIGUSR1

# Both directions travel as frames on raw pipes: a 4-byte length, then marshal of plain tuples of
# str/int/float/bool/None. Tasks go supervisor -> child as one frame per dispatched list; each outcome
# comes back as its own frame as soon as the job ends (a child killed mid-job loses no earlier outcome),
# and the supervisor drains all that arrived with one read. This costs a fraction of pickled messages
# through multiprocessing.Connection.
_FRAME = struct.Struct("!I")
_OUTCOME_FIELDS = len(Outcome._fields)

# Supervisor-side pipe ends of every live ChildSlot: a child closes those it inherited, so that only its
# own supervisor holds the write end of its task pipe (EOF there tells it the supervisor is gone).
_supervisor_fds: set[int] = set()


def _frame(message: Any) -> bytes:
    data = marshal.dumps(message)
    return _FRAME.pack(len(data)) + data


def _tagged(msg: Any) -> Message:
    tag, fields = msg
    if tag == "callback":
        return CallbackStart._make(fields)
    if tag == "called":
        return CallbackEnd._make(fields)
    if tag == "async":
        return ("async", tuple(fields))
    return ("skipped", fields)


def _write_all(fd: int, data: bytes) -> None:
    written = os.write(fd, data)
    if written < len(data):
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view):]


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int) -> Any:
    """The next frame's message (blocking); None at EOF."""
    header = _read_exact(fd, 4)
    if header is None:
        return None
    data = _read_exact(fd, _FRAME.unpack(header)[0])
    return None if data is None else marshal.loads(data)


def _grow_pipe(fd: int) -> None:
    """Make a pipe hold 1 MiB (Linux; the default 64 KiB holds about 400 tasks)."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 1 << 20)
    except (AttributeError, OSError):  # not Linux, or above /proc/sys/fs/pipe-max-size
        pass


def _message_frame(msg: Any) -> bytes:
    """An outcome travels as its tuple; a callback's start and end tagged, as ("skipped", ...) is."""
    if type(msg) is Outcome or type(msg) is tuple:  # an outcome, or a job handed over: (tag, fields) already
        return _frame(tuple(msg))
    return _frame(("callback" if type(msg) is CallbackStart else "called", tuple(msg)))


def child_setup(cancel: Any = None, begun: Any = None) -> None:
    """A job process's first steps: ignore the signals the supervisor handles (Ctrl-C reaches the whole
    process group; the supervisor decides what happens to running jobs), hear of cancels (``cancel``: the
    supervisor names the task by number, then signals; only that task's function is interrupted, one that
    has ended or not begun is not), and close the supervisor's ends of the other job processes' pipes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if cancel is not None:
        def on_cancel(signum: int, frame: Any) -> None:
            if cancel.value == begun.value:
                cancel_running()

        signal.signal(CANCEL_SIGNAL, on_cancel)
    for fd in _supervisor_fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _child_main(task_fd: int, out_fd: int, stop: Any, handover: Any, cut: Any, begun: Any, cancel: Any,
                dsn: str | None, worker_name: str, allow: Sequence[str], handlers: Sequence[ExceptionHandler],
                hand_over: bool = False, hooks: JobHooks | None = None) -> None:
    child_setup(cancel, begun)
    hand_over_async(hand_over)  # async jobs go to the worker's event-loop process (an AsyncSlot)
    clock = Alarm(always=False)  # only jobs with callbacks stop themselves; the supervisor kills the others
    while True:
        try:
            frame = _read_frame(task_fd)
        except OSError:  # the supervisor is gone
            return
        if frame is None:
            return
        if frame[0] == "stopped":  # a canceled job's on_stopped, after its process was killed
            _write_all(out_fd, _message_frame(run_stopped(Task._make(frame[1]), dsn, worker_name, allow, clock)))
            continue
        first, tasks = frame
        for i, fields in enumerate(tasks):
            with handover:  # the supervisor takes back what is numbered above ``begun``, never what started
                skip = stop.value or cut.value >= first + i
                if not skip:
                    begun.value = first + i
            if skip:  # stopping, or given back: each answered as skipped, by id and claim
                _write_all(out_fd, _frame(("skipped", [(t[0], t[8]) for t in tasks[i:]])))
                break
            task = Task._make(fields)
            if task.callbacks is None:  # most jobs: no generator, no callback to wait for
                _write_all(out_fd, _frame(tuple(run(task, dsn, worker_name, allow, handlers, hooks))))
                continue
            for msg in execute(task, dsn, worker_name, allow, clock, handlers=handlers, hooks=hooks):
                _write_all(out_fd, _message_frame(msg))


class ChildSlot(Slot):
    _main = staticmethod(_child_main)  # what the process runs

    def __init__(self, index: int, dsn: str | None, worker_name: str, allow: Sequence[str],
                 handlers: Sequence[ExceptionHandler] = (), hand_over: bool = False,
                 hooks: JobHooks | None = None) -> None:
        super().__init__()
        self._ctx = multiprocessing.get_context("fork")
        # Forked: the handlers and hooks are not pickled. hand_over: async jobs go to the worker's AsyncSlot.
        self._args = (dsn, worker_name, tuple(allow), tuple(handlers), hand_over, hooks)
        self._name = f"pgqueue-child-{index}"
        self.stop_flag = self._ctx.RawValue("b", 0)  # shared memory: read before each task, no lock
        self.kill_reason: str | None = None
        self.kill_kind = "WorkHorseKilled"  # the error type recorded for the task a kill stopped
        self._start()

    def _start(self) -> None:
        # Tasks handed to this child are numbered 1, 2, ... The child starts task n only if n > cut, and
        # says so in ``begun``, both under ``handover``; give_back() sets cut under it too, so what it
        # takes back has not started and never will.
        self._handover = self._ctx.Lock()
        self._cut, self._begun = self._ctx.RawValue("q", 0), self._ctx.RawValue("q", 0)
        self._cancel = self._ctx.RawValue("q", 0)  # the number of the task a cancel stops
        self._numbered = 0
        self._number: dict[tuple[str, int], int] = {}  # (job id, claim) of each task held -> its number
        task_r, task_w = os.pipe()  # tasks: supervisor -> child
        out_r, out_w = os.pipe()  # outcomes: child -> supervisor
        _supervisor_fds.update((task_w, out_r))
        # Copy-on-write: objects that exist now stay shared with the child only while nobody writes to
        # them, and a garbage collection writes to every object it scans. Frozen objects are never
        # scanned again, by the supervisor or the child (after a 20,000-job drain, private dirty memory
        # went from 16 to 10 MB in the supervisor and from 15 to 7 MB in the child).
        gc.collect()
        gc.freeze()
        try:
            self.process = self._ctx.Process(target=self._main, args=(
                task_r, out_w, self.stop_flag, self._handover, self._cut, self._begun, self._cancel, *self._args),
                                             name=self._name, daemon=False)
            self.process.start()
        finally:
            os.close(task_r)
            os.close(out_w)
        os.set_blocking(out_r, False)
        os.set_blocking(task_w, False)
        for fd in (task_w, out_r):  # room for a whole batch: neither side waits for the other to read
            _grow_pipe(fd)
        self.task_fd, self.out_fd, self._buffer, self._pending = task_w, out_r, b"", b""
        self.kill_reason = None
        self.kill_kind = "WorkHorseKilled"
        self.callback = None

    def _close_fds(self) -> None:
        for fd in (self.task_fd, self.out_fd):
            _supervisor_fds.discard(fd)
            os.close(fd)

    def dispatch(self, tasks: Sequence[Task]) -> bool:
        """Hand tasks to the child; False if it is gone (the caller releases them, _replace restarts it).
        What the pipe cannot take now is written by pump() as the child reads."""
        first = self._numbered + 1
        self._pending += _frame((first, [tuple(t) for t in tasks]))
        if not self.pump():  # the child died since we last looked
            return False
        self._numbered += len(tasks)
        self._number.update(((t.id, t.claim), n) for n, t in enumerate(tasks, first))
        if not self.tasks:
            self.current_start = time.monotonic()
            self.head_marked = tasks[0].marked
        self.tasks.extend(tasks)
        return True

    def took(self, task_id: str, now: float) -> None:
        head = self.tasks[0] if self.tasks else None
        super().took(task_id, now)
        if head is not None and head.id == task_id:
            self._number.pop((head.id, head.claim), None)

    def drop(self, skipped: set[tuple[str, int]]) -> list[Task]:
        for key in skipped:
            self._number.pop(key, None)
        return super().drop(skipped)

    @property
    def waiting(self) -> bool:
        return len(self.tasks) > (0 if self.callback is not None else 1) and self._cut.value < self._numbered

    def give_back(self) -> list[Task]:
        if not self.waiting or not self._handover.acquire(timeout=1):  # a child killed holding it: not now
            return []
        try:
            self._cut.value = self._numbered
            begun = self._begun.value
        finally:
            self._handover.release()
        return self.drop({key for key, number in self._number.items() if number > begun})

    def pump(self) -> bool:
        """Write what the task pipe takes without blocking; False if the child is gone (what it did not
        take is dropped: the tasks are still held, and replacing the process accounts for them)."""
        try:
            while self._pending:
                self._pending = self._pending[os.write(self.task_fd, self._pending):]
        except BlockingIOError:
            pass
        except BrokenPipeError:
            self._pending = b""
            return False
        return True

    def write_fds(self) -> list[int]:
        return [self.task_fd] if self._pending else []

    def received(self) -> list[Message]:
        chunks = [self._buffer]
        try:
            while chunk := os.read(self.out_fd, 1 << 16):
                chunks.append(chunk)
        except BlockingIOError:
            pass
        data = b"".join(chunks)
        messages: list[Message] = []
        pos, size = 0, len(data)
        while pos + 4 <= size:
            (length,) = _FRAME.unpack_from(data, pos)
            if pos + 4 + length > size:
                break
            msg = marshal.loads(data[pos + 4:pos + 4 + length])
            # An outcome has Outcome's fields; the others two, a tag and a tuple (a job id may well be "skipped").
            messages.append(Outcome._make(msg) if len(msg) == _OUTCOME_FIELDS else _tagged(msg))
            pos += 4 + length
        self._buffer = data[pos:]
        return messages

    def fds(self) -> list[int]:
        return [self.out_fd, self.process.sentinel]

    @property
    def dead(self) -> bool:
        return not self.process.is_alive()

    def kill_if_late(self, now: float) -> None:
        """Kill the process if what it runs, a job or its callback, is past its deadline."""
        deadline = self.deadline()
        if deadline is None or now <= deadline or self.kill_reason is not None:
            return
        phase = self.callback
        if phase is not None:
            self.kill(f"the {phase.name} callback {phase.func} exceeded its timeout of {phase.timeout:g} seconds and "
                      "was killed", "CallbackTimeout")
        else:
            self.kill(timeout_message(self.tasks[0].timeout), "JobTimeoutError")

    def kill(self, reason: str, kind: str = "WorkHorseKilled") -> None:
        self.kill_reason, self.kill_kind = reason, kind
        if self.process.is_alive():
            os.kill(self.process.pid, signal.SIGKILL)  # type: ignore[arg-type]

    def exit_reason(self) -> str:
        self.process.join(5)
        if self.kill_reason:
            return self.kill_reason
        code = self.process.exitcode
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            return f"the job's process was killed by signal {name}"
        return f"the job's process exited with code {code}"

    def restart(self) -> list[Task]:
        """Replace a dead process; returns the tasks it held that never answered, head first."""
        lost = list(self.tasks)
        self.tasks.clear()
        self._close_fds()
        self._start()  # new numbering, cut and lock: the old child may have died holding that
        return lost

    def request_stop(self) -> None:
        self.stop_flag.value = 1

    def stop_job(self, key: tuple[str, int]) -> bool:
        """Tell the process to stop the job ``key`` (id, claim), a task it holds: JobCanceled is raised in the
        job's function if it runs now. False if the slot does not hold it."""
        number = self._number.get(key)
        if number is None or not self.process.is_alive():
            return False
        self._cancel.value = number
        os.kill(self.process.pid, CANCEL_SIGNAL)  # type: ignore[arg-type]
        return True

    def run_stopped(self, task: Task, now: float) -> None:
        """Have the (new) process run the on_stopped callback of ``task``, a canceled job whose process was
        killed, before anything else, if it has one: the slot is in that callback's phase until it ends."""
        call = _stopped_callback(task)
        if call is not None:
            self._pending += _frame(("stopped", tuple(task)))
            if self.pump():
                self.callback_started(CallbackStart(task.id, task.claim, task.attempt, *call), now)

    def fence(self, reason: str) -> None:
        # Called from the lease's fence thread, under the supervisor's fence lock (so the process is not
        # being replaced meanwhile). A process not yet reaped keeps its pid: the kill cannot hit another.
        if self.busy and self.kill_reason is None:
            self.kill(reason, "LeaseLost")

    def close(self) -> None:
        if self.process.is_alive():
            self._pending += _frame(None)
            deadline = time.monotonic() + 5
            while self.pump() and self._pending and time.monotonic() < deadline:
                ready([], [self.task_fd], 0.1)
            self.process.join(max(0.0, deadline - time.monotonic()))
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self._close_fds()


def _stopped_callback(task: Task) -> tuple[str, str, float] | None:
    """(option, dotted path, timeout) of the task's on_stopped; None without one. For a callbacks column that
    cannot be read, the process that runs it says why (a CallbackEnd), soon: a phase of no time."""
    try:
        return stored_callback(task.callbacks or "{}", "stopped")
    except ValueError:
        return ("on_stopped", "", 0.0)


class InProcessSlot(Slot):
    """Runs tasks synchronously in the worker's process. Hard timeouts use SIGALRM, so they apply when
    the worker runs in the main thread (as the CLI does); so does stopping a job when the lease is lost."""

    announces = True

    def __init__(self, dsn: str | None, worker_name: str, allow: Sequence[str], stopping: Any, announce: Any,
                 give_back_after: float, handlers: Sequence[ExceptionHandler] = (),
                 hooks: JobHooks | None = None) -> None:
        super().__init__()
        self._dsn, self._worker_name, self._allow = dsn, worker_name, tuple(allow)
        self._handlers, self._hooks = tuple(handlers), hooks
        self._stopping = stopping  # callable: has a stop been requested?
        self._announce = announce  # callable: logs a task as it starts
        self._give_back_after = give_back_after  # once the batch has run this long, the rest goes back
        self._done: list[Message] = []
        self._clock = Alarm(always=True)  # the job's timeout, the lease's fence and a cancel's grace (stop())
        # While dispatch() runs its tasks, a cancel comes from another thread (pgqueue.worker._control's
        # watch): the tasks of this dispatch, the index of the one running, and the job a cancel stops.
        self.batch: Sequence[Task] = ()
        self.position = 0
        self.cut = False  # a cancel came: the tasks not begun go back to their queue
        self.cancel_key: tuple[str, int] | None = None  # the job to raise JobCanceled in
        self.stop_key: tuple[str, int] | None = None  # the job to stop as a timeout is, past its grace

    def dispatch(self, tasks: Sequence[Task]) -> bool:
        self._clock.reset()  # a claim is made only while the lease is held
        self.tasks.extend(tasks)
        self.cut, self.cancel_key, self.stop_key, self.position, self.batch = False, None, None, 0, tasks
        self.current_start = start = time.monotonic()
        self.head_marked = tasks[0].marked
        try:
            with self._clock.installed():
                self._run_batch(tasks, start)
        finally:
            self.batch = ()
        return True

    def _run_batch(self, tasks: Sequence[Task], start: float) -> None:
        for i, task in enumerate(tasks):
            self.position = i
            if (self._stopping() or self._clock.reason or self.cut
                    or (i and time.monotonic() - start >= self._give_back_after)):
                self._done.append(("skipped", [(t.id, t.claim) for t in tasks[i:]]))
                break
            self._announce(task)
            # Each message is kept as it comes: the outcome is there before the callback runs.
            for msg in execute(task, self._dsn, self._worker_name, self._allow, self._clock,
                               handlers=self._handlers, hooks=self._hooks):
                self._done.append(msg)

    def cancel(self, key: tuple[str, int]) -> bool:
        """From the watch thread: the job ``key`` (id, claim) was canceled. If it is this dispatch's and has not
        ended, nothing after it starts (interrupt() stops it if it runs). Whether it is held."""
        batch, position = self.batch, self.position
        if key not in [(t.id, t.claim) for t in batch[position:]]:
            return False
        self.cancel_key, self.cut = key, True
        return True

    def interrupt(self, key: tuple[str, int]) -> bool:
        """From the watch thread: raise JobCanceled in the canceled job ``key`` if it runs now, through the
        worker's handler of CANCEL_SIGNAL (pgqueue.worker._control), sent to the main thread: a real signal,
        so that it also ends a sleep or a wait on a socket there. Whether the job was running."""
        if running_key() != key:
            return False
        signal.pthread_kill(threading.main_thread().ident, CANCEL_SIGNAL)  # type: ignore[arg-type]
        return True

    def stop_canceled(self, key: tuple[str, int], message: str) -> bool:
        """From the watch thread: the canceled job ``key`` did not stop within its grace: stop it as a timeout
        is stopped (TimeUp, which an ``except Exception`` does not catch), recorded as ``CANCELED: message``.
        Whether it was running."""
        if running_key() != key:
            return False
        self._clock.reason = (CANCELED, message)
        self.stop_key = key
        signal.pthread_kill(threading.main_thread().ident, CANCEL_SIGNAL)  # type: ignore[arg-type]
        return True

    def fence(self, reason: str) -> None:
        # From the fence thread: raise in the job through our SIGALRM handler, as a timeout does.
        self._clock.stop("LeaseLost", reason)

    def received(self) -> list[Message]:
        done, self._done = self._done, []
        return done


