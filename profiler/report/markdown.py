"""A ``Report`` as Markdown (CommonMark with GitHub's tables): figures as PNG files beside it.

Every string is escaped: the punctuation that Markdown reads as markup anywhere in a line
(``\\ ` * _ [ ] < > | ~ &``) gets a backslash, and so does a block-starting ``# + - =``, so
a model named ``<b>x|y</b>`` prints as written and cannot add HTML or break a table.
"""

from __future__ import annotations

import re

from profiler.report.document import Bullets, Figure, Report, Table

_MARKUP = re.compile(r"([\\`*_\[\]<>|~&])")
_LEADING = re.compile(r"^([#+=-])")


def escape(text: str) -> str:
    """``text`` shown as written by a Markdown renderer (one line: newlines become spaces)."""
    return _LEADING.sub(r"\\\1", _MARKUP.sub(r"\\\1", " ".join(str(text).split())))


def _table(table: Table) -> list[str]:
    numeric = table.numeric or (False,) * len(table.columns)
    lines = ["| " + " | ".join(escape(c) for c in table.columns) + " |",
             "|" + "|".join("---:" if right else ":---" for right in numeric) + "|"]
    lines += ["| " + " | ".join(escape(cell) for cell in row) + " |" for row in table.rows]
    if table.note:
        lines += ["", escape(table.note)]
    return lines


def _block(block) -> list[str]:
    if isinstance(block, str):
        return [escape(block)]
    if isinstance(block, Figure):
        return [f"![{escape(block.caption)}]({block.file})", "", f"*{escape(block.caption)}*"]
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Bullets):
        return [f"- {escape(item)}" for item in block.items]
    raise TypeError(f"not a report block: {type(block).__name__}")


def render_markdown(report: Report) -> str:
    lines = [f"# {escape(report.title)}", "", escape(report.subtitle)]
    for section in report.sections:
        lines += ["", f"## {escape(section.title)}"]
        for block in section.blocks:
            lines += [""] + _block(block)
    return "\n".join(lines) + "\n"
