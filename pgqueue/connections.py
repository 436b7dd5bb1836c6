"""What RQ calls a connection: here, the database the jobs live in.

RQ code hands a Redis client to everything (``Queue(connection=redis)``, ``Worker([...], connection=redis)``,
``Job.fetch(id, connection=redis)``, ``FailedJobRegistry(queue=q)``, ``suspend(redis)``). pgqueue's jobs
are rows of a PostgreSQL database, so its :class:`Connection` only names that database: a URL, or nothing
for the usual lookup (``PGQUEUE_DATABASE_URL``, then ``DATABASE_URL``, then the embedded server). It opens
nothing itself; pgqueue connects when it needs to, as it does with ``dsn=``.

A port of RQ code writes ``from pgqueue import Connection as Redis``, and ``Redis()``,
``Redis('localhost', 6379)`` or ``Redis(host=..., port=..., db=..., socket_timeout=...)`` go on working:
Redis's own arguments say where a Redis server is, which means nothing here, so they are accepted and
ignored (a keyword Redis does not have is refused, so a typo is not). Every ``Connection`` without a URL is
the same database. See docs/coming-from-rq.md.

Not to be confused with ``enqueue(..., connection=conn)``: there ``connection`` is your open psycopg or
SQLAlchemy connection, whose transaction the job joins (docs/transactional.md).
"""

from __future__ import annotations

from typing import Any

from .exceptions import PgQueueError

#: The keyword arguments of redis-py's ``Redis()`` (and ``StrictRedis``, and fakeredis's), accepted and ignored.
REDIS_ARGUMENTS = frozenset({
    "host", "port", "db", "password", "username", "socket_timeout", "socket_connect_timeout", "socket_keepalive",
    "socket_keepalive_options", "connection_pool", "unix_socket_path", "encoding", "encoding_errors", "charset",
    "errors", "decode_responses", "retry_on_timeout", "retry_on_error", "retry", "ssl", "ssl_keyfile",
    "ssl_certfile", "ssl_cert_reqs", "ssl_ca_certs", "ssl_ca_path", "ssl_ca_data", "ssl_check_hostname",
    "ssl_password", "ssl_validate_ocsp", "ssl_validate_ocsp_stapled", "ssl_ocsp_context", "ssl_ocsp_expected_cert",
    "ssl_min_version", "ssl_ciphers", "ssl_include_verify_flags", "ssl_exclude_verify_flags", "max_connections",
    "single_connection_client", "health_check_interval", "client_name", "lib_name", "lib_version", "driver_info",
    "redis_connect_func", "credential_provider", "protocol", "cache", "cache_config", "event_dispatcher",
    "maint_notifications_config", "server"})

_POSTGRES_SCHEMES = ("postgresql", "postgres")
_NO_REDIS = ("pgqueue keeps its jobs in PostgreSQL, not Redis: give a PostgreSQL URL (postgresql://...), or "
             "nothing to use PGQUEUE_DATABASE_URL, DATABASE_URL or the embedded server")


def _url(value: str) -> str | None:
    """``value`` if it is a database URL or a libpq connection string; None if it is a bare word (which
    ``Redis('localhost')`` passes as a host). A URL of another scheme (``redis://``) is refused."""
    scheme, sep, _ = value.partition("://")
    if sep:
        if scheme.split("+", 1)[0] not in _POSTGRES_SCHEMES:
            raise ValueError(f"a {scheme}:// URL is not a PostgreSQL URL: {_NO_REDIS}")
        return value
    return value if "=" in value else None


class Connection:
    """The database pgqueue's jobs live in, where RQ takes a Redis connection (see the module's docstring).

    ``Connection()``: the database of ``PGQUEUE_DATABASE_URL``, else ``DATABASE_URL``, else the embedded
    server. ``Connection("postgresql://app@db/app")``: that one (a libpq connection string works too).
    Redis's arguments (``Connection('localhost', 6379, db=0)``) are accepted and ignored; with a URL they are
    refused, so that a port number meant for PostgreSQL is not quietly lost. Connections to the same URL are
    equal. Nothing connects until a queue, job or worker needs the database.
    """

    __slots__ = ("dsn", "redis_arguments")

    def __init__(self, dsn: Any = None, *redis_args: Any, **redis_kwargs: Any) -> None:
        unknown = sorted(set(redis_kwargs) - REDIS_ARGUMENTS)
        if unknown:
            raise TypeError(f"Connection() got an unexpected keyword argument {unknown[0]!r}: it takes a PostgreSQL "
                            "URL (or nothing), and ignores Redis's own arguments (host=, port=, db=, ...)")
        url: str | None = None
        if isinstance(dsn, Connection):
            url = dsn.dsn
        elif isinstance(dsn, str):
            url = _url(dsn)
        if url is None and dsn is not None and not isinstance(dsn, Connection):
            redis_args = (dsn, *redis_args)  # Redis(host, port, ...): the host is Redis's too
        if url is not None and (redis_args or redis_kwargs):
            from ._db import _describe

            given = [repr(a) for a in redis_args] + [f"{k}=" for k in redis_kwargs]
            raise TypeError(f"Connection({_describe(url)!r}, {', '.join(given)}): Redis's arguments go with no URL "
                            "only; put what the database needs (host, port, user, ...) in the URL")
        #: The database URL; None for PGQUEUE_DATABASE_URL, DATABASE_URL or the embedded server.
        self.dsn: str | None = url
        #: Redis's arguments given, ignored: ``{"host": ..., "port": ...}`` (positional ones by position).
        self.redis_arguments: dict[str, Any] = {**{f"arg{i}": a for i, a in enumerate(redis_args)}, **redis_kwargs}

    @classmethod
    def from_url(cls, url: str, **redis_kwargs: Any) -> Connection:
        """RQ code's ``Redis.from_url(url)``: a PostgreSQL URL; a Redis URL is refused, saying so."""
        if not isinstance(url, str) or _url(url) is None:
            raise ValueError(f"from_url takes a database URL, not {url!r}: {_NO_REDIS}")
        return cls(url, **redis_kwargs)

    def __repr__(self) -> str:
        if self.dsn is None:
            return "Connection(None)"
        from ._db import _describe

        return f"Connection({_describe(self.dsn)!r})"  # without the password

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Connection) and other.dsn == self.dsn

    def __hash__(self) -> int:
        return hash((Connection, self.dsn))

    def ping(self) -> bool:
        """Whether the database answers (``SELECT 1``), as Redis's ``ping()``; raises
        :class:`pgqueue.DatabaseUnavailable` if it cannot be reached."""
        from ._db import shared_connection, translate_errors

        with translate_errors(self.dsn):
            return shared_connection(self.dsn).execute("SELECT true").fetchone() == (True,)

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        """Refused: pgqueue has no Redis pipelines (see the message)."""
        raise PgQueueError(
            "pgqueue has no Redis pipeline: enqueue_many() already writes all its jobs in one transaction (all or "
            "none); to enqueue in a transaction of your own, pass your psycopg or SQLAlchemy connection as "
            "enqueue(..., connection=conn) or enqueue_many(items, connection=conn) (docs/transactional.md)")


def _what(value: Any) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def database(dsn: Any = None, connection: Any = None, *, where: str) -> str | None:
    """The database URL an entry point was given (None: the environment's), from its ``dsn`` (a URL, or a
    :class:`Connection`) or RQ's ``connection=`` (the same). ``where`` names the entry point in errors.
    Refused with what to do: both, a Redis client, your psycopg or SQLAlchemy connection (that one joins a
    transaction: it goes to ``enqueue(..., connection=)``), anything else."""
    if dsn is not None and connection is not None and _value(dsn, where) != _value(connection, where):
        raise TypeError(f"{where} takes dsn= or connection=, not both")
    return _value(connection if dsn is None else dsn, where)


def _value(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, Connection):
        return value.dsn
    if isinstance(value, str):  # a URL of another scheme is refused when connecting, as any dsn= is
        return value
    module = type(value).__module__.split(".")[0]
    if module in ("redis", "fakeredis"):
        raise TypeError(f"{where} got a Redis client ({_what(value)}): {_NO_REDIS}. In code ported from RQ, "
                        "replace `from redis import Redis` with `from pgqueue import Connection as Redis`")
    if module in ("psycopg", "sqlalchemy"):
        raise TypeError(f"{where} got {_what(value)}: here connection= names the database the jobs live in (a "
                        "pgqueue.Connection or a URL). To enqueue in that connection's transaction, pass it to "
                        "enqueue(..., connection=conn) (docs/transactional.md)")
    raise TypeError(f"{where} takes a pgqueue.Connection or a database URL as its connection, not {_what(value)}")
