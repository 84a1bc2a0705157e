"""The Python door: ``ponder.solve(question, strategy=...)`` and its async twin ``ponder.asolve``.

Both are thin: they parse the strategy spec, pick a backend (the embedded model unless a base URL is
given or configured), run the strategy in a fresh ledger, and return its Result. Backends made here
are shared by later calls in the same event loop (``ponder.backends.shared``: one HTTP client, not one
per call) and closed with it; the embedded model's llama-server stays up for the life of the process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ponder.backends import Backend, Backends
from ponder.backends.shared import shared_backend
from ponder.context import Context, EventHandler
from ponder.core.ledger import Budget, Ledger
from ponder.core.types import Message, Problem, Result
from ponder.strategies import STRATEGIES, Strategy
from ponder.strategies.policy import shipped_policy
from ponder.tasks.prompts import MATH_SYSTEM_PROMPT

#: the default: ``auto`` (a probe, then what a tuned policy says) for a model a policy ships for
#: (``ponder tune`` made it on held-out measurements), else self-consistency over 8 samples
DEFAULT_STRATEGY = "auto"
FALLBACK_STRATEGY = "self-consistency:n=8"


def default_strategy(model: str) -> str:
    """``auto`` where a tuned policy ships for ``model`` (so the default never spends more to answer
    worse than greedy there), else ``FALLBACK_STRATEGY``."""
    return DEFAULT_STRATEGY if shipped_policy(model) is not None else FALLBACK_STRATEGY


def build_strategy(spec: str, **options: Any) -> Strategy:
    """Build a registered strategy from a spec string; keyword options override the spec's."""
    return STRATEGIES.build(spec, **options)


async def asolve(
    question: str | Problem | list[Message],
    strategy: str | Strategy | None = None,
    *,
    backend: Backend | None = None,
    backends: Backends | None = None,
    model: str | None = None,
    base_url: str | Sequence[str] | None = None,
    api_key: str | None = None,
    server: str | None = None,
    max_in_flight: str | int | None = None,
    seed: int | None = None,
    budget: Budget | str | None = None,
    system_prompt: str | None = MATH_SYSTEM_PROMPT,
    on_event: EventHandler | None = None,
    **options: Any,
) -> Result:
    """Solve one question with a strategy, returning every candidate and the compute spent.

    Without ``strategy``, ``default_strategy`` of the model: ``auto`` with the policy shipped for it,
    else ``self-consistency:n=8``.
    ``options`` override the strategy's options (``n=16``, ``temperature=0.7``); unknown ones raise
    OptionError listing the valid names. ``system_prompt`` is used when the question is a plain string
    (a message list carries its own); the default asks for step-by-step reasoning and a ``\\boxed{}``
    answer. ``base_url`` may list several servers of one model (replicas, load-balanced);
    ``max_in_flight`` is each one's limit on samples in flight (N fixed, ``auto`` adaptive, the default,
    or ``auto:N``; see ``ponder.backends.limits``). ``backends`` supplies the pool for other models the
    strategy names (a server's, which maps names to its upstreams); without it the call builds its own
    and closes it.
    """
    if isinstance(question, Problem):
        problem = question
    elif isinstance(question, list):
        last_user = next((m.content for m in reversed(question) if m.role == "user"), "")
        problem = Problem(question=last_user, messages=question)
    else:
        problem = Problem(question=question)
    chosen = strategy if isinstance(strategy, Strategy) else None
    if isinstance(strategy, str):  # fail fast on a bad spec, before any backend is made
        chosen = build_strategy(strategy, **options)
    if backend is None:  # shared with later calls of this loop: one HTTP client, not one per call
        backend = await shared_backend(
            model=model, base_url=base_url, api_key=api_key, server=server, max_in_flight=max_in_flight
        )
    if chosen is None:
        chosen = build_strategy(default_strategy(backend.model), **options)
    ledger = Ledger(budget if isinstance(budget, Budget) else Budget.parse(budget))
    ctx = Context(
        backend=backend,
        backends=backends or Backends(),
        ledger=ledger,
        seed=seed,
        on_event=on_event,
        system_prompt=system_prompt,
    )
    try:
        await backend.start()
        return await chosen.solve(problem, ctx)
    finally:
        if backends is None:  # the other models this call named are this call's to close
            await ctx.backends.close()


def solve(
    question: str | Problem | list[Message],
    strategy: str | Strategy | None = None,
    *,
    backend: Backend | None = None,
    backends: Backends | None = None,
    model: str | None = None,
    base_url: str | Sequence[str] | None = None,
    api_key: str | None = None,
    server: str | None = None,
    max_in_flight: str | int | None = None,
    seed: int | None = None,
    budget: Budget | str | None = None,
    system_prompt: str | None = MATH_SYSTEM_PROMPT,
    on_event: EventHandler | None = None,
    **options: Any,
) -> Result:
    """Synchronous twin of :func:`asolve`, with the same parameters, usable anywhere.

    Outside an event loop it runs the call with :func:`asyncio.run`. Inside one (a Jupyter notebook, an
    async web handler) ``asyncio.run`` is forbidden, so the call runs on a worker thread with its own
    loop and this thread waits for it: the notebook cell simply returns the result. Async code should
    still ``await ponder.asolve(...)``, which does not block its loop while the strategy runs; and a
    ``backend`` passed in must not be bound to the caller's loop (one built by ponder is not, until
    started).
    """

    def run() -> Result:
        return asyncio.run(
            asolve(
                question,
                strategy,
                backend=backend,
                backends=backends,
                model=model,
                base_url=base_url,
                api_key=api_key,
                server=server,
                max_in_flight=max_in_flight,
                seed=seed,
                budget=budget,
                system_prompt=system_prompt,
                on_event=on_event,
                **options,
            )
        )

    try:
        asyncio.get_running_loop()
    except RuntimeError:  # no loop in this thread: the ordinary script case
        return run()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ponder-solve") as worker:
        return worker.submit(run).result()
