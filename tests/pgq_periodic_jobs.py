"""Job functions of the periodic-job tests (tests/test_periodic.py, tests/reliability/test_scheduler.py).
Workers import them by dotted path (tests/ is on PYTHONPATH)."""

from __future__ import annotations

from pgq_testjobs import _db, record


def tick(tag: str) -> str:
    """One row in pgq_test.runs per run, with the job's id (NAME@TICK)."""
    return record(tag)


def hold(key: int, tag: str) -> str:
    """Record ``started:TAG``, then wait while the test holds the advisory lock ``key``; record ``TAG``."""
    record(f"started:{tag}")
    _db().execute("SELECT pg_advisory_lock_shared(%s), pg_advisory_unlock_shared(%s)", (key, key))
    return record(tag)
