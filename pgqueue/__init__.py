"""pgqueue: job queues in PostgreSQL.

    from pgqueue import Queue
    job = Queue("default").enqueue(count_words, "some text")

Jobs are rows of ``pgqueue.jobs``; ``pgqueue worker`` runs them. See the README and docs/.
"""

from ._callbacks import Callback
from ._config import configure
from ._migrate import migrate, schema_sql
from ._progress import Progress
from .aqueue import AsyncQueue
from .connections import Connection
from .decorators import job
from .exceptions import (
    ConfigurationError,
    DatabaseUnavailable,
    InvalidJobOperation,
    JobCanceled,
    JobFailed,
    JobTimeoutError,
    MigrationError,
    NoSuchJobError,
    PgQueueError,
    SchemaMissing,
    SchemaOutdated,
    SchemaTooNew,
    Snooze,
    UniqueKeyHeld,
)
from .hooks import Hooks
from .job import Dependency, Job, JobStatus, Retry, atomic, get_current_job
from .queue import Queue
from .registry import (
    CanceledJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)
from .results import Result
from .scheduling import Schedule, periodic
from .suspension import is_suspended, resume, suspend
from .worker import SimpleWorker, Worker
from .workflows import Batch, NoSuchBatchError, chain

__version__ = "0.1.0"

__all__ = [
    "AsyncQueue",
    "Batch",
    "CanceledJobRegistry",
    "Callback",
    "ConfigurationError",
    "Connection",
    "DatabaseUnavailable",
    "DeferredJobRegistry",
    "Dependency",
    "FailedJobRegistry",
    "FinishedJobRegistry",
    "Hooks",
    "InvalidJobOperation",
    "Job",
    "JobCanceled",
    "JobFailed",
    "JobStatus",
    "JobTimeoutError",
    "MigrationError",
    "NoSuchBatchError",
    "NoSuchJobError",
    "PgQueueError",
    "Progress",
    "Queue",
    "Result",
    "Retry",
    "Schedule",
    "ScheduledJobRegistry",
    "SchemaMissing",
    "SchemaOutdated",
    "SchemaTooNew",
    "SimpleWorker",
    "Snooze",
    "StartedJobRegistry",
    "UniqueKeyHeld",
    "Worker",
    "__version__",
    "atomic",
    "chain",
    "configure",
    "get_current_job",
    "is_suspended",
    "job",
    "migrate",
    "resume",
    "periodic",
    "schema_sql",
    "suspend",
]
