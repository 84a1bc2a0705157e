"""OpenAI-compatible backend: vLLM, SGLang, llama-server, Ollama, OpenAI, anything speaking the API.

One pooled async HTTP client per backend, a concurrency limit per endpoint, bounded retries with
exponential backoff on 429, 5xx and connection errors (honouring ``Retry-After``), and usage read from
the responses. Which server features are used is declared by a *server profile* (``--server vllm``),
never guessed from a model name. When a server returns fewer choices than asked for ``n`` (Ollama
ignores ``n``), the remainder is fanned out as separate requests.

A partial assistant message (``GenRequest.prefix``) is continued the way the profile declares; on a
server that declares no continuation, ``chat_template`` (a Jinja file or a Hugging Face tokenizer, env
``PONDER_CHAT_TEMPLATE``) renders the conversation here and the raw ``/v1/completions`` endpoint
continues it. Which stop string ended a generation is read where the server says it (vLLM
``stop_reason``, SGLang ``matched_stop``, llama-server ``stopping_word`` when asked with ``verbose``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from ponder.backends.base import (
    Backend,
    Capabilities,
    Generation,
    GenRequest,
    split_proportionally,
)
from ponder.backends.chat_template import ChatTemplate
from ponder.core.errors import (
    BackendError,
    BackendRejectedError,
    BackendUnavailableError,
    UnknownNameError,
    UsageError,
)
from ponder.core.ledger import estimate_flops
from ponder.core.types import TokenLogprob, Usage

#: What each kind of server honours. ``generic`` assumes the OpenAI behaviour and falls back at run time
#: (fan-out) when fewer choices come back than were asked for.
SERVER_PROFILES: dict[str, Capabilities] = {
    "generic": Capabilities(),
    "openai": Capabilities(),
    "vllm": Capabilities(continuation="continue-final-message", max_concurrency=64),
    "sglang": Capabilities(continuation="continue-final-message", max_concurrency=64),
    "llama-server": Capabilities(
        honours_n=False, usage_counts_all_choices=False, continuation="assistant-prefill", max_concurrency=8
    ),
    "ollama": Capabilities(honours_n=False, logprobs=False, max_concurrency=4),
}

RETRY_STATUSES = {408, 409, 425, 429, 500, 502, 503, 504}


def server_capabilities(server: str, max_concurrency: int | None = None) -> Capabilities:
    if server not in SERVER_PROFILES:
        raise UnknownNameError("server", server, list(SERVER_PROFILES))
    capabilities = SERVER_PROFILES[server]
    if max_concurrency:
        capabilities = Capabilities(**{**capabilities.__dict__, "max_concurrency": max_concurrency})
    return capabilities


@dataclass
class OpenAIBackend(Backend):
    """Chat completions against ``base_url`` (which ends in ``/v1`` or gets it appended)."""

    base_url: str = "http://127.0.0.1:8000/v1"
    api_key: str | None = None
    server: str = "generic"
    timeout: float = 600.0
    connect_timeout: float = 10.0
    max_retries: int = 3
    backoff: float = 0.5
    extra_body: dict[str, Any] = field(default_factory=dict)
    #: Jinja file or Hugging Face tokenizer whose chat template continues prefixes via /v1/completions
    chat_template: str | None = None

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self._client: httpx.AsyncClient | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fan_out = False  # set once the server has refused n > 1
        self._template: ChatTemplate | None = None

    # -- connection management -------------------------------------------------------------------
    def _ensure_client(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            limit = self.capabilities.max_concurrency
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._client = httpx.AsyncClient(
                headers=headers,
                timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
                limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
                trust_env=False,
            )
            self._semaphore = asyncio.Semaphore(limit)
            self._loop = loop
        assert self._semaphore is not None
        return self._client, self._semaphore

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(RuntimeError):  # its loop is already closed: nothing left to release
                await client.aclose()

    # -- requests -----------------------------------------------------------------------------------
    async def generate(self, requests: list[GenRequest]) -> list[list[Generation]]:
        return list(await asyncio.gather(*(self._generate_one(request) for request in requests)))

    async def _generate_one(self, request: GenRequest) -> list[Generation]:
        if request.prefix and not self.capabilities.continuation and not self.chat_template:
            raise BackendError(
                f"{self.server} backend at {self.base_url} cannot continue a partial assistant message "
                "(give chat_template=, a Jinja file or a Hugging Face tokenizer, to continue it locally)"
            )
        if request.n == 1 or not self.capabilities.honours_n or self._fan_out:
            seeds = [None if request.seed is None else request.seed + i for i in range(request.n)]
            singles = await asyncio.gather(*(self._post(request.with_(n=1, seed=s)) for s in seeds))
            return [generation for batch in singles for generation in batch]
        try:
            generations = await self._post(request)
        except BackendRejectedError:
            # Some servers refuse n > 1 outright (llama-server above its slot count): fan out from now on.
            # If single requests are refused too, that error is the real one and propagates.
            self._fan_out = True
            return await self._generate_one(request)
        missing = request.n - len(generations)
        if missing > 0:  # the server ignored n: fan out the remainder
            seed = None if request.seed is None else request.seed + len(generations)
            generations += await self._generate_one(request.with_(n=missing, seed=seed))
        return generations[: request.n]

    def _raw_prompt(self, request: GenRequest) -> str | None:
        """The locally templated prompt when this request continues a prefix the server cannot."""
        if not request.prefix or self.capabilities.continuation or not self.chat_template:
            return None
        if self._template is None:
            self._template = ChatTemplate.load(self.chat_template)
        return self._template.render(request.messages, request.prefix)

    def _body(self, request: GenRequest, prompt: str | None = None) -> dict[str, Any]:
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        body: dict[str, Any] = {
            "model": self.model,
            "n": request.n,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "max_tokens": request.max_tokens,
        }
        if request.stop:
            body["stop"] = list(request.stop)
        if request.seed is not None:
            body["seed"] = request.seed
        want_logprobs = request.logprobs is not None
        # Counting each choice's tokens needs logprobs when the server's usage covers one choice only.
        if request.n > 1 and not self.capabilities.usage_counts_all_choices:
            want_logprobs = True
        if prompt is not None:  # raw completions: legacy logprobs, an integer count of alternatives
            body["prompt"] = prompt
            if want_logprobs and self.capabilities.logprobs:
                body["logprobs"] = request.logprobs or 1
        else:
            body["messages"] = messages
            if want_logprobs and self.capabilities.logprobs:
                body["logprobs"] = True
                if request.logprobs:
                    body["top_logprobs"] = request.logprobs
            if request.prefix:
                messages.append({"role": "assistant", "content": request.prefix})
                if self.capabilities.continuation == "continue-final-message":
                    body["continue_final_message"] = True
                    body["add_generation_prompt"] = False
        if self.server == "llama-server":
            body["cache_prompt"] = True
            if request.stop:  # llama-server says which stop string matched only in its verbose fields
                body["verbose"] = True
                body["response_fields"] = ["stop_type", "stopping_word"]
        body.update(self.extra_body)
        return body

    async def _post(self, request: GenRequest) -> list[Generation]:
        client, semaphore = self._ensure_client()
        prompt = self._raw_prompt(request)
        url = f"{self.base_url}/{'completions' if prompt is not None else 'chat/completions'}"
        body = self._body(request, prompt)
        cause = ""
        for attempt in range(1, self.max_retries + 2):
            async with semaphore:
                started = time.monotonic()
                try:
                    response = await client.post(url, json=body)
                except (httpx.TransportError, httpx.TimeoutException) as error:
                    cause = f"{type(error).__name__}: {error}".rstrip(": ")
                    retry_after = None
                else:
                    if response.status_code == 200:
                        return self._parse(response.json(), request, time.monotonic() - started)
                    cause = f"HTTP {response.status_code}: {_error_message(response)}"
                    if response.status_code not in RETRY_STATUSES:
                        raise BackendRejectedError(f"backend at {url} rejected the request: {cause}")
                    retry_after = _retry_after(response)
            if attempt > self.max_retries:
                break
            delay = retry_after if retry_after is not None else self.backoff * 2 ** (attempt - 1)
            await asyncio.sleep(min(delay, 30.0) * (1 + 0.1 * random.random()))
        raise BackendUnavailableError(url, cause, self.max_retries + 1)

    def _parse(self, payload: dict[str, Any], request: GenRequest, seconds: float) -> list[Generation]:
        choices = sorted(payload.get("choices") or [], key=lambda c: c.get("index", 0))
        if not choices:
            raise BackendError(f"backend at {self.base_url} returned no choices: {str(payload)[:300]}")
        usage = payload.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        details = usage.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens")
        if cached is None:
            cached = (payload.get("timings") or {}).get("cache_n", 0)
        cached = int(cached or 0)

        chat = "message" in choices[0]
        texts = [((c.get("message") or {}).get("content") if chat else c.get("text")) or "" for c in choices]
        if request.prefix and chat:  # llama-server echoes the continued prefix; the generation follows it
            texts = [t[len(request.prefix) :] if t.startswith(request.prefix) else t for t in texts]
        logprobs = [_parse_logprobs(c.get("logprobs")) for c in choices]
        reported = int(usage.get("completion_tokens") or 0)
        if len(choices) == 1:
            counts = [reported or (len(logprobs[0]) if logprobs[0] is not None else 0)]
        elif all(lp is not None for lp in logprobs):
            counts = [len(lp or []) for lp in logprobs]
        elif self.capabilities.usage_counts_all_choices:
            counts = split_proportionally(reported, [max(len(t), 1) for t in texts])
        else:
            raise BackendError("cannot count tokens per choice: server reports one choice and no logprobs")

        generations = []
        for i, choice in enumerate(choices):
            share_prompt = prompt_tokens if i == 0 else 0
            share_cached = cached if i == 0 else 0
            generation_usage = Usage(
                calls=1 if i == 0 else 0,
                prompt_tokens=share_prompt,
                cached_prompt_tokens=share_cached,
                completion_tokens=counts[i],
                seconds=seconds / len(choices),
                flops=estimate_flops(self.parameters, share_prompt, share_cached, counts[i]),
            )
            keep = logprobs[i] if request.logprobs is not None else None
            generations.append(
                Generation(
                    text=texts[i],
                    finish_reason=choice.get("finish_reason"),
                    completion_tokens=counts[i],
                    usage=generation_usage,
                    logprobs=keep,
                    stop_sequence=_stop_sequence(choice, payload) if request.stop else None,
                )
            )
        return generations


def _stop_sequence(choice: dict[str, Any], payload: dict[str, Any]) -> str | None:
    """The stop string that ended a choice, where the server says (a stop *token* id counts as none)."""
    for key in ("stop_reason", "matched_stop"):  # vLLM, SGLang
        if isinstance(choice.get(key), str):
            return str(choice[key])
    word = (payload.get("__verbose") or {}).get("stopping_word")  # llama-server, asked with "verbose"
    return str(word) if word else None


def _parse_logprobs(raw: dict[str, Any] | None) -> list[TokenLogprob] | None:
    if raw and raw.get("content") is None and raw.get("tokens") is not None:  # legacy completions shape
        tops = raw.get("top_logprobs") or [None] * len(raw["tokens"])
        return [
            TokenLogprob(token=token, logprob=float(logprob or 0.0), top=dict(top or {}))
            for token, logprob, top in zip(raw["tokens"], raw.get("token_logprobs") or [], tops, strict=False)
        ]
    if not raw or raw.get("content") is None:
        return None
    return [
        TokenLogprob(
            token=item.get("token", ""),
            logprob=float(item.get("logprob", 0.0)),
            top={t.get("token", ""): float(t.get("logprob", 0.0)) for t in item.get("top_logprobs") or []},
        )
        for item in raw["content"]
    ]


def _error_message(response: httpx.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        return response.text[:300]
    error = payload.get("error", payload) if isinstance(payload, dict) else payload
    if isinstance(error, dict):
        return str(error.get("message", error))[:300]
    return str(error)[:300]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def backend_from_env(
    base_url: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    server: str | None = None,
    parameters: float | None = None,
    chat_template: str | None = None,
) -> OpenAIBackend:
    """Build an OpenAI-compatible backend from arguments, falling back to PONDER_*/OPENAI_* env vars.

    ``parameters`` (the served model's size, env PONDER_PARAMETERS) enables the FLOPs estimate; a remote
    model's size cannot be known otherwise, so without it FLOPs stay 0 and are shown as unknown.
    ``chat_template`` (env PONDER_CHAT_TEMPLATE) lets a server without continuation continue prefixes.
    """
    base_url = base_url or os.environ.get("PONDER_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
    if not base_url:
        raise UsageError("no base URL: pass --base-url or set PONDER_BASE_URL")
    model = model or os.environ.get("PONDER_MODEL")
    if not model:
        raise UsageError(f"--base-url {base_url} needs --model NAME (or PONDER_MODEL)")
    server = server or os.environ.get("PONDER_SERVER") or "generic"
    chat_template = chat_template or os.environ.get("PONDER_CHAT_TEMPLATE") or None
    if parameters is None and os.environ.get("PONDER_PARAMETERS"):
        try:
            parameters = float(os.environ["PONDER_PARAMETERS"])
        except ValueError:
            raise UsageError(
                f"PONDER_PARAMETERS must be a number, got {os.environ['PONDER_PARAMETERS']!r}"
            ) from None
    return OpenAIBackend(
        model=model,
        parameters=parameters or 0.0,
        base_url=base_url,
        api_key=api_key or os.environ.get("PONDER_API_KEY") or os.environ.get("OPENAI_API_KEY"),
        server=server,
        capabilities=server_capabilities(server),
        chat_template=chat_template,
    )
