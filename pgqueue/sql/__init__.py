"""Every SQL statement pgqueue runs, loaded once from the ``.sql`` files beside this module."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from importlib.resources import files

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_PARAM = re.compile(r"%\((\w+)\)s")  # psycopg's named placeholders


def _read(filename: str) -> str:
    return files(__package__).joinpath(filename).read_text(encoding="utf-8")


def _parse(text: str) -> dict[str, str]:
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [line for line in body.strip().splitlines() if not line.lstrip().startswith("--")]
        queries[name] = "\n".join(lines).strip()
    return queries


SCHEMA: str = _read("schema.sql")
"""The DDL of the newest schema revision, as ``pgqueue schema --sql`` prints it."""

REVISION = "0006"
"""The schema revision these statements need (the alembic head: tests/test_schema.py checks)."""

#: Each file's statements, by purpose; a name is unique across them all.
_FILES = (
    "queries.sql",  # enqueueing, the worker's claim and completion, job control
    "inspect.sql",  # RQ's inspection API (registries, Queue.all, Worker.all)
    "schedules.sql",  # periodic jobs: the worker's scheduler, `pgqueue schedules`
    "ops.sql",  # `pgqueue jobs`, `show`, `purge` and `doctor`
    "dashboard.sql",  # the web dashboard's reads (pgqueue/dashboard/)
    "metrics.sql",  # pgqueue.metrics' database collector (`pgqueue metrics`)
    "workflows.sql",  # batches, the dependency failure policy, chains
)
QUERIES: dict[str, str] = {}
for _file in _FILES:
    _queries = _parse(_read(_file))
    assert not set(_queries) & set(QUERIES), f"a statement name of {_file} is used in another .sql file"
    QUERIES.update(_queries)


def q(name: str) -> str:
    """The named query ``name`` from one of this package's .sql files (names are unique across them)."""
    return QUERIES[name]


@functools.cache
def statement(name: str) -> tuple[bytes, bytes, tuple[str, ...]]:
    """Query ``name`` ready for libpq's prepared statements (_db.run, the worker's finish_jobs): the
    statement's name on the server (``pgqueue_<name>``), the query with its ``%(name)s`` placeholders
    turned into ``$1, $2, ...``, and the parameter names in that order (a name used twice keeps one
    number)."""
    names: list[str] = []

    def number(m: re.Match[str]) -> str:
        if m.group(1) not in names:
            names.append(m.group(1))
        return f"${names.index(m.group(1)) + 1}"

    text = _PARAM.sub(number, q(name))
    return b"pgqueue_" + name.encode(), text.encode(), tuple(names)


# Array parameters. psycopg adapts a list element by element in Python; for the worker's batches of up
# to 1,000 outcomes that cost a third of its own CPU time. These build PostgreSQL's array literal with a
# few str methods (C loops) instead. The literal is still ONE bound parameter (``%(ids)s::text[]``),
# parsed by the server's array input: it is data, never SQL text.


def text_array(values: Sequence[str]) -> str:
    """Each element double-quoted, with backslashes and quotes escaped. Elements are str without NUL
    (PostgreSQL text cannot hold it; here it separates the elements while they are escaped)."""
    if not values:
        return "{}"
    joined = "\x00".join(values)
    if joined.count("\x00") != len(values) - 1:
        raise ValueError("PostgreSQL text cannot contain NUL characters")
    joined = joined.replace("\\", "\\\\").replace('"', '\\"')
    return '{"' + joined.replace("\x00", '","') + '"}'


def number_array(values: Sequence[int | float]) -> str:
    """``{1,2.5}``: ints and finite floats."""
    return "{" + ",".join(map(str, values)) + "}"


def bool_array(values: Sequence[bool]) -> str:
    """``{t,f}``."""
    return "{" + ",".join("t" if v else "f" for v in values) + "}"
