"""``curves.png``: accuracy and coverage against measured cost, one curve per strategy.

Cost is measured tokens (and FLOPs where the run knows its model's size): the axis on which
strategies are compared fairly ("Scaling LLM Test-Time Compute Optimally", Snell et al., 2024).
Three things keep the figure readable from run to run:

- a strategy keeps its colour everywhere: the colour belongs to the strategy whose selection a
  curve shows (``StrategyId.selector``: ``self-consistency on best-of-n`` is drawn in
  self-consistency's colour, dashed, since it re-selects from another strategy's samples), from a
  fixed table, or for a strategy the table does not know, from a stable hash of its name; the marker
  comes from a stable hash of the whole curve name, so two curves of one strategy still differ;
- one legend for all panels, below them, never over the data;
- budget labels (``k=4``) are placed where they collide with no other label and no drawn point or
  line, and left out where no such place is near their point (the curve's order gives the budget).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any, Literal

from ponder.core.extras import import_extra
from ponder.eval.identity import StrategyId
from ponder.eval.metrics import stable_seed

CURVES_FILE = "curves.png"

#: a strategy's colour, by registered name: the common baselines get the strongest colours
COLORS = {
    "greedy": "#222222",
    "self-consistency": "#1f77b4",
    "best-of-n": "#ff7f0e",
    "beam-search": "#2ca02c",
    "dvts": "#d62728",
    "particle-filtering": "#9467bd",
    "debate": "#8c564b",
    "pipeline": "#e377c2",
    "test-select": "#bcbd22",
    "adaptive-consistency": "#c51b7d",
    "plansearch": "#393b79",
    "mcts": "#843c39",
    "best-first": "#637939",
    "deepconf": "#8c6d31",
    "self-refine": "#7b4173",
    "critique-refine": "#5254a3",
    "evolve": "#ad494a",
    "first-finish": "#6b6ecf",
    "iterative-deepening": "#8ca252",
    "qalign": "#bd9e39",
    "solve-detect-verify": "#a55194",
    "thinking-budget": "#7f7f7f",
    "atom-of-thoughts": "#d6616b",
}
#: what a strategy outside ``COLORS`` (a plugin) is drawn in, chosen by a stable hash of its name
FALLBACK_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
MARKERS = ("o", "s", "^", "v", "D", "P", "X", "<", ">")
#: where a budget label may sit around its point (offset in points), tried in this order
LABEL_OFFSETS = ((5, 4), (5, -11), (-22, 4), (-22, -11), (6, -3), (-24, -3), (-8, 8), (-8, -15))


@dataclass(frozen=True)
class CurveStyle:
    """How one curve is drawn: the same for the same name in every panel, plot and run."""

    color: str
    marker: str
    linestyle: Literal["-", "--"]


def curve_style(name: str) -> CurveStyle:
    """The style of the curve named ``name`` (a summary row's ``strategy``), stable across runs."""
    identity = StrategyId.parse(name)
    selector = identity.selector
    color = COLORS.get(selector) or FALLBACK_COLORS[stable_seed(selector) % len(FALLBACK_COLORS)]
    marker = MARKERS[stable_seed(name) % len(MARKERS)]
    return CurveStyle(color, marker, "--" if identity.rule else "-")


def rows_by_strategy(summary: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Summary rows grouped by strategy (in order of first appearance), each group sorted by budget."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in summary.get("rows", []):
        groups.setdefault(str(row.get("strategy")), []).append(row)
    for rows in groups.values():
        rows.sort(key=lambda row: (row.get("budget") is not None, row.get("budget") or 0))
    return groups


def run_title(run: dict[str, Any]) -> str:
    """``dataset · model · N problems`` (and the seeds, when more than one)."""
    seeds = run.get("seeds")
    parts = [str(run.get("dataset", "?")), str(run.get("model", "?")), f"{run.get('problems', '?')} problems"]
    if seeds not in (None, 1):
        parts.append(f"{seeds} seeds")
    return " · ".join(parts)


def check_plotting() -> None:
    """Fail before a run rather than after it when its curves cannot be drawn (matplotlib is an extra)."""
    import_extra("matplotlib", "eval", f"the report's {CURVES_FILE}")


@dataclass
class _Label:
    """A budget label waiting for a place: its point in data coordinates, text and colour."""

    x: float
    y: float
    text: str
    color: str


def _legend_label(strategy: str, rows: list[dict[str, Any]], most: int) -> str:
    counted = max((int(r.get("problems") or 0) for r in rows), default=0)
    return f"{strategy} ({counted} problems)" if 0 < counted < most else strategy  # an unfinished run


def _draw_panel(
    axes: Any, groups: dict[str, list[dict[str, Any]]], key: str, low_key: str, high_key: str, cost: str
) -> tuple[list[float], list[_Label], list[str]]:
    """One panel: ``key`` against ``cost`` per strategy. Returns the costs drawn, the budget labels to
    place, and the strategies left out because their cost is unknown."""
    drawn: list[float] = []
    labels: list[_Label] = []
    unknown: list[str] = []
    for strategy, rows in groups.items():
        if any(r.get(key) is not None and r.get(cost) is None for r in rows):
            unknown.append(strategy)
        points = [r for r in rows if r.get(key) is not None and (r.get(cost) or 0) > 0]
        if not points:
            continue
        style = curve_style(strategy)
        costs = [r[cost] for r in points]
        drawn.extend(costs)
        values = [r[key] for r in points]
        lows = [r.get(low_key) for r in points]
        highs = [r.get(high_key) for r in points]
        has_interval = all(v is not None for v in lows + highs)
        if len(points) == 1:
            error = [[values[0] - lows[0]], [highs[0] - values[0]]] if has_interval else None
            axes.errorbar(
                costs,
                values,
                yerr=error,
                fmt=style.marker,
                color=style.color,
                markersize=7,
                capsize=4,
                label=strategy,  # names the artists (the legend is drawn once, for the whole figure)
            )
        else:
            axes.plot(
                costs,
                values,
                marker=style.marker,
                markersize=5,
                color=style.color,
                linestyle=style.linestyle,
                label=strategy,
            )
            if has_interval:
                axes.fill_between(costs, lows, highs, color=style.color, alpha=0.12, linewidth=0)
        labels += [
            _Label(x, y, f"k={row['budget']}", style.color)
            for row, x, y in zip(points, costs, values, strict=True)
            if row.get("budget") is not None and (len(points) > 1 or row["budget"] != 1)
        ]  # a lone point at 1 is a strategy no budget scales (greedy, debate): "k=1" would mislead
    return drawn, labels, unknown


def _obstacles(axes: Any) -> list[Any]:
    """Display-space boxes around every drawn point and along every drawn line of ``axes``."""
    from matplotlib.collections import LineCollection
    from matplotlib.transforms import Bbox

    boxes = []
    paths = [axes.transData.transform(line.get_xydata()) for line in axes.get_lines()]
    for collection in axes.collections:  # error bars
        if isinstance(collection, LineCollection):
            paths += [axes.transData.transform(segment) for segment in collection.get_segments()]
    for xy in paths:
        for (x0, y0), (x1, y1) in zip(xy[:-1], xy[1:], strict=True):
            steps = max(1, int(math.hypot(x1 - x0, y1 - y0) // 6))
            for step in range(steps + 1):
                x, y = x0 + (x1 - x0) * step / steps, y0 + (y1 - y0) * step / steps
                boxes.append(Bbox.from_extents(x - 3, y - 3, x + 3, y + 3))
    for line in axes.get_lines():
        for x, y in axes.transData.transform(line.get_xydata()):
            boxes.append(Bbox.from_extents(x - 7, y - 7, x + 7, y + 7))  # the marker
    return boxes


def _place_labels(figure: Any, axes: Any, labels: list[_Label]) -> int:
    """Annotate each budget label at the first offset where it overlaps nothing drawn and stays inside
    the axes; a label with no such place is left out. Returns how many were left out."""
    renderer = figure.canvas.get_renderer()
    taken = _obstacles(axes)
    inside = axes.get_window_extent(renderer)
    left_out = 0
    for label in labels:
        for offset in LABEL_OFFSETS:
            text = axes.annotate(
                label.text,
                (label.x, label.y),
                textcoords="offset points",
                xytext=offset,
                fontsize=7,
                color=label.color,
            )
            text.set_in_layout(False)  # the layout is settled; labels must not move it
            box = text.get_window_extent(renderer)
            fits = inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1)
            if fits and not any(box.overlaps(other) for other in taken):
                taken.append(box)
                break
            text.remove()
        else:
            left_out += 1
    return left_out


def curves_png(summary: dict[str, Any]) -> bytes:
    """``curves_figure`` as PNG bytes."""
    buffer = io.BytesIO()
    curves_figure(summary).savefig(buffer, format="png", dpi=150)
    return buffer.getvalue()


def curves_figure(summary: dict[str, Any]) -> Any:
    """The figure, laid out and labelled (matplotlib's object API: no pyplot, no display, Agg canvas).

    Accuracy and coverage against mean tokens, and, where the run measured FLOPs, accuracy against
    them: prompt-heavy strategies (a search judging every step) sit far apart on the two cost axes,
    since FLOPs leave out the prompt tokens the server's cache served."""
    check_plotting()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, NullFormatter, PercentFormatter

    groups = rows_by_strategy(summary)
    tokens_label = "mean tokens per problem (prompt + completion, log scale)"
    panels = [
        ("accuracy", "ci_low", "ci_high", "mean_tokens", "accuracy vs tokens", tokens_label),
        (
            "accuracy",
            "ci_low",
            "ci_high",
            "mean_flops",
            "accuracy vs FLOPs",
            "mean FLOPs per problem (prompt cache hits left out, log scale)",
        ),
        ("coverage", "coverage_ci_low", "coverage_ci_high", "mean_tokens", "pass@k vs tokens", tokens_label),
    ]
    if not any((r.get("mean_flops") or 0) > 0 for r in summary.get("rows", [])):
        del panels[1]  # a backend that reports no model size
    ylabels = {
        "accuracy": "accuracy (% of problems correct)",
        "coverage": "coverage: pass@k (% of problems with a correct sample)",
    }
    width = 6.5 * len(panels)
    columns = max(1, min(len(groups), int(width // 4.5)))
    legend_rows = math.ceil(len(groups) / columns)
    figure = Figure(figsize=(width, 5.2 + 0.22 * legend_rows), dpi=150, layout="constrained")
    FigureCanvasAgg(figure)
    formatters = {
        "mean_tokens": FuncFormatter(lambda value, _position: f"{value:,.0f}"),
        "mean_flops": FuncFormatter(lambda value, _position: f"{value:.2g}"),
    }
    placements = []
    for axes, (key, low_key, high_key, cost, title, xlabel) in zip(
        figure.subplots(1, len(panels), squeeze=False)[0], panels, strict=True
    ):
        drawn, labels, unknown = _draw_panel(axes, groups, key, low_key, high_key, cost)
        axes.set_title(title, fontsize=11)
        if unknown and cost == "mean_flops":
            xlabel += f"\nFLOPs unknown (not drawn): {', '.join(unknown)}"
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabels[key])
        axes.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
        axes.grid(True, which="major", alpha=0.3)
        axes.grid(True, which="minor", alpha=0.1)
        if drawn:
            axes.set_xscale("log", base=2)  # budgets double, so powers of two make the ticks
            axes.xaxis.set_major_formatter(formatters[cost])
            axes.xaxis.set_minor_formatter(NullFormatter())
            if math.floor(math.log2(max(drawn))) - math.ceil(math.log2(min(drawn))) < 1:
                axes.set_xticks(sorted(set(drawn)))  # under two powers of two in range: tick the points
            axes.margins(x=0.1)
            axes.set_ylim(-0.03, 1.05)  # full scale: curves of different runs read alike
            placements.append((axes, labels))
        else:
            axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes, color="0.5")
    most = max((int(r.get("problems") or 0) for rows in groups.values() for r in rows), default=0)
    handles = [
        Line2D([], [], color=style.color, marker=style.marker, linestyle=style.linestyle, markersize=6)
        for style in map(curve_style, groups)
    ]
    names = [_legend_label(strategy, rows, most) for strategy, rows in groups.items()]
    if handles:
        figure.legend(handles, names, loc="outside lower center", ncols=columns, fontsize=9, frameon=False)
    figure.suptitle(run_title(summary.get("run", {})), fontsize=12)
    figure.canvas.draw()  # settle the layout, then place the budget labels where they collide with nothing
    figure.set_layout_engine("none")
    for axes, labels in placements:
        _place_labels(figure, axes, labels)
    return figure
