"""The order of an eval's problems: the dataset's, not the order in which units happened to finish.

Records are appended as units finish, so ``records.jsonl`` holds problems in completion order (a
short problem overtakes a long one). Reports and summaries list problems as the dataset does: by the
position each record stores (``problem.index``, written since records carried it), and for records
written before that, by their ids compared as text with embedded numbers read as numbers, which is
the dataset's order for ids that number their problems (``gsm_symbolic-0-10``, ``HumanEval/10``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_NUMBER = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[Any, ...]:
    """``text`` split into text and numbers, numbers compared as numbers (``p-2`` before ``p-10``).

    The parts alternate text, number, text..., so two keys never compare a number with text.
    """
    parts = _NUMBER.split(text)
    return tuple(int(part) if index % 2 else part for index, part in enumerate(parts))


def problem_ranks(records: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Each problem id of ``records`` and its rank in the dataset's order (0 first).

    The stored positions decide when every problem has one; otherwise (records of an older run, or a
    run resumed across the change) the ids' natural order does, for all problems alike, so that the
    two orders are never mixed.
    """
    positions: dict[str, int | None] = {}
    for record in records:
        problem = record.get("problem") or {}
        problem_id = str(problem.get("id"))
        index = problem.get("index")
        known = index if isinstance(index, int) and not isinstance(index, bool) else None
        if positions.get(problem_id) is None:
            positions[problem_id] = known
    if positions and all(index is not None for index in positions.values()):
        ordered = sorted(positions, key=lambda problem_id: (positions[problem_id], natural_key(problem_id)))
    else:
        ordered = sorted(positions, key=natural_key)
    return {problem_id: rank for rank, problem_id in enumerate(ordered)}
