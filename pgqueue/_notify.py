"""The one owner of NOTIFY payload size.

PostgreSQL refuses a payload of 8,000 bytes or more ("payload string too long"), and the error aborts the
statement that sent it. pgqueue sends four kinds of notification:

- ``pgqueue_jobs``: one queue name (new runnable work). :func:`check_queue_name` bounds queue names where
  they enter (``Queue``, ``Worker``), so such a payload always fits.
- ``pgqueue_done``: comma-separated ids of jobs that ended, for ``job.wait()``. Every statement that sends
  ids gets them numbered by :func:`chunk_numbers` (its ids come from Python) or sends the payloads of
  :func:`payloads` (its ids come back from the server first), so no payload ever reaches the limit,
  however many ids a batch holds. An id too long to fit alone is not sent at all: ``job.wait()`` on such a
  job sees its end at its next re-check instead (every few seconds).
- ``pgqueue_control``: the scope of a pause that began or ended (``pgqueue suspend``, ``Queue.pause``):
  ``all``, or ``queue:`` and a queue name, made by :func:`pause_scope`, so it always fits too. And a running
  job that was canceled, for its worker: ``cancel:WORKER_ID:CLAIM:JOB_ID``, which the cancel_job statement
  writes (the worker and claim are the row's) when :func:`cancel_fits` says it fits, and :func:`cancel_of`
  reads. A worker that is not told (an id too long) finds the cancel at its next fallback poll.
- ``pgqueue_progress``: the id of a job whose progress changed, for ``job.progress_updates()``, sent only
  when :func:`fits` says it fits (else the waiter sees the change at its next re-check).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

PAYLOAD_BYTES = 7900  # under PostgreSQL's limit of 7,999 bytes, with room to spare
MAX_NAME_BYTES = 1000  # queue names (UTF-8)
UNSENT = -1  # chunk number of an id too long to send


def check_queue_name(name: object) -> str:
    """``name`` if it is a valid queue name, else ValueError saying why."""
    if not isinstance(name, str) or not name:
        raise ValueError("a queue needs a non-empty name (a str)")
    if "\x00" in name:
        raise ValueError("a queue name cannot contain NUL characters")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise ValueError(f"a queue name must be at most {MAX_NAME_BYTES} bytes (UTF-8), not {len(name.encode())}")
    return name


ALL = "all"  # the scope of a pause of every worker (pgqueue suspend)
QUEUE_SCOPE = "queue:"  # the scope of a paused queue: this, then its name


def pause_scope(queue: str | None = None) -> str:
    """The scope of a pause, which is also the payload of the ``pgqueue_control`` notification telling
    workers of it: ``all`` (``queue`` None), else ``queue:NAME`` for a valid queue name."""
    return ALL if queue is None else QUEUE_SCOPE + check_queue_name(queue)


CANCEL = "cancel:"  # the prefix of a canceled running job's notification to its worker
_CANCEL_ROOM = len(CANCEL) + 20 + 1 + 11 + 1  # the prefix, a bigint worker id, an int claim, two colons


def cancel_fits(job_id: str) -> bool:
    """Whether the notification telling a worker that its job ``job_id`` was canceled fits in a payload."""
    return len(job_id.encode()) + _CANCEL_ROOM < PAYLOAD_BYTES


def cancel_of(payload: str) -> tuple[int, int, str] | None:
    """(worker id, claim, job id) of a ``cancel:`` payload of pgqueue_control; None for any other payload."""
    if not payload.startswith(CANCEL):
        return None
    worker, _, rest = payload[len(CANCEL):].partition(":")
    claim, _, job_id = rest.partition(":")
    try:
        return int(worker), int(claim), job_id
    except ValueError:
        return None


def chunk_numbers(ids: Sequence[str]) -> list[int]:
    """Numbers ``ids`` so that the ids of each number, comma-joined, fit in one payload (UNSENT for an id
    that cannot fit alone). The statement then sends one NOTIFY per number."""
    if sum(map(len, ids)) + len(ids) <= PAYLOAD_BYTES and all(map(str.isascii, ids)):
        return [0] * len(ids)  # the common case: one payload
    chunks, chunk, size = [], 0, 0
    for job_id in ids:
        n = len(job_id.encode()) + 1
        if n > PAYLOAD_BYTES:
            chunks.append(UNSENT)
            continue
        size += n
        if size > PAYLOAD_BYTES:
            chunk, size = chunk + 1, n
        chunks.append(chunk)
    return chunks


def fits(job_id: str) -> bool:
    """Whether ``job_id`` alone fits in a payload (statements that end one job notify only then)."""
    return len(job_id.encode()) < PAYLOAD_BYTES


def payloads(ids: Iterable[str]) -> list[str]:
    """The payloads that carry ``ids``: comma-joined, each under the limit."""
    groups: dict[int, list[str]] = {}
    ids = list(ids)
    for job_id, chunk in zip(ids, chunk_numbers(ids), strict=True):
        if chunk != UNSENT:
            groups.setdefault(chunk, []).append(job_id)
    return [",".join(group) for group in groups.values()]
