"""A worker cut off from the database stops its own running jobs before another worker may rescue them,
so a job never runs twice at the same time (docs/guarantees.md, "One run at a time")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from conftest import wait_for
from servers import TcpProxy

from pgqueue import Queue, Retry

from . import reliability_jobs as rj
from ._helpers import job_row, run_rows

LEASE = "3"  # seconds; the fence fires after lease - margin = 2.4 s without a renewed heartbeat


@pytest.mark.timeout(90)
@pytest.mark.parametrize("fault", ["cut", "freeze"])
def test_a_cut_off_worker_kills_its_job_before_the_rescued_run_starts(
        fault: str, tcp_proxy: TcpProxy, spawn_worker: Callable[..., Any], db: psycopg.Connection[Any],
        dsn: str) -> None:
    """The worker's own connections go through a proxy that the test cuts (connections closed, new ones
    refused) or freezes (nothing forwarded, no error: a black-holed network), while PostgreSQL stays up and
    the job's own connection (PGQUEUE_DATABASE_URL) is direct. Another worker rescues the job after the
    lease and runs it again. The job's rows must show one run, then the other: never both at once."""
    cut_off = spawn_worker("default", "--dsn", tcp_proxy.dsn(dsn), "--lease", LEASE, "--name", "cut-off")
    job = Queue().enqueue(rj.tick, "t", 60, 1, retry=Retry(max=1), job_timeout=120)
    wait_for(lambda: len(run_rows(db, "t")) >= 3, 20, message="the first run to be under way")
    first_pid = run_rows(db, "t")[0][0]
    spawn_worker("default", "--lease", LEASE, "--name", "rescuer")

    getattr(tcp_proxy, fault)()
    wait_for(lambda: job_row(db, job.id)["status"] == "finished", 40, interval=0.1,
             message="the job to be rescued and run again to the end")

    rows = run_rows(db, "t")
    first = [at for pid, at in rows if pid == first_pid]
    second = [at for pid, at in rows if pid != first_pid]
    assert first and second, rows
    assert max(first) < min(second), (
        f"two runs at once: the first run wrote until {max(first)}, the rescued run began at {min(second)}")
    assert "stopping its running jobs before another worker may rescue them" in cut_off.output, cut_off.output
    row = job_row(db, job.id)
    assert row["attempts"] == 2 and [e["type"] for e in row["errors"]] == ["WorkerLost"]

    # Back on the network, the cut-off worker renews its heartbeat and serves again.
    tcp_proxy.restore()
    wait_for(lambda: "heartbeat renewed" in cut_off.output, 30, message="the heartbeat to be renewed")
    assert cut_off.proc.poll() is None, cut_off.output[-3000:]
