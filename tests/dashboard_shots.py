"""The screenshots in docs/ of the dashboard's main pages, made in headless Chromium from demo data:

    .venv/bin/python tests/dashboard_shots.py            # writes docs/dashboard-*.png
    .venv/bin/python tests/dashboard_shots.py --out /tmp --pg postgresql://postgres@127.0.0.1:5432/postgres

It creates a database of its own on the server of --pg (default: $PGQUEUE_TEST_DATABASE_URL, else the local
server), fills it with demo jobs (finished, failed with tracebacks, queued, scheduled, one running on a
real worker), starts `pgqueue dashboard` and saves each page; then drops the database.
tests/test_dashboard.py runs take_screenshots() too, into a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
PAGES = {"overview": "/", "jobs": "/jobs?status=failed", "failed-job": None, "workers": "/workers"}


def fill_demo() -> str:
    """Demo jobs in the database of PGQUEUE_DATABASE_URL; returns the id of a failed job to show."""
    import pgq_testjobs as tj

    from pgqueue import Queue, Retry, SimpleWorker

    emails, reports = Queue("emails"), Queue("reports")
    for i in range(40):
        emails.enqueue(tj.add, i, i)
    for i in range(12):
        reports.enqueue(tj.echo, f"report-{i}", fmt="pdf")
    failed = reports.enqueue(tj.fail, "the report's data source timed out", retry=Retry(max=1))
    emails.enqueue(tj.fail, "no MX record for example.invalid")
    SimpleWorker(["emails", "reports"]).work(burst=True)
    for i in range(25):
        emails.enqueue(tj.add, i, 1)
    for i in range(5):
        reports.enqueue_in(timedelta(minutes=10 + i), tj.echo, f"nightly-{i}")
    Queue("default").enqueue(tj.noop)
    Queue("default").pause()
    return failed.id


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A real worker on the queue `slow`, busy with a long job (shown as its current job)."""
    import pgq_testjobs as tj

    from pgqueue import Queue

    Queue("slow").enqueue(tj.sleep_then_record, 300, "screenshot")
    return subprocess.Popen([sys.executable, "-m", "pgqueue.cli", "worker", "slow", "--name", "worker-1"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def take_screenshots(driver: Any, base: str, out: Path, failed_id: str) -> list[Path]:
    """Save each main page as out/dashboard-NAME.png, the window as tall as the page (up to 1,800 px)."""
    from urllib.parse import urlencode

    written = []
    for name, path in PAGES.items():
        driver.set_window_size(1300, 1000)
        driver.get(base + (path or "/job?" + urlencode({"id": failed_id})))
        height = int(driver.execute_script("return document.documentElement.scrollHeight"))
        driver.set_window_size(1300, min(max(height + 20, 600), 1800))
        target = out / f"dashboard-{name}.png"
        driver.save_screenshot(str(target))
        written.append(target)
    driver.set_window_size(1300, 1000)
    return written


def main() -> None:
    sys.path.insert(0, str(TESTS))
    from conftest import wait_for
    from dashboard_browser import DashboardServer, browser_missing, start_browser, stop_browser

    import pgqueue
    from pgqueue import Job, JobStatus

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "docs")
    p.add_argument("--pg", default=os.environ.get("PGQUEUE_TEST_DATABASE_URL",
                                                  "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = p.parse_args()
    if browser_missing():
        raise SystemExit(browser_missing())
    name = f"pgqueue_shots_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.pg, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = psycopg.conninfo.make_conninfo(args.pg, dbname=name)
    env = {**os.environ, "PGQUEUE_DATABASE_URL": dsn, "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)])}
    os.environ["PGQUEUE_DATABASE_URL"] = dsn
    worker = server = None
    try:
        pgqueue.migrate(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:  # pgq_testjobs.record writes here
            conn.execute("CREATE SCHEMA pgq_test; CREATE TABLE pgq_test.runs (job_id text, tag text, pid int, "
                         "at timestamptz NOT NULL DEFAULT clock_timestamp())")
        failed_id = fill_demo()
        worker = start_worker(env)
        wait_for(lambda: Job.fetch_many([j for j in pgqueue.Queue("slow").started_job_registry.get_job_ids()])
                 and True, message="the worker to start its job")
        server = DashboardServer(dsn, "--refresh", "0", log=Path(os.devnull))
        driver, profile = start_browser()
        try:
            for path in take_screenshots(driver, server.url, args.out, failed_id):
                print(path)
        finally:
            stop_browser(driver, profile)
        assert Job.fetch(failed_id).get_status() == JobStatus.FAILED
    finally:
        if server is not None:
            server.stop()
        if worker is not None:
            worker.kill()
            worker.wait()
        pgqueue._db.close_shared_connections()
        with psycopg.connect(args.pg, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


if __name__ == "__main__":
    main()
