"""Figures and tables as HTML: one ``<div>`` per figure, escaped tables, a self-contained page."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
import plotly.offline

def rows_to_html_table(rows: Sequence[Mapping], columns: Sequence[str] | None = None) -> str:
    """A plain HTML table (escaped; floats to 4 significant digits, None as "–") for the report."""
    columns = list(columns) if columns is not None else (list(rows[0]) if rows else [])

    def cell(value) -> str:
        if value is None:
            return "–"
        if isinstance(value, float):
            return f"{value:.4g}"
        return html.escape(str(value))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{cell(row.get(c))}</td>" for c in columns) + "</tr>" for row in rows
    )
    return f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def figure_to_html_div(fig: go.Figure) -> str:
    """The figure as an HTML ``<div>`` + script, without plotly.js (the page supplies it once)."""
    return fig.to_html(full_html=False, include_plotlyjs=False, config={"responsive": True})


_REPORT_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
section { margin-bottom: 3em; }
p.explain { color: #444; line-height: 1.45; }
table.data { border-collapse: collapse; font-size: 0.85em; }
table.data th, table.data td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
table.data th { background: #f4f4f4; }
"""


def _paragraphs(text: str) -> str:
    """Plain explanatory text -> escaped HTML paragraphs (blank lines separate paragraphs)."""
    blocks = [b.strip() for b in text.split("\n\n") if b.strip()]
    return "\n".join(f'<p class="explain">{html.escape(b)}</p>' for b in blocks)


def html_report(title: str, sections: Sequence[tuple[str, str, go.Figure | str]]) -> str:
    """A self-contained HTML page: plotly.js inlined once, so it opens offline.

    Each section is (heading, explanatory plain text, figure or an HTML string
    such as :func:`rows_to_html_table`).  Heading and text are escaped; an
    HTML string is inserted as is.
    """
    parts = []
    for heading, text, content in sections:
        body = figure_to_html_div(content) if isinstance(content, go.Figure) else content
        parts.append(f"<section>\n<h2>{html.escape(heading)}</h2>\n{_paragraphs(text)}\n{body}\n</section>")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n"
        f"<style>{_REPORT_CSS}</style>\n"
        f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>\n'
        "</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n" + "\n".join(parts) + "\n</body>\n</html>\n"
    )
