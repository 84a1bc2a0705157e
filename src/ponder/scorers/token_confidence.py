"""Trace confidence from token log-probabilities: pure functions, so the eval can recompute them offline.

After "Deep Think with Confidence" (DeepConf; Fu, Wang, Tian and Zhao, 2025):

* token confidence ``C_i = -(1/k) Σ_j log P_i(j)`` over the k most likely tokens at position i (the
  candidate's ``top`` alternatives). It is large when the chosen token is peaked and its alternatives
  are unlikely, so it needs the alternatives: on the chosen token alone it would be −log p, largest for
  the least likely tokens, and would rank unsure traces as sure. Where a server returned no
  alternatives, the position's confidence is the chosen token's probability p = exp(log p) instead
  (higher = surer, in [0, 1]), so traces without alternatives still order by how sure their tokens were
  (their scores are on that scale, not DeepConf's; compare traces of one kind);
* group confidence: the mean ``C_i`` over a sliding window of ``window`` tokens (stride 1; DeepConf
  uses 2048 tokens; a trace shorter than the window is one group);
* trace scores: ``mean_confidence`` (mean ``C_i``), ``bottom10`` (mean of the lowest 10% of group
  confidences, at least one group), ``lowest_window`` (the lowest group confidence), ``tail`` (mean
  ``C_i`` over the last ``tail`` tokens, DeepConf's 2048).

And ``self_certainty`` after "Scalable Best-of-N Selection for Large Language Models via Self-Certainty"
(Kang, Zhao and Song, 2025): the mean over positions of KL(U ‖ p) = -(1/V) Σ_j log(V·p_j). Servers
return only the top k, so here V = k and p is the top-k probabilities renormalised to sum to one
(without renormalising, the value would be mean ``C_i`` − log k, a shift of ``mean_confidence``).

Every score is non-negative and larger means more confident, so each can weight a vote.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

from ponder.core.types import TokenLogprob, TokenLogprobs


def top_logprobs(token: TokenLogprob, k: int) -> list[float]:
    """The k largest alternative logprobs at a position (the chosen token's alone if none given)."""
    values = list(token.top.values()) if token.top else [token.logprob]
    return heapq.nlargest(k, values)


def token_confidences(tokens: Sequence[TokenLogprob], k: int = 5) -> list[float]:
    """DeepConf's C_i = −mean of the top-k logprobs, one per position; the chosen token's probability
    where the position has no alternatives (see the module's docstring).

    Read straight from the arrays of ``TokenLogprobs`` (what backends return), with no object per token.
    """
    arrays = TokenLogprobs.of(tokens)
    out = []
    for logprob, top in zip(arrays.logprobs, arrays.top_values, strict=True):
        if not top:
            out.append(math.exp(logprob))
            continue
        values = top if len(top) <= k else heapq.nlargest(k, top)
        out.append(-sum(values) / len(values))
    return out


def group_confidences(confidences: list[float], window: int = 2048) -> list[float]:
    """Mean confidence of every window of ``window`` consecutive tokens (shrunk to the trace length)."""
    if not confidences:
        return []
    size = min(window, len(confidences))
    running = sum(confidences[:size])
    groups = [running / size]
    for i in range(size, len(confidences)):
        running += confidences[i] - confidences[i - size]
        groups.append(running / size)
    return groups


def mean_confidence(tokens: list[TokenLogprob], k: int = 5) -> float:
    confidences = token_confidences(tokens, k)
    return sum(confidences) / len(confidences) if confidences else 0.0


def bottom_fraction_confidence(
    tokens: list[TokenLogprob], k: int = 5, window: int = 2048, fraction: float = 0.1
) -> float:
    """Mean of the lowest ``fraction`` of group confidences (DeepConf's bottom-10%), at least one group."""
    groups = sorted(group_confidences(token_confidences(tokens, k), window))
    if not groups:
        return 0.0
    count = max(1, math.ceil(fraction * len(groups) - 1e-9))
    return sum(groups[:count]) / count


def lowest_group_confidence(tokens: list[TokenLogprob], k: int = 5, window: int = 2048) -> float:
    groups = group_confidences(token_confidences(tokens, k), window)
    return min(groups) if groups else 0.0


def tail_confidence(tokens: list[TokenLogprob], k: int = 5, tail: int = 2048) -> float:
    confidences = token_confidences(tokens, k)[-tail:]
    return sum(confidences) / len(confidences) if confidences else 0.0


def self_certainty(tokens: list[TokenLogprob], k: int = 5) -> float:
    """Mean over positions of KL(uniform ‖ p) over the renormalised top-k (Kang et al., 2025)."""
    if not tokens:
        return 0.0
    total = 0.0
    for token in tokens:
        values = top_logprobs(token, k)
        normaliser = math.log(sum(math.exp(v) for v in values))
        size = len(values)
        total += -sum(math.log(size) + v - normaliser for v in values) / size
    return total / len(tokens)
