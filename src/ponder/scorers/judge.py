"""LLM-as-judge: the model is asked whether a solution is correct.

``mode=logprob``: score = P(Yes) / (P(Yes) + P(No)) read from the top log-probabilities of the judge's
first token, the "logprob" verifier of generative-verification work (e.g. "Generative Verifiers",
Zhang et al., 2024); a reply without usable logprobs is read verbally (Yes: 1, No: 0, else 0.5).
``mode=verbal``: the judge rates the solution from 0 to 10 (the rating scale of "Judging LLM-as-a-Judge",
Zheng et al., 2023, there 1–10); score = rating / 10, 0.5 when no rating can be read.
``mode=auto`` (the default) is ``logprob`` when the judge's backend declares logprobs, else ``verbal``.

``model`` (with ``base_url`` for an OpenAI-compatible server) runs the judge on another backend than the
generator, taken from the run context's pool (``Context.backends``); its calls are still billed on
``scorer:judge``.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from ponder.backends import GenRequest
from ponder.core.cost import Cost
from ponder.core.registry import BaseURL, ModelName, Options
from ponder.core.types import Candidate, Problem, TokenLogprob
from ponder.scorers.base import SCORERS, Scorer, review_request

if TYPE_CHECKING:
    from ponder.context import Context

JUDGE_SYSTEM_PROMPT = "You are a careful grader. You check solutions to problems and reply Yes or No."
JUDGE_TEMPLATE = (
    "Problem:\n{question}\n\nProposed solution:\n{solution}\n\n"
    "Is the proposed solution correct, with the right final answer? Reply with one word: Yes or No."
)
RATING_SYSTEM_PROMPT = "You are a careful grader. You check solutions to problems and rate them from 0 to 10."
RATING_TEMPLATE = (
    "Problem:\n{question}\n\nProposed solution:\n{solution}\n\n"
    "How likely is the proposed solution to be correct, with the right final answer? Rate it from 0 "
    "(certainly wrong) to 10 (certainly right). Reply with the rating only, as: Score: N"
)
#: for a solution in progress (``Candidate.partial``): a step-level search values where it is heading
PARTIAL_JUDGE_TEMPLATE = (
    "Problem:\n{question}\n\nA solution in progress (not finished yet):\n{solution}\n\n"
    "Is every step so far correct and leading toward the right final answer? Reply with one word: Yes or No."
)
PARTIAL_RATING_TEMPLATE = (
    "Problem:\n{question}\n\nA solution in progress (not finished yet):\n{solution}\n\n"
    "How likely is this solution, continued from here, to reach the right final answer? Rate it from 0 "
    "(certainly wrong) to 10 (certainly right). Reply with the rating only, as: Score: N"
)
#: tokens a judge may write: the Yes/No token read by logprobs, or a "Score: N" rating
VERDICT_TOKENS = 1
RATING_TOKENS = 8
_SCORE = re.compile(r"score\W{0,3}(\d+(?:\.\d+)?)", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)(?!\.?\d)")


class JudgeOptions(Options):
    mode: Literal["auto", "logprob", "verbal"] = "auto"
    top_logprobs: int = Field(10, ge=1, le=20)
    max_solution_chars: int = Field(6000, ge=100)
    model: ModelName = None  # judge on this model (embedded name, or the server's with base_url)
    base_url: BaseURL = None  # judge on this OpenAI-compatible server


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


def verbal_rating(text: str) -> float:
    """A 0–10 rating read from the reply ("Score: 7", "7/10", "8"), divided by 10; 0.5 if none is."""
    match = _SCORE.search(text) or _NUMBER.search(text)
    if match is None:
        return 0.5
    rating = float(match.group(1))
    return rating / 10 if 0 <= rating <= 10 else 0.5


@SCORERS.register("judge", JudgeOptions)
class JudgeScorer(Scorer[JudgeOptions]):
    """The model judges each solution; score = P("Yes") from logprobs, or a verbal 0–10 rating."""

    name = "judge"

    def request(self, problem: Problem, candidate: Candidate, use_logprobs: bool) -> GenRequest:
        options = self.options
        if use_logprobs:
            system = JUDGE_SYSTEM_PROMPT
            template = PARTIAL_JUDGE_TEMPLATE if candidate.partial else JUDGE_TEMPLATE
        else:
            system = RATING_SYSTEM_PROMPT
            template = PARTIAL_RATING_TEMPLATE if candidate.partial else RATING_TEMPLATE
        return review_request(
            problem,
            candidate,
            system,
            template,
            options.max_solution_chars,
            temperature=0.0,
            max_tokens=VERDICT_TOKENS if use_logprobs else RATING_TOKENS,
            logprobs=options.top_logprobs if use_logprobs else None,
        )

    async def score(self, problem: Problem, candidates: list[Candidate], ctx: Context) -> list[float]:
        options = self.options
        backend = await ctx.backends.get(ctx.backend, options.model, options.base_url)
        use_logprobs = backend.capabilities.logprobs if options.mode == "auto" else options.mode == "logprob"
        requests = [self.request(problem, c, use_logprobs) for c in candidates]
        results = await self.review(ctx, candidates, requests, backend=backend)
        scores = []
        for [generation] in results:
            if not use_logprobs:
                scores.append(verbal_rating(generation.text))
                continue
            probability = p_yes(generation.logprobs[0] if generation.logprobs else None)
            scores.append(probability if probability is not None else verbal_verdict(generation.text))
        return scores

    def max_cost(self, candidates: int) -> Cost:
        """One short review per candidate (a rating unless the mode reads logprobs)."""
        options = self.options
        return Cost.sample(candidates, VERDICT_TOKENS if options.mode == "logprob" else RATING_TOKENS)
