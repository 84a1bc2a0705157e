"""How the eval's figures are written for people, the same in the terminal table and the HTML report.

Two absences read differently: ``—`` where a figure does not apply (no budget for greedy, no
interval for a row that has none) and ``unknown`` where it applies but was not measured (FLOPs of a
model whose size the backend does not know: the ledger bills 0 FLOPs there, and 0 must not read as
free). Calls are counts: a whole mean is written as an integer and a fractional one (a mean over
problems or seeds, an expected count over k-subsets) with one decimal, never as ``0.25``.
"""

from __future__ import annotations

from typing import Any

MISSING = "—"
UNKNOWN = "unknown"


def fraction(value: float | None) -> str:
    """A share in [0, 1] (accuracy, coverage, rates) with three decimals."""
    return MISSING if value is None else f"{value:.3f}"


def interval(low: float | None, high: float | None) -> str:
    """``[low, high]`` with three decimals; empty where the row has no interval."""
    return "" if low is None or high is None else f"[{low:.3f}, {high:.3f}]"


def number(value: float | None, spec: str) -> str:
    """``value`` in the format ``spec``; ``—`` where there is none."""
    return MISSING if value is None else format(value, spec)


def calls(value: float | None) -> str:
    """Model calls per problem: ``7`` when the mean is whole (to 0.05), else one decimal (``7.2``).

    A mean below 0.05 that is not 0 is written ``<0.1``, so a row that did spend calls never reads 0.
    """
    if value is None:
        return MISSING
    rounded = round(value, 1)
    if value > 0 and rounded == 0:
        return "<0.1"
    if rounded == int(rounded):
        return f"{int(rounded):,}"
    return f"{rounded:,.1f}"


def flops(value: float | None, tokens: float | None = None) -> str:
    """FLOPs (``2.4e+11``), or ``unknown`` where they were not measured: None in a summary, or 0 FLOPs
    billed for tokens that were processed (a summary or record written before unknown became None)."""
    if value is None or (value <= 0 and (tokens or 0) > 0):
        return UNKNOWN
    return format(value, ".3g")


def budget(value: Any) -> str:
    """A row's budget; ``—`` for a strategy that no budget scales."""
    return MISSING if value is None else str(value)
