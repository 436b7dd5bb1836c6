"""Checks of what enqueue is given, before anything is written: the job function (a worker imports it by
dotted path, so that path must lead back to the very callable given), and durations and numbers (parsed
here, in one place, and refused unless the row can hold them and they mean something)."""

from __future__ import annotations

import functools
import math
import numbers
import re
import types
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

_func_names: dict[Any, str] = {}  # callable -> dotted path, for the callables already enqueued once


def func_name_of(func: Callable[..., Any] | str) -> str:
    """The dotted path a worker imports: ``"pkg.module.func"``. Refuses what a worker could not call as
    given (see :func:`_name_of`)."""
    try:
        return _func_names[func]
    except (KeyError, TypeError):  # not seen yet, or unhashable
        pass
    if isinstance(func, str):
        if not func or func.startswith(".") or func.endswith(".") or "." not in func:
            raise ValueError(
                f"a job function given as a string must be a dotted path like 'pkg.mod.func', got {func!r}")
        if func.startswith("__main__."):
            raise ValueError(_in_main(func))
        return func
    name = _name_of(func)
    if len(_func_names) < 10_000:
        try:
            _func_names[func] = name
        except TypeError:  # unhashable callable
            pass
    return name


def _name_of(func: Callable[..., Any]) -> str:
    """The dotted path of ``func``: a module-level function, a staticmethod, a classmethod (read from the
    class it was called on: ``Sub.cm`` is ``mod.Sub.cm``), a builtin. Refused: a method bound to an
    instance (the worker would call the function without it, its arguments shifted), a partial, a callable
    instance, a lambda or a function defined inside another, and anything from ``__main__``."""
    if isinstance(func, functools.partial):
        raise TypeError(f"cannot enqueue {func!r}: a functools.partial has no dotted path for a worker to import; "
                        "enqueue the function itself with the partial's arguments: "
                        "q.enqueue(p.func, *p.args, **p.keywords)")
    owner = getattr(func, "__self__", None)
    module: str | None
    qualname: str | None
    if owner is not None and not isinstance(owner, types.ModuleType):  # a bound method (builtins: their module)
        if not isinstance(owner, type):
            raise ValueError(_bound_to_instance(func, owner))
        module, qualname = owner.__module__, f"{owner.__qualname__}.{func.__name__}"
    else:
        module, qualname = getattr(func, "__module__", None), getattr(func, "__qualname__", None)
    if not callable(func) or not module or not qualname:
        kind = type(func)
        what = (f"an instance of {kind.__module__}.{kind.__qualname__}, which a worker cannot rebuild"
                if callable(func) else "it is not callable")
        raise TypeError(f"cannot enqueue {func!r}: {what}; pass a module-level function (or a staticmethod or "
                        "classmethod) or its dotted path, with what it needs as arguments")
    if "<locals>" in qualname or "<lambda>" in qualname:
        raise ValueError(
            f"cannot enqueue {module}.{qualname}: workers import job functions by dotted path, so they must "
            "be defined at module level, not inside another function or as a lambda"
        )
    if module == "__main__":
        raise ValueError(_in_main(f"{module}.{qualname}"))
    return f"{module}.{qualname}"


def _bound_to_instance(func: Any, owner: Any) -> str:
    kind = type(owner)
    return (f"cannot enqueue {getattr(func, '__qualname__', func)!r} bound to an instance of "
            f"{kind.__module__}.{kind.__qualname__}: a worker imports the function by dotted path and cannot "
            "rebuild the instance (the job would run without it, its arguments shifted). Enqueue a module-level "
            "function (or a staticmethod or classmethod) and pass what identifies the instance, such as its id, "
            "as an argument; for an instance that is a module-level object a worker can import, pass the "
            "method's dotted path as a string ('module.instance.method')")


def _in_main(name: str) -> str:
    return (f"cannot enqueue {name}: it is defined in the script being run (__main__), which a worker cannot "
            "import (RQ refuses it too). Move it into a module the worker can import (e.g. tasks.py), import "
            "it from there and enqueue that")


# -- durations and numbers -------------------------------------------------------------------------
INT32_MAX = 2**31 - 1  # the integer columns: priority, result_ttl, failure_ttl, ttl, max_attempts
_FORMS = "seconds (an int or float), a timedelta, or a string such as '45s', '30m', '1h', '1d' or '1h30m'"
# RQ's strings: an integer ("90", "-1"), or digits and a unit ("1h"); here units may also follow each other.
_INTEGER = re.compile(r"[+-]?\d+")
_UNITS = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", re.IGNORECASE)
_UNIT_SECONDS = (86400, 3600, 60, 1)


def seconds(name: str, value: Any) -> float:
    """The duration option ``name`` in seconds. TypeError for a bool or anything not a duration,
    ValueError for a string that is not one, NaN, or a number too large for a float."""
    kind = type(value)
    if kind is int or kind is float:  # the common case first: no isinstance walk
        number: Any = value
    elif isinstance(value, timedelta):
        return value.total_seconds()
    elif isinstance(value, str):
        text = value.strip()
        units = _UNITS.fullmatch(text)
        if _INTEGER.fullmatch(text):
            number = int(text)
        elif text and units:
            number = sum(int(n) * unit for n, unit in zip(units.groups(), _UNIT_SECONDS, strict=True) if n)
        else:
            raise ValueError(f"{name}={value!r} is not a duration: pass {_FORMS}")
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = value
    else:
        raise TypeError(f"{name} takes {_FORMS}, not {type(value).__name__} {value!r}")
    try:
        result = float(number)
    except OverflowError:
        raise ValueError(f"{name}={value!r} is too large: pass {_FORMS}") from None
    if result != result:  # NaN
        raise ValueError(f"{name}={value!r} is not a duration: pass {_FORMS}")
    return result


def timeout(name: str, value: Any) -> float:
    """``job_timeout`` or ``default_timeout``: seconds > 0, or infinity for -1 (RQ's "no timeout"; the
    row holds ``'Infinity'``, which keeps its rule timeout_seconds > 0)."""
    if type(value) is int and 0 < value <= INT32_MAX:  # the common case, without the general path
        return float(value)
    number = seconds(name, value)
    if number == -1 or number == math.inf:
        return math.inf
    if number > 0:
        return number
    raise ValueError(f"{name}={value!r} is not a timeout: pass {_FORMS}, more than 0 seconds, or -1 for no timeout")


def kept_for(name: str, value: Any) -> int | None:
    """``result_ttl`` or ``failure_ttl``: whole seconds (rounded up) to keep an ended job; None (the default),
    -1 or any negative number (as RQ's -1) keep it forever."""
    if type(value) is int and 0 <= value <= INT32_MAX:
        return value
    if value is None:
        return None
    number = seconds(name, value)
    if number < 0 or number == math.inf:
        return None
    return _whole(name, value, number, "None or -1 to keep the job forever")


def ttl(value: Any) -> int | None:
    """``ttl``: whole seconds (rounded up) a job may wait to start; None or -1: no limit (RQ's -1)."""
    if type(value) is int and 0 < value <= INT32_MAX:
        return value
    if value is None:
        return None
    number = seconds("ttl", value)
    if number == -1 or number == math.inf:
        return None
    if number <= 0:
        raise ValueError(f"ttl={value!r} would expire the job before it could start: pass a number of seconds "
                         "more than 0 (or a string such as '30m'), or None or -1 for no limit")
    return _whole("ttl", value, number, "None or -1 for no limit")


def _whole(name: str, value: Any, number: float, instead: str) -> int:
    whole = math.ceil(number)
    if whole > INT32_MAX:
        raise ValueError(f"{name}={value!r} is more than the {INT32_MAX} seconds (68 years) a job's row can hold; "
                         f"pass {instead}")
    return whole


def delay(name: str, value: Any) -> float:
    """A delay before a job may run (enqueue_in, scheduled_in): any duration, at most 68 years either way."""
    number = seconds(name, value)
    if abs(number) > INT32_MAX:
        raise ValueError(f"{name}={value!r} is further away than {INT32_MAX} seconds (68 years): pass {_FORMS}")
    return number


def priority(value: Any) -> int:
    if type(value) is not int and (not isinstance(value, int) or isinstance(value, bool)):
        raise TypeError(f"priority must be an int (lower runs first), not {type(value).__name__} {value!r}")
    if not -INT32_MAX - 1 <= value <= INT32_MAX:
        raise ValueError(f"priority={value} is out of range: a priority is a 32-bit integer, from {-INT32_MAX - 1} "
                         f"to {INT32_MAX} (lower runs first)")
    return value


# -- dependencies ----------------------------------------------------------------------------------
def dependency_cycle(graph: dict[str, Sequence[str]]) -> list[str] | None:
    """A cycle among jobs of one batch (job id -> the ids it depends on), as ``[a, b, ..., a]``, or None.
    Each job in it would wait for the next to finish, for ever."""
    state: dict[str, bool] = {}  # True: on the path being walked; False: walked, no cycle through it
    for root in graph:
        if root in state:
            continue
        path, todo = [root], [iter(graph[root])]
        state[root] = True
        while todo:
            for dep in todo[-1]:
                if dep in graph and state.get(dep) is not False:
                    if state.get(dep):  # back on the path: a cycle
                        return path[path.index(dep):] + [dep]
                    state[dep] = True
                    path.append(dep)
                    todo.append(iter(graph[dep]))
                    break
            else:  # every dependency walked
                state[path.pop()] = False
                todo.pop()
    return None


MAX_KEY_BYTES = 1000  # job ids and unique keys: a B-tree entry must stay well under 2,704 bytes


UNIQUE_KEY_CONFLICTS = ("keep", "replace")


def unique_key_conflict(value: object, unique_key: str | None) -> bool:
    """``unique_key_conflict``: whether it is "replace" (else "keep", the default). ValueError for another
    value, or for "replace" without a unique_key."""
    if value not in UNIQUE_KEY_CONFLICTS:
        raise ValueError(f"unique_key_conflict={value!r}: pass 'keep' (the live job holding the key stays as it is, "
                         "the default) or 'replace' (a holder that has not started takes the new call)")
    if value == "replace" and unique_key is None:
        raise ValueError("unique_key_conflict='replace' goes with a unique_key: pass unique_key=... too")
    return value == "replace"


def key(option: str, value: object) -> str:
    """A job_id or unique_key: a non-empty str of at most MAX_KEY_BYTES (UTF-8), without NUL. Both are keys
    of unique indexes, whose entries PostgreSQL limits in size."""
    if not isinstance(value, str):
        raise TypeError(f"{option} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{option} must not be empty")
    if "\x00" in value:
        raise ValueError(f"{option} cannot contain NUL characters")
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_KEY_BYTES:
        raise ValueError(f"{option} must be at most {MAX_KEY_BYTES} bytes (UTF-8), not {size}: "
                         "use a shorter key, e.g. a hash of it")
    return value
