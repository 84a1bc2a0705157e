"""Backends for the other models a run names: a judge's, a critic's, a role's.

A scorer or strategy may run part of its work on another model (``model``, with ``base_url`` for an
OpenAI-compatible server). The run's context holds one pool (``Context.backends``): :class:`Backends`
builds each such backend once with :func:`ponder.backends.make_backend` and starts it on first use, so a
judge, a critic and every role share one rule for "which backend does this name mean". Whoever created
the pool closes it. A server supplies its own pool instead, which only ever means its configured
upstreams (``ponder.server.policy.UpstreamBackends``).
"""

from __future__ import annotations

import asyncio

from ponder.backends.base import Backend


class Backends:
    """Backends for the models that a component names, built once and started on first use.

    Naming no model (or the run's own model without a URL) means the run's backend. ``add`` supplies a
    ready backend for a name (a custom client, or a scripted one in tests) instead of building one.
    """

    def __init__(self) -> None:
        self._built: dict[tuple[str | None, str | None], Backend] = {}
        self._given: list[Backend] = []
        self._lock = asyncio.Lock()

    def add(self, model: str, backend: Backend, base_url: str | None = None) -> None:
        self._built[(model, base_url)] = backend
        self._given.append(backend)

    async def get(self, default: Backend, model: str | None = None, base_url: str | None = None) -> Backend:
        """The backend for ``model`` at ``base_url``; ``default`` (the run's) when neither names another."""
        if base_url is None and model in (None, default.model):
            return default
        async with self._lock:
            key = (model, base_url)
            if key not in self._built:
                from ponder.backends import make_backend  # the package's factory, patchable in tests

                backend = make_backend(model=model, base_url=base_url)
                await backend.start()
                self._built[key] = backend
            return self._built[key]

    async def close(self) -> None:
        """Close the backends this pool built (those given with ``add`` belong to whoever gave them)."""
        built, self._built = self._built, {}
        for backend in built.values():
            if backend not in self._given:
                await backend.close()
