"""``ponder serve`` as a drop-in OpenAI base URL: completions, embeddings, model lookup, ``ponder:none``,
the strategy's ``max_tokens`` default, and reasoning models (``reasoning_content``, ``<think>``).

The upstream is a small Starlette app on 127.0.0.1 that records each request's path and body, so a test
can see what reached it; the server is driven with the official openai client. Every wait is bounded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from test_server import running, serve, upstream_for

from ponder.core.errors import UsageError
from ponder.server import ServerSettings
from ponder.server.plan import plan_strategy
from ponder.server.policy import Policy
from ponder.server.run import parse_upstreams
from ponder.server.schema import ChatRequest
from ponder.tasks.extract import extract_answer, extract_code, final_part

USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


class Upstream:
    """A fake OpenAI server: chat answers ``message`` (a dict), completions and embeddings fixed shapes."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.message: dict[str, Any] = {"role": "assistant", "content": "ok"}
        self.finish_reason = "stop"
        self.status = 200

    async def handle(self, request: Request) -> Response:
        body = await request.json()
        self.seen.append((request.url.path, body))
        if self.status != 200:
            return JSONResponse({"error": {"message": f"broken at {request.url}"}}, status_code=self.status)
        if request.url.path.endswith("/embeddings"):
            data = [{"object": "embedding", "index": 0, "embedding": [0.5, -0.5]}]
            return JSONResponse({"object": "list", "model": body["model"], "data": data, "usage": USAGE})
        if request.url.path.endswith("/completions") and "prompt" in body:
            choice = {"index": 0, "text": " world", "finish_reason": "stop", "logprobs": None}
            return JSONResponse(reply("text_completion", body, choice))
        choice = {"index": 0, "message": self.message, "finish_reason": self.finish_reason}
        return JSONResponse(reply("chat.completion", body, choice))


def reply(kind: str, body: dict[str, Any], choice: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "x",
        "object": kind,
        "created": 0,
        "model": body["model"],
        "choices": [choice],
        "usage": USAGE,
    }


@pytest.fixture
def upstream() -> Iterator[tuple[Upstream, str]]:
    fake = Upstream()
    routes = [
        Route(f"/v1/{path}", fake.handle, methods=["POST"])
        for path in ("chat/completions", "completions", "embeddings")
    ]
    with running(Starlette(routes=routes)) as server:
        yield fake, server.url + "/v1"


# -- pass-through routes -------------------------------------------------------------------------------
def test_completions_and_embeddings_pass_through_under_the_caps(upstream) -> None:
    fake, url = upstream
    with serve(upstream_for(url, "qwen"), max_tokens=300, max_n=2) as server:
        client = server.client()
        completion = client.completions.create(model="qwen", prompt="hello")
        embedding = client.embeddings.create(model="qwen", input="hello")
        with pytest.raises(openai.BadRequestError, match="limit of 2"):
            client.completions.create(model="qwen", prompt="hello", n=3)
        with pytest.raises(openai.BadRequestError, match="limit of 300"):
            client.completions.create(model="qwen", prompt="hello", max_tokens=301)
        with pytest.raises(openai.BadRequestError, match="chat/completions only"):
            client.completions.create(model="ponder:best-of-n@qwen", prompt="hello")
        with pytest.raises(openai.NotFoundError, match="not served here"):
            client.embeddings.create(model="other", input="hello")
    assert completion.choices[0].text == " world" and completion.usage.total_tokens == 5
    assert embedding.data[0].embedding == [0.5, -0.5]
    [(completion_path, completion_body), (embedding_path, embedding_body)] = fake.seen
    assert completion_path == "/v1/completions" and completion_body["max_tokens"] == 300
    assert embedding_path == "/v1/embeddings" and "max_tokens" not in embedding_body


def test_pass_through_failure_names_the_upstream_not_its_address(upstream) -> None:
    fake, url = upstream
    fake.status = 500
    with serve(upstream_for(url, "qwen")) as server, pytest.raises(openai.InternalServerError) as raised:
        server.client().completions.create(model="qwen", prompt="hello")
    assert raised.value.status_code == 502
    message = raised.value.body["message"]
    assert "upstream 'qwen'" in message and "127.0.0.1" not in message


def test_models_retrieve(upstream) -> None:
    _, url = upstream
    with serve(upstream_for(url, "qwen"), upstream_for(url, "Qwen/Qwen2.5-7B")) as server:
        client = server.client()
        assert client.models.retrieve("qwen").id == "qwen"
        assert client.models.retrieve("Qwen/Qwen2.5-7B").id == "Qwen/Qwen2.5-7B"
        with pytest.raises(openai.NotFoundError) as raised:
            client.models.retrieve("missing")
        unknown = httpx.get(server.url + "/v1/nothing", timeout=10)
    assert raised.value.body["code"] == "model_not_found"
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"


# -- ponder:none past a default strategy -----------------------------------------------------------------
def test_ponder_none_bypasses_the_default_strategy(upstream) -> None:
    fake, url = upstream
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    with serve(upstream_for(url, "qwen"), default_strategy="self-consistency:n=2") as server:
        client = server.client()
        messages = [{"role": "user", "content": "hi"}]
        with pytest.raises(openai.BadRequestError, match="stop"):
            client.chat.completions.create(model="qwen", messages=messages, stop=["\n"])
        by_model = client.chat.completions.create(model="ponder:none@qwen", messages=messages, stop=["\n"])
        by_body = client.chat.completions.create(
            model="qwen", messages=messages, tools=tools, extra_body={"ponder": {"strategy": "none"}}
        )
        by_header = client.chat.completions.create(
            model="qwen", messages=messages, stop="x", extra_headers={"X-Ponder-Strategy": "none"}
        )
    assert [r.choices[0].message.content for r in (by_model, by_body, by_header)] == ["ok"] * 3
    assert len(fake.seen) == 3  # one upstream call each: nothing ran a strategy
    assert all(body["model"] == "qwen" and "ponder" not in body for _, body in fake.seen)
    assert fake.seen[0][1]["stop"] == ["\n"] and fake.seen[1][1]["tools"] == tools


# -- the strategy's max_tokens when the client gives none ------------------------------------------------
def plan_for(spec: str, settings: ServerSettings, **request: Any):
    chat = ChatRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "q"}], **request}
    )
    return plan_strategy(spec, chat, settings, Policy(frozenset({"m"}), {}, frozenset()))


def test_strategy_max_tokens_defaults_to_the_operators_cap() -> None:
    settings = ServerSettings(max_tokens=3000)
    assert plan_for("best-of-n", settings).strategies[0].options.max_tokens == 3000
    assert plan_for("best-of-n", settings, max_tokens=200).strategies[0].options.max_tokens == 200
    assert plan_for("best-of-n:max_tokens=300", settings).strategies[0].options.max_tokens == 300
    # when the request's caps would not admit the operator's cap, the strategy's own default holds
    tight = ServerSettings(max_tokens=3000, max_request_tokens=8 * 2000)
    assert plan_for("best-of-n", tight).strategies[0].options.max_tokens == 1024


# -- reasoning models --------------------------------------------------------------------------------------
def ask(url: str) -> tuple[str | None, str | None, dict[str, Any]]:
    """One greedy strategy call through the server: (content, finish reason, the run's result)."""
    with serve(upstream_for(url, "qwen")) as server:
        reply = server.client().chat.completions.create(
            model="ponder:greedy@qwen",
            messages=[{"role": "user", "content": "6 times 7?"}],
            extra_body={"ponder": {"include": True}},
        )
    [result] = reply.model_extra["ponder"]["results"]
    return reply.choices[0].message.content, reply.choices[0].finish_reason, result


def test_reasoning_content_is_never_the_answer(upstream) -> None:
    fake, url = upstream
    fake.message = {
        "role": "assistant",
        "reasoning_content": "maybe \\boxed{7}",
        "content": "So \\boxed{42}.",
    }
    content, _, result = ask(url)
    assert result["answer"] == "42" and content == "So \\boxed{42}."


def test_null_content_with_reasoning_is_no_answer_and_says_why(upstream) -> None:
    fake, url = upstream
    fake.message = {"role": "assistant", "reasoning_content": "the answer is 7, or", "content": None}
    fake.finish_reason = "length"
    content, finish, result = ask(url)
    assert result["answer"] is None and content == "" and finish == "length"


def test_think_sections_in_content_are_not_the_answer(upstream) -> None:
    fake, url = upstream
    fake.message = {"role": "assistant", "content": "<think>maybe \\boxed{7}</think>So \\boxed{42}."}
    _, _, result = ask(url)
    assert result["answer"] == "42"


def test_final_part_of_thinking_text() -> None:
    assert final_part("plain 5") == "plain 5"
    assert final_part("a<think>x</think>b<think>cut off") == "ab"
    assert final_part("thinking 7</think>Answer: 42") == "Answer: 42"
    assert extract_answer("<think>the answer is 7") is None  # thinking cut off: no answer, not a guess
    assert extract_answer("<think>\\boxed{7}</think>the answer is 42") == "42"
    assert extract_code("<think>```python\nwrong()\n```</think>```python\nright()\n```") == "right()"


# -- discovery of an upstream's models -----------------------------------------------------------------
def test_star_upstream_serves_every_model_the_server_lists(monkeypatch) -> None:
    monkeypatch.setenv("PONDER_UPSTREAM_KEY", "secret")
    seen: list[str | None] = []

    async def models(request: Request) -> Response:
        seen.append(request.headers.get("authorization"))
        data = [{"id": name, "object": "model"} for name in ("a", "Qwen/Qwen2.5-7B")]
        return JSONResponse({"object": "list", "data": data})

    async def no_models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": []})

    routes = [Route("/v1/models", models), Route("/empty/v1/models", no_models)]
    with running(Starlette(routes=routes)) as server:
        url = server.url + "/v1"
        upstreams = parse_upstreams(["a=http://127.0.0.1:1/v1", f"*={url}"])
        with pytest.raises(UsageError, match="lists no models"):
            parse_upstreams([f"*={server.url}/empty/v1"])
    assert [(u.name, u.url) for u in upstreams] == [("a", "http://127.0.0.1:1/v1"), ("Qwen/Qwen2.5-7B", url)]
    assert seen == ["Bearer secret"]
    with pytest.raises(UsageError, match="cannot list the models"):
        parse_upstreams(["*=http://127.0.0.1:1/v1"], timeout=5)
