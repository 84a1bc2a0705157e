"""A process reward model served over HTTP by vLLM's pooling API (``prm-http:URL``).

The same step scoring as ``prm`` (separator family, Qwen2.5-Math-PRM style) with the model on a vLLM
server (``vllm serve Qwen/Qwen2.5-Math-PRM-7B``, pooling runner). One ``POST {URL}/pooling`` per
solution with the chat messages (system, question, the steps each followed by the separator); the
server applies the model's chat template and returns, for the prompt, rows of 2-class probabilities:

- one row per step when the server pools at the step token (vLLM's ``STEP`` pooling, the default it
  declares for Qwen2ForProcessRewardModel in its 0.7-0.10 releases), or
- one row per token (``ALL`` pooling, later releases' ``token_classify``): the rows at the separator
  positions are picked, with the token ids from ``POST {URL}/tokenize`` on the same messages.

A step's score is the row's class-1 probability. Requests are bounded in concurrency and retried with
backoff on connection errors and the same statuses as the OpenAI backend (``RETRY_STATUSES``); after
the retries ``BackendUnavailableError`` names the URL and the cause.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from typing import Annotated, Any, ClassVar

import httpx
from pydantic import Field

from ponder.backends.openai import RETRY_STATUSES
from ponder.core.cost import Cost
from ponder.core.errors import BackendError, BackendUnavailableError
from ponder.core.registry import Limit, OperatorOnly, OptionalText, Options, Text
from ponder.core.types import Problem, Usage
from ponder.scorers.base import SCORERS
from ponder.scorers.reward_models import PRM_SYSTEM_PROMPT
from ponder.scorers.steps import Aggregate, StepScorer


class PRMHTTPOptions(Options):
    positional_field: ClassVar[str | None] = "url"

    url: Annotated[str, OperatorOnly("url")]
    #: the served model name; the server's only model when not given
    model: Annotated[str | None, OperatorOnly("local-model")] = None
    api_key: Annotated[str | None, OperatorOnly("credential")] = None
    aggregate: Aggregate = "min"  # as the ``prm`` separator family (sources in ponder.scorers.steps)
    separator: Text = "<extra_0>"
    system_prompt: OptionalText = PRM_SYSTEM_PROMPT
    softmax: bool = False  # the rows are logits (pooler softmax off): apply it here
    parameters: Limit[float] = Field(0.0, ge=0)  # model size, for the FLOPs estimate (0: not counted)
    concurrency: Limit[int] = Field(8, ge=1)
    timeout: Limit[float] = Field(120.0, gt=0)
    max_retries: Limit[int] = Field(3, ge=0)
    backoff: Limit[float] = Field(0.5, ge=0)


def class_one(row: list[float], softmax: bool) -> float:
    """The probability of the positive class in one pooled row ([bad, good], or a single value)."""
    if softmax:
        top = max(row)
        exps = [math.exp(value - top) for value in row]
        row = [value / sum(exps) for value in exps]
    return float(row[1] if len(row) > 1 else row[0])


@SCORERS.register("prm-http", PRMHTTPOptions)
class PRMHTTPScorer(StepScorer[PRMHTTPOptions]):
    """A process reward model served by vLLM's pooling API scores each step."""

    name = "prm-http"

    def __init__(self, options: PRMHTTPOptions):
        super().__init__(options)
        self._separator_id: int | None = None

    def max_cost(self, candidates: int) -> Cost:
        """Up to two requests per solution (``/pooling``, then ``/tokenize`` when the server pools every
        token) and one to look up the separator; the reward model writes no tokens."""
        return Cost(calls=2 * candidates + 1)

    @property
    def base_url(self) -> str:
        options = self.options
        url = options.url.rstrip("/")
        return url[: -len("/v1")] if url.endswith("/v1") else url  # /pooling is served at the root

    def messages(self, question: str, steps: list[str]) -> list[dict[str, str]]:
        options = self.options
        system = [{"role": "system", "content": options.system_prompt}] if options.system_prompt else []
        answer = "".join(step + options.separator for step in steps)
        return [*system, {"role": "user", "content": question}, {"role": "assistant", "content": answer}]

    async def evaluate(
        self, problem: Problem, steps: list[list[str]]
    ) -> tuple[list[list[float]], list[Usage]]:
        options = self.options
        headers = {"Authorization": f"Bearer {options.api_key}"} if options.api_key else {}
        semaphore = asyncio.Semaphore(options.concurrency)
        async with httpx.AsyncClient(
            headers=headers, timeout=httpx.Timeout(options.timeout, connect=10.0), trust_env=False
        ) as client:

            async def one(solution: list[str]) -> tuple[list[float], Usage]:
                if not solution:
                    return [], Usage()
                async with semaphore:
                    return await self._score_one(client, problem.question, solution)

            results = await asyncio.gather(*(one(solution) for solution in steps))
        return [scores for scores, _ in results], [usage for _, usage in results]

    async def _score_one(
        self, client: httpx.AsyncClient, question: str, steps: list[str]
    ) -> tuple[list[float], Usage]:
        options = self.options
        body: dict[str, Any] = {"messages": self.messages(question, steps), "add_generation_prompt": False}
        if options.model:
            body["model"] = options.model
        started = time.monotonic()
        payload = await self._post(client, "/pooling", body)
        seconds = time.monotonic() - started
        try:
            rows = payload["data"][0]["data"]
        except (KeyError, IndexError, TypeError):
            raise BackendError(
                f"{self.base_url}/pooling returned no pooled data: {str(payload)[:300]}"
            ) from None
        tokens = int((payload.get("usage") or {}).get("prompt_tokens") or 0)
        if len(rows) != len(steps):  # one row per token: pick the rows at the separators
            token_ids = (await self._post(client, "/tokenize", body)).get("tokens") or []
            separator = await self._separator(client)
            if len(token_ids) != len(rows):
                raise BackendError(
                    f"{self.base_url}/pooling returned {len(rows)} rows for {len(steps)} steps and "
                    f"{len(token_ids)} tokens: neither one row per step nor one per token"
                )
            rows = [row for row, token in zip(rows, token_ids, strict=True) if token == separator]
            tokens = tokens or len(token_ids)
        usage = Usage(calls=1, prompt_tokens=tokens, seconds=seconds, flops=2.0 * options.parameters * tokens)
        return [class_one(row, options.softmax) for row in rows[: len(steps)]], usage

    async def _separator(self, client: httpx.AsyncClient) -> int:
        if self._separator_id is None:
            options = self.options
            body: dict[str, Any] = {"prompt": options.separator, "add_special_tokens": False}
            if options.model:
                body["model"] = options.model
            ids = (await self._post(client, "/tokenize", body)).get("tokens") or []
            if len(ids) != 1:
                raise BackendError(
                    f"the separator {options.separator!r} is not one token on this server: {ids}"
                )
            self._separator_id = int(ids[0])
        return self._separator_id

    async def _post(self, client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST with bounded retries (connection errors, ``RETRY_STATUSES``), as the OpenAI backend."""
        options = self.options
        url = self.base_url + path
        cause = ""
        for attempt in range(1, options.max_retries + 2):
            retry_after: float | None = None
            try:
                response = await client.post(url, json=body)
            except (httpx.TransportError, httpx.TimeoutException) as error:
                cause = f"{type(error).__name__}: {error}".rstrip(": ")
            else:
                if response.status_code == 200:
                    payload: dict[str, Any] = response.json()
                    return payload
                cause = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code not in RETRY_STATUSES:
                    raise BackendError(f"reward model at {url} rejected the request: {cause}")
                try:
                    retry_after = float(response.headers["retry-after"])
                except (KeyError, ValueError):
                    retry_after = None
            if attempt > options.max_retries:
                break
            delay = retry_after if retry_after is not None else options.backoff * 2 ** (attempt - 1)
            await asyncio.sleep(min(delay, 30.0) * (1 + 0.1 * random.random()))
        raise BackendUnavailableError(url, cause, options.max_retries + 1)
