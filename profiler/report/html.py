"""A ``Report`` as one self-contained HTML file: figures embedded as base64 PNG data URIs,
the style sheet inline, no script, no link, nothing fetched -- it can be mailed.

Every string is escaped with ``html.escape`` (quotes too): a model named
``<script>alert(1)</script>`` shows as text.
"""

from __future__ import annotations

import base64
from html import escape

from profiler.report.document import Bullets, Figure, Report, Table

_CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1d1d1d;
       max-width: 68rem; margin: 2rem auto; padding: 0 1.25rem; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.2rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
.subtitle { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; font-variant-numeric: tabular-nums; }
th, td { padding: 0.25rem 0.7rem; border-bottom: 1px solid #e4e4e4; text-align: left; vertical-align: top; }
th { background: #f4f4f4; border-bottom: 2px solid #ccc; }
td.num, th.num { text-align: right; white-space: nowrap; }
td:last-child { min-width: 10rem; }
.note { color: #555; font-size: 0.85rem; margin-top: -0.3rem; }
figure { margin: 1.2rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.88rem; margin-top: 0.3rem; }
li { margin: 0.25rem 0; }
"""


def _table(table: Table) -> str:
    numeric = table.numeric or (False,) * len(table.columns)
    cls = [' class="num"' if right else "" for right in numeric]
    head = "".join(f"<th{c}>{escape(name)}</th>" for c, name in zip(cls, table.columns))
    body = "".join("<tr>" + "".join(f"<td{c}>{escape(cell)}</td>" for c, cell in zip(cls, row)) + "</tr>\n"
                   for row in table.rows)
    note = f'<p class="note">{escape(table.note)}</p>\n' if table.note else ""
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n{note}"


def _figure(figure: Figure, report: Report) -> str:
    data = base64.b64encode((report.folder / figure.file).read_bytes()).decode("ascii")
    caption = escape(figure.caption)
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{caption}">'
            f"<figcaption>{caption}</figcaption></figure>\n")


def _block(block, report: Report) -> str:
    if isinstance(block, str):
        return f"<p>{escape(block)}</p>\n"
    if isinstance(block, Figure):
        return _figure(block, report)
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Bullets):
        return "<ul>\n" + "".join(f"<li>{escape(item)}</li>\n" for item in block.items) + "</ul>\n"
    raise TypeError(f"not a report block: {type(block).__name__}")


def render_html(report: Report) -> str:
    parts = ["<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
             '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
             f"<title>{escape(report.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n",
             f"<h1>{escape(report.title)}</h1>\n<p class=\"subtitle\">{escape(report.subtitle)}</p>\n"]
    for section in report.sections:
        parts.append(f"<h2>{escape(section.title)}</h2>\n")
        parts += [_block(block, report) for block in section.blocks]
    parts.append("</body>\n</html>\n")
    return "".join(parts)
