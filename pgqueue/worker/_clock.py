"""What stops a job or a callback in the process that runs it: its timeout (an :class:`Alarm`, SIGALRM in the
main thread; or, in a child process, nothing here: the supervisor kills it), the lease's fence, and a
cancel (:func:`cancel_running`, from a signal handler). Used by _execute, which runs the job."""

from __future__ import annotations

import _thread
import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from ..exceptions import JobCanceled
from ._messages import Task


class AbortJob(BaseException):
    """Raised inside an in-process job to stop it (a hard timeout, or a second stop signal)."""


class TimeUp(AbortJob):
    """Raised inside a job or callback by :class:`Alarm`: its time is up, or the lease's fence stopped it."""


def timeout_message(seconds: float) -> str:
    return f"the job exceeded its timeout of {seconds:g} seconds and was stopped"


# -- stopping a job that was canceled --------------------------------------------------------------
CANCELED = "JobCanceled"  # the error type a canceled job's run is stopped with (its outcome is not recorded)


class _Running:
    """The job whose function runs now in this process's main thread (None between jobs), and the last one a
    cancel interrupted (its Task: compared by identity, so nothing is reset per job): set by _attempt and
    cancel_running() (from a signal handler), read by _callback_of (a canceled job's callback is on_stopped)."""

    task: Task | None = None
    canceled: Task | None = None


_running = _Running()


def cancel_running(key: tuple[str, int] | None = None) -> None:
    """Raise :class:`JobCanceled` in the job function running now in this thread (the main thread: called from
    a signal handler), if one runs (and it is the job ``key``, (id, claim), when given); else nothing: the
    job ended meanwhile, or has not begun (the worker then takes it back, or kills it at its grace's end)."""
    task = _running.task
    if task is None or (key is not None and (task.id, task.claim) != key):
        return
    _running.canceled = task
    raise JobCanceled(f"job {task.id} was canceled")


def running_key() -> tuple[str, int] | None:
    """(id, claim) of the job whose function runs now in the main thread, or None."""
    task = _running.task
    return None if task is None else (task.id, task.claim)


# -- stopping what outlives its time ----------------------------------------------------------------
_ALARM_LIMIT = 9.2e9  # seconds: setitimer's range (2**63 ns) ends a little past this
_UNLIMITED = contextlib.nullcontext()


def _time_up(signum: int, frame: Any) -> None:
    raise TimeUp()


class Clock:
    """How the job's process stops a job or a callback that outlives its time. This one does not: in a
    child process the supervisor kills the process instead (at the deadline, plus a grace when the job has
    callbacks), and elsewhere nothing can."""

    always = False  # whether every job runs under limit(), or only jobs with callbacks
    reason: tuple[str, str] | None = None  # (error type, message) when stop() interrupted what ran

    def limit(self, seconds: float) -> AbstractContextManager[None]:
        return _UNLIMITED


_NO_CLOCK = Clock()


class Alarm(Clock):
    """SIGALRM, in the main thread: raises :class:`TimeUp` inside the job or callback once ``seconds`` have
    passed, or at once when :meth:`stop` is called (from the lease's fence thread). In another thread it
    does nothing. ``always``: every job runs under it (SimpleWorker, Queue(is_async=False)); else only jobs
    with callbacks (a child process: then the job's own timeout raises inside it, so its on_failure runs)."""

    def __init__(self, always: bool) -> None:
        self.always = always
        self.reason = None
        self._armed = False
        self._installed = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Keep the SIGALRM handler installed across the limit() calls inside (a SimpleWorker's batch of
        jobs), instead of installing and restoring it around each: two signal() calls per job fewer."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGALRM, _time_up)
        self._installed = True
        try:
            yield
        finally:
            self._installed = False
            signal.signal(signal.SIGALRM, previous)

    @contextlib.contextmanager
    def limit(self, seconds: float) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        outer = signal.getitimer(signal.ITIMER_REAL)[0]  # a job running a job (Queue(is_async=False))
        began = time.monotonic()
        install = not self._installed
        previous = signal.signal(signal.SIGALRM, _time_up) if install else None
        self._armed = True
        if seconds < _ALARM_LIMIT:  # no timer for no timeout (infinity), nor past what setitimer takes
            signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            self._armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            if install:
                signal.signal(signal.SIGALRM, previous)
            if outer:
                signal.setitimer(signal.ITIMER_REAL, max(1e-3, outer - (time.monotonic() - began)))

    def stop(self, kind: str, message: str) -> None:
        """Stop what runs now, recorded as ``kind: message``; and what runs next, until reset()."""
        self.reason = (kind, message)
        if self._armed:
            # A simulated signal runs the Python handler only, and only if one is installed (never the
            # default action, which would end the process).
            _thread.interrupt_main(signal.SIGALRM)

    def reset(self) -> None:
        self.reason = None
