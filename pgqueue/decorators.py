"""The ``@job`` decorator: ``send.delay(...)`` enqueues with the decorator's options, ``send(...)`` is
still a plain call."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ._options import func_name_of
from .connections import database
from .job import Job
from .queue import Queue

R = TypeVar("R")


class DelayedFunction(Generic[R]):
    """A job function with ``.delay`` and ``.enqueue_call``; calling it runs it directly."""

    def __init__(self, func: Callable[..., R], queue: Queue | str, dsn: Any, options: dict[str, Any]):
        func_name_of(func)  # refuses at once what could never run as a job (a bound method, a __main__ function)
        functools.update_wrapper(self, func)
        self.func = func
        self.queue = queue if isinstance(queue, Queue) else Queue(queue, dsn=dsn)
        self.options = options

    def __call__(self, *args: Any, **kwargs: Any) -> R:
        return self.func(*args, **kwargs)

    def delay(self, *args: Any, **kwargs: Any) -> Job:
        """Enqueue a call with the decorator's options; reserved keywords given here override them."""
        return self.queue.enqueue(self.func, *args, **{**self.options, **kwargs})

    def enqueue_call(self, args: Any = None, kwargs: Any = None, **options: Any) -> Job:
        return self.queue.enqueue_call(self.func, args=args, kwargs=kwargs, **{**self.options, **options})


def job(queue: Queue | str = "default", connection: Any = None, timeout: Any = None, *, dsn: Any = None,
        **options: Any) -> Callable[[Callable[..., R]], DelayedFunction[R]]:
    """Decorate a module-level function as a job of ``queue``; ``options`` are ``enqueue``'s
    (``retry=3``, ``job_timeout=30``, ``result_ttl=...``). As RQ's decorator, it also takes ``connection``
    (a URL or a :class:`pgqueue.Connection`, as ``dsn``) and ``timeout`` (``job_timeout``)."""
    dsn = database(dsn, connection, where="@job()")
    if timeout is not None:
        if "job_timeout" in options:
            raise TypeError("@job() takes job_timeout= or RQ's timeout=, not both")
        options["job_timeout"] = timeout

    def decorator(func: Callable[..., R]) -> DelayedFunction[R]:
        return DelayedFunction(func, queue, dsn, options)

    return decorator
