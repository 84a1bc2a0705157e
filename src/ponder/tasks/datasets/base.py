"""The dataset contract, its registry, and what every loader shares: sampling, naming, row mapping.

A dataset yields ``Problem``s and grades a model's text for one of them. It owns both, because only
the dataset knows what its references mean: a reasoning-gym generator has its own scorer, HumanEval
runs tests, math sets compare answers for equivalence. Loading happens on the first ``problems()``
call and is cached; constructing a dataset only checks its options (and names), so that a bad spec
fails before any work starts.
"""

from __future__ import annotations

import abc
import json
import random
import threading
from typing import Any, Literal

from pydantic import Field

from ponder.core.errors import UsageError
from ponder.core.registry import Options, Registry
from ponder.core.types import Problem
from ponder.tasks.equivalence import is_correct
from ponder.tasks.extract import extract_answer, normalize_answer
from ponder.tasks.prompts import MATH_SYSTEM_PROMPT

_MAX_REASONS_IN_ERROR = 5


class SampleOptions(Options):
    """``size`` problems drawn at random with ``seed`` (kept in dataset order); all of them by default."""

    size: int | None = Field(None, ge=1)
    seed: int = 0


class Dataset(abc.ABC):
    """Problems plus the way to read and grade an answer to them. Subclasses set ``kind`` (their
    registered name) and implement ``_load`` and ``grade``."""

    kind: str = ""
    system_prompt: str | None = MATH_SYSTEM_PROMPT

    def __init__(self, options: Options):
        self.options = options
        self.name = canonical_spec(self.kind, options)
        self.skipped: list[str] = []
        #: source rows by problem id, for datasets whose grader needs more than the reference answer
        self._entries: dict[str, dict[str, Any]] = {}
        self._problems: list[Problem] | None = None
        self._lock = threading.Lock()

    def problems(self) -> list[Problem]:
        """Every problem, loaded on the first call and cached (thread-safe)."""
        with self._lock:
            if self._problems is None:
                self._problems = self._load()
            return self._problems

    @abc.abstractmethod
    def _load(self) -> list[Problem]:
        """Read or generate the problems; record skipped rows in ``self.skipped``."""

    def extract(self, text: str) -> str | None:
        """The answer in a model's text, in this dataset's format (``None`` if it gives none)."""
        return extract_answer(text)

    @abc.abstractmethod
    def grade(self, problem: Problem, text: str, answer: str | None) -> bool:
        """Whether ``answer`` (``extract(text)``) solves ``problem``. Synchronous; may be slow."""

    def entry(self, problem: Problem) -> dict[str, Any]:
        """The source row behind ``problem`` (loading the dataset first); a foreign problem is an error."""
        self.problems()
        entry = self._entries.get(problem.id or "")
        if entry is None:
            raise UsageError(f"problem {problem.id!r} is not part of dataset {self.name}")
        return entry

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


DATASETS: Registry[Dataset] = Registry("dataset")


def load_dataset(spec: str) -> Dataset:
    """Build a dataset from a spec such as ``reasoning-gym:gsm_symbolic,size=50``."""
    return DATASETS.build(spec)


def canonical_spec(kind: str, options: Options) -> str:
    """The registered name, the positional argument, then options that differ from their defaults."""
    positional = options.positional_field
    values = options.model_dump()
    changed = options.model_dump(exclude_defaults=True)
    parts = [_spec_value(values[positional])] if positional and values[positional] is not None else []
    parts += [f"{key}={_spec_value(changed[key])}" for key in sorted(changed) if key != positional]
    return kind + (":" + ",".join(parts) if parts else "")


def _spec_value(value: Any) -> str:
    text = str(value)
    return f"[{text}]" if "," in text else text


def take_sample(items: list[Any], size: int | None, seed: int) -> list[Any]:
    """``size`` items drawn without replacement with ``seed``, in their original order (all if None)."""
    if size is None or size >= len(items):
        return list(items)
    chosen = sorted(random.Random(seed).sample(range(len(items)), size))
    return [items[index] for index in chosen]


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON types (what the eval store can write); odd objects become strings."""
    return json.loads(json.dumps(value, default=str))


class MathGrading:
    """Grading by answer equivalence against ``problem.reference`` (``exact``: normalised strings)."""

    grader: Literal["math", "exact"] = "math"

    def grade(self, problem: Problem, text: str, answer: str | None) -> bool:
        if answer is None or problem.reference is None:
            return False
        if self.grader == "exact":
            return normalize_answer(answer) == normalize_answer(problem.reference)
        return is_correct(answer, problem.reference)


class RowOptions(SampleOptions):
    """Which fields of a row hold the question, the answer and the id, and how answers are compared."""

    question: str = "question"
    answer: str = "answer"
    id: str | None = None
    grader: Literal["math", "exact"] = "math"


class RowReader:
    """Turns rows of a table (JSON lines, CSV, a Hugging Face split) into problems, skipping bad ones.

    Rows are numbered in ``unit``s ("line 7" of a file, "row 3" of a table): skip reasons say where,
    and rows without an id field take the number as id. Without an ``id=`` option, a row's
    ``default_id_field`` (``id`` for your own files) is its id when present, as a user who wrote ids
    expects; named explicitly, the field is required. Answers of GSM8K style ("...reasoning...
    #### 42") are cut to what follows ``####``.
    """

    def __init__(
        self,
        options: RowOptions,
        source: str,
        unit: str,
        answer_format: str = "plain",
        default_id_field: str | None = None,
    ):
        self.options, self.source, self.unit, self.answer_format = options, source, unit, answer_format
        self.default_id_field = default_id_field
        self.skipped: list[str] = []
        self._ids: set[str] = set()

    def read(self, row: Any, number: int) -> Problem | None:
        """The row's problem, or None after recording why it was skipped."""
        reason = self._problem_or_reason(row, number)
        if isinstance(reason, Problem):
            return reason
        self.skip(number, reason)
        return None

    def skip(self, number: int, reason: str) -> None:
        self.skipped.append(f"{self.unit} {number}: {reason}")

    def _problem_or_reason(self, row: Any, number: int) -> Problem | str:
        options = self.options
        if not isinstance(row, dict):
            return f"not an object but {type(row).__name__}"
        id_field = options.id
        if id_field is None and self.default_id_field is not None:
            found = row.get(self.default_id_field)
            if found is not None and not (isinstance(found, str) and not found.strip()):
                id_field = self.default_id_field
        values = {}
        for role, field in (("question", options.question), ("answer", options.answer), ("id", id_field)):
            if field is None:
                continue
            value = row.get(field)
            if value is None or (isinstance(value, str) and not value.strip()):
                return f"no {field!r} field" if field not in row else f"empty {field!r} field"
            values[role] = value if isinstance(value, str) else json.dumps(value)
        reference = values["answer"].strip()
        if self.answer_format == "gsm8k":
            if "####" not in reference:
                return f"no '####' in the {options.answer!r} field (answer_format=gsm8k)"
            reference = reference.rsplit("####", 1)[1].strip().replace(",", "")
        problem_id = values.get("id", str(number))
        if problem_id in self._ids:
            return f"duplicate id {problem_id!r}"
        self._ids.add(problem_id)
        return Problem(
            question=values["question"],
            id=problem_id,
            reference=reference,
            metadata={self.unit: number},
        )

    def finish(self, problems: list[Problem]) -> list[Problem]:
        """The sampled problems, or UsageError when no row was usable."""
        if not problems:
            shown = "; ".join(self.skipped[:_MAX_REASONS_IN_ERROR])
            more = len(self.skipped) - _MAX_REASONS_IN_ERROR
            detail = f": {shown}" + (f" (and {more} more)" if more > 0 else "") if shown else ": it is empty"
            raise UsageError(f"no usable rows in {self.source}{detail}")
        return take_sample(problems, self.options.size, self.options.seed)
