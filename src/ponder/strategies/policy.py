"""A tuned policy: which configuration to run on a question, given cheap probes and a budget.

Snell et al. (2024) choose the best configuration per difficulty bin and per budget, and estimate the
bin without the reference from a cheap signal. A policy file (written by ``ponder tune``, read by the
``auto`` strategy) holds, for each budget, a probe (a greedy answer and a few samples), cut points on
one probe feature that split questions into predicted-difficulty bins, and the configuration (a
strategy spec) each bin runs. The probe's samples are drawn with the settings the configurations
sample with, so a chosen sampling configuration reuses them.

Budgets count *generations*: the greedy answer, every sample and every verifier call count one each,
whatever the server batches, so a budget means the same on every backend.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ponder.core.errors import UsageError
from ponder.core.types import Candidate
from ponder.tasks.equivalence import group_equivalent

FORMAT = "ponder-policy/1"
#: probe features: the share of probe samples that agree with the greedy answer, the share of the
#: largest answer class among greedy answer and samples, and a scorer's mean score of the samples: a
#: verifier's (``judge``) or the tokens' own confidence (``confidence``, from logprobs, no calls)
Feature = Literal["agreement", "consensus", "verifier"]
SHIPPED = Path(__file__).resolve().parent.parent / "policies"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Probe(_Model):
    """What ``auto`` runs before it chooses: a greedy answer and ``samples`` samples (and a verifier's
    scores when the feature is ``verifier``)."""

    samples: int = Field(ge=0, le=64)
    feature: Feature
    scorer: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Probe:
        if self.feature == "verifier" and not self.scorer:
            raise ValueError("a verifier probe names its scorer")
        if self.feature == "agreement" and self.samples < 1:
            raise ValueError("an agreement probe needs at least one sample")
        return self

    @property
    def generations(self) -> int:
        """Greedy, the samples and, for a verifier that makes calls, one per sample."""
        scoring = scoring_calls(self.scorer) if self.feature == "verifier" else 0
        return 1 + self.samples * (1 + scoring)


def scoring_calls(scorer: str | None) -> int:
    """Model calls a scorer makes per candidate: 1 for a judge, 0 for token confidence (a budget in
    generations counts the first, not the second)."""
    from ponder.scorers import SCORERS  # scorers sit beside strategies; imported where used

    return 0 if scorer is None else min(SCORERS.build(scorer).max_cost(1).calls, 1)


class Plan(_Model):
    """The policy at one budget: an optional probe, cut points on its feature, a spec per bin.

    Bin i holds the questions whose feature has i cut points at or below it, so bin 0 has the lowest
    feature (the least agreement: the hardest questions) and the last bin the easiest.
    """

    budget: int = Field(ge=1)
    probe: Probe | None = None
    #: the options the probe's samples are drawn with (those of the choices that reuse them)
    sampling: dict[str, float | int] = Field(default_factory=dict)
    cuts: list[float] = Field(default_factory=list)
    choices: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _shape(self) -> Plan:
        if len(self.choices) != len(self.cuts) + 1:
            raise ValueError(f"{len(self.cuts)} cut points need {len(self.cuts) + 1} choices")
        if self.cuts != sorted(self.cuts):
            raise ValueError("cut points must ascend")
        if self.probe is None and self.cuts:
            raise ValueError("cut points need a probe")
        return self

    def bin(self, feature: float) -> int:
        return sum(1 for cut in self.cuts if feature >= cut)


class Policy(_Model):
    """A whole policy file: the plans by budget, and the greedy spec a probe decodes with."""

    format: Literal["ponder-policy/1"] = FORMAT
    model: str = ""
    greedy: str = "greedy"
    plans: list[Plan] = Field(min_length=1)
    #: where it came from and what cross-validation expects of it (written by ``ponder tune``)
    tuning: dict[str, Any] = Field(default_factory=dict)

    @field_validator("plans")
    @classmethod
    def _ascending(cls, plans: list[Plan]) -> list[Plan]:
        budgets = [plan.budget for plan in plans]
        if budgets != sorted(set(budgets)):
            raise ValueError("plans must have distinct, ascending budgets")
        return plans

    def plan(self, budget: int) -> Plan:
        """The plan for the largest tuned budget that fits ``budget``."""
        fitting = [plan for plan in self.plans if plan.budget <= budget]
        if not fitting:
            raise UsageError(
                f"auto: budget {budget} is below the policy's smallest tuned budget ({self.plans[0].budget})"
            )
        return fitting[-1]

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n")


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file, with an error that says what is wrong."""
    source = Path(path)
    try:
        data = json.loads(source.read_text())
    except OSError as error:
        raise UsageError(f"cannot read policy {source}: {error.strerror or error}") from None
    except json.JSONDecodeError as error:
        raise UsageError(f"policy {source} is not JSON: {error}") from None
    try:
        return Policy.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise UsageError(f"policy {source} is not a valid {FORMAT} file: {problems}") from None


def shipped_policy(model: str) -> Policy | None:
    """The policy that ships with ponder for an embedded model, if one does."""
    path = SHIPPED / f"{model}.json"
    return load_policy(path) if path.is_file() else None


def shipped_policies() -> list[Policy]:
    """Every policy that ships with ponder (one per embedded model it was tuned for)."""
    return [load_policy(path) for path in sorted(SHIPPED.glob("*.json"))]


def probe_feature(probe: Probe, greedy: Candidate | None, samples: Sequence[Candidate]) -> float:
    """The probe's difficulty signal: higher means an easier question (more agreement, higher scores).

    An answerless candidate agrees with nothing, so cut-off or unparsable samples read as hard.
    """
    if probe.feature == "verifier":
        scores = [c.scores.get(probe.scorer or "", 0.0) for c in samples]
        return sum(scores) / len(scores) if scores else 0.0
    if probe.feature == "agreement":
        if greedy is None or greedy.answer is None or not samples:
            return 0.0
        classes = group_equivalent([greedy.answer, *(c.answer for c in samples)])
        anchored = next((members for members in classes if 0 in members), [0])
        return (len(anchored) - 1) / len(samples)
    answers = ([greedy] if greedy is not None else []) + list(samples)
    classes = group_equivalent([c.answer for c in answers])
    return max((len(members) for members in classes), default=0) / len(answers) if answers else 0.0
