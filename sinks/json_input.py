"""JSON from outside the process (HTTP bodies, WebSocket messages): parsed with bounds, so that
hostile input ends in a clear error instead of an unhandled exception.

`json.loads` itself recurses once per nesting level: 100,000 `[` raise RecursionError, and a
document just under the interpreter's limit parses but then breaks whatever walks it
recursively (env interpolation, validation, error formatting). Nothing lanewatch accepts
nests deeper than a few levels, so anything deeper than `MAX_DEPTH` is refused up front.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 32  # a stream's config nests 6 levels (turning.zones[i].polygon[j][k])


class JSONInputError(ValueError):
    """Input that is not acceptable JSON; the message says what is wrong, for the client."""


def parse(text: str | bytes) -> Any:
    """The JSON value of `text`, nested at most `MAX_DEPTH` levels deep.

    Raises JSONInputError for text that is not JSON (or not UTF-8) and for deeper nesting."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise JSONInputError(f"JSON nested too deeply (at most {MAX_DEPTH} levels of "
                             "arrays and objects)") from None
    except UnicodeDecodeError:
        raise JSONInputError("not UTF-8 text") from None
    except ValueError as err:  # JSONDecodeError, or an integer beyond Python's digit limit
        raise JSONInputError(f"not valid JSON: {err}") from None
    if depth(value, MAX_DEPTH) > MAX_DEPTH:
        raise JSONInputError(f"JSON nested too deeply (at most {MAX_DEPTH} levels of arrays "
                             "and objects)")
    return value


def depth(value: Any, limit: int | None = None) -> int:
    """Levels of arrays and objects in a parsed JSON value (0 for a scalar), counted without
    recursion; stops early once past `limit`."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        if limit is not None and deepest > limit:
            break
        stack.extend((child, level + 1) for child in children)
    return deepest


def finite_number(value: Any) -> float | None:
    """`value` as a finite float if it is a JSON number (not a bool, not a string), else None.

    None too for NaN, the infinities (1e400 parses as inf) and integers too large for a float
    (a 400-digit integer): callers turn None into their own error message."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def shorten(text: str, limit: int = 80) -> str:
    """Client-supplied text echoed in an error message, cut to a readable length."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
