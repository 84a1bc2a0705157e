"""Verifier: keep the candidates that pass a check; when none passes, keep them all (fall-through).

Archon's verifier ("Archon: An Architecture Search Framework for Inference-Time Techniques",
Saad-Falcon et al., 2024) asks the model whether each candidate is correct and drops the rest; a
filter that may empty the pool falls through instead, so a later role (or the final vote) still has
something to choose from. By default the check is the role's own LLM review, the judge's question
("Is the proposed solution correct? Yes or No", ``ponder.scorers.judge``) read as P(Yes) from the
first token's logprobs when the backend gives them, else from the word; ``scorer`` uses any
registered scorer instead (``tests`` runs the problem's tests). A candidate passes at
``score > threshold`` (0.5: "more likely Yes than No"; an unreadable verdict, 0.5, does not pass).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from ponder.core.cost import Cost
from ponder.core.registry import OptionalScorerSpec
from ponder.messages import MAX_SHOWN_CHARS, fresh_seed
from ponder.roles.base import ROLES, Pool, Role, RoleOptions
from ponder.scorers import SCORERS
from ponder.scorers.base import review_request
from ponder.scorers.judge import JUDGE_SYSTEM_PROMPT, JUDGE_TEMPLATE, p_yes, verbal_verdict

if TYPE_CHECKING:
    from ponder.context import Context
    from ponder.core.types import Candidate, Problem

TOP_LOGPROBS = 10


class VerifierOptions(RoleOptions):
    role: Literal["verifier"] = "verifier"
    scorer: OptionalScorerSpec = None  # any scorer spec instead of the role's own Yes/No review
    threshold: float = 0.5  # a candidate passes at score > threshold
    temperature: float = Field(0.0, ge=0.0, le=5.0)
    max_tokens: int = Field(4, ge=1)  # the verdict is the first word (one token when read by logprobs)


@ROLES.register("verifier", VerifierOptions)
class Verifier(Role[VerifierOptions]):
    """Keeps candidates judged correct (LLM Yes/No or any scorer); keeps all when none passes."""

    kind = "verifier"

    def __init__(self, options: VerifierOptions):
        super().__init__(options)
        self.scorer = SCORERS.build(options.scorer) if options.scorer else None

    async def apply(self, pool: Pool, ctx: Context) -> dict[str, Any]:
        candidates = pool.candidates
        if self.scorer is not None:
            scores = await self.scorer.score(pool.problem, candidates, ctx)
        else:
            scores = await self.review(pool.problem, candidates, ctx)
        for candidate, score in zip(candidates, scores, strict=True):
            candidate.scores[f"verify:{self.name}"] = score
        passed = [c for c, s in zip(candidates, scores, strict=True) if s > self.options.threshold]
        pool.candidates = passed or candidates
        return {"scores": scores, "passed": len(passed), "fall_through": not passed and bool(candidates)}

    def max_cost(self, pool: int) -> Cost:
        """The scorer's cost, or one short review per candidate."""
        if self.scorer is not None:
            return self.scorer.max_cost(pool)
        return Cost.sample(pool, self.options.max_tokens)

    async def review(self, problem: Problem, candidates: list[Candidate], ctx: Context) -> list[float]:
        backend = await self.backend(ctx)
        logprobs = TOP_LOGPROBS if backend.capabilities.logprobs else None
        requests = [
            review_request(
                problem,
                candidate,
                JUDGE_SYSTEM_PROMPT,
                JUDGE_TEMPLATE,
                MAX_SHOWN_CHARS,
                temperature=self.options.temperature,
                max_tokens=1 if logprobs else self.options.max_tokens,
                logprobs=logprobs,
                seed=fresh_seed(ctx),
            )
            for candidate in candidates
        ]
        scores = []
        for [generation] in await self.call(ctx, requests):
            probability = p_yes(generation.logprobs[0]) if generation.logprobs else None
            scores.append(probability if probability is not None else verbal_verdict(generation.text))
        return scores
