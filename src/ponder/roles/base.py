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
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field, PlainSerializer

from ponder.backends import Backend, Generation, GenRequest
from ponder.core.cost import Cost
from ponder.core.registry import BaseURL, ModelName, Options, Registry
from ponder.core.types import Candidate, Message, Problem

if TYPE_CHECKING:
    from ponder.strategies.base import Context

#: a shown solution keeps its last characters (where the answer is), as the judge's review does
MAX_SHOWN_CHARS = 4000


def split_names(value: Any) -> Any:
    """A list from a spec string: split on ``;`` when there is one (personas hold commas), else ``,``."""
    if not isinstance(value, str):
        return value
    separator = ";" if ";" in value else ","
    return [item.strip() for item in value.split(separator) if item.strip()]


#: a list of names that a spec string gives as ``models=[a,b]`` or ``personas=[a careful checker;a poet]``;
#: it prints back as ``[a;b]``, so a strategy's canonical spec parses again
Names = Annotated[
    list[str], BeforeValidator(split_names), PlainSerializer(lambda names: "[" + ";".join(names) + "]")
]


class RoleOptions(Options):
    """Options every role takes. Each role narrows ``role`` to its own name."""

    role: str
    name: str | None = None  # the layer's label and ledger line (default: the role's name)
    model: ModelName = None  # embedded model name, or the server's model with base_url
    base_url: BaseURL = None  # an OpenAI-compatible server for this role
    temperature: float = Field(0.7, ge=0.0, le=5.0)
    max_tokens: int = Field(1024, ge=1)


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


async def ask(
    ctx: Context, name: str, backend: Backend, requests: list[GenRequest]
) -> list[list[Generation]]:
    """Send a role's requests to its backend, billed on ``role:NAME@MODEL``."""
    return await ctx.generate(requests, line=f"role:{name}@{backend.label}", backend=backend)


def with_system(messages: list[Message], extra: str | None) -> tuple[Message, ...]:
    """The messages with ``extra`` added to the system prompt (or as one, when there is none)."""
    if not extra:
        return tuple(messages)
    if messages and messages[0].role == "system":
        return (Message("system", f"{messages[0].content}\n\n{extra}"), *messages[1:])
    return (Message("system", extra), *messages)


def with_user_note(messages: list[Message], note: str) -> tuple[Message, ...]:
    """The messages with ``note`` added as a paragraph to the last user message."""
    last = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
    if last is None:
        return (*messages, Message("user", note))
    added = Message("user", f"{messages[last].content}\n\n{note}")
    return (*messages[:last], added, *messages[last + 1 :])


def persona_line(persona: str | None) -> str | None:
    return f"You are {persona}." if persona else None


def join(*parts: str | None) -> str | None:
    """The non-empty parts, as paragraphs; None when there is none."""
    text = "\n\n".join(part for part in parts if part)
    return text or None


def fresh_seed(ctx: Context) -> int | None:
    """A new seed from the run's random stream (None when the run is unseeded), so that requests with
    the same prompt still differ and a seeded run repeats."""
    return None if ctx.seed is None else ctx.rng.randrange(2**31)


def seeds(ctx: Context, seed: int | None = None) -> Callable[[], int | None]:
    """Seeds for one run's requests: a stream from a strategy's ``seed`` option when set, else
    ``fresh_seed``."""
    if seed is None:
        return lambda: fresh_seed(ctx)
    stream = random.Random(seed)
    return lambda: stream.randrange(2**31)


def shown(text: str) -> str:
    return text[-MAX_SHOWN_CHARS:]


def numbered_solutions(candidates: list[Candidate], critiques: list[str | None] | None = None) -> str:
    """Candidates as ``[1] text`` blocks, each followed by its critique when one is given."""
    blocks = []
    for index, candidate in enumerate(candidates, start=1):
        block = f"[{index}]\n{shown(candidate.text)}"
        critique = critiques[index - 1] if critiques else None
        if critique:
            block += f"\n\nCritique of [{index}]:\n{shown(critique)}"
        blocks.append(block)
    return "\n\n".join(blocks)


class Role(abc.ABC):
    """One step over a pool. ``apply`` changes the pool and returns what it did, for the trace."""

    kind: ClassVar[str] = ""

    def __init__(self, options: RoleOptions):
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


ROLES: Registry[Role] = Registry("role")
