"""The OpenAI-compatible backend against a fake server on 127.0.0.1: n, fan-out, usage, retries, errors."""

from __future__ import annotations

import socket
import time

import pytest
from conftest import completion

from ponder.backends import GenRequest, OpenAIBackend
from ponder.backends.openai import server_capabilities
from ponder.core import Message
from ponder.core.errors import BackendError, BackendFailedError, BackendUnavailableError, UnknownNameError

REQUEST = GenRequest(messages=(Message("user", "hi"),), temperature=0.7, max_tokens=32)


def backend_for(url: str, server: str = "generic", **kwargs: object) -> OpenAIBackend:
    return OpenAIBackend(
        model="m",
        base_url=url,
        server=server,
        capabilities=server_capabilities(server),
        backoff=0.01,
        **kwargs,
    )


async def test_n_in_one_request_splits_usage_per_choice(fake_openai_server) -> None:
    fake = fake_openai_server(
        lambda body, _: (
            200,
            completion(["a b", "c d e f"], prompt_tokens=12, completion_tokens=6, cached=4),
            {},
        )
    )
    backend = backend_for(fake.url, "generic", parameters=1e9)  # no tokenizer endpoint to count with
    [generations] = await backend.generate([REQUEST.with_(n=2)])
    await backend.close()
    assert len(fake.bodies) == 1 and fake.bodies[0]["n"] == 2
    assert fake.bodies[0]["logprobs"] is True  # asked for, to count each choice; this server sends none
    assert [g.text for g in generations] == ["a b", "c d e f"]
    assert [g.completion_tokens for g in generations] == [2, 4]  # 6 split by length, summing exactly
    assert all(g.usage.estimated for g in generations)  # and said to be an estimate
    assert sum(g.usage.calls for g in generations) == 1
    assert sum(g.usage.prompt_tokens for g in generations) == 12
    assert sum(g.usage.cached_prompt_tokens for g in generations) == 4
    assert sum(g.usage.flops for g in generations) == 2e9 * (12 - 4 + 6)


async def test_server_ignoring_n_is_fanned_out(fake_openai_server) -> None:
    fake = fake_openai_server(lambda body, attempt: (200, completion([f"answer {attempt}"]), {}))
    backend = backend_for(fake.url, "generic")
    [generations] = await backend.generate([REQUEST.with_(n=3, seed=10)])
    await backend.close()
    assert len(generations) == 3 and len(fake.bodies) == 3
    assert sorted(body["seed"] for body in fake.bodies) == [10, 11, 12]  # distinct seeds per fan-out


async def test_llama_server_profile_fans_out_with_prompt_cache(fake_openai_server) -> None:
    payload = completion(["x y z"], prompt_tokens=20)
    payload["timings"] = {"cache_n": 15}
    del payload["usage"]["completion_tokens"]
    payload["choices"][0]["logprobs"] = {
        "content": [{"token": t, "logprob": -0.5, "top_logprobs": []} for t in ("x", " y", " z")]
    }
    fake = fake_openai_server(lambda body, _: (200, payload, {}))
    backend = backend_for(fake.url, "llama-server")
    [generations] = await backend.generate([REQUEST.with_(n=2, logprobs=0)])
    await backend.close()
    assert all(body["n"] == 1 and body["cache_prompt"] is True for body in fake.bodies)
    assert [g.completion_tokens for g in generations] == [3, 3]  # counted from logprobs, per choice
    assert [g.usage.cached_prompt_tokens for g in generations] == [15, 15]
    assert generations[0].logprobs is not None and generations[0].logprobs[1].token == " y"


async def test_logprobs_and_top_logprobs_are_parsed(fake_openai_server) -> None:
    payload = completion(["Yes"])
    payload["choices"][0]["logprobs"] = {
        "content": [
            {
                "token": "Yes",
                "logprob": -0.1,
                "top_logprobs": [{"token": "Yes", "logprob": -0.1}, {"token": "No", "logprob": -2.4}],
            }
        ]
    }
    fake = fake_openai_server(lambda body, _: (200, payload, {}))
    backend = backend_for(fake.url)
    [[generation]] = await backend.generate([REQUEST.with_(logprobs=2)])
    await backend.close()
    assert fake.bodies[0]["logprobs"] is True and fake.bodies[0]["top_logprobs"] == 2
    assert generation.logprobs is not None and generation.logprobs[0].top == {"Yes": -0.1, "No": -2.4}


async def test_retries_429_and_5xx_then_succeeds(fake_openai_server) -> None:
    def flaky(body, attempt):
        if attempt == 1:
            return 429, {"error": {"message": "slow down"}}, {"Retry-After": "0"}
        if attempt == 2:
            return 503, {"error": {"message": "overloaded"}}, {}
        return 200, completion(["ok"]), {}

    fake = fake_openai_server(flaky)
    backend = backend_for(fake.url)
    [[generation]] = await backend.generate([REQUEST])
    await backend.close()
    assert generation.text == "ok" and len(fake.bodies) == 3


async def test_persistent_5xx_gives_up_after_bounded_retries(fake_openai_server) -> None:
    fake = fake_openai_server(lambda body, _: (500, {"error": {"message": "boom"}}, {}))
    backend = backend_for(fake.url, max_retries=2)
    with pytest.raises(BackendFailedError, match="failed after 3 attempt.*HTTP 500: boom") as error:
        await backend.generate([REQUEST])
    await backend.close()
    assert len(fake.bodies) == 3 and error.value.attempts == 3 and error.value.exit_code == 3
    assert error.value.status == 500 and "unreachable" not in str(error.value)


async def test_client_errors_are_not_retried(fake_openai_server) -> None:
    fake = fake_openai_server(lambda body, _: (400, {"error": {"message": "model not found"}}, {}))
    backend = backend_for(fake.url)
    with pytest.raises(BackendError, match="model not found"):
        await backend.generate([REQUEST])
    await backend.close()
    assert len(fake.bodies) == 1


async def test_unreachable_backend_names_url_and_cause_within_bounded_time() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = backend_for(f"http://127.0.0.1:{port}", max_retries=2)
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError) as error:
        await backend.generate([REQUEST])
    await backend.close()
    assert f"127.0.0.1:{port}/v1/chat/completions" in str(error.value)
    assert "ConnectError" in str(error.value) and "3 attempt" in str(error.value)
    assert time.monotonic() - started < 10


async def test_continuation_uses_declared_mechanism(fake_openai_server) -> None:
    fake = fake_openai_server(lambda body, _: (200, completion([" more"]), {}))
    backend = backend_for(fake.url, "vllm")
    await backend.generate([REQUEST.with_(prefix="Step 1:")])
    await backend.close()
    body = fake.bodies[0]
    assert body["messages"][-1] == {"role": "assistant", "content": "Step 1:"}
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    with pytest.raises(BackendError, match="cannot continue"):
        await backend_for(fake.url, "openai").generate([REQUEST.with_(prefix="Step 1:")])


def test_unknown_server_profile_lists_valid_ones() -> None:
    with pytest.raises(UnknownNameError, match="llama-server"):
        server_capabilities("tgi")


async def test_api_key_is_sent_as_bearer(fake_openai_server) -> None:
    fake = fake_openai_server(lambda body, _: (200, completion(["ok"]), {}))
    backend = backend_for(fake.url, api_key="sekret")
    await backend.generate([REQUEST])
    await backend.close()
    assert fake.headers[0]["authorization"] == "Bearer sekret"


async def test_server_refusing_n_is_fanned_out_from_then_on(fake_openai_server) -> None:
    def handler(body, attempt):
        if body["n"] > 1:
            return 400, {"error": {"message": "n must be <= 2"}}, {}
        return 200, completion(["ok"]), {}

    fake = fake_openai_server(handler)
    backend = backend_for(fake.url, "generic")
    [first] = await backend.generate([REQUEST.with_(n=3)])
    [second] = await backend.generate([REQUEST.with_(n=3)])
    await backend.close()
    assert len(first) == len(second) == 3
    assert [body["n"] for body in fake.bodies] == [3, 1, 1, 1, 1, 1, 1]  # refused once, then fan-out only


async def test_closing_the_clients_while_an_attempt_is_in_flight_ends_it_quietly() -> None:
    """An eval or solve that fails closes its backend while other attempts are still running; their
    ends must not trip over the closed pool (a KeyError used to surface as a traceback at shutdown)."""
    import httpx

    from ponder.backends.openai import _Clients

    clients = _Clients(lambda: httpx.AsyncClient())
    async with clients.lease() as client:
        await clients.close()
    assert client.is_closed
    async with clients.lease() as fresh:  # the pool keeps working after a close
        assert fresh is not client
    await clients.close()
