"""A real `pgqueue dashboard` process and a real browser (Debian's chromium and chromium-driver, driven by
selenium), for tests/test_dashboard.py and tests/dashboard_shots.py."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from conftest import wait_for

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER = ("/usr/bin/chromedriver",)
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1300,1000"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DashboardServer:
    """``pgqueue dashboard`` in a process of its own, on a free port of 127.0.0.1, its output in a file."""

    def __init__(self, dsn: str, *args: str, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pgqueue.cli", "dashboard", "--dsn", dsn, "--port", str(self.port), *args],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: self._answers() or self.proc.poll() is not None, message="the dashboard to listen")
        assert self.proc.poll() is None, f"the dashboard exited:\n{self.output}"

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/static/dashboard.css", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


def browser_missing() -> str | None:
    """Why no browser can run here, or None."""
    if not any(os.path.exists(p) for p in CHROMIUM) or not any(os.path.exists(p) for p in CHROMEDRIVER):
        return ("Chromium and chromedriver are not installed (apt-get install chromium chromium-driver; "
                ".ci/run installs them where apt works)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


def start_browser() -> tuple[Any, str]:
    """A headless Chromium (and its fresh profile folder, to delete afterwards)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="pgqueue-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = next(p for p in CHROMIUM if os.path.exists(p))
    for flag in [*CHROME_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    service = Service(next(p for p in CHROMEDRIVER if os.path.exists(p)))
    return webdriver.Chrome(options=options, service=service), profile


def stop_browser(driver: Any, profile: str) -> None:
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)
