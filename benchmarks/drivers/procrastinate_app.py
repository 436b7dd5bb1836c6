"""procrastinate's App for the benchmark: ``procrastinate --app=procrastinate_app.app worker``.

The connector is procrastinate's default async ``PsycopgConnector``; the DSN comes from BENCH_DSN.
The task wraps the shared no-op ``benchjobs.f`` (procrastinate passes task arguments as keywords).
"""

import os

import benchjobs
import procrastinate

app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=os.environ.get("BENCH_DSN", "")))

f = app.task(name="benchjobs.f", queue="bench")(benchjobs.f)
