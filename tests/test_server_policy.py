"""The serving policy, attacked as a client would: specs that name URLs, files, modules, limits or models.

Every attack from the security review runs against the real app in front of fake upstreams on 127.0.0.1
with keys in the server's environment, and must be refused before anything runs, with a message that
names the option and echoes nothing the server read. A property across the whole registry checks that
every option is classified, and that every operator-only option is refused from a client.
"""

from __future__ import annotations

import sys
import typing
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import completion
from test_server import serve

import ponder
from ponder.backends import GenRequest, ScriptedBackend
from ponder.core.errors import BudgetExhaustedError, UnknownNameError
from ponder.core.registry import FreeText, NestedSpec, OperatorOnly, ServedModel, parse_spec
from ponder.scorers import SCORERS
from ponder.server.errors import InvalidRequest
from ponder.server.policy import (
    Policy,
    RequestCap,
    UpstreamBackends,
    _is_plain_value,
    format_spec,
    request_backends,
)
from ponder.server.run import parse_upstream
from ponder.strategies import STRATEGIES

SERVER_KEY = "sk-server-secret-0123456789"
JUDGE_KEY = "sk-judge-secret-9876543210"


def ask(url: str, model: str, **body: Any) -> httpx.Response:
    payload = {"model": model, "messages": [{"role": "user", "content": "What is 6*7?"}], **body}
    return httpx.post(url + "/v1/chat/completions", json=payload, timeout=20.0)


@pytest.fixture
def upstreams(fake_openai_server: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """Two fake upstreams, ``main`` and ``judge``, each with its own key in the server's environment."""
    monkeypatch.setenv("PONDER_UPSTREAM_KEY_MAIN", SERVER_KEY)
    monkeypatch.setenv("PONDER_UPSTREAM_KEY_JUDGE", JUDGE_KEY)
    monkeypatch.setenv("PONDER_API_KEY", SERVER_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", SERVER_KEY)
    main = fake_openai_server(lambda body, attempt: (200, completion(["So \\boxed{42}."] * body["n"]), {}))
    judge = fake_openai_server(lambda body, attempt: (200, completion(["Yes"] * body["n"]), {}))
    return main, judge


def refused(response: httpx.Response, option: str) -> str:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert option in error["message"]
    return error["message"]


ATTACKS = [
    # credentials to a URL the client chooses
    ("best-of-n:n=2,scorer=[judge:base_url={listener},model=m]", "base_url"),
    ("debate:agents=2,rounds=1,base_url={listener}", "base_url"),
    ("critique-refine:rounds=1,critic_base_url={listener}", "critic_base_url"),
    ("atom-of-thoughts:depth=1,base_url={listener}", "base_url"),
    ("evolve:rounds=1,base_url={listener}", "base_url"),
    ("plansearch:base_url={listener}", "base_url"),
    ("best-of-n:n=2,scorer=[prm-http:{listener}]", "url"),
    ("best-of-n:n=2,scorer=[prm-http:http://127.0.0.1:9/v1,api_key=k]", "url"),
    # code and remote code
    ("best-of-n:n=2,scorer=[python:builtins:print]", "target"),
    ("best-of-n:n=2,scorer=[prm:some/model,trust_remote_code=true]", "model"),
    ("best-of-n:n=2,scorer=[orm:some/model]", "model"),
    # the sandbox's limits
    ("best-of-n:n=2,scorer=[tests:timeout=100000]", "timeout"),
    ("best-of-n:n=2,scorer=[tests:memory_mb=100000]", "memory_mb"),
    ("best-of-n:n=2,scorer=[tests:max_processes=100000]", "max_processes"),
    ("best-of-n:n=2,scorer=[tests:workers=64]", "workers"),
    ("test-select:timeout=100000", "timeout"),
]


@pytest.mark.parametrize(("spec", "option"), ATTACKS)
def test_a_client_cannot_reach_urls_code_or_limits_and_no_call_is_made(
    upstreams: tuple[Any, Any], fake_openai_server: Any, spec: str, option: str
) -> None:
    main, judge = upstreams
    listener = fake_openai_server(lambda body, attempt: (200, completion(["Yes"]), {}))
    with serve(parse_upstream(f"main={main.url}"), parse_upstream(f"judge={judge.url}")) as server:
        response = ask(server.url, f"ponder:{spec.format(listener=listener.url)}@main")
    message = refused(response, option)
    assert "127.0.0.1" not in message and "some/model" not in message and "builtins" not in message
    assert listener.bodies == [] and main.bodies == [] and judge.bodies == []
    assert all(SERVER_KEY not in str(h) for h in listener.headers)


def test_a_pipeline_path_is_refused_without_reading_it(upstreams: tuple[Any, Any], tmp_path: Path) -> None:
    secret = tmp_path / "secret.yaml"
    secret.write_text("root:$6$hash-of-a-password:19000:0:99999:7:::\n")
    main, _ = upstreams
    with serve(parse_upstream(f"main={main.url}")) as server:
        there = ask(server.url, f"ponder:pipeline:{secret}@main")
        absent = ask(server.url, f"ponder:pipeline:{tmp_path / 'absent.yaml'}@main")
        preset = ask(server.url, "ponder:pipeline:generate-verify@main")
    assert "hash-of-a-password" not in there.text and str(tmp_path) not in there.text
    # no existence oracle: a file that exists and one that does not are refused alike
    assert refused(there, "pipeline") == refused(absent, "pipeline")
    assert preset.status_code == 200, preset.text  # a shipped preset's name is the client's to choose


def test_a_module_is_never_imported_for_a_client(upstreams: tuple[Any, Any], tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    (tmp_path / "side_effect_module.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    sys.path.insert(0, str(tmp_path))
    try:
        main, _ = upstreams
        with serve(parse_upstream(f"main={main.url}")) as server:
            installed = ask(server.url, "ponder:best-of-n:scorer=[python:side_effect_module:f]@main")
            missing = ask(server.url, "ponder:best-of-n:scorer=[python:no_such_module_xyz:f]@main")
    finally:
        sys.path.remove(str(tmp_path))
    assert not marker.exists() and "side_effect_module" not in sys.modules
    assert refused(installed, "target") == refused(missing, "target")  # which modules exist stays unsaid


def test_other_models_are_only_upstreams_and_each_key_goes_only_to_its_upstream(
    upstreams: tuple[Any, Any],
) -> None:
    main, judge = upstreams
    with serve(parse_upstream(f"main={main.url}"), parse_upstream(f"judge={judge.url}")) as server:
        judged = ask(server.url, "ponder:best-of-n:n=2,scorer=[judge:model=judge,mode=verbal]@main")
        unknown = ask(server.url, "ponder:best-of-n:n=2,scorer=[judge:model=gpt-4o]@main")
        debate = ask(server.url, "ponder:debate:agents=2,rounds=1,models=[main,nowhere]@main")
    assert judged.status_code == 200, judged.text
    # two samples on main, two reviews on judge
    assert sum(b["n"] for b in main.bodies) == 2 and sum(b["n"] for b in judge.bodies) == 2
    assert {h["authorization"] for h in main.headers} == {f"Bearer {SERVER_KEY}"}
    assert {h["authorization"] for h in judge.headers} == {f"Bearer {JUDGE_KEY}"}
    assert "judge" in refused(unknown, "model") and "gpt-4o" not in unknown.text
    refused(debate, "models")


def test_amplification_is_refused_before_any_call(upstreams: tuple[Any, Any]) -> None:
    """Scorer calls count: 4 runs x (16 samples + 16 x 64 verifications) = 4,160 calls, 4,259,840 tokens."""
    main, _ = upstreams
    spec = "best-of-n:n=16,scorer=[genverifier:verifications=64]"
    with serve(parse_upstream(f"main={main.url}"), max_samples=1024) as server:
        by_default = ask(server.url, f"ponder:{spec}@main", n=4)
    with serve(parse_upstream(f"main={main.url}"), max_calls=4000, max_request_tokens=10**9) as server:
        by_calls = ask(server.url, f"ponder:{spec}@main", n=4)
    assert "up to 4259840 completion tokens" in refused(by_default, "limit of 1048576")
    assert "up to 4160 upstream calls" in refused(by_calls, "limit of 4000")
    assert main.bodies == []


def test_presets_carry_the_operators_options_and_clients_add_only_their_own(
    upstreams: tuple[Any, Any], tmp_path: Path
) -> None:
    main, _ = upstreams
    pipeline = tmp_path / "mine.yaml"
    pipeline.write_text("name: mine\nlayers:\n  - {role: generator, n: 2}\n")
    presets = (("mine", f"pipeline:{pipeline}"), ("careful", "best-of-n:n=2,scorer=[judge:mode=verbal]"))
    with serve(parse_upstream(f"main={main.url}"), presets=presets) as server:
        mine = ask(server.url, "ponder:mine@main")
        careful = ask(server.url, "ponder:careful:n=3@main")
        widened = ask(server.url, "ponder:careful:scorer=[tests:timeout=999]@main")
    assert mine.status_code == 200, mine.text
    assert careful.status_code == 200, careful.text
    refused(widened, "timeout")


def test_the_operator_widens_the_policy_explicitly_and_never_to_urls_or_keys() -> None:
    spec = "best-of-n:n=2,scorer=[tests:timeout=5,workers=2]"
    with pytest.raises(InvalidRequest, match="timeout"):
        Policy(frozenset({"m"})).resolve(spec)
    assert Policy(frozenset({"m"}), allow=frozenset({"sandbox"})).resolve(spec) == spec
    for kind in ("url", "credential"):
        with pytest.raises(Exception, match="never"):
            Policy(frozenset({"m"}), allow=frozenset({kind}))
    with pytest.raises(Exception, match="valid kinds"):
        Policy(frozenset({"m"}), allow=frozenset({"everything"}))


def test_nesting_is_bounded_and_unknown_names_list_the_valid_ones() -> None:
    policy = Policy(frozenset({"m"}))
    deep = "greedy"
    for _ in range(8):
        deep = f"atom-of-thoughts:then=[{deep}]"
    with pytest.raises(InvalidRequest, match="nest"):
        policy.resolve(deep)
    with pytest.raises(UnknownNameError, match="valid names"):
        policy.resolve("best-of-n:scorer=[nope]")


def test_format_spec_round_trips_nested_values() -> None:
    text = "best-of-n:n=4,scorer=[judge:mode=verbal,top_logprobs=5]"
    assert parse_spec(format_spec(parse_spec(text))) == parse_spec(text)


# -- across the whole registry -------------------------------------------------------------------------
def registry_fields() -> list[tuple[str, str, str, Any]]:
    rows = []
    for kind, registry in (("strategy", STRATEGIES), ("scorer", SCORERS)):
        for entry in registry.entries():
            if not entry.factory.__module__.startswith("ponder."):
                continue  # a test's own registration
            for option, info in entry.options.model_fields.items():
                rows.append((kind, entry.name, option, info))
    return rows


def marker(info: Any) -> object | None:
    kinds = OperatorOnly | NestedSpec | ServedModel | FreeText
    return next((m for m in info.metadata if isinstance(m, kinds)), None)


def test_every_text_option_in_the_registry_is_classified() -> None:
    """A text option nobody marked is closed to clients; this keeps that a decision, not an accident."""
    unclassified = [
        f"{kind} {name}.{option}"
        for kind, name, option, info in registry_fields()
        if marker(info) is None and not _is_plain_value(info.annotation)
    ]
    assert unclassified == []


@pytest.mark.parametrize(
    ("kind", "name", "option", "plain"),
    [
        (k, n, o, _is_plain_value(info.annotation))
        for k, n, o, info in registry_fields()
        if isinstance(marker(info), OperatorOnly)
    ],
)
def test_every_operator_only_option_is_refused_from_a_client(
    kind: str, name: str, option: str, plain: bool
) -> None:
    inner = f"{name}:{option}={'7' if plain else 'SENTINEL'}"
    spec = inner if kind == "strategy" else f"best-of-n:scorer=[{inner}]"
    with pytest.raises(InvalidRequest) as caught:
        Policy(frozenset({"m"})).resolve(spec)
    assert option in caught.value.message and "SENTINEL" not in caught.value.message


@pytest.mark.parametrize(
    ("name", "option", "info"),
    [
        (n, o, info)
        for k, n, o, info in registry_fields()
        if k == "strategy" and marker(info) is None and _is_plain_value(info.annotation)
    ],
)
def test_every_plain_strategy_option_is_the_clients(name: str, option: str, info: Any) -> None:
    choices = [a for a in typing.get_args(info.annotation) if a is not type(None)] or [info.annotation]
    first = choices[0]
    if typing.get_origin(first) is typing.Literal:
        value = str(typing.get_args(first)[0])
    else:
        value = "true" if first is bool else "1"
    spec = f"{name}:{option}={value}" + (",pipeline=moa" if name == "pipeline" else "")
    assert Policy(frozenset({"m"})).resolve(spec) == spec


# -- while it runs -------------------------------------------------------------------------------------
async def test_upstream_backends_mean_only_upstreams() -> None:
    main, judge = ScriptedBackend(model="main"), ScriptedBackend(model="judge")
    pool = UpstreamBackends({"main": main, "judge": judge})
    assert await pool.get(main) is main and await pool.get(main, "judge") is judge
    with pytest.raises(Exception, match="served here"):
        await pool.get(main, "elsewhere")
    with pytest.raises(Exception, match="URL"):
        await pool.get(main, "judge", "http://127.0.0.1:9/v1")


async def test_the_request_cap_holds_even_when_a_bound_is_wrong() -> None:
    """Every call on any upstream counts on one cap, refused before it starts; the run ends with a note."""
    main, judge = ScriptedBackend(model="main", script=["\\boxed{1}"]), ScriptedBackend(model="judge")
    cap = RequestCap(calls=3, completion_tokens=None)
    capped = request_backends({"main": main, "judge": judge}, cap)
    pool = UpstreamBackends(capped)
    spec = "best-of-n:n=2,scorer=[judge:model=judge]"
    result = await ponder.asolve("q", spec, backend=capped["main"], backends=pool)
    assert cap.spent_calls == 2 and sum(r.n for r in main.requests) == 2  # the samples
    assert judge.requests == [] and result.budget_exhausted and "3 upstream calls" in (result.note or "")
    with pytest.raises(BudgetExhaustedError, match="3 upstream calls"):
        cap.reserve([GenRequest(messages=(), n=2)])
    tokens = RequestCap(calls=None, completion_tokens=100)
    result = await ponder.asolve(
        "q", "greedy:max_tokens=101", backend=request_backends({"main": main}, tokens)["main"]
    )
    assert result.candidates == [] and "100 completion tokens" in (result.note or "")


def test_a_request_over_the_token_cap_is_refused(upstreams: tuple[Any, Any]) -> None:
    main, _ = upstreams
    with serve(parse_upstream(f"main={main.url}"), max_request_tokens=1000) as server:
        response = ask(server.url, "ponder:self-consistency:n=4,max_tokens=512@main")
        small = ask(server.url, "ponder:self-consistency:n=4,max_tokens=200@main")
    assert response.status_code == 400 and "completion tokens" in response.json()["error"]["message"]
    assert small.status_code == 200, small.text
