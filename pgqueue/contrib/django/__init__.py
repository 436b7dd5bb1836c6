"""pgqueue in a Django project: jobs enqueued in Django's own transactions, and the worker and the schema as
management commands (docs/frameworks.md).

    INSTALLED_APPS = [..., "pgqueue.contrib.django"]

    from pgqueue.contrib.django import Queue

    with transaction.atomic():
        order.save()
        Queue("emails").enqueue(send_receipt, order.id)  # on Django's connection: commits with the order

Settings, all optional: ``PGQUEUE = {"DATABASE": "default", "DSN": None, "MIGRATE": True}``.

- ``DATABASE``: the alias in ``DATABASES`` whose connection enqueues and whose database holds the jobs.
- ``DSN``: a URL for pgqueue's own connections (the worker, ``job.refresh()``, ``len(queue)``) to that same
  database, if they must reach it another way than Django does; by default, the one made from ``DATABASES``.
- ``MIGRATE``: whether ``manage.py migrate`` also brings pgqueue's schema to its newest revision.

Django 4.2 or newer, on its PostgreSQL backend with psycopg 3 (which it uses whenever psycopg 3 is installed,
as it is with pgqueue): pgqueue writes through Django's psycopg connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
from django.conf import settings as django_settings
from django.db import connections

from ... import _sync
from ...exceptions import ConfigurationError
from ...job import Job
from ...queue import Duration, EnqueueData
from ...queue import Queue as _Queue

__all__ = ["Queue", "close_old_connections", "connection", "database_alias", "dsn", "psycopg2_fix", "setting"]

_DEFAULTS: dict[str, Any] = {"DATABASE": "default", "DSN": None, "MIGRATE": True}
# The keywords libpq takes in a connection string: what Django's connection parameters may hold besides
# psycopg's own objects (its cursor_factory, adapters context, prepare_threshold, ...).
_LIBPQ_KEYWORDS = frozenset(d.keyword.decode() for d in psycopg.pq.Conninfo.get_defaults())
_dsn_cache: dict[tuple[Any, ...], str] = {}
_checked: list[Any] = [None]  # the PGQUEUE setting last found valid


def setting(name: str) -> Any:
    """One of the ``PGQUEUE`` settings (DATABASE, DSN, MIGRATE), else its default."""
    configured = getattr(django_settings, "PGQUEUE", None) or _DEFAULTS
    if configured is _checked[0]:  # read on every enqueue: checked once per value of the setting
        return configured.get(name, _DEFAULTS[name])
    if not isinstance(configured, dict):
        raise ConfigurationError(f"settings.PGQUEUE must be a dict, such as {{'DATABASE': 'default'}}, "
                                 f"not {type(configured).__name__}")
    unknown = set(configured) - set(_DEFAULTS)
    if unknown:
        raise ConfigurationError(f"settings.PGQUEUE has unknown key(s) {', '.join(sorted(unknown))}: it takes "
                                 f"{', '.join(_DEFAULTS)}")
    _checked[0] = configured
    return configured.get(name, _DEFAULTS[name])


def database_alias(using: str | None = None) -> str:
    """``using``, else ``PGQUEUE["DATABASE"]``, else "default"; refused unless it names a PostgreSQL database."""
    alias = using or setting("DATABASE")
    if alias not in django_settings.DATABASES:
        raise ConfigurationError(f"no database {alias!r} in settings.DATABASES (it has "
                                 f"{', '.join(map(repr, django_settings.DATABASES)) or 'none'}): "
                                 "set PGQUEUE['DATABASE'] to the alias of your PostgreSQL database")
    wrapper = connections[alias]
    if wrapper.vendor != "postgresql":
        raise ConfigurationError(
            f"pgqueue keeps its jobs in PostgreSQL, but DATABASES[{alias!r}] is {wrapper.vendor} "
            f"({wrapper.settings_dict.get('ENGINE')}): use ENGINE 'django.db.backends.postgresql' for it, or "
            "set PGQUEUE['DATABASE'] to the alias of a PostgreSQL database")
    return alias


def connection(using: str | None = None) -> psycopg.Connection[Any]:
    """Django's psycopg 3 connection for ``using`` (see :func:`database_alias`), connected if it was not yet:
    what ``enqueue(..., connection=)`` takes to write the job in Django's current transaction. Inside
    ``transaction.atomic(using=...)`` the job commits or rolls back with the block (a nested block's savepoint
    too); outside one, Django's autocommit writes it at once."""
    alias = database_alias(using)
    wrapper = connections[alias]
    wrapper.ensure_connection()
    raw = wrapper.connection
    if isinstance(raw, psycopg.Connection):
        return raw
    raise ConfigurationError(
        f"Django's connection DATABASES[{alias!r}] runs on {type(raw).__module__.split('.')[0]}, but pgqueue "
        f"joins Django's transactions through psycopg 3: {psycopg2_fix()}")


def psycopg2_fix() -> str:
    """What to install when Django's PostgreSQL backend runs on psycopg2."""
    import django

    if django.VERSION < (4, 2):
        return ("upgrade Django to 4.2 or newer (pip install 'Django>=4.2'), whose backend uses psycopg 3, "
                "installed with pgqueue")
    return ("Django uses psycopg 3 whenever `import psycopg` works when its backend loads: install it "
            "(pip install 'psycopg[binary]>=3.2'), and keep psycopg2 or not, as you like")


def dsn(using: str | None = None) -> str:
    """The URL of pgqueue's database in this project: ``PGQUEUE["DSN"]`` if set, else the one Django connects
    to for ``using`` (see :func:`database_alias`), as its settings say now (the test database, in tests)."""
    explicit = setting("DSN")
    if explicit and using is None:
        return str(explicit)
    alias = database_alias(using)
    given = connections[alias].settings_dict
    # What the URL is made of, as the settings say now: Django's test runner changes NAME in place.
    now = (alias, *(given.get(k) for k in ("NAME", "USER", "PASSWORD", "HOST", "PORT")), repr(given.get("OPTIONS")))
    found = _dsn_cache.get(now)
    if found is None:
        params = connections[alias].get_connection_params()
        found = _dsn_cache[now] = psycopg.conninfo.make_conninfo(**{
            k: str(v) for k, v in params.items() if k in _LIBPQ_KEYWORDS and v not in (None, "")})
    return found


class Queue(_Queue):
    """A :class:`pgqueue.Queue` on Django's database: enqueues on Django's connection for ``using`` (unless
    given ``connection=``), so a job enqueued inside ``transaction.atomic()`` exists only if the block
    commits, and outside one is committed at once. Its own lookups (``len(q)``, ``job.refresh()``, ...)
    go to ``dsn`` if given, else to :func:`dsn`'s URL, read when used (a test runner's test database too).
    ``is_async=False`` runs each job at once, in Django's transaction (see docs/frameworks.md)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Queue:
        made = cls if kwargs.get("is_async", True) else _sync_class(cls)
        return object.__new__(made)

    def __init__(self, name: str = "default", dsn: str | None = None, *, using: str | None = None,
                 default_timeout: Duration | None = None, is_async: bool = True) -> None:
        self.using = using
        super().__init__(name, dsn, default_timeout=default_timeout, is_async=is_async)

    @property  # pgqueue.Queue's plain attribute: here, computed when not given
    def dsn(self) -> str:
        return self._dsn if self._dsn is not None else dsn(self.using)

    @dsn.setter
    def dsn(self, value: str | None) -> None:
        self._dsn = value

    def __repr__(self) -> str:
        return f"Queue({self.name!r})" if self.using is None else f"Queue({self.name!r}, using={self.using!r})"

    def _insert(self, batch: list[EnqueueData], connection: Any, batch_id: str | None = None) -> list[Job]:
        return super()._insert(batch, _caller(self.using, connection), batch_id)

    def _copy(self, first: list[EnqueueData], more: Iterator[EnqueueData], connection: Any,
              batch_id: str | None = None) -> list[Job]:
        return super()._copy(first, more, _caller(self.using, connection), batch_id)


class _OnDjango:
    """First in the class of ``Queue(..., is_async=False)``: Django's connection goes in before SyncQueue's
    methods choose a connection, so jobs run in Django's transaction."""

    using: str | None

    def _insert(self, batch: list[EnqueueData], connection: Any, batch_id: str | None = None) -> list[Job]:
        return super()._insert(batch, _caller(self.using, connection), batch_id)  # type: ignore[misc]

    def _copy(self, first: list[EnqueueData], more: Iterator[EnqueueData], connection: Any,
              batch_id: str | None = None) -> list[Job]:
        return super()._copy(first, more, _caller(self.using, connection), batch_id)  # type: ignore[misc]


def _caller(using: str | None, given: Any) -> Any:
    return connection(using) if given is None else given


_sync_classes: dict[type, type] = {}


def _sync_class(cls: type[Queue]) -> type[Queue]:
    made = _sync_classes.get(cls)
    if made is None:
        made = _sync_classes[cls] = type(cls.__name__, (_OnDjango, _sync.SyncQueue, cls),
                                         {"__module__": cls.__module__, "__qualname__": cls.__qualname__})
    return made


def close_old_connections(job: Any, exc_type: Any, exc_value: Any, traceback: Any) -> None:
    """An exception handler (``--exception-handler``) that ``manage.py pgqueue_worker`` puts first: after a
    failed job, Django's connections that broke (a restarted server) or outlived ``CONN_MAX_AGE`` are closed,
    so the next job of that process connects afresh instead of failing on the dead connection too. Returns
    None: the next handler runs."""
    from django.db import close_old_connections as close

    close()
