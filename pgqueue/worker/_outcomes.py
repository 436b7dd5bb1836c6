"""What a worker owes the database: the outcomes of the jobs it ran, written in batches.

Finished jobs go through the :class:`Finisher`, on a connection of its own, without waiting for the server;
failed attempts, released claims (jobs that must not count as run), runs that have begun and callbacks that
failed are written by :meth:`Outcomes.flush` on the worker's main connection, one statement each. Every
statement but the last is fenced on the claim (``claim_count`` and ``worker_id``), so writing a batch twice,
or after the job was rescued and handed to another worker, changes nothing.

The worker's statistics (RQ's ``successful_job_count``, ``failed_job_count``, ``total_working_time``) are
counted here, in memory, from what those statements answer: a finished run counts once finish_jobs
recorded it, a failed attempt once fail_jobs did, each with the seconds it ran (finish_jobs says how many of
a batch it recorded, not which: if it fenced some off, the batch's time counts in proportion). A batch whose
answer was lost with its connection counts nothing: sent again, it finds its jobs recorded already. Nothing
is written per job: the heartbeat thread writes the totals (pgqueue.worker._lease), and so does the
worker's deregistration.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from .. import _db, _notify, _serialize, _store
from ..exceptions import DatabaseUnavailable
from ..sql import bool_array, number_array, text_array
from ._messages import Outcome

log = logging.getLogger("pgqueue.worker")

_CRASHES = frozenset({"JobTimeoutError", "WorkHorseKilled", "LeaseLost"})  # logged as warnings


class Finisher:
    """Records finished outcomes on a connection of its own, without waiting for PostgreSQL: while one
    batch's finish_jobs runs in the server, the supervisor goes on claiming, dispatching and collecting
    on its main connection. One batch is in flight at a time; outcomes that arrive meanwhile make the
    next one. A batch sent again after a lost connection (its first commit may or may not have happened)
    changes nothing twice: completions are fenced on the claim."""

    def __init__(self, dsn: str | None, worker_name: str,
                 recorded: Callable[[int, list[Outcome]], None] = lambda finished, batch: None) -> None:
        self.conn = _db.connect(dsn, role=f"{worker_name}:finish")
        _store.worker_plan_settings(self.conn)
        self.inflight: list[Outcome] = []
        self.recorded = recorded  # told how many of each batch finish_jobs recorded

    def fileno(self) -> int:
        return self.conn.pgconn.socket

    def start(self, outcomes: list[Outcome], worker_id: int | None) -> None:
        _store.finish_jobs_send(self.conn, finish_params(outcomes, worker_id))
        self.inflight = outcomes

    def poll(self, block: bool = False) -> int | None:
        """None while the batch in flight runs (only when not ``block``); else how many jobs its
        promotions made runnable (0 with nothing in flight)."""
        if not self.inflight:
            return 0
        deadline = time.monotonic() + 60
        while (row := _store.finish_jobs_result(self.conn)) is None:
            if not block:
                return None
            if time.monotonic() > deadline:
                raise DatabaseUnavailable("recording finished jobs took over 60 s")
            _db.readable(self.fileno(), 1.0)
        self.recorded(row.finished, self.inflight)
        self.inflight = []
        return row.woken

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # closing a broken connection must not hide the real error
            pass


def finish_params(outcomes: Sequence[Outcome], worker_id: int | None) -> dict[str, Any]:
    """finish_jobs's parameters for these finished outcomes."""
    ids = [o.id for o in outcomes]
    return {"ids": text_array(ids), "claims": number_array([o.claim for o in outcomes]),
            "results": text_array([o.result_json for o in outcomes]),  # type: ignore[misc]
            "durations": number_array([o.duration for o in outcomes]),
            "chunks": number_array(_notify.chunk_numbers(ids)), "worker_id": worker_id}


def fail_params(outcomes: Sequence[Outcome], worker_name: str, worker_id: int | None) -> dict[str, Any]:
    """fail_jobs's parameters for these failed outcomes."""
    ids = [o.id for o in outcomes]
    return {"ids": text_array(ids), "claims": number_array([o.claim for o in outcomes]),
            "exc_infos": text_array([o.exc_info or "" for o in outcomes]),
            "errors": text_array([_serialize.dumps({
                "attempt": o.attempt, "worker": worker_name, "type": o.error_type,
                "message": o.error_message, "traceback": o.exc_info}) for o in outcomes]),
            "durations": number_array([o.duration for o in outcomes]),
            "chunks": number_array(_notify.chunk_numbers(ids)),
            "retryables": bool_array([o.retryable for o in outcomes]), "worker_id": worker_id}


def callback_error(worker_name: str, attempt: int, name: str, func: str, error: str | None, message: str | None,
                   traceback: str | None) -> str:
    """The entry a failed callback adds to its job's errors (JSON text; record_callback_failures adds "at")."""
    return _serialize.dumps({"attempt": attempt, "worker": worker_name, "type": "CallbackFailed", "callback": name,
                             "func": func, "error": error, "message": message, "traceback": traceback})


def log_callback_failure(job_id: str, name: str, func: str, error: str | None, message: str | None) -> None:
    log.warning("Callback %s failed (%s): %s: %s: %s", name, job_id, func or "?", error, message)


class Outcomes:
    """Outcomes collected from the job processes and not yet written, and the writing of them."""

    def __init__(self, worker_name: str) -> None:
        self.worker_name = worker_name
        self.finished: list[Outcome] = []
        self.failed: list[Outcome] = []
        self.snoozed: list[Outcome] = []  # raised Snooze: scheduled again, nothing counted
        self.released: list[tuple[str, int]] = []  # (job id, claim) of claims that must not count
        self.callback_errors: list[tuple[str, str]] = []  # (job id, errors entry) of callbacks that failed
        self.finisher: Finisher | None = None
        # Since the worker registered; replaced whole (never changed in place), so that the heartbeat
        # thread always reads the three numbers of one moment.
        self.totals = _store.WorkerTotals()
        # Told of each batch of failed attempts fail_jobs recorded (the worker's hooks: pgqueue.hooks).
        self.observer: Callable[[list[Outcome], dict[str, _store.FailRow]], None] | None = None

    @property
    def pending(self) -> bool:
        """Whether anything is still to be written, or in flight."""
        return bool(self.finished or self.failed or self.released or self.callback_errors or self.snoozed
                    or (self.finisher and self.finisher.inflight))

    def callback_failed(self, job_id: str, attempt: int, name: str, func: str, error: str | None,
                        message: str | None, traceback: str | None = None) -> None:
        """A job's callback failed: raised, timed out, or its process died. Logged now, written by flush()."""
        log_callback_failure(job_id, name, func, error, message)
        self.callback_errors.append(
            (job_id, callback_error(self.worker_name, attempt, name, func, error, message, traceback)))

    def add(self, outcome: Outcome) -> None:
        if not outcome.ok:
            (self.failed if outcome.snooze is None else self.snoozed).append(outcome)
        elif not outcome.recorded:
            self.finished.append(outcome)
        else:  # an atomic job's completion committed with its own writes
            self._count(1, 0, outcome.duration)

    def _count(self, successful: int, failed: int, seconds: float) -> None:
        t = self.totals
        self.totals = _store.WorkerTotals(t.successful + successful, t.failed + failed, t.seconds + seconds)

    def _finished_recorded(self, finished: int, batch: list[Outcome]) -> None:
        """finish_jobs recorded ``finished`` of ``batch``: all of them, unless some of their jobs were
        canceled or rescued while they ran. The statement does not say which (asking it would cost every
        batch), so such a batch's time counts in proportion."""
        seconds = sum(o.duration for o in batch)
        self._count(finished, 0, seconds if finished >= len(batch) else seconds * finished / max(1, len(batch)))

    def release(self, claims: Sequence[tuple[str, int]]) -> None:
        self.released.extend(claims)

    def open(self, dsn: str | None) -> None:
        self.finisher = Finisher(dsn, self.worker_name, self._finished_recorded)

    def close(self) -> None:
        """Forget the connection; a batch whose result never came back is sent again after a reconnect."""
        if self.finisher is not None:
            self.finished[:0] = self.finisher.inflight
            self.finisher.close()
            self.finisher = None

    def flush(self, conn: psycopg.Connection[Any], worker_id: int | None,
              started: Sequence[tuple[str, int, float]] = ()) -> int:
        """Write what is pending: finished jobs (sent by the finisher, not waited for), failed attempts,
        released claims, and ``started`` runs (job id, claim, seconds running). Returns how many jobs that
        made runnable (dependents promoted, retries and released jobs queued)."""
        finisher = self.finisher
        assert finisher is not None
        woke = 0
        if finisher.inflight:
            woke += finisher.poll() or 0
        if self.finished and not finisher.inflight:
            finisher.start(self.finished, worker_id)
            self.finished = []
        if self.failed:
            woke += self._write_failed(conn, worker_id)
        if self.snoozed:
            woke += self._write_snoozed(conn, worker_id)
        if self.released:
            woke += _store.release_claims(conn, {
                "ids": text_array([i for i, _ in self.released]),
                "claims": number_array([c for _, c in self.released]), "worker_id": worker_id})
            self.released = []
        if started:
            _store.mark_started(conn, {
                "ids": text_array([i for i, _, _ in started]), "claims": number_array([c for _, c, _ in started]),
                "elapsed": number_array([e for _, _, e in started]), "worker_id": worker_id})
        if self.callback_errors:  # after the failed attempts: a job's errors keep the order things happened in
            _store.record_callback_failures(conn, [i for i, _ in self.callback_errors],
                                            [e for _, e in self.callback_errors])
            self.callback_errors = []
        return woke

    def _write_snoozed(self, conn: psycopg.Connection[Any], worker_id: int | None) -> int:
        snoozed = self.snoozed
        rows = _store.snooze_jobs(conn, snooze_params(snoozed, worker_id))
        self.snoozed = []
        log_snoozes(snoozed, rows)
        return rows[0].woken if rows else 0

    def _write_failed(self, conn: psycopg.Connection[Any], worker_id: int | None) -> int:
        failed = self.failed
        rows = _store.fail_jobs(conn, fail_params(failed, self.worker_name, worker_id))
        self.failed = []
        recorded = {r.id: r for r in rows}
        self._count(0, len(recorded), sum(o.duration for o in failed if o.id in recorded))
        log_failures(failed, recorded)
        if self.observer is not None:
            self.observer(failed, recorded)
        if not rows:
            return 0
        # Workflows: a job that failed for good canceled its dependents, released those that allow it, or
        # completed its batch (whose callbacks are jobs to run): notify, and claim again.
        canceled = rows[0].dependents_canceled
        if canceled:
            _store.notify_done(conn, canceled)
        return rows[0].woken + (canceled is not None)


def snooze_params(outcomes: Sequence[Outcome], worker_id: int | None) -> dict[str, Any]:
    """snooze_jobs's parameters for these snoozed outcomes."""
    return {"ids": text_array([o.id for o in outcomes]), "claims": number_array([o.claim for o in outcomes]),
            "seconds": number_array([o.snooze or 0.0 for o in outcomes]), "worker_id": worker_id}


def log_snoozes(snoozed: Sequence[Outcome], rows: Sequence[_store.SnoozeRow]) -> None:
    """``Job snoozed for 60 s (ID)``, or why it was not recorded."""
    recorded = {r.id: r for r in rows}
    for o in snoozed:
        row = recorded.get(o.id)
        if row is None:
            log.info("Job snoozed (%s); not recorded: the job is no longer this worker's", o.id)
        else:
            log.info("Job snoozed for %g s, snooze %d (%s)", o.snooze, row.snoozes, o.id)


def log_failures(failed: Sequence[Outcome], rows: dict[str, _store.FailRow]) -> None:
    """``Job failed (ID): Type: message``, or for an attempt that will be retried ``Job failed, retry 1 of 3
    in 10 s (ID): ...``. An outcome without a row was fenced off: the job is no longer this worker's."""
    for o in failed:
        level = logging.WARNING if o.error_type in _CRASHES else logging.INFO
        row = rows.get(o.id)
        if row is None:
            log.log(level, "Job failed (%s): %s: %s; not recorded: the job is no longer this worker's",
                    o.id, o.error_type, o.error_message)
        elif row.status == "failed" and not o.retryable and row.attempts < row.max_attempts:
            log.log(level, "Job failed (%s): %s: %s; not retried: not an exception its Retry(on=...) names",
                    o.id, o.error_type, o.error_message)
        elif row.status == "failed":
            log.log(level, "Job failed (%s): %s: %s", o.id, o.error_type, o.error_message)
        else:
            log.log(level, "Job failed, retry %d of %d in %g s (%s): %s: %s", row.attempts, row.max_attempts - 1,
                    round(max(0.0, row.retry_in or 0.0), 1), o.id, o.error_type, o.error_message)
