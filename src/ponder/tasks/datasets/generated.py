"""reasoning-gym: procedural generators (GSM8K templates, arithmetic, algebra, logic, ...) with scorers.

Problems are generated from ``(generator, seed, index)`` and are the same on every machine, so a
problem id like ``gsm_symbolic-0-17`` names it exactly. Grading uses the generator's own
``score_answer`` (a score of 1.0 is correct), which knows the generator's answer format. A number
that the scorer rejects is scored once more in normal form ("28,080" -> "28080", "$5.0$" -> "5"),
since some scorers read only the first run of digits; nothing else is rewritten, because other
generators compare exact, case-sensitive strings. A few
generators have no single reference answer at all (``graph_color``, ``rush_hour``...), and their
problems carry ``reference=None``.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import Field

from ponder.core.errors import UnknownNameError, UsageError
from ponder.core.extras import import_extra
from ponder.core.registry import Options
from ponder.core.types import Problem
from ponder.tasks.datasets.base import DATASETS, Dataset, json_safe
from ponder.tasks.extract import normalize_answer

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


class ReasoningGymOptions(Options):
    positional_field: ClassVar[str | None] = "generator"

    generator: str = "gsm_symbolic"
    size: int = Field(100, ge=1)
    seed: int = 0


@DATASETS.register("reasoning-gym", ReasoningGymOptions)
class ReasoningGymDataset(Dataset):
    """Problems from a reasoning-gym generator (positional: generator name), graded by its scorer."""

    kind = "reasoning-gym"

    def __init__(self, options: ReasoningGymOptions):
        super().__init__(options)
        # a second of imports: only when this dataset is used
        factory = import_extra("reasoning_gym.factory", "eval", f"dataset {self.name}")
        self.generator, self.seed = options.generator, options.seed
        if self.generator not in factory.DATASETS:
            raise UnknownNameError("reasoning-gym generator", self.generator, list(factory.DATASETS))
        try:
            self._source = factory.create_dataset(self.generator, size=options.size, seed=self.seed)
        except Exception as error:  # generators validate their configs with assert and ValueError
            raise UsageError(f"reasoning-gym generator {self.generator!r}: {error}") from error

    def _load(self) -> list[Problem]:
        problems = []
        for index in range(len(self._source)):
            entry = self._source[index]
            problem_id = f"{self.generator}-{self.seed}-{index}"
            self._entries[problem_id] = entry
            answer = entry["answer"]
            problems.append(
                Problem(
                    question=entry["question"],
                    id=problem_id,
                    reference=answer if isinstance(answer, str) or answer is None else str(answer),
                    metadata={
                        "generator": self.generator,
                        "seed": self.seed,
                        "index": index,
                        "reasoning_gym": json_safe(entry.get("metadata", {})),
                    },
                )
            )
        return problems

    def grade(self, problem: Problem, text: str, answer: str | None) -> bool:
        if answer is None:
            return False
        entry = self.entry(problem)
        normalized = normalize_answer(answer)
        forms = [answer] + ([normalized] if normalized != answer and _NUMBER.fullmatch(normalized) else [])
        return any(self._score(form, entry) >= 1.0 for form in forms)

    def _score(self, answer: str, entry: dict[str, Any]) -> float:
        try:
            return self._source.score_answer(answer, entry=entry)
        except Exception:  # a scorer that chokes on a malformed answer has rejected it
            return 0.0
