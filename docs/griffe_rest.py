"""A griffe extension for the API reference: the little reST in minifed's docstrings as Markdown.

mkdocstrings renders docstrings as Markdown, where ``x`` already reads as code. Three reST habits
would show as noise: roles (:func:`~minifed.simulation.run` becomes a link to ``run`` when the
target is documented, plain code otherwise), a paragraph ending in ``::`` before a literal block
(one colon; the indented block is a code block in Markdown too), and simple tables (``====  ===``
borders), which become Markdown tables.
"""

from __future__ import annotations

import itertools
import re

import griffe

ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):`(~?)([^`]+)`")
BORDER = re.compile(r"^( *)(=+)( +=+)+ *$")


def _link(obj: griffe.Object, match: re.Match) -> str:
    short, target = match.group(1) == "~", match.group(2).strip()
    text = target.rsplit(".", 1)[-1] if short else target
    if not target.startswith("minifed."):
        try:
            target = obj.resolve(target)
        except Exception:  # a name griffe cannot see from here: plain code
            return f"``{text}``"
    return f'<autoref identifier="{target}" optional><code>{text}</code></autoref>'


def _table(lines: list[str]) -> list[str]:
    """A reST simple table (border, header, border, rows, border) as a Markdown table."""
    border = lines[0]
    spans = [m.span() for m in re.finditer(r"=+", border)]
    starts = [a for a, _ in spans] + [None]  # the last column runs to the end of the line

    def cells(line: str) -> list[str]:
        return [line[a:b].strip().replace("|", "\\|") for a, b in itertools.pairwise(starts)]

    body = [line for line in lines[1:] if not BORDER.match(line) and line.strip()]
    header, rows = cells(body[0]), [cells(line) for line in body[1:]]
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return ["", *out, *("| " + " | ".join(row) + " |" for row in rows), ""]


def _tables(text: str) -> str:
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        if BORDER.match(lines[i]):
            borders = [j for j in range(i, len(lines)) if BORDER.match(lines[j])][:3]
            if len(borders) == 3 and borders[1] == i + 2:
                out += _table(lines[i : borders[2] + 1])
                i = borders[2] + 1
                continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


def markdown(obj: griffe.Object, text: str) -> str:
    """``text`` (a docstring of ``obj``) with its reST roles, ``::`` and simple tables converted."""
    text = ROLE.sub(lambda m: _link(obj, m), text)
    text = re.sub(r" ?::$", ":", text, flags=re.MULTILINE)
    return _tables(text)


class RestToMarkdown(griffe.Extension):
    """Rewrite every docstring once the object tree is complete."""

    def on_object(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj, obj.docstring.value)
