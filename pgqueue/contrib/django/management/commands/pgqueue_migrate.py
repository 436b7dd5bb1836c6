"""``manage.py pgqueue_migrate``: pgqueue's schema to its newest revision, on pgqueue's database in this project."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from pgqueue._migrate import migrate
from pgqueue.exceptions import PgQueueError

from ... import dsn


class Command(BaseCommand):
    help = ("Bring pgqueue's schema to its newest revision (pgqueue's alembic migrations, version table "
            "pgqueue.alembic_version; Django's migrations are not involved). `migrate` does it too, unless "
            "PGQUEUE['MIGRATE'] is False or PGQUEUE['DSN'] is set.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default=None,
                            help="The alias in DATABASES (default: PGQUEUE['DATABASE'], else 'default').")
        parser.add_argument("--dsn", default=None, help="A PostgreSQL URL instead (default: PGQUEUE['DSN']).")

    def handle(self, *args: Any, database: str | None = None, **options: Any) -> None:
        try:
            revision = migrate(options["dsn"] or dsn(database))
        except PgQueueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"pgqueue schema at revision {revision}")
