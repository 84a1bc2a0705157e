"""The backend contract: requests in, generations (with usage) out.

A backend decides how to batch (``n`` in one request when the server honours it, concurrent requests
otherwise), retries and times out, and reports usage per generation so that summing the generations
of a request gives the request's usage. Strategies never see HTTP.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, Self

from ponder.core.types import Message, TokenLogprob, Usage

#: Who pays for stopped work. Whoever may cancel requests in flight (``Context.as_completed``) sets it in
#: the task it will cancel; a backend that can tell what a cancelled request had cost (the OpenAI backend
#: streams such requests to know) reports that usage to it before the cancellation propagates. Unset, a
#: request is never stopped half way by its caller, so nothing needs streaming. A context variable keeps
#: strategies and backend wrappers unaware of it.
STOPPED_WORK: ContextVar[Callable[[Usage], None] | None] = ContextVar("stopped_work", default=None)


@dataclass(frozen=True)
class GenRequest:
    """One prompt to sample ``n`` completions from.

    ``prefix`` is a partial assistant message to continue (the completion does not repeat it).
    ``logprobs`` asks for per-token log-probabilities with that many top alternatives (0: chosen only).
    """

    messages: tuple[Message, ...]
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 1024
    stop: tuple[str, ...] = ()
    logprobs: int | None = None
    seed: int | None = None
    prefix: str | None = None

    def with_(self, **changes: Any) -> GenRequest:
        return replace(self, **changes)


@dataclass
class Generation:
    """One completion. ``usage`` is this completion's share of its request's usage.

    ``stop_sequence`` is the stop string that ended it (not part of ``text``), when the server says so;
    None when it ended on end-of-sequence or the token limit, or the server does not say.
    """

    text: str
    finish_reason: str | None
    completion_tokens: int
    usage: Usage
    logprobs: Sequence[TokenLogprob] | None = None
    stop_sequence: str | None = None


@dataclass(frozen=True)
class Capabilities:
    """What a backend honours, declared (never sniffed from a model name).

    ``continuation`` is how a partial assistant message is continued: ``"continue-final-message"``
    (vLLM, SGLang), ``"assistant-prefill"`` (llama-server continues a trailing assistant message),
    or ``None`` when the backend cannot continue. ``tokenize`` is the server's tokenizing endpoint
    (a path below its root, e.g. ``/tokenize``), which counts each choice's tokens when the reply has
    no logprobs to count them by; None when it has none.
    """

    honours_n: bool = True
    usage_counts_all_choices: bool = True
    logprobs: bool = True
    continuation: str | None = None
    max_concurrency: int = 8
    tokenize: str | None = None


@dataclass
class Backend(abc.ABC):
    """Produces tokens. ``parameters`` feeds the FLOPs estimate (0 when unknown)."""

    model: str
    parameters: float = 0.0
    capabilities: Capabilities = field(default_factory=Capabilities)

    @abc.abstractmethod
    async def generate(self, requests: list[GenRequest]) -> list[list[Generation]]:
        """Return, for each request, its ``n`` generations in order."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Prepare resources (start a server, open a pool). Idempotent."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources. Idempotent."""

    def in_flight_limit(self) -> int:
        """Samples this backend takes in flight at once now (an adaptive limit changes as it learns):
        how much work a scheduler keeps queued to keep it busy."""
        return self.capabilities.max_concurrency

    @property
    def label(self) -> str:
        return self.model


@dataclass
class WrappedBackend(Backend):
    """A backend that adds something around another one's calls (metering, a cap): it reports the inner
    backend's model, size and capabilities, and starts it. Closing it leaves the inner one open (whoever
    made the inner backend closes it); a wrapper that owns its inner backend overrides ``close``."""

    inner: Backend | None = None

    @classmethod
    def around(cls, inner: Backend, **fields: Any) -> Self:
        return cls(
            model=inner.model,
            parameters=inner.parameters,
            capabilities=inner.capabilities,
            inner=inner,
            **fields,
        )

    @property
    def wrapped(self) -> Backend:
        assert self.inner is not None, "a wrapped backend is made with around()"
        return self.inner

    async def generate(self, requests: list[GenRequest]) -> list[list[Generation]]:
        return await self.wrapped.generate(requests)

    async def start(self) -> None:
        await self.wrapped.start()

    def in_flight_limit(self) -> int:
        return self.wrapped.in_flight_limit()


def split_evenly(total: int, parts: int) -> list[int]:
    """Split an integer total into ``parts`` integers that sum to it exactly."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def split_proportionally(total: int, weights: list[int]) -> list[int]:
    """Split an integer total by weights (largest-remainder), summing exactly to ``total``."""
    weight_sum = sum(weights)
    if weight_sum <= 0:
        return split_evenly(total, len(weights))
    raw = [total * w / weight_sum for w in weights]
    shares = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: raw[i] - shares[i], reverse=True)
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    return shares
