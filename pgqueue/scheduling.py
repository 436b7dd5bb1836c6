"""Periodic jobs: schedules declared in code (``@periodic`` on a job function, or :class:`Schedule` objects
in a list), run by the workers started with ``--with-scheduler`` (pgqueue/worker/_scheduler.py), and
listed by ``pgqueue schedules``.

Every error in a declaration is raised where it is written (at import time for ``@periodic``): an invalid
cron expression or timezone, an option enqueue does not take, a function no worker could import, two
different schedules under one name. See docs/scheduling.md.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar
from zoneinfo import ZoneInfo

from ._cron import Cron
from ._db import shared_connection, translate_errors
from ._notify import check_queue_name
from ._options import func_name_of
from ._store import schedules as _store_schedules
from .exceptions import ConfigurationError

if TYPE_CHECKING:
    import psycopg

    from .job import Job

F = TypeVar("F", bound=Callable[..., Any])
MISSED = ("once", "skip")
MAX_NAME_CHARS = 200  # a tick's job id is NAME@TICK, and job ids are at most 1,000 bytes
#: Options of enqueue a schedule does not take, and why.
_REFUSED = {
    "job_id": "each tick's job gets its own id, NAME@TICK",
    "depends_on": "a tick's job cannot wait for other jobs",
    "unique_key": "pass overlap=False to enqueue nothing while the previous run is waiting or running",
    "scheduled_at": "the schedule's expression says when its jobs run",
    "scheduled_in": "the schedule's expression says when its jobs run",
    "connection": "the scheduler enqueues each tick in its own transaction",
}
#: Job statuses during which overlap=False holds a tick back.
LIVE_STATUSES = frozenset({"scheduled", "queued", "deferred", "running"})
#: A scheduler renews its schedules' rows this often (seconds); a row not renewed for STALE_AFTER seconds
#: is one that no running scheduler declares.
REFRESH = 60.0
STALE_AFTER = 3 * REFRESH


class Schedule:
    """``func(*args, **kwargs)`` enqueued on ``queue`` at each tick of the cron ``expression`` in
    ``timezone`` (an IANA name; default UTC).

    ``func`` is a module-level function or its dotted path. ``name`` (default: the function's dotted path)
    identifies the schedule in the database: give one to schedule a function more than once.
    ``missed``: after a time without any scheduler, ``"once"`` (the default) enqueues one job for the ticks
    missed, ``"skip"`` none (the next tick runs as usual). ``overlap=False`` enqueues nothing at a tick
    while the previous tick's job is still scheduled, queued, deferred or running. Other keywords are
    enqueue's options (``job_timeout``, ``retry``, ``result_ttl``, ``priority``, ``meta``, ...).
    """

    def __init__(self, expression: str, func: Callable[..., Any] | str, *, name: str | None = None,
                 queue: Any = "default", timezone: str | ZoneInfo = "UTC", args: Sequence[Any] = (),
                 kwargs: Mapping[str, Any] | None = None, missed: str = "once", overlap: bool = True,
                 **options: Any) -> None:
        label = name if isinstance(name, str) else getattr(func, "__qualname__", func)
        try:
            _refuse_swapped(expression, func)
            self.func_name = func_name_of(func)
            self.name = _check_name(self.func_name if name is None else name)
            label = self.name
            self.cron = Cron(expression, timezone, hash_id=self.name)
            self.queue: str = check_queue_name(getattr(queue, "name", queue))
            self.missed = _check_missed(missed)
            if not isinstance(overlap, bool):
                raise TypeError(f"overlap must be True or False, not {overlap!r}")
            self.overlap = overlap
            _check_options(options)
            from .queue import Queue

            data = Queue.prepare_data(self.func_name, args, dict(kwargs) if kwargs else None, **options)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"schedule {label!r}: {exc}") from None
        self.func = None if isinstance(func, str) else func
        self.module: str | None = None if isinstance(func, str) else getattr(func, "__module__", None)
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.options = dict(options)
        # What makes two declarations the same schedule (a module imported again declares it again).
        self._key = (self.name, self.cron.expression, self.cron.timezone, self.func_name, self.queue, self.missed,
                     self.overlap, sorted((k, repr(v)) for k, v in vars(data).items()))

    @property
    def expression(self) -> str:
        return self.cron.expression

    @property
    def timezone(self) -> str:
        return self.cron.timezone

    def __repr__(self) -> str:
        return (f"Schedule({self.expression!r}, {self.func_name!r}, name={self.name!r}, queue={self.queue!r}, "
                f"timezone={self.timezone!r})")

    def same_as(self, other: Schedule) -> bool:
        """Whether ``other`` declares the same schedule (name, expression, function, arguments, options)."""
        return self._key == other._key

    def next_run(self, after: datetime | None = None) -> datetime:
        """The first tick after ``after`` (default: this machine's clock; schedulers use the database's)."""
        return self.cron.next_after(after or datetime.now(timezone.utc))

    def job_id(self, tick: datetime) -> str:
        """The id of the job of ``tick``: ``NAME@2026-01-01T12:00:00Z``. The primary key of pgqueue.jobs
        is then a second fence against a tick enqueued twice."""
        return f"{self.name}@{tick.astimezone(timezone.utc):%Y-%m-%dT%H:%M:%SZ}"

    def enqueue_tick(self, conn: psycopg.Connection[Any], tick: datetime, dsn: str | None = None) -> Job:
        """Enqueue the job of ``tick`` in ``conn``'s open transaction (the scheduler's); it is queued at
        once, with ``scheduled_at`` the tick."""
        from .queue import Queue

        return Queue(self.queue, dsn).enqueue_call(self.func_name, args=self.args, kwargs=self.kwargs,
                                                    connection=conn, job_id=self.job_id(tick), scheduled_at=tick,
                                                    **self.options)

    def definition(self) -> _store_schedules.Definition:
        return _store_schedules.Definition(self.name, self.expression, self.timezone, self.func_name, self.queue)

    def check_importable(self) -> None:
        """For a schedule given a function: ConfigurationError unless a worker importing its dotted path
        gets that function. A dotted path given as a str is not imported here: a tick's job whose function
        does not import fails as any such job does, and the schedule goes on."""
        if self.func is None:
            return
        from .worker._execute import import_func

        try:
            found = import_func(self.func_name)
        except Exception as exc:  # whatever importing it raises, a worker would fail the same way
            raise ConfigurationError(f"schedule {self.name!r}: its function {self.func_name} cannot be imported by "
                                     f"that path ({type(exc).__name__}: {exc}); define it at module level") from None
        if inspect.unwrap(found) is not inspect.unwrap(self.func):
            raise ConfigurationError(f"schedule {self.name!r}: importing {self.func_name} gives {found!r}, not the "
                                     "function declared; define the job function at module level under its own name")


def _refuse_swapped(expression: object, func: object) -> None:
    if isinstance(func, str) and isinstance(expression, str) and " " in func.strip() and " " not in expression:
        raise ValueError(f"Schedule takes the cron expression first, then the function: "
                         f"Schedule({func!r}, {expression!r})")


def _check_options(options: Mapping[str, Any]) -> None:
    """TypeError for an option a schedule does not take: one enqueue does not know, or one of _REFUSED."""
    import difflib

    from .queue import _PREPARE_OPTIONS

    for option in sorted(options):
        if option in _REFUSED:
            raise TypeError(f"a schedule does not take {option}=: {_REFUSED[option]}")
        if option not in _PREPARE_OPTIONS:
            known = sorted(_PREPARE_OPTIONS - set(_REFUSED))
            close = difflib.get_close_matches(option, known, 1)
            hint = f"did you mean {close[0]}=? " if close else ""
            raise TypeError(f"unknown option {option}=: {hint}a schedule takes enqueue's options ({', '.join(known)})")


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a schedule's name must be a non-empty str, not {name!r}")
    if "\x00" in name or len(name) > MAX_NAME_CHARS:
        raise ValueError(f"a schedule's name must be at most {MAX_NAME_CHARS} characters, without NUL")
    return name


def _check_missed(missed: object) -> str:
    if missed not in MISSED:
        raise ValueError(f"missed={missed!r}: pass missed='once' (one job for the ticks missed while no scheduler "
                         "ran; the default) or missed='skip' (none: the next tick runs as usual)")
    return str(missed)


#: The schedules declared with @periodic in this process, by name.
_declared: dict[str, Schedule] = {}


def _register(schedule: Schedule, found: dict[str, Schedule], error: type[Exception] = ValueError) -> None:
    """Add ``schedule`` to ``found``, refusing a different schedule of the same name."""
    other = found.get(schedule.name)
    if other is not None and not other.same_as(schedule):
        raise error(f"two different schedules are named {schedule.name!r} ({other!r} and {schedule!r}): "
                    "give each its own name=")
    found[schedule.name] = schedule


def periodic(expression: str, *, queue: Any = "default", timezone: str | ZoneInfo = "UTC",
             name: str | None = None, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
             missed: str = "once", overlap: bool = True, **options: Any) -> Callable[[F], F]:
    """Declare a module-level job function a periodic job: enqueued on ``queue`` at each tick of the cron
    ``expression`` by the workers started with ``--with-scheduler --schedules`` its module. Takes
    :class:`Schedule`'s arguments; returns the function unchanged."""
    def decorate(func: F) -> F:
        _register(Schedule(expression, func, name=name, queue=queue, timezone=timezone, args=args, kwargs=kwargs,
                           missed=missed, overlap=overlap, **options), _declared)
        return func

    return decorate


def declared() -> list[Schedule]:
    """Every schedule declared with @periodic in this process so far, by name."""
    return [_declared[name] for name in sorted(_declared)]


def _from_module(module: ModuleType) -> list[Schedule]:
    found = [s for s in declared() if s.module == module.__name__]
    listed = getattr(module, "schedules", None)
    if listed is None:
        return found
    if isinstance(listed, Schedule) or not isinstance(listed, Iterable) or isinstance(listed, (str, bytes)):
        raise ConfigurationError(f"{module.__name__}.schedules must be a list of pgqueue.Schedule, "
                                 f"not {type(listed).__name__}")
    for item in listed:
        if not isinstance(item, Schedule):
            raise ConfigurationError(f"{module.__name__}.schedules holds {item!r}, which is not a pgqueue.Schedule")
        found.append(item)
    return found


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except Exception as exc:  # an invalid @periodic raises here too: say which module
        first = (str(exc).strip().splitlines() or [""])[0]
        kind = "" if isinstance(exc, (TypeError, ValueError)) else f"{type(exc).__name__}: "
        raise ConfigurationError(f"cannot load schedules from {name!r}: {kind}{first}") from None


def load_schedules(*sources: str | ModuleType | Schedule | Iterable[Schedule]) -> list[Schedule]:
    """The schedules of ``sources``, by name: a module (or its name, imported) gives its @periodic
    functions and its ``schedules`` list; a Schedule, or a list of them, gives itself. ConfigurationError
    for a module that does not import, two different schedules under one name, or a function declared
    that its dotted path does not lead back to."""
    found: dict[str, Schedule] = {}
    for source in sources:
        if isinstance(source, str):
            source = _import(source)
        if isinstance(source, ModuleType):
            items: Iterable[Schedule] = _from_module(source)
        elif isinstance(source, Schedule):
            items = [source]
        elif isinstance(source, Iterable):
            items = list(source)
        else:
            raise ConfigurationError(f"schedules come from modules and Schedule objects, not {source!r}")
        for schedule in items:
            if not isinstance(schedule, Schedule):
                raise ConfigurationError(f"{schedule!r} is not a pgqueue.Schedule")
            _register(schedule, found, ConfigurationError)
    for schedule in found.values():
        schedule.check_importable()
    return [found[name] for name in sorted(found)]


class ScheduleInfo(NamedTuple):
    """A schedule as ``pgqueue schedules`` shows it. ``in_database``: whether a scheduler wrote its row
    (a schedule only declared, from ``--schedules``, has not been); ``declared``: whether a running
    scheduler declares it (a scheduler renews its row every minute). ``next_run``, ``last_run`` (the
    tick of its last job) and ``updated_at`` are instants in UTC."""
    name: str
    expression: str
    timezone: str
    func_name: str
    queue: str
    next_run: datetime | None
    last_run: datetime | None
    last_job_id: str | None
    last_job_status: str | None
    last_outcome: str | None
    updated_at: datetime | None
    in_database: bool
    declared: bool

    def to_dict(self) -> dict[str, Any]:
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in self._asdict().items()}


def _utc(instant: datetime | None) -> datetime | None:
    """An instant in UTC, whatever the session's TimeZone setting made of it."""
    return None if instant is None else instant.astimezone(timezone.utc)


def _next_run(row: _store_schedules.ScheduleRow) -> datetime | None:
    if row.next_tick is not None:
        return row.next_tick
    try:  # declared, its next tick not computed yet: as the scheduler will compute it
        return Cron(row.expression, row.timezone, hash_id=row.name).next_after(row.now)
    except ValueError:
        return None


def list_schedules(dsn: str | None = None, declared: Iterable[Schedule] = ()) -> list[ScheduleInfo]:
    """Every schedule of the database, and those of ``declared`` not there yet, by name."""
    with translate_errors(dsn):
        conn = shared_connection(dsn)
        rows = _store_schedules.list_schedules(conn, STALE_AFTER)
        now = rows[0].now if rows else _store_schedules.database_now(conn)
    infos = {r.name: ScheduleInfo(r.name, r.expression, r.timezone, r.func_name, r.queue, _utc(_next_run(r)),
                                  _utc(r.last_tick), r.last_job_id, r.last_job_status, r.last_outcome,
                                  _utc(r.updated_at), True, r.declared)
             for r in rows}
    for s in declared:
        if s.name not in infos:
            infos[s.name] = ScheduleInfo(s.name, s.expression, s.timezone, s.func_name, s.queue,
                                         s.cron.next_after(now), None, None, None, None, None, False, False)
    return [infos[name] for name in sorted(infos)]
