"""Eval outputs: curves.png, report.html, the terminal summary table and run comparison."""

from __future__ import annotations

import json
import math
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from ponder.core.errors import UsageError
from ponder.eval.compare import compare_runs, default_grid
from ponder.eval.drilldown import record_html
from ponder.eval.metrics import interpolate_log
from ponder.eval.report import (
    load_records,
    render_summary_table,
    write_curves,
    write_outputs,
    write_report,
)
from ponder.eval.summary import match_baseline

PNG_HEADER = b"\x89PNG\r\n\x1a\n"
SCARY_QUESTION = 'What is 2 < 3 and <script>alert("x")</script> & 5?'


def _usage(tokens: int) -> dict[str, Any]:
    return {
        "calls": 1,
        "prompt_tokens": 50,
        "cached_prompt_tokens": 0,
        "completion_tokens": tokens,
        "seconds": 0.5,
        "flops": 1.0e11,
        "total_tokens": 50 + tokens,
    }


def _record(strategy: str, family: str, problem: int, answers: list[str], reference: str) -> dict[str, Any]:
    candidates = [
        {
            "text": f"Let me think step by step about problem {problem}.\nThe answer is {answer}.",
            "answer": answer,
            "score": 0.9 if answer == reference else 0.2,
            "scores": {"judge": 0.9 if answer == reference else 0.2},
            "correct": answer == reference,
            "finish_reason": "stop",
            "completion_tokens": 100 + i,
            "usage": _usage(100 + i),
        }
        for i, answer in enumerate(answers)
    ]
    votes: dict[str, float] = {}
    for answer in answers:
        votes[answer] = votes.get(answer, 0.0) + 1.0
    selected = max(votes, key=lambda a: votes[a])
    question = SCARY_QUESTION if problem == 0 else f"How many apples in basket {problem}?"
    return {
        "strategy": strategy,
        "family": family,
        "seed": 0,
        "problem": {"id": f"gsm_symbolic-0-{problem}", "question": question, "reference": reference},
        "answer": selected,
        "correct": selected == reference,
        "candidates": candidates,
        "votes": votes if family == "self-consistency" else {},
        "usage": _usage(sum(100 + i for i in range(len(answers)))),
        "usage_by_line": {"generate": _usage(100), "scorer:judge": _usage(7)}
        if family == "best-of-n"
        else {},
        "budget": 16 if family == "best-of-n" else None,
        "wall_seconds": 1.5,
    }


def _row(strategy: str, budget: int | None, accuracy: float, tokens: float, coverage: float | None) -> dict:
    return {
        "strategy": strategy,
        "budget": budget,
        "accuracy": accuracy,
        "ci_low": max(accuracy - 0.1, 0.0),
        "ci_high": min(accuracy + 0.1, 1.0),
        "coverage": coverage,
        "coverage_ci_low": None if coverage is None else coverage - 0.1,
        "coverage_ci_high": None if coverage is None else min(coverage + 0.1, 1.0),
        "no_answer_rate": 0.02,
        "mean_tokens": tokens,
        "mean_prompt_tokens": 50.0,
        "mean_completion_tokens": tokens - 50.0,
        "mean_cached_prompt_tokens": 0.0,
        "mean_calls": (budget or 1) * 1.0,
        "mean_seconds": 0.25 * (budget or 1),
        "mean_flops": 2.4e11 * (budget or 1),
        "problems": 3,
        "seeds": 1,
    }


def _summary(dataset: str = "reasoning-gym:gsm_symbolic", model: str = "qwen2.5-coder-1.5b") -> dict:
    return {
        "run": {
            "dataset": dataset,
            "model": model,
            "strategies": ["greedy", "self-consistency", "best-of-n:scorer=judge"],
            "budgets": [1, 4, 16],
            "seeds": 1,
            "problems": 3,
            "command": "ponder eval --dataset reasoning-gym:gsm_symbolic --budgets 1,4,16 --out 'runs/a&b'",
            "started": "2025-01-01T10:00:00",
            "finished": "2025-01-01T10:30:00",
        },
        "rows": [
            _row("greedy", None, 0.333, 150.0, None),
            _row("self-consistency", 1, 0.4, 150.0, 0.4),
            _row("self-consistency", 4, 0.55, 600.0, 0.7),
            _row("self-consistency", 16, 0.6667, 2400.0, 0.9),
            _row("best-of-n", 1, 0.4, 160.0, 0.4),
            _row("best-of-n", 4, 0.5, 640.0, 0.65),
            _row("best-of-n", 16, 0.5833, 2560.0, 0.85),
        ],
    }


@pytest.fixture
def run_directory(tmp_path: Path) -> Path:
    directory = tmp_path / "run-a"
    directory.mkdir()
    records = []
    for problem in range(3):
        reference = str(10 + problem)
        records.append(_record("greedy", "greedy", problem, [reference if problem else "7"], reference))
        answers = [reference, reference, "99", reference] if problem != 2 else ["99", "99", reference, "98"]
        records.append(_record("self-consistency:n=16", "self-consistency", problem, answers, reference))
        records.append(_record("best-of-n:scorer=judge,n=16", "best-of-n", problem, answers, reference))
    lines = [json.dumps(record) for record in records]
    lines.append('{"strategy": "greedy", "problem": {"id": "trunc')  # a crash mid-write
    (directory / "records.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (directory / "summary.json").write_text(json.dumps(_summary()), encoding="utf-8")
    return directory


def test_load_records_skips_malformed_lines(run_directory: Path) -> None:
    records, skipped = load_records(run_directory)
    assert len(records) == 9
    assert skipped == 1


def test_write_curves_makes_a_png(run_directory: Path, tmp_path: Path) -> None:
    path = tmp_path / "curves.png"
    write_curves(json.loads((run_directory / "summary.json").read_text()), path)
    data = path.read_bytes()
    assert data.startswith(PNG_HEADER)
    assert len(data) > 20_000


def test_curves_add_an_accuracy_vs_flops_panel_only_where_flops_were_measured(tmp_path: Path) -> None:
    def width(summary: dict) -> int:
        write_curves(summary, tmp_path / "curves.png")
        return int.from_bytes((tmp_path / "curves.png").read_bytes()[16:20], "big")  # PNG IHDR width

    summary = _summary()
    with_flops = width(summary)
    for row in summary["rows"]:
        row["mean_flops"] = 0.0  # a backend that does not know its model's size
    assert with_flops == pytest.approx(width(summary) * 3 / 2, abs=2)  # three panels instead of two


def test_write_curves_survives_a_summary_without_coverage(tmp_path: Path) -> None:
    summary = {
        "run": {"dataset": "d", "model": "m", "problems": 1},
        "rows": [_row("greedy", None, 1.0, 90, None)],
    }
    write_curves(summary, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes().startswith(PNG_HEADER)


def test_write_outputs_writes_curves_and_a_self_contained_report(run_directory: Path) -> None:
    write_outputs(run_directory)
    assert (run_directory / "curves.png").read_bytes().startswith(PNG_HEADER)
    page = (run_directory / "report.html").read_text(encoding="utf-8")

    assert "data:image/png;base64,iVBORw0KGgo" in page  # base64 of the PNG header
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; 5?" in page
    assert "2 &lt; 3" in page
    for problem in range(3):
        assert f"gsm_symbolic-0-{problem}" in page
    # summary table values
    assert '0.667 <span class="ci">[0.567, 0.767]</span>' in page
    assert "0.583" in page and "2,560" in page and "2.4e+11" in page and "3.84e+12" in page
    # run metadata and the exact command, escaped
    assert "qwen2.5-coder-1.5b" in page and "reasoning-gym:gsm_symbolic" in page
    assert "--out &#x27;runs/a&amp;b&#x27;" in page
    assert "1 malformed line" in page
    # drill-down: votes, scores and candidate texts
    assert "self-consistency:n=16" in page and "best-of-n:scorer=judge,n=16" in page
    assert "judge=0.9" in page
    assert "best-of-n:scorer=judge,n=16 · budget 16 · seed 0" in page
    assert "compute by line" in page and "scorer:judge" in page
    assert "Let me think step by step about problem 2." in page
    # nothing fetched from elsewhere
    assert "http://" not in page and "https://" not in page and 'src="http' not in page


def test_the_report_shows_the_paired_difference_from_self_consistency(run_directory: Path) -> None:
    summary = _summary()
    summary["rows"][0].update(  # greedy beside self-consistency
        baseline="self-consistency",
        baseline_accuracy=0.274,
        baseline_difference=-0.024,
        baseline_difference_ci=[-0.078, 0.005],
        baseline_accuracy_flops=None,
        baseline_difference_flops=None,
    )
    (run_directory / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    write_report(run_directory)
    page = (run_directory / "report.html").read_text(encoding="utf-8")
    assert "self-consistency at same FLOPs: accuracy, difference" in page
    assert '<td>0.274, -0.024 <span class="ci">[-0.078, 0.005]</span></td><td>—</td>' in page


def test_write_report_alone_embeds_the_curves(run_directory: Path) -> None:
    write_report(run_directory)
    assert "data:image/png;base64," in (run_directory / "report.html").read_text(encoding="utf-8")


def test_report_of_a_directory_without_summary_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="summary.json"):
        write_outputs(tmp_path)


def test_render_summary_table(run_directory: Path) -> None:
    console = Console(record=True, width=160)
    render_summary_table(json.loads((run_directory / "summary.json").read_text()), console)
    text = console.export_text()
    for strategy in ("greedy", "self-consistency", "best-of-n"):
        assert strategy in text
    assert "0.667 [0.567, 0.767]" in text
    assert "2,400" in text
    assert "qwen2.5-coder-1.5b" in text


def test_interpolate_log_is_linear_in_log_tokens() -> None:
    points = [(100.0, 0.4), (400.0, 0.6)]
    assert interpolate_log(points, 200.0) == pytest.approx(0.5)
    assert interpolate_log(points, 100.0) == pytest.approx(0.4)
    assert interpolate_log(points, 400.0) == pytest.approx(0.6)
    assert interpolate_log(points, 99.0) is None
    assert interpolate_log(points, 401.0) is None
    assert interpolate_log([(150.0, 0.3)], 150.0) == pytest.approx(0.3)
    assert interpolate_log([(150.0, 0.3)], 151.0) is None
    assert interpolate_log([], 10.0) is None


def test_default_grid_is_powers_of_two_plus_single_points() -> None:
    grid = default_grid([[(150.0, 0.3)], [(150.0, 0.4), (2400.0, 0.6)]])
    assert grid == [150.0, 256.0, 512.0, 1024.0, 2048.0]


def _write_run(directory: Path, summary: dict) -> Path:
    directory.mkdir(parents=True)
    (directory / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return directory


def test_compare_runs_lines_up_at_matched_tokens(tmp_path: Path) -> None:
    first = _write_run(
        tmp_path / "small",
        {
            "run": {"dataset": "gsm", "model": "small", "problems": 10},
            "rows": [
                _row("self-consistency", 1, 0.4, 100.0, 0.4),
                _row("self-consistency", 4, 0.6, 400.0, 0.8),
            ],
        },
    )
    second = _write_run(
        tmp_path / "large",
        {
            "run": {"dataset": "gsm", "model": "large", "problems": 10},
            "rows": [_row("greedy", None, 0.7, 200.0, None), _row("best-of-n", 1, 0.5, 150.0, 0.5)]
            + [_row("best-of-n", 8, 0.8, 1600.0, 0.9)],
        },
    )
    console = Console(record=True, width=160)
    result = compare_runs(first, second, console, grid=[50.0, 200.0, 800.0])
    assert result["warnings"] == []
    assert result["columns"] == ["small · self-consistency", "large · greedy", "large · best-of-n"]
    by_tokens = {row["tokens"]: row["accuracy"] for row in result["rows"]}
    assert by_tokens[200.0]["small · self-consistency"] == pytest.approx(0.5)
    assert by_tokens[200.0]["large · greedy"] == pytest.approx(0.7)
    expected = 0.5 + 0.3 * math.log(200 / 150) / math.log(1600 / 150)
    assert by_tokens[200.0]["large · best-of-n"] == pytest.approx(expected)
    assert by_tokens[800.0]["small · self-consistency"] is None
    assert by_tokens[800.0]["large · greedy"] is None
    assert all(value is None for value in by_tokens[50.0].values())

    text = console.export_text()
    assert "small" in text and "large" in text and "gsm" in text
    assert "0.500" in text and "—" in text


def test_compare_runs_warns_when_datasets_differ(tmp_path: Path) -> None:
    first = _write_run(tmp_path / "a", _summary(dataset="gsm"))
    second = _write_run(tmp_path / "b", _summary(dataset="math500"))
    console = Console(record=True, width=200)
    result = compare_runs(first, second, console)
    assert len(result["warnings"]) == 1 and "different datasets" in result["warnings"][0]
    assert "warning" in console.export_text()
    assert result["rows"], "still compared"
    assert [row["tokens"] for row in result["rows"]] == [150.0, 256.0, 512.0, 1024.0, 2048.0]


def test_a_search_tree_trace_is_drawn_with_the_winning_path_marked() -> None:
    def node(id: int, parent: int | None, text: str, score: float | None, state: str) -> dict[str, Any]:
        depth = 0 if parent is None else 1 + (parent > 0)
        return {
            "id": id,
            "parent": parent,
            "depth": depth,
            "text": text,
            "score": score,
            "state": state,
            "tokens": 4 * depth,
        }

    nodes = [
        node(0, None, "", None, "kept"),
        node(1, 0, "Step A.\n\n", 0.9, "kept"),
        node(2, 0, "Step <B>.\n\n", 0.1, "pruned"),
        node(3, 1, "So \\boxed{7}", 0.8, "finished"),
    ]
    record = {"text": "Step A.\n\nSo \\boxed{7}", "trace": {"kind": "search-tree", "nodes": nodes}}
    page = record_html(record)
    assert "search tree: 4 nodes, 1 finished, 1 pruned" in page
    assert page.count('<li class="chosen">') == 3  # the root, step A and the finished leaf
    assert "Step &lt;B&gt;." in page and "score 0.100" in page  # the pruned branch is shown, escaped
    debate = record_html({"trace": {"rounds": [["4", "5"], ["5", "5"]]}})
    assert "<summary>trace</summary>" in debate and "&quot;rounds&quot;" in debate
    assert "trace" not in record_html({"text": "x"})


def _costed_row(strategy: str, per_problem: dict[str, tuple[float, float, float]]) -> dict:
    """A summary row from (accuracy, tokens, FLOPs) per problem, as ``summarize`` writes it."""
    values = {p: dict(zip(("accuracy", "tokens", "flops"), v, strict=True)) for p, v in per_problem.items()}
    return {
        "strategy": strategy,
        "per_problem": values,
        **{
            key: sum(v[i] for v in per_problem.values()) / len(per_problem)
            for i, key in enumerate(("accuracy", "mean_tokens", "mean_flops"))
        },
    }


def test_a_prompt_cached_search_is_matched_at_its_flops_where_its_tokens_fall_outside() -> None:
    bank = [  # self-consistency at k = 1, 2, 4: 100 tokens and 2e9 FLOPs a sample
        _costed_row("self-consistency", {"a": (0.3 + 0.1 * k.bit_length(), 100.0 * k, 2e9 * k)})
        for k in (1, 2, 4)
    ]
    search = _costed_row("beam-search:n=4", {"a": (1.0, 800.0, 4e9)})  # twice the tokens, half the FLOPs
    match_baseline([*bank, search])
    assert search["baseline"] == "self-consistency"
    assert search["baseline_accuracy"] is None  # beyond 400 tokens: no measured point to compare with
    assert search["baseline_accuracy_flops"] == pytest.approx(0.5)  # k=2's accuracy, at 4e9 FLOPs
    assert all("baseline" not in r for r in bank)


def test_the_baseline_is_read_on_the_rows_own_problems() -> None:
    bank = [
        _costed_row("self-consistency", {"a": (1.0, 100.0, 1.0), "b": (0.0, 300.0, 1.0)}),
        _costed_row("self-consistency", {"a": (1.0, 400.0, 4.0), "b": (1.0, 1200.0, 4.0)}),
    ]
    only_a = _costed_row("debate", {"a": (0.0, 200.0, 2.0)})
    also_c = _costed_row("moa", {"a": (0.0, 200.0, 2.0), "c": (1.0, 200.0, 2.0)})
    match_baseline([*bank, only_a, also_c])
    assert only_a["baseline_accuracy"] == pytest.approx(1.0)  # on problem a alone; on a and b, 0.5
    assert also_c["baseline_accuracy"] is None  # the baseline never saw problem c


def test_the_difference_from_the_baseline_is_paired_per_problem_with_an_interval() -> None:
    bank = [  # k=1 at 100 tokens, k=4 at 400: halfway in log(tokens) is 200
        _costed_row("self-consistency", {"a": (0.0, 100.0, 1.0), "b": (1.0, 100.0, 1.0)}),
        _costed_row("self-consistency", {"a": (1.0, 400.0, 4.0), "b": (1.0, 400.0, 4.0)}),
    ]
    search = _costed_row("dvts", {"a": (1.0, 200.0, 2.0), "b": (0.0, 200.0, 2.0)})
    match_baseline([*bank, search])
    # problem a: 1 - 0.5 (halfway from 0 to 1); problem b: 0 - 1
    assert search["baseline_accuracy"] == pytest.approx(0.75)
    assert search["baseline_difference"] == pytest.approx(-0.25)
    low, high = search["baseline_difference_ci"]
    assert low == pytest.approx(-1.0) and high == pytest.approx(0.5)  # resampling the two differences
    assert search["baseline_difference_flops"] == pytest.approx(-0.25)  # the FLOPs sit alike here


# ---------------------------------------------------------------- structure of a rendered report

CODE_ANSWER = "def add_one(x):\n    if x is None:\n        return None\n\treturn x + 1\n"
CODE_REFERENCE = "    return x + 1\n"


class ReportStructure(HTMLParser):
    """What the structure test reads off a report page: its sections, the problems in page order, every
    verbatim block (class, text) and the summary table's cells as text."""

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.sections: list[str | None] = []
        self.problems: list[str | None] = []
        self.blocks: list[tuple[str | None, str]] = []
        self.summary: list[list[str]] = []
        self.images: list[str] = []
        self._block: list[Any] | None = None
        self._in_summary = False
        self._cell: str | None = None
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag == "h2":
            self.sections.append(attributes.get("id"))
        elif tag == "details" and "problem" in classes:
            self.problems.append(attributes.get("data-problem"))
        elif tag == "pre":
            self._block = [attributes.get("class"), ""]
        elif tag == "img":
            self.images.append(attributes.get("src") or "")
        elif tag == "table":
            self._in_summary = "summary" in classes
        elif tag == "tr" and self._in_summary:
            self.summary.append([])
        elif tag in ("td", "th") and self._in_summary:
            self._cell = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre" and self._block is not None:
            self.blocks.append((self._block[0], self._block[1]))
            self._block = None
        elif tag == "table":
            self._in_summary = False
        elif tag in ("td", "th") and self._cell is not None:
            self.summary[-1].append(" ".join(self._cell.split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._block is not None:
            self._block[1] += data
        if self._cell is not None:
            self._cell += data


def _synthetic_record(
    strategy: str, problem: tuple[str, int | None], answers: list[str], reference: str, calls: int = 1
) -> dict[str, Any]:
    """A record as the runner writes it, on a backend that does not know its model's size (0 FLOPs); every
    answer graded right (code passes its tests without equalling the reference)."""
    usage = {"calls": calls, "prompt_tokens": 40, "completion_tokens": 20, "seconds": 0.1, "flops": 0.0}
    identifier, index = problem
    return {
        "strategy": strategy,
        "family": strategy.partition(":")[0],
        "seed": 0,
        "budget": None,
        "problem": {
            "id": identifier,
            "question": f"Complete the function for {identifier}.",
            "reference": reference,
            **({"index": index} if index is not None else {}),
        },
        "answer": answers[0],
        "correct": True,
        "text": answers[0],
        "candidates": [
            {"text": a, "answer": a, "correct": True, "finish_reason": "stop", "usage": usage}
            for a in answers
        ],
        "votes": {},
        "usage": {**usage, "calls": calls * len(answers)},
        "usage_by_line": {},
        "wall_seconds": 0.2,
    }


def test_a_rendered_report_has_its_sections_problems_in_dataset_order_verbatim_code_and_honest_figures(
    tmp_path: Path,
) -> None:
    from ponder.eval.metrics import wilson_interval
    from ponder.eval.runner import write_summary

    run = tmp_path / "run"
    run.mkdir()
    dataset = [("task/b", 0), ("task/a", 1), ("task/c", 2)]  # the dataset's order is not the ids' order
    references = {"task/b": CODE_REFERENCE, "task/a": "7", "task/c": "9"}
    answers = {"task/b": CODE_ANSWER, "task/a": "7", "task/c": "9"}
    records = []
    for problem in (dataset[2], dataset[0], dataset[1]):  # completion order
        identifier = problem[0]
        calls = 2 if identifier == "task/c" else 1  # 4/3 calls per problem on average
        records.append(
            _synthetic_record("greedy", problem, [answers[identifier]], references[identifier], calls)
        )
    (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (run / "run.json").write_text(json.dumps({"dataset": "synthetic", "budgets": [1], "model": "m"}))
    summary = write_summary(run)
    write_outputs(run)

    (greedy,) = summary["rows"]
    assert greedy["mean_flops"] is None  # unknown in JSON is null, never 0
    assert list(greedy["per_problem"]) == ["task/b", "task/a", "task/c"]
    assert (greedy["ci_low"], greedy["ci_high"]) == wilson_interval(3, 3)  # every outcome 1: not [1, 1]
    stored = json.loads((run / "summary.json").read_text())
    assert stored["rows"][0]["mean_flops"] is None

    page = ReportStructure((run / "report.html").read_text(encoding="utf-8"))
    assert page.sections == ["run", "curves", "summary", "problems"]
    assert page.images and page.images[0].startswith("data:image/png;base64,")
    assert page.problems == ["task/b", "task/a", "task/c"]
    assert ("code", CODE_ANSWER) in page.blocks  # the answer, its indentation and tab kept
    assert ("code", CODE_REFERENCE) in page.blocks  # a reference that starts indented stays indented
    header, row = page.summary[0], page.summary[1]
    cells = dict(zip(header, row, strict=True))
    low, high = wilson_interval(3, 3)
    assert cells["accuracy [95% CI]"] == f"1.000 [{low:.3f}, {high:.3f}]" == "1.000 [0.439, 1.000]"
    assert cells["FLOPs"] == "unknown"
    assert cells["calls"] == "1.3"
    assert "truncated" not in cells  # no sample was cut off


def test_the_report_lists_a_real_runs_problems_in_dataset_order_when_they_finish_out_of_order(
    tmp_path: Path,
) -> None:
    import asyncio

    from ponder.backends import GenRequest, Reply, ScriptedBackend
    from ponder.eval.runner import EvalConfig, run_eval
    from ponder.eval.store import RecordStore

    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"question": f"problem {i}", "answer": i}) + "\n" for i in (1, 2, 3)))

    def script(request: GenRequest, index: int) -> Reply:
        number = request.messages[-1].content.split()[-1]
        return Reply(
            f"so \\boxed{{{number}}}", delay=0.3 if number == "1" else 0.0
        )  # the first finishes last

    config = EvalConfig(f"jsonl:{data}", ["greedy"], [1], model="scripted", concurrency=4)
    run = tmp_path / "run"
    asyncio.run(run_eval(config, ScriptedBackend(script=script), run, show_progress=False))
    stored = RecordStore(run).load()
    in_file = [r["problem"]["id"] for r in stored]
    by_index = sorted(stored, key=lambda r: r["problem"]["index"])
    assert [r["problem"]["index"] for r in by_index] == [0, 1, 2]
    assert in_file != [r["problem"]["id"] for r in by_index]  # completion order differs...
    write_outputs(run)
    page = ReportStructure((run / "report.html").read_text(encoding="utf-8"))
    assert page.problems == [str(r["problem"]["id"]) for r in by_index]  # ...the report does not


# ---------------------------------------------------------------- plots


def _crowded_summary() -> dict:
    """Seven strategies bunched at similar costs and accuracies: labels and legends would collide."""
    rows = []
    for offset, name in enumerate(
        [
            "self-consistency",
            "best-of-n",
            "self-consistency on best-of-n",
            "beam-search",
            "dvts",
            "mcts",
            "x-plugin",
        ]
    ):
        for budget in (1, 2, 4, 8):
            rows.append(
                _row(
                    name,
                    budget,
                    0.5 + 0.02 * offset + 0.01 * budget,
                    100.0 * budget * (1 + 0.05 * offset),
                    0.6,
                )
            )
    return {"run": {"dataset": "d", "model": "m", "problems": 3}, "rows": rows}


def _line_colors(figure: Any) -> dict[str, set[str]]:
    from matplotlib.colors import to_hex

    colors: dict[str, set[str]] = {}
    for axes in figure.axes:
        for line in axes.get_lines():
            if not line.get_label().startswith("_"):
                colors.setdefault(line.get_label(), set()).add(to_hex(line.get_color()))
    return colors


def test_a_strategy_keeps_its_colour_in_every_panel_and_every_run() -> None:
    from ponder.eval.plots import COLORS, curve_style, curves_figure

    first = _line_colors(curves_figure(_summary()))
    other = _summary()
    other["rows"] = [r for r in other["rows"] if r["strategy"] != "self-consistency"]  # fewer curves
    second = _line_colors(curves_figure(other))
    assert first["best-of-n"] == second["best-of-n"] == {COLORS["best-of-n"]}  # one colour, all panels
    assert first["self-consistency"] == {COLORS["self-consistency"]}
    ruled = curve_style("self-consistency on best-of-n:max_tokens=512")
    assert ruled.color == COLORS["self-consistency"] and ruled.linestyle == "--"
    assert curve_style("self-consistency:max_tokens=512").linestyle == "-"


def test_a_strategy_outside_the_table_gets_the_same_colour_in_every_process() -> None:
    import subprocess
    import sys

    code = "from ponder.eval.plots import curve_style; print(curve_style('my-plugin:depth=3'))"
    seen = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**__import__("os").environ, "PYTHONHASHSEED": seed},
            timeout=60,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(seen) == 1


def test_the_legend_sits_outside_the_data_and_budget_labels_never_collide() -> None:
    from ponder.eval.plots import curves_figure

    figure = curves_figure(_crowded_summary())
    renderer = figure.canvas.get_renderer()
    (legend,) = figure.legends
    legend_box = legend.get_window_extent(renderer)
    assert not any(legend_box.overlaps(axes.get_window_extent(renderer)) for axes in figure.axes)
    assert len(legend.get_texts()) == 7
    placed = 0
    for axes in figure.axes:
        boxes = [text.get_window_extent(renderer) for text in axes.texts]
        placed += len(boxes)
        inside = axes.get_window_extent(renderer)
        for i, box in enumerate(boxes):
            assert inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1)
            assert not any(box.overlaps(other) for other in boxes[i + 1 :])
            for line in axes.get_lines():  # nor over a drawn point
                for x, y in axes.transData.transform(line.get_xydata()):
                    assert not box.contains(x, y)
    assert placed >= 20  # most of the 28 points per panel keep their label


def test_the_terminal_summary_fits_120_columns_and_explains_its_short_headers() -> None:
    import io

    from rich.console import Console

    from ponder.eval.report import render_summary_table

    rows = [
        {
            "strategy": "self-consistency:max_tokens=512,temperature=0.3",
            "budget": k,
            "problems": 20,
            "accuracy": 0.5,
            "ci_low": 0.299,
            "ci_high": 0.701,
            "coverage": 0.6,
            "no_answer_rate": 0.006,
            "truncated_rate": 0.006,
            "mean_tokens": 873.2,
            "mean_calls": k,
            "mean_seconds": 205.6,
            "baseline_accuracy": 0.5,
            "baseline_accuracy_flops": 0.5,
        }
        for k in (1, 2, 4, 8)
    ]
    summary = {"run": {"dataset": "reasoning-gym:chain_sum", "model": "m"}, "rows": rows}
    out = io.StringIO()
    render_summary_table(summary, Console(file=out, width=120, force_terminal=False))
    lines = out.getvalue().splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 120
    assert any("0.500 [0.299, 0.701]" in line for line in lines)  # the interval is never wrapped
    assert "no ans. share without an answer" in out.getvalue().replace("\n", " ")
