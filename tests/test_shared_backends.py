"""``asolve`` shares one backend (one HTTP client) per configuration and event loop, closed with the loop."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest
from conftest import completion

import ponder
from ponder.backends import OpenAIBackend
from ponder.backends.shared import close_shared_backends, shared_backend

STRATEGY = "greedy:max_tokens=8"


@pytest.fixture
def counted_clients(monkeypatch: pytest.MonkeyPatch) -> list[httpx.AsyncClient]:
    """Every HTTP client an OpenAI backend opens, in order."""
    made: list[httpx.AsyncClient] = []
    original = OpenAIBackend._new_client

    def new_client(self: OpenAIBackend) -> httpx.AsyncClient:
        made.append(original(self))
        return made[-1]

    monkeypatch.setattr(OpenAIBackend, "_new_client", new_client)
    return made


def answering(fake_openai_server):
    return fake_openai_server(lambda body, attempt: (200, completion(["\\boxed{4}"]), {}))


def test_calls_in_one_loop_share_a_client_closed_when_the_loop_ends(
    fake_openai_server, counted_clients
) -> None:
    fake = answering(fake_openai_server)

    async def main() -> OpenAIBackend:
        for _ in range(3):
            result = await ponder.asolve("2+2?", STRATEGY, base_url=fake.url, model="m")
            assert result.answer == "4"
        backend = await shared_backend(model="m", base_url=fake.url)
        assert isinstance(backend, OpenAIBackend)
        return backend

    backend = asyncio.run(main())
    assert len(fake.bodies) == 3 and len(counted_clients) == 1  # three calls, one client
    assert counted_clients[0].is_closed and backend._clients is None  # closed as asyncio.run ended


def test_each_configuration_and_each_loop_has_its_own(fake_openai_server, counted_clients) -> None:
    fake = answering(fake_openai_server)

    async def main() -> None:
        first = await shared_backend(model="m", base_url=fake.url)
        assert await shared_backend(model="m", base_url=fake.url) is first
        assert await shared_backend(model="other", base_url=fake.url) is not first
        assert await shared_backend(model="m", base_url=fake.url, api_key="k") is not first

    asyncio.run(main())
    for _ in range(2):  # a fresh loop per solve(): a fresh client, never one bound to a closed loop
        assert ponder.solve("2+2?", STRATEGY, base_url=fake.url, model="m").answer == "4"
    results: list[str | None] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(ponder.solve("2+2?", STRATEGY, base_url=fake.url, model="m").answer)
        )
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == ["4"] * 3 and len(counted_clients) == 5
    assert all(client.is_closed for client in counted_clients)


async def test_closing_the_shared_backends_makes_the_next_call_build_anew(fake_openai_server) -> None:
    fake = answering(fake_openai_server)
    first = await shared_backend(model="m", base_url=fake.url)
    await close_shared_backends()
    assert await shared_backend(model="m", base_url=fake.url) is not first
    await close_shared_backends()
