"""The OpenAI wire format, decoded and validated in one pass (msgspec): replies, stream events, logprobs.

Decoding was most of a client's CPU (issue 19): pydantic built and checked an object per token, and
the backend then copied each into a ``TokenLogprob`` with a dict of alternatives. Here typed msgspec
structs check the same rules while decoding (no coercion: "12" is not a count; counts are
non-negative; logprobs are finite; unknown fields are skipped unread), and token logprobs become the
parallel arrays of ``TokenLogprobs`` only when the caller asked for them (a reply's logprobs are
otherwise only counted, one per token).

Anything that is not a completion is a ``BackendProtocolError`` naming the first wrong field, never
quoting what the server sent.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from typing import Annotated, Any, TypeVar

import httpx
import msgspec

from ponder.core.errors import BackendProtocolError
from ponder.core.types import TokenLogprobs

Count = Annotated[int, msgspec.Meta(ge=0)]
#: a finite float (NaN fails both bounds, the infinities one)
Logprob = Annotated[float, msgspec.Meta(ge=-1.7976931348623157e308, le=1.7976931348623157e308)]


class _Struct(msgspec.Struct, gc=False):
    """No reference cycles in a reply, so its many small objects skip the garbage collector."""


class TopLogprob(_Struct):
    token: str = ""
    logprob: Logprob = 0.0


class TokenEntry(TopLogprob):
    """One token of chat logprobs, with its alternatives."""

    top_logprobs: tuple[TopLogprob, ...] | None = None  # a tuple of untracked structs: the GC drops it


class Logprobs(_Struct):
    """Chat logprobs (``content``) or the legacy completions shape (``tokens`` and parallel lists)."""

    content: list[TokenEntry] | None = None
    tokens: list[str] | None = None
    token_logprobs: list[Logprob | None] | None = None
    top_logprobs: list[dict[str, Logprob] | None] | None = None


class Message(_Struct):
    content: str | None = None


class Choice(_Struct):
    index: Count = 0
    message: Message | None = None
    text: str | None = None
    finish_reason: str | None = None
    logprobs: Logprobs | None = None
    stop_reason: str | int | None = None  # vLLM: the stop string, or a stop token's id
    matched_stop: str | int | None = None  # SGLang: the same


class PromptDetails(_Struct):
    cached_tokens: Count | None = None


class Usage(_Struct):
    prompt_tokens: Count | None = None
    completion_tokens: Count | None = None
    prompt_tokens_details: PromptDetails | None = None


class Timings(_Struct):
    cache_n: Count | None = None  # llama-server: prompt tokens served from its cache


class Verbose(_Struct):
    stopping_word: str | None = None  # llama-server, asked with "verbose"


class Reply(_Struct):
    choices: Annotated[list[Choice], msgspec.Meta(min_length=1)]
    usage: Usage | None = None
    timings: Timings | None = None
    verbose: Verbose | None = msgspec.field(default=None, name="__verbose")


class Tokens(_Struct):
    tokens: list[Any]  # token ids (or pieces): only their number is read


class Delta(_Struct):
    content: str | None = None


class ChunkChoice(_Struct):
    index: Count = 0
    delta: Delta | None = None
    text: str | None = None  # raw completions
    finish_reason: str | None = None
    logprobs: Logprobs | None = None
    stop_reason: str | int | None = None
    matched_stop: str | int | None = None


class Chunk(_Struct):
    """One server-sent event of a streamed reply."""

    choices: list[ChunkChoice] = msgspec.field(default_factory=list)
    usage: Usage | None = None
    timings: Timings | None = None


_DECODERS: dict[type, msgspec.json.Decoder[Any]] = {
    kind: msgspec.json.Decoder(kind) for kind in (Reply, Chunk, Tokens)
}
Decoded = TypeVar("Decoded", Reply, Chunk, Tokens)
_PROBLEM_PLACE = re.compile(r"\s+- at `\$(?P<where>[^`]*)`$")


def decode(content: bytes, kind: type[Decoded], what: str, where: str) -> Decoded:
    """``content`` decoded as ``kind``; anything else is a ``BackendProtocolError`` on one line."""
    try:
        decoded: Decoded = _DECODERS[kind].decode(content)
        return decoded
    except msgspec.DecodeError as error:
        raise BackendProtocolError(f"backend at {where} sent a malformed {what}: {problem(error)}") from None


def problem(error: msgspec.DecodeError) -> str:
    """Where a reply is wrong and how, as ``choices.0.message: Expected `object`, got `str```."""
    message = " ".join(str(error).split())
    place = _PROBLEM_PLACE.search(message)
    if place is None:
        return message[:200]
    where = re.sub(r"\[(\d+)\]", r".\1", place.group("where")).strip(".") or "reply"
    return f"{where}: {message[: place.start()]}"[:200]


_TOKEN, _LOGPROB = operator.attrgetter("token"), operator.attrgetter("logprob")


def token_logprobs(raw: Logprobs | None) -> TokenLogprobs | None:
    """A choice's token logprobs as arrays (alternatives as parallel tuples), or None without any."""
    if raw is not None and raw.content is None and raw.tokens is not None:  # legacy completions shape
        chosen = raw.token_logprobs or []
        tops = raw.top_logprobs or [None] * len(raw.tokens)
        size = min(len(raw.tokens), len(chosen), len(tops))
        given = [top or {} for top in tops[:size]]
        return TokenLogprobs(
            raw.tokens[:size],
            [value or 0.0 for value in chosen[:size]],
            [tuple(top) for top in given],
            [tuple(top.values()) for top in given],
        )
    if raw is None or raw.content is None:
        return None
    content = raw.content
    alternatives: list[Sequence[TopLogprob]] = [entry.top_logprobs or () for entry in content]  # arrays later
    return TokenLogprobs(list(map(_TOKEN, content)), list(map(_LOGPROB, content)), tops=alternatives)


def logprob_count(raw: Logprobs | None) -> int | None:
    """How many tokens a choice's logprobs cover (one entry per token), without building them."""
    if raw is not None and raw.content is None and raw.tokens is not None:
        tops = len(raw.top_logprobs) if raw.top_logprobs else len(raw.tokens)
        return min(len(raw.tokens), len(raw.token_logprobs or []), tops)
    return None if raw is None or raw.content is None else len(raw.content)


class Stream:
    """A streamed reply (server-sent events), put together as it arrives: when complete, the reply it
    amounts to; when stopped half way, what the server had sent by then."""

    def __init__(self, where: str) -> None:
        self.where = where
        #: the server answered 2xx: it took the request on, so a stop from now on costs something
        self.accepted = False
        self.usage: Usage | None = None
        self.timings: Timings | None = None
        self.choices: dict[int, dict[str, Any]] = {}
        self.chat = False

    async def read(self, response: httpx.Response, limit: int) -> bytes:
        """Read events up to ``[DONE]`` or the end (at most ``limit`` bytes); the reply as JSON bytes."""
        self.accepted = True
        pending, size = b"", 0
        async for data in response.aiter_bytes():
            size += len(data)
            if size > limit:
                raise BackendProtocolError(f"backend at {self.where} sent a reply over {limit} bytes")
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:
                if not self.event(line.strip()):
                    return msgspec.json.encode(self.reply())
        self.event(pending.strip())
        return msgspec.json.encode(self.reply())

    def event(self, line: bytes) -> bool:
        """Take one line of the stream in; False at ``[DONE]``."""
        if not line.startswith(b"data:"):
            return True
        data = line[len(b"data:") :].strip()
        if data == b"[DONE]":
            return False
        chunk = decode(data, Chunk, "stream event", self.where)
        self.usage = chunk.usage or self.usage
        self.timings = chunk.timings or self.timings
        for part in chunk.choices:
            self.add(part)
        return True

    def add(self, part: ChunkChoice) -> None:
        choice = self.choices.setdefault(part.index, {"pieces": [], "content": [], "legacy": {}})
        self.chat = self.chat or part.delta is not None
        piece = part.delta.content if part.delta else part.text
        if piece:
            choice["pieces"].append(piece)
        if part.logprobs is not None:
            choice["content"] += msgspec.to_builtins(part.logprobs.content or [])
            for key in ("tokens", "token_logprobs", "top_logprobs"):  # raw completions' parallel lists
                if getattr(part.logprobs, key) is not None:
                    choice["legacy"].setdefault(key, []).extend(getattr(part.logprobs, key))
        for key in ("finish_reason", "stop_reason", "matched_stop"):
            if getattr(part, key) is not None:
                choice[key] = getattr(part, key)

    def reply(self) -> dict[str, Any]:
        """The non-streamed reply these events amount to."""
        choices = []
        for index, choice in self.choices.items():
            text = "".join(choice["pieces"])
            fields: dict[str, Any] = {
                key: choice[key] for key in ("finish_reason", "stop_reason", "matched_stop") if key in choice
            }
            logprobs = {"content": choice["content"]} if choice["content"] else choice["legacy"] or None
            body = {"message": {"content": text}} if self.chat else {"text": text}
            choices.append({"index": index, **body, **fields, "logprobs": logprobs})
        reply: dict[str, Any] = {"choices": choices}
        if self.usage is not None:
            reply["usage"] = msgspec.to_builtins(self.usage)
        if self.timings is not None:
            reply["timings"] = msgspec.to_builtins(self.timings)
        return reply

    def produced(self) -> tuple[int, bool]:
        """Completion tokens sent so far, and whether that is an exact count: the server's own count once
        it came, else logprob entries (one per token), else text pieces (usually one per token)."""
        if self.usage is not None and self.usage.completion_tokens is not None:
            return self.usage.completion_tokens, True
        total, exact = 0, True
        for choice in self.choices.values():
            counted = len(choice["content"]) or len(choice["legacy"].get("tokens", []))
            exact = exact and (counted > 0 or not choice["pieces"])
            total += counted or len(choice["pieces"])
        return total, exact
