"""The statements of pgqueue.metrics' database collector (``sql/metrics.sql``), in the SQL gateway
(:mod:`pgqueue._store`, whose ``ROWS`` registers these row types too)."""

from __future__ import annotations

from typing import Any, NamedTuple

from ._run import Conn, _execute


class MetricsSettingsRow(NamedTuple):
    enable_seqscan: str
    max_parallel_workers_per_gather: str
    statement_timeout: str


class LiveJobsRow(NamedTuple):
    """Live jobs of one queue and status; ``oldest_seconds`` only for queued ones (None otherwise)."""
    queue: str
    status: str
    jobs: int
    oldest_seconds: float | None


class LiveWorkersRow(NamedTuple):
    idle: int
    busy: int


def metrics_snapshot(conn: Conn, statement_timeout: float) -> tuple[list[LiveJobsRow], LiveWorkersRow]:
    """Live jobs by queue and status, and live workers, read in one transaction of the caller's autocommit
    ``conn`` with index paths only and at most ``statement_timeout`` seconds per statement."""
    with conn.transaction():
        _execute(conn, "metrics_settings", {"statement_timeout": str(max(1, round(statement_timeout * 1000)))},
                 MetricsSettingsRow)
        jobs = _execute(conn, "metrics_jobs", None, LiveJobsRow)
        workers = _execute(conn, "metrics_workers", None, LiveWorkersRow)[0]
    return jobs, workers


#: Each statement's row type (registered in _store.ROWS).
ROWS: dict[str, type[tuple[Any, ...]] | None] = {
    "metrics_settings": MetricsSettingsRow, "metrics_jobs": LiveJobsRow, "metrics_workers": LiveWorkersRow,
}
