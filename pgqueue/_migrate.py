"""Bringing a database to pgqueue's newest schema with alembic."""

from __future__ import annotations

from pathlib import Path

from ._db import connect, translate_errors
from .sql import SCHEMA


def _script_location() -> str:
    import pgqueue._migrations as pkg  # the repo's migrations/ folder, packaged under this name

    return str(Path(str(pkg.__file__)).resolve().parent)


def migrate(dsn: str | None = None) -> str:
    """Upgrade the database at ``dsn`` to the newest revision; returns that revision. Safe to run
    concurrently and repeatedly."""
    _alembic(dsn, "upgrade", "head")
    return head_revision()


def _alembic(dsn: str | None, action: str, revision: str) -> None:
    """Run alembic's ``upgrade`` or ``downgrade`` to ``revision`` on ``dsn`` (tests step through
    revisions with it; users run :func:`migrate`)."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    raw = connect(dsn, autocommit=False)  # resolves the DSN and reports a bad one clearly
    engine = create_engine("postgresql+psycopg://", creator=lambda: raw, poolclass=NullPool)
    cfg = Config()
    cfg.set_main_option("script_location", _script_location())
    try:
        with translate_errors(dsn), engine.connect() as conn:
            cfg.attributes["connection"] = conn
            getattr(command, action)(cfg, revision)
    finally:
        raw.close()


def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", _script_location())
    return str(ScriptDirectory.from_config(cfg).get_current_head())


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
