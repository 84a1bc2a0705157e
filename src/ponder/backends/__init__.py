"""Backends produce tokens: embedded llama.cpp (default), any OpenAI-compatible server, or a script."""

from __future__ import annotations

from ponder.backends.base import Backend, Capabilities, Generation, GenRequest
from ponder.backends.openai import SERVER_PROFILES, OpenAIBackend, backend_from_env, configured_base_url
from ponder.backends.pool import Backends
from ponder.backends.scripted import Reply, ScriptedBackend

__all__ = [
    "SERVER_PROFILES",
    "Backend",
    "Backends",
    "Capabilities",
    "GenRequest",
    "Generation",
    "OpenAIBackend",
    "Reply",
    "ScriptedBackend",
    "backend_from_env",
    "configured_base_url",
    "make_backend",
]


def make_backend(
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    server: str | None = None,
    parameters: float | None = None,
    chat_template: str | None = None,
) -> Backend:
    """The embedded model named ``model`` (default model if None), or an OpenAI-compatible server.

    A server is used when a base URL is given or configured (PONDER_BASE_URL, then OPENAI_BASE_URL), so
    an environment set up for the OpenAI SDK never silently falls back to building the embedded runtime.
    """
    if configured_base_url(base_url) is not None:
        return backend_from_env(base_url, model, api_key, server, parameters, chat_template)
    from ponder.backends.embedded.backend import embedded_backend

    return embedded_backend(model)
