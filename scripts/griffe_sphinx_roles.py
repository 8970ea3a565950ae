"""A griffe extension for the API reference (``mkdocs.yml``), so that the package's docstrings
read well in the site as they are written for ``help()`` and doctest:

- Sphinx roles (``:func:`~a.b```, ``:class:`X```) become code spans;
- the ``>>>`` examples, written where they fit, open a numpy-style ``Examples`` section (the
  numpy parser would otherwise read them as parameters of the section above them).
"""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|exc|obj|py:\w+):`~?([^`]+)`")
EXAMPLES = re.compile(r"^Examples?\n-{3,}$", re.M)


class SphinxRoles(griffe.Extension):
    """Rewrite each docstring as the module docstring says."""

    def on_object(self, *, obj, **kwargs) -> None:
        if obj.docstring is None:
            return
        text = ROLE.sub(_span, obj.docstring.value)
        if not EXAMPLES.search(text):
            lines = text.splitlines()
            first = next((i for i, line in enumerate(lines) if line.startswith(">>>")), None)
            if first is not None:
                lines[first:first] = ["", "Examples", "--------"]
                text = "\n".join(lines)
        obj.docstring.value = text


def _span(match: re.Match) -> str:
    target = match.group(1)
    whole = match.group(0)
    return f"`{target.rsplit('.', 1)[-1]}`" if "`~" in whole else f"`{target}`"
