"""The worker loop: claim jobs, hand them to slots, collect outcomes, sleep on LISTEN.

One process, one thread, one ``poll`` (_db.ready): on the LISTEN connection (new work), on each child's pipe
(outcomes) and process sentinel (a crash), and on a self-pipe for signals. Claims are batched: a worker
takes as many jobs as fill about 50 ms of work per slot. Outcomes are written by _outcomes, maintenance
(rescue, pruning) runs as the services of _maintenance, one bounded batch per turn of the loop.
"""

from __future__ import annotations

import logging
import math
import operator
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg

from .. import _config, _store
from .._db import connect, readable, ready, translate_errors
from .._notify import check_queue_name
from .._rq import WORKER_OPTIONS, refuse
from ..connections import database
from ..exceptions import ConfigurationError, DatabaseUnavailable
from ._aslot import AsyncSlot
from ._clock import AbortJob
from ._collect import Collecting
from ._control import CANCEL_GRACE, Cancels, install_watch
from ._execute import exception_handlers as _exception_handlers
from ._hooks import JobHooks, WorkerHooks, attach_hooks, hooks_started, hooks_stopped, load_hooks
from ._inspect import WorkerInspection
from ._lease import Lease, default_margin
from ._maintenance import Maintenance
from ._messages import ExceptionHandler
from ._outcomes import Outcomes
from ._queues import ClaimOrder, DequeueStrategy
from ._scheduler import Scheduler, worker_schedules
from ._slots import CANCEL_SIGNAL, ChildSlot, InProcessSlot, Slot

log = logging.getLogger("pgqueue.worker")

_BATCH_WINDOW = 0.05  # seconds of work a slot is given per claim
_MARK_AFTER = 0.1  # a run still going after this long is recorded as started (it counts as an attempt)
_PRIORITY_ORDER = operator.attrgetter("priority", "position")
_RECONNECT = (0.25, 1.0)  # first and longest wait between reconnection attempts (seconds, before jitter)


class Worker(Collecting, WorkerInspection):
    """Serves ``queues`` in priority order (all runnable work on the first before the second, as in RQ),
    then job priority, then FIFO.

    ``concurrency`` jobs run at once, each in a long-lived child process. ``lease`` is how long this
    worker's heartbeat keeps its jobs its own; ``poll_interval`` is the fallback poll when no notification
    comes (default 5 s), or without LISTEN the poll (default 1 s). ``allow_modules`` restricts which job
    functions may be imported (module prefixes). ``grace`` bounds a warm shutdown: jobs still running that
    many seconds after the first stop signal are stopped and put back on their queue, as a second signal
    would (default: wait for them, as RQ does). ``exception_handlers`` are RQ's: called in the job's
    process when a job raises; ``dequeue_strategy`` is RQ's too (see docs/cli.md).

    ``listen``: sleep on LISTEN for new jobs (the default), or only poll (``False``; the default in
    transaction-pooling mode without ``listen_dsn``). ``listen_dsn``: a direct URL of the same database to
    LISTEN on, while everything else goes through ``dsn`` (default: ``PGQUEUE_LISTEN_DATABASE_URL``).

    ``async_concurrency``: how many ``async def`` jobs run at once in the worker's event-loop process (one
    process, started when the first async job comes; default 100). 0 runs each async job in a job process
    like a sync job, one at a time on an event loop of its own. See docs/async.md.

    ``with_scheduler``: also enqueue periodic jobs (docs/scheduling.md): those of ``schedules`` (module
    names, modules or Schedule objects; loaded here), else every ``@periodic`` declared in the process.

    ``dsn`` or RQ's ``connection``: a URL or a :class:`pgqueue.Connection`; with neither, the database of the
    first queue given as a ``Queue``, as RQ's worker takes its queues' connection. RQ's other options are
    accepted at their defaults only (pgqueue._rq says why).
    ``hooks``: :class:`pgqueue.Hooks` objects (or classes, or their dotted paths) called around each job and
    at the worker's start and stop (docs/observability.md). ``metrics_port``: serve Prometheus metrics of
    this worker's runs on this port (``pgqueue[metrics]``; 0: any free port), through pgqueue.metrics' hooks.
    ``cancel_grace``: seconds a running job that was canceled may take to stop once told (JobCanceled is
    raised in it) before its process is killed (default 3; docs/job-control.md).
    """

    _in_process = False

    def __init__(self, queues: Iterable[Any] | str | None = None, dsn: Any = None, *,
                 name: str | None = None, concurrency: int = 1, lease: float = 30.0,
                 poll_interval: float | None = None, allow_modules: Sequence[str] = (), max_batch: int = 1000,
                 grace: float | None = None, give_back_after: float = 0.1, lease_margin: float | None = None,
                 listen: bool | None = None, listen_dsn: str | None = None,
                 exception_handlers: Sequence[ExceptionHandler | str] = (),
                 dequeue_strategy: DequeueStrategy | str = DequeueStrategy.DEFAULT,
                 with_scheduler: bool = False, schedules: Any = None, async_concurrency: int = 100,
                 hooks: Sequence[Any] = (), metrics_port: int | None = None, cancel_grace: float = CANCEL_GRACE,
                 connection: Any = None, **rq_options: Any) -> None:
        refuse(type(self).__name__, rq_options, WORKER_OPTIONS)
        if isinstance(queues, str) or hasattr(queues, "name"):
            queues = [queues]
        queues = None if queues is None else list(queues)
        dsn = database(dsn, connection, where=f"{type(self).__name__}()") or _queues_dsn(queues)
        names = [getattr(q_, "name", q_) for q_ in (queues or ["default"])]
        if not names:
            raise ValueError("a worker needs at least one queue")
        for n in names:
            check_queue_name(n)
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be a whole number >= 1, not {concurrency!r}")
        if isinstance(async_concurrency, bool) or not isinstance(async_concurrency, int) or async_concurrency < 0:
            raise ValueError(f"async_concurrency must be a whole number >= 0, not {async_concurrency!r}")
        self.async_concurrency = async_concurrency
        self._async_slot: AsyncSlot | None = None  # started when the first async job comes
        self._async_funcs: set[str] = set()  # the functions found to be coroutine functions: sent there directly
        self.listen, self.listen_dsn = _listen_mode(listen, listen_dsn)
        self.with_scheduler = bool(with_scheduler)
        self.schedules = worker_schedules(self.with_scheduler, schedules)  # raises for a bad declaration
        if poll_interval is None:
            poll_interval = 5.0 if self.listen else 1.0
        for option, value, least in (("lease", lease, 0.0), ("poll_interval", poll_interval, 0.0),
                                     ("give_back_after", give_back_after, None), ("grace", grace, None),
                                     ("lease_margin", lease_margin, 0.0), ("cancel_grace", cancel_grace, None)):
            if value is None and option in ("grace", "lease_margin"):
                continue
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 or value == least:
                raise ValueError(f"{option} must be a finite number of seconds "
                                 f"{'> 0' if least is not None else '>= 0'}, not {value!r}")
        self.queues: list[str] = list(dict.fromkeys(names))
        self.dsn = dsn
        self.name = name or f"{socket.gethostname()}.{os.getpid()}"
        self.concurrency = concurrency
        self.lease = float(lease)
        # The fence stops this worker's running jobs when its heartbeat could not be renewed for
        # lease - lease_margin seconds: before any other worker may rescue them (docs/guarantees.md).
        self.lease_margin = default_margin(self.lease) if lease_margin is None else float(lease_margin)
        if self.lease_margin >= self.lease:
            raise ValueError(f"lease_margin ({self.lease_margin:g} s) must be shorter than the lease "
                             f"({self.lease:g} s)")
        self.poll_interval = float(poll_interval)
        self.allow_modules = tuple(allow_modules)
        self.max_batch = max(1, max_batch)
        self.grace = grace
        self.cancel_grace = float(cancel_grace)
        self._cancels = Cancels(self.cancel_grace)
        # Claims are batched, so jobs wait in a slot behind the one running. Once it has run this long, the
        # jobs not started go back to their queue, no attempt used: what comes first by the queue order
        # and arrived meanwhile is claimed before them, and other workers may take them.
        self.give_back_after = float(give_back_after)
        # RQ's exception handlers, called in the job's process when it raises: callables or dotted paths.
        self.exception_handlers = _exception_handlers(exception_handlers)
        self.dequeue_strategy = DequeueStrategy.of(dequeue_strategy)  # RQ's: default, round_robin or random
        self.hooks: list[Any] = load_hooks(hooks, metrics_port)  # pgqueue.hooks; children get them when forked
        self._hooks: WorkerHooks | None = None  # their supervisor side, while work() runs
        self._order = ClaimOrder(self.name, self.queues, self.dequeue_strategy)
        self._stop_deadline: float | None = None
        self.worker_id: int | None = None
        self._signals = 0
        self._wake_r = self._wake_w = -1
        self._avg_duration = 0.01
        self._outcomes = Outcomes(self.name)
        self._conn: psycopg.Connection[Any] | None = None
        self._listen: psycopg.Connection[Any] | None = None
        self._lease: Lease | None = None
        self._slots: list[Slot] = []
        # Held while jobs are handed to child processes or a process is replaced, and by the fence while it
        # stops running jobs: a job is never handed over after the fence has looked.
        self._fence_lock = threading.Lock()

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
    def work(self, burst: bool = False, max_jobs: int | None = None,
             dequeue_strategy: DequeueStrategy | str | None = None, with_scheduler: bool = False) -> bool:
        """Serve jobs until stopped (or, with ``burst``, until nothing is runnable; with ``max_jobs``,
        after that many jobs). ``dequeue_strategy`` (RQ's place for it) replaces the worker's, and
        ``with_scheduler=True`` (RQ's place for it too) does what ``Worker(with_scheduler=True)`` does. Returns
        whether any job ran."""
        if max_jobs is not None and (isinstance(max_jobs, bool) or not isinstance(max_jobs, int) or max_jobs < 1):
            raise ValueError(f"max_jobs must be a whole number >= 1 (or None), not {max_jobs!r}")
        if dequeue_strategy is not None:
            self.dequeue_strategy = self._order.strategy = DequeueStrategy.of(dequeue_strategy)
        if with_scheduler and not self.with_scheduler:
            self.with_scheduler, self.schedules = True, worker_schedules(True, None)
        self._signals = 0
        self._stop_deadline = None
        self.worker_id = None  # each run registers afresh: a stopped registration's jobs are rescued
        self._row = None  # report this run's own statistics, not a row read before
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        in_main = threading.current_thread() is threading.main_thread()
        previous = {}
        if in_main:
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self._on_signal)
        # Children are forked before any connection exists, so they share no socket with us.
        slots = self._slots = self._make_slots()
        self._outcomes = Outcomes(self.name)
        self._maintenance = Maintenance(self.name, self.lease)
        watch = self._services(slots, in_main)
        if self._in_process and not in_main:
            log.warning("Worker %s: a SimpleWorker outside the main thread cannot stop a job: neither its timeout, "
                        "a lost lease nor a cancel interrupts it (run it in the main thread, or use Worker)", self.name)
        ran = 0
        try:
            self._connect()
            hooks_started(self._hooks)
            log.info("Worker %s started with PID %d, version %s", self.name, os.getpid(), _version())
            log.info("*** Listening on %s...", ", ".join(self.queues))
            if self.with_scheduler:
                log.info("Worker %s: scheduler: %s", self.name, ", ".join(s.name for s in self.schedules) or
                         "no periodic job declared (pgqueue worker --with-scheduler --schedules MODULE)")
            ran = self._loop(slots, burst, max_jobs)
        except AbortJob:
            log.warning("Worker %s: stopped at once; requeueing the job it was running", self.name)
        finally:
            self._shutdown(slots)
            hooks_stopped(self._hooks)
            if watch is not None:
                watch[0].stop()
                signal.signal(CANCEL_SIGNAL, watch[1])
            if in_main:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1
        return ran > 0

    def _services(self, slots: list[Slot], in_main: bool) -> tuple[Any, Any] | None:
        """This run's hooks, cancels (for a SimpleWorker in the main thread, a thread that hears of them while
        its job runs: returned, to be stopped) and scheduler."""
        self._hooks = attach_hooks(self, self._outcomes, self._maintenance.rescuer)  # None: none runs here
        self._cancels = Cancels(self.cancel_grace)
        if self.schedules:  # only with_scheduler: a worker without it does nothing new
            self._maintenance.services.append(Scheduler(self.name, self.schedules, self.dsn))
        slot = slots[0]
        return install_watch(self, slot, self._cancels) if isinstance(slot, InProcessSlot) and in_main else None

    def _make_slots(self) -> list[Slot]:
        hooks = JobHooks.of(self.hooks)  # None: no hook of ours is called in the job's process
        if self._in_process:
            return [InProcessSlot(self.dsn, self.name, self.allow_modules, lambda: self._signals > 0, self._announce,
                                  self.give_back_after, self.exception_handlers, hooks)]
        self._async_slot = None
        return [ChildSlot(i, self.dsn, self.name, self.allow_modules, self.exception_handlers,
                          hand_over=self.async_concurrency > 0, hooks=hooks) for i in range(self.concurrency)]

    def _connect(self) -> None:
        self._conn = connect(self.dsn, role=f"{self.name}:claim")
        # A queue's row counts swing faster than its statistics follow: after a burst of enqueues the
        # planner may still believe the queue nearly empty and claim by sorting every runnable row, or
        # join claimed rows back by a sequential scan. And a generic plan cannot see a LIMIT's value: it
        # guesses a tenth of the table and joins the claimed rows back by hashing the whole table (33 ms
        # for 100 jobs out of 20,000). Without sorts, sequential scans, hash and merge joins, the claim
        # walks jobs_claim_idx in order and stops at its LIMIT, and every statement reaches its rows by
        # index, whatever the statistics say. (JIT is off, so the cost penalty these settings add to a
        # plan that has no other way is harmless.)
        _store.worker_plan_settings(self._conn)  # nothing in transaction-pooling mode (see worker_plan_local)
        if self.listen:  # direct: a session of its own to LISTEN in, never a pooler's
            self._listen = connect(self.listen_dsn or self.dsn, role=f"{self.name}:listen", pooled=False)
        with translate_errors(self.dsn):
            self._outcomes.open(self.dsn)
            if self._listen is not None:
                _store.listen(self._listen, "control")
                _store.listen(self._listen, "jobs")
            if self.worker_id is None:
                if not self.listen:
                    log.info("Worker %s: not listening for new jobs (%s); polling every %gs", self.name,
                             "transaction pooling" if _config.transaction_pooling() else "listen=False",
                             self.poll_interval)
                _store.check_revision(self._conn)
                sent = time.monotonic()
                self.worker_id = _store.register_worker(
                    self._conn, name=self.name, hostname=socket.gethostname(), pid=os.getpid(),
                    queues=self.queues, concurrency=self.concurrency, lease=self.lease)
                self._lease = Lease(self.dsn, self.name, self.worker_id, self.lease, self.lease_margin, sent,
                                    self._on_lease_lost, lambda: self._outcomes.totals).start()

    def _close_connections(self) -> None:
        self._outcomes.close()
        for conn in (self._conn, self._listen):
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # closing a broken connection must not hide the real error
                    pass
        self._conn = self._listen = None

    def _on_lease_lost(self, silent: float) -> None:
        """From the fence thread: stop every running job (see _lease)."""
        reason = (f"lease lost: the worker could not renew its heartbeat for {silent:.1f} s (lease {self.lease:g} s), "
                  "so it stopped the job before another worker could rescue it")
        with self._fence_lock:
            for slot in self._slots:
                slot.fence(reason)
        self.request_wakeup()

    def request_wakeup(self) -> None:
        if self._wake_w >= 0:
            try:
                os.write(self._wake_w, b"w")
            except OSError:
                pass

    def _loop(self, slots: list[Slot], burst: bool, max_jobs: int | None) -> int:
        self._ran = self._claimed = 0
        self._want_claim = True
        self._next_poll = time.monotonic() + self.poll_interval
        self._order.stale = True  # read the pauses before the first claim
        backoff = 0.0
        while True:
            try:
                if backoff:
                    self._connect()
                    log.info("Worker %s: reconnected to the database", self.name)
                    backoff, self._want_claim = 0.0, True
                    self._order.stale = True  # pauses may have changed, unheard, meanwhile
                if self._turn(slots, burst, max_jobs):
                    return self._ran
            except (DatabaseUnavailable, psycopg.Error) as exc:
                backoff = min(max(backoff * 2, _RECONNECT[0]), _RECONNECT[1])
                wait = backoff * random.uniform(0.8, 1.2)  # jitter: a fleet does not reconnect in step
                broken = isinstance(exc, (DatabaseUnavailable, psycopg.OperationalError))
                log.error("Worker %s: %s (%s); reconnecting in %.2fs", self.name,
                          "database connection lost" if broken else "database error",
                          str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, wait)
                self._close_connections()
                self._sleep(wait)
                if self._signals >= 2:
                    return self._ran

    def _turn(self, slots: list[Slot], burst: bool, max_jobs: int | None) -> bool:
        """One turn of the loop; True once the worker is done."""
        self._timers()
        self._ran += self._collect(slots)
        if self._cancels.asked or self._cancels.stopping:
            self._cancels.apply(slots, self._outcomes)
        self._stopping(slots)
        if self._flush(slots):
            self._want_claim = True
        if self._claim_round(slots, max_jobs):
            return False  # in-process slots have outcomes ready; children have work
        idle = not any(s.busy for s in slots) and not self._outcomes.pending
        if idle and (self._signals or (burst and not self._want_claim and self._maintenance.settled(time.monotonic()))
                     or (max_jobs is not None and self._claimed >= max_jobs)):
            return True
        if self._wait(slots, self._timeout(slots)):
            self._want_claim = True
        return False

    def _timers(self) -> None:
        """A maintenance batch, the fallback poll: whichever is due."""
        assert self._conn is not None
        now = time.monotonic()
        if self._maintenance.next_due() <= now:
            self._maintenance.tick(self._conn, now)
            self._want_claim = True
        if now >= self._next_poll:
            self._next_poll, self._want_claim = now + self.poll_interval, True
            self._order.stale = True  # the fallback poll reads the pauses again too
            self._cancels.check(self._conn, self.worker_id, self._slots)  # and the cancels of the jobs held
        if self._order.stale:  # a queue may have become claimable again; a pause's end: read them then
            more, ends_in = self._order.read_pauses(self._conn)
            self._want_claim = self._want_claim or more
            if ends_in is not None:
                self._next_poll = min(self._next_poll, now + ends_in)

    def _stopping(self, slots: list[Slot]) -> None:
        if self._stop_deadline is not None and time.monotonic() >= self._stop_deadline and self._signals < 2:
            log.warning("Worker %s: grace period of %gs over, stopping running jobs", self.name, self.grace)
            self._signals = 2
        if self._signals >= 2:
            self._cold_stop(slots)
        if self._signals:
            for slot in slots:
                slot.request_stop()

    def _timeout(self, slots: list[Slot]) -> float:
        """How long the loop may sleep: until the next timer, deadline of a slot, or stop deadline."""
        deadlines = [self._next_poll, self._maintenance.next_due()]
        deadlines += [d for d in (s.deadline() for s in slots) if d is not None]
        deadlines += [s.current_start + _MARK_AFTER for s in slots if s.head_running and not s.head_marked]
        deadlines += [s.current_start + self.give_back_after for s in slots if s.waiting]
        if self._cancels.stopping:
            deadlines += self._cancels.deadlines()
        if self._stop_deadline is not None:
            deadlines.append(self._stop_deadline)
        if self._want_claim and not self._signals and self._hungry(slots) and self._lease and self._lease.held:
            return 0.0
        return max(0.0, min(deadlines) - time.monotonic())

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
        fds = [self._wake_r] if self._listen is None else [self._wake_r, self._listen.fileno()]
        finisher = self._outcomes.finisher
        if finisher is not None and finisher.inflight:
            fds.append(finisher.fileno())
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
        if self._listen is None or self._listen.fileno() not in readable_fds:
            return False
        pgconn = self._listen.pgconn
        pgconn.consume_input()  # raises OperationalError if the connection broke
        wanted = False
        while (note := pgconn.notifies()) is not None:
            if note.relname == b"pgqueue_control":  # a cancel; or a pause began or ended: read them before claiming
                if not self._cancels.heard(note.extra.decode(), self.worker_id):
                    self._order.heard(note.extra.decode())
            elif note.extra.decode() in self.queues:
                wanted = True
        if pgconn.status != psycopg.pq.ConnStatus.OK:
            raise DatabaseUnavailable("the LISTEN connection was closed")
        return wanted

    # -- outcomes (collected by Collecting, pgqueue/worker/_collect.py) -------------------------
    def _flush(self, slots: Sequence[Slot] = ()) -> bool:
        """Give back what waits behind long jobs, and write what is pending (see Outcomes.flush). Returns
        whether that made jobs runnable (dependents promoted, retries and released jobs queued)."""
        assert self._conn is not None
        late = time.monotonic() - self.give_back_after
        for slot in slots:
            if slot.waiting and slot.current_start <= late:
                self._outcomes.release([(t.id, t.claim) for t in slot.give_back()])
        now = time.monotonic()
        started = [s for s in slots if s.head_running and not s.head_marked and now - s.current_start >= _MARK_AFTER]
        runs = [(s.tasks[0].id, s.tasks[0].claim, now - s.current_start) for s in started]
        if self._async_slot is not None:
            runs += self._async_slot.unmarked(now, _MARK_AFTER)
        with translate_errors(self.dsn):
            woke = self._outcomes.flush(self._conn, self.worker_id, runs)
        for slot in started:
            slot.head_marked = True
        return woke > 0

    # -- stopping --------------------------------------------------------------------------------
    def _cold_stop(self, slots: list[Slot]) -> None:
        """Second signal: kill running jobs and put everything this worker holds back on its queue."""
        for slot in slots:
            if isinstance(slot, ChildSlot) and slot.busy:
                slot.kill("cold shutdown")
                slot.process.join(5)
                self._take(slot, slot.received())
                self._callback_cut_short(slot.callback, slot.tasks, "WorkerShutdown", "cold shutdown")
                with self._fence_lock:
                    self._outcomes.release([(t.id, t.claim) for t in slot.restart()])

    def _shutdown(self, slots: list[Slot]) -> None:
        for slot in slots:  # only after an error: a normal stop finds every slot idle
            if isinstance(slot, ChildSlot) and slot.busy:
                slot.kill("worker stopping")
                slot.process.join(5)
        for slot in slots:  # outcomes that arrived (or, in process, were produced) before the stop
            self._take(slot, slot.received())
            self._callback_cut_short(slot.callback, slot.tasks, "WorkerShutdown", "worker stopping")
        self._outcomes.release([(t.id, t.claim) for s in slots for t in s.tasks])
        for slot in slots:
            slot.close()
        if self._conn is not None and not self._conn.closed and self.worker_id is not None:
            try:
                self._flush()
                finisher = self._outcomes.finisher
                while finisher is not None and (finisher.inflight or self._outcomes.finished):
                    finisher.poll(block=True)
                    self._flush()
                self._stop_lease()
                _store.deregister_worker(self._conn, self.worker_id, self._outcomes.totals)
            except (DatabaseUnavailable, psycopg.Error) as exc:
                log.error("Worker %s: could not record its last outcomes (%s); the lease rescues its jobs",
                          self.name, exc)
        self._stop_lease()
        self._close_connections()
        if self.worker_id is not None:
            log.info("Worker %s: stopped", self.name)


    def _stop_lease(self) -> None:
        if self._lease is not None:
            self._lease.stop()
            self._lease = None


class SimpleWorker(Worker):
    """A worker that runs jobs in its own process, one at a time, without child processes: for tests and
    debuggers (breakpoints in job code work). Same arguments as :class:`Worker`."""

    _in_process = True


def _queues_dsn(queues: Iterable[Any] | None) -> str | None:
    """The database of the first of ``queues`` that is a Queue with one (RQ's worker takes its queues')."""
    return next((q.dsn for q in queues or () if isinstance(getattr(q, "dsn", None), str)), None)


def _listen_mode(listen: bool | None, listen_dsn: str | None) -> tuple[bool, str | None]:
    """Whether a worker LISTENs, and where: on ``listen_dsn`` (else PGQUEUE_LISTEN_DATABASE_URL) if there
    is one, else on its own DSN, which in transaction-pooling mode leads to the pooler: no LISTEN there."""
    listen_dsn = listen_dsn or _config.listen_dsn()
    pooling = _config.transaction_pooling()
    if listen is None:
        listen = listen_dsn is not None or not pooling
    elif listen and pooling and listen_dsn is None:
        raise ConfigurationError("a worker behind a transaction pooler cannot LISTEN through it: give it a direct "
                                 "URL to listen on (listen_dsn=, --listen-dsn or PGQUEUE_LISTEN_DATABASE_URL), "
                                 "or let it poll")
    return listen, listen_dsn if listen else None


def _version() -> str:
    from .. import __version__

    return __version__
