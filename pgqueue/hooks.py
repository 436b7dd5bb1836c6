"""Worker hooks: code of yours that a worker calls around each job and at its start and stop, for Sentry,
logging context, timing, metrics or tracing (docs/observability.md).

Subclass :class:`Hooks` and override what you need (every method does nothing by default), or pass any
object that has some of these methods. Register hooks with ``Worker(hooks=[...])`` or ``pgqueue worker
--hooks dotted.path`` (repeatable). :mod:`pgqueue.metrics` and :mod:`pgqueue.tracing` are built on them.

Where each method runs:

- ``before_job``, ``after_job``, ``on_failure``: in the job's own process (the worker's child process, or
  the worker's process for SimpleWorker), in the thread and context that call the job function, right
  before and after it. A context variable or a logging context set in ``before_job`` is what the job sees.
- ``on_worker_start``, ``on_worker_stop``, ``on_outcome``, ``on_rescue``: in the worker's supervisor
  process, which sees every outcome, those of killed job processes included.

Hooks of a worker are called in the order given for ``before_job`` and the supervisor's events, and in the
reverse order for ``after_job`` and ``on_failure``, as nested ``with`` blocks would be. A hook that raises
is logged and the others are called all the same; the job's outcome is recorded as if it had not raised.
Only ``on_worker_start`` is different: an error there stops the worker before it claims anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from .job import Job
    from .worker import Worker

__all__ = ["Hooks", "JobOutcome", "RescuedJob"]


class JobOutcome(NamedTuple):
    """One run's end, as the worker's supervisor records it (:meth:`Hooks.on_outcome`).

    ``status``: ``finished`` (the function returned), ``failed`` (no attempt left, or an exception that
    its ``Retry(on=...)`` does not name), ``retried`` (failed, and another attempt is scheduled), or
    ``superseded`` (failed after the job stopped being this worker's: it was canceled, or rescued when the
    worker's lease ran out; nothing was recorded). ``error_type`` and ``error_message`` say why a run failed:
    the exception's class name, or ``JobTimeoutError``, ``WorkHorseKilled`` (the job's process died),
    ``LeaseLost``. ``duration`` is the run's time in seconds, as the worker measured it.
    """

    job_id: str
    queue: str
    func_name: str
    attempt: int
    status: str
    duration: float
    error_type: str | None = None
    error_message: str | None = None


class RescuedJob(NamedTuple):
    """A job of a lost worker that this worker's maintenance put back on its queue (``status`` queued) or
    failed (no attempt left): :meth:`Hooks.on_rescue`."""

    job_id: str
    queue: str
    status: str


class Hooks:
    """The hooks a worker calls. Every method does nothing here: override those you need."""

    # -- in the job's process ------------------------------------------------------------------------
    def before_job(self, job: Job) -> None:
        """Called right before the job function, in its process and context. ``job`` is built from the
        claimed row without a query: ``id``, ``queue``, ``func_name``, ``args``, ``kwargs``, ``meta``,
        ``attempts`` (this run's number), ``worker_name``, ``started_at``; the same object is passed to
        ``after_job`` or ``on_failure``, so a hook may keep state on it (``job.meta`` is saved only by
        ``job.save_meta()``)."""

    def after_job(self, job: Job, result: Any) -> None:
        """Called once the job function has returned ``result``, before the worker records it and before
        the job's ``on_success`` callback."""

    def on_failure(self, job: Job, exc_type: type[BaseException], exc: BaseException,
                   tb: TracebackType | None) -> None:
        """Called when the job function raised (after RQ's exception handlers), or was stopped in its own
        process at its timeout (``JobTimeoutError``: SimpleWorker, or a job with callbacks). A job whose
        process is killed calls nothing there: :meth:`on_outcome` sees it in the supervisor."""

    # -- in the worker's supervisor ------------------------------------------------------------------
    def on_worker_start(self, worker: Worker) -> None:
        """Called once the worker has registered (``worker.worker_id`` is set), before its first claim. Its
        job processes were forked already: set up what they need (``sentry_sdk.init``) when your hooks
        object is made, or at import. An exception here stops the worker, which has claimed nothing."""

    def on_worker_stop(self, worker: Worker) -> None:
        """Called when ``work()`` returns or raises, once the worker's last outcomes are recorded (if they
        could be)."""

    def on_outcome(self, worker: Worker, outcome: JobOutcome) -> None:
        """Called for every run this worker ran to an end, killed or not: a run that finished once the
        supervisor has its outcome, a failed one once the database has recorded it (``outcome.status``
        then says whether it will be retried)."""

    def on_rescue(self, worker: Worker, jobs: Sequence[RescuedJob]) -> None:
        """Called when this worker's maintenance has rescued ``jobs`` of lost workers (committed)."""
