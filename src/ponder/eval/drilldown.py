"""The report's per-problem drill-down: why each answer won, problem by problem, in the dataset's order.

One collapsed ``<details>`` per problem (its question, reference and a ✓/✗ chip per record), and in it
one per record: the votes, every candidate with its answer, scores and text, a search tree or other
trace, and the compute spent by each line (generation, each scorer).
"""

from __future__ import annotations

import json
from typing import Any

from ponder.eval.figures import MISSING, calls, flops, number
from ponder.eval.order import problem_ranks
from ponder.eval.page import answer_excerpt, answer_html, escape, is_block, mark, table, verbatim


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
                answer_html(answer),
                mark(answer in correct_answers if candidates else None),
                f"{float(weight):g}",
                f"{float(weight) / total:.0%}",
            ]
        )
        classes.append("chosen" if answer == record.get("answer") else "")
    return "<h4>votes</h4>" + table(["answer", "correct", "votes", "share"], rows, 1, classes, "votes")


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
        named_scores = ", ".join(
            f"{name}={value:.3g}" for name, value in scores.items() if isinstance(value, int | float)
        )
        rows.append(
            [
                str(index),
                answer_html(candidate.get("answer"), collapsed=True),
                mark(candidate.get("correct")),
                number(score, ".3f") if isinstance(score, int | float) else MISSING,
                escape(named_scores) or MISSING,
                escape(tokens if tokens is not None else MISSING),
                escape(candidate.get("finish_reason") or MISSING),
                f"<details><summary>text ({len(text):,} chars)</summary>{verbatim(text, 'text')}</details>",
            ]
        )
        selected = record.get("answer") is not None and candidate.get("answer") == record.get("answer")
        classes.append("chosen" if selected else "")
    headers = ["#", "answer", "correct", "score", "scores", "tokens", "finish", "text"]
    return f"<h4>candidates ({len(candidates)})</h4>" + table(headers, rows, 2, classes, "candidates")


def _tokens(usage: dict[str, Any]) -> int | None:
    if usage.get("total_tokens") is not None:
        return int(usage["total_tokens"])
    if usage.get("prompt_tokens") is None:
        return None
    return int(usage["prompt_tokens"]) + int(usage.get("completion_tokens") or 0)


def record_label(record: dict[str, Any]) -> str:
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
            escape(name),
            calls(usage.get("calls")),
            number(usage.get("prompt_tokens"), ","),
            number(usage.get("completion_tokens"), ","),
            number(usage.get("seconds"), ".1f"),
            flops(usage.get("flops"), _tokens(usage)),
        ]
        for name, usage in lines.items()
    ]
    headers = ["line", "calls", "prompt tokens", "completion tokens", "seconds", "FLOPs"]
    return "<h4>compute by line</h4>" + table(headers, rows, 1)


def record_html(record: dict[str, Any]) -> str:
    """One record as a collapsed ``<details>``: outcome, answer and cost in its summary line."""
    correct = record.get("correct")
    usage = record.get("usage") or {}
    outcome = "right" if correct is True else "wrong" if correct is False else ""
    answer = record.get("answer")
    tokens = _tokens(usage)
    spent = calls(usage.get("calls"))
    facts = [f"{number(tokens, ',')} tokens", f"{spent} call{'' if spent == '1' else 's'}"]
    if "flops" in usage:
        facts.append(f"{flops(usage.get('flops'), tokens)} FLOPs")
    if record.get("wall_seconds") is not None:
        facts.append(f"{record['wall_seconds']:.1f} s wall")
    block = answer is not None and is_block(str(answer))
    shown = answer_excerpt(str(answer)) if block else answer_html(answer)
    summary = (
        f"{mark(correct)} <b>{escape(record_label(record))}</b> · answer {shown} "
        f'<span class="muted">· {" · ".join(facts)}</span>'
    )
    notes = "".join(
        f'<p class="muted">{escape(key)}: {escape(record[key])}</p>'
        for key in ("note", "error")
        if record.get(key)
    )
    chosen = f"<h4>answer</h4>{verbatim(answer)}" if block else ""
    return (
        f'<details class="record {outcome}"><summary>{summary}</summary>{notes}{chosen}'
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
        text = verbatim(node.get("text"), "step") if node.get("text") else ""
        css = ' class="chosen"' if node["id"] in chosen else ""
        return (
            f'<li{css}><span class="node"><span class="state {escape(state)}">{escape(state)}</span> '
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
    return f"<details><summary>trace</summary>{verbatim(json.dumps(trace, indent=1), 'text')}</details>"


def _chip(record: dict[str, Any]) -> str:
    """A small ✓/✗ square for one record, its strategy and seed in the tooltip."""
    right = record.get("correct") is True
    title = escape(record_label(record))
    return f'<span class="chip {"ok" if right else "bad"}" title="{title}">{"✓" if right else "✗"}</span>'


def _reference_html(reference: Any) -> str:
    if reference is None:
        return f"<p><b>reference:</b> {MISSING}</p>"
    if is_block(str(reference)):
        return f"<h4>reference</h4>{verbatim(reference)}"
    return f"<p><b>reference:</b> {answer_html(reference)}</p>"


def problems_html(records: list[dict[str, Any]]) -> str:
    """One collapsed ``<details>`` per problem, in the dataset's order; inside, one per record, by
    strategy (in order of first appearance), seed and budget."""
    problems: dict[str, list[dict[str, Any]]] = {}
    family_order: dict[str, int] = {}
    for record in records:
        problem = record.get("problem") or {}
        problems.setdefault(str(problem.get("id")), []).append(record)
        family_order.setdefault(str(record.get("family", record.get("strategy"))), len(family_order))
    ranks = problem_ranks(records)

    def order(record: dict[str, Any]) -> tuple[int, int, int]:
        family = family_order[str(record.get("family", record.get("strategy")))]
        seed, budget = record.get("seed"), record.get("budget")
        return family, seed if isinstance(seed, int) else 0, budget if isinstance(budget, int) else 0

    parts = []
    for problem_id in sorted(problems, key=lambda problem_id: ranks[problem_id]):
        group = sorted(problems[problem_id], key=order)
        problem = group[0].get("problem") or {}
        question = str(problem.get("question") or "")
        right = sum(1 for r in group if r.get("correct") is True)
        outcome = "right" if right == len(group) else "wrong" if right == 0 else "mixed"
        chips = "".join(_chip(r) for r in group)
        flat = " ".join(question.split())  # the one-line excerpt only; the question below is verbatim
        excerpt = flat if len(flat) <= 110 else flat[:107] + "…"
        parts.append(
            f'<details class="problem" data-outcome="{outcome}" data-problem="{escape(problem_id)}">'
            f'<summary><span class="id">{escape(problem_id)}</span> {chips} '
            f'<span class="muted">{right}/{len(group)} right · {escape(excerpt)}</span></summary>'
            f"<h4>question</h4>{verbatim(question, 'question')}"
            f"{_reference_html(problem.get('reference'))}"
            f"{''.join(record_html(r) for r in group)}</details>"
        )
    return "".join(parts)
