"""JSON in and out: the one place that decides how arguments, results and meta are stored.

Plain JSON types are stored as they are, so they read naturally in SQL. ``datetime``, ``date``,
``UUID`` and ``Decimal`` are stored as one-key objects (``{"$datetime": "2030-01-01T00:00:00+00:00"}``)
and come back as the same type. Tuples come back as lists. Anything else raises ``TypeError``.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import json
import re
import sys
import uuid
from typing import Any

_TAGS = ("$datetime", "$date", "$uuid", "$decimal")
_FLAT = frozenset({int, str, bool, type(None)})


def _default(value: Any) -> Any:
    if isinstance(value, _dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, _dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"$uuid": str(value)}
    if isinstance(value, decimal.Decimal):
        return {"$decimal": str(value)}
    raise TypeError(
        f"pgqueue stores arguments, results and meta as JSON; {type(value).__module__}."
        f"{type(value).__qualname__} is not JSON-serialisable (supported: str, int, float, bool, None, "
        "list, tuple, dict with str keys, datetime, date, UUID, Decimal)"
    )


_encoder = json.JSONEncoder(default=_default, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
# The C encoder that JSONEncoder.encode builds afresh on every call, built once. Without its circular
# reference markers: _check_keys walks the value first, and a cycle stops it (RecursionError).
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_c_encode = (_c_make_encoder(None, _default, json.encoder.encode_basestring, None, ":", ",", False, False, False)
             if _c_make_encoder is not None else None)


def _check_keys(value: Any) -> bool:
    """JSON would silently turn ``{1: "a"}`` into ``{"1": "a"}``; refuse keys that would not round-trip.
    Returns whether ``value`` holds a dict that reads like a tagged value (see :func:`_escape`)."""
    tagged = False
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"pgqueue stores dicts as JSON objects, whose keys must be str, not {key!r}")
            if isinstance(item, (dict, list, tuple)):
                tagged = _check_keys(item) or tagged
        if len(value) == 1 and _TAG_KEY.match(next(iter(value))):
            tagged = True
    elif isinstance(value, (list, tuple)):
        for item in value:
            if isinstance(item, (dict, list, tuple)):
                tagged = _check_keys(item) or tagged
    return tagged


# A dict of the caller's whose one key is a tag ({"$date": "..."}, as MongoDB's JSON has them) would read
# back as a date. Such a key is stored with one more "$" ("$$date"; "$$date" as "$$$date"), and reading
# takes one off again.
_TAG_KEY = re.compile(r"\$+(?:datetime|date|uuid|decimal)\Z")


def _escape(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, item),) = value.items()
            if _TAG_KEY.match(key):
                return {"$" + key: _escape(item)}
        return {key: _escape(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_escape(item) for item in value]
    return value


def _short_flat(value: list[Any] | tuple[Any, ...]) -> str | None:
    """JSON of a short list of ints, floats, strings, booleans and Nones (a typical job's arguments), built here:
    the C encoder's set-up per call costs more than these few items (0.84 -> 0.59 us for ``(1,)``).
    None if an item is of another type."""
    parts = []
    for v in value:
        kind = type(v)
        if kind is int:
            parts.append(int.__repr__(v))
        elif kind is str:
            parts.append(_encode_str(v))
        elif v is None:
            parts.append("null")
        elif kind is bool:
            parts.append("true" if v else "false")
        elif kind is float and v - v == 0:  # finite (NaN and infinities go on to the encoder, which refuses them)
            parts.append(float.__repr__(v))
        else:
            return None
    return "[" + ",".join(parts) + "]"


_encode_str = json.encoder.encode_basestring  # as the encoders above: non-ASCII kept, not escaped


def dumps(value: Any) -> str:
    """Serialise ``value`` to JSON text, raising ``TypeError`` for anything pgqueue cannot round-trip."""
    try:
        text = _encode(value)
    except ValueError as exc:  # what JSON (and jsonb) cannot hold: NaN, infinities, ints too long for text
        if "integer string conversion" in str(exc):
            raise TypeError(f"pgqueue cannot store an int of more than {sys.get_int_max_str_digits()} digits "
                            "as JSON; pass it as a str") from None
        raise TypeError("pgqueue cannot store NaN or infinite floats: JSON (and jsonb) has no such numbers") \
            from None
    if "\\u0000" in text and _NUL.search(text):
        raise TypeError("pgqueue cannot store a string containing a NUL character (\\x00): jsonb rejects it")
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError as exc:  # a lone surrogate ("\\ud800"), which UTF-8 cannot hold
            raise TypeError(f"pgqueue cannot store a string that is not valid Unicode: {exc.reason} "
                            f"({text[exc.start:exc.end]!a})") from None
    return text


def _encode(value: Any) -> str:
    kind = type(value)
    if kind is int:  # the common results, without the encoder's machinery
        return int.__repr__(value)
    if value is None:
        return "null"
    flat = (kind is list or kind is tuple) and len(value) <= 8 and _short_flat(value)
    if flat:
        return flat
    if not ((kind is list or kind is tuple) and all(type(v) in _FLAT for v in value)):  # no dict inside
        if _check_keys(value):
            value = _escape(value)
    return "".join(_c_encode(value, 0)) if _c_encode is not None else _encoder.encode(value)


_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")  # an escaped NUL, not an escaped backslash before "u0000"


def _hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        ((key, val),) = obj.items()
        if key in _TAGS and isinstance(val, str):
            try:
                if key == "$datetime":
                    return _dt.datetime.fromisoformat(val)
                if key == "$date":
                    return _dt.date.fromisoformat(val)
                if key == "$uuid":
                    return uuid.UUID(val)
                return decimal.Decimal(val)
            except (ValueError, ArithmeticError):  # not written by dumps (which escapes such dicts): as it is
                return obj
        if key[:2] == "$$" and _TAG_KEY.match(key):
            return {key[1:]: val}
    return obj


_decoder = json.JSONDecoder(object_hook=_hook)


def loads(text: str | bytes | None) -> Any:
    """Parse JSON text written by :func:`dumps`."""
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode()
    try:  # JSON from dumps or from jsonb's output: no surrounding whitespace to skip
        value, end = _decoder.raw_decode(text)
    except json.JSONDecodeError:
        return _decoder.decode(text)  # raises the full error (or accepts leading whitespace)
    if end != len(text):
        return _decoder.decode(text)
    return value

