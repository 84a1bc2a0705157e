"""The default backend: a managed local ``llama-server`` behind the OpenAI-compatible client.

The server is prepared (binary built, model assembled, both with progress bars) and started on first
use, then reused for the life of the process; ``atexit`` and the parent-death signal stop it. All
requests go through :class:`~ponder.backends.openai.OpenAIBackend` with the ``llama-server`` profile,
so the embedded model and a remote server share one client, one retry policy and one usage parser.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from ponder.backends.base import Generation, GenRequest
from ponder.backends.embedded.models import DEFAULT_MODEL, get_model
from ponder.backends.embedded.server import LlamaServer
from ponder.backends.openai import OpenAIBackend, server_capabilities


@dataclass
class EmbeddedBackend(OpenAIBackend):
    """An OpenAI-compatible backend whose server ponder starts itself on 127.0.0.1."""

    quiet: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self._server: LlamaServer | None = None
        self._start_lock = threading.Lock()

    def _start_blocking(self) -> None:
        with self._start_lock:
            if self._server is not None and self._server.running:
                return
            server = LlamaServer.for_model(self.model, quiet=self.quiet)
            server.start()
            self._server = server
            self.base_url = server.base_url + "/v1"

    async def start(self) -> None:
        if self._server is None or not self._server.running:
            await asyncio.to_thread(self._start_blocking)

    async def generate(self, requests: list[GenRequest]) -> list[list[Generation]]:
        await self.start()
        return await super().generate(requests)

    def shutdown(self) -> None:
        """Stop the llama-server child (it is also stopped automatically when the process exits)."""
        if self._server is not None:
            self._server.stop()
            self._server = None


_BACKENDS: dict[str, EmbeddedBackend] = {}


def embedded_backend(name: str | None = None) -> EmbeddedBackend:
    """The process-wide backend for an embedded model (validated now, started on first use)."""
    name = name or DEFAULT_MODEL
    if name not in _BACKENDS:
        model = get_model(name)
        _BACKENDS[name] = EmbeddedBackend(
            model=name,
            parameters=model.parameters,
            capabilities=server_capabilities("llama-server", max_concurrency=model.parallel),
            server="llama-server",
            base_url="http://127.0.0.1:0/v1",  # replaced by the real port when the server starts
            # its slots are known: nothing to learn. One more request waits in the server, so a slot that
            # frees starts the next sample at once instead of after a client round trip (on the fake
            # 8-slot server of benchmarks/slot_occupancy.py: 0.954 of the slots busy, 0.964 with one more)
            max_in_flight=model.parallel + 1,
        )
    return _BACKENDS[name]
