"""The fields of the service's requests, declared once and read from a form or from JSON.

A :class:`Field` says what a field holds (a whole number in a range, a yes/no, a text, one of
some words, a list); :func:`read` takes it from an HTML form (every value a text, a list by a
repeated name) or from a JSON object (typed values), with the same limits and the same
messages either way. Every number is read by :mod:`lava_retrieval.common.strict`.

>>> read(SEARCH_OPTIONS, {"k": 3, "exact": True}, form=False)
{'k': 3, 'exact': True}
>>> read(SEARCH_OPTIONS, {"k": True}, form=False)
Traceback (most recent call last):
lava_retrieval.common.strict.ParseError: k must be an integer (1..9223372036854775807), not True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lava_retrieval.common.strict import MAX_ID, ParseError, integer, json_integer
from lava_retrieval.search.approximate import MAX_KNOB


@dataclass(frozen=True)
class Field:
    """One field of a request.

    Attributes
    ----------
    name : str
        Its name in JSON (and in the answer).
    kind : type
        ``int`` (from ``low`` to ``high``), ``bool``, ``str`` (one of ``choices`` if given)
        or ``list``.
    form_name : str, optional
        Its name in a form where that differs (a list: the name repeated once per item).
    """

    name: str
    kind: type
    low: int = 0
    high: int = MAX_ID
    choices: tuple[str, ...] = ()
    form_name: str | None = None


SEARCH_OPTIONS = (
    Field("k", int, 1),
    Field("nprobe", int, 1, MAX_KNOB),
    Field("ef", int, 1, MAX_KNOB),
    Field("exact", bool),
    Field("labels", list, form_name="label"),
    Field("path_prefix", str),
)
"""What narrows or tunes a search: ``POST /api/search`` (a form) and ``POST
/api/search/batch`` (JSON) both take them."""
QUERY_FIELDS = (
    Field("id", int),
    Field("test_id", int),
    Field("view", str, choices=("page", "hits")),
)
"""What chooses the query and the answer of ``POST /api/search`` (besides an uploaded image)."""


def read(fields: tuple[Field, ...], values: Mapping, *, form: bool) -> dict[str, Any]:
    """The ``fields`` present in ``values`` (a form's ``MultiDict`` with ``form``, else a JSON
    object), checked; an absent field (blank in a form, ``null`` in JSON) is left out. A
    :class:`~lava_retrieval.common.strict.ParseError` names the first bad field."""
    out = {}
    for field in fields:
        value = _from_form(field, values) if form else _from_json(field, values.get(field.name))
        if value is not None:
            out[field.name] = value
    return out


def _from_form(field: Field, values) -> Any:
    if field.kind is list:
        items = [x.strip() for x in values.getlist(field.form_name or field.name)]
        return [x for x in items if x] or None
    text = values.get(field.form_name or field.name, "").strip()
    if not text:
        return None
    if field.kind is int:
        return integer(text, f"a valid {field.name}", field.low, field.high)
    if field.kind is bool:
        if text.lower() not in ("0", "1", "true", "false"):
            raise ParseError(f"{field.name} must be true or false")
        return text.lower() in ("1", "true")
    return _choice(field, text)


def _from_json(field: Field, value) -> Any:
    if value is None:
        return None
    if field.kind is int:
        return json_integer(value, field.name, field.low, field.high)
    if not isinstance(value, field.kind) or (field.kind is not bool and isinstance(value, bool)):
        if field.kind is list:
            raise ParseError(f"{field.name} must be a list")
        raise ParseError(f"{field.name} must be of type {field.kind.__name__}")
    return _choice(field, str(value)) if field.kind is str else value


def _choice(field: Field, text: str) -> str:
    if field.choices and text not in field.choices:
        raise ParseError(f"{field.name} must be one of {', '.join(field.choices)}")
    return text
