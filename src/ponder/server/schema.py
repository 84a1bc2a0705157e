"""OpenAI chat-completion request and response models, and the ``ponder:`` model-name grammar.

Unknown request fields are ignored (clients send many); fields that are present are validated. The
``ponder`` request object is ponder's own and forbids unknown keys, so a typo is an error.

Model-name grammar (chosen so that it cannot collide with real model ids, which may contain ``/``,
``:`` and even ``@``)::

    model       := "ponder:" spec [ "@" upstream ]  |  upstream
    spec        := a strategy spec, e.g. self-consistency:n=8,temperature=0.8
    upstream    := any model id served by this server (Qwen/Qwen2.5-7B, qwen2.5-coder-1.5b, ...)

The spec ends at its first ``@`` outside brackets; everything after it is the upstream model id,
verbatim. A spec that needs an ``@`` wraps that value in brackets. Without ``@upstream`` the default
(first) upstream is used.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from ponder.server.errors import InvalidRequest

PREFIX = "ponder:"
#: the strategy that names no strategy: ``ponder:none@MODEL`` passes the request through unchanged
NO_STRATEGY = "none"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ContentPart(_Lenient):
    type: str
    text: str | None = None


class ChatMessage(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class StreamOptions(_Lenient):
    include_usage: bool = False


class PonderRequest(BaseModel):
    """The ``ponder`` object of a request (send it through the OpenAI client's ``extra_body``)."""

    model_config = ConfigDict(extra="forbid")

    strategy: str | None = None
    budget: str | None = None
    include: bool = False


class ForwardableRequest(_Lenient):
    """What every routed request shares, and all that pass-through reads of it (its caps and streaming)."""

    #: whether the route generates tokens, so ``max_tokens`` caps (and defaults) apply to it
    generates: ClassVar[bool] = True

    model: str = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    ponder: PonderRequest | None = None


class CompletionRequest(ForwardableRequest):
    """``POST /v1/completions``, passed through: the prompt goes to the upstream as given."""

    prompt: Any


class EmbeddingRequest(ForwardableRequest):
    """``POST /v1/embeddings``, passed through; no tokens are generated, so no token cap applies."""

    generates: ClassVar[bool] = False

    input: Any


class ChatRequest(ForwardableRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    # accepted by the schema, but a strategy cannot honour them: rejected in strategy mode when set
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    functions: list[dict[str, Any]] | None = None
    function_call: Any = None
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, Any] | None = None


#: request fields a strategy cannot honour; sending one of them with a strategy is a 400
UNSUPPORTED_WITH_STRATEGY = (
    "stop",
    "tools",
    "tool_choice",
    "functions",
    "function_call",
    "logprobs",
    "top_logprobs",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
)


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: str | None


class PromptTokensDetails(BaseModel):
    cached_tokens: int = 0


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails = Field(default_factory=PromptTokensDetails)


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    ponder: dict[str, Any] | None = None


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: Delta
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    """A streamed chunk. ``ponder`` carries progress events (an extension standard clients ignore)."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice] = Field(default_factory=list)
    usage: CompletionUsage | None = None
    ponder: dict[str, Any] | None = None


def split_model(model: str) -> tuple[str | None, str | None]:
    """``ponder:SPEC@UPSTREAM`` -> (SPEC, UPSTREAM or None); a plain model id -> (None, model)."""
    if not model.startswith(PREFIX):
        return None, model
    rest, depth = model[len(PREFIX) :], 0
    for index, char in enumerate(rest):
        if char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        elif char == "@" and depth == 0:
            spec, upstream = rest[:index].strip(), rest[index + 1 :].strip()
            break
    else:
        spec, upstream = rest.strip(), ""
    if not spec:
        raise InvalidRequest(f"model {model!r} names no strategy; use ponder:SPEC@MODEL", param="model")
    return spec, upstream or None
