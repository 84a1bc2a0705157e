"""What one request leaves behind in ``ponder serve``: no upstream client open, no model loaded again.

The server owns the pool a request's other models come from (its upstreams, for its lifetime), and
reward models are cached by the process, so a request that names a judge, a debate's second model or an
operator's ``prm:`` preset opens nothing that outlives it. Every httpx client made is recorded; fake
upstreams and the server listen on 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import completion
from test_server import serve

from ponder.server.run import parse_upstream

#: requests whose strategy calls a second upstream: a judge scorer's model, and a debate agent's
MULTI_MODEL = (
    "ponder:best-of-n:n=2,scorer=[judge:model=judge]@main",
    "ponder:debate:agents=2,rounds=2,models=[main,judge]@main",
)


def ask(url: str, model: str) -> httpx.Response:
    payload = {"model": model, "messages": [{"role": "user", "content": "What is 2 + 3 - 4?"}]}
    return httpx.post(url + "/v1/chat/completions", json=payload, timeout=60.0)


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> list[httpx.AsyncClient]:
    """Every ``httpx.AsyncClient`` made from now on (the server's and its upstreams')."""
    made: list[httpx.AsyncClient] = []
    construct = httpx.AsyncClient.__init__

    def recorded(self: httpx.AsyncClient, *args: Any, **kwargs: Any) -> None:
        construct(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(httpx.AsyncClient, "__init__", recorded)
    return made


def still_open(clients: list[httpx.AsyncClient]) -> list[httpx.AsyncClient]:
    return [client for client in clients if not client.is_closed]


def test_multi_model_requests_leave_no_upstream_client_open(
    fake_openai_server: Any, clients: list[httpx.AsyncClient]
) -> None:
    main = fake_openai_server(lambda body, attempt: (200, completion(["So \\boxed{1}."] * body["n"]), {}))
    judge = fake_openai_server(lambda body, attempt: (200, completion(["Yes \\boxed{1}"] * body["n"]), {}))
    with serve(parse_upstream(f"main={main.url}"), parse_upstream(f"judge={judge.url}")) as server:
        for model in MULTI_MODEL:
            response = ask(server.url, model)
            assert response.status_code == 200, response.text
        # what stays open is the server's for its lifetime: pass-through's client and one per upstream
        held = still_open(clients)
        assert len(held) == 3
        for model in MULTI_MODEL * 2:
            assert ask(server.url, model).status_code == 200
        assert still_open(clients) == held
    assert main.bodies and judge.bodies  # both upstreams were asked
    assert still_open(clients) == []


def test_a_prm_preset_loads_its_model_once_across_requests(
    fake_openai_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    transformers = pytest.importorskip("transformers")
    from test_reward_models import model_spec, record_loads, save_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    save_model(tmp_path, transformers.Qwen2ForTokenClassification)
    loads = record_loads(monkeypatch)
    steps = ["first add 2 + 3 = 5\n\nthen subtract 5 - 4 = 1\n\nso the answer is \\boxed{1}"]
    main = fake_openai_server(lambda body, attempt: (200, completion(steps * body["n"]), {}))
    presets = (("graded", f"best-of-n:n=2,scorer=[{model_spec('prm', tmp_path)}]"),)
    with serve(parse_upstream(f"main={main.url}"), presets=presets) as server:
        responses = [ask(server.url, "ponder:graded@main") for _ in range(2)]
    assert [r.status_code for r in responses] == [200, 200], responses[0].text
    assert loads == [f"{tmp_path}/model"]
