"""What an eval run leaves behind for people: scaling curves, an HTML report, a terminal table.

An eval output directory holds ``summary.json`` (the run and one row per strategy × budget) and
``records.jsonl`` (one record per strategy × seed × problem, every candidate kept). From them this
module draws ``curves.png`` (accuracy and coverage against measured tokens, the axis on which
strategies are compared fairly: "Scaling LLM Test-Time Compute Optimally", Snell et al., 2024) and
writes ``report.html``, one self-contained file with the curves, the summary table and a per-problem
drill-down that shows why each answer won. ``ponder report DIR`` calls :func:`write_outputs`.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ponder.core.errors import UsageError
from ponder.core.extras import import_extra
from ponder.eval.identity import StrategyId

SUMMARY_FILE = "summary.json"
RECORDS_FILE = "records.jsonl"
CURVES_FILE = "curves.png"
REPORT_FILE = "report.html"

MISSING = "—"


# ---------------------------------------------------------------- reading


def load_summary(directory: Path) -> dict[str, Any]:
    """The run's ``summary.json``; a directory without one is a usage error."""
    path = Path(directory) / SUMMARY_FILE
    if not path.is_file():
        raise UsageError(f"{path} not found: is {directory} the output directory of `ponder eval`?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise UsageError(f"{path} is not valid JSON: {error}") from error


def load_records(directory: Path) -> tuple[list[dict[str, Any]], int]:
    """The records of ``records.jsonl`` and how many lines were skipped as malformed.

    A run that crashed mid-write leaves a truncated last line; such lines are skipped, not fatal.
    A directory without records yields no records.
    """
    path = Path(directory) / RECORDS_FILE
    if not path.is_file():
        return [], 0
    records: list[dict[str, Any]] = []
    skipped = 0
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                skipped += 1
                continue
            if isinstance(record, dict):
                records.append(record)
            else:
                skipped += 1
    return records, skipped


def rows_by_strategy(summary: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Summary rows grouped by strategy (in order of first appearance), each group sorted by budget."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in summary.get("rows", []):
        groups.setdefault(str(row.get("strategy")), []).append(row)
    for rows in groups.values():
        rows.sort(key=lambda row: (row.get("budget") is not None, row.get("budget") or 0))
    return groups


# ---------------------------------------------------------------- formatting


def _fraction(value: float | None) -> str:
    return MISSING if value is None else f"{value:.3f}"


def _interval(low: float | None, high: float | None) -> str:
    return "" if low is None or high is None else f"[{low:.3f}, {high:.3f}]"


def _number(value: float | None, spec: str) -> str:
    return MISSING if value is None else format(value, spec)


def _budget(value: Any) -> str:
    return MISSING if value is None else str(value)


def _baseline_name(summary: dict[str, Any]) -> str | None:
    """The curve the rows were matched against (``match_baseline``), without its options."""
    baseline = next((r["baseline"] for r in summary.get("rows", []) if r.get("baseline")), None)
    return StrategyId.parse(baseline).short_name if baseline else None


def _run_title(run: dict[str, Any]) -> str:
    seeds = run.get("seeds")
    parts = [str(run.get("dataset", "?")), str(run.get("model", "?")), f"{run.get('problems', '?')} problems"]
    if seeds not in (None, 1):
        parts.append(f"{seeds} seeds")
    return " · ".join(parts)


# ---------------------------------------------------------------- curves


def _draw_panel(
    axes: Any,
    groups: dict[str, list[dict[str, Any]]],
    colors: dict[str, str],
    key: str,
    low_key: str,
    high_key: str,
    cost: str = "mean_tokens",
) -> list[float]:
    """One panel: ``key`` against ``cost`` (mean tokens or FLOPs) per strategy. Returns the costs drawn."""
    drawn: list[float] = []
    most = max((int(r.get("problems") or 0) for rows in groups.values() for r in rows), default=0)
    for index, (strategy, rows) in enumerate(groups.items()):
        points = [r for r in rows if r.get(key) is not None and (r.get(cost) or 0) > 0]
        if not points:
            continue
        costs = [r[cost] for r in points]
        drawn.extend(costs)
        values = [r[key] for r in points]
        lows = [r.get(low_key) for r in points]
        highs = [r.get(high_key) for r in points]
        has_interval = all(v is not None for v in lows + highs)
        color = colors[strategy]
        counted = max(int(r.get("problems") or 0) for r in points)
        label = f"{strategy} ({counted} problems)" if 0 < counted < most else strategy  # unfinished run
        if len(points) == 1:
            error = [[values[0] - lows[0]], [highs[0] - values[0]]] if has_interval else None
            axes.errorbar(
                costs, values, yerr=error, fmt="D", color=color, markersize=7, capsize=4, label=label
            )
        else:
            axes.plot(costs, values, marker="o", markersize=5, color=color, label=label)
            if has_interval:
                axes.fill_between(costs, lows, highs, color=color, alpha=0.15, linewidth=0)
        for row, x, y in zip(points, costs, values, strict=True):
            if row.get("budget") is not None:
                axes.annotate(
                    f"k={row['budget']}",
                    (x, y),
                    textcoords="offset points",
                    xytext=(4, 5) if index % 2 == 0 else (4, -11),  # alternate sides: fewer overlaps
                    fontsize=7,
                    color=color,
                )
    return drawn


def check_plotting() -> None:
    """Fail before a run rather than after it when its curves cannot be drawn (matplotlib is an extra)."""
    import_extra("matplotlib", "eval", f"the report's {CURVES_FILE}")


def _curves_png(summary: dict[str, Any]) -> bytes:
    """The figure as PNG bytes (matplotlib's object API: no pyplot, no display, Agg canvas).

    Accuracy and coverage against mean tokens, and, where the run measured FLOPs, accuracy against
    them: prompt-heavy strategies (a search judging every step) sit far apart on the two cost axes,
    since FLOPs leave out the prompt tokens the server's cache served."""
    check_plotting()
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter, PercentFormatter

    groups = rows_by_strategy(summary)
    palette = [f"C{i}" for i in range(10)]
    colors = {strategy: palette[i % len(palette)] for i, strategy in enumerate(groups)}
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
    figure = Figure(figsize=(6.5 * len(panels), 5.2), dpi=150)
    formatters = {
        "mean_tokens": FuncFormatter(lambda value, _position: f"{value:,.0f}"),
        "mean_flops": FuncFormatter(lambda value, _position: f"{value:.2g}"),
    }
    for axes, (key, low_key, high_key, cost, title, xlabel) in zip(
        figure.subplots(1, len(panels)), panels, strict=True
    ):
        drawn = _draw_panel(axes, groups, colors, key, low_key, high_key, cost)
        axes.set_title(title, fontsize=11)
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
            axes.margins(x=0.08)
            axes.set_ylim(-0.02, 1.02)  # full scale: curves of different runs read alike
            axes.legend(loc="best", fontsize=8, framealpha=0.85)
        else:
            axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes, color="0.5")
    figure.suptitle(_run_title(summary.get("run", {})), fontsize=12)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=150)
    return buffer.getvalue()


def write_curves(summary: dict[str, Any], path: Path) -> None:
    """Draw accuracy and coverage against mean tokens (and accuracy against FLOPs) into a PNG at ``path``."""
    Path(path).write_bytes(_curves_png(summary))


# ---------------------------------------------------------------- terminal


def render_summary_table(summary: dict[str, Any], console: Console) -> None:
    """The summary rows as a rich table: one row per strategy × budget."""
    table = Table(title=_run_title(summary.get("run", {})), title_justify="left")
    table.add_column("strategy", overflow="fold", min_width=16)  # a spec folds; it is never cut off
    truncated = any(row.get("truncated_rate") for row in summary.get("rows", []))
    columns = (
        "budget",
        "problems",
        "accuracy [CI]",
        "coverage",
        "no answer",
        *(["truncated"] if truncated else []),  # shown when a sample was cut off by max_tokens
        "mean tokens",
        "calls",
        "seconds",
    )
    baseline = _baseline_name(summary)
    if baseline:  # self-consistency's accuracy at each row's tokens and FLOPs: the fair comparison
        columns = (*columns, f"{baseline} at same tokens", f"{baseline} at same FLOPs")
    for column in columns:
        table.add_column(column, justify="right")
    for rows in rows_by_strategy(summary).values():
        for row in rows:
            accuracy = f"{_fraction(row.get('accuracy'))} {_interval(row.get('ci_low'), row.get('ci_high'))}"
            matched = (
                [_fraction(row.get("baseline_accuracy")), _fraction(row.get("baseline_accuracy_flops"))]
                if baseline
                else []
            )
            table.add_row(
                escape(str(row.get("strategy"))),  # specs may hold [bracketed] values
                _budget(row.get("budget")),
                str(row.get("problems", "")),  # rows of an unfinished run may cover fewer problems
                accuracy.strip(),
                _fraction(row.get("coverage")),
                _fraction(row.get("no_answer_rate")),
                *([_fraction(row.get("truncated_rate"))] if truncated else []),
                _number(row.get("mean_tokens"), ",.0f"),
                _number(row.get("mean_calls"), ".3g"),
                _number(row.get("mean_seconds"), ".1f"),
                *matched,
            )
    console.print(table)


# ---------------------------------------------------------------- HTML

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1400px; padding: 0 1.5em; color: #1d1d1f; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: .2em 1.2em; }
dl.meta dt { color: #666; } dl.meta dd { margin: 0; }
pre { white-space: pre-wrap; word-break: break-word; background: #f6f6f8; padding: .6em .8em;
      border-radius: 4px; margin: .3em 0; }
pre.text { max-height: 28em; overflow: auto; font-size: 12.5px; }
table { border-collapse: collapse; margin: .4em 0 .8em; }
th, td { padding: .25em .7em; border-bottom: 1px solid #e5e5e5; text-align: right; vertical-align: top; }
th { background: #f3f3f5; } td.left, th.left { text-align: left; }
.ci { color: #777; font-size: .9em; }
table.candidates { width: 100%; } table.candidates td:last-child { text-align: left; width: 60%; }
img.curves { max-width: 100%; border: 1px solid #eee; }
details { margin: .2em 0; } summary { cursor: pointer; }
details.problem { border: 1px solid #e3e3e3; border-radius: 5px; padding: .3em .7em; margin: .35em 0; }
details.problem[open] { background: #fcfcfd; }
details.record { margin: .5em 0 .5em 1em; padding-left: .6em; border-left: 3px solid #ddd; }
details.record.right { border-left-color: #2e9e4f; } details.record.wrong { border-left-color: #d0443e; }
.ok { color: #2e9e4f; font-weight: 600; } .bad { color: #d0443e; font-weight: 600; }
.chip { display: inline-block; min-width: 1.3em; text-align: center; border-radius: 3px; margin-left: .15em;
        font-size: .85em; color: #fff; }
.chip.ok { background: #2e9e4f; } .chip.bad { background: #d0443e; }
.id { font-family: ui-monospace, monospace; } .muted { color: #777; }
tr.chosen td { background: #eef7ee; }
.controls { margin: .5em 0 1em; } .controls button, .controls select { margin-right: .5em; }
ul.tree { list-style: none; padding-left: 1.1em; margin: .1em 0; border-left: 1px dotted #ccc; }
ul.tree > li { margin: .15em 0; } ul.tree pre { margin: .1em 0; max-height: 8em; overflow: auto; }
.state { display: inline-block; border-radius: 3px; padding: 0 .35em; font-size: .8em; background: #ddd; }
.state.finished { background: #cfe9d6; } .state.pruned, .state.truncated { background: #f3d5d3; }
li.chosen > .node { font-weight: 600; } li.chosen > .node::before { content: "▶ "; color: #2e9e4f; }
"""

SCRIPT = """
function setAll(open) { document.querySelectorAll('details.problem').forEach(d => d.open = open); }
function filterProblems(value) {
  document.querySelectorAll('details.problem').forEach(d => {
    d.style.display = (value === 'any' || d.dataset.outcome === value) ? '' : 'none';
  });
}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _mark(correct: Any) -> str:
    if correct is True:
        return '<span class="ok">✓</span>'
    if correct is False:
        return '<span class="bad">✗</span>'
    return f'<span class="muted">{MISSING}</span>'


def _html_table(
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


def _metadata_html(run: dict[str, Any], record_count: int, skipped: int) -> str:
    items = []
    for key, value in run.items():
        if key == "command":
            continue
        shown = ", ".join(str(v) for v in value) if isinstance(value, list) else value
        items.append(f"<dt>{_e(key)}</dt><dd>{_e(shown)}</dd>")
    items.append(f"<dt>records</dt><dd>{record_count}</dd>")
    if skipped:
        items.append(f"<dt>skipped</dt><dd>{skipped} malformed line(s) in {RECORDS_FILE}</dd>")
    command = run.get("command")
    command_html = f"<h3>command</h3><pre><code>{_e(command)}</code></pre>" if command else ""
    return f'<dl class="meta">{"".join(items)}</dl>{command_html}'


def _summary_html(summary: dict[str, Any]) -> str:
    headers = [
        "strategy",
        "budget",
        "accuracy [CI]",
        "coverage (pass@k) [CI]",
        "no answer",
        "truncated",
        "mean tokens",
        "prompt / completion",
        "calls",
        "seconds",
        "FLOPs",
        "problems × seeds",
    ]
    baseline = _baseline_name(summary)
    if baseline:  # its accuracy at each row's cost, and the paired difference (row minus it)
        headers += [f"{baseline} at same {cost}: accuracy, difference" for cost in ("tokens", "FLOPs")]
    rows = []
    for group in rows_by_strategy(summary).values():
        for row in group:
            rows.append(
                [
                    _e(row.get("strategy")),
                    _e(_budget(row.get("budget"))),
                    f"{_fraction(row.get('accuracy'))} "
                    f'<span class="ci">{_interval(row.get("ci_low"), row.get("ci_high"))}</span>',
                    f'{_fraction(row.get("coverage"))} <span class="ci">'
                    f"{_interval(row.get('coverage_ci_low'), row.get('coverage_ci_high'))}</span>",
                    _fraction(row.get("no_answer_rate")),
                    _fraction(row.get("truncated_rate")),
                    _number(row.get("mean_tokens"), ",.0f"),
                    f"{_number(row.get('mean_prompt_tokens'), ',.0f')} / "
                    f"{_number(row.get('mean_completion_tokens'), ',.0f')}",
                    _number(row.get("mean_calls"), ".3g"),
                    _number(row.get("mean_seconds"), ".1f"),
                    _number(row.get("mean_flops"), ".3g"),
                    f"{_e(row.get('problems', MISSING))} × {_e(row.get('seeds', MISSING))}",
                ]
            )
            if baseline:
                rows[-1] += [_matched_html(row, ""), _matched_html(row, "_flops")]
    return _html_table(headers, rows, left=1)


def _matched_html(row: dict[str, Any], suffix: str) -> str:
    """The baseline's accuracy at the row's cost and the paired difference with its interval."""
    accuracy = row.get(f"baseline_accuracy{suffix}")
    difference = row.get(f"baseline_difference{suffix}")
    if accuracy is None or difference is None:
        return MISSING
    interval = _interval(*(row.get(f"baseline_difference_ci{suffix}") or (None, None)))
    return f'{accuracy:.3f}, {difference:+.3f} <span class="ci">{interval}</span>'


def _votes_html(record: dict[str, Any]) -> str:
    votes = record.get("votes") or {}
    if not votes:
        return ""
    candidates = record.get("candidates") or []
    correct_answers = {c.get("answer") for c in candidates if c.get("correct")}
    total = sum(float(w) for w in votes.values()) or 1.0
    rows, classes = [], []
    for answer, weight in sorted(votes.items(), key=lambda item: -float(item[1])):
        rows.append(
            [
                _e(answer),
                _mark(answer in correct_answers if candidates else None),
                f"{float(weight):g}",
                f"{float(weight) / total:.0%}",
            ]
        )
        classes.append("chosen" if answer == record.get("answer") else "")
    return "<h4>votes</h4>" + _html_table(["answer", "correct", "votes", "share"], rows, 1, classes)


def _candidates_html(record: dict[str, Any]) -> str:
    candidates = record.get("candidates") or []
    if not candidates:
        return '<p class="muted">no candidates recorded</p>'
    rows, classes = [], []
    for index, candidate in enumerate(candidates):
        scores = candidate.get("scores") or {}
        score = candidate.get("score")
        text = candidate.get("text") or ""
        usage = candidate.get("usage") or {}
        tokens = candidate.get("completion_tokens", usage.get("completion_tokens"))
        rows.append(
            [
                str(index),
                _e(candidate.get("answer") if candidate.get("answer") is not None else MISSING),
                _mark(candidate.get("correct")),
                _number(score, ".3f") if isinstance(score, int | float) else MISSING,
                _e(
                    ", ".join(
                        f"{name}={value:.3g}"
                        for name, value in scores.items()
                        if isinstance(value, int | float)
                    )
                )
                or MISSING,
                _e(tokens if tokens is not None else MISSING),
                _e(candidate.get("finish_reason") or MISSING),
                f"<details><summary>text ({len(text):,} chars)</summary>"
                f'<pre class="text">{_e(text)}</pre></details>',
            ]
        )
        selected = record.get("answer") is not None and candidate.get("answer") == record.get("answer")
        classes.append("chosen" if selected else "")
    headers = ["#", "answer", "correct", "score", "scores", "tokens", "finish", "text"]
    return f"<h4>candidates ({len(candidates)})</h4>" + _html_table(headers, rows, 2, classes, "candidates")


def _tokens(usage: dict[str, Any]) -> int | None:
    if usage.get("total_tokens") is not None:
        return usage["total_tokens"]
    if usage.get("prompt_tokens") is None:
        return None
    return usage["prompt_tokens"] + (usage.get("completion_tokens") or 0)


def _record_label(record: dict[str, Any]) -> str:
    """Strategy, budget (for records run at one budget), seed and the run it was reused from, unescaped."""
    budget = f" · budget {record['budget']}" if record.get("budget") is not None else ""
    reused = f" · reused from {record['reused_from']}" if record.get("reused_from") else ""
    return f"{record.get('strategy')}{budget} · seed {record.get('seed')}{reused}"


def _usage_by_line_html(record: dict[str, Any]) -> str:
    """Per-line usage (generation, each scorer) when more than one line spent compute."""
    lines = record.get("usage_by_line") or {}
    if len(lines) < 2:
        return ""
    rows = [
        [
            _e(name),
            _number(usage.get("calls"), ","),
            _number(usage.get("prompt_tokens"), ","),
            _number(usage.get("completion_tokens"), ","),
            _number(usage.get("seconds"), ".1f"),
            _number(usage.get("flops"), ".3g"),
        ]
        for name, usage in lines.items()
    ]
    headers = ["line", "calls", "prompt tokens", "completion tokens", "seconds", "FLOPs"]
    return "<h4>compute by line</h4>" + _html_table(headers, rows, 1)


def _record_html(record: dict[str, Any]) -> str:
    correct = record.get("correct")
    usage = record.get("usage") or {}
    outcome = "right" if correct is True else "wrong" if correct is False else ""
    answer = record.get("answer")
    facts = [f"{_number(_tokens(usage), ',')} tokens", f"{_number(usage.get('calls'), ',')} calls"]
    if record.get("wall_seconds") is not None:
        facts.append(f"{record['wall_seconds']:.1f} s wall")
    summary = (
        f"{_mark(correct)} <b>{_e(_record_label(record))}</b> · answer "
        f"<b>{_e(answer) if answer is not None else MISSING}</b> "
        f'<span class="muted">· {" · ".join(facts)}</span>'
    )
    notes = "".join(
        f'<p class="muted">{_e(key)}: {_e(record[key])}</p>' for key in ("note", "error") if record.get(key)
    )
    return (
        f'<details class="record {outcome}"><summary>{summary}</summary>{notes}'
        f"{_votes_html(record)}{_candidates_html(record)}{_trace_html(record)}{_usage_by_line_html(record)}"
        "</details>"
    )


def _search_tree_html(nodes: list[dict[str, Any]], chosen_text: str | None) -> str:
    """The search tree as nested lists: each step with its state, score and tokens; the path to the
    chosen answer marked, so the report shows why an answer won and what was pruned on the way."""
    children: dict[Any, list[dict[str, Any]]] = {}
    solution: dict[Any, str] = {}
    parent_of: dict[Any, Any] = {}
    for node in nodes:  # parents come before their children
        children.setdefault(node.get("parent"), []).append(node)
        parent_of[node["id"]] = node.get("parent")
        solution[node["id"]] = solution.get(node.get("parent"), "") + str(node.get("text") or "")
    chosen: set[Any] = set()
    leaf = next(
        (n["id"] for n in nodes if n.get("state") == "finished" and solution[n["id"]] == chosen_text), None
    )
    while leaf is not None:
        chosen.add(leaf)
        leaf = parent_of.get(leaf)

    def render(node: dict[str, Any]) -> str:
        state = str(node.get("state"))
        facts = [f"depth {node.get('depth')}", f"{node.get('tokens')} tokens"]
        if node.get("score") is not None:
            facts.insert(0, f"score {node['score']:.3f}")
        if node.get("rollout"):
            facts.append("rollout")
        kids = "".join(render(child) for child in children.get(node["id"], []))
        text = f"<pre>{_e(node.get('text'))}</pre>" if node.get("text") else ""
        css = ' class="chosen"' if node["id"] in chosen else ""
        return (
            f'<li{css}><span class="node"><span class="state {_e(state)}">{_e(state)}</span> '
            f'<span class="muted">{" · ".join(facts)}</span></span>{text}'
            + (f'<ul class="tree">{kids}</ul>' if kids else "")
            + "</li>"
        )

    counts = {state: sum(1 for n in nodes if n.get("state") == state) for state in ("finished", "pruned")}
    roots = "".join(render(node) for node in children.get(None, []))
    return (
        f"<details><summary>search tree: {len(nodes)} nodes, {counts['finished']} finished, "
        f'{counts["pruned"]} pruned</summary><ul class="tree">{roots}</ul></details>'
    )


def _trace_html(record: dict[str, Any]) -> str:
    """A strategy's trace: a search tree drawn as a tree, anything else (debate rounds, pipeline
    layers, an anytime curve) as indented JSON."""
    trace = record.get("trace")
    if trace is None:
        return ""
    if isinstance(trace, dict) and trace.get("kind") == "search-tree":
        return _search_tree_html(list(trace.get("nodes") or []), record.get("text"))
    return f"<details><summary>trace</summary><pre>{_e(json.dumps(trace, indent=1))}</pre></details>"


def _chip(record: dict[str, Any]) -> str:
    """A small ✓/✗ square for one record, its strategy and seed in the tooltip."""
    right = record.get("correct") is True
    title = _e(_record_label(record))
    return f'<span class="chip {"ok" if right else "bad"}" title="{title}">{"✓" if right else "✗"}</span>'


def _problems_html(records: list[dict[str, Any]]) -> str:
    """One collapsed <details> per problem, in order of first appearance; inside, one per record."""
    problems: dict[str, list[dict[str, Any]]] = {}
    family_order: dict[str, int] = {}
    for record in records:
        problem = record.get("problem") or {}
        problems.setdefault(str(problem.get("id")), []).append(record)
        family_order.setdefault(str(record.get("family", record.get("strategy"))), len(family_order))

    def order(record: dict[str, Any]) -> tuple[int, int, int]:
        family = family_order[str(record.get("family", record.get("strategy")))]
        seed, budget = record.get("seed"), record.get("budget")
        return family, seed if isinstance(seed, int) else 0, budget if isinstance(budget, int) else 0

    parts = []
    for problem_id, group in problems.items():
        group = sorted(group, key=order)
        problem = group[0].get("problem") or {}
        question = str(problem.get("question") or "")
        right = sum(1 for r in group if r.get("correct") is True)
        outcome = "right" if right == len(group) else "wrong" if right == 0 else "mixed"
        chips = "".join(_chip(r) for r in group)
        excerpt = question if len(question) <= 110 else question[:107] + "…"
        parts.append(
            f'<details class="problem" data-outcome="{outcome}">'
            f'<summary><span class="id">{_e(problem_id)}</span> {chips} '
            f'<span class="muted">{right}/{len(group)} right · {_e(excerpt)}</span></summary>'
            f"<h4>question</h4><pre>{_e(question)}</pre>"
            f"<p><b>reference:</b> <code>{_e(problem.get('reference'))}</code></p>"
            f"{''.join(_record_html(r) for r in group)}</details>"
        )
    return "".join(parts)


def _report_html(summary: dict[str, Any], records: list[dict[str, Any]], skipped: int, png: bytes) -> str:
    run = summary.get("run", {})
    image = base64.b64encode(png).decode("ascii")
    controls = (
        '<div class="controls"><button onclick="setAll(true)">expand all</button>'
        '<button onclick="setAll(false)">collapse all</button>'
        '<label>show <select onchange="filterProblems(this.value)">'
        '<option value="any">all problems</option><option value="mixed">right and wrong answers</option>'
        '<option value="wrong">no right answer</option><option value="right">only right answers</option>'
        "</select></label></div>"
    )
    drill_down = (
        controls + _problems_html(records)
        if records
        else f'<p class="muted">no records in {RECORDS_FILE}</p>'
    )
    title = _e(_run_title(run))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ponder eval · {title}</title>
<style>{STYLE}</style><script>{SCRIPT}</script></head>
<body>
<h1>ponder eval</h1><p class="muted">{title}</p>
<h2>run</h2>{_metadata_html(run, len(records), skipped)}
<h2>scaling curves</h2>
<img class="curves" alt="accuracy and coverage against mean tokens per problem"
     src="data:image/png;base64,{image}">
<h2>summary</h2>{_summary_html(summary)}
<h2>problems</h2>{drill_down}
</body></html>
"""


def _write_report(directory: Path, summary: dict[str, Any], png: bytes) -> None:
    records, skipped = load_records(directory)
    html_text = _report_html(summary, records, skipped, png)
    (Path(directory) / REPORT_FILE).write_text(html_text, encoding="utf-8")


def write_report(directory: Path) -> None:
    """Write ``report.html`` into ``directory`` from its ``summary.json`` and ``records.jsonl``."""
    summary = load_summary(directory)
    _write_report(directory, summary, _curves_png(summary))


def write_outputs(directory: Path) -> None:
    """``curves.png`` and ``report.html`` for an eval output directory (what ``ponder report DIR`` does)."""
    directory = Path(directory)
    summary = load_summary(directory)
    png = _curves_png(summary)
    (directory / CURVES_FILE).write_bytes(png)
    _write_report(directory, summary, png)
