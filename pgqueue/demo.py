"""The demo run by ``pgqueue demo``: enqueue a few jobs, drain them with a burst worker, show results.
Its job functions live here so that the worker can import them by dotted path."""

from __future__ import annotations

import time

import click


def count_words(text: str) -> int:
    return len(text.split())


def slow_square(n: int) -> int:
    time.sleep(0.05)
    return n * n


def fail(message: str) -> None:
    raise ValueError(message)


def run(dsn: str | None = None) -> None:
    from . import Queue, Worker, migrate

    migrate(dsn)
    queue = Queue("demo", dsn=dsn)
    queue.empty()
    jobs = [queue.enqueue(count_words, "pgqueue keeps its jobs in PostgreSQL")]
    jobs += queue.enqueue_many([queue.prepare_data(slow_square, args=(n,)) for n in range(1, 6)])
    jobs.append(queue.enqueue(fail, "this job fails on purpose", description="a failing job"))
    click.echo(f"Enqueued {len(jobs)} jobs on queue 'demo'; running a burst worker with 2 processes...\n")
    Worker(["demo"], dsn=dsn, concurrency=2).work(burst=True)
    click.echo("")
    for job in jobs:
        job.refresh()
        outcome = repr(job.result) if job.status == "finished" else (job.exc_info or "").strip().splitlines()[-1]
        call = f"{job.func_name.rsplit('.', 1)[-1]}({', '.join(map(repr, job.args))})"
        click.echo(f"{job.status.value:9} {call:52} -> {outcome}")
    click.echo("\nThe jobs are rows you can query: SELECT status, count(*) FROM pgqueue.jobs GROUP BY 1;")
