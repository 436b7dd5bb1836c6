"""Which of its queues a worker claims from, and in what order: the pauses in force (``pgqueue suspend``,
``Queue.pause``) and the dequeue strategy (RQ's ``--dequeue-strategy``).

The pauses are kept here, in memory, so a claim costs no statement more: they are read again when a
``pgqueue_control`` notification names one of this worker's scopes, at each fallback poll (which covers a
worker without LISTEN, or a notification lost with its connection), and when a pause's end comes.
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Sequence
from typing import Any

import psycopg

from .. import _store
from .._notify import ALL, QUEUE_SCOPE

log = logging.getLogger("pgqueue.worker")


class DequeueStrategy(str, enum.Enum):
    """The order in which a worker takes its queues (RQ's names and meanings).

    - ``default``: the order given, as priority: all runnable work on the first queue before the second.
    - ``round_robin``: each claim starts with the queue after the one the previous claim took jobs from.
    - ``random``: each claim takes the queues in a new random order.
    """

    DEFAULT = "default"
    ROUND_ROBIN = "round_robin"
    RANDOM = "random"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def of(cls, value: Any) -> DequeueStrategy:
        """``value`` (a DequeueStrategy or its name) as a DequeueStrategy, or ValueError naming them."""
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(repr(s.value) for s in cls)
            raise ValueError(f"dequeue_strategy must be one of {names}, not {value!r}") from None


class ClaimOrder:
    """The queues a worker claims from now, in the order of this claim."""

    def __init__(self, worker_name: str, queues: Sequence[str], strategy: DequeueStrategy) -> None:
        self.worker_name = worker_name
        self.queues = list(queues)
        self.strategy = strategy
        self.serving = list(queues)  # the queues not paused, in the order given; none while suspended
        self.suspended = False
        self.paused: set[str] = set()
        self.stale = True  # the pauses are to be read before the next claim
        self.last_served: str | None = None  # round_robin: the last queue the last claim took jobs from

    def order(self) -> list[str]:
        """The queues to claim from, in this claim's order (``default``: ``serving`` itself, no copy)."""
        serving = self.serving
        if self.strategy is DequeueStrategy.DEFAULT or len(serving) < 2:
            return serving
        if self.strategy is DequeueStrategy.RANDOM:
            return random.sample(serving, len(serving))
        if self.last_served not in serving:
            return serving
        after = serving.index(self.last_served) + 1
        return serving[after:] + serving[:after]

    # -- pauses ----------------------------------------------------------------------------------
    def concerns(self, scope: str) -> bool:
        """Whether a pause of ``scope`` (a pgqueue_control payload) is one of this worker's."""
        return scope == ALL or (scope.startswith(QUEUE_SCOPE) and scope[len(QUEUE_SCOPE):] in self.queues)

    def heard(self, scope: str) -> None:
        """A pgqueue_control notification: if the pause is one of ours, read the pauses before the next claim."""
        if self.concerns(scope):
            self.stale = True

    def read_pauses(self, conn: psycopg.Connection[Any]) -> tuple[bool, float | None]:
        """Read the pauses in force and apply them. Returns whether a queue became claimable again, and
        the seconds until the first of this worker's pauses ends by itself (None: none does)."""
        self.stale = False
        suspended, paused, ends, until = False, set(), [], {}
        for row in _store.pauses(conn, caller=False):
            if not self.concerns(row.scope):
                continue
            name = None if row.scope == ALL else row.scope[len(QUEUE_SCOPE):]
            if name is None:
                suspended = True
            else:
                paused.add(name)
            if row.seconds_left is not None:
                ends.append(row.seconds_left)
                until[name] = row.until
        before = set(self.serving)
        self._log_changes(suspended, paused, until)
        self.suspended, self.paused = suspended, paused
        self.serving = [] if suspended else [q for q in self.queues if q not in paused]
        return bool(set(self.serving) - before), (max(0.0, min(ends)) if ends else None)

    def _log_changes(self, suspended: bool, paused: set[str], until: dict[str | None, Any]) -> None:
        """Once when the worker is suspended and once when it resumes; the same for each paused queue."""
        name = self.worker_name
        if suspended and not self.suspended:
            log.info("Worker %s: suspended%s, run `pgqueue resume` to resume", name, _until(until.get(None)))
        elif self.suspended and not suspended:
            log.info("Worker %s: resumed", name)
        for queue in [q for q in self.queues if q in paused - self.paused]:
            log.info("Worker %s: queue %s paused%s, run `pgqueue resume --queue %s` to resume it", name, queue,
                     _until(until.get(queue)), queue)
        for queue in [q for q in self.queues if q in self.paused - paused]:
            log.info("Worker %s: queue %s resumed", name, queue)


def _until(when: Any) -> str:
    return "" if when is None else f" until {when:%Y-%m-%d %H:%M:%S %Z}".rstrip()
