"""CHAMP (Mao et al., 2024): 270 competition math problems with free-form final answers.

The problems ship inside the ``champ-dataset`` package, so this works offline. References are the
dataset's final answers ("2^n/(n+1)", "x=2, y=1", sometimes a sentence); answers are compared for
mathematical equivalence, which cannot settle the sentence-like references and marks them wrong
unless the strings agree.
"""

from __future__ import annotations

from ponder.core.extras import import_extra
from ponder.core.types import Problem
from ponder.tasks.datasets.base import DATASETS, Dataset, MathGrading, SampleOptions, take_sample


@DATASETS.register("champ", SampleOptions)
class ChampDataset(MathGrading, Dataset):
    """CHAMP competition math (270 problems), graded by answer equivalence."""

    kind = "champ"
    options: SampleOptions

    def _load(self) -> list[Problem]:
        champ_dataset = import_extra("champ_dataset", "eval", f"dataset {self.name}")
        problems = [
            Problem(
                question=item.text,
                id=item.identifier,
                reference=item.answer,
                metadata={"category": item.category},
            )
            for item in champ_dataset.load("v0").problems.values()
        ]
        return take_sample(problems, self.options.size, self.options.seed)
