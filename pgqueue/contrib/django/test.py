"""``TEST_RUNNER = "pgqueue.contrib.django.test.DiscoverRunner"``: Django's test runner, which also closes
pgqueue's own connections (``len(queue)``, ``job.refresh()``, ``Job.fetch()``, ...) to the test databases before
dropping them: PostgreSQL refuses to drop a database that sessions are connected to."""

from __future__ import annotations

from typing import Any

from django.test.runner import DiscoverRunner as _DiscoverRunner

from ..._db import close_shared_connections

__all__ = ["DiscoverRunner"]


class DiscoverRunner(_DiscoverRunner):
    def teardown_databases(self, old_config: Any, **kwargs: Any) -> None:
        close_shared_connections()
        super().teardown_databases(old_config, **kwargs)
