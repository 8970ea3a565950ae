"""A griffe extension for the API reference (``mkdocs.yml``): the package's docstrings use
Sphinx roles (``:func:`~a.b```, ``:class:`X```); in the site they become code spans."""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|exc|obj|py:\w+):`~?([^`]+)`")


class SphinxRoles(griffe.Extension):
    """Rewrite each role as a code span of its target (the last name for ``~``)."""

    def on_object(self, *, obj, **kwargs) -> None:  # noqa: D102
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_span, obj.docstring.value)


def _span(match: re.Match) -> str:
    target = match.group(1)
    whole = match.group(0)
    return f"`{target.rsplit('.', 1)[-1]}`" if "`~" in whole else f"`{target}`"
