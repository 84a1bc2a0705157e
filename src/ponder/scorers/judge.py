"""LLM-as-judge: the model is asked whether a solution is correct; the score is P("Yes").

Score = P(Yes) / (P(Yes) + P(No)) read from the top log-probabilities of the judge's first token, the
"logprob" verifier of generative-verification work (e.g. "Generative Verifiers", Zhang et al., 2024).
When the backend does not return logprobs, the verbal reply is read instead (Yes: 1, No: 0, else 0.5).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pydantic import Field

from ponder.backends.base import GenRequest
from ponder.core.registry import Options
from ponder.core.types import Candidate, Message, Problem, TokenLogprob
from ponder.scorers.base import SCORERS, Scorer

if TYPE_CHECKING:
    from ponder.strategies.base import Context

JUDGE_SYSTEM_PROMPT = "You are a careful grader. You check solutions to problems and reply Yes or No."
JUDGE_TEMPLATE = (
    "Problem:\n{question}\n\nProposed solution:\n{solution}\n\n"
    "Is the proposed solution correct, with the right final answer? Reply with one word: Yes or No."
)


class JudgeOptions(Options):
    top_logprobs: int = Field(10, ge=1, le=20)
    max_solution_chars: int = Field(6000, ge=100)


def p_yes(first_token: TokenLogprob | None) -> float | None:
    """P(Yes)/(P(Yes)+P(No)) over the top alternatives of the first token; None when neither appears."""
    if first_token is None:
        return None
    mass = {"yes": 0.0, "no": 0.0}
    alternatives = first_token.top or {first_token.token: first_token.logprob}
    for token, logprob in alternatives.items():
        word = token.strip().strip(".,!*").lower()
        if word in mass:
            mass[word] += math.exp(logprob)
    total = mass["yes"] + mass["no"]
    return mass["yes"] / total if total > 0 else None


def verbal_verdict(text: str) -> float:
    words = text.strip().strip(".,!*").lower().split()
    first = words[0].strip(".,!*") if words else ""
    return {"yes": 1.0, "no": 0.0}.get(first, 0.5)


@SCORERS.register("judge", JudgeOptions)
class JudgeScorer(Scorer):
    """The model judges each solution; score = P("Yes") from logprobs (verbal fallback)."""

    name = "judge"

    async def score(self, problem: Problem, candidates: list[Candidate], ctx: Context) -> list[float]:
        options: JudgeOptions = self.options  # type: ignore[assignment]
        use_logprobs = ctx.backend.capabilities.logprobs
        requests = [
            GenRequest(
                messages=(
                    Message("system", JUDGE_SYSTEM_PROMPT),
                    Message(
                        "user",
                        JUDGE_TEMPLATE.format(
                            question=problem.question, solution=c.text[-options.max_solution_chars :]
                        ),
                    ),
                ),
                temperature=0.0,
                max_tokens=1 if use_logprobs else 4,
                logprobs=options.top_logprobs if use_logprobs else None,
            )
            for c in candidates
        ]
        results = await ctx.generate(requests, line=self.line)
        scores = []
        for candidate, [generation] in zip(candidates, results, strict=True):
            candidate.scoring_usage = candidate.scoring_usage + generation.usage
            first = generation.logprobs[0] if generation.logprobs else None
            probability = p_yes(first)
            scores.append(probability if probability is not None else verbal_verdict(generation.text))
        return scores
