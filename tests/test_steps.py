"""Steps: splitting solutions, aggregating step scores, and the reward-model extra being optional."""

from __future__ import annotations

import asyncio
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ponder.backends.scripted import ScriptedBackend
from ponder.context import Context
from ponder.core.errors import UsageError
from ponder.core.types import Candidate, Problem
from ponder.scorers import SCORERS
from ponder.scorers.steps import aggregate_step_scores
from ponder.tasks.steps import split_steps


def test_split_steps_on_blank_lines() -> None:
    text = "\n\nStep 1: add.\n\n  \nStep 2: subtract\nstill step 2.\n \t\nAnswer: 1\n\n"
    assert split_steps(text) == ["Step 1: add.", "Step 2: subtract\nstill step 2.", "Answer: 1"]
    assert split_steps("") == [] and split_steps("\n\n\n") == []
    assert split_steps("a ки b ки", delimiter="ки") == ["a", "b"]


def test_aggregations() -> None:
    scores = [0.9, 0.5, 0.8]
    assert aggregate_step_scores(scores, "last") == 0.8
    assert aggregate_step_scores(scores, "min") == 0.5
    assert aggregate_step_scores(scores, "mean") == pytest.approx(2.2 / 3)
    assert aggregate_step_scores(scores, "product") == pytest.approx(0.36)
    assert aggregate_step_scores([], "min") == 0.0


@given(st.lists(st.floats(0, 1), min_size=1, max_size=20))
def test_aggregations_are_ordered(scores: list[float]) -> None:
    low, mean = aggregate_step_scores(scores, "min"), aggregate_step_scores(scores, "mean")
    assert aggregate_step_scores(scores, "product") <= low + 1e-12
    assert low <= mean + 1e-12 <= max(scores) + 2e-12


def test_reward_models_without_the_extra_name_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    scorer = SCORERS.build("prm:some/model,family=separator")
    ctx = Context(backend=ScriptedBackend())
    with pytest.raises(UsageError, match=r"pip install 'ponder\[rm\]'"):
        asyncio.run(scorer.score(Problem(question="q"), [Candidate(text="a\n\nb")], ctx))


def test_importing_the_scorers_does_not_import_torch() -> None:
    import subprocess

    code = "import sys, ponder.scorers; print('torch' in sys.modules, 'transformers' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout == "False False\n"
    )
