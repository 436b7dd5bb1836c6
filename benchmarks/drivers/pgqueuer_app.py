"""pgqueuer's factory for the benchmark: ``pgq run pgqueuer_app:main``.

As in pgqueuer's own examples: one asyncpg connection, an ``AsyncpgDriver``, a ``PgQueuer`` with one
entrypoint. pgqueuer entrypoints are coroutines that receive the job; this one decodes the payload
and calls the shared no-op ``benchjobs.f``. The DSN comes from BENCH_DSN.
"""

import os
from contextlib import asynccontextmanager

import asyncpg
import benchjobs
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job


@asynccontextmanager
async def main():
    connection = await asyncpg.connect(os.environ["BENCH_DSN"])
    pgq = PgQueuer(AsyncpgDriver(connection))

    @pgq.entrypoint("f")
    async def run_f(job: Job) -> None:
        benchjobs.f(int(job.payload))

    try:
        yield pgq
    finally:
        await connection.close()
