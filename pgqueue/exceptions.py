"""pgqueue's exceptions. Every one derives from :class:`PgQueueError`."""

from __future__ import annotations


class PgQueueError(Exception):
    """Base class of every error pgqueue raises on purpose."""


class ConfigurationError(PgQueueError):
    """pgqueue cannot work as configured: a bad DSN, a missing optional package, a bad option."""


class DatabaseUnavailable(PgQueueError):
    """The database could not be reached, or the connection broke mid-operation."""


class SchemaMissing(PgQueueError):
    """The database is reachable but pgqueue's tables are not there yet."""

    def __init__(self, message: str = "") -> None:
        super().__init__(
            (message + ": " if message else "")
            + "pgqueue's schema is not installed in this database; run `pgqueue migrate` "
            "(or pgqueue.migrate(dsn)), or apply `pgqueue schema --sql` with your own tools"
        )


class SchemaOutdated(SchemaMissing):
    """pgqueue's schema is there, but at an older revision than this version of pgqueue needs."""

    def __init__(self, message: str = "") -> None:
        PgQueueError.__init__(
            self, (message + ": " if message else "")
            + "pgqueue's schema in this database is older than this version of pgqueue needs; run "
            "`pgqueue migrate` (migrations only add, so workers of the previous version keep working)")


class NoSuchJobError(PgQueueError):
    """No job has the given id."""


class InvalidJobOperation(PgQueueError):
    """What was asked cannot be done to this job as it is (RQ's name): requeue a job that is not in the
    registry asked, remove a job from a registry without deleting it, and the like. The message says why
    and what to do instead."""


class JobFailed(PgQueueError):
    """Raised by ``job.wait()`` when the job failed or was canceled; carries the remote traceback text."""

    def __init__(self, job_id: str, status: str, exc_info: str | None) -> None:
        self.job_id = job_id
        self.status = status
        self.exc_info = exc_info
        detail = f"\n{exc_info}" if exc_info else ""
        super().__init__(f"job {job_id} {status}{detail}")


class JobTimeoutError(PgQueueError):
    """A job ran past its ``job_timeout`` and was stopped: what an ``on_failure`` callback gets as ``type`` and
    ``value`` then (RQ's JobTimeoutException), and the ``type`` of that attempt in ``job.errors``."""


class JobCanceled(PgQueueError):
    """Raised inside a running job that was canceled (``job.cancel()``, ``pgqueue cancel``), where the job's
    code is, in the main thread of its process: the job should stop. Its ``finally`` blocks and ``except
    JobCanceled`` clauses run; a job still running ``cancel_grace`` seconds later (a worker's option, 3 s by
    default) is killed. The job is ``canceled`` whatever it does then: its outcome is not recorded
    (docs/job-control.md)."""


class Snooze(PgQueueError):
    """Raised by a job to run again later: ``raise pgqueue.Snooze(60)``. The job goes back to ``scheduled``,
    ``seconds`` from now by the database's clock (a duration: seconds, a timedelta or a string such as
    ``"5m"``), without using an attempt or recording a failure; ``job.snoozes`` counts how often it did
    (docs/job-control.md)."""

    def __init__(self, seconds: object = 0) -> None:
        from ._options import delay

        self.seconds = delay("Snooze", seconds)  # TypeError or ValueError, naming the value
        if self.seconds < 0:
            raise ValueError(f"Snooze({seconds!r}) is in the past: pass 0 seconds or more (0: as soon as a "
                             "worker is free)")
        super().__init__(f"snoozed for {self.seconds:g} s")


class UniqueKeyHeld(PgQueueError):
    """A failed job cannot go back to its queue: another job holds its ``unique_key`` (one live job per key).
    ``holder`` is that job's id, or None when it was enqueued while the requeue ran. ``status`` is the one
    the job keeps (``failed``, or another when a registry requeued it)."""

    def __init__(self, job_id: str, unique_key: str | None, holder: str | None, status: str = "failed") -> None:
        self.job_id = job_id
        self.unique_key = unique_key
        self.holder = holder
        key = "" if unique_key is None else f" {unique_key!r}"
        by = f"job {holder}" if holder else "a job enqueued meanwhile"
        super().__init__(f"job {job_id} stays {status}: its unique_key{key} is held by {by}")


class MigrationError(PgQueueError):
    """``pgqueue migrate`` could not bring the schema up to date: a missing privilege, or a statement the
    database refused. The message is one line, with what to do about it."""


class SchemaTooNew(MigrationError):
    """The database's pgqueue schema is at a revision this version of pgqueue does not know: a newer
    pgqueue migrated it. ``revision`` is that revision; upgrade pgqueue."""

    def __init__(self, message: str, revision: str) -> None:
        super().__init__(message)
        self.revision = revision
