"""The values that flow through ponder: problems in, candidates and results out.

They are plain dataclasses with no I/O so that every layer (strategies, scorers, eval, server) can
build, copy and serialise them freely.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, overload

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass
class Usage:
    """Compute spent by one or more model calls.

    ``seconds`` is the sum of per-call latencies (compute time, not wall time: concurrent calls add up).
    ``flops`` is estimated as 2 × parameters × (prompt tokens not served from cache + completion tokens).
    ``estimated`` says that some token figure in it is not an exact count (a server that reports one total
    for several choices and no way to count each, or a stopped request whose prompt went unreported), so
    a reader of the figures knows which ones to trust to the token; sums carry it.
    """

    calls: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    flops: float = 0.0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            calls=self.calls + other.calls,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            cached_prompt_tokens=self.cached_prompt_tokens + other.cached_prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            seconds=self.seconds + other.seconds,
            flops=self.flops + other.flops,
            estimated=self.estimated or other.estimated,
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_tokens": self.total_tokens}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Usage:
        return cls(**{f.name: data.get(f.name, f.default) for f in fields(cls)})

    @staticmethod
    def total(usages: list[Usage]) -> Usage:
        out = Usage()
        for usage in usages:
            out = out + usage
        return out


@dataclass
class Problem:
    """A question to answer. ``messages`` overrides ``question`` when a whole conversation is given."""

    question: str
    messages: list[Message] | None = None
    id: str | None = None
    reference: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def as_messages(self, system: str | None = None) -> list[Message]:
        if self.messages:
            return list(self.messages)
        prefix = [Message("system", system)] if system else []
        return [*prefix, Message("user", self.question)]


@dataclass
class TokenLogprob:
    """One generated token with its log-probability and the top alternatives (token -> logprob)."""

    token: str
    logprob: float
    top: dict[str, float] = field(default_factory=dict)


class TokenLogprobs(Sequence[TokenLogprob]):
    """A generation's token logprobs as parallel arrays, not one object per token.

    Building an object and a dict of alternatives per token was most of a logprob-heavy run's client
    CPU (issue 19); arrays cost a fraction, and the confidence metrics read them directly
    (``logprobs``, ``top_values``). Indexing or iterating still gives ``TokenLogprob`` objects, built on
    demand, so code written for ``list[TokenLogprob]`` keeps working; ``+`` joins two (a continued
    trace), and it equals any sequence of the same tokens.
    """

    __slots__ = ("_top_tokens", "_top_values", "_tops", "logprobs", "tokens")

    def __init__(
        self,
        tokens: list[str],
        logprobs: list[float],
        top_tokens: list[tuple[str, ...]] | None = None,
        top_values: list[tuple[float, ...]] | None = None,
        tops: list[Sequence[Any]] | None = None,
    ) -> None:
        """``tops`` may stand for both alternative arrays: each position's alternatives as objects with
        ``token`` and ``logprob`` (a decoded reply's), turned into arrays only when first read."""
        self.tokens = tokens
        self.logprobs = logprobs
        self._top_tokens = top_tokens
        self._top_values = top_values
        self._tops = tops

    @property
    def top_tokens(self) -> list[tuple[str, ...]]:
        """Each position's alternative tokens (an empty tuple where it has none)."""
        if self._top_tokens is None:
            if self._tops is None:
                self._top_tokens = [()] * len(self.tokens)
            else:
                self._top_tokens = [tuple([top.token for top in tops]) for tops in self._tops]
        return self._top_tokens

    @property
    def top_values(self) -> list[tuple[float, ...]]:
        """Each position's alternative logprobs, in the order of ``top_tokens``."""
        if self._top_values is None:
            if self._tops is None:
                self._top_values = [()] * len(self.tokens)
            else:
                self._top_values = [tuple([top.logprob for top in tops]) for tops in self._tops]
        return self._top_values

    @classmethod
    def of(cls, items: Iterable[TokenLogprob]) -> TokenLogprobs:
        """The arrays of any sequence of ``TokenLogprob`` (itself when it already is one)."""
        if isinstance(items, TokenLogprobs):
            return items
        listed = list(items)
        return cls(
            [item.token for item in listed],
            [item.logprob for item in listed],
            [tuple(item.top) for item in listed],
            [tuple(item.top.values()) for item in listed],
        )

    def __len__(self) -> int:
        return len(self.tokens)

    @overload
    def __getitem__(self, index: int) -> TokenLogprob: ...
    @overload
    def __getitem__(self, index: slice) -> TokenLogprobs: ...
    def __getitem__(self, index: int | slice) -> TokenLogprob | TokenLogprobs:
        if isinstance(index, slice):
            return TokenLogprobs(
                self.tokens[index], self.logprobs[index], self.top_tokens[index], self.top_values[index]
            )
        return TokenLogprob(
            self.tokens[index],
            self.logprobs[index],
            dict(zip(self.top_tokens[index], self.top_values[index], strict=True)),
        )

    def __iter__(self) -> Iterator[TokenLogprob]:
        for token, logprob, tokens, values in zip(
            self.tokens, self.logprobs, self.top_tokens, self.top_values, strict=True
        ):
            yield TokenLogprob(token, logprob, dict(zip(tokens, values, strict=True)))

    def __add__(self, other: Sequence[TokenLogprob]) -> TokenLogprobs:
        other = TokenLogprobs.of(other)
        return TokenLogprobs(
            self.tokens + other.tokens,
            self.logprobs + other.logprobs,
            self.top_tokens + other.top_tokens,
            self.top_values + other.top_values,
        )

    def __radd__(self, other: Sequence[TokenLogprob]) -> TokenLogprobs:
        return TokenLogprobs.of(other) + self

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # mutable, like the list it stands for

    def __repr__(self) -> str:
        return f"TokenLogprobs({list(self)!r})"


@dataclass
class Candidate:
    """One sampled solution, with what the task layer extracted from it and what scorers said of it."""

    text: str
    answer: str | None = None
    score: float | None = None
    scores: dict[str, float] = field(default_factory=dict)
    finish_reason: str | None = None
    completion_tokens: int = 0
    logprobs: Sequence[TokenLogprob] | None = None
    usage: Usage = field(default_factory=Usage)
    #: model calls made to score this candidate (judge, verifier), so a subset of candidates can be
    #: billed exactly what generating *and* scoring it cost
    scoring_usage: Usage = field(default_factory=Usage)
    #: a solution still in progress (a step-level search's open node): scorers that judge whole
    #: answers judge it as far as it goes
    partial: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "answer": self.answer,
            "score": self.score,
            "scores": self.scores,
            "finish_reason": self.finish_reason,
            "completion_tokens": self.completion_tokens,
            "usage": self.usage.to_dict(),
            "scoring_usage": self.scoring_usage.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        """Rebuild a stored candidate (logprobs are not stored)."""
        return cls(
            text=data["text"],
            answer=data.get("answer"),
            score=data.get("score"),
            scores=dict(data.get("scores") or {}),
            finish_reason=data.get("finish_reason"),
            completion_tokens=int(data.get("completion_tokens") or 0),
            usage=Usage.from_dict(data.get("usage") or {}),
            scoring_usage=Usage.from_dict(data.get("scoring_usage") or {}),
        )


@dataclass
class Result:
    """What a strategy returns: the answer, every candidate, votes or scores, and all compute spent.

    ``answer`` is None when no candidate produced an extractable answer; ``note`` then says why.
    ``usage`` is the ledger total (generation and scoring); ``usage_by_line`` splits it per ledger line.
    """

    answer: str | None
    strategy: str
    candidates: list[Candidate]
    usage: Usage
    usage_by_line: dict[str, Usage] = field(default_factory=dict)
    votes: dict[str, float] = field(default_factory=dict)
    text: str | None = None
    note: str | None = None
    wall_seconds: float = 0.0
    budget_exhausted: bool = False
    #: structured record of how the answer was reached (a search tree's nodes, a debate's rounds),
    #: JSON-serialisable, for reports and viewers; None for strategies with nothing beyond candidates
    trace: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "text": self.text,
            "strategy": self.strategy,
            "candidates": [c.to_dict() for c in self.candidates],
            "votes": self.votes,
            "usage": self.usage.to_dict(),
            "usage_by_line": {k: v.to_dict() for k, v in self.usage_by_line.items()},
            "note": self.note,
            "wall_seconds": self.wall_seconds,
            "budget_exhausted": self.budget_exhausted,
            "trace": self.trace,
        }
