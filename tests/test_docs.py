"""The docs' examples run: the SQL in docs/reporting.md against the real schema, and every example a page
marks as runnable.

A fenced block whose info string has the word ``run`` (```` ```python run ```` or ```` ```console run ````)
is part of its page's example: the page's runnable blocks make one script, run top to bottom in a fresh
directory against the test database (python blocks as they are, console blocks as shell commands: the lines
starting with ``$ ``, or every line if none does, must exit 0). A python block whose first line is
``# NAME.py`` is written there as that module first (the job functions a worker imports), run or not.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest

from pgqueue import Queue, Retry, Worker

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
QUERIES = re.findall(r"```sql\n(.*?)```", (DOCS / "reporting.md").read_text(), re.S)
_FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.S | re.M)
_MODULE = re.compile(r"#\s*([\w/]+\.py)\s*$")
PAGES = sorted(p for p in [ROOT / "README.md", *DOCS.glob("*.md")]
               if any("run" in info.split() for _, info, _ in _FENCE.findall(p.read_text())))


def test_reporting_has_three_queries() -> None:
    assert len(QUERIES) >= 3


@pytest.mark.parametrize("query", QUERIES, ids=[f"query{i + 1}" for i in range(len(QUERIES))])
def test_reporting_query_runs(query: str, db: psycopg.Connection[Any]) -> None:
    q = Queue("reports")
    for i in range(5):
        q.enqueue(tj.add, i, i)
    q.enqueue(tj.fail, "for the report", retry=Retry(max=1))
    Worker(["reports"]).work(burst=True)
    rows = db.execute(query).fetchall()
    assert rows, f"the query returned nothing on a database with finished and failed jobs:\n{query}"


def example_script(page: Path, folder: Path) -> str:
    """Write the page's modules into ``folder``; return its runnable blocks as one Python script."""
    parts = ["import subprocess as _subprocess\n",
             "def _sh(command):\n    _subprocess.run(command, shell=True, check=True)\n"]
    for lang, info, body in _FENCE.findall(page.read_text()):
        first = body.splitlines()[0] if body.strip() else ""
        module = _MODULE.fullmatch(first.strip()) if lang == "python" else None
        if module:
            path = folder / module.group(1)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
        if "run" not in info.split():
            continue
        if lang == "python" and not module:
            parts.append(textwrap.dedent(body))
        elif lang == "console":
            lines = [line for line in body.splitlines() if line.strip() and not line.startswith("#")]
            commands = [line[2:] for line in lines if line.startswith("$ ")] or lines
            parts += [f"_sh({command!r})\n" for command in commands]
    return "\n".join(parts)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_the_pages_runnable_example_runs(page: Path, tmp_path: Path, dsn: str) -> None:
    script = tmp_path / "example.py"
    script.write_text(example_script(page, tmp_path))
    # Not what other tests of this process set up for themselves (tests/frameworks: a Django project's).
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env = {**clean, "PGQUEUE_DATABASE_URL": dsn, "PYTHONPATH": str(tmp_path),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=170)
    assert done.returncode == 0, f"{page.name}'s example failed:\n{done.stdout}\n{done.stderr}"
