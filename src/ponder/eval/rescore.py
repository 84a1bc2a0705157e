"""``ponder rescore``: score a finished run's stored samples with another scorer, generating nothing.

A verifier comparison should hold the samples fixed: the same candidates, judged by a different scorer.
Every sample-banked record's candidates are scored again (the scorer's own model calls are made and
billed; no solution is regenerated) and the scores are appended to ``rescores.jsonl`` with the same
crash-safety as the records, so an interrupted rescore resumes where it stopped. The summary then adds
the rule ``best-of-n:scorer=[SPEC]`` over every sample-banked family, billed the new scorer's cost in
place of the old one's (``apply_rescores``).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from ponder.backends.base import Backend
from ponder.backends.pool import Backends
from ponder.context import Context
from ponder.core.errors import UsageError
from ponder.core.types import Candidate, Problem, Usage
from ponder.eval.metrics import stable_seed
from ponder.eval.store import RecordStore, record_key
from ponder.progress import TaskProgress
from ponder.scorers import SCORERS, Scorer
from ponder.strategies import STRATEGIES
from ponder.tasks.datasets import load_dataset

RESCORES = "rescores.jsonl"

#: (scorer spec, record key) -> per-candidate (score, scoring usage)
Rescores = dict[tuple[str, tuple[str, int, str, int | None]], list[tuple[float, Usage]]]


def rescore_rule(scorer_spec: str) -> str:
    """The selection rule that reads a rescored scorer: best-of-n's argmax over its scores."""
    return f"best-of-n:scorer=[{scorer_spec}]"


def load_rescores(directory: Path) -> Rescores:
    rescores: Rescores = {}
    for line in RecordStore(directory, RESCORES).load():
        values = [(float(c["score"]), Usage.from_dict(c["usage"])) for c in line["candidates"]]
        rescores[(line["scorer"], record_key(line))] = values
    return rescores


def apply_rescores(
    candidates: list[Candidate], rescored: list[tuple[float, Usage]], scorer: Scorer
) -> list[Candidate]:
    """Copies of ``candidates`` carrying the new scorer's scores and billed its cost instead of the old."""
    return [
        replace(candidate, score=score, scores={**candidate.scores, scorer.name: score}, scoring_usage=usage)
        for candidate, (score, usage) in zip(candidates, rescored, strict=True)
    ]


def rescorable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records that hold a sample bank rules re-select from (as ``summarize`` applies them); each
    spec is built once, however many records it has."""
    sampled = [record for record in records if record.get("budget") is None and record["candidates"]]
    banks: dict[str, bool] = {}
    for spec in {record["strategy"] for record in sampled}:
        strategy = STRATEGIES.build(spec)
        banks[spec] = strategy.sample_bank and strategy.budget_option is not None
    return [record for record in sampled if banks[record["strategy"]]]


async def rescore_run(
    directory: Path,
    scorer_spec: str,
    backend: Backend,
    console: Console | None = None,
    concurrency: int = 4,
    show_progress: bool = True,
) -> str:
    """Score every stored sample-banked record with ``scorer_spec``; return the rule that reads it."""
    console = console or Console(stderr=True)
    scorer = SCORERS.build(scorer_spec)
    if scorer.needs_logprobs is not None:
        raise UsageError(
            f"scorer {scorer_spec!r} reads token logprobs, which eval records do not keep; "
            "run it as the strategy's scorer instead (ponder eval --strategy best-of-n:scorer=...)"
        )
    manifest_path = directory / "run.json"
    if not manifest_path.exists():
        raise UsageError(f"{directory} is not an eval run (no run.json)")
    manifest = json.loads(manifest_path.read_text())
    dataset = load_dataset(manifest["dataset"])
    problems = {str(p.id): p for p in dataset.problems()}
    records = rescorable(RecordStore(directory).load())
    store = RecordStore(directory, RESCORES)
    done = {key for (spec, key) in load_rescores(directory) if spec == scorer_spec}
    todo = [r for r in records if record_key(r) not in done]
    done_count = len(records) - len(todo)
    console.print(f"rescoring with {scorer_spec}: {done_count} done, {len(todo)} to do", markup=False)
    await backend.start()
    limit = asyncio.Semaphore(max(concurrency, 1))
    backends = Backends()  # the models the scorer names (a judge's), for the whole rescoring

    async def work(record: dict[str, Any]) -> None:
        stored = record["problem"]
        problem = problems.get(str(stored["id"])) or Problem(
            question=stored["question"], id=stored["id"], reference=stored.get("reference")
        )
        candidates = [Candidate.from_dict(c) for c in record["candidates"]]
        for candidate in candidates:
            candidate.scoring_usage = Usage()  # bill only what this scorer costs
        async with limit:
            seed = stable_seed(record["seed"], stored["id"]) % 2**31
            ctx = Context.for_dataset(dataset, backend, seed, backends=backends)
            scores = await scorer.score(problem, candidates, ctx)
        store.append(
            {
                "scorer": scorer_spec,
                "strategy": record["strategy"],
                "seed": record["seed"],
                "budget": record.get("budget"),
                "problem": {"id": stored["id"]},
                "candidates": [
                    {"score": score, "usage": c.scoring_usage.to_dict()}
                    for score, c in zip(scores, candidates, strict=True)
                ],
            }
        )
        progress.update(advance=1)

    # a live bar on a terminal, a plain line every PONDER_PROGRESS_INTERVAL seconds in a log
    progress = TaskProgress(console, "rescore", len(todo), unit="records", quiet=not show_progress)
    with progress:
        tasks = [asyncio.create_task(work(record)) for record in todo]
        try:
            await asyncio.gather(*tasks)
        finally:
            for pending in tasks:
                pending.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await backends.close()
    progress.done(f"rescored {len(todo)} records")
    rule = rescore_rule(scorer_spec)
    rules = list(manifest.get("rules") or [])
    if rule not in rules:
        manifest_path.write_text(json.dumps({**manifest, "rules": [*rules, rule]}, indent=2))
    return rule
