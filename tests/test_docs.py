"""The SQL in docs/reporting.md runs against the real schema."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pgq_testjobs as tj
import psycopg
import pytest

from pgqueue import Queue, Retry, Worker

DOCS = Path(__file__).resolve().parent.parent / "docs"
QUERIES = re.findall(r"```sql\n(.*?)```", (DOCS / "reporting.md").read_text(), re.S)


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
