"""Helpers that roles and strategies share to build messages, seed requests and bill role calls.

They sit below both (``ponder.roles`` and ``ponder.strategies`` import them, never each other for them):
a debate agent and a critic role build their prompts and ledger lines the same way.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

from ponder.backends import Backend, Generation, GenRequest
from ponder.core.types import Candidate, Message

if TYPE_CHECKING:
    from ponder.context import Context


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
