"""Checks of what enqueue is given, before anything is written: the job function (a worker imports it by
dotted path, so that path must lead back to the very callable given)."""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
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
