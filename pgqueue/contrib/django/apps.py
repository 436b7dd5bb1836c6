"""The Django app: ``manage.py migrate`` brings pgqueue's schema along (unless ``PGQUEUE["MIGRATE"]`` is False).

pgqueue's schema is not Django models: its tables live in the schema ``pgqueue``, created and upgraded by
pgqueue's own alembic migrations, whose version table is ``pgqueue.alembic_version``. Django's migrations
(``django_migrations``) never see them, ``makemigrations`` has nothing to write for them, and ``flush`` leaves
them alone. After ``migrate`` has run on pgqueue's database, this app runs pgqueue's migrations there too, if
the database is not at pgqueue's newest revision already: so the test database that Django's test runner
creates has pgqueue's tables as well.
"""

from __future__ import annotations

import functools
from typing import Any

from django.apps import AppConfig
from django.core import checks
from django.db import connections
from django.db.models.signals import post_migrate


class PgQueueConfig(AppConfig):
    name = "pgqueue.contrib.django"
    label = "pgqueue"
    verbose_name = "pgqueue"

    def ready(self) -> None:
        post_migrate.connect(migrate_schema, sender=self, dispatch_uid="pgqueue.contrib.django.migrate_schema")
        checks.register(check_database)


def check_database(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """System check pgqueue.E001: pgqueue's database must be PostgreSQL, reached through psycopg 3. Run by
    ``check``, ``migrate``, ``runserver``, ``test`` and pgqueue's own commands; it does not connect."""
    from ...exceptions import ConfigurationError
    from . import database_alias, psycopg2_fix

    try:
        alias = database_alias()
    except ConfigurationError as exc:
        return [checks.Error(str(exc), id="pgqueue.E001")]
    from django.db.backends.postgresql import psycopg_any

    if not psycopg_any.is_psycopg3:
        return [checks.Error(f"Django's PostgreSQL backend for DATABASES[{alias!r}] runs on psycopg2, but pgqueue "
                             "joins Django's transactions through psycopg 3", hint=psycopg2_fix(), id="pgqueue.E001")]
    return []


@functools.cache
def _head() -> str:
    from ..._migrate import head_revision

    return head_revision()


def current_revision(using: str) -> str | None:
    """The revision recorded in ``pgqueue.alembic_version`` of Django's database ``using`` (None: no schema)."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT to_regclass('pgqueue.alembic_version') IS NOT NULL")
        if not cursor.fetchone()[0]:
            return None
        cursor.execute("SELECT version_num FROM pgqueue.alembic_version")
        row = cursor.fetchone()
    return None if row is None else str(row[0])


def migrate_schema(sender: AppConfig, using: str, verbosity: int = 1, stdout: Any = None, **kwargs: Any) -> None:
    """post_migrate: pgqueue's migrations on ``using`` if it is pgqueue's database (``PGQUEUE["DATABASE"]``) and
    not at pgqueue's newest revision. Not when ``PGQUEUE["MIGRATE"]`` is False, nor with ``PGQUEUE["DSN"]`` set:
    then pgqueue's database may be another, migrated with ``manage.py pgqueue_migrate``."""
    from . import dsn, setting

    if not setting("MIGRATE") or setting("DSN") or using != setting("DATABASE"):
        return
    if connections[using].vendor != "postgresql" or current_revision(using) == _head():
        return
    from ..._migrate import migrate

    revision = migrate(dsn(using))
    if verbosity >= 1 and stdout is not None:
        stdout.write(f"  pgqueue schema at revision {revision}\n")
