"""Estimators for test-time scaling curves: pass@k, subset enumeration, bootstrap intervals.

``pass_at_k`` is the unbiased estimator of Chen et al. ("Evaluating Large Language Models Trained on
Code", 2021): 1 − C(n−c, k)/C(n, k). Aggregate metrics at budget k (maj@k, best-of-k) are expectations
over k-subsets of the n stored samples: enumerated exactly when there are few subsets, otherwise
estimated from a fixed number of seeded random subsets (the sample-bank method of "Large Language
Monkeys", Brown et al., 2024, and search-and-learn).

Intervals over problems: a share of problems solved gets the Wilson score interval (Wilson, 1927;
recommended over the Wald and bootstrap intervals by Brown, Cai and DasGupta, "Interval Estimation
for a Binomial Proportion", 2001), which stays honest at 0 and 1 where a bootstrap collapses to a
point; fractional outcomes (the expected accuracy of a k-subset vote) keep the bootstrap
(``outcome_interval``).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from collections.abc import Sequence
from statistics import NormalDist

#: Enumerate all k-subsets when there are at most this many; otherwise draw this many at random.
MAX_SUBSETS = 256


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct) is correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def stable_seed(*parts: object) -> int:
    """A seed derived from values, stable across processes (unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "big")


def subsets(n: int, k: int, seed: int, limit: int = MAX_SUBSETS) -> list[tuple[int, ...]]:
    """All k-subsets of range(n) if there are at most ``limit``, else ``limit`` seeded random ones.

    Each subset keeps the original order of its indices, so order-dependent rules (tie-breaks by first
    appearance) behave as they would have on a run that drew only those samples.
    """
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if math.comb(n, k) <= limit:
        return list(itertools.combinations(range(n), k))
    rng = random.Random(seed)
    return [tuple(sorted(rng.sample(range(n), k))) for _ in range(limit)]


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def bootstrap_ci(
    values: Sequence[float], seed: int = 0, iterations: int = 2000, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over units (problems), seeded and deterministic.

    Values that are all equal give a zero-width interval: resampling them cannot vary. For shares of
    problems use ``outcome_interval``, which does not collapse there.
    """
    if not values:
        return (float("nan"), float("nan"))
    if len(set(values)) == 1:
        return (values[0], values[0])
    rng = random.Random(seed)
    size = len(values)
    means = sorted(sum(rng.choices(values, k=size)) / size for _ in range(iterations))
    tail = (1.0 - level) / 2.0
    low = means[int(math.floor(tail * (iterations - 1)))]
    high = means[int(math.ceil((1.0 - tail) * (iterations - 1)))]
    return (low, high)


def wilson_interval(successes: float, trials: int, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion: ``successes`` out of ``trials``.

    Unlike the normal (Wald) interval or a bootstrap, it never has zero width at 0 or 1: with every
    one of 50 problems solved it gives [0.929, 1], not [1, 1]. ``successes`` may be fractional (a mean
    of outcomes in [0, 1] times ``trials``; see ``outcome_interval``).
    """
    if trials <= 0:
        return (float("nan"), float("nan"))
    if not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    share = successes / trials
    spread = z * z / trials
    centre = (share + spread / 2.0) / (1.0 + spread)
    half = z / (1.0 + spread) * math.sqrt(share * (1.0 - share) / trials + spread / (4.0 * trials))
    return (max(0.0, centre - half), min(1.0, centre + half))


def outcome_interval(values: Sequence[float], seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """A ``level`` interval of the mean of per-problem outcomes in [0, 1] (accuracy, coverage).

    Outcomes that are all 0 or 1 (one graded answer per problem) are a binomial proportion: the Wilson
    interval. Fractional outcomes (the expected accuracy of a k-subset vote, or a mean over seeds) keep
    the percentile bootstrap over problems, which follows their real spread: a problem solved by 60%
    of the subsets varies less than a coin. Where they are all equal the bootstrap has nothing to
    resample and would print a point, so the Wilson interval at their mean with n = the number of
    problems takes its place: a Bernoulli outcome has the largest variance of any outcome in [0, 1]
    with that mean, so this is the conservative choice, and it is the interval the same figure would
    get had each problem been graded once.
    """
    if not values:
        return (float("nan"), float("nan"))
    if any(not 0.0 <= value <= 1.0 for value in values):
        raise ValueError("outcomes must lie in [0, 1]")
    if all(value in (0.0, 1.0) for value in values):
        return wilson_interval(sum(values), len(values), level)
    if len(set(values)) == 1:
        return wilson_interval(values[0] * len(values), len(values), level)
    return bootstrap_ci(values, seed=seed, level=level)


def difference_interval(
    differences: Sequence[float], seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """A ``level`` interval of the mean of paired per-problem differences in [-1, 1] (a strategy's
    accuracy minus the baseline's, problem by problem).

    The percentile bootstrap over problems, except where every difference is the same value d (two
    strategies that agreed on every problem): the bootstrap would print the point [d, d], as if no
    other problem could ever part them. There, the share of problems on which the difference is not d
    is at most the Wilson upper bound for none seen among n, u, and each such problem moves the mean
    by at most the distance from d to the end of [-1, 1] it moves towards:
    [d - u·(1 + d), d + u·(1 - d)].
    """
    if not differences:
        return (float("nan"), float("nan"))
    if len(set(differences)) > 1:
        return bootstrap_ci(differences, seed=seed, level=level)
    same = differences[0]
    _, bound = wilson_interval(0, len(differences), level)
    return (max(-1.0, same - bound * (1.0 + same)), min(1.0, same + bound * (1.0 - same)))


def log_position(costs: Sequence[float], cost: float) -> tuple[int, int, float] | None:
    """Where ``cost`` falls on increasing positive ``costs``: the neighbouring indices and the share of
    the way from the first to the second, in log(cost). ``None`` outside the range (or at cost <= 0)."""
    if not costs or cost <= 0 or not costs[0] <= cost <= costs[-1]:
        return None
    for low in range(len(costs) - 1):
        high = low + 1
        if costs[low] <= cost <= costs[high]:
            if costs[high] == costs[low]:
                return low, high, 0.0
            share = (math.log(cost) - math.log(costs[low])) / (math.log(costs[high]) - math.log(costs[low]))
            return low, high, share
    return 0, 0, 0.0  # a single point, and cost is exactly it


def interpolate_log(points: Sequence[tuple[float | None, float]], tokens: float | None) -> float | None:
    """The value at ``tokens`` on the curve through ``points`` (tokens, value), linear in log(tokens).

    ``None`` outside the measured range, and where the cost is unknown (None: FLOPs of a model of
    unknown size), at ``tokens`` or at the curve's points. A single point is defined only at its own
    token count.
    """
    if tokens is None or any(t is None for t, _ in points):
        return None
    curve = sorted((t, v) for t, v in points if t is not None and t > 0)
    position = log_position([t for t, _ in curve], tokens)
    if position is None:
        return None
    low, high, share = position
    return curve[low][1] + share * (curve[high][1] - curve[low][1])
