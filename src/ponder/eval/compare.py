"""Line two eval runs up at matched compute: accuracy of every strategy of each at the same token counts.

Budgets mean different things to different strategies (n samples, beam width, rounds), so runs are
compared where it is fair: at equal measured tokens per problem. Each strategy's accuracy is read off
its curve by linear interpolation in log(tokens) between neighbouring budget points, the axis on which
test-time scaling curves are drawn (Snell et al., "Scaling LLM Test-Time Compute Optimally", 2024).
Nothing is extrapolated: outside a strategy's measured range the cell stays empty.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ponder.eval.metrics import interpolate_log
from ponder.eval.report import MISSING, load_summary, rows_by_strategy

#: Fewer grid points than this from powers of two (a narrow token range) and the measured points are used.
MIN_GRID_POINTS = 3


def _curves(summary: dict[str, Any]) -> dict[str, list[tuple[float, float]]]:
    """(mean tokens, accuracy) per strategy, leaving out rows without either."""
    curves = {}
    for strategy, rows in rows_by_strategy(summary).items():
        points = [
            (float(r["mean_tokens"]), float(r["accuracy"]))
            for r in rows
            if r.get("accuracy") is not None and (r.get("mean_tokens") or 0) > 0
        ]
        if points:
            curves[strategy] = sorted(points)
    return curves


def default_grid(curves: Sequence[Sequence[tuple[float, float]]]) -> list[float]:
    """Powers of two across the measured token range, plus the token count of each one-point curve.

    A strategy measured at one budget (greedy) has no curve to read between points, so its own token
    count joins the grid. If the range is too narrow for powers of two, the measured points are the grid.
    """
    measured = sorted({t for curve in curves for t, _ in curve})
    if not measured:
        return []
    low, high = measured[0], measured[-1]
    powers = [2.0**e for e in range(math.ceil(math.log2(low)), math.floor(math.log2(high)) + 1)]
    if len(powers) < MIN_GRID_POINTS:
        return measured
    singles = {curve[0][0] for curve in curves if len(curve) == 1}
    return sorted(set(powers) | singles)


def _labels(first: Path, second: Path) -> tuple[str, str]:
    names = (Path(first).resolve().name, Path(second).resolve().name)
    return names if names[0] != names[1] and all(names) else ("run 1", "run 2")


def compare_runs(
    first: Path, second: Path, console: Console, grid: Sequence[float] | None = None
) -> dict[str, Any]:
    """Print and return the accuracy of every strategy of two runs at common token counts.

    Returns ``{"runs": [...], "warnings": [...], "columns": [...], "rows": [{"tokens": t,
    "accuracy": {column: value or None}}]}``; a column is ``"<run label> · <strategy>"``. ``grid`` sets
    the token counts; by default see :func:`default_grid`.
    """
    runs = []
    columns: dict[str, list[tuple[float, float]]] = {}
    for label, directory in zip(_labels(first, second), (first, second), strict=True):
        summary = load_summary(directory)
        run = summary.get("run", {})
        runs.append(
            {
                "label": label,
                "directory": str(directory),
                "dataset": run.get("dataset"),
                "model": run.get("model"),
                "problems": run.get("problems"),
            }
        )
        for strategy, curve in _curves(summary).items():
            columns[f"{label} · {strategy}"] = curve

    warnings = []
    if runs[0]["dataset"] != runs[1]["dataset"]:
        warnings.append(
            f"the runs are on different datasets ({runs[0]['dataset']} vs {runs[1]['dataset']}): "
            "accuracies are not measured on the same problems"
        )
    elif runs[0]["problems"] != runs[1]["problems"]:
        warnings.append(
            f"the runs have different numbers of problems ({runs[0]['problems']} vs {runs[1]['problems']})"
        )

    tokens_grid = sorted(grid) if grid is not None else default_grid(list(columns.values()))
    rows = [
        {"tokens": t, "accuracy": {column: interpolate_log(curve, t) for column, curve in columns.items()}}
        for t in tokens_grid
    ]

    for warning in warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    title = "accuracy at matched tokens per problem\n" + "\n".join(
        f"{r['label']}: {r['dataset']} · {r['model']} · {r['problems']} problems" for r in runs
    )
    table = Table(title=title, title_justify="left")
    table.add_column("tokens", justify="right")
    for column in columns:
        table.add_column(column.replace(" · ", "\n", 1), justify="right")
    for row in rows:
        values = row["accuracy"].values()
        best = max((v for v in values if v is not None), default=None)
        cells = [
            MISSING if v is None else f"[bold]{v:.3f}[/]" if v == best and len(columns) > 1 else f"{v:.3f}"
            for v in values
        ]
        table.add_row(f"{row['tokens']:,.0f}", *cells)
    console.print(table)
    return {"runs": runs, "warnings": warnings, "columns": list(columns), "rows": rows}
