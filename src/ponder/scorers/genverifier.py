"""Generative verifier: V sampled verification chains per candidate; score = mean verdict.

After "When To Solve, When To Verify: Compute-Optimal Problem Solving and Generative Verification for
LLM Reasoning" (Singhi et al., 2025), which scores each solution by the share of V sampled chain-of-
thought verifications that end in "correct", and compares it with self-consistency at equal compute.
Its calls are billed on the ledger line ``scorer:genverifier`` (verifier tokens, apart from generation
tokens) and to each candidate's ``scoring_usage``.

Each chain ends with a line ``Verdict: correct`` or ``Verdict: incorrect``; the last verdict found is
read (also ``right``/``wrong``, ``yes``/``no``, ``true``/``false``, with or without markdown). A chain
without a readable verdict is left out of the mean; a candidate with none scores 0.5. Defaults:
V = 2 verifications at temperature 0.7 (sampled, so the chains differ).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import Field

from ponder.core.cost import Cost
from ponder.core.registry import Options
from ponder.core.types import Candidate, Problem
from ponder.scorers.base import SCORERS, Scorer, review_request

if TYPE_CHECKING:
    from ponder.context import Context

VERIFIER_SYSTEM_PROMPT = (
    "You are a meticulous verifier. You check a proposed solution step by step, then give your verdict."
)
VERIFIER_TEMPLATE = (
    "Problem:\n{question}\n\nProposed solution:\n{solution}\n\n"
    "Check the proposed solution step by step: recompute each step and the final answer. Then end "
    "with one line, exactly 'Verdict: correct' or 'Verdict: incorrect'."
)
_VERDICT = re.compile(
    r"verdict\W{0,5}(?:(yes|no)\b|[^\n]{0,40}?\b(not\s+correct|incorrect|correct|wrong|right|false|true)\b)",
    re.IGNORECASE,
)
_POSITIVE = {"correct", "right", "true", "yes"}


def parse_verdict(text: str) -> float | None:
    """1.0 for a final "Verdict: correct", 0.0 for "incorrect", None when no verdict can be read."""
    matches = _VERDICT.findall(text)
    if not matches:
        return None
    word = "".join(matches[-1]).lower()
    return 1.0 if word in _POSITIVE else 0.0


def mean_verdict(verdicts: list[float | None]) -> float:
    read = [v for v in verdicts if v is not None]
    return sum(read) / len(read) if read else 0.5


class GenVerifierOptions(Options):
    verifications: int = Field(2, ge=1, le=64)
    temperature: float = Field(0.7, ge=0.0, le=5.0)
    max_tokens: int = Field(1024, ge=1)
    max_solution_chars: int = Field(6000, ge=100)


@SCORERS.register("genverifier", GenVerifierOptions)
class GenVerifierScorer(Scorer[GenVerifierOptions]):
    """V sampled verification chains per candidate; score = share of "correct" verdicts."""

    name = "genverifier"

    async def score(self, problem: Problem, candidates: list[Candidate], ctx: Context) -> list[float]:
        options = self.options
        requests = [
            review_request(
                problem,
                c,
                VERIFIER_SYSTEM_PROMPT,
                VERIFIER_TEMPLATE,
                options.max_solution_chars,
                n=options.verifications,
                temperature=options.temperature,
                max_tokens=options.max_tokens,
                seed=ctx.seed,
            )
            for c in candidates
        ]
        results = await self.review(ctx, candidates, requests)
        return [mean_verdict([parse_verdict(g.text) for g in generations]) for generations in results]

    def max_cost(self, candidates: int) -> Cost:
        """``verifications`` chains per candidate."""
        options = self.options
        return Cost.sample(candidates * options.verifications, options.max_tokens)
