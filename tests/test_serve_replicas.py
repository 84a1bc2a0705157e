"""``ponder serve`` fronting several replicas of one model: ``--upstream NAME=URL`` given once per replica.

Two fake OpenAI-compatible servers on 127.0.0.1 stand for the replicas; a strategy's samples are spread
over both, and an upstream error that names either replica's address reaches the client redacted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest
from conftest import FakeServer, completion
from test_server import serve

from ponder.backends.replicas import ReplicaBackend
from ponder.server.run import parse_upstreams


def answering(body: dict[str, Any], attempt: int) -> tuple[int, dict[str, Any], dict[str, str]]:
    return 200, completion(["\\boxed{4}"] * body.get("n", 1)), {}


def test_a_name_given_twice_is_one_upstream_of_two_replicas() -> None:
    first, second = "http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"
    [upstream] = parse_upstreams([f"m={first}", f"m={second}", f"m={first}"])
    assert isinstance(upstream.backend, ReplicaBackend)
    assert upstream.urls == [first, second] and upstream.url == first  # pass-through: the first
    [single] = parse_upstreams([f"m={first}"])
    assert not isinstance(single.backend, ReplicaBackend) and single.urls == [first]


def test_serve_spreads_a_strategys_samples_over_the_replicas(
    fake_openai_server: Callable[..., FakeServer],
) -> None:
    replicas = [fake_openai_server(answering) for _ in range(2)]
    # llama-server's profile fans n out into single requests, which the replicas share
    [upstream] = parse_upstreams([f"m={fake.url}" for fake in replicas], "llama-server", max_in_flight="1")
    with serve(upstream) as server:
        reply = server.client().chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "2+2?"}],
            extra_body={"ponder": {"strategy": "self-consistency:n=8"}},
        )
    assert "4" in (reply.choices[0].message.content or "")
    asked = [len(fake.bodies) for fake in replicas]
    assert sum(asked) >= 2 and all(count >= 1 for count in asked), asked


def test_an_error_naming_a_replica_is_redacted(fake_openai_server: Callable[..., FakeServer]) -> None:
    healthy = fake_openai_server(answering)
    broken = fake_openai_server(answering)
    address = broken.url.removeprefix("http://").removesuffix("/v1")
    broken.handler = lambda body, attempt: (400, {"error": {"message": f"refused by {address}"}}, {})
    # the broken replica second, so that no pass-through URL names it; four samples reach both replicas
    urls = [f"m={healthy.url}", f"m={broken.url}"]
    [upstream] = parse_upstreams(urls, "llama-server", max_in_flight="1")
    with serve(upstream) as server, pytest.raises(openai.BadRequestError) as caught:
        server.client().chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "2+2?"}],
            extra_body={"ponder": {"strategy": "self-consistency:n=4"}},
        )
    assert broken.bodies, "no sample reached the broken replica"
    assert address not in str(caught.value) and "upstream m" in str(caught.value)


def test_the_redactor_knows_every_replicas_address() -> None:
    from ponder.server import ServerSettings
    from ponder.server.app import create_app

    [upstream] = parse_upstreams(["m=http://127.0.0.1:8001/v1", "m=http://10.1.2.3:8002/v1"])
    redactor = create_app([upstream], ServerSettings()).state.ponder.redactor
    text = redactor.text("connect to 10.1.2.3:8002 refused; http://127.0.0.1:8001/v1 too")
    assert "10.1.2.3" not in text and "127.0.0.1" not in text and text.count("upstream m") == 2
