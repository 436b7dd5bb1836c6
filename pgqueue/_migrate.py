"""Bringing a database to pgqueue's newest schema with alembic."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import errors as pgerrors

from ._db import _first_line, connect
from .exceptions import DatabaseUnavailable, MigrationError, SchemaTooNew
from .sql import SCHEMA

if TYPE_CHECKING:
    from alembic.config import Config


def _script_location() -> str:
    import pgqueue._migrations as pkg  # the repo's migrations/ folder, packaged under this name

    return str(Path(str(pkg.__file__)).resolve().parent)


def migrate(dsn: str | None = None) -> str:
    """Upgrade the database at ``dsn`` to the newest revision; returns that revision. Safe to run
    concurrently and repeatedly. Raises :class:`MigrationError` (one line: what failed, what to do) when the
    database refuses, and :class:`SchemaTooNew` when a newer pgqueue has migrated it."""
    _alembic(dsn, "upgrade", "head")
    return head_revision()


def _alembic(dsn: str | None, action: str, revision: str) -> None:
    """Run alembic's ``upgrade`` or ``downgrade`` to ``revision`` on ``dsn`` (tests step through
    revisions with it; users run :func:`migrate`)."""
    from alembic import command
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    raw = connect(dsn, autocommit=False, role="migrate")  # resolves the DSN and reports a bad one clearly
    engine = create_engine("postgresql+psycopg://", creator=lambda: raw, poolclass=NullPool)
    cfg = _config()
    try:
        with _migration_errors(raw):
            _refuse_unknown_revision(raw, cfg)
            with engine.connect() as conn:
                cfg.attributes["connection"] = conn
                getattr(command, action)(cfg, revision)
    finally:
        raw.close()


def _config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", _script_location())
    return cfg


def _where(conn: psycopg.Connection[Any]) -> str:
    info = conn.info
    return f"{info.user}@{info.host}:{info.port}/{info.dbname}"


def _refuse_unknown_revision(raw: psycopg.Connection[Any], cfg: Config) -> None:
    """A database that a newer pgqueue migrated is at a revision this one has no script for: alembic
    would only say it "can't locate" it. Say what happened, and what to do."""
    from alembic.script import ScriptDirectory

    recorded: list[str] = []
    if raw.execute("SELECT to_regclass('pgqueue.alembic_version')").fetchone() != (None,):
        recorded = [row[0] for row in raw.execute("SELECT version_num FROM pgqueue.alembic_version")]
    raw.rollback()  # alembic begins its own transaction on this connection
    script = ScriptDirectory.from_config(cfg)
    known = {rev.revision for rev in script.walk_revisions()}
    for found in recorded:
        if found not in known:
            raise SchemaTooNew(
                f"the pgqueue schema of {_where(raw)} is at revision {found}, which pgqueue {_version()} does not "
                f"know (its newest is {script.get_current_head()}): a newer pgqueue migrated this database; "
                "upgrade pgqueue", found)


class _migration_errors:  # noqa: N801 - used as a function: ``with _migration_errors(conn):``
    """One line for what the database refused while migrating. alembic runs its statements through
    SQLAlchemy, which wraps the driver's error: unwrapped here."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.where = _where(conn)  # now: SQLAlchemy closes the connection on its way out of an error

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        from alembic.util import CommandError
        from sqlalchemy.exc import DBAPIError

        if isinstance(exc, DBAPIError) and isinstance(exc.orig, psycopg.Error):
            exc = exc.orig
        if isinstance(exc, psycopg.OperationalError):
            raise DatabaseUnavailable(f"cannot reach PostgreSQL at {self.where}: {_first_line(exc)}") from None
        if isinstance(exc, pgerrors.InsufficientPrivilege):
            raise MigrationError(
                f"cannot migrate {self.where}: {_first_line(exc)}; run `pgqueue migrate` as a role with CREATE "
                "on the database that owns the schema pgqueue (the first run creates it), see docs/security.md"
            ) from None
        if isinstance(exc, (psycopg.Error, CommandError)):
            raise MigrationError(f"cannot migrate {self.where}: {_first_line(exc)}") from None


def _version() -> str:
    try:
        return version("pgqueue")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree that is not installed
        return "(unknown version)"


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory.from_config(_config()).get_current_head())


def schema_sql() -> str:
    """The DDL of the newest schema, for teams that apply SQL with their own tools. It ends by recording
    the revision in pgqueue's alembic version table, so a later ``pgqueue migrate`` carries on from it."""
    return (
        SCHEMA.rstrip()
        + "\n\n-- What `pgqueue migrate` records, so later migrations carry on from this revision.\n"
        + "CREATE TABLE pgqueue.alembic_version (version_num varchar(32) NOT NULL, "
        + "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));\n"
        + f"INSERT INTO pgqueue.alembic_version (version_num) VALUES ('{head_revision()}');\n"
    )
