"""Docstrings as a student reads them: the reST markup that Sphinx needs taken out."""

from __future__ import annotations

import inspect
import re

SECTIONS = ("Parameters", "Returns", "Raises", "Attributes", "Examples", "Notes", "Yields")
ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|obj):`~?([^`]+)`")


def plain_doc(obj, full: bool = False) -> str:
    """``obj``'s docstring without reST markup (````x```` and ``:class:`~a.B``` become ``x``
    and ``B``); up to its numpydoc sections (``Parameters``, ...) unless ``full``.

    >>> def f():
    ...     '''Return ``w - eta * g`` (see :func:`~minifed.algorithms.aggregate`).
    ...
    ...     Parameters
    ...     ----------
    ...     '''
    >>> plain_doc(f)
    'Return w - eta * g (see aggregate).'
    """
    text = inspect.getdoc(obj) or ""
    if not full:
        lines = text.splitlines()
        for i in range(len(lines) - 1):
            if lines[i].strip() in SECTIONS and set(lines[i + 1].strip()) == {"-"}:
                text = "\n".join(lines[:i])
                break
    text = ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1], text)
    return text.replace("``", "").strip()


def show_doc(obj, full: bool = False) -> None:
    """Print :func:`plain_doc` of ``obj``: the equation a chapter puts next to the code."""
    print(plain_doc(obj, full))
