"""Running async jobs: the event-loop process of a worker's :class:`~pgqueue.worker._aslot.AsyncSlot`.

The process reads tasks from its pipe as a ChildSlot's does and starts each at once as an asyncio task
(the supervisor sends no more than ``--async-concurrency`` at a time), and writes each outcome as its own
frame the moment the job ends, in the same format, so the supervisor records them as it records every job's.

Per job, as in :mod:`pgqueue.worker._execute` (whose pieces this reuses): the function is imported by dotted
path under the allow-list, its arguments read from JSON, its result written as JSON; ``get_current_job()``
gives the job (a context variable: each asyncio task has its own); a failure runs the exception handlers and
is retried as the job's Retry says. At its timeout the job's task is cancelled and the run recorded as a
timeout (JobTimeoutError); a job that does not stop when cancelled (it swallows the cancellation, or blocks
the loop and never reaches an await) is stopped by the supervisor, which kills the process
``CALLBACK_GRACE`` seconds after the timeout: the other jobs of the process are then failed as a crash is.
A job's callback (a plain function) runs after its outcome in a thread of the process (one at a time, so
that callbacks share the process's connection as they do in a sync job's process), under its own timeout:
past it the callback is recorded as timed out and left to finish in its thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import marshal
import math
import os
import signal
import time
import traceback
from collections.abc import Sequence
from typing import Any

from .. import _serialize
from ..exceptions import JobCanceled, JobTimeoutError
from ..job import _current_job, _PendingJob
from ._clock import _NO_CLOCK, CANCELED, timeout_message
from ._execute import (
    _call_back,
    _callback_of,
    _exception_classes,
    _handle_exception,
    _job_of,
    _refuse_arguments,
    import_func,
)
from ._hooks import JobHooks
from ._messages import CallbackEnd, ExceptionHandler, Outcome, Task
from ._slots import _FRAME, CANCEL_SIGNAL, _message_frame, _write_all, child_setup


def async_child_main(task_fd: int, out_fd: int, stop: Any, handover: Any, cut: Any, begun: Any, cancel: Any,
                     dsn: str | None,
                     worker_name: str, allow: Sequence[str], handlers: Sequence[ExceptionHandler],
                     hand_over: bool = False, hooks: JobHooks | None = None) -> None:
    """The process of an AsyncSlot (same arguments as a ChildSlot's; ``handover``, ``cut``, ``begun`` and
    ``cancel`` are not used: every task it is sent starts at once, and a cancel comes as a frame, which cancels the
    job's asyncio task). The job hooks run in each job's asyncio task, around its coroutine."""
    child_setup()
    signal.signal(CANCEL_SIGNAL, signal.SIG_IGN)  # a cancel comes by the pipe here (AsyncSlot.stop_job)
    asyncio.run(_Runner(task_fd, out_fd, dsn, worker_name, allow, handlers, hooks).serve())


class _Runner:
    def __init__(self, task_fd: int, out_fd: int, dsn: str | None, worker_name: str, allow: Sequence[str],
                 handlers: Sequence[ExceptionHandler], hooks: JobHooks | None = None) -> None:
        self.task_fd, self.out_fd = task_fd, out_fd
        self.dsn, self.worker_name, self.allow, self.handlers = dsn, worker_name, tuple(allow), tuple(handlers)
        self.hooks = hooks
        self.frames: asyncio.Queue[Any] = asyncio.Queue()
        self.buffer = b""
        self.running: set[asyncio.Task[None]] = set()
        self.by_id: dict[str, asyncio.Task[None]] = {}  # the running jobs, by id: a cancel names one
        self.canceled: set[str] = set()  # jobs a cancel stopped (docs/job-control.md)
        # Callbacks: one at a time, in one thread (they get the process's connection, as in a sync job's process).
        self.callbacks = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pgqueue-callback")

    def _readable(self) -> None:
        try:
            data = os.read(self.task_fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:  # the supervisor is gone
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.task_fd)
            self.frames.put_nowait(None)
            return
        buffer = self.buffer + data
        pos = 0
        while pos + 4 <= len(buffer):
            (length,) = _FRAME.unpack_from(buffer, pos)
            if pos + 4 + length > len(buffer):
                break
            self.frames.put_nowait(marshal.loads(buffer[pos + 4:pos + 4 + length]))
            pos += 4 + length
        self.buffer = buffer[pos:]

    async def serve(self) -> None:
        """Start each task sent as it comes, until the supervisor sends None (or is gone); then let the jobs
        that run end."""
        os.set_blocking(self.task_fd, False)
        asyncio.get_running_loop().add_reader(self.task_fd, self._readable)
        while (frame := await self.frames.get()) is not None:
            if frame[0] == "cancel":  # ("cancel", job id): the job was canceled: stop its asyncio task
                self._cancel(frame[1])
                continue
            for fields in frame[1]:
                task = Task._make(fields)
                job = asyncio.create_task(self.run(task))
                self.running.add(job)
                self.by_id[task.id] = job
                job.add_done_callback(self.running.discard)
                job.add_done_callback(functools.partial(self._forget, task.id))
        if self.running:
            await asyncio.wait(self.running)
        self.callbacks.shutdown(wait=False)

    def _forget(self, job_id: str, job: asyncio.Task[None]) -> None:
        self.by_id.pop(job_id, None)

    def _cancel(self, job_id: str) -> None:
        job = self.by_id.get(job_id)
        if job is not None:
            self.canceled.add(job_id)
            job.cancel()

    def send(self, message: Any) -> None:
        _write_all(self.out_fd, _message_frame(message))

    async def run(self, task: Task) -> None:
        """Run one task, send its outcome, then run its callback and send how that ended."""
        started = time.perf_counter()
        pending = _PendingJob(lambda: _job_of(task, self.dsn, self.worker_name, started))
        _current_job.set(pending)  # this asyncio task's own context
        # The job hooks (pgqueue.hooks) in this task's context too: what before_job sets, the job sees.
        job = None if self.hooks is None else self.hooks.begin(task, self.dsn, self.worker_name)
        outcome, error, value = await self.attempt(task, pending, started)
        if self.hooks is not None and job is not None:
            self.hooks.end(job, outcome, error, value)
        call = _callback_of(task, outcome, _NO_CLOCK)
        self.send(outcome)
        if isinstance(call, CallbackEnd):
            self.send(call)
        elif call is not None:
            self.send(await self.call_back(task, outcome, error, value, call, pending))

    async def attempt(self, task: Task, pending: _PendingJob, started: float) -> tuple[Outcome, BaseException | None,
                                                                                       Any]:
        """The job's Outcome, and the exception it raised or its value (see _execute._attempt)."""
        timed_out = False
        this = asyncio.current_task()
        assert this is not None

        def time_up() -> None:
            nonlocal timed_out
            timed_out = True
            this.cancel()

        timer = asyncio.get_running_loop().call_later(task.timeout, time_up) if math.isfinite(task.timeout) else None
        try:
            value = await self._call(task)
            result_json = _serialize.dumps(value)
        except BaseException as exc:  # a job that raises SystemExit or KeyboardInterrupt has failed too
            if not timed_out and isinstance(exc, asyncio.CancelledError):
                if task.id in self.canceled:  # canceled: not a failure, and its outcome is not recorded
                    self.canceled.discard(task.id)
                    return (Outcome(task.id, task.attempt, task.claim, False, None, f"{CANCELED}: canceled",
                                    CANCELED, "canceled", time.perf_counter() - started, False, False),
                            JobCanceled(f"job {task.id} was canceled").with_traceback(exc.__traceback__), None)
                raise  # the process is being shut down
            if timed_out:
                return self._timed_out(task, started, exc)
            again = task.retry_on is None or isinstance(exc, _exception_classes(task.retry_on, self.allow))
            failed = Outcome(task.id, task.attempt, task.claim, False, None,
                             traceback.format_exc().replace("\0", "\\0"), type(exc).__name__,
                             str(exc).replace("\0", "\\0"), time.perf_counter() - started, False, again)
            if self.handlers:
                _handle_exception(self.handlers, pending, exc)
            return failed, exc, None
        finally:
            if timer is not None:
                timer.cancel()
        if timed_out:  # it swallowed the cancellation and returned: its time was up all the same
            return self._timed_out(task, started, None)
        return Outcome(task.id, task.attempt, task.claim, True, result_json, None, None, None,
                       time.perf_counter() - started), None, value

    async def _call(self, task: Task) -> Any:
        func = import_func(task.func_name, self.allow)
        args = _serialize.loads(task.args_json)
        kwargs = {} if task.kwargs_json == "{}" else _serialize.loads(task.kwargs_json)
        if type(args) is not list or type(kwargs) is not dict:
            _refuse_arguments(args, kwargs)
        if getattr(func, "__pgqueue_atomic__", False):
            raise TypeError(f"{task.func_name} is an @pgqueue.atomic job: atomic jobs must be plain (def) functions")
        value = func(*args, **kwargs)
        if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
            value = await value
        return value

    @staticmethod
    def _timed_out(task: Task, started: float, exc: BaseException | None) -> tuple[Outcome, BaseException, None]:
        message = timeout_message(task.timeout)
        error = JobTimeoutError(message)
        if exc is not None:
            error = error.with_traceback(exc.__traceback__)
        return Outcome(task.id, task.attempt, task.claim, False, None, f"JobTimeoutError: {message}", "JobTimeoutError",
                       message, time.perf_counter() - started, False, True), error, None

    async def call_back(self, task: Task, outcome: Outcome, error: BaseException | None, value: Any,
                        call: tuple[str, str, float], pending: _PendingJob) -> CallbackEnd:
        """Run the callback in the callbacks' thread, with this job's context; past its timeout, record it as
        timed out (it goes on in its thread: a thread cannot be stopped)."""
        name, func_name, timeout = call
        context = contextvars.copy_context()
        future = self.callbacks.submit(context.run, _call_back, task, outcome, error, value, call, pending, self.dsn,
                                       self.allow, _NO_CLOCK, None)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), None if math.isinf(timeout) else timeout)
        except asyncio.TimeoutError:
            return CallbackEnd(task.id, task.claim, task.attempt, name, func_name, "CallbackTimeout",
                               f"the {name} callback {func_name} exceeded its timeout of {timeout:g} seconds; it "
                               "was left to finish in its thread (an async job's callback cannot be stopped)",
                               None)
