"""The web dashboard (`pgqueue dashboard`): the real server in a process of its own, each page opened in
headless Chromium through selenium and checked against the database, each action pressed and its effect on
the database checked, and its security: escaping, CSRF, --read-only, the token, the bind address. A few
checks of the app alone go through Starlette's TestClient."""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest
from conftest import run_cli, snapshot_aged, wait_for
from dashboard_browser import DashboardServer, browser_missing, start_browser, stop_browser

from pgqueue import Job, JobStatus, Queue, Retry, SimpleWorker, is_suspended
from pgqueue.health import CHECKS

pytest.importorskip("starlette", reason="the dashboard extra is not installed (pip install -e '.[dev]')")

from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from pgqueue.dashboard import Limits, create_app  # noqa: E402

pytestmark = pytest.mark.timeout(120)


# -- fixtures ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dashboard")


def _server(dsn: str, logs: Path, name: str, *args: str) -> Iterator[DashboardServer]:
    server = DashboardServer(dsn, *args, log=logs / f"{name}.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(dsn: str, logs: Path) -> Iterator[DashboardServer]:
    """Without live refresh, so that what a test reads does not change under it."""
    yield from _server(dsn, logs, "server", "--refresh", "0")


@pytest.fixture(scope="module")
def live_server(dsn: str, logs: Path) -> Iterator[DashboardServer]:
    yield from _server(dsn, logs, "live", "--refresh", "0.3")


@pytest.fixture(scope="module")
def health_server(dsn: str, logs: Path) -> Iterator[DashboardServer]:
    """Calling a transaction older than 1 s a problem, as `pgqueue doctor --max-transaction-age 1` does."""
    yield from _server(dsn, logs, "health", "--refresh", "0", "--max-transaction-age", "1")


@pytest.fixture(scope="module")
def read_only_server(dsn: str, logs: Path) -> Iterator[DashboardServer]:
    yield from _server(dsn, logs, "read-only", "--read-only")


@pytest.fixture(scope="module")
def token_server(dsn: str, logs: Path) -> Iterator[DashboardServer]:
    yield from _server(dsn, logs, "token", "--token", "s3cret-token")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = browser_missing()
    if missing:
        pytest.skip(missing)
    driver, profile = start_browser()
    yield driver
    stop_browser(driver, profile)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """The browser, with no cookies and no stored settings left by another test."""
    browser.delete_all_cookies()
    yield browser
    try:
        browser.execute_script("window.localStorage.clear()")
    except Exception:  # noqa: BLE001 - a page without storage (an error page of the browser's own)
        pass


def wait(driver: Any, timeout: float = 15) -> WebDriverWait:
    return WebDriverWait(driver, timeout)


def cell(driver: Any, queue: str, count: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, f'tr[data-queue="{queue}"] [data-count="{count}"]').text)


def press(driver: Any, action: str, confirm: bool = False, within: Any = None) -> None:
    """Press the action's button (answering its confirmation) and wait for the page it leads to: a new
    document (without the mark set on this one), fully loaded. Not by waiting for this page's elements to go
    stale: while the page changes, chromedriver may answer a question about one with an error of its own
    ("Node with given id does not belong to the document") instead of saying it is stale."""
    root = within or driver
    button = root.find_element(By.CSS_SELECTOR, f'button[data-action="{action}"]')
    driver.execute_script("window.pgqueuePressed = true")
    button.click()
    if confirm:
        wait(driver).until(EC.alert_is_present()).accept()
    # A question asked while the page changes may fail; the next one is asked of the new page.
    WebDriverWait(driver, 15, ignored_exceptions=(WebDriverException,)).until(lambda d: d.execute_script(
        "return window.pgqueuePressed === undefined && document.readyState === 'complete'"))


def at(path: str, **params: str) -> str:
    return path + "?" + urllib.parse.urlencode(params)


def failed_job(queue: str, message: str = "boom", retries: int = 0) -> Job:
    job = Queue(queue).enqueue(tj.fail, message, retry=Retry(max=retries) if retries else None)
    SimpleWorker([queue]).work(burst=True)
    assert job.get_status() == JobStatus.FAILED
    return job


def http(url: str, data: dict[str, str] | None = None, headers: dict[str, str] | None = None
         ) -> tuple[int, str, dict[str, str]]:
    """A request outside the browser: status, body, headers (redirects not followed)."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers=headers or {})
    if body is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=20) as response:
            return response.status, response.read().decode(), _headers(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), _headers(exc.headers)


def _headers(message: Any) -> dict[str, str]:
    """Header names in lower case, repeated headers joined with commas."""
    return {name.lower(): ", ".join(message.get_all(name)) for name in set(message.keys())}


def csrf_pair(url: str) -> tuple[str, str]:
    """A CSRF cookie and the token the server puts in its forms for it, as a browser would get them."""
    status, body, headers = http(url)
    assert status == 200, body
    cookie = re.search(r"pgqueue_csrf=([^;]+)", headers["set-cookie"]).group(1)  # type: ignore[union-attr]
    token = re.search(r'<meta name="csrf-token" content="([^"]+)">', body).group(1)  # type: ignore[union-attr]
    return cookie, token


# -- pages --------------------------------------------------------------------------------------------------
def test_overview_shows_each_queue_its_counts_pauses_workers_and_chart(server: DashboardServer, page: Any) -> None:
    failed_job("emails")  # first: the worker that fails it runs every queued job of the queue
    emails = Queue("emails")
    for i in range(3):
        emails.enqueue(tj.noop, i)
    emails.enqueue_in(timedelta(hours=1), tj.noop)
    Queue("reports").enqueue(tj.add, 1, 2)
    SimpleWorker(["reports"]).work(burst=True)  # one finished job, in the chart and the last hour's count
    Queue("paused-queue").pause()
    page.get(server.url + "/")
    assert cell(page, "emails", "queued") == "3"
    assert cell(page, "emails", "scheduled") == "1"
    assert cell(page, "emails", "failed") == "1"
    assert cell(page, "reports", "finished-recent") == "1"
    assert cell(page, "reports", "queued") == "0"
    row = page.find_element(By.CSS_SELECTOR, 'tr[data-queue="paused-queue"]')
    assert "paused" in row.text
    caption = page.find_element(By.CSS_SELECTOR, "#chart figcaption").text
    assert "2 in all (1 failed)" in caption
    assert len(page.find_elements(By.CSS_SELECTOR, "#chart rect.finished")) == 1
    assert "Workers are running" in page.find_element(By.ID, "suspension").text
    # The counts link to the queue's page, on the list of that status.
    page.find_element(By.CSS_SELECTOR, 'tr[data-queue="emails"] [data-count="failed"] a').click()
    wait(page).until(EC.title_contains("Queue emails"))
    assert page.find_element(By.CSS_SELECTOR, 'dd[data-count="failed"]').text == "1"
    assert [r.get_attribute("data-job-id") for r in page.find_elements(By.CSS_SELECTOR, "#job-table tbody tr")
            if r.get_attribute("data-job-id")] == [Queue("emails").failed_job_registry.get_job_ids()[0]]


def test_live_refresh_updates_the_page_without_reloading_it(live_server: DashboardServer, page: Any) -> None:
    emails = Queue("emails")
    emails.enqueue(tj.noop)
    page.get(live_server.url + "/")
    assert cell(page, "emails", "queued") == "1"
    page.execute_script("window.notReloaded = true")
    emails.enqueue(tj.noop)
    emails.enqueue(tj.noop)
    wait(page).until(lambda d: cell(d, "emails", "queued") == "3")
    assert page.execute_script("return window.notReloaded") is True
    assert int(page.execute_script("return window.pgqueueLive.refreshes")) >= 1


def test_live_refresh_can_be_turned_off_and_stays_off(live_server: DashboardServer, page: Any) -> None:
    page.get(live_server.url + "/")
    assert page.find_element(By.TAG_NAME, "body").get_attribute("data-live") == "on"
    page.find_element(By.ID, "live-toggle").click()
    assert page.find_element(By.TAG_NAME, "body").get_attribute("data-live") == "off"
    assert page.execute_script("return window.pgqueueLive.timer") is None
    page.refresh()  # remembered in this browser
    wait(page).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-live") == "off")
    assert not page.find_element(By.ID, "live-toggle").is_selected()
    page.find_element(By.ID, "live-toggle").click()
    assert page.find_element(By.TAG_NAME, "body").get_attribute("data-live") == "on"
    page.get(live_server.url + "/?live=0")  # off for this visit, from the address
    assert page.find_element(By.TAG_NAME, "body").get_attribute("data-live") == "off"


def test_job_list_filters_and_pages_by_keyset(server: DashboardServer, page: Any) -> None:
    q = Queue("listed")
    jobs = [q.enqueue(tj.noop, i) for i in range(60)] + [q.enqueue(tj.add, i, i) for i in range(5)]
    Queue("elsewhere").enqueue(tj.noop)
    page.get(server.url + at("/jobs", status="queued", queue="listed"))
    ids = [r.get_attribute("data-job-id") for r in page.find_elements(By.CSS_SELECTOR, "#job-table tbody tr")]
    assert ids == [j.id for j in jobs[:50]]  # the order workers take them: FIFO here
    page.find_element(By.CSS_SELECTOR, "#pager a[rel=next]").click()
    wait(page).until(EC.url_contains("after="))
    assert "offset" not in page.current_url
    ids = [r.get_attribute("data-job-id") for r in page.find_elements(By.CSS_SELECTOR, "#job-table tbody tr")]
    assert ids == [j.id for j in jobs[50:]]
    assert not page.find_elements(By.CSS_SELECTOR, "#pager a[rel=next]")
    # Filters: the function (a part of its path), and a time range on enqueued_at.
    page.get(server.url + at("/jobs", status="queued", func="pgq_testjobs.add"))
    rows = page.find_elements(By.CSS_SELECTOR, "#job-table tbody tr")
    assert [r.get_attribute("data-job-id") for r in rows] == [j.id for j in jobs[60:]]
    assert "pgq_testjobs.add(4, 4)" in rows[-1].text
    page.get(server.url + at("/jobs", status="queued", until="1h"))  # enqueued over an hour ago: none
    assert "No job here that matches these filters" in page.find_element(By.ID, "job-table").text
    page.get(server.url + at("/jobs", status="queued", since="1h", queue="elsewhere"))
    assert len(page.find_elements(By.CSS_SELECTOR, "#job-table tbody tr[data-job-id]")) == 1


def test_failed_job_page_shows_every_attempt_and_requeue_works(server: DashboardServer, page: Any,
                                                                db: psycopg.Connection[Any]) -> None:
    job = failed_job("jobs", "bad input", retries=1)
    page.get(server.url + at("/job", id=job.id))
    assert page.find_element(By.CSS_SELECTOR, ".headline .status").text == "failed"
    assert page.find_element(By.ID, "call").text == "pgq_testjobs.fail('bad input')"
    attempts = page.find_elements(By.CSS_SELECTOR, "#errors details")
    assert len(attempts) == 2
    assert "Attempt 2: ValueError: bad input" in attempts[0].text
    traceback = attempts[0].find_element(By.CSS_SELECTOR, "pre").text
    assert "Traceback (most recent call last)" in traceback and "ValueError: bad input" in traceback
    timeline = page.find_element(By.ID, "timeline").text
    assert "enqueued" in timeline and "attempt 1 failed: ValueError" in timeline and "failed" in timeline
    press(page, "requeue")
    assert f"Job {job.id} requeued." in page.find_element(By.ID, "flash").text
    assert db.execute("SELECT status FROM pgqueue.jobs WHERE id = %s", [job.id]).fetchone() == ("queued",)


def test_a_job_argument_with_script_shows_as_text(server: DashboardServer, page: Any) -> None:
    evil = "<script>window.pwned = 1</script>"
    job = Queue("xss").enqueue(tj.echo, evil, other='<img src=x onerror="window.pwned = 2">',
                               meta={"note": evil}, description=evil)
    page.get(server.url + at("/job", id=job.id))
    assert evil in page.find_element(By.ID, "args").text
    assert evil in page.find_element(By.ID, "meta").text
    assert evil in page.find_element(By.ID, "call").text
    page.get(server.url + at("/jobs", status="queued", queue="xss"))
    assert "window.pwned = 1" in page.find_element(By.ID, "job-table").text
    page.get(server.url + "/")
    assert page.execute_script("return window.pwned") is None
    assert not page.find_elements(By.CSS_SELECTOR, "main script, main img")


def test_job_page_shows_progress_and_dependencies(server: DashboardServer, page: Any,
                                                  db: psycopg.Connection[Any]) -> None:
    q = Queue("deps")
    first = q.enqueue(tj.noop, 1)
    second = q.enqueue(tj.noop, 2, depends_on=first)
    db.execute("UPDATE pgqueue.jobs SET progress = %s WHERE id = %s",
               ['{"done": 3, "total": 10, "message": "resizing <b>images</b>"}', first.id])
    page.get(server.url + at("/job", id=first.id))
    bar = page.find_element(By.CSS_SELECTOR, "#progress progress")
    assert (bar.get_attribute("value"), bar.get_attribute("max")) == ("3", "10")
    assert "resizing <b>images</b>" in page.find_element(By.ID, "progress").text
    assert second.id in page.find_element(By.ID, "dependencies").text  # waiting on it
    page.get(server.url + at("/job", id=second.id))
    deps = page.find_element(By.ID, "dependencies").text
    assert first.id in deps and "queued" in deps
    assert page.find_element(By.CSS_SELECTOR, ".headline .status").text == "deferred"


def test_workers_page_shows_a_worker_and_its_current_job(server: DashboardServer, page: Any,
                                                         spawn_worker: Any) -> None:
    worker = spawn_worker("slow", "--name", "dash-worker")
    job = Queue("slow").enqueue(tj.sleep_then_record, 60, "dash")
    wait_for(lambda: job.get_status() == JobStatus.RUNNING, message="the job to run")
    page.get(server.url + "/workers")
    row = page.find_element(By.CSS_SELECTOR, 'tr[data-worker="dash-worker"]')
    cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
    assert cells[1] == "busy"
    assert cells[3] == str(worker.proc.pid)
    assert cells[4] == "slow"
    assert row.find_element(By.CSS_SELECTOR, ".current a").get_attribute("href").endswith(
        at("/job", id=job.id))
    assert cells[8] == "0"  # finished so far
    page.get(server.url + "/")
    assert "dash-worker" in page.find_element(By.ID, "workers").text


def test_health_page_names_the_transaction_holding_back_vacuum(health_server: DashboardServer, page: Any,
                                                               db: psycopg.Connection[Any],
                                                               snapshot_holder: psycopg.Connection[Any]) -> None:
    pid = snapshot_holder.info.backend_pid
    snapshot_aged(db, snapshot_holder)
    page.get(health_server.url + "/")
    page.find_element(By.LINK_TEXT, "Health").click()
    wait(page).until(EC.presence_of_element_located((By.ID, "findings")))
    assert page.current_url.endswith("/health")
    assert page.find_element(By.ID, "health-summary").text.startswith("1 problem(s) found at ")
    row = page.find_element(By.CSS_SELECTOR, 'tr[data-check="transactions"]')
    assert row.get_attribute("data-severity") == "problem"
    assert f"pid {pid} (nightly-report, role " in row.text and "idle in transaction since " in row.text, row.text
    assert "query: SELECT count(*) FROM pgqueue.jobs" in row.text, row.text
    first = page.find_element(By.CSS_SELECTOR, "#findings tbody tr")  # problems come first
    assert first.get_attribute("data-check") == "transactions"

    snapshot_holder.rollback()
    page.refresh()
    row = page.find_element(By.CSS_SELECTOR, 'tr[data-check="transactions"]')
    assert row.get_attribute("data-severity") == "ok" and str(pid) not in row.text
    checks = {r.get_attribute("data-check") for r in page.find_elements(By.CSS_SELECTOR, "#findings tbody tr")}
    assert checks == set(CHECKS)  # every check is shown, the ones that found nothing too


# -- actions ------------------------------------------------------------------------------------------------
def test_cancel_and_delete_from_the_job_list(server: DashboardServer, page: Any,
                                             db: psycopg.Connection[Any]) -> None:
    q = Queue("acts")
    keep, cancel, delete = (q.enqueue(tj.noop, i) for i in range(3))
    page.get(server.url + at("/jobs", status="queued", queue="acts"))
    press(page, "cancel", confirm=True,
          within=page.find_element(By.CSS_SELECTOR, f'tr[data-job-id="{cancel.id}"]'))
    assert f"Job {cancel.id} canceled." in page.find_element(By.ID, "flash").text
    press(page, "delete", confirm=True,
          within=page.find_element(By.CSS_SELECTOR, f'tr[data-job-id="{delete.id}"]'))
    assert f"Job {delete.id} deleted." in page.find_element(By.ID, "flash").text
    rows = dict(db.execute("SELECT id, status::text FROM pgqueue.jobs WHERE queue = 'acts'").fetchall())
    assert rows == {keep.id: "queued", cancel.id: "canceled"}


def test_requeue_all_failed_and_pause_resume_a_queue(server: DashboardServer, page: Any,
                                                     db: psycopg.Connection[Any]) -> None:
    for i in range(3):
        failed_job("batchq", f"fail {i}")
    page.get(server.url + at("/queue", name="batchq"))
    press(page, "requeue-failed", confirm=True)
    assert "3 failed jobs of batchq requeued" in page.find_element(By.ID, "flash").text
    assert db.execute("SELECT array_agg(DISTINCT status::text) FROM pgqueue.jobs WHERE queue = 'batchq'"
                      ).fetchone() == (["queued"],)
    press(page, "pause", confirm=True)
    assert Queue("batchq").is_paused
    assert "paused" in page.find_element(By.ID, "queue-state").text
    press(page, "resume")
    assert not Queue("batchq").is_paused


def test_suspend_and_resume_workers_from_the_overview(server: DashboardServer, page: Any) -> None:
    page.get(server.url + "/")
    press(page, "suspend", confirm=True)
    assert is_suspended()
    assert "suspended" in page.find_element(By.ID, "suspension").text
    press(page, "unsuspend")
    assert not is_suspended()


# -- security -----------------------------------------------------------------------------------------------
def test_a_post_without_the_csrf_token_is_refused(server: DashboardServer, db: psycopg.Connection[Any]) -> None:
    job = Queue("csrf").enqueue(tj.noop)
    cookie, token = csrf_pair(server.url + "/")
    headers = {"Cookie": f"pgqueue_csrf={cookie}"}
    cases = [({"id": job.id}, headers),  # no token
             ({"id": job.id, "csrf_token": "0" * 64}, headers),  # a wrong one
             ({"id": job.id, "csrf_token": token}, {}),  # the token, but not the cookie it was made for
             ({"id": job.id, "csrf_token": token}, {**headers, "Origin": "http://evil.example"})]
    for form, sent in cases:
        status, body, _ = http(server.url + "/action/cancel", form, sent)
        assert status == 403, (form, sent, body)
        assert "CSRF" in body
    assert job.get_status() == JobStatus.QUEUED
    status, _, response = http(server.url + "/action/cancel", {"id": job.id, "csrf_token": token, "next": "/"},
                               {**headers, "Origin": server.url})
    assert status == 303 and response["location"] == "/"
    assert job.get_status() == JobStatus.CANCELED


def test_read_only_shows_no_action_and_refuses_them(read_only_server: DashboardServer, page: Any) -> None:
    job = failed_job("ro")
    Queue("ro").enqueue(tj.noop)
    for path in ("/", at("/queue", name="ro", status="failed"), at("/job", id=job.id),
                 at("/jobs", status="queued"), "/workers"):
        page.get(read_only_server.url + path)
        assert page.find_element(By.CSS_SELECTOR, ".badge.mode").text == "read-only"
        assert page.find_elements(By.CSS_SELECTOR, "main form[method=post], main button[data-action]") == [], path
    cookie, token = csrf_pair(read_only_server.url + "/")
    for action, form in [("requeue", {"id": job.id}), ("delete", {"id": job.id}), ("pause", {"queue": "ro"}),
                         ("requeue-failed", {"queue": "ro"}), ("suspend", {})]:
        status, body, _ = http(read_only_server.url + f"/action/{action}", {**form, "csrf_token": token},
                               {"Cookie": f"pgqueue_csrf={cookie}"})
        assert status == 403 and "read-only" in body, action
    assert job.get_status() == JobStatus.FAILED
    assert not Queue("ro").is_paused and not is_suspended()


def test_binding_beyond_loopback_without_a_token_is_refused_in_one_line() -> None:
    for host in ("0.0.0.0", "::", "192.0.2.1"):
        result = run_cli("dashboard", "--host", host, "--port", "0", env={"PGQUEUE_DASHBOARD_TOKEN": ""})
        assert result.returncode == 2, result
        assert result.stdout == ""
        assert result.stderr.count("\n") == 1
        assert result.stderr.startswith(f"Error: --host {host} is not a loopback address")
        assert "--token" in result.stderr


def test_the_token_is_required_when_set(token_server: DashboardServer, page: Any,
                                        db: psycopg.Connection[Any]) -> None:
    job = Queue("tok").enqueue(tj.noop)
    assert http(token_server.url + "/")[0] == 303  # to the login form
    assert http(token_server.url + "/", headers={"Authorization": "Bearer wrong"})[0] == 303
    status, body, _ = http(token_server.url + at("/job", id=job.id), headers={"Authorization": "Bearer s3cret-token"})
    assert status == 200 and job.id in body
    status, body, _ = http(token_server.url + "/action/cancel", {"id": job.id})
    assert status == 401
    page.get(token_server.url + at("/job", id=job.id))
    wait(page).until(EC.title_contains("Sign in"))
    page.find_element(By.NAME, "token").send_keys("not-it")
    page.find_element(By.CSS_SELECTOR, "form.login button").click()
    wait(page).until(EC.presence_of_element_located((By.ID, "wrong-token")))
    page.find_element(By.NAME, "token").send_keys("s3cret-token")
    page.find_element(By.CSS_SELECTOR, "form.login button").click()
    wait(page).until(EC.title_contains(f"Job {job.id}"))  # back where it was going
    press(page, "cancel", confirm=True)
    assert job.get_status() == JobStatus.CANCELED
    assert "s3cret-token" not in str(page.get_cookies())


def test_only_loopback_host_names_are_answered_without_a_token(server: DashboardServer,
                                                               token_server: DashboardServer) -> None:
    assert http(server.url + "/", headers={"Host": "localhost"})[0] == 200
    assert http(server.url + "/", headers={"Host": f"attacker.example:{server.port}"})[0] == 421
    status, _, _ = http(token_server.url + "/login", headers={"Host": "dashboard.example"})
    assert status == 200  # with a token, any name: the token guards it


def test_every_response_forbids_framing_and_foreign_scripts(server: DashboardServer) -> None:
    status, _, headers = http(server.url + "/")
    assert status == 200
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    _, css, _ = http(server.url + "/static/dashboard.css")
    _, html, _ = http(server.url + "/")
    assert "http" not in re.sub(r'href="/[^"]*"', "", css) and "//" not in re.findall(r'src="([^"]+)"', html)[0]


def test_the_docs_screenshots_are_made_by_a_script(server: DashboardServer, page: Any, tmp_path: Path) -> None:
    from dashboard_shots import PAGES, fill_demo, take_screenshots

    failed_id = fill_demo()
    written = take_screenshots(page, server.url, tmp_path, failed_id)
    assert [p.name for p in written] == [f"dashboard-{name}.png" for name in PAGES]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


# -- the app alone (TestClient) -----------------------------------------------------------------------------
@pytest.fixture
def client(dsn: str) -> Iterator[TestClient]:
    with TestClient(create_app(dsn, limits=Limits(page=5, scan=20)), base_url="http://127.0.0.1") as c:
        yield c


def test_a_list_reads_at_most_its_cap_and_goes_on_from_there(client: TestClient) -> None:
    q = Queue("capped")
    for i in range(30):
        q.enqueue(tj.noop, i)
    wanted = [q.enqueue(tj.add, i, i).id for i in range(3)]
    first = client.get("/jobs", params={"status": "queued", "func": "add"})
    assert first.status_code == 200
    assert "data-job-id" not in first.text and "This page read 20 jobs" in first.text
    after = re.search(r'href="([^"]*after=[^"]*)" rel="next"', first.text).group(1)  # type: ignore[union-attr]
    second = client.get(after.replace("&amp;", "&"))
    assert re.findall(r'data-job-id="([^"]+)"', second.text) == wanted


def test_unknown_job_bad_filter_and_bad_cursor_are_clear_pages(client: TestClient) -> None:
    missing = client.get("/job", params={"id": "no-such-job"})
    assert missing.status_code == 404 and "No such job" in missing.text
    bad = client.get("/jobs", params={"status": "exploded"})
    assert bad.status_code == 400 and "status must be one of" in bad.text
    cursor = client.get("/jobs", params={"status": "queued", "after": "garbage!"})
    assert cursor.status_code == 400 and "cursor" in cursor.text
    since = client.get("/jobs", params={"status": "finished", "since": "yesterday-ish"})
    assert since.status_code == 400 and "neither a time" in since.text


def test_the_page_escapes_what_the_jobs_table_holds(client: TestClient) -> None:
    job = Queue("<b>q</b>").enqueue(tj.echo, "<script>alert(1)</script>")
    body = client.get("/job", params={"id": job.id}).text
    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    overview = client.get("/").text
    assert "<b>q</b>" not in overview and "&lt;b&gt;q&lt;/b&gt;" in overview
