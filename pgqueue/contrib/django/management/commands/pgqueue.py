"""``manage.py pgqueue COMMAND ...``: any ``pgqueue`` command (``info``, ``failed``, ``requeue``, ...) in the Django
project, on pgqueue's database in this project unless --dsn is given."""

from __future__ import annotations

from pgqueue.cli import main

from ..._commands import PgQueueCommand


class Command(PgQueueCommand):
    help = "Run a `pgqueue` command (worker, info, failed, requeue, ...) on pgqueue's database in this project."
    command = main
