"""A strategy request, planned: the client's parameters checked and turned into strategy runs.

``temperature``, ``top_p``, ``max_tokens`` (or ``max_completion_tokens``) and ``seed`` become options
of the strategy (400 when it has no such option); ``n`` is that many independent runs (run i uses
``seed + i * SEED_STRIDE``), up to ``max_n``; parameters a strategy cannot honour are a 400. A client
that gives no ``max_tokens`` gets the operator's ``max_tokens`` cap as the strategy's (as in
pass-through), unless the spec sets it or the request's caps on upstream work would not admit it; then
the strategy's own default holds.

A spec from the client passes the serving policy first (``ponder.server.policy``); the operator's
default strategy and presets are trusted. Before anything runs, the most the request can cause upstream
(its strategy's ``max_cost``, scorers and roles included, times ``n``) must fit the operator's caps on
calls and completion tokens, and while it runs every call it makes, on any upstream, is counted against
those caps again, so a wrong bound cannot take it past them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from ponder.api import asolve
from ponder.backends.base import Backend
from ponder.core.ledger import Budget
from ponder.core.registry import Spec, parse_spec
from ponder.core.types import Message, Result, Usage
from ponder.server.errors import InvalidRequest
from ponder.server.lifecycle import ServerSettings
from ponder.server.policy import Policy, RequestCap, UpstreamBackends, request_backends
from ponder.server.schema import (
    UNSUPPORTED_WITH_STRATEGY,
    ChatRequest,
    CompletionUsage,
    ForwardableRequest,
    PromptTokensDetails,
)
from ponder.strategies import STRATEGIES, Strategy

SEED_STRIDE = 1_000_003  # run i of a request with n > 1 uses seed + i * SEED_STRIDE


@dataclass
class Plan:
    """What a strategy request will run: one strategy object per requested choice."""

    spec: str
    strategies: list[Strategy]
    seeds: list[int | None]
    messages: list[Message]
    budget: Budget
    include: bool
    #: what the whole request may cause upstream (calls, completion tokens), enforced while it runs
    max_calls: int | None = None
    max_request_tokens: int | None = None


RequestT = TypeVar("RequestT", bound=ForwardableRequest)


def parse_request(raw: bytes, kind: type[RequestT]) -> tuple[dict[str, Any], RequestT]:
    """The body as JSON and as the route's request model; anything invalid is a 400 naming the field."""
    try:
        body = json.loads(raw)
    except ValueError as error:
        raise InvalidRequest(f"request body is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    try:
        return body, kind.model_validate(body)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        param = ".".join(map(str, first["loc"]))
        raise InvalidRequest(f"{param}: {first['msg']}", param=param) from None


def to_messages(chat: ChatRequest) -> list[Message]:
    """The conversation as ponder messages, faithfully; what a strategy cannot carry is a 400."""
    messages = []
    for index, message in enumerate(chat.messages):
        if message.role in ("tool", "function") or message.tool_calls:
            raise InvalidRequest(
                "tool calls cannot go through a strategy; send the request without one (pass-through)",
                param=f"messages.{index}",
            )
        content = message.content
        if isinstance(content, list):
            for part in content:
                if part.type != "text":
                    raise InvalidRequest(
                        f"content part {part.type!r} cannot go through a strategy (text only)",
                        param=f"messages.{index}.content",
                    )
            content = "".join(part.text or "" for part in content)
        role = "system" if message.role == "developer" else message.role
        messages.append(Message(role, content or ""))
    return messages


def plan_strategy(spec: str, chat: ChatRequest, settings: ServerSettings, policy: Policy) -> Plan:
    if spec != settings.default_strategy:  # the operator's own default is trusted; a client's spec is not
        spec = policy.resolve(spec)
    parsed = parse_spec(spec)
    entry = STRATEGIES.get(parsed.name)  # unknown name: 400 listing the valid ones
    fields = entry.options.model_fields
    for name in UNSUPPORTED_WITH_STRATEGY:
        if getattr(chat, name) not in (None, False, []):
            raise InvalidRequest(f"{name} cannot be honoured by a strategy; omit it", param=name)
    if chat.response_format and chat.response_format.get("type", "text") != "text":
        raise InvalidRequest("response_format cannot be honoured by a strategy", param="response_format")
    overrides: dict[str, Any] = {}
    for param, option in (
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("max_tokens", "max_tokens"),
        ("max_completion_tokens", "max_tokens"),
        ("seed", "seed"),
    ):
        value = getattr(chat, param)
        if value is None:
            continue
        if option == "max_tokens" and value > settings.max_tokens:
            raise InvalidRequest(
                f"{param}={value} is over this server's limit of {settings.max_tokens}", param
            )
        if option not in fields:
            raise InvalidRequest(
                f"strategy {parsed.name!r} has no option {option!r} for {param}", param=param
            )
        overrides[option] = value
    if chat.n > settings.max_n:
        raise InvalidRequest(f"n={chat.n} is over this server's limit of {settings.max_n}", param="n")
    seeds = [None if chat.seed is None else chat.seed + i * SEED_STRIDE for i in range(chat.n)]
    strategies = build_runs(parsed, overrides, seeds)
    if "max_tokens" in fields and "max_tokens" not in overrides and "max_tokens" not in parsed.options:
        # an OpenAI client that gives no max_tokens expects the server's limit, not a strategy's 1024
        widened = build_runs(parsed, {**overrides, "max_tokens": settings.max_tokens}, seeds)
        if over_cost(widened[0], chat.n, settings) is None:
            strategies = widened
    samples = int(getattr(strategies[0].options, "n", 1)) * chat.n
    if samples > settings.max_samples:
        raise InvalidRequest(
            f"{strategies[0].spec} with n={chat.n} draws {samples} samples, over this server's limit "
            f"of {settings.max_samples}",
            param="n",
        )
    check_cost(strategies[0], chat.n, settings)
    depth = strategies[0].depth
    if depth > settings.max_depth:
        raise InvalidRequest(
            f"{strategies[0].spec} runs {depth} rounds ({strategies[0].depth_option}), over this "
            f"server's limit of {settings.max_depth}",
            param="model",
        )
    ponder = chat.ponder
    budget = Budget.parse(ponder.budget if ponder else None)
    cap = settings.max_budget_tokens
    if cap is not None:
        if budget.tokens is not None and budget.tokens > cap:
            raise InvalidRequest(f"budget tokens={budget.tokens} is over the limit of {cap}", param="ponder")
        if budget.tokens is None:
            budget = Budget(**{**budget.__dict__, "tokens": cap})
    return Plan(
        spec=strategies[0].spec,
        strategies=strategies,
        seeds=seeds,
        messages=to_messages(chat),
        budget=budget,
        include=bool(ponder and ponder.include),
        max_calls=settings.max_calls,
        max_request_tokens=settings.max_request_tokens,
    )


def build_runs(parsed: Spec, overrides: dict[str, Any], seeds: list[int | None]) -> list[Strategy]:
    """One strategy per requested choice, each with its own seed (when the client gave one)."""
    return [
        STRATEGIES.build(parsed, **{**overrides, "seed": seed} if seed is not None else overrides)
        for seed in seeds
    ]


def over_cost(strategy: Strategy, runs: int, settings: ServerSettings) -> str | None:
    """Why ``runs`` runs of ``strategy`` could cause more upstream work than the operator allows, or None."""
    cost = strategy.max_cost() * runs
    for spent, cap, what in (
        (cost.calls, settings.max_calls, "upstream calls"),
        (cost.completion_tokens, settings.max_request_tokens, "completion tokens"),
    ):
        if spent > cap:
            limit = f"over this server's limit of {cap}"
            return f"{strategy.spec} with n={runs} may cause up to {spent} {what}, {limit}"
    return None


def check_cost(strategy: Strategy, runs: int, settings: ServerSettings) -> None:
    """Refuse a request whose strategy could cause more upstream work than the operator allows."""
    if reason := over_cost(strategy, runs, settings):
        raise InvalidRequest(reason, param="model", code="over_limit")


async def run_plan(
    plan: Plan,
    upstreams: Mapping[str, Backend],
    upstream: str,
    on_event: Callable[[int, str, dict[str, Any]], None] | None = None,
) -> list[Result]:
    """Run every choice's strategy concurrently on ``upstream``; one failing cancels the others.

    Other models a strategy names resolve among ``upstreams`` only, and every call on any of them counts
    against the request's caps.
    """
    capped = request_backends(upstreams, RequestCap(plan.max_calls, plan.max_request_tokens))
    pool = UpstreamBackends(capped)

    def handler(index: int) -> Callable[[str, dict[str, Any]], None] | None:
        if on_event is None:
            return None
        return lambda kind, data: on_event(index, kind, data)

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(
                    asolve(
                        plan.messages,
                        strategy,
                        backend=capped[upstream],
                        backends=pool,
                        seed=seed,
                        budget=plan.budget,
                        on_event=handler(index),
                    )
                )
                for index, (strategy, seed) in enumerate(zip(plan.strategies, plan.seeds, strict=True))
            ]
    except ExceptionGroup as group_error:
        raise group_error.exceptions[0] from None
    return [task.result() for task in tasks]


def final_text(result: Result) -> tuple[str, str | None]:
    """The assistant message of a run: the selected candidate (else the first), and its finish reason."""
    if result.text is not None:
        chosen = next((c for c in result.candidates if c.text == result.text), None)
        return result.text, chosen.finish_reason if chosen else "stop"
    if result.candidates:
        return result.candidates[0].text, result.candidates[0].finish_reason
    return "", "stop"


def usage_of(results: Iterable[Result]) -> CompletionUsage:
    total = Usage.total([r.usage for r in results])
    return CompletionUsage(
        prompt_tokens=total.prompt_tokens,
        completion_tokens=total.completion_tokens,
        total_tokens=total.total_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=total.cached_prompt_tokens),
    )


def ponder_object(plan: Plan, upstream: str, results: list[Result]) -> dict[str, Any]:
    return {"strategy": plan.spec, "upstream": upstream, "results": [r.to_dict() for r in results]}
