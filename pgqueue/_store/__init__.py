"""The one gateway to pgqueue's SQL. Every statement of ``sql/queries.sql`` (and ``sql/inspect.sql``, RQ's
inspection API) is run from a function here, which takes Python values and returns named rows (the ``*Row``
tuples below, whose fields are the statement's column names: tests/test_store.py compares them with each
statement's description).

Two ways to run a statement:
- on pgqueue's own autocommit connection, through :func:`pgqueue._db.run` (libpq directly, a prepared
  statement, parameters as text): the statements an application waits on, such as enqueue and claim;
- on a caller's connection (``connection=``, inside the caller's transaction) or with array parameters,
  through psycopg's ``execute``.

On a connection in transaction-pooling mode (``_db.pooled``) no statement may leave state in the server
session: the worker's plan settings go with the statements that need them, for their own transaction
(``worker_plan_local``), and LISTEN is refused.
"""

from __future__ import annotations

from typing import Any

from . import dashboard as _store_dashboard
from . import metrics as _store_metrics
from . import ops as _store_ops
from . import schedules as _store_schedules
from . import workflows as _store_workflows
from .inspect import *  # noqa: F403
from .inspect import (  # noqa: F401 - ROWS's row types
    _REGISTRY_NAMES,
    REGISTRY_STATUSES,
    MetaRow,
    NameRow,
    PausedRow,
    PauseRow,
    PositionRow,
    RegistryJobRow,
    RemovedRow,
    ResumedRow,
    WorkerRow,
)
from .jobs import *  # noqa: F403
from .jobs import (  # noqa: F401 - ROWS's row types
    CancelRow,
    CountRow,
    DeletedRow,
    EmptiedRow,
    FailedJobRow,
    IdRow,
    InsertedRow,
    JobRow,
    LiveWorkerRow,
    NowRow,
    ProgressRow,
    ProgressSetRow,
    QueueSummaryRow,
    RequeueRow,
    SimpleInsertedRow,
    StatusRow,
    WokenRow,
)
from .worker import *  # noqa: F403
from .worker import (  # noqa: F401 - ROWS's row types
    CanceledRow,
    ClaimRow,
    FailRow,
    FinishRow,
    LimitsRow,
    NotifiedRow,
    PlanRow,
    PromoteRow,
    PruneRow,
    RescuedRow,
    RevisionRow,
    SecondsRow,
    SnoozeRow,
    WorkerIdRow,
)

#: Each statement's row type, for the test that compares them with the statements' columns.
ROWS: dict[str, type[tuple[Any, ...]] | None] = {
    "insert_jobs": InsertedRow, "insert_simple_job": SimpleInsertedRow, "insert_job": InsertedRow,
    "copy_simple_jobs": None, "copy_jobs": None, "wake_queues": NowRow, "find_live_duplicate": JobRow,
    "fetch_job": JobRow, "job_status": StatusRow, "queue_count": CountRow, "queue_job_ids": IdRow,
    "queue_empty": EmptiedRow, "save_meta": IdRow, "cancel_job": CancelRow, "requeue_jobs": RequeueRow,
    "delete_job": DeletedRow, "failed_jobs": FailedJobRow, "claim": ClaimRow, "mark_started": None,
    "finish_jobs": FinishRow, "fail_jobs": FailRow, "release_claims": WokenRow, "next_scheduled": SecondsRow,
    "register_worker": WorkerIdRow, "schema_revision": RevisionRow, "heartbeat": None, "deregister_worker": None,
    "rescue_lost_jobs": RescuedRow,
    "shortest_lease": SecondsRow, "notify_done": NotifiedRow, "promote_deferred": PromoteRow,
    "prune_jobs": PruneRow, "prune_workers": None, "maintenance_limits": LimitsRow, "queue_summary": QueueSummaryRow,
    "live_workers": LiveWorkerRow, "listen_jobs": None, "listen_done": None, "own_settings": None,
    "worker_plan_settings": None, "worker_plan_local": PlanRow, "record_callback_failures": None,
    "claim_by_id": ClaimRow, "pause": PausedRow, "resume": ResumedRow,
    "pauses": PauseRow, "listen_control": None, "fetch_jobs": JobRow, "job_meta": MetaRow,
    "job_position": PositionRow,
    "queue_names": NameRow, "registry_job": RegistryJobRow, "registry_remove": RemovedRow,
    "registry_requeue": RequeueRow,
    "worker_details": WorkerRow,
    **{f"registry_{_REGISTRY_NAMES.get(s, s)}_{op}": row for s in REGISTRY_STATUSES
       for op, row in (("ids", IdRow), ("count", CountRow))},
}
ROWS.update(_store_schedules.ROWS)  # periodic jobs: their statements' functions live there
ROWS.update(_store_ops.ROWS)  # `pgqueue jobs`, `show`, `purge`, `doctor`: their functions live in _store.ops
ROWS.update(_store_dashboard.ROWS)  # the web dashboard's: in _store.dashboard, not re-exported here
ROWS.update(_store_metrics.ROWS)  # pgqueue.metrics' database collector
ROWS.update({  # job control (docs/job-control.md): canceling running jobs, snoozes, progress
    "canceled_jobs": CanceledRow, "snooze_jobs": SnoozeRow, "job_progress": ProgressRow,
    "set_progress": ProgressSetRow, "listen_progress": None, "replace_unique": JobRow,
})
ROWS.update(_store_workflows.ROWS)  # batches: their statements' functions live there
