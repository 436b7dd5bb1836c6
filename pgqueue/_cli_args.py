"""What ``pgqueue enqueue`` is given on the command line: the function's arguments in RQ's notation (``rq
enqueue``), ``--args`` / ``--kwargs`` as JSON, and when the job runs. Nothing here evaluates Python: a
``%`` value is read by ``ast.literal_eval``, which takes literals only.

RQ's notation, one shell word per argument:

=====================  ===========================================
``text``               a positional argument, the string ``text``
``key=text``           a keyword argument, a string
``:json``              a positional argument, read as JSON
``key:=json``          a keyword argument, read as JSON
``%literal``           a positional argument, a Python literal
``key%=literal``       a keyword argument, a Python literal
``@file`` (any value)  the value is the file's content (``key:=@file.json``, ``@notes.txt``)
=====================  ===========================================

Each function raises ValueError with a message for the ``Error:`` line; the caller makes it a usage error.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from . import _options, _serialize

_NUMBER = re.compile(r"\d+(\.\d*)?|\.\d+")


def number_or_text(value: str) -> float | str:
    """A duration option's value: a plain number as seconds (``0.5``), else the text (``30m``, ``-1``),
    which pgqueue's durations read."""
    return float(value) if _NUMBER.fullmatch(value.strip()) else value


def durations(timeout: str | None, result_ttl: str | None, failure_ttl: str | None,
              ttl: str | None) -> dict[str, Any]:
    """enqueue's duration options from those given, checked as enqueue checks them, named as on the
    command line."""
    checks: dict[str, tuple[str, str | None, Callable[[str, Any], Any]]] = {
        "job_timeout": ("--timeout", timeout, _options.timeout),
        "result_ttl": ("--result-ttl", result_ttl, _options.kept_for),
        "failure_ttl": ("--failure-ttl", failure_ttl, _options.kept_for),
        "ttl": ("--ttl", ttl, lambda name, value: _options.ttl(value))}
    return {option: check(name, number_or_text(value)) for option, (name, value, check) in checks.items()
            if value is not None}


def _json(what: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:  # JSONDecodeError
        raise ValueError(f"{what}: not valid JSON ({exc}): {_shorten(text)}") from None
    except RecursionError:
        raise ValueError(f"{what}: JSON nested too deeply: {_shorten(text)}") from None


def _literal(what: str, text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
        raise ValueError(f"{what}: not a Python literal ({type(exc).__name__}; '%' takes literals only, such "
                         f"as 3, 2.5, 'text', [1, 2], {{'a': 1}}, True or None): {_shorten(text)}") from None


def _shorten(text: str, width: int = 60) -> str:
    return repr(text if len(text) <= width else text[:width] + "...")


def _read(what: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{what}: cannot read @{path}: {exc.strerror if isinstance(exc, OSError) else exc}") \
            from None


def _split(argument: str) -> tuple[str | None, str, str]:
    """``(keyword or None, mode, value)``: mode ``text``, ``json`` or ``literal`` (RQ's rules)."""
    if argument.startswith(":"):
        return None, "json", argument[1:]
    if argument.startswith("%"):
        return None, "literal", argument[1:]
    equals = argument.find("=")
    if equals <= 0:
        return None, "text", argument
    marker = argument[equals - 1]
    if marker == ":" and argument.index(":") == equals - 1:
        return argument[:equals - 1], "json", argument[equals + 1:]
    if marker == "%" and argument.index("%") == equals - 1:
        return argument[:equals - 1], "literal", argument[equals + 1:]
    return argument[:equals], "text", argument[equals + 1:]


def parse_argument(argument: str, position: int) -> tuple[str | None, Any]:
    """One argument in RQ's notation: ``(keyword or None, value)``."""
    keyword, mode, value = _split(argument)
    what = f"argument {keyword!r}" if keyword is not None else f"argument {position} ({_shorten(argument)})"
    if keyword is not None and not keyword.isidentifier():
        raise ValueError(f"{what}: {keyword!r} is not a keyword argument's name; to pass text with '=' in it, "
                         f"give it as JSON: ':{json.dumps(argument)}'")
    if value.startswith("@"):
        value = _read(what, value[1:])
    if mode == "json":
        return keyword, _json(what, value)
    if mode == "literal":
        return keyword, _literal(what, value)
    return keyword, value


def parse_function_args(arguments: Sequence[str], args_json: str | None = None,
                        kwargs_json: str | None = None) -> tuple[list[Any], dict[str, Any]]:
    """The function's positional and keyword arguments: ``--args`` (a JSON array) first, then the
    positional ones of ``arguments``; ``--kwargs`` (a JSON object) and the keyword ones, each name once."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    if args_json is not None:
        args = _json("--args", args_json)
        if not isinstance(args, list):
            raise ValueError(f"--args takes a JSON array, such as '[1, \"two\"]', not {_shorten(args_json)}")
    if kwargs_json is not None:
        kwargs = _json("--kwargs", kwargs_json)
        if not isinstance(kwargs, dict):
            raise ValueError(f"--kwargs takes a JSON object, such as '{{\"a\": 1}}', not {_shorten(kwargs_json)}")
    for argument in arguments:
        keyword, value = parse_argument(argument, len(args) + 1)
        try:
            _serialize.dumps(value)  # what a job's arguments cannot hold, refused naming the argument
        except TypeError as exc:
            raise ValueError(f"argument {keyword or len(args) + 1!r} ({_shorten(argument)}): {exc}") from None
        if keyword is None:
            args.append(value)
        elif keyword in kwargs:
            raise ValueError(f"keyword argument {keyword!r} is given twice")
        else:
            kwargs[keyword] = value
    return args, kwargs


def parse_schedule(at: str | None, delay: str | None) -> dict[str, Any]:
    """The enqueue options of ``--schedule-at`` / ``--schedule-in``: ``scheduled_at`` (ISO 8601; without an
    offset, this machine's local time, as RQ takes it) or ``scheduled_in`` (a duration)."""
    if at is not None and delay is not None:
        raise ValueError("give --schedule-at or --schedule-in, not both")
    if delay is not None:
        return {"scheduled_in": _options.delay("--schedule-in", number_or_text(delay))}
    if at is None:
        return {}
    text = at.strip()
    try:
        when = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise ValueError(f"--schedule-at {at!r} is not an ISO 8601 time such as 2030-01-01T09:00:00 (local time) "
                         "or 2030-01-01T09:00:00+00:00") from None
    return {"scheduled_at": when if when.tzinfo is not None else when.astimezone(timezone.utc)}
