"""Token confidence: how sure the model was of its own tokens. A call-free outcome score.

``metric=mean`` (the default) is exp(mean log-probability of the chosen tokens), the per-token
geometric-mean probability in (0, 1]; it needs only the chosen tokens' logprobs. The other metrics
are those of "Deep Think with Confidence" (Fu et al., 2025) and "Scalable Best-of-N Selection via
Self-Certainty" (Kang et al., 2025), computed from the top ``top_k`` logprobs of every position by
``ponder.scorers.token_confidence`` (see there for the definitions): ``mean_confidence``, ``bottom10``,
``lowest_window``, ``tail`` and ``self_certainty``. Defaults follow DeepConf: k = 5 alternatives,
windows and tails of 2048 tokens (shrunk for shorter traces). Larger always means more confident,
also where a server returned no alternatives (a position's confidence is then its chosen token's
probability, not DeepConf's C_i, whose −log p would rank unsure traces as sure).
``self-certainty`` is also registered as its own scorer name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from ponder.core.cost import Cost
from ponder.core.registry import Options
from ponder.core.types import Candidate, Problem, TokenLogprob, TokenLogprobs
from ponder.scorers import token_confidence
from ponder.scorers.base import SCORERS, Scorer

if TYPE_CHECKING:
    from ponder.context import Context

Metric = Literal["mean", "mean_confidence", "bottom10", "lowest_window", "tail", "self_certainty"]


class ConfidenceOptions(Options):
    metric: Metric = "mean"
    top_k: int = Field(5, ge=1, le=20)
    window: int = Field(2048, ge=1)
    tail: int = Field(2048, ge=1)

    @field_validator("metric", mode="before")
    @classmethod
    def _dashes(cls, value: object) -> object:
        return value.replace("-", "_") if isinstance(value, str) else value


class SelfCertaintyOptions(Options):
    top_k: int = Field(5, ge=1, le=20)


def trace_score(options: ConfidenceOptions) -> Callable[[list[TokenLogprob]], float]:
    """The function of a candidate's logprobs that ``options`` ask for."""
    k = options.top_k
    metrics: dict[str, Callable[[list[TokenLogprob]], float]] = {
        "mean": lambda t: math.exp(sum(TokenLogprobs.of(t).logprobs) / len(t)) if t else 0.0,
        "mean_confidence": lambda t: token_confidence.mean_confidence(t, k),
        "bottom10": lambda t: token_confidence.bottom_fraction_confidence(t, k, options.window, 0.1),
        "lowest_window": lambda t: token_confidence.lowest_group_confidence(t, k, options.window),
        "tail": lambda t: token_confidence.tail_confidence(t, k, options.tail),
        "self_certainty": lambda t: token_confidence.self_certainty(t, k),
    }
    return metrics[options.metric]


@SCORERS.register("confidence", ConfidenceOptions)
class ConfidenceScorer(Scorer[ConfidenceOptions]):
    """Token confidence of the candidate: exp(mean logprob) or a DeepConf metric (no model calls)."""

    name = "confidence"

    def __init__(self, options: ConfidenceOptions | SelfCertaintyOptions):
        if isinstance(options, SelfCertaintyOptions):
            options = ConfidenceOptions(metric="self_certainty", top_k=options.top_k)
        super().__init__(options)
        self.needs_logprobs = 0 if self.options.metric == "mean" else self.options.top_k
        self._score = trace_score(self.options)

    async def score(self, problem: Problem, candidates: list[Candidate], ctx: Context) -> list[float]:
        return [self._score(c.logprobs or []) for c in candidates]

    def max_cost(self, candidates: int) -> Cost:
        """None: it reads the logprobs the candidates already carry."""
        return Cost()


@SCORERS.register("self-certainty", SelfCertaintyOptions)
class SelfCertaintyScorer(ConfidenceScorer):
    """Self-certainty: mean KL(uniform ‖ top-k distribution) over positions (Kang et al., 2025)."""

    name = "self-certainty"
