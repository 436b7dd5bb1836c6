"""pgqueue: job queues in PostgreSQL.

    from pgqueue import Queue
    job = Queue("default").enqueue(count_words, "some text")

Jobs are rows of ``pgqueue.jobs``; ``pgqueue worker`` runs them. See the README and docs/.
"""

from ._callbacks import Callback
from ._migrate import migrate, schema_sql
from .decorators import job
from .exceptions import (
    ConfigurationError,
    DatabaseUnavailable,
    JobFailed,
    JobTimeoutError,
    MigrationError,
    NoSuchJobError,
    PgQueueError,
    SchemaMissing,
    SchemaOutdated,
    SchemaTooNew,
    UniqueKeyHeld,
)
from .job import Job, JobStatus, Retry, atomic, get_current_job
from .queue import Queue
from .worker import SimpleWorker, Worker

__version__ = "0.1.0"

__all__ = [
    "Callback",
    "ConfigurationError",
    "DatabaseUnavailable",
    "Job",
    "JobFailed",
    "JobStatus",
    "JobTimeoutError",
    "MigrationError",
    "NoSuchJobError",
    "PgQueueError",
    "Queue",
    "Retry",
    "SchemaMissing",
    "SchemaOutdated",
    "SchemaTooNew",
    "SimpleWorker",
    "UniqueKeyHeld",
    "Worker",
    "__version__",
    "atomic",
    "get_current_job",
    "job",
    "migrate",
    "schema_sql",
]
