"""Roles: small components that act on a shared pool of candidates, and their registry.

A role is one step of a multi-call method (Archon, "Archon: An Architecture Search Framework for
Inference-Time Techniques", Saad-Falcon et al., 2024; Mixture-of-Agents, Wang et al., 2024): a
generator adds candidates, a critic writes critiques, a ranker orders and trims, a fuser synthesises
one answer from several, a verifier filters, a test generator writes tests and a test runner runs them.
Every role may run on its own model (``model``, with ``base_url`` for an OpenAI-compatible server),
taken from the run context's pool (``Context.backends``); its calls are billed on the ledger line
``role:NAME@MODEL``, so a pipeline shows what each role and each model cost.

A role's options model is also its pipeline layer schema (``ponder.pipelines``): the ``role`` field
names the role, ``name`` labels the layer and its ledger line.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import Field

from ponder.backends import Backend, Generation, GenRequest
from ponder.core.cost import Cost
from ponder.core.registry import BaseURL, ModelName, Options, Registry
from ponder.core.types import Candidate, Message, Problem
from ponder.messages import ask, fresh_seed

if TYPE_CHECKING:
    from ponder.context import Context


class RoleOptions(Options):
    """Options every role takes. Each role narrows ``role`` to its own name."""

    role: str
    name: str | None = None  # the layer's label and ledger line (default: the role's name)
    model: ModelName = None  # embedded model name, or the server's model with base_url
    base_url: BaseURL = None  # an OpenAI-compatible server for this role
    temperature: float = Field(0.7, ge=0.0, le=5.0)
    max_tokens: int = Field(1024, ge=1)


RoleOptionsT = TypeVar("RoleOptionsT", bound=RoleOptions)


@dataclass
class Pool:
    """What the roles of one run share: the current candidates, critiques of them, and written tests."""

    problem: Problem
    candidates: list[Candidate] = field(default_factory=list)
    #: critique text by ``id(candidate)`` (candidates live for the whole run)
    critiques: dict[int, str] = field(default_factory=dict)
    tests: list[str] = field(default_factory=list)
    #: every candidate any generating role made, in order (the result's candidates)
    generated: list[Candidate] = field(default_factory=list)

    def critique(self, candidate: Candidate) -> str | None:
        return self.critiques.get(id(candidate))


class Role(abc.ABC, Generic[RoleOptionsT]):
    """One step over a pool. ``apply`` changes the pool and returns what it did, for the trace.

    A subclass names its options model (``class Critic(Role[CriticOptions])``), so ``self.options`` has
    that type wherever the role reads it.
    """

    kind: ClassVar[str] = ""

    def __init__(self, options: RoleOptionsT):
        self.options = options

    @property
    def name(self) -> str:
        return self.options.name or self.kind

    async def backend(self, ctx: Context, model: str | None = None) -> Backend:
        return await ctx.backends.get(ctx.backend, model or self.options.model, self.options.base_url)

    async def call(
        self, ctx: Context, requests: list[GenRequest], model: str | None = None
    ) -> list[list[Generation]]:
        return await ask(ctx, self.name, await self.backend(ctx, model), requests)

    def request(self, ctx: Context, messages: tuple[Message, ...], n: int = 1, **changes: Any) -> GenRequest:
        """A request at this role's temperature and token limit, with a fresh seed."""
        request = GenRequest(
            messages=messages,
            n=n,
            temperature=self.options.temperature,
            max_tokens=self.options.max_tokens,
            seed=fresh_seed(ctx),
        )
        return request.with_(**changes) if changes else request

    @abc.abstractmethod
    async def apply(self, pool: Pool, ctx: Context) -> dict[str, Any]:
        """Act on the pool; return a JSON-serialisable summary of this step."""

    @abc.abstractmethod
    def max_cost(self, pool: int) -> Cost:
        """The most upstream work ``apply`` can cause on a pool of at most ``pool`` candidates."""

    def max_pool(self, pool: int) -> int:
        """The most candidates the pool can hold after ``apply``, from at most ``pool`` before (a
        pipeline passes it to the next layer's ``max_cost``). Most roles keep or trim the pool."""
        return pool


ROLES: Registry[Role[Any]] = Registry("role")
