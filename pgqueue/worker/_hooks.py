"""The worker's side of :mod:`pgqueue.hooks`: loading hooks, and calling them where they run.

:class:`JobHooks` runs in the job's process, around the function (_execute's ``run`` and ``execute``);
:class:`WorkerHooks` in the supervisor, which hands it each outcome it collects, each failed attempt the
database recorded, and each rescue its maintenance committed. A worker whose hooks define none of a side's
methods has ``None`` for that side, so that a job costs one attribute test more, no call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .. import _serialize
from .._store import FailRow, RescuedRow
from ..exceptions import PgQueueError
from ..hooks import Hooks, JobOutcome, RescuedJob
from ..job import Job, JobStatus
from ._clock import AbortJob
from ._execute import import_func
from ._messages import Outcome, Task

if TYPE_CHECKING:
    from ._maintenance import Rescuer
    from ._outcomes import Outcomes
    from ._supervisor import Worker

log = logging.getLogger("pgqueue.worker")

JOB_METHODS = ("before_job", "after_job", "on_failure")
WORKER_METHODS = ("on_worker_start", "on_worker_stop", "on_outcome", "on_rescue")


def _is_hooks(hook: Any) -> bool:
    return any(callable(getattr(hook, name, None)) for name in (*JOB_METHODS, *WORKER_METHODS))


def load_hooks(hooks: Sequence[Any] | Any, metrics_port: int | None = None) -> list[Any]:
    """The worker's hooks: objects, classes (made without arguments), functions returning an object (called
    without arguments), or dotted paths to any of these (imported here). With ``metrics_port``,
    pgqueue.metrics' WorkerMetrics serving on it comes last. ValueError for a path that does not import;
    TypeError for what has none of the hooks' methods."""
    if hooks is None:
        hooks = ()
    found = []
    for hook in [hooks] if isinstance(hooks, str) or not isinstance(hooks, Sequence) else hooks:
        if isinstance(hook, str):
            try:
                hook = import_func(hook)
            except ImportError as exc:
                raise ValueError(f"hooks {hook!r} cannot be imported: {exc}") from None
        if isinstance(hook, type) or (callable(hook) and not _is_hooks(hook)):
            hook = hook()
        if not _is_hooks(hook):
            raise TypeError(f"{hook!r} is not worker hooks: it has none of the methods of pgqueue.Hooks "
                            f"({', '.join((*JOB_METHODS, *WORKER_METHODS))})")
        found.append(hook)
    if metrics_port is not None:
        from ..metrics import WorkerMetrics  # says what to install without prometheus-client

        found.append(WorkerMetrics(port=metrics_port))
    return found


def _methods(hooks: Sequence[Any], name: str) -> list[Callable[..., Any]]:
    """The hooks' methods ``name``, leaving out those that Hooks' do-nothing method stands for."""
    base = getattr(Hooks, name)
    methods = []
    for hook in hooks:
        method = getattr(hook, name, None)
        if method is not None and getattr(method, "__func__", None) is not base:
            methods.append(method)
    return methods


def _name(method: Callable[..., Any]) -> str:
    owner = getattr(method, "__self__", None)
    return f"{type(owner).__qualname__}.{method.__name__}" if owner is not None else getattr(
        method, "__qualname__", repr(method))


def _call(method: Callable[..., Any], kind: str, name: str, *args: Any) -> None:
    """Call one hook; log what it raises (``Job ID: hook NAME raised ...``, with its traceback), and go on."""
    try:
        method(*args)
    except AbortJob:  # a second stop signal, or the lease's fence, in this very thread: not the hook's
        raise
    except BaseException as error:  # noqa: BLE001 - a hook must not lose the job's outcome
        log.error("%s %s: hook %s raised %s: %s (ignored)", kind, name, _name(method), type(error).__name__, error,
                  exc_info=True)


def job_of_task(task: Task, dsn: str | None, worker_name: str) -> Job:
    """The Job the job hooks get: the claimed row as the task carries it, no query."""
    started = datetime.now(timezone.utc)
    return Job._from_dict({
        "id": task.id, "_dsn": dsn, "queue": task.queue, "func_name": task.func_name, "timeout": task.timeout,
        "args": _serialize.loads(task.args_json), "kwargs": _serialize.loads(task.kwargs_json),
        "meta": _serialize.loads(task.meta_json), "status": JobStatus.RUNNING, "attempts": task.attempt,
        "started_at": started, "worker_name": worker_name, "_run": (task.attempt, started, worker_name),
        "_traceparent": task.traceparent})


class JobHooks:
    """before_job, after_job and on_failure of a worker's hooks, called in the job's process."""

    def __init__(self, hooks: Sequence[Any]) -> None:
        self.before = _methods(hooks, "before_job")
        self.after = _methods(hooks, "after_job")[::-1]  # nested: the first hook's after runs last
        self.failure = _methods(hooks, "on_failure")[::-1]

    @classmethod
    def of(cls, hooks: Sequence[Any]) -> JobHooks | None:
        """The job hooks of ``hooks``; None if none of them has any."""
        found = cls(hooks)
        return found if found.before or found.after or found.failure else None

    def begin(self, task: Task, dsn: str | None, worker_name: str) -> Job:
        job = job_of_task(task, dsn, worker_name)
        for method in self.before:
            _call(method, "Job", task.id, job)
        return job

    def end(self, job: Job, outcome: Outcome, error: BaseException | None, value: Any) -> None:
        """after_job with the function's value, or on_failure with its exception (for a run stopped without
        one, a PgQueueError saying what stopped it: the lease's fence)."""
        if outcome.ok:
            for method in self.after:
                _call(method, "Job", job.id, job, value)
            return
        if error is None:
            error = PgQueueError(f"{outcome.error_type}: {outcome.error_message}")
        for method in self.failure:
            _call(method, "Job", job.id, job, type(error), error, error.__traceback__)


class WorkerHooks:
    """on_worker_start, on_worker_stop, on_outcome and on_rescue of a worker's hooks, called in its
    supervisor."""

    def __init__(self, worker: Worker, hooks: Sequence[Any]) -> None:
        self.worker = worker
        self.start = _methods(hooks, "on_worker_start")
        self.stop = _methods(hooks, "on_worker_stop")
        self.outcome = _methods(hooks, "on_outcome")
        self.rescue = _methods(hooks, "on_rescue")
        # Failed attempts received and not yet recorded: their task, for the JobOutcome once they are.
        self._failed: dict[tuple[str, int], Task | None] = {}

    @classmethod
    def of(cls, worker: Worker, hooks: Sequence[Any]) -> WorkerHooks | None:
        found = cls(worker, hooks)
        return found if found.start or found.stop or found.outcome or found.rescue else None

    def started(self) -> None:
        for method in self.start:  # raises: the worker does not start
            method(self.worker)

    def stopped(self) -> None:
        for method in self.stop:
            _call(method, "Worker", self.worker.name, self.worker)

    def received(self, tasks: Sequence[Task], outcome: Outcome) -> None:
        """The supervisor has ``outcome``, the end of the run of one of ``tasks`` (the slot's: its head, unless
        the slot runs tasks side by side)."""
        if not self.outcome:
            return
        key = (outcome.id, outcome.claim)
        task = tasks[0] if tasks and (tasks[0].id, tasks[0].claim) == key else next(
            (t for t in tasks if (t.id, t.claim) == key), None)
        if not outcome.ok:  # told once recorded, with what the database made of it
            self._failed[(outcome.id, outcome.claim)] = task
            return
        self._tell(JobOutcome(outcome.id, task.queue if task else "", task.func_name if task else "",
                              outcome.attempt, "finished", outcome.duration))

    def recorded(self, failed: Sequence[Outcome], rows: dict[str, FailRow]) -> None:
        """fail_jobs recorded ``failed`` (those with a row; the others were fenced off)."""
        if not self.outcome:
            return
        for o in failed:
            task = self._failed.pop((o.id, o.claim), None)
            row = rows.get(o.id)
            status = "superseded" if row is None else "failed" if row.status == "failed" else "retried"
            self._tell(JobOutcome(o.id, task.queue if task else "", task.func_name if task else "", o.attempt,
                                  status, o.duration, o.error_type, o.error_message))

    def _tell(self, outcome: JobOutcome) -> None:
        for method in self.outcome:
            _call(method, "Job", outcome.job_id, self.worker, outcome)

    def rescued(self, rows: Sequence[RescuedRow]) -> None:
        if self.rescue and rows:
            jobs = [RescuedJob(r.id, r.queue, r.status) for r in rows]
            for method in self.rescue:
                _call(method, "Worker", self.worker.name, self.worker, jobs)


def attach_hooks(worker: Worker, outcomes: Outcomes, rescuer: Rescuer) -> WorkerHooks | None:
    """The supervisor side of ``worker.hooks`` for one run of work(), told what ``outcomes`` records and what
    ``rescuer`` rescues; None if none of them has a method that runs there."""
    hooks = WorkerHooks.of(worker, worker.hooks)
    if hooks is not None:
        outcomes.observer = hooks.recorded
        rescuer.observer = hooks.rescued
    return hooks


def hooks_started(hooks: WorkerHooks | None) -> None:
    if hooks is not None:
        hooks.started()


def hooks_stopped(hooks: WorkerHooks | None) -> None:
    if hooks is not None:
        hooks.stopped()
