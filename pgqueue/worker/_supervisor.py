"""The worker loop: claim jobs, hand them to slots, record outcomes, sleep on LISTEN.

One process, one thread, one ``poll`` (_db.ready): on the LISTEN connection (new work), on each child's pipe
(outcomes) and process sentinel (a crash), and on a self-pipe for signals. Claims and completions are
batched: a worker takes as many jobs as fill about 50 ms of work per slot, and records all outcomes that
arrived since the last round trip in one statement each for finished, failed and released jobs.
"""

from __future__ import annotations

import logging
import operator
import os
import signal
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg

from .. import _serialize
from .._db import connect, readable, ready, run, translate_errors
from ..exceptions import DatabaseUnavailable
from ..sql import number_array, q, statement, text_array
from ._execute import AbortJob, Outcome, Task
from ._slots import ChildSlot, InProcessSlot, Message, Slot, timeout_message

log = logging.getLogger("pgqueue.worker")

_NOTIFY_BYTES = 7000  # pg_notify payloads must stay under 8000 bytes
_BATCH_WINDOW = 0.05  # seconds of work a slot is given per claim
_MARK_AFTER = 0.1  # a run still going after this long is recorded as started (it counts as an attempt)
_PRIORITY_ORDER = operator.itemgetter(10, 11)  # a claim row's priority and position
# The worker's plans (see Worker._connect): index paths and nested loops only.
_PLAN_SETTINGS = ("SET enable_sort = off; SET enable_seqscan = off; SET enable_hashjoin = off; "
                  "SET enable_mergejoin = off")


def _notify_chunks(ids: Sequence[str]) -> list[int]:
    """Numbers the ids of a batch so that the ids of each number, comma-joined, fit in one NOTIFY."""
    if sum(map(len, ids)) + len(ids) <= _NOTIFY_BYTES and all(map(str.isascii, ids)):
        return [0] * len(ids)
    chunks, chunk, size = [], 0, 0
    for job_id in ids:
        n = len(job_id.encode()) + 1
        size += n
        if size > _NOTIFY_BYTES:
            chunk, size = chunk + 1, n
        chunks.append(chunk)
    return chunks


class _Call:
    """Formats ``tasks.f(6, 7)`` for the log only if the line is emitted."""

    __slots__ = ("task",)

    def __init__(self, task: Task) -> None:
        self.task = task

    def __str__(self) -> str:
        args = ", ".join(repr(a) for a in _serialize.loads(self.task.args_json))
        kwargs = ", ".join(f"{k}={v!r}" for k, v in _serialize.loads(self.task.kwargs_json).items())
        return f"{self.task.func_name}({', '.join(p for p in (args, kwargs) if p)})"


class _Finisher:
    """Records finished outcomes on a connection of its own, without waiting for PostgreSQL: while one
    batch's finish_jobs runs in the server, the supervisor goes on claiming, dispatching and collecting
    on its main connection. One batch is in flight at a time; outcomes that arrive meanwhile make the
    next one. Completions are fenced on the claim, so a batch sent again after a lost connection (its
    first commit may or may not have happened) changes nothing twice."""

    def __init__(self, dsn: str | None) -> None:
        self.conn = connect(dsn)
        self.conn.execute(_PLAN_SETTINGS)
        self._name, query, self._names = statement("finish_jobs")
        result = self.conn.pgconn.prepare(self._name, query)
        if result.status != psycopg.pq.ExecStatus.COMMAND_OK:  # e.g. no schema: SchemaMissing for the caller
            self.close()
            raise psycopg.errors.error_from_result(result)
        self.inflight: list[Outcome] = []

    def fileno(self) -> int:
        return self.conn.pgconn.socket

    def start(self, outcomes: list[Outcome], worker_id: int | None) -> None:
        # Outcome's fields as columns: id, attempt, claim, ok, result_json, ..., duration, recorded
        ids, _, claims, _, results, _, _, _, durations, _ = zip(*outcomes, strict=True)
        params = {"ids": text_array(ids), "claims": number_array(claims), "results": text_array(results),
                  "durations": number_array(durations), "chunks": number_array(_notify_chunks(ids)),
                  "worker_id": str(worker_id)}
        self.conn.pgconn.send_query_prepared(self._name, [params[n].encode() for n in self._names])
        self.inflight = outcomes

    def poll(self, block: bool = False) -> int | None:
        """None while the batch in flight runs (only when not ``block``); else how many jobs its
        promotions made runnable (0 with nothing in flight)."""
        if not self.inflight:
            return 0
        pgconn = self.conn.pgconn
        pgconn.consume_input()  # raises OperationalError if the connection broke
        deadline = time.monotonic() + 60
        while pgconn.is_busy():
            if not block:
                return None
            if time.monotonic() > deadline:
                raise DatabaseUnavailable("recording finished jobs took over 60 s")
            readable(pgconn.socket, 1.0)
            pgconn.consume_input()
        woke, error = 0, None
        while (result := pgconn.get_result()) is not None:
            if result.status == psycopg.pq.ExecStatus.TUPLES_OK:
                woke = int(result.get_value(0, 2) or 0)
            elif error is None:
                error = psycopg.errors.error_from_result(result)
        if error is not None:
            raise error  # OperationalError reconnects (the batch is sent again); anything else is a bug
        self.inflight = []
        return woke

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # closing a broken connection must not hide the real error
            pass


class Worker:
    """Serves ``queues`` in priority order (all runnable work on the first before the second, as in RQ),
    then job priority, then FIFO.

    ``concurrency`` jobs run at once, each in a long-lived child process. ``lease`` is how long this
    worker's heartbeat keeps its jobs its own; ``poll_interval`` is the fallback poll when no notification
    comes. ``allow_modules`` restricts which job functions may be imported (module prefixes). ``grace``
    bounds a warm shutdown: jobs still running that many seconds after the first stop signal are
    stopped and put back on their queue, as a second signal would (default: wait for them, as RQ does).
    """

    _in_process = False

    def __init__(self, queues: Iterable[Any] | str | None = None, dsn: str | None = None, *,
                 name: str | None = None, concurrency: int = 1, lease: float = 30.0,
                 poll_interval: float = 5.0, allow_modules: Sequence[str] = (), max_batch: int = 1000,
                 grace: float | None = None, give_back_after: float = 0.1) -> None:
        if isinstance(queues, str) or hasattr(queues, "name"):
            queues = [queues]
        names = [getattr(q_, "name", q_) for q_ in (queues or ["default"])]
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ValueError("queue names must be non-empty strings")
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if lease <= 0 or poll_interval <= 0:
            raise ValueError("lease and poll_interval must be > 0 seconds")
        if give_back_after < 0:
            raise ValueError("give_back_after must be >= 0 seconds")
        self.queues: list[str] = list(dict.fromkeys(names))
        self.dsn = dsn
        self.name = name or f"{socket.gethostname()}.{os.getpid()}"
        self.concurrency = concurrency
        self.lease = float(lease)
        self.poll_interval = float(poll_interval)
        self.allow_modules = tuple(allow_modules)
        self.max_batch = max(1, max_batch)
        self.grace = grace
        # Claims are batched, so jobs wait in a slot behind the one running. Once it has run this long, the
        # jobs not started go back to their queue, no attempt used: what comes first by the queue order
        # and arrived meanwhile is claimed before them, and other workers may take them.
        self.give_back_after = float(give_back_after)
        self._stop_deadline: float | None = None
        self.worker_id: int | None = None
        self._signals = 0
        self._wake_r = self._wake_w = -1
        self._avg_duration = 0.01
        self._finished: list[Outcome] = []
        self._failed: list[Outcome] = []
        self._released: list[tuple[str, int]] = []  # (job id, claim) of claims that must not count

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.queues}>"

    # -- signals ---------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Stop as SIGTERM does: claim nothing more, finish running jobs, return. A second call stops at
        once, requeueing running jobs. Safe to call from another thread or a signal handler."""
        self._signals += 1
        if self._signals == 1 and self.grace is not None:
            self._stop_deadline = time.monotonic() + self.grace
        if self._wake_w >= 0:
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass

    def _on_signal(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self._signals == 0:
            log.info("Worker %s: %s received, warm shut down: finishing running jobs (again to stop at once)",
                     self.name, name)
        else:
            log.warning("Worker %s: %s received again, cold shut down: requeueing running jobs", self.name, name)
        self.request_stop()
        if self._in_process and self._signals >= 2:
            raise AbortJob()  # interrupts the job running in this very thread; work() requeues it

    # -- the loop --------------------------------------------------------------------------------
    def work(self, burst: bool = False, max_jobs: int | None = None) -> bool:
        """Serve jobs until stopped (or, with ``burst``, until nothing is runnable). Returns whether any
        job ran."""
        self._signals = 0
        self._stop_deadline = None
        self.worker_id = None  # each run registers afresh: a stopped registration's jobs are rescued
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        in_main = threading.current_thread() is threading.main_thread()
        previous = {}
        if in_main:
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self._on_signal)
        # Children are forked before any connection exists, so they share no socket with us.
        slots = self._make_slots()
        self._conn: psycopg.Connection[Any] | None = None
        self._listen: psycopg.Connection[Any] | None = None
        self._finisher: _Finisher | None = None
        ran = 0
        try:
            self._connect()
            log.info("Worker %s started with PID %d, version %s", self.name, os.getpid(), _version())
            log.info("*** Listening on %s...", ", ".join(self.queues))
            ran = self._loop(slots, burst, max_jobs)
        except AbortJob:
            log.warning("Worker %s: stopped at once; requeueing the job it was running", self.name)
        finally:
            self._shutdown(slots)
            if in_main:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1
        return ran > 0

    def _make_slots(self) -> list[Slot]:
        if self._in_process:
            return [InProcessSlot(self.dsn, self.name, self.allow_modules, lambda: self._signals > 0, self._announce,
                                  self.give_back_after)]
        return [ChildSlot(i, self.dsn, self.name, self.allow_modules) for i in range(self.concurrency)]

    def _connect(self) -> None:
        self._conn = connect(self.dsn)
        # A queue's row counts swing faster than its statistics follow: after a burst of enqueues the
        # planner may still believe the queue nearly empty and claim by sorting every runnable row, or
        # join claimed rows back by a sequential scan. And a generic plan cannot see a LIMIT's value: it
        # guesses a tenth of the table and joins the claimed rows back by hashing the whole table (33 ms
        # for 100 jobs out of 20,000). Without sorts, sequential scans, hash and merge joins, the claim
        # walks jobs_claim_idx in order and stops at its LIMIT, and every statement reaches its rows by
        # index, whatever the statistics say. (JIT is off, so the cost penalty these settings add to a
        # plan that has no other way is harmless.)
        self._conn.execute(_PLAN_SETTINGS)
        self._listen = connect(self.dsn)
        with translate_errors(self.dsn):
            self._finisher = _Finisher(self.dsn)
            self._listen.execute("LISTEN pgqueue_jobs")
            if self.worker_id is None:
                row = self._conn.execute(q("register_worker"), {
                    "name": self.name, "hostname": socket.gethostname(), "pid": os.getpid(),
                    "queues": self.queues, "concurrency": self.concurrency, "lease": self.lease,
                }).fetchone()
                assert row is not None
                self.worker_id = int(row[0])

    def _close_connections(self) -> None:
        if self._finisher is not None:  # a batch whose result never came back is sent again
            self._finished[:0] = self._finisher.inflight
            self._finisher.close()
            self._finisher = None
        for conn in (self._conn, self._listen):
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # closing a broken connection must not hide the real error
                    pass
        self._conn = self._listen = None

    def _loop(self, slots: list[Slot], burst: bool, max_jobs: int | None) -> int:
        ran = claimed = 0
        want_claim = True
        now = time.monotonic()
        heartbeat_every = self.lease / 3
        next_heartbeat = now + heartbeat_every
        next_maintenance = now  # rescue lost jobs before the first claim
        next_poll = now + self.poll_interval
        backoff = 0.0
        while True:
            try:
                if backoff:
                    self._reconnect()
                    backoff, want_claim = 0.0, True
                now = time.monotonic()
                if now >= next_heartbeat:
                    self._conn.execute(q("heartbeat"), {"worker_id": self.worker_id})  # type: ignore[union-attr]
                    next_heartbeat = now + heartbeat_every
                if now >= next_maintenance:
                    next_maintenance, want_claim = now + self._maintenance(), True
                if now >= next_poll:
                    next_poll, want_claim = now + self.poll_interval, True

                ran += self._collect(slots)
                if self._stop_deadline is not None and time.monotonic() >= self._stop_deadline and self._signals < 2:
                    log.warning("Worker %s: grace period of %gs over, stopping running jobs", self.name, self.grace)
                    self._signals = 2
                if self._signals >= 2:
                    self._cold_stop(slots)
                if self._signals:
                    for slot in slots:
                        slot.request_stop()
                if self._flush(slots):
                    want_claim = True

                if (not self._signals and want_claim and (max_jobs is None or claimed < max_jobs)):
                    # Idle slots first: the first jobs of a claim go to them and start at once.
                    hungry = sorted(self._hungry(slots), key=lambda s: s.busy)
                    if hungry:
                        per_slot = self._batch_size()
                        limit = per_slot * len(hungry)
                        if max_jobs is not None:
                            limit = min(limit, max_jobs - claimed)
                        tasks = self._claim(limit, sum(not s.busy for s in hungry))
                        claimed += len(tasks)
                        self._dispatch(tasks, hungry)  # first: the jobs start while we look further ahead
                        if len(tasks) < limit:
                            want_claim = False
                            next_poll = min(next_poll, self._next_scheduled(now))
                        if tasks:
                            continue  # in-process slots have outcomes ready; children have work
                idle = not any(s.busy for s in slots) and not (self._finished or self._failed or self._released
                                                                or (self._finisher and self._finisher.inflight))
                if idle and (self._signals or (burst and not want_claim)
                             or (max_jobs is not None and claimed >= max_jobs)):
                    return ran

                timeout = min(next_heartbeat, next_poll, next_maintenance) - time.monotonic()
                deadlines = [d for d in (s.deadline() for s in slots) if d is not None]
                deadlines += [s.current_start + _MARK_AFTER for s in slots if s.tasks and not s.head_marked]
                deadlines += [s.current_start + self.give_back_after for s in slots if s.waiting]
                if self._stop_deadline is not None:
                    deadlines.append(self._stop_deadline)
                if deadlines:
                    timeout = min(timeout, min(deadlines) - time.monotonic())
                if want_claim and not self._signals and self._hungry(slots):
                    timeout = 0
                if self._wait(slots, max(0.0, timeout)):
                    want_claim = True
            except (DatabaseUnavailable, psycopg.OperationalError) as exc:
                backoff = min(max(backoff * 2, 0.5), 10.0)
                log.error("Worker %s: database connection lost (%s); reconnecting in %.1fs",
                          self.name, str(exc).strip().splitlines()[0] if str(exc).strip() else exc, backoff)
                self._close_connections()
                self._sleep(backoff)
                if self._signals >= 2:
                    return ran

    def _reconnect(self) -> None:
        self._connect()
        log.info("Worker %s: reconnected to the database", self.name)

    def _sleep(self, seconds: float) -> None:
        """Sleep, waking early for a stop signal."""
        readable(self._wake_r, seconds)
        self._drain_wakeups()

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def _wait(self, slots: list[Slot], timeout: float) -> bool:
        """Sleep until something happens; returns whether a notification announced work for us."""
        assert self._listen is not None
        fds = [self._wake_r, self._listen.fileno()]
        if self._finisher is not None and self._finisher.inflight:
            fds.append(self._finisher.fileno())
        write_fds = []
        for slot in slots:
            fds.extend(slot.fds())
            write_fds.extend(slot.write_fds())
        readable_fds, writable = ready(fds, write_fds, timeout)
        if writable:
            for slot in slots:
                slot.pump()
        if self._wake_r in readable_fds:
            self._drain_wakeups()
        if self._listen.fileno() not in readable_fds:
            return False
        pgconn = self._listen.pgconn
        pgconn.consume_input()  # raises OperationalError if the connection broke
        wanted = False
        while (note := pgconn.notifies()) is not None:
            if note.extra.decode() in self.queues:
                wanted = True
        if pgconn.status != psycopg.pq.ConnStatus.OK:
            raise DatabaseUnavailable("the LISTEN connection was closed")
        return wanted

    # -- claiming and dispatching ----------------------------------------------------------------
    def _batch_size(self) -> int:
        return max(1, min(self.max_batch, int(_BATCH_WINDOW / max(self._avg_duration, 1e-6))))

    def _hungry(self, slots: Sequence[Slot]) -> list[Slot]:
        """Slots that take more tasks: those with at most half a batch left, unless the task they run has
        gone on past give_back_after (what waits behind it goes back to its queue; more would too)."""
        half, late = self._batch_size() // 2, time.monotonic() - self.give_back_after
        return [s for s in slots if len(s.tasks) <= half and not (s.tasks and s.current_start <= late)]

    def _claim(self, limit: int, start_now: int) -> list[Task]:
        """Claim up to ``limit`` jobs, queues in priority order; the first ``start_now`` start at once."""
        assert self._conn is not None
        tasks: list[Task] = []
        for queue in self.queues:
            rows = run(self._conn, "claim", {  # through libpq directly: a lone job's latency is mostly round trips
                "queue": queue, "limit": limit - len(tasks), "worker_id": self.worker_id,
                "worker_name": self.name, "start_now": max(0, start_now - len(tasks)),
            })
            rows.sort(key=_PRIORITY_ORDER)
            worker = (self.worker_id,)
            tasks.extend([Task._make(r[:10] + worker) for r in rows])
            if len(tasks) >= limit:
                break
        return tasks

    def _dispatch(self, tasks: list[Task], slots: list[Slot]) -> None:
        # Round robin, idle slots first: the first jobs claimed (those recorded as starting now) become
        # the idle slots' heads, and each slot gets its share of a small claim.
        for i, slot in enumerate(slots):
            chunk = tasks[i::len(slots)]
            if not chunk:
                break
            idle = not slot.busy
            if not slot.dispatch(chunk):
                self._released.extend((t.id, t.claim) for t in chunk)
            elif idle and not slot.announces:  # it starts now
                self._announce(chunk[0])

    def _announce(self, task: Task) -> None:
        """The log line of a job that starts: ``queue: tasks.f(6, 7) (JOB_ID)``."""
        if log.isEnabledFor(logging.INFO):
            log.info("%s: %s (%s)", task.queue, _Call(task), task.id)

    def _next_scheduled(self, now: float) -> float:
        """When the earliest scheduled job of our queues becomes due (monotonic clock)."""
        assert self._conn is not None
        row = self._conn.execute(q("next_scheduled"), {"queues": self.queues}).fetchone()
        if row is None or row[0] is None:
            return now + self.poll_interval
        return now + max(0.0, float(row[0]))

    # -- outcomes --------------------------------------------------------------------------------
    def _collect(self, slots: list[Slot]) -> int:
        """Take outcomes from every slot; replace dead or timed-out children. Returns jobs that ran."""
        ran = 0
        now = time.monotonic()
        for slot in slots:
            ran += self._take(slot, slot.received())
            if isinstance(slot, ChildSlot):
                deadline = slot.deadline()
                if deadline is not None and now > deadline and slot.kill_reason is None:
                    head = slot.tasks[0]
                    slot.kill(timeout_message(head.timeout))
                if slot.dead:
                    ran += self._take(slot, slot.received())  # what it sent before dying
                    ran += self._replace(slot)
        return ran

    def _take(self, slot: Slot, messages: list[Message]) -> int:
        ran = 0
        now = time.monotonic()
        info = log.isEnabledFor(logging.INFO)
        for msg in messages:
            if isinstance(msg, Outcome):
                ran += 1
                self._avg_duration = 0.8 * self._avg_duration + 0.2 * (now - slot.current_start)
                slot.took(msg.id, now)
                if msg.ok:
                    if not msg.recorded:
                        self._finished.append(msg)
                    if info:
                        log.info("Job OK (%s)", msg.id)
                else:
                    self._failed.append(msg)
                    log.info("Job failed (%s): %s: %s", msg.id, msg.error_type, msg.error_message)
                if slot.tasks and not slot.announces and not self._signals:  # the next one started
                    self._announce(slot.tasks[0])
            else:  # ("skipped", [(id, claim), ...]): never started (what give_back took is gone already)
                self._released.extend((t.id, t.claim) for t in slot.drop({(i, c) for i, c in msg[1]}))
        return ran

    def _replace(self, slot: ChildSlot) -> int:
        reason = slot.exit_reason()
        timed_out = slot.kill_reason is not None and slot.kill_reason.startswith("the job exceeded its timeout")
        lost = slot.restart()
        if lost:
            head, rest = lost[0], lost[1:]
            kind = "JobTimeoutError" if timed_out else "WorkHorseKilled"
            text = f"{kind}: {reason}"
            self._failed.append(Outcome(head.id, head.attempt, head.claim, False, None, text, kind, reason,
                                        time.monotonic() - slot.current_start))
            log.warning("Job failed (%s): %s: %s", head.id, kind, reason)
            self._released.extend((t.id, t.claim) for t in rest)
        log.info("Worker %s: replaced its child process (%s)", self.name, reason)
        return 1 if lost else 0

    def _flush(self, slots: Sequence[Slot] = ()) -> bool:
        """Record outcomes: one statement each for finished (sent by the finisher, not waited for),
        failed and released claims, and one marking runs that have been going for a while as started.
        Returns whether that made jobs runnable (dependents promoted, retries and released jobs queued)."""
        conn = self._conn
        assert conn is not None
        woke = 0
        late = time.monotonic() - self.give_back_after
        for slot in slots:
            if slot.waiting and slot.current_start <= late:
                self._released.extend((t.id, t.claim) for t in slot.give_back())
        with translate_errors(self.dsn):
            finisher = self._finisher
            assert finisher is not None
            if finisher.inflight:
                woke += finisher.poll() or 0
            if self._finished and not finisher.inflight:
                finisher.start(self._finished, self.worker_id)
                self._finished = []
            if self._failed:
                failed = self._failed
                ids = [o.id for o in failed]
                row = conn.execute(q("fail_jobs"), {
                    "ids": text_array(ids), "claims": number_array([o.claim for o in failed]),
                    "exc_infos": text_array([o.exc_info or "" for o in failed]),
                    "errors": text_array([_serialize.dumps({
                        "attempt": o.attempt, "worker": self.name, "type": o.error_type,
                        "message": o.error_message, "traceback": o.exc_info}) for o in failed]),
                    "durations": number_array([o.duration for o in failed]),
                    "chunks": number_array(_notify_chunks(ids)), "worker_id": self.worker_id}).fetchone()
                woke += row[2] if row else 0
                self._failed = []
            if self._released:
                row = conn.execute(q("release_claims"), {
                    "ids": text_array([i for i, _ in self._released]),
                    "claims": number_array([c for _, c in self._released]), "worker_id": self.worker_id}).fetchone()
                woke += row[0] if row else 0
                self._released = []
            now = time.monotonic()
            started = [s for s in slots if s.tasks and not s.head_marked and now - s.current_start >= _MARK_AFTER]
            if started:
                conn.execute(q("mark_started"), {
                    "ids": text_array([s.tasks[0].id for s in started]),
                    "claims": number_array([s.tasks[0].claim for s in started]),
                    "elapsed": number_array([now - s.current_start for s in started]), "worker_id": self.worker_id})
                for slot in started:
                    slot.head_marked = True
        return woke > 0

    def _maintenance(self) -> float:
        """Rescue jobs of lost workers, promote deferred jobs whose dependencies finished, prune old
        worker rows. Every statement is safe to run from many workers at once. Returns the seconds until
        the next pass: half the shortest lease of the running workers, this one's included (at least
        0.5 s), so that any worker's jobs are rescued within half its own lease of it running out."""
        assert self._conn is not None
        rescued = self._conn.execute(q("rescue_lost_jobs")).fetchone()
        assert rescued is not None  # one row, always; its last column is NULL when no worker runs
        if rescued[0]:
            log.warning("Worker %s: rescued %d job(s) of lost workers", self.name, rescued[0])
        self._conn.execute(q("promote_deferred"))
        self._conn.execute(q("prune_jobs"))
        self._conn.execute(q("prune_workers"))
        return max(0.5, min(self.lease, rescued[3] or self.lease) / 2)

    # -- stopping --------------------------------------------------------------------------------
    def _cold_stop(self, slots: list[Slot]) -> None:
        """Second signal: kill running jobs and put everything this worker holds back on its queue."""
        for slot in slots:
            if isinstance(slot, ChildSlot) and slot.busy:
                slot.kill("cold shutdown")
                slot.process.join(5)
                self._take(slot, slot.received())
                self._released.extend((t.id, t.claim) for t in slot.restart())

    def _shutdown(self, slots: list[Slot]) -> None:
        for slot in slots:  # only after an error: a normal stop finds every slot idle
            if isinstance(slot, ChildSlot) and slot.busy:
                slot.kill("worker stopping")
                slot.process.join(5)
        for slot in slots:  # outcomes that arrived (or, in process, were produced) before the stop
            self._take(slot, slot.received())
        self._released.extend((t.id, t.claim) for s in slots for t in s.tasks)
        for slot in slots:
            slot.close()
        if self._conn is not None and not self._conn.closed and self.worker_id is not None:
            try:
                self._flush()
                while self._finisher is not None and (self._finisher.inflight or self._finished):
                    self._finisher.poll(block=True)
                    self._flush()
                self._conn.execute(q("deregister_worker"), {"worker_id": self.worker_id})
            except (DatabaseUnavailable, psycopg.Error) as exc:
                log.error("Worker %s: could not record its last outcomes (%s); the lease rescues its jobs",
                          self.name, exc)
        self._close_connections()
        if self.worker_id is not None:
            log.info("Worker %s: stopped", self.name)


class SimpleWorker(Worker):
    """A worker that runs jobs in its own process, one at a time, without child processes: for tests and
    debuggers (breakpoints in job code work). Same arguments as :class:`Worker`."""

    _in_process = True


def _version() -> str:
    from .. import __version__

    return __version__
