"""OpenAI-compatible backend: vLLM, SGLang, llama-server, Ollama, OpenAI, anything speaking the API.

One pooled async HTTP client per backend, a limit on samples in flight per endpoint (adaptive unless
fixed: ``ponder.backends.limits``), bounded retries with exponential backoff on 429, 5xx and
connection errors (honouring ``Retry-After``), and usage read from the responses. Which server
features are used is declared by a *server profile* (``--server vllm``), never guessed from a model
name. When a server returns fewer choices than asked for ``n`` (Ollama
ignores ``n``), the remainder is fanned out as separate requests.

A partial assistant message (``GenRequest.prefix``) is continued the way the profile declares; on a
server that declares no continuation, ``chat_template`` (a Jinja file or a Hugging Face tokenizer, env
``PONDER_CHAT_TEMPLATE``) renders the conversation here and the raw ``/v1/completions`` endpoint
continues it. Which stop string ended a generation is read where the server says it (vLLM
``stop_reason``, SGLang ``matched_stop``, llama-server ``stopping_word`` when asked with ``verbose``).

Billing is exact where the server lets it be. Each choice's tokens are counted from its logprobs (asked
for whenever a request has several choices), else by the server's tokenizer (llama-server and vLLM
``/tokenize``); only when neither is possible is a total split by characters, and the usage says it is
estimated. A request that its caller may stop half way (``STOPPED_WORK`` is set: ``as_completed``) is
streamed, so that when it is cancelled the tokens the server had sent are billed to that caller.

Every failure is one of the backend errors of ``ponder.core.errors``, whatever the server does:
unreachable or timed out (``BackendUnavailableError``), a 5xx or 429 still failing after the retries
(``BackendFailedError``), another 4xx (``BackendRejectedError``), or a reply that is not a completion
(``BackendProtocolError``: bad JSON, wrong shape, a redirect, a body over ``max_response_bytes``). Each
attempt is bounded as a whole by ``timeout``, so a server dripping a byte at a time cannot hold a slot.
Errors name the backend by ``label`` when it is set (a server's upstream name), else by its URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from ponder.backends.base import (
    STOPPED_WORK,
    Backend,
    Capabilities,
    Generation,
    GenRequest,
    split_proportionally,
)
from ponder.backends.chat_template import ChatTemplate
from ponder.backends.limits import SAMPLES_ANSWERED, InFlightLimit, InFlightPolicy
from ponder.backends.wire import Choice, Reply, Stream, Tokens, decode, logprob_count, token_logprobs
from ponder.backends.wire import Usage as ReplyUsage
from ponder.core.errors import (
    BackendError,
    BackendFailedError,
    BackendProtocolError,
    BackendRejectedError,
    BackendUnavailableError,
    UnknownNameError,
    UsageError,
)
from ponder.core.ledger import estimate_flops
from ponder.core.types import Usage

#: What each kind of server honours. ``generic`` assumes the OpenAI behaviour and falls back at run time
#: (fan-out) when fewer choices come back than were asked for.
SERVER_PROFILES: dict[str, Capabilities] = {
    "generic": Capabilities(),
    "openai": Capabilities(),
    "vllm": Capabilities(continuation="continue-final-message", max_concurrency=64, tokenize="/tokenize"),
    "sglang": Capabilities(continuation="continue-final-message", max_concurrency=64),
    "llama-server": Capabilities(
        honours_n=False,
        usage_counts_all_choices=False,
        continuation="assistant-prefill",
        max_concurrency=8,
        tokenize="/tokenize",
    ),
    "ollama": Capabilities(honours_n=False, logprobs=False, max_concurrency=4),
}

RETRY_STATUSES = {408, 409, 425, 429, 500, 502, 503, 504}
#: prompts whose token count is remembered (from finished replies) to bill a stopped request's prompt
REMEMBERED_PROMPTS = 1024
#: characters per token of the prompt estimate a stopped request gets when its prompt was never counted
CHARS_PER_TOKEN = 4
#: how much of an error reply is read for its message (the rest is dropped unread)
ERROR_BODY_BYTES = 64 * 1024


def server_capabilities(server: str, max_concurrency: int | None = None) -> Capabilities:
    if server not in SERVER_PROFILES:
        raise UnknownNameError("server", server, list(SERVER_PROFILES))
    capabilities = SERVER_PROFILES[server]
    if max_concurrency:
        capabilities = Capabilities(**{**capabilities.__dict__, "max_concurrency": max_concurrency})
    return capabilities


class _Clients:
    """The HTTP clients of one event loop: the one new attempts use, and retired ones still finishing.

    httpcore (1.0.9) can strand a connection in its pool when a request is cancelled between being given
    a connection and sending on it (encode/httpcore#1093): neither reused nor closed, it holds a slot for
    good. Mass cancellation during an outage stranded enough of them to fill the pool, so every later
    request waited for a slot and timed out without reaching the upstream (issue 14, item 6). Hence the
    pool is not capped (the backend's in-flight limit bounds concurrency, and it is released on cancellation),
    and a client whose attempt was interrupted is retired: new attempts get a fresh client, and the old
    one is closed, stranded connections with it, when its last attempt ends.
    """

    def __init__(self, make: Callable[[], httpx.AsyncClient]) -> None:
        self._make = make
        self._current: httpx.AsyncClient | None = None
        self._users: dict[httpx.AsyncClient, int] = {}
        self._closing: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[httpx.AsyncClient]:
        """A client for one attempt; retired if the attempt is cancelled, times out or breaks in transport."""
        if self._current is None:
            self._current = self._make()
            self._users[self._current] = 0
        client = self._current
        self._users[client] += 1
        try:
            yield client
        except (asyncio.CancelledError, TimeoutError, httpx.TransportError):
            if client is self._current:
                self._current = None
            raise
        finally:
            users = self._users.get(client)  # None once ``close`` took the client: it is closed already
            if users is not None:
                self._users[client] = users - 1
                if client is not self._current and users == 1:
                    del self._users[client]
                    self._close_soon(client)

    def _close_soon(self, client: httpx.AsyncClient) -> None:
        """Close a retired client in a task of its own, so a cancelled caller cannot cut the close short."""
        task = asyncio.ensure_future(client.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        clients, self._users, self._current = list(self._users), {}, None
        for client in clients:
            await client.aclose()
        await asyncio.gather(*self._closing, return_exceptions=True)


class _Retryable(Exception):
    """A failed attempt that another attempt may fix: a transport error, a time-out, a 5xx or a 429."""

    def __init__(
        self, cause: str, status: int | None = None, timed_out: bool = False, wait: float | None = None
    ):
        super().__init__(cause)
        self.cause, self.status, self.timed_out, self.wait = cause, status, timed_out, wait

    def final(self, where: str, attempts: int) -> BackendError:
        """The error to raise when no attempt is left."""
        if self.status is None:
            return BackendUnavailableError(where, self.cause, attempts, timed_out=self.timed_out)
        return BackendFailedError(where, self.status, self.cause, attempts)


@dataclass
class OpenAIBackend(Backend):
    """Chat completions against ``base_url`` (which ends in ``/v1`` or gets it appended).

    ``timeout`` bounds each attempt from connecting to the last byte of the reply. ``label`` is the name
    errors give this backend (a server passes its upstream's name so that no error shows an upstream URL);
    without it they show the URL. After construction ``label`` reads as the model when none was given,
    as for any backend (traces name backends by it).
    """

    base_url: str = "http://127.0.0.1:8000/v1"
    api_key: str | None = None
    server: str = "generic"
    timeout: float = 600.0
    connect_timeout: float = 10.0
    max_retries: int = 3
    backoff: float = 0.5
    #: longest wait a ``Retry-After`` header can ask between attempts (an overall deadline cuts it shorter)
    max_retry_after: float = 30.0
    #: a bigger 2xx body is refused as malformed (64 MiB by default) instead of being held in memory
    max_response_bytes: int = 64 * 1024 * 1024
    extra_body: dict[str, Any] = field(default_factory=dict)
    #: Jinja file or Hugging Face tokenizer whose chat template continues prefixes via /v1/completions
    chat_template: str | None = None
    label: str | None = None  # type: ignore[assignment]  # a field here; the base class computes it
    #: samples in flight at once: N (fixed), ``auto`` (adaptive from the profile's limit, the default) or
    #: ``auto:N`` (adaptive up to N); see ``ponder.backends.limits``
    max_in_flight: str | int | None = None

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self._name_in_errors = self.label
        self.label = self.label or self.model
        self._clients: _Clients | None = None
        self._limit = InFlightLimit(self.in_flight_policy())
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fan_out = False  # set once the server has refused n > 1
        self._template: ChatTemplate | None = None
        self._prompt_tokens: dict[tuple[object, ...], int] = {}

    def _where(self, url: str) -> str:
        """How errors name this backend: its label when one was given, else the URL asked."""
        return self._name_in_errors or url

    # -- concurrency -------------------------------------------------------------------------------
    def in_flight_policy(self) -> InFlightPolicy:
        """The in-flight limit ``max_in_flight`` asks for, from the server profile's limit."""
        return InFlightPolicy.parse(self.max_in_flight, self.capabilities.max_concurrency)

    def in_flight_limit(self) -> int:
        return self._limit.limit

    def limit_in_flight(self, max_in_flight: str | int | None) -> None:
        """Set ``max_in_flight`` after construction (the process-wide embedded backend): a fresh limit."""
        self.max_in_flight = max_in_flight
        self._limit = InFlightLimit(self.in_flight_policy())

    # -- connection management -------------------------------------------------------------------
    def _ensure_clients(self) -> _Clients:
        loop = asyncio.get_running_loop()
        if self._clients is None or self._loop is not loop:
            self._clients = _Clients(self._new_client)
            self._loop = loop
        return self._clients

    def _new_client(self) -> httpx.AsyncClient:
        """A pooled client with no connection cap of its own (see ``_Clients``) that follows no redirect."""
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        return httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
            follow_redirects=False,
            trust_env=False,
        )

    async def close(self) -> None:
        if self._clients is not None:
            clients, self._clients = self._clients, None
            with contextlib.suppress(RuntimeError):  # its loop is already closed: nothing left to release
                await clients.close()

    # -- requests -----------------------------------------------------------------------------------
    async def generate(self, requests: list[GenRequest]) -> list[list[Generation]]:
        return list(await asyncio.gather(*(self._generate_one(request) for request in requests)))

    async def _generate_one(self, request: GenRequest) -> list[Generation]:
        if request.prefix and not self.capabilities.continuation and not self.chat_template:
            raise BackendError(
                f"{self.server} backend at {self._where(self.base_url)} cannot continue a partial assistant "
                "message (give chat_template=, a Jinja file or a Hugging Face tokenizer, to continue it "
                "locally)"
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

    def _body(self, request: GenRequest, prompt: str | None = None, stream: bool = False) -> dict[str, Any]:
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
        # Logprobs count each choice's tokens (usage gives one total, or one choice's count) and a stopped
        # stream's tokens (chunks may carry several).
        want_logprobs = request.logprobs is not None or request.n > 1 or stream
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
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
        clients = self._ensure_clients()
        prompt = self._raw_prompt(request)
        url = f"{self.base_url}/{'completions' if prompt is not None else 'chat/completions'}"
        stopped_work = STOPPED_WORK.get()
        body = self._body(request, prompt, stream=stopped_work is not None)
        attempt = 1
        while True:
            async with self._limit.slot(request.n) as permit:
                started = time.monotonic()
                stream = None if stopped_work is None else Stream(self._where(url))
                try:
                    content = await self._exchange(clients, url, body, stream)
                except _Retryable as failure:
                    if failure.status == 429:
                        permit.overloaded()
                    else:
                        permit.failed()
                    if attempt > self.max_retries:
                        raise failure.final(self._where(url), attempt) from None
                    delay = self._delay(failure.wait, attempt)
                except asyncio.CancelledError:
                    if stopped_work is not None and stream is not None and stream.accepted:
                        stopped_work(self._stopped_usage(stream, request, time.monotonic() - started))
                    raise
                else:
                    seconds = time.monotonic() - started
                    break
            await asyncio.sleep(delay)
            attempt += 1
        if (answered := SAMPLES_ANSWERED.get()) is not None:
            answered(request.n)
        reply = self._validate(content, url)
        counts, estimated = await self._counts(reply, request, url)
        permit.succeeded(seconds, max(counts, default=0))
        return self._generations(reply, request, seconds, counts, estimated)

    def _delay(self, retry_after: float | None, attempt: int) -> float:
        """Seconds before the next attempt: the server's ``Retry-After`` (capped) or exponential backoff."""
        delay = retry_after if retry_after is not None else self.backoff * 2 ** (attempt - 1)
        return min(delay, self.max_retry_after) * (1 + 0.1 * random.random())

    async def _exchange(
        self, clients: _Clients, url: str, body: dict[str, Any], stream: Stream | None = None
    ) -> bytes:
        """One attempt, bounded as a whole by ``timeout``: a 2xx reply's bytes (a streamed one put together
        in ``stream``), or its failure classified."""
        try:
            async with (
                clients.lease() as client,
                asyncio.timeout(self.timeout),
                client.stream("POST", url, json=body) as response,
            ):
                return await self._answer(response, url, stream)
        except TimeoutError:
            raise _Retryable(f"no complete reply within {self.timeout:g} s", timed_out=True) from None
        except httpx.TimeoutException as error:
            raise _Retryable(_describe(error), timed_out=True) from None
        except httpx.TransportError as error:
            raise _Retryable(_describe(error)) from None

    async def _answer(self, response: httpx.Response, url: str, stream: Stream | None) -> bytes:
        """The body of a 2xx reply (at most ``max_response_bytes``); any other status raises its error."""
        status = response.status_code
        if 200 <= status < 300 and stream is not None:
            return await stream.read(response, self.max_response_bytes)
        if 200 <= status < 300:
            return await _read(response, self.max_response_bytes, self._where(url))
        if 300 <= status < 400:
            raise BackendProtocolError(
                f"backend at {self._where(url)} answered HTTP {status}, a redirect (not followed)"
            )
        cause = f"HTTP {status}: {_error_message(await _read(response, ERROR_BODY_BYTES))}"
        if status in RETRY_STATUSES or status >= 500:
            raise _Retryable(cause, status=status, wait=_retry_after(response))
        if 400 <= status < 500:
            raise BackendRejectedError(f"backend at {self._where(url)} rejected the request: {cause}", status)
        raise BackendProtocolError(f"backend at {self._where(url)} answered {cause}")

    def _validate(self, content: bytes, url: str) -> Reply:
        return decode(content, Reply, "reply", self._where(url))

    async def _counts(self, reply: Reply, request: GenRequest, url: str) -> tuple[list[int], bool]:
        """Each choice's completion tokens, and whether any is an estimate.

        One choice: the server's count. Several: their logprobs, else the server's tokenizer (exact when
        its counts add up to the reported total, or match the one choice a server reports); a reported
        total split by characters only when neither is possible, flagged as estimated.
        """
        choices = sorted(reply.choices, key=lambda c: c.index)
        logprobs = [logprob_count(c.logprobs) for c in choices]  # counted, not built (issue 19)
        reported = (reply.usage.completion_tokens if reply.usage else None) or 0
        if len(choices) == 1:
            return [reported or logprobs[0] or 0], False
        if all(count is not None for count in logprobs):
            return [count or 0 for count in logprobs], False
        texts = _texts(choices, request)
        counted = await self._tokenized(texts)
        if self.capabilities.usage_counts_all_choices:
            if counted is not None and sum(counted) == reported:
                return counted, False
            return split_proportionally(reported, counted or [max(len(t), 1) for t in texts]), True
        if counted is not None:
            return counted, reported not in (0, counted[0])
        raise BackendProtocolError(
            f"backend at {self._where(url)}: cannot count tokens per choice "
            "(the server reports one choice, no logprobs and has no tokenizer endpoint)"
        )

    async def _tokenized(self, texts: list[str]) -> list[int] | None:
        """Each text's token count by the server's tokenizer; None when it has none or it fails (the
        caller then estimates)."""
        if not self.capabilities.tokenize:
            return None
        clients = self._ensure_clients()
        url = self.base_url.removesuffix("/v1") + self.capabilities.tokenize
        counts = []
        for text in texts:
            # llama-server reads "content", vLLM "prompt"; neither adds special tokens a choice lacks
            body = {"model": self.model, "content": text, "prompt": text, "add_special_tokens": False}
            try:
                tokens = decode(await self._exchange(clients, url, body), Tokens, "token count", url)
            except (_Retryable, BackendError):
                return None
            counts.append(len(tokens.tokens))
        return counts

    def _generations(
        self, reply: Reply, request: GenRequest, seconds: float, counts: list[int], estimated: bool
    ) -> list[Generation]:
        """One generation per choice; the call and its prompt are billed to the first."""
        choices = sorted(reply.choices, key=lambda c: c.index)
        usage = reply.usage or ReplyUsage()
        prompt_tokens = usage.prompt_tokens or 0
        cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else None
        if cached is None and reply.timings is not None:
            cached = reply.timings.cache_n
        cached = cached or 0
        self._remember_prompt(request, prompt_tokens)
        texts = _texts(choices, request)
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
                estimated=estimated,
            )
            keep = token_logprobs(choice.logprobs) if request.logprobs is not None else None
            generations.append(
                Generation(
                    text=texts[i],
                    finish_reason=choice.finish_reason,
                    completion_tokens=counts[i],
                    usage=generation_usage,
                    logprobs=keep,
                    stop_sequence=_stop_sequence(choice, reply) if request.stop else None,
                )
            )
        return generations

    def _remember_prompt(self, request: GenRequest, prompt_tokens: int) -> None:
        """Keep a finished reply's prompt count, to bill a stopped request with the same prompt exactly."""
        if prompt_tokens:
            self._prompt_tokens[_prompt_key(request)] = prompt_tokens
            if len(self._prompt_tokens) > REMEMBERED_PROMPTS:
                del self._prompt_tokens[next(iter(self._prompt_tokens))]

    def _stopped_usage(self, stream: Stream, request: GenRequest, seconds: float) -> Usage:
        """What a request cancelled half way had cost: its call, its prompt (as the stream or an earlier
        reply to the same prompt counted it, else estimated), and the tokens streamed before the stop."""
        completion, exact = stream.produced()
        usage = stream.usage
        prompt = usage.prompt_tokens if usage and usage.prompt_tokens else None
        cached = usage.prompt_tokens_details.cached_tokens if usage and usage.prompt_tokens_details else None
        if prompt is None:
            prompt = self._prompt_tokens.get(_prompt_key(request))
        if prompt is None:
            prompt, exact = _prompt_estimate(request), False
        return Usage(
            calls=1,
            prompt_tokens=prompt,
            cached_prompt_tokens=cached or 0,
            completion_tokens=completion,
            seconds=seconds,
            flops=estimate_flops(self.parameters, prompt, cached or 0, completion),
            estimated=not exact,
        )


def _texts(choices: list[Choice], request: GenRequest) -> list[str]:
    """Each choice's text (a continued prefix, which llama-server echoes, taken off)."""
    chat = choices[0].message is not None
    texts = [((c.message.content if c.message else None) if chat else c.text) or "" for c in choices]
    if request.prefix and chat:
        texts = [t[len(request.prefix) :] if t.startswith(request.prefix) else t for t in texts]
    return texts


def _prompt_key(request: GenRequest) -> tuple[object, ...]:
    return (request.messages, request.prefix)


def _prompt_estimate(request: GenRequest) -> int:
    """A rough token count of a prompt no reply has counted (characters / ``CHARS_PER_TOKEN``)."""
    chars = sum(len(message.content) for message in request.messages) + len(request.prefix or "")
    return -(-chars // CHARS_PER_TOKEN)


async def _read(response: httpx.Response, limit: int, refuse_as: str | None = None) -> bytes:
    """At most ``limit`` bytes of the body; beyond it, refused as malformed for ``refuse_as`` or cut."""
    declared = response.headers.get("content-length", "")
    if refuse_as is not None and declared.isdigit() and int(declared) > limit:
        raise BackendProtocolError(f"backend at {refuse_as} sent a reply over {limit} bytes")
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            if refuse_as is not None:
                raise BackendProtocolError(f"backend at {refuse_as} sent a reply over {limit} bytes")
            break
    return b"".join(chunks)[:limit]


def _stop_sequence(choice: Choice, reply: Reply) -> str | None:
    """The stop string that ended a choice, where the server says (a stop *token* id counts as none)."""
    for value in (choice.stop_reason, choice.matched_stop):  # vLLM, SGLang
        if isinstance(value, str):
            return value
    return (reply.verbose.stopping_word or None) if reply.verbose else None


def _error_message(content: bytes) -> str:
    """The message of an error reply, on one line and at most 300 characters."""
    text = content.decode("utf-8", errors="replace")
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        message = text
    else:
        error = payload.get("error", payload) if isinstance(payload, dict) else payload
        message = str(error.get("message", error)) if isinstance(error, dict) else str(error)
    return " ".join(message.split())[:300]


def _describe(error: httpx.TransportError) -> str:
    """A transport error on one line: its kind and, when it says one, its reason."""
    return " ".join(f"{type(error).__name__}: {error}".rstrip(": ").split())[:300]


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds when it is a non-negative number (an HTTP date falls back to backoff)."""
    value = response.headers.get("retry-after")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds < float("inf") else None


def configured_base_url(base_url: str | None = None) -> tuple[str, str] | None:
    """The server URL and where it came from: the argument, then PONDER_BASE_URL, then OPENAI_BASE_URL.

    One precedence for every door (CLI, Python, pools), so a user coming from the OpenAI SDK can keep
    the OPENAI_* variables they already export, and a PONDER_* variable still overrides them for ponder.
    """
    if base_url:
        return base_url, "--base-url"
    for name in ("PONDER_BASE_URL", "OPENAI_BASE_URL"):
        if value := os.environ.get(name):
            return value, name
    return None


def backend_from_env(
    base_url: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    server: str | None = None,
    parameters: float | None = None,
    chat_template: str | None = None,
    max_in_flight: str | int | None = None,
) -> OpenAIBackend:
    """Build an OpenAI-compatible backend from arguments, falling back to PONDER_*, then OPENAI_*, env vars.

    ``parameters`` (the served model's size, env PONDER_PARAMETERS) enables the FLOPs estimate; a remote
    model's size cannot be known otherwise, so without it FLOPs stay 0 and are shown as unknown.
    ``chat_template`` (env PONDER_CHAT_TEMPLATE) lets a server without continuation continue prefixes.
    ``max_in_flight`` (env PONDER_MAX_IN_FLIGHT): N, ``auto`` or ``auto:N`` (``ponder.backends.limits``).
    """
    configured = configured_base_url(base_url)
    if configured is None:
        raise UsageError("no base URL: pass --base-url or set PONDER_BASE_URL (or OPENAI_BASE_URL)")
    base_url, source = configured
    model = model or os.environ.get("PONDER_MODEL")
    if not model:
        raise UsageError(f"the server at {base_url} (from {source}) needs --model NAME (or PONDER_MODEL)")
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
        max_in_flight=max_in_flight or os.environ.get("PONDER_MAX_IN_FLIGHT") or None,
    )
