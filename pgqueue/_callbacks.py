"""Callbacks and retrying on chosen exceptions, as enqueue takes them: ``on_success``, ``on_failure`` and
``on_stopped`` (RQ's options, each a function, a dotted path or a :class:`Callback`) become the
``jobs.callbacks`` column; ``Retry(on=...)`` becomes ``jobs.retry_on``. Both are refused here, before anything
is written, when a worker could not import what they name. The worker runs them: pgqueue/worker/_execute.py.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable, Iterable
from typing import Any

from . import _options

#: A callback's timeout in seconds when none is given (RQ's CALLBACK_TIMEOUT).
CALLBACK_TIMEOUT = 60.0

#: enqueue's callback options, and the key of each in ``jobs.callbacks``.
CALLBACK_OPTIONS = {"on_success": "success", "on_failure": "failure", "on_stopped": "stopped"}
_OPTION_OF = {key: option for option, key in CALLBACK_OPTIONS.items()}


class Callback:
    """A callback with a timeout of its own: ``on_failure=Callback(report, timeout=10)`` (RQ's class).

    ``func`` is a module-level function or its dotted path, as for a job function: a worker imports it.
    ``timeout`` is a duration (seconds, a timedelta or a string such as ``"2m"``; -1: none), 60 seconds by
    default, after which the job's process stops the callback.
    """

    def __init__(self, func: Callable[..., Any] | str, timeout: Any = None) -> None:
        self.func = func
        self.timeout = CALLBACK_TIMEOUT if timeout is None else _options.timeout("Callback timeout", timeout)
        self.name = callback_name(func, "Callback(...)")

    def __repr__(self) -> str:
        return f"Callback({self.name!r}, timeout={self.timeout:g})"


def callback_name(func: Any, option: str) -> str:
    """The dotted path a worker imports for the callback ``func`` given as ``option``; refuses what it could
    not import and call, with the reason and what to do instead."""
    if inspect.isclass(func):
        raise TypeError(f"{option} takes a function or its dotted path, not the class {func.__module__}."
                        f"{func.__qualname__}: pass a module-level function that takes RQ's callback arguments")
    if inspect.iscoroutinefunction(func):
        raise TypeError(f"{option}={func.__qualname__} is a coroutine function; callbacks run as plain calls in "
                        "the job's process: pass a plain (def) function")
    try:
        return _options.func_name_of(func)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{option}: a worker imports callbacks by dotted path, as it does job functions, and "
                        f"cannot import this one: {exc}") from None


def callbacks_json(on_success: Any, on_failure: Any, on_stopped: Any) -> str | None:
    """The ``jobs.callbacks`` value for these options: ``{"success": {"func": "mod.f", "timeout": 60}, ...}``
    with a null timeout for none; None without any callback."""
    stored: dict[str, dict[str, Any]] = {}
    for option, value in (("on_success", on_success), ("on_failure", on_failure), ("on_stopped", on_stopped)):
        if value is None:
            continue
        if isinstance(value, Callback):
            name, timeout = value.name, value.timeout
        else:
            name, timeout = callback_name(value, option), CALLBACK_TIMEOUT
        stored[CALLBACK_OPTIONS[option]] = {"func": name, "timeout": None if math.isinf(timeout) else timeout}
    return json.dumps(stored, separators=(",", ":")) if stored else None


def stored_callback(callbacks: str, key: str) -> tuple[str, str, float] | None:
    """From a ``jobs.callbacks`` value, the callback for ``key`` (success, failure, stopped) as (the option's
    name, its dotted path, its timeout in seconds: infinity for none), or None. ValueError, naming the
    column, for a value that enqueue does not write (SQL of one's own can)."""
    try:
        entry = json.loads(callbacks).get(key)
        if entry is None:
            return None
        func, timeout = entry["func"], entry.get("timeout")
        if not isinstance(func, str) or not (timeout is None or type(timeout) in (int, float) and timeout > 0):
            raise TypeError
    except (ValueError, TypeError, KeyError, AttributeError):
        raise ValueError(f"pgqueue.jobs.callbacks must be a JSON object like {{\"{key}\": {{\"func\": "
                         f"\"module.function\", \"timeout\": 60}}}} (timeout: seconds > 0, or null for none), "
                         f"got {callbacks!r}") from None
    return _OPTION_OF[key], func, math.inf if timeout is None else float(timeout)


# -- Retry(on=...) ---------------------------------------------------------------------------------
def exception_names(on: Any) -> tuple[str, ...]:
    """``Retry(on=...)``: an exception class, its dotted path, or an iterable of them, as the dotted paths
    that ``jobs.retry_on`` holds (builtins as ``builtins.ConnectionError``)."""
    items = [on] if isinstance(on, (str, type)) else _listed(on)
    if not items:
        raise ValueError("Retry(on=()) would retry no failure at all: name the exception classes to retry on, "
                         "or leave on= out to retry on any failure (or pass max=0 for no retry)")
    return tuple(dict.fromkeys(_exception_name(item) for item in items))


def _listed(on: Any) -> list[Any]:
    if isinstance(on, Iterable):
        return list(on)
    raise TypeError(f"Retry(on=...) takes an exception class, its dotted path, or a tuple of them, not "
                    f"{type(on).__name__} {on!r}")


def _exception_name(item: Any) -> str:
    if isinstance(item, str):
        if item.startswith("__main__."):
            raise ValueError(f"Retry(on={item!r}): a worker cannot import from the script being run (__main__); "
                             "define the exception class in a module the worker imports")
        if "." not in item or any(not part.isidentifier() for part in item.split(".")):
            raise ValueError(f"Retry(on={item!r}): an exception given as a string must be a dotted path like "
                             "'requests.exceptions.ConnectionError' (builtins: 'builtins.ConnectionError')")
        return item
    if not (isinstance(item, type) and issubclass(item, BaseException)):
        raise TypeError(f"Retry(on=...) takes exception classes or their dotted paths, not {type(item).__name__} "
                        f"{item!r}")
    name = f"{item.__module__}.{item.__qualname__}"
    if "<locals>" in item.__qualname__ or item.__module__ == "__main__":
        raise ValueError(f"Retry(on={name}): a worker imports the classes in on= by dotted path, so they must be "
                         "defined at module level in a module it can import (not in __main__ or in a function)")
    return name
