"""Strict parsers of numbers and JSON, the one set used for every CLI option, form field,
JSON field, route parameter and manifest field.

Python's own ``int()`` and ``float()`` accept more than a user means by a number (any Unicode
decimal digit, ``_`` between digits, surrounding white space; ``float`` also ``nan`` and
``inf``), ``str.isdigit()`` accepts characters ``int()`` refuses (``²``), and ``json.loads``
recurses once per nesting level. Here a number is ASCII digits only, a length checked before it
is converted and a range checked after; JSON is bounded in size and nesting before it is
parsed. Every refusal is a :class:`ParseError` (a :class:`ValueError` too) naming what was
wanted.

May import: :mod:`lava_retrieval.common` only.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np

from lava_retrieval.common.errors import LavaRetrievalError

MAX_ID = 2**63 - 1
"""The largest number an index stores as an id or its next id (signed 64-bit integers)."""
MAX_ITEM_ID = MAX_ID - 1
"""The largest id an image can be given (the index's next id is one more)."""
MAX_DIGITS = 19  # 2**63 has 19 digits: a longer numeral is out of every range used here
MAX_JSON_DEPTH = 64
"""Nesting of a JSON document beyond which it is refused unparsed (no file or request of this
package nests deeper than a few levels)."""
_INTEGER = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class ParseError(LavaRetrievalError, ValueError):
    """A text or value is not the number (or JSON) that was wanted."""


def integer(text: str, what: str = "a number", low: int = 0, high: int = MAX_ID) -> int:
    """``text`` as an integer in ``low..high``: ASCII digits, a ``-`` only where ``low`` is
    negative, nothing else (no sign ``+``, spaces, ``_`` or other scripts' digits).

    >>> integer("42"), integer("-3", low=-5)
    (42, -3)
    >>> integer("²")
    Traceback (most recent call last):
    lava_retrieval.common.strict.ParseError: '²' is not a number
    >>> integer("9223372036854775808", "an id")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    lava_retrieval.common.strict.ParseError: '9223372036854775808' is not an id (0..92233...)
    """
    bounds = f" ({low}..{high})"
    if not isinstance(text, str) or not _INTEGER.fullmatch(text) or (low >= 0 and "-" in text):
        raise ParseError(f"{_shown(text)} is not {what}" + (bounds if low or high < MAX_ID else ""))
    if len(text.lstrip("-")) > MAX_DIGITS or not low <= int(text) <= high:
        raise ParseError(f"{_shown(text)} is not {what}{bounds}")
    return int(text)


def decimal(
    text: str, what: str = "a number", low: float = -math.inf, high: float = math.inf
) -> float:
    """``text`` as a finite float in ``low..high``: an ASCII decimal numeral (``1``, ``-0.5``,
    ``2e-3``), never ``nan``, ``inf`` or other scripts' digits.

    >>> decimal("0.5"), decimal("1e2")
    (0.5, 100.0)
    >>> decimal("nan")
    Traceback (most recent call last):
    lava_retrieval.common.strict.ParseError: 'nan' is not a number
    """
    if not isinstance(text, str) or len(text) > 64 or not _DECIMAL.fullmatch(text):
        raise ParseError(f"{_shown(text)} is not {what}")
    value = float(text)
    if not math.isfinite(value):
        raise ParseError(f"{_shown(text)} is not {what} (it is too large)")
    if not low <= value <= high:
        raise ParseError(f"{_shown(text)} is not {what} ({low:g}..{high:g})")
    return value


def json_integer(value, what: str, low: int = 0, high: int = MAX_ID) -> int:
    """A JSON value that must be an integer in ``low..high`` (``true`` is not one, nor is
    ``1.0``).

    >>> json_integer(3, "k", 1, 10)
    3
    >>> json_integer(True, "k", 1, 10)
    Traceback (most recent call last):
    lava_retrieval.common.strict.ParseError: k must be an integer (1..10), not True
    """
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ParseError(f"{what} must be an integer ({low}..{high}), not {_shown(value)}")
    return value


def json_depth(text: str | bytes) -> int:
    """The deepest nesting of arrays and objects in the JSON ``text`` (brackets inside strings
    are not counted), without parsing it: a linear scan.

    >>> json_depth('{"a": [1, [2, "]]]"]]}')
    3
    """
    data = text.encode() if isinstance(text, str) else bytes(text)
    # Strings out first (escaped quotes stay inside them), then a running sum of brackets.
    # (an unclosed string runs to the end: one match, so the scan stays linear)
    data = re.sub(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z)', b'""', data, flags=re.S)
    deepest, level = 0, 0
    step = 1 << 22
    for start in range(0, len(data), step):
        chunk = np.frombuffer(data[start : start + step], np.uint8)
        change = np.isin(chunk, (91, 123)).astype(np.int32) - np.isin(chunk, (93, 125))
        if not change.any():
            continue
        running = np.cumsum(change, dtype=np.int64) + level
        deepest = max(deepest, int(running.max()))
        level = int(running[-1])
    return deepest


def loads(text: str | bytes, what: str, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> object:
    """Parse JSON that is at most ``max_bytes`` long and nests at most ``max_depth`` levels,
    both checked before it is parsed; anything else is a :class:`ParseError` naming ``what``.

    >>> loads('{"ids": [1, 2]}', "the body", 100)
    {'ids': [1, 2]}
    >>> loads("[" * 100 + "]" * 100, "the body", 1000)
    Traceback (most recent call last):
    lava_retrieval.common.strict.ParseError: the body: JSON nested deeper than 64 levels
    """
    if len(text) > max_bytes:
        raise ParseError(f"{what}: larger than {max_bytes:,} bytes")
    if json_depth(text) > max_depth:
        raise ParseError(f"{what}: JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ParseError(f"{what}: not valid JSON ({exc})") from None


def _shown(value) -> str:
    """``value`` as an error message shows it: its repr, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
