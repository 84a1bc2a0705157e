"""Backends produce tokens: embedded llama.cpp (default), any OpenAI-compatible server, or a script."""

from __future__ import annotations

from collections.abc import Sequence

from ponder.backends.base import Backend, Capabilities, Generation, GenRequest
from ponder.backends.openai import SERVER_PROFILES, OpenAIBackend, backend_from_env, configured_base_url
from ponder.backends.pool import Backends
from ponder.backends.replicas import ReplicaBackend
from ponder.backends.scripted import Reply, ScriptedBackend

__all__ = [
    "SERVER_PROFILES",
    "Backend",
    "Backends",
    "Capabilities",
    "GenRequest",
    "Generation",
    "OpenAIBackend",
    "ReplicaBackend",
    "Reply",
    "ScriptedBackend",
    "backend_from_env",
    "configured_base_url",
    "make_backend",
]


def make_backend(
    model: str | None = None,
    base_url: str | Sequence[str] | None = None,
    api_key: str | None = None,
    server: str | None = None,
    parameters: float | None = None,
    chat_template: str | None = None,
    max_in_flight: str | int | None = None,
) -> Backend:
    """The embedded model named ``model`` (default model if None), or an OpenAI-compatible server.

    A server is used when a base URL is given or configured (PONDER_BASE_URL, then OPENAI_BASE_URL), so
    an environment set up for the OpenAI SDK never silently falls back to building the embedded runtime.
    Several base URLs are replicas of one model, load-balanced (``ponder.backends.replicas``).
    ``max_in_flight`` is each endpoint's limit on samples in flight: N, ``auto`` (the default for a
    server) or ``auto:N``; the embedded model is fixed at its slots and one more unless it is given.
    """
    urls = [base_url] if isinstance(base_url, str) else list(base_url or [])
    settings = (model, api_key, server, parameters, chat_template, max_in_flight)
    if len(urls) > 1:
        return ReplicaBackend.of([backend_from_env(url, *settings) for url in urls])
    if configured_base_url(urls[0] if urls else None) is not None:
        return backend_from_env(urls[0] if urls else None, *settings)
    from ponder.backends.embedded.backend import embedded_backend

    backend = embedded_backend(model)
    if max_in_flight is not None:
        backend.limit_in_flight(max_in_flight)
    return backend
