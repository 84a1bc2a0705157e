"""The building blocks of ``report.html``: escaping, marks, tables, and text kept verbatim.

Everything a record holds (questions, answers, code) came from a dataset or a model: it is escaped
here, once, and never trusted as markup. Text that may be code (a HumanEval answer, a reference
solution) is written in ``<pre>`` with ``white-space: pre-wrap`` and never stripped, so its
indentation, which is part of its meaning, survives.
"""

from __future__ import annotations

import html
from typing import Any

from ponder.eval.figures import MISSING


def escape(value: Any) -> str:
    """``value`` as text safe in HTML content and attribute values (None as empty)."""
    return html.escape("" if value is None else str(value), quote=True)


def mark(correct: Any) -> str:
    """✓ for True, ✗ for False, ``—`` for not graded."""
    if correct is True:
        return '<span class="ok">✓</span>'
    if correct is False:
        return '<span class="bad">✗</span>'
    return f'<span class="muted">{MISSING}</span>'


def is_block(text: str) -> bool:
    """Whether ``text`` must be shown as a block to keep its meaning: several lines, or leading
    whitespace (the indented body of a function, as HumanEval's references are)."""
    return "\n" in text or text[:1].isspace()


def verbatim(text: Any, css: str = "code") -> str:
    """``text`` exactly as it is, whitespace and indentation kept, in a ``<pre>``."""
    return f'<pre class="{css}">{escape(text)}</pre>'


def answer_html(answer: Any, collapsed: bool = False) -> str:
    """An answer as a table cell or inline: short text as ``<code>``, code as a verbatim block (under a
    ``<details>`` naming its first line and length when ``collapsed``); ``—`` where there is none."""
    if answer is None:
        return MISSING
    text = str(answer)
    if not is_block(text):
        return f'<code class="answer">{escape(text)}</code>'
    if not collapsed:
        return verbatim(text)
    return f"<details><summary>{answer_excerpt(text)}</summary>{verbatim(text)}</details>"


def answer_excerpt(text: str) -> str:
    """A one-line stand-in for an answer that is a block: its first non-blank line and its length."""
    lines = text.splitlines()
    first = next((line.strip() for line in lines if line.strip()), "")
    first = first if len(first) <= 60 else first[:59] + "…"
    return f'<code class="answer">{escape(first)}</code> <span class="muted">({len(lines)} lines)</span>'


def spec_html(spec: Any) -> str:
    """A strategy spec that wraps only between its words and options (``best-of-n:n=4,`` | ``scorer=judge``),
    never inside a name at its hyphen (``self-`` | ``consistency``)."""
    words = str(spec).split(" ")
    return " ".join(
        ",<wbr>".join(f'<span class="nobr">{escape(part)}</span>' for part in word.split(","))
        for word in words
    )


def table(
    headers: list[str],
    rows: list[list[str]],
    left: int = 1,
    row_classes: list[str] | None = None,
    table_class: str = "",
) -> str:
    """A table of already-escaped cells; the first ``left`` columns are left-aligned."""

    def cell(tag: str, index: int, content: str) -> str:
        return f'<{tag} class="left">{content}</{tag}>' if index < left else f"<{tag}>{content}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = []
    for index, row in enumerate(rows):
        css = f' class="{row_classes[index]}"' if row_classes and row_classes[index] else ""
        body.append(f"<tr{css}>{''.join(cell('td', i, c) for i, c in enumerate(row))}</tr>")
    css = f' class="{table_class}"' if table_class else ""
    return f"<table{css}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
