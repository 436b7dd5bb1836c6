"""What in PostgreSQL hurts a queue, checked: ``pgqueue doctor`` and :func:`health` (re-exported as
``pgqueue.monitor.health``, for dashboards and health probes), the dashboard's health page and the
``pgqueue_health_problems`` gauge of ``pgqueue metrics``.

A queue table churns: every job is inserted, updated two or three times and deleted, and each leaves a
dead row version that only VACUUM removes, and only once no transaction could still see it. So what hurts a
queue most is what holds back that horizon (a long transaction, a forgotten prepared transaction, a
replication slot of a standby that went away), then vacuum not keeping up; then workers lost and jobs stuck;
then queues paused by mistake. docs/operations.md says what to do about each finding.

Every check reads the server's statistics views, or what an index of pgqueue's finds (running jobs, workers,
waiting jobs): none reads the history, so a probe can run it every few seconds.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, Literal

import psycopg

from . import _store
from ._db import shared_connection, translate_errors
from ._store import ops as _ops

Severity = Literal["ok", "notice", "problem"]
"""``problem``: something is wrong (the doctor exits with status 1); ``notice``: worth knowing, not wrong
(a paused queue, a check the role cannot make); ``ok``: the check found nothing."""

CHECKS = ("transactions", "prepared_transactions", "replication_slots", "visibility", "autovacuum", "dead_rows",
          "claim_index", "lost_workers", "stuck_jobs", "pauses")


@dataclass(frozen=True)
class Thresholds:
    """When a finding is a problem. Every one can be set (``pgqueue doctor --help``; docs/operations.md)."""
    max_transaction_age: float = 300.0
    """Seconds a transaction (or a prepared one) may hold back the xmin horizon."""
    max_slot_xmin_age: int = 1_000_000
    """Transactions a replication slot's xmin may lag behind."""
    max_dead_rows: int = 100_000
    """Dead rows in pgqueue.jobs ... """
    max_dead_ratio: float = 0.2
    """... and their share of the live rows, both exceeded for a problem."""
    max_claim_index_bloat: float = 10.0
    """How many times the size its entries need the claim index may reach ..."""
    min_claim_index_mb: float = 64.0
    """... once it is at least this big (MB)."""
    stuck_margin: float = 60.0
    """Seconds past its timeout a running job may run before it counts as stuck."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{f.name}={value!r}: pass a finite number, 0 or more")


@dataclass(frozen=True)
class Finding:
    """One thing the doctor found. ``check`` is one of CHECKS; ``summary`` one line for a person;
    ``details`` the facts, JSON-ready (pids, ages in seconds, names), for a program."""
    check: str
    severity: Severity
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Health:
    """The doctor's report: ``findings`` in the order of CHECKS, every check at least once."""
    findings: list[Finding]
    thresholds: Thresholds
    checked_at: datetime

    @property
    def ok(self) -> bool:
        """No problem found (notices allowed)."""
        return not self.problems

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "problem"]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked_at": self.checked_at.isoformat(), "thresholds": asdict(self.thresholds),
                "findings": [_jsonable(asdict(f)) for f in self.findings]}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value.isoformat() if isinstance(value, datetime) else value


def ago(seconds: float) -> str:
    """``45s``, ``12m03s``, ``3h20m``, ``2d04h``."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def health(dsn: str | None = None, thresholds: Thresholds | None = None) -> Health:
    """Check the database at ``dsn`` (see the module's docstring); returns every finding. Raises
    pgqueue's errors (DatabaseUnavailable, SchemaMissing, ...) when it cannot check at all."""
    with translate_errors(dsn):
        return check(shared_connection(dsn), thresholds)


def check(conn: psycopg.Connection[Any], thresholds: Thresholds | None = None) -> Health:
    """:func:`health` on ``conn``, an autocommit connection outside a transaction (one check may fail on its
    own, which would abort a transaction): for those that keep a connection of their own, the dashboard's
    health page and the ``pgqueue metrics`` collector. Raises psycopg's errors as they are."""
    limits = thresholds or Thresholds()
    checked_at = datetime.now(timezone.utc)
    found = [*_transactions(conn, limits), *_prepared(conn, limits), *_slots(conn, limits), *_visibility(conn),
             *_table(conn, limits), *_lost_workers(conn), *_stuck_jobs(conn, limits), *_pauses(conn)]
    order = {name: i for i, name in enumerate(CHECKS)}
    return Health(sorted(found, key=lambda f: order[f.check]), limits, checked_at)


def _transactions(conn: psycopg.Connection[Any], limits: Thresholds) -> list[Finding]:
    rows = _ops.health_sessions(conn, limits.max_transaction_age)
    if not rows:
        return [Finding("transactions", "ok", f"no transaction older than {ago(limits.max_transaction_age)} holds "
                                              "back the xmin horizon")]
    found = []
    for r in rows:
        who = ", ".join(x for x in (r.application_name or None, f"role {r.role}" if r.role else None,
                                    r.client_addr) if x)
        state = f"{r.state} since {r.state_change:%H:%M:%S}" if r.state and r.state_change else (r.state or "?")
        summary = (f"pid {r.pid} ({who or 'unnamed'}) has held back the xmin horizon for {ago(r.seconds)}: "
                   f"transaction began {r.xact_start:%Y-%m-%d %H:%M:%S %Z}, {state}")
        if r.query:
            summary += f"; query: {r.query}"
        found.append(Finding("transactions", "problem", summary, {**r._asdict(), "age_seconds": r.seconds}))
    return found


def _prepared(conn: psycopg.Connection[Any], limits: Thresholds) -> list[Finding]:
    rows = _ops.health_prepared(conn, limits.max_transaction_age)
    if not rows:
        return [Finding("prepared_transactions", "ok",
                        f"no prepared transaction older than {ago(limits.max_transaction_age)}")]
    return [Finding("prepared_transactions", "problem",
                    f"prepared transaction {r.gid!r} (owner {r.owner}) has held back the xmin horizon for "
                    f"{ago(r.seconds)}, since {r.prepared:%Y-%m-%d %H:%M:%S %Z}",
                    {**r._asdict(), "age_seconds": r.seconds})
            for r in rows]


def _slots(conn: psycopg.Connection[Any], limits: Thresholds) -> list[Finding]:
    rows = _ops.health_slots(conn, limits.max_slot_xmin_age)
    if not rows:
        return [Finding("replication_slots", "ok", "no replication slot holds back the xmin horizon by more than "
                                                   f"{limits.max_slot_xmin_age:,} transactions")]
    return [Finding("replication_slots", "problem",
                    f"replication slot {r.slot_name!r} ({r.slot_type}, "
                    f"{'active, pid ' + str(r.active_pid) if r.active else 'inactive'}) holds back the xmin horizon "
                    f"by {r.xid_age:,} transactions", r._asdict())
            for r in rows]


def _visibility(conn: psycopg.Connection[Any]) -> list[Finding]:
    seen = _ops.health_visibility(conn)
    if seen.sees_all:
        return [Finding("visibility", "ok", "this role sees every session's transaction", seen._asdict())]
    return [Finding("visibility", "notice",
                    f"this role sees only its own sessions' transactions: {seen.hidden} session(s) of other roles "
                    "hidden, so a long transaction of theirs goes unreported; GRANT pg_read_all_stats TO this "
                    "role (docs/operations.md)", seen._asdict())]


def _table(conn: psycopg.Connection[Any], limits: Thresholds) -> list[Finding]:
    t = _ops.health_table(conn)
    measured: _ops.TupleStatsRow | None = None
    unmeasured = ""
    if t.pgstattuple:
        try:
            measured = _ops.health_pgstattuple(conn)
        except psycopg.Error as exc:  # e.g. not allowed: pgstattuple needs pg_stat_scan_tables
            unmeasured = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return [_autovacuum(t), _dead_rows(t, limits, measured), _claim_index(t, limits, measured, unmeasured)]


def _autovacuum(t: _ops.TableRow) -> Finding:
    """Autovacuum cannot run on pgqueue.jobs: a problem once a vacuum is due (its dead rows past the point at
    which autovacuum would start), a notice before, since a VACUUM run by hand or by cron may be the plan."""
    off = [why for cond, why in ((not t.autovacuum_on, "autovacuum is off for the server (autovacuum = off)"),
                                 (not t.track_counts, "track_counts is off, so autovacuum never sees dead rows"),
                                 (not t.table_autovacuum, "autovacuum is disabled on pgqueue.jobs "
                                                          "(autovacuum_enabled = false)")) if cond]
    dead = t.dead_rows or 0
    details = {"autovacuum_on": t.autovacuum_on, "track_counts": t.track_counts,
               "table_autovacuum": t.table_autovacuum, "dead_rows": dead, "vacuum_due_at": t.vacuum_due_at,
               "last_autovacuum": t.last_autovacuum, "last_vacuum": t.last_vacuum,
               "autovacuum_count": t.autovacuum_count}
    if not off:
        return Finding("autovacuum", "ok", f"autovacuum runs on pgqueue.jobs; {_vacuumed(t)}", details)
    if dead > t.vacuum_due_at:
        return Finding("autovacuum", "problem", f"{'; '.join(off)}: pgqueue.jobs has {dead:,} dead rows, past the "
                                                f"{t.vacuum_due_at:,} at which autovacuum would vacuum it, and nothing "
                                                f"will; {_vacuumed(t)}", details)
    return Finding("autovacuum", "notice", f"{'; '.join(off)}: only a VACUUM you run removes pgqueue.jobs's dead "
                                           f"rows ({dead:,} now, {t.vacuum_due_at:,} would start autovacuum); "
                                           f"{_vacuumed(t)}", details)


def _vacuumed(t: _ops.TableRow) -> str:
    last = max((x for x in (t.last_autovacuum, t.last_vacuum) if x is not None), default=None)
    return f"last vacuumed {last:%Y-%m-%d %H:%M:%S %Z}" if last else "not vacuumed since its statistics were reset"


def _dead_rows(t: _ops.TableRow, limits: Thresholds, measured: _ops.TupleStatsRow | None) -> Finding:
    live, dead = t.live_rows or 0, t.dead_rows or 0
    details: dict[str, Any] = {"live_rows": live, "dead_rows": dead, "table_bytes": t.table_bytes,
                               "last_autovacuum": t.last_autovacuum, "last_vacuum": t.last_vacuum}
    if measured is not None:
        details.update(dead_tuple_percent=measured.dead_tuple_percent, free_percent=measured.approx_free_percent)
    text = f"pgqueue.jobs has {dead:,} dead rows for {live:,} live ({_mb(t.table_bytes)}); {_vacuumed(t)}"
    if dead > limits.max_dead_rows and dead > limits.max_dead_ratio * live:
        return Finding("dead_rows", "problem", text + ": vacuum does not keep up, or cannot remove them (see the "
                                                     "transactions, prepared transactions and slots above)", details)
    return Finding("dead_rows", "ok", text, details)


def _claim_index(t: _ops.TableRow, limits: Thresholds, measured: _ops.TupleStatsRow | None,
                 unmeasured: str) -> Finding:
    # An entry: 8 bytes of tuple header, 16 of key (hashtext int4, priority int4, position int8), a 4-byte line
    # pointer; leaf pages are filled to 90% (8,152 usable bytes): ~262 per page, plus the meta and root pages.
    need = (math.ceil(t.claim_index_rows / 262) + 2) * 8192
    details: dict[str, Any] = {"bytes": t.claim_index_bytes, "entries": t.claim_index_rows, "needed_bytes": need,
                               "pgstattuple": t.pgstattuple}
    if measured is not None:
        details.update(avg_leaf_density=measured.avg_leaf_density, leaf_pages=measured.leaf_pages,
                       deleted_pages=measured.deleted_pages)
    elif unmeasured:
        details["pgstattuple_error"] = unmeasured
    text = f"jobs_claim_idx is {_mb(t.claim_index_bytes)} for {t.claim_index_rows:,} waiting jobs (they need " \
           f"about {_mb(need)})"
    if measured is not None:
        text += f"; leaf pages {measured.avg_leaf_density:.0f}% full"
    if t.claim_index_bytes > limits.max_claim_index_bloat * need and \
            t.claim_index_bytes > limits.min_claim_index_mb * 1024 * 1024:
        return Finding("claim_index", "problem", text + ": REINDEX INDEX CONCURRENTLY pgqueue.jobs_claim_idx "
                                                       "rebuilds it (docs/operations.md)", details)
    return Finding("claim_index", "notice" if unmeasured else "ok",
                   text + (f"; pgstattuple is installed but not usable here: {unmeasured}" if unmeasured else ""),
                   details)


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:,.1f} MB"


def _lost_workers(conn: psycopg.Connection[Any]) -> list[Finding]:
    rows = _ops.health_lost_workers(conn)
    if not rows:
        return [Finding("lost_workers", "ok", "no worker stopped heartbeating without stopping")]
    found = []
    for r in rows:
        held = f"; {r.running} running job(s) wait for a live worker to rescue them" if r.running else ""
        found.append(Finding("lost_workers", "problem",
                             f"worker {r.name} (pid {r.pid} on {r.hostname}, queues {', '.join(r.queues)}) has not "
                             f"heartbeated for {ago(r.silent_seconds)}, past its lease of {r.lease_seconds:g} s{held}",
                             r._asdict()))
    return found


def _stuck_jobs(conn: psycopg.Connection[Any], limits: Thresholds) -> list[Finding]:
    rows = _ops.health_stuck_jobs(conn, limits.stuck_margin)
    if not rows:
        return [Finding("stuck_jobs", "ok", f"no job has run more than {ago(limits.stuck_margin)} past its timeout")]
    return [Finding("stuck_jobs", "problem",
                    f"job {r.id} ({r.func_name} on {r.queue}, worker {r.worker_name or '?'}) has run for "
                    f"{ago(r.running_seconds)}, past its timeout of {r.timeout_seconds:g} s", r._asdict())
            for r in rows]


def _pauses(conn: psycopg.Connection[Any]) -> list[Finding]:
    rows = _store.pauses(conn)
    if not rows:
        return [Finding("pauses", "ok", "no queue is paused and workers are not suspended")]
    found = []
    for r in rows:
        what = "workers are suspended" if r.scope == "all" else f"queue {r.scope.split(':', 1)[1]} is paused"
        until = f" until {r.until:%Y-%m-%d %H:%M:%S %Z}" if r.until else " until resumed"
        found.append(Finding("pauses", "notice", f"{what} since {r.paused_at:%Y-%m-%d %H:%M:%S %Z}{until}",
                             r._asdict()))
    return found
