"""A deterministic backend for tests: canned replies, real token counts, optional logprobs.

Every strategy and scorer is tested on it. A script is a list of replies served in order (cycling),
or a function of (request, index) that returns a reply, so a test can answer a judge prompt
differently from a solve prompt. Tokens are whitespace-separated words, so counts are predictable.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ponder.backends.base import Backend, Capabilities, Generation, GenRequest
from ponder.core.ledger import estimate_flops
from ponder.core.types import TokenLogprob, Usage


@dataclass(frozen=True)
class Reply:
    """A canned completion. ``top`` gives each token's top alternatives when logprobs are asked;
    ``stop_sequence`` plays a server reporting the stop string that ended it."""

    text: str
    logprob: float = -0.1
    top: dict[str, float] | None = None
    finish_reason: str = "stop"
    stop_sequence: str | None = None
    #: seconds the backend waits before returning it, so tests can order completions and cancel
    delay: float = 0.0


Script = Sequence[str | Reply] | Callable[[GenRequest, int], str | Reply]


def count_tokens(text: str) -> int:
    return len(text.split())


def first_words(text: str, count: int) -> str:
    """``text`` up to the end of its ``count``-th word, keeping its own spacing (a cut-off generation)."""
    ends = [match.end() for match in re.finditer(r"\S+", text)]
    if count >= len(ends):
        return text
    return text[: ends[count - 1]] if count > 0 else ""


@dataclass
class ScriptedBackend(Backend):
    """Serves a script. ``requests`` records every request received, for assertions.

    With ``honours_n`` (the default) a request's call and prompt are billed once, to its first choice;
    without it each sample is billed as its own call, as a fanned-out server request would be.
    """

    model: str = "scripted"
    script: Script = ("The answer is 42.",)
    capabilities: Capabilities = field(default_factory=lambda: Capabilities(continuation="assistant-prefill"))
    requests: list[GenRequest] = field(default_factory=list)
    served: int = 0

    def _next(self, request: GenRequest) -> Reply:
        index = self.served
        self.served += 1
        if callable(self.script):
            reply = self.script(request, index)
        else:
            reply = self.script[index % len(self.script)]
        return reply if isinstance(reply, Reply) else Reply(reply)

    async def generate(self, requests: list[GenRequest]) -> list[list[Generation]]:
        out = []
        for request in requests:
            self.requests.append(request)
            prompt_tokens = sum(count_tokens(m.content) for m in request.messages)
            prompt_tokens += count_tokens(request.prefix or "")
            generations = []
            delay = 0.0
            for i in range(request.n):
                reply = self._next(request)
                delay = max(delay, reply.delay)
                words = reply.text.split()[: request.max_tokens]
                text = first_words(reply.text, len(words))
                finish = "length" if len(words) < count_tokens(reply.text) else reply.finish_reason
                completion = len(words)
                # like a server: one request bills its prompt once; a fanned-out sample bills its own
                alone = i == 0 or not self.capabilities.honours_n
                share_prompt = prompt_tokens if alone else 0
                logprobs = None
                if request.logprobs is not None:
                    logprobs = [TokenLogprob(w, reply.logprob, dict(reply.top or {})) for w in words]
                generations.append(
                    Generation(
                        text=text,
                        finish_reason=finish,
                        completion_tokens=completion,
                        usage=Usage(
                            calls=1 if alone else 0,
                            prompt_tokens=share_prompt,
                            completion_tokens=completion,
                            flops=estimate_flops(self.parameters, share_prompt, 0, completion),
                        ),
                        logprobs=logprobs,
                        stop_sequence=reply.stop_sequence if finish == "stop" else None,
                    )
                )
            if delay > 0:
                await asyncio.sleep(delay)
            out.append(generations)
        return out
