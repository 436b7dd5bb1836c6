"""Where jobs run. A worker has ``concurrency`` slots; each runs its tasks one after another, in order.

``ChildSlot`` runs them in a long-lived child process, so a job that hangs, crashes or leaks cannot take
the worker down: the supervisor kills and replaces the process. ``InProcessSlot`` runs them in the
worker's own process (SimpleWorker), for tests and debuggers.
"""

from __future__ import annotations

import marshal
import multiprocessing
import multiprocessing.connection
import os
import signal
import struct
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from ._execute import AbortJob, Outcome, Task, run

Message = Outcome | tuple[str, list[str]]  # an outcome, or ("skipped", ids) when told to stop


class Slot:
    """Common state: the tasks handed over and not yet answered for, in the order they run."""

    tasks: deque[Task]
    current_start: float  # monotonic time the head task started

    def __init__(self) -> None:
        self.tasks = deque()
        self.current_start = 0.0
        self.head_marked = False  # whether the head task's run was recorded as started

    @property
    def busy(self) -> bool:
        return bool(self.tasks)

    def deadline(self) -> float | None:
        return self.current_start + self.tasks[0].timeout if self.tasks else None

    def dispatch(self, tasks: Sequence[Task]) -> bool:
        raise NotImplementedError

    def received(self) -> list[Message]:
        raise NotImplementedError

    def took(self, task_id: str) -> None:
        """The head task answered: the next one starts now."""
        if self.tasks and self.tasks[0].id == task_id:
            self.tasks.popleft()
        self.current_start = time.monotonic()
        self.head_marked = bool(self.tasks) and self.tasks[0].marked

    def fds(self) -> list[int]:
        return []

    def request_stop(self) -> None:
        """Run nothing new after the current task."""

    def close(self) -> None:
        pass


# Outcomes travel child -> supervisor as frames on a raw pipe: a 4-byte length, then marshal of a tuple
# of str/int/bool/None. The supervisor drains every frame that arrived with one read; this costs a
# fraction of a pickled message per job through multiprocessing.Connection.
_FRAME = struct.Struct("!I")


def _send_frame(fd: int, message: tuple[Any, ...]) -> None:
    data = marshal.dumps(message)
    view = memoryview(_FRAME.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _child_main(conn: multiprocessing.connection.Connection, out_fd: int, stop: Any, dsn: str | None,
                worker_name: str, allow: Sequence[str]) -> None:
    # Ctrl-C reaches the whole process group; the supervisor decides what happens to running jobs.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        try:
            tasks = conn.recv()
        except (EOFError, OSError):  # the supervisor is gone
            return
        if tasks is None:
            return
        for i, task in enumerate(tasks):
            if stop.is_set():
                _send_frame(out_fd, ("skipped", [t.id for t in tasks[i:]]))
                break
            _send_frame(out_fd, tuple(run(task, dsn, worker_name, allow)))


class ChildSlot(Slot):
    def __init__(self, index: int, dsn: str | None, worker_name: str, allow: Sequence[str]) -> None:
        super().__init__()
        self._ctx = multiprocessing.get_context("fork")
        self._args = (dsn, worker_name, tuple(allow))
        self._name = f"pgqueue-child-{index}"
        self.stop_event = self._ctx.Event()
        self.kill_reason: str | None = None
        self._start()

    def _start(self) -> None:
        parent, child = self._ctx.Pipe(duplex=False)[::-1]  # tasks: supervisor -> child
        out_r, out_w = os.pipe()  # outcomes: child -> supervisor
        self.process = self._ctx.Process(target=_child_main, args=(child, out_w, self.stop_event, *self._args),
                                         name=self._name, daemon=False)
        self.process.start()
        child.close()
        os.close(out_w)
        os.set_blocking(out_r, False)
        self.conn, self.out_fd, self._buffer = parent, out_r, b""
        self.kill_reason = None

    def dispatch(self, tasks: Sequence[Task]) -> bool:
        """Hand tasks to the child; False if it is gone (the caller releases them, _replace restarts it)."""
        try:
            self.conn.send(list(tasks))
        except OSError:  # BrokenPipeError: the child died since we last looked
            return False
        if not self.tasks:
            self.current_start = time.monotonic()
            self.head_marked = tasks[0].marked
        self.tasks.extend(tasks)
        return True

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
            # An outcome has Outcome's fields; ("skipped", ids) has two (a job id may well be "skipped").
            messages.append(Outcome(*msg) if len(msg) == len(Outcome._fields) else ("skipped", msg[1]))
            pos += 4 + length
        self._buffer = data[pos:]
        return messages

    def fds(self) -> list[int]:
        return [self.out_fd, self.process.sentinel]

    @property
    def dead(self) -> bool:
        return not self.process.is_alive()

    def kill(self, reason: str) -> None:
        self.kill_reason = reason
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
        self.conn.close()
        os.close(self.out_fd)
        self._start()
        return lost

    def request_stop(self) -> None:
        self.stop_event.set()

    def close(self) -> None:
        if self.process.is_alive():
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self.conn.close()
        os.close(self.out_fd)


class _Timeout(AbortJob):
    pass


class InProcessSlot(Slot):
    """Runs tasks synchronously in the worker's process. Hard timeouts use SIGALRM, so they apply when
    the worker runs in the main thread (as the CLI does)."""

    def __init__(self, dsn: str | None, worker_name: str, allow: Sequence[str], stopping: Any) -> None:
        super().__init__()
        self._dsn, self._worker_name, self._allow = dsn, worker_name, tuple(allow)
        self._stopping = stopping  # callable: has a stop been requested?
        self._done: list[Message] = []

    def dispatch(self, tasks: Sequence[Task]) -> bool:
        self.tasks.extend(tasks)
        self.current_start = time.monotonic()
        self.head_marked = tasks[0].marked
        for i, task in enumerate(tasks):
            if self._stopping():
                self._done.append(("skipped", [t.id for t in tasks[i:]]))
                break
            self._done.append(self._run_one(task))
        return True

    def _run_one(self, task: Task) -> Message:
        alarm = threading.current_thread() is threading.main_thread()
        if alarm:
            def on_alarm(signum: int, frame: Any) -> None:
                raise _Timeout()

            previous = signal.signal(signal.SIGALRM, on_alarm)
            signal.setitimer(signal.ITIMER_REAL, task.timeout)
        try:
            return run(task, self._dsn, self._worker_name, self._allow)
        except _Timeout:
            return Outcome(task.id, task.attempt, task.claim, False, None,
                           f"JobTimeoutError: {timeout_message(task.timeout)}", "JobTimeoutError",
                           timeout_message(task.timeout), task.timeout)
        finally:
            if alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)

    def received(self) -> list[Message]:
        done, self._done = self._done, []
        return done


def timeout_message(seconds: float) -> str:
    return f"the job exceeded its timeout of {seconds:g} seconds and was stopped"
