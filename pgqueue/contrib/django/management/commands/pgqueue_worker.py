"""``manage.py pgqueue_worker [QUEUE ...] [options]``: ``pgqueue worker`` in the Django project."""

from __future__ import annotations

from pgqueue.cli import worker

from ..._commands import PgQueueCommand


class Command(PgQueueCommand):
    help = ("Run jobs from QUEUES: `pgqueue worker` with the same options, after django.setup() (job code can "
            "use the ORM), on pgqueue's database in this project unless --dsn is given.")
    command = worker

    def arguments(self, args: list[str]) -> list[str]:
        # First of the handlers: a job that failed on a broken connection leaves none to the next job.
        return super().arguments(["--exception-handler", "pgqueue.contrib.django.close_old_connections", *args])
