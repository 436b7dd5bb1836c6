"""Every SQL statement pgqueue runs, loaded once from the ``.sql`` files beside this module."""

from __future__ import annotations

import re
from importlib.resources import files

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


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

QUERIES: dict[str, str] = _parse(_read("queries.sql"))


def q(name: str) -> str:
    """The named query ``name`` from queries.sql."""
    return QUERIES[name]
