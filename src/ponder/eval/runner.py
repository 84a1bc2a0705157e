"""``ponder eval``: run strategies over a dataset, store every candidate, summarise into curves.

Work is the cross product of strategies × seeds × problems (× budgets for strategies that cannot be
sample-banked). Sampling strategies run once at the largest budget; smaller budgets are derived from
their stored samples (``ponder.eval.summary``). Units start in plan order whenever the backend has a
slot to spare (``ponder.eval.schedule``); each finished unit is appended to the store at once, so
``--resume`` after a crash repeats nothing and loses nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from ponder.backends.base import Backend
from ponder.backends.pool import Backends
from ponder.context import Context
from ponder.core.errors import UsageError
from ponder.core.ledger import Budget, Ledger
from ponder.core.registry import Spec, parse_spec
from ponder.core.types import Problem, Result
from ponder.eval.identity import StrategyId
from ponder.eval.metrics import stable_seed
from ponder.eval.rescore import load_rescores
from ponder.eval.schedule import Admission, CountedBackend, run_in_order
from ponder.eval.store import RecordStore, record_key
from ponder.eval.summary import match_baseline, summarize
from ponder.progress import TaskProgress
from ponder.strategies import STRATEGIES, Strategy
from ponder.tasks.datasets import Dataset, load_dataset

MANIFEST = "run.json"
SUMMARY = "summary.json"


@dataclass
class EvalConfig:
    dataset: str
    strategies: list[str]
    budgets: list[int]
    seeds: int = 1
    limit: int | None = None
    model: str = ""
    #: most samples asked of the backend at once (None: its in-flight limit, fixed or adapting); a unit
    #: starts when fewer are out, so the next problems' samples fill the slots stragglers leave idle
    concurrency: int | None = None
    command: str = ""
    #: selection rules re-applied offline to the stored samples (``ponder.eval.summary.summarize``)
    rules: list[str] = field(default_factory=list)
    #: compute cap on every problem (``tokens=4000,calls=16``), for strategies with no budget option
    budget: str | None = None
    #: earlier runs whose finished units (same dataset, model, cap and spec) are copied, not re-run
    reuse: list[str] = field(default_factory=list)
    #: fields that must match when resuming (the rest may change between attempts; ``strategies`` is
    #: checked apart, since a resume may add strategies but not drop them)
    identity: tuple[str, ...] = field(default=("dataset", "budgets", "seeds", "limit", "model", "budget"))

    def manifest(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("identity")
        return data


@dataclass(frozen=True)
class Unit:
    """One piece of work: a strategy (at a budget, or at the largest for sample-banked ones) on a problem."""

    identity: StrategyId
    strategy: Strategy
    seed: int
    problem: Problem
    #: the problem's position in the dataset, stored with the record so reports keep the dataset's order
    index: int = 0

    @property
    def budget(self) -> int | None:
        """The budget this unit's record stands for alone; None for a sample bank, which stands for every
        budget up to its size, and where no budget applies."""
        return None if self.strategy.sample_bank else self.identity.budget

    @property
    def samples(self) -> int:
        """How many samples this unit draws at once (its budget option, else one)."""
        return self.identity.budget or 1

    @property
    def key(self) -> tuple[str, int, str, int | None]:
        return (self.strategy.spec, self.seed, str(self.problem.id), self.budget)


def plan(config: EvalConfig, problems: list[Problem]) -> list[Unit]:
    """The units of work: sample-banked strategies once at the largest budget, others once per budget.

    A spec that sets its own budget option caps what it spends: a sample-banked one draws that many
    (``best-of-n:n=4``: budgets up to 4), any other runs at that budget alone (``beam-search:n=4``), so
    a costly strategy can sit at one point beside a full sample-banked curve.
    """
    units = []
    for text in config.strategies:
        for strategy in _strategies_for(parse_spec(text), config.budgets):
            identity = StrategyId.of(strategy)
            for seed in range(config.seeds):
                units += [Unit(identity, strategy, seed, problem, i) for i, problem in enumerate(problems)]
    # problem by problem (every strategy on problem 1, then on problem 2...): a run stopped early has
    # compared its strategies on the same problems, instead of finishing one strategy before the next
    units.sort(key=lambda unit: (unit.index, unit.seed))
    return units


def _strategies_for(spec: Spec, budgets: list[int]) -> list[Strategy]:
    """The strategies one spec runs as (see ``plan``): itself, its bank at the largest budget, or one
    per budget. Built from the parsed spec, so its text is parsed once."""
    base = STRATEGIES.build(spec)
    option = base.budget_option
    if option is None or option in spec.options:
        return [base]
    if base.sample_bank:
        return [STRATEGIES.build(spec, **{option: max(budgets)})]
    return [STRATEGIES.build(spec, **{option: budget}) for budget in budgets]


def setting_differences(
    stored: dict[str, Any], config: EvalConfig, keys: tuple[str, ...], was: str, now: str
) -> str:
    """``key: stored WAS, current NOW`` for each of ``keys`` where a stored manifest and ``config``
    differ, joined by "; " (empty when they agree): the message that refuses a resume or a reuse."""
    current = config.manifest()
    return "; ".join(
        f"{key}: {stored.get(key)!r} {was}, {current[key]!r} {now}"
        for key in keys
        if stored.get(key) != current[key]
    )


#: what must agree between two runs for a finished unit of one to stand for the same unit of the other
REUSE_IDENTITY = ("dataset", "model", "budget")


def reuse_records(
    source: Path, config: EvalConfig, todo: list[Unit], store: RecordStore, console: Console
) -> list[Unit]:
    """Copy the units of ``todo`` that ``source`` already finished into ``store``; return the rest.

    A unit's key holds its full spec (with the budget option it ran at), seed, problem id and budget,
    so a stored record stands for it when the runs agree on dataset, model and compute cap (checked
    here, naming the difference). Copied records keep their own usage and say where they came from
    (``reused_from``), so a new strategy is compared with an existing baseline without regenerating it.
    """
    manifest_path = source / MANIFEST
    if not manifest_path.exists():
        raise UsageError(f"--reuse {source}: no {MANIFEST} there (not an eval run directory)")
    differences = setting_differences(
        json.loads(manifest_path.read_text()), config, REUSE_IDENTITY, "there", "here"
    )
    if differences:
        raise UsageError(
            f"--reuse {source}: the runs differ, so its records would not be the same work: {differences}"
        )
    available = {record_key(r): r for r in RecordStore(source).load()}
    remaining = []
    for unit in todo:
        record = available.get(unit.key)
        if record is None:
            remaining.append(unit)
        else:
            store.append({**record, "family": unit.identity.family, "reused_from": str(source)})
    console.print(
        f"reused {len(todo) - len(remaining)} finished units from {source}, {len(remaining)} to do",
        highlight=False,
    )
    return remaining


def check_manifest(directory: Path, config: EvalConfig, resume: bool, existing: int) -> None:
    path = directory / MANIFEST
    if existing and not resume:
        raise UsageError(
            f"{directory} already holds {existing} records: pass --resume to continue, or another --out"
        )
    stored = json.loads(path.read_text()) if resume and path.exists() else {}
    if stored:  # the same work, or more of it: strategies may be added (their units are new keys)
        differences = setting_differences(stored, config, config.identity, "then", "now")
        dropped = [spec for spec in stored.get("strategies", []) if spec not in config.strategies]
        if dropped:
            dropped_text = f"strategies {dropped} then, not now (a resume may add strategies, not drop them)"
            differences = "; ".join(filter(None, [differences, dropped_text]))
        if differences:
            raise UsageError(f"--resume with different settings than {path}: {differences}")
    directory.mkdir(parents=True, exist_ok=True)
    started = stored.get("started") or datetime.now(UTC).isoformat()
    path.write_text(json.dumps({**config.manifest(), "started": started}, indent=2))


async def grade(dataset: Dataset, problem: Problem, result: Result) -> tuple[list[bool], bool]:
    def work() -> tuple[list[bool], bool]:
        marks = [dataset.grade(problem, c.text, c.answer) for c in result.candidates]
        winner = next((i for i, c in enumerate(result.candidates) if c.text == result.text), None)
        if winner is not None:
            return marks, marks[winner]
        return marks, result.answer is not None and dataset.grade(problem, result.text or "", result.answer)

    return await asyncio.to_thread(work)


def to_record(unit: Unit, result: Result, marks: list[bool], correct: bool) -> dict[str, Any]:
    data = result.to_dict()
    for candidate, mark in zip(data["candidates"], marks, strict=True):
        candidate["correct"] = mark
    problem = unit.problem
    return {
        "strategy": unit.strategy.spec,
        "family": unit.identity.family,
        "seed": unit.seed,
        "budget": unit.budget,
        "problem": {
            "id": problem.id,
            "index": unit.index,
            "question": problem.question,
            "reference": problem.reference,
        },
        "answer": result.answer,
        "correct": correct,
        "text": result.text,
        "candidates": data["candidates"],
        "votes": result.votes,
        "usage": data["usage"],
        "usage_by_line": data["usage_by_line"],
        "note": result.note,
        "wall_seconds": result.wall_seconds,
        **({"trace": result.trace} if result.trace is not None else {}),
    }


class EvalProgress:
    """Units done, elapsed, ETA, completion tokens/s and running accuracy per strategy: a live bar on a
    terminal, ``eval: 37/250 units (15%), 80 tok/s · greedy 60%, 12m00s elapsed, ~40m left`` every
    ``PONDER_PROGRESS_INTERVAL`` seconds in a log, and how long the run took at the end."""

    def __init__(self, total: int, console: Console, enabled: bool):
        self.total = total
        self.tokens = 0
        self.correct: dict[str, list[bool]] = defaultdict(list)
        self.progress = TaskProgress(console, "eval", total, unit="units", quiet=not enabled)

    def advance(self, identity: StrategyId, record: dict[str, Any]) -> None:
        self.tokens += record["usage"]["completion_tokens"]
        self.correct[identity.family].append(bool(record["correct"]))
        rate = self.tokens / max(self.progress.elapsed, 1e-9)
        accuracy = " ".join(f"{name} {sum(v) / len(v):.0%}" for name, v in self.correct.items())
        self.progress.update(advance=1, status=f"{rate:.0f} tok/s · {accuracy}")
        if self.progress.completed >= self.total:
            self.progress.done(f"eval: {self.total} units")


def pending_units(
    config: EvalConfig, directory: Path, resume: bool, console: Console
) -> tuple[Dataset, list[Unit], RecordStore]:
    """The run's dataset, the units still to do and its store: the plan less what ``directory`` already
    holds (checked against its manifest) and what ``--reuse`` copies in. Whoever then runs the units,
    here or on Ray workers (``ponder.eval.distributed``), appends each finished one to the store."""
    dataset = load_dataset(config.dataset)
    problems = dataset.problems()[: config.limit] if config.limit else dataset.problems()
    for reason in dataset.skipped:
        console.print(f"[yellow]skipped[/] {escape(reason)}", highlight=False)  # [brackets] in it are text
    units = plan(config, problems)
    store = RecordStore(directory)
    finished = store.load(repair=True)
    check_manifest(directory, config, resume, len(finished))
    done = {record_key(r) for r in finished}
    todo = [u for u in units if u.key not in done]
    if resume:
        console.print(f"resuming: {len(done)} finished, {len(todo)} to do", highlight=False)
    for source in config.reuse:
        if todo:
            todo = reuse_records(Path(source), config, todo, store, console)
    return dataset, todo, store


def unit_context(
    unit: Unit, dataset: Dataset, backend: Backend, backends: Backends, budget: str | None
) -> Context:
    """The context a unit runs in: a seed derived from its seed and problem, a fresh ledger under the cap."""
    seed = stable_seed(unit.seed, unit.problem.id) % 2**31
    return Context.for_dataset(dataset, backend, seed, Ledger(Budget.parse(budget)), backends)


async def run_eval(
    config: EvalConfig,
    backend: Backend,
    directory: Path,
    resume: bool = False,
    console: Console | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Run (or finish) an evaluation and write records, summary.json and the outputs in ``directory``."""
    console = console or Console(stderr=True)
    dataset, todo, store = pending_units(config, directory, resume, console)

    await backend.start()
    admission = Admission(backend, config.concurrency)
    counted = CountedBackend.around(backend, admission=admission)
    progress = EvalProgress(len(todo), console, show_progress)
    finishing: set[asyncio.Future[None]] = set()

    async def keep(unit: Unit, result: Result) -> None:
        marks, correct = await grade(dataset, unit.problem, result)
        record = to_record(unit, result, marks, correct)
        await store.commit(record)  # finished only once on disk (group commit)
        progress.advance(unit.identity, record)

    async def work(unit: Unit) -> None:
        result = await unit.strategy.solve(
            unit.problem, unit_context(unit, dataset, counted, backends, config.budget)
        )
        # grading and storing finish even when another unit's failure stops the run: work paid for is kept
        kept = asyncio.ensure_future(keep(unit, result))
        finishing.add(kept)
        await asyncio.shield(kept)

    backends = Backends()  # the other models the run's strategies name, one client each for the run
    with progress.progress:
        try:
            await run_in_order(todo, work, admission)
        finally:
            await asyncio.gather(*finishing, return_exceptions=True)
            await backends.close()
    return write_summary(directory, config)


def write_summary(
    directory: Path, config: EvalConfig | None = None, rules: list[str] | None = None
) -> dict[str, Any]:
    """Summarise the stored records into ``summary.json`` (config from the manifest when not given).

    ``rules`` replace the run's re-aggregation rules (``ponder report DIR --rule SPEC``).
    """
    manifest = json.loads((directory / MANIFEST).read_text()) if (directory / MANIFEST).exists() else {}
    run = config.manifest() if config else manifest
    if rules is not None:
        run = {**run, "rules": rules}
    records = RecordStore(directory).load()
    if not records:
        raise UsageError(f"no records in {directory}")
    rows = summarize(
        records,
        list(run.get("budgets") or [1]),
        rules=list(run.get("rules") or []),
        rescores=load_rescores(directory),
    )
    match_baseline(rows)
    summary = {
        "run": {
            **run,
            "problems": len({str(r["problem"]["id"]) for r in records}),
            "started": manifest.get("started"),
            "finished": datetime.now(UTC).isoformat(),
        },
        "rows": rows,
    }
    (directory / SUMMARY).write_text(json.dumps(summary, indent=2))
    return summary
