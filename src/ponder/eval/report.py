"""What an eval run leaves behind for people: an HTML report and a terminal table.

An eval output directory holds ``summary.json`` (the run and one row per strategy × budget) and
``records.jsonl`` (one record per strategy × seed × problem, every candidate kept). From them this
module writes ``report.html``, one self-contained file with the scaling curves (``ponder.eval.plots``,
also saved as ``curves.png``), the summary table and a per-problem drill-down that shows why each
answer won (``ponder.eval.drilldown``). ``ponder report DIR`` calls :func:`write_outputs`. Figures are
written by ``ponder.eval.figures``, alike in the table and the page: ``unknown`` where a figure was not
measured, readable calls per problem, and each interval as the summary computed it.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape as rich_escape
from rich.table import Table

from ponder.core.errors import UsageError
from ponder.eval.drilldown import problems_html
from ponder.eval.figures import MISSING, budget, calls, flops, fraction, interval, number
from ponder.eval.identity import StrategyId
from ponder.eval.page import escape, spec_html, table
from ponder.eval.plots import CURVES_FILE, check_plotting, curves_png, rows_by_strategy, run_title

__all__ = [  # what the CLI, compare and predict read from here
    "CURVES_FILE",
    "MISSING",
    "check_plotting",
    "load_records",
    "load_summary",
    "render_summary_table",
    "rows_by_strategy",
    "write_curves",
    "write_outputs",
    "write_report",
]

SUMMARY_FILE = "summary.json"
RECORDS_FILE = "records.jsonl"
REPORT_FILE = "report.html"

#: how the summary's intervals were made (``ponder.eval.metrics.outcome_interval``), said under the table
INTERVAL_NOTE = (
    "Intervals are 95% over problems: Wilson score intervals where every problem's outcome is 0 or 1 "
    "(they stay honest at 0% and 100%), a percentile bootstrap where outcomes are fractional (the "
    "expected accuracy of a k-subset vote, a mean over seeds). Calls, tokens, seconds and FLOPs are "
    "means per problem; FLOPs are unknown where the backend does not know the model's size."
)


# ---------------------------------------------------------------- reading


def load_summary(directory: Path) -> dict[str, Any]:
    """The run's ``summary.json``; a directory without one is a usage error."""
    path = Path(directory) / SUMMARY_FILE
    if not path.is_file():
        raise UsageError(f"{path} not found: is {directory} the output directory of `ponder eval`?")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise UsageError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(data, dict):
        raise UsageError(f"{path} holds no summary object")
    return data


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


def _baseline_name(summary: dict[str, Any]) -> str | None:
    """The curve the rows were matched against (``match_baseline``), without its options."""
    baseline = next((r["baseline"] for r in summary.get("rows", []) if r.get("baseline")), None)
    return StrategyId.parse(baseline).short_name if baseline else None


def write_curves(summary: dict[str, Any], path: Path) -> None:
    """Draw accuracy and coverage against mean tokens (and accuracy against FLOPs) into a PNG at ``path``."""
    Path(path).write_bytes(curves_png(summary))


# ---------------------------------------------------------------- terminal


def render_summary_table(summary: dict[str, Any], console: Console) -> None:
    """The summary rows as a rich table: one row per strategy × budget, narrow enough for 120 columns
    (short headers explained in the caption; a column that is zero everywhere is left out)."""
    grid = Table(title=run_title(summary.get("run", {})), title_justify="left", caption_justify="left")
    grid.add_column("strategy", overflow="fold", min_width=16)  # a spec folds; it is never cut off
    rows = summary.get("rows", [])
    truncated = any(row.get("truncated_rate") for row in rows)
    unanswered = any(row.get("no_answer_rate") for row in rows)
    uneven = len({row.get("problems") for row in rows}) > 1  # else the title says how many problems
    columns = [
        "k",
        *(["n"] if uneven else []),
        "accuracy [95% CI]",
        "cov.",
        *(["no ans."] if unanswered else []),
        *(["trunc."] if truncated else []),  # shown when a sample was cut off by max_tokens
        "tokens",
        "calls",
        "s",
    ]
    baseline = _baseline_name(summary)
    if baseline:  # self-consistency's accuracy at each row's tokens and FLOPs: the fair comparison
        columns += ["SC@tok", "SC@FLOPs"]
    for column in columns:
        grid.add_column(column, justify="right", no_wrap=True)
    notes = [
        f"k budget,{' n problems,' if uneven else ''} cov. coverage, tokens/calls/s mean per problem",
        "no ans. share without an answer" if unanswered else "",
        "trunc. share cut off by max_tokens" if truncated else "",
        f"SC@tok/SC@FLOPs: {baseline} at the row's tokens/FLOPs" if baseline else "",
    ]
    grid.caption = "; ".join(note for note in notes if note)
    for group in rows_by_strategy(summary).values():
        for row in group:
            accuracy = f"{fraction(row.get('accuracy'))} {interval(row.get('ci_low'), row.get('ci_high'))}"
            matched = (
                [fraction(row.get("baseline_accuracy")), fraction(row.get("baseline_accuracy_flops"))]
                if baseline
                else []
            )
            grid.add_row(
                rich_escape(str(row.get("strategy"))),  # specs may hold [bracketed] values
                budget(row.get("budget")),
                *([str(row.get("problems", ""))] if uneven else []),  # an unfinished run's rows may differ
                accuracy.strip(),
                fraction(row.get("coverage")),
                *([fraction(row.get("no_answer_rate"))] if unanswered else []),
                *([fraction(row.get("truncated_rate"))] if truncated else []),
                number(row.get("mean_tokens"), ",.0f"),
                calls(row.get("mean_calls")),
                number(row.get("mean_seconds"), ".1f"),
                *matched,
            )
    console.print(grid)


# ---------------------------------------------------------------- HTML

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1400px; padding: 0 1.5em; color: #1d1d1f; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: .2em 1.2em; }
dl.meta dt { color: #666; } dl.meta dd { margin: 0; }
pre { white-space: pre-wrap; word-break: break-word; background: #f6f6f8; padding: .6em .8em;
      border-radius: 4px; margin: .3em 0; }
pre.text, pre.code { max-height: 28em; overflow: auto; font-size: 12.5px; }
pre.code { tab-size: 4; } td pre.code { margin: .1em 0; }
code.answer { white-space: pre-wrap; }
table { border-collapse: collapse; margin: .4em 0 .8em; }
th, td { padding: .25em .7em; border-bottom: 1px solid #e5e5e5; text-align: right; vertical-align: top; }
th { background: #f3f3f5; } td.left, th.left { text-align: left; }
.ci { color: #777; font-size: .9em; display: block; white-space: nowrap; }
table.summary { font-size: 13px; } table.summary th, table.summary td { padding: .25em .5em; }
table.summary td:not(.left) { white-space: nowrap; } table.summary th { vertical-align: bottom; }
.nobr { white-space: nowrap; } div.wide { overflow-x: auto; }
p.note { color: #666; font-size: .9em; max-width: 70em; }
table.candidates { width: 100%; } table.candidates td:last-child { text-align: left; width: 55%; }
table.candidates td:nth-child(2) { max-width: 28em; } table.votes td:first-child { max-width: 60em; }
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


def _metadata_html(run: dict[str, Any], record_count: int, skipped: int) -> str:
    items = []
    for key, value in run.items():
        if key == "command":
            continue
        shown = ", ".join(str(v) for v in value) if isinstance(value, list) else value
        items.append(f"<dt>{escape(key)}</dt><dd>{escape(shown)}</dd>")
    items.append(f"<dt>records</dt><dd>{record_count}</dd>")
    if skipped:
        items.append(f"<dt>skipped</dt><dd>{skipped} malformed line(s) in {RECORDS_FILE}</dd>")
    command = run.get("command")
    command_html = f"<h3>command</h3><pre><code>{escape(command)}</code></pre>" if command else ""
    return f'<dl class="meta">{"".join(items)}</dl>{command_html}'


def _with_interval(value: float | None, low: float | None, high: float | None) -> str:
    return f'{fraction(value)} <span class="ci">{interval(low, high)}</span>'


def _summary_html(summary: dict[str, Any]) -> str:
    truncated = any(row.get("truncated_rate") for row in summary.get("rows", []))
    headers = [
        "strategy",
        "budget",
        "accuracy [95% CI]",
        "coverage (pass@k) [95% CI]",
        "no answer",
        *(["truncated"] if truncated else []),  # shown when a sample was cut off by max_tokens
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
                    spec_html(row.get("strategy")),
                    escape(budget(row.get("budget"))),
                    _with_interval(row.get("accuracy"), row.get("ci_low"), row.get("ci_high")),
                    _with_interval(
                        row.get("coverage"), row.get("coverage_ci_low"), row.get("coverage_ci_high")
                    ),
                    fraction(row.get("no_answer_rate")),
                    *([fraction(row.get("truncated_rate"))] if truncated else []),
                    number(row.get("mean_tokens"), ",.0f"),
                    f"{number(row.get('mean_prompt_tokens'), ',.0f')} / "
                    f"{number(row.get('mean_completion_tokens'), ',.0f')}",
                    calls(row.get("mean_calls")),
                    number(row.get("mean_seconds"), ".1f"),
                    flops(row.get("mean_flops"), row.get("mean_tokens")),
                    f"{escape(row.get('problems', MISSING))} × {escape(row.get('seeds', MISSING))}",
                ]
            )
            if baseline:
                rows[-1] += [_matched_html(row, ""), _matched_html(row, "_flops")]
    grid = table(headers, rows, left=1, table_class="summary")
    return f'<div class="wide">{grid}</div><p class="note">{INTERVAL_NOTE}</p>'


def _matched_html(row: dict[str, Any], suffix: str) -> str:
    """The baseline's accuracy at the row's cost and the paired difference with its interval."""
    accuracy = row.get(f"baseline_accuracy{suffix}")
    difference = row.get(f"baseline_difference{suffix}")
    if accuracy is None or difference is None:
        return MISSING
    spread = interval(*(row.get(f"baseline_difference_ci{suffix}") or (None, None)))
    return f'{accuracy:.3f}, {difference:+.3f} <span class="ci">{spread}</span>'


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
        controls + problems_html(records) if records else f'<p class="muted">no records in {RECORDS_FILE}</p>'
    )
    title = escape(run_title(run))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ponder eval · {title}</title>
<style>{STYLE}</style><script>{SCRIPT}</script></head>
<body>
<h1>ponder eval</h1><p class="muted">{title}</p>
<h2 id="run">run</h2>{_metadata_html(run, len(records), skipped)}
<h2 id="curves">scaling curves</h2>
<img class="curves" alt="accuracy and coverage against mean tokens per problem"
     src="data:image/png;base64,{image}">
<h2 id="summary">summary</h2>{_summary_html(summary)}
<h2 id="problems">problems</h2>{drill_down}
</body></html>
"""


def _write_report(directory: Path, summary: dict[str, Any], png: bytes) -> None:
    records, skipped = load_records(directory)
    html_text = _report_html(summary, records, skipped, png)
    (Path(directory) / REPORT_FILE).write_text(html_text, encoding="utf-8")


def write_report(directory: Path) -> None:
    """Write ``report.html`` into ``directory`` from its ``summary.json`` and ``records.jsonl``."""
    summary = load_summary(directory)
    _write_report(directory, summary, curves_png(summary))


def write_outputs(directory: Path) -> None:
    """``curves.png`` and ``report.html`` for an eval output directory (what ``ponder report DIR`` does)."""
    directory = Path(directory)
    summary = load_summary(directory)
    png = curves_png(summary)
    (directory / CURVES_FILE).write_bytes(png)
    _write_report(directory, summary, png)
