"""Request bodies (and WebSocket messages): JSON parsed with bounds, before any validation.

:func:`parse_json` is what the handlers call, in the executor for request bodies:

- the parser is pydantic-core's (``from_json``), about five times faster than ``json.loads``
  on numeric arrays, so even a 16 MB body holds the interpreter for tens of milliseconds;
- invalid UTF-8, ``NaN``/``Infinity`` literals and trailing garbage are a 400;
- nesting deeper than ``max_depth`` is a 400 (the parser itself stops at 200 levels, so
  nothing recurses without bound afterwards);
- an array or object with more than ``max_items`` entries is a 400 before any model sees it;
- a number that overflowed to infinity (``1e999``) or an integer beyond 64 bits is a 400.

Each 400 names where in the body the problem is (``measurements.3``).
"""

from __future__ import annotations

import math
from typing import Any

from pydantic_core import from_json

from widgets.server.errors import ApiError
from widgets.server.security import clip

INT_LIMIT = 2**63
CHUNK = 32_768
_INF = math.inf
_NUMBERS = frozenset((int, float, bool))
_CONTAINERS = (list, dict)


class BodyError(ApiError, ValueError):
    """A body that is not JSON the server will look at (always a 400)."""

    def __init__(self, message: str, field: str = "body", error: str = "ValidationError") -> None:
        super().__init__(400, message, error=error, details={"field": field})


def parse_json(
    raw: bytes | str, max_depth: int = 64, max_items: int = 4_194_304, where: str = "body"
) -> Any:
    """Parse ``raw`` and check its shape; raises :class:`BodyError` (a 400).

    Parameters
    ----------
    raw : bytes or str
        The JSON text.
    max_depth : int
        Deepest nesting of arrays and objects accepted.
    max_items : int
        Most entries of any one array or object.
    where : str
        What the text is (``"body"``, ``"message"``), for the messages.
    """
    try:
        data = from_json(raw, allow_inf_nan=False, cache_strings=False)
    except ValueError as exc:
        text = str(exc)
        if "recursion limit" in text:
            raise BodyError(
                f"the {where} is nested more than {max_depth} levels deep", where, "MalformedJson"
            ) from None
        if "unicode" in text or "utf-8" in text.lower():
            text = f"not valid UTF-8 ({text})"
        raise BodyError(
            f"malformed JSON {where}: {clip(text, 120)}", where, "MalformedJson"
        ) from None
    check_shape(data, max_depth, max_items, where)
    return data


def check_shape(data: Any, max_depth: int, max_items: int, where: str = "body") -> None:
    """Raise :class:`BodyError` when ``data`` nests too deep, has an over-long array or object,
    or holds a non-finite number or an integer beyond 64 bits.

    Iterative (no recursion); numeric arrays are checked with C-speed ``min``/``max``.
    """
    if not isinstance(data, _CONTAINERS):
        _check_scalar(data, where, where)
        return
    stack: list[tuple[Any, int, tuple]] = [(data, 1, ())]
    while stack:
        obj, depth, path = stack.pop()
        if depth > max_depth:
            raise BodyError(
                f"the {where} is nested more than {max_depth} levels deep (at {_name(path, where)})",
                _name(path, where),
            )
        if len(obj) > max_items:
            raise BodyError(
                f"{_name(path, where)} has {len(obj)} entries; at most {max_items} are accepted "
                "(PRISM_MAX_ARRAY_ITEMS)",
                _name(path, where),
            )
        if isinstance(obj, dict):
            keys = list(obj)
            values = list(obj.values())
        else:
            keys = None
            values = obj
        # In slices: each C-level pass (type set, min, max) then holds the interpreter for
        # a millisecond or two, and the event loop gets its turn in between.
        for start in range(0, len(values), CHUNK):
            part = values[start : start + CHUNK] if len(values) > CHUNK else values
            if set(map(type, part)) <= _NUMBERS:
                if _bad_number(min(part)) or _bad_number(max(part)):
                    for i, v in enumerate(part, start):
                        if _bad_number(v):
                            field = _name(path + ((keys[i] if keys else i),), where)
                            _check_scalar(v, field, where)
                continue
            for i, v in enumerate(part, start):
                t = type(v)
                if t is list or t is dict:
                    stack.append((v, depth + 1, path + ((keys[i] if keys else i),)))
                elif t is float or t is int:
                    if _bad_number(v):
                        _check_scalar(v, _name(path + ((keys[i] if keys else i),), where), where)


def _bad_number(v: Any) -> bool:
    if type(v) is float:
        return v == _INF or v == -_INF
    return type(v) is int and not -INT_LIMIT < v < INT_LIMIT


def _check_scalar(v: Any, field: str, where: str) -> None:
    if type(v) is float and not math.isfinite(v):
        raise BodyError(
            f"{field}: a number in the {where} is too large (it overflows to infinity)", field
        )
    if type(v) is int and not -INT_LIMIT < v < INT_LIMIT:
        raise BodyError(f"{field}: an integer in the {where} is beyond 64 bits", field)


def _name(path: tuple, where: str) -> str:
    return clip(".".join(str(p) for p in path), 120) if path else where
