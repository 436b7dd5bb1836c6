"""COPY text for enqueue_many: one line per job, in the column order of the copy_jobs and
copy_simple_jobs queries (pgqueue/sql/queries.sql)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .queue import EnqueueData

NULL = "\\N"  # COPY text's NULL
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def json_field(text: str) -> str:
    """JSON text for COPY's text format: only its backslashes doubled (JSON never holds a raw tab or newline)."""
    return text.replace("\\", "\\\\") if "\\" in text else text


def text_field(value: str) -> str:
    """Escape a value for COPY's text format (a tab, newline and CR are not printable)."""
    return value if value.isprintable() and "\\" not in value else value.translate(_ESCAPES)


def plain_line(d: EnqueueData, id: str, queue: str, timeout: float) -> str:
    """A plain job (EnqueueData.plain) as one line for the copy_jobs query. ``queue`` is already escaped."""
    args = json_field(d.args_json)
    if d.simple:
        return (f"{id}\t{queue}\t{text_field(d.func_name)}\t{args}\t{{}}\tqueued\t0\t\\N\t{{}}\t1\t{{}}\t"
                f"{timeout!r}\t\\N\t\\N\t\\N\tnow\t\\N\n")
    kwargs, meta = json_field(d.kwargs_json), json_field(d.meta_json)
    intervals = "{" + ",".join(map(repr, d.intervals)) + "}" if d.intervals else "{}"
    description, result_ttl, failure_ttl, ttl = d.description, d.result_ttl, d.failure_ttl, d.ttl
    return (f"{id}\t{queue}\t{text_field(d.func_name)}\t{args}\t{kwargs}\t"
            f"{'scheduled' if d.scheduled_at else 'queued'}\t{d.priority}\t"
            f"{NULL if description is None else text_field(description)}\t{meta}\t"
            f"{d.max_attempts}\t{intervals}\t{timeout!r}\t{NULL if result_ttl is None else result_ttl}\t"
            f"{NULL if failure_ttl is None else failure_ttl}\t{NULL if ttl is None else ttl}\t"
            f"{d.scheduled_at.isoformat() if d.scheduled_at else 'now'}\t"
            f"{NULL if d.traceparent is None else text_field(d.traceparent)}\n")


def simple_line(d: EnqueueData, id: str, queue: str, timeout: float) -> str:
    """A simple job (EnqueueData.simple) as one line for the copy_simple_jobs query: five columns."""
    return f"{id}\t{queue}\t{text_field(d.func_name)}\t{json_field(d.args_json)}\t{timeout!r}\n"


def member_line(line: Callable[[EnqueueData, str, str, float], str], batch_id: str) -> Callable[..., str]:
    """``line``, for the COPY of members of a batch: the batch's id is the last column."""
    suffix = "\t" + text_field(batch_id) + "\n"

    def member(d: EnqueueData, id: str, queue: str, timeout: float) -> str:
        return line(d, id, queue, timeout)[:-1] + suffix

    return member
