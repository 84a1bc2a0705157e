"""Reading the structured replies that roles ask for: rankings, pairwise choices, numbered lists.

Each reader is lenient (small models drift from the asked format) and never raises: what cannot be
read is left out, and the caller falls back (original order, no preference, fewer items).
"""

from __future__ import annotations

import re

_IDENTIFIER = re.compile(r"\[(\d+)\]")
_ITEM = re.compile(r"^\s*(?:[-*]\s*)?(?:\*\*)?(\d+)[.):]\s*(?:\*\*)?\s*(.+?)\s*$")
_DEPENDS = re.compile(r"\(?\s*depends\s+on\s*:?\s*([^)]*)\)?\s*$", re.IGNORECASE)
_NUMBER = re.compile(r"\d+")


def ranking(text: str, count: int) -> list[int]:
    """Indices (0-based) in the order a ``[2] > [1] > [3]`` reply gives; unnamed ones follow in order."""
    named = [int(match) - 1 for match in _IDENTIFIER.findall(text)]
    order = list(dict.fromkeys(index for index in named if 0 <= index < count))
    return order + [index for index in range(count) if index not in order]


def preference(text: str) -> str | None:
    """``"A"`` or ``"B"`` from a pairwise reply (its first word that is one of them), else None."""
    for word in re.findall(r"[A-Za-z]+", text):
        if word in ("A", "B"):
            return word
    return None


def numbered_items(text: str) -> list[str]:
    """The items of a numbered list (``1. ...``, ``2) ...``), in order; other lines are skipped."""
    return [match.group(2) for line in text.splitlines() if (match := _ITEM.match(line))]


def with_dependencies(item: str) -> tuple[str, list[int]]:
    """Split ``what is x? (depends on: 1, 3)`` into the text and the 0-based indices it depends on."""
    found = _DEPENDS.search(item)
    if found is None:
        return item.strip(), []
    numbers = [int(number) - 1 for number in _NUMBER.findall(found.group(1))]
    return item[: found.start()].strip(), numbers
