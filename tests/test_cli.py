"""The command line end to end against a fake OpenAI-compatible server: output, JSON, exit codes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from conftest import completion

from ponder.cli.main import main

PONDER = [sys.executable, "-m", "ponder.cli.main"]


def test_solve_json_through_base_url(fake_openai_server, capsys) -> None:
    answers = iter(["\\boxed{391}", "\\boxed{391}", "\\boxed{390}"])
    fake = fake_openai_server(lambda body, _: (200, completion([next(answers)], prompt_tokens=30), {}))
    code = main(
        [
            "solve",
            "What is 17*23?",
            "--base-url",
            fake.url,
            "--model",
            "m",
            "--server",
            "llama-server",
            "--strategy",
            "self-consistency:n=3",
            "--seed",
            "5",
            "--json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["answer"] == "391"
    assert result["votes"] == {"391": 2.0, "390": 1.0}
    assert sorted(c["answer"] for c in result["candidates"]) == ["390", "391", "391"]
    assert result["usage"]["calls"] == 3 and result["usage"]["prompt_tokens"] == 90
    assert result["usage"]["completion_tokens"] == sum(
        c["usage"]["completion_tokens"] for c in result["candidates"]
    )
    assert {body["seed"] for body in fake.bodies} == {5, 6, 7}


def test_solve_human_output_shows_votes_answer_and_usage(fake_openai_server, capsys) -> None:
    fake = fake_openai_server(lambda body, _: (200, completion(["so \\boxed{12}"]), {}))
    assert (
        main(["solve", "3*4?", "--base-url", fake.url, "--model", "m", "--strategy", "self-consistency:n=2"])
        == 0
    )
    out = capsys.readouterr().out
    assert "answer: 12" in out and "votes" in out and "2 calls" in out and "completion tokens" in out


def test_no_answer_is_reported_with_exit_0(fake_openai_server, capsys) -> None:
    fake = fake_openai_server(lambda body, _: (200, completion(["I cannot say."]), {}))
    assert main(["solve", "?", "--base-url", fake.url, "--model", "m", "--strategy", "greedy"]) == 0
    assert "no answer" in capsys.readouterr().out


def test_unknown_strategy_exits_2_and_lists_valid_names() -> None:
    completed = subprocess.run(
        [*PONDER, "solve", "x", "--strategy", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert completed.returncode == 2
    for name in ("best-of-n", "greedy", "self-consistency"):
        assert name in completed.stderr


def test_unknown_option_and_model_exit_2(capsys) -> None:
    assert main(["solve", "x", "--strategy", "best-of-n:scorer=oracle"]) == 2
    error = capsys.readouterr().err
    assert "unknown scorer 'oracle'; valid names: confidence, " in error and ", judge, " in error
    assert main(["solve", "x", "--model", "gpt-17"]) == 2
    assert "qwen2.5-coder-1.5b" in capsys.readouterr().err


def test_unreachable_server_exits_3_naming_url_and_cause() -> None:
    completed = subprocess.run(
        [*PONDER, "solve", "x", "--base-url", "http://127.0.0.1:9", "--model", "m", "--strategy", "greedy"],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert completed.returncode == 3
    assert "127.0.0.1:9/v1/chat/completions" in completed.stderr and "ConnectError" in completed.stderr


def test_strategies_command_lists_options(capsys) -> None:
    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    assert "self-consistency" in out and "n=8" in out and "judge" in out


def test_parameters_enable_flops_for_a_served_model(fake_openai_server, capsys) -> None:
    fake = fake_openai_server(lambda body, _: (200, completion(["\\boxed{1}"], prompt_tokens=10), {}))
    args = ["solve", "q", "--base-url", fake.url, "--model", "m", "--strategy", "greedy", "--json"]
    assert main([*args, "--parameters", "1e9"]) == 0
    usage = json.loads(capsys.readouterr().out)["usage"]
    assert usage["flops"] == 2e9 * (10 + 1)
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["usage"]["flops"] == 0


def test_base_url_without_model_is_a_usage_error(capsys) -> None:
    assert main(["solve", "q", "--base-url", "http://127.0.0.1:9"]) == 2
    assert "--model" in capsys.readouterr().err


def test_chat_template_flag_reaches_the_server_backend(tmp_path) -> None:
    from ponder.cli.main import backend_from_args, build_parser

    template = tmp_path / "chat.jinja"
    template.write_text("{% for m in messages %}{{ m.content }}{% endfor %}")
    for command in (["solve", "q"], ["eval", "--dataset", "humaneval", "--strategy", "greedy"]):
        args = build_parser().parse_args(
            [
                *command,
                "--base-url",
                "http://127.0.0.1:9/v1",
                "--model",
                "m",
                "--chat-template",
                str(template),
            ]
        )
        assert backend_from_args(args).chat_template == str(template)


def solve_against(url: str, *extra: str) -> list[str]:
    return ["solve", "q", "--base-url", url, "--model", "m", "--strategy", "greedy", *extra]


FAILING_UPSTREAMS = {
    "5xx": (
        500,
        {"error": {"message": "boom"}},
        {"Retry-After": "0"},
        "failed after 4 attempt(s): HTTP 500: boom",
    ),
    "4xx": (
        404,
        {"error": {"message": "no such model"}},
        {},
        "rejected the request: HTTP 404: no such model",
    ),
    "malformed": (200, {"choices": [{"message": {"content": 7}}]}, {}, "malformed reply: choices.0.message"),
    "redirect": (302, {}, {"Location": "http://127.0.0.1:9/v1"}, "HTTP 302, a redirect (not followed)"),
}


@pytest.mark.parametrize("status,payload,headers,cause", FAILING_UPSTREAMS.values(), ids=FAILING_UPSTREAMS)
def test_every_backend_failure_exits_3_with_one_line(
    fake_openai_server, capsys, status, payload, headers, cause
) -> None:
    fake = fake_openai_server(lambda body, _: (status, payload, headers))
    assert main(solve_against(fake.url)) == 3
    error = capsys.readouterr().err
    assert cause in error and "Traceback" not in error and error.count("\n") == 1


def test_timeout_ends_a_retry_after_of_a_day_with_exit_3(fake_openai_server, capsys) -> None:
    fake = fake_openai_server(lambda body, _: (429, {"error": {"message": "busy"}}, {"Retry-After": "86400"}))
    started = time.monotonic()
    assert main(solve_against(fake.url, "--timeout", "1")) == 3
    error = capsys.readouterr().err
    assert "no answer within --timeout 1 s" in error and error.count("\n") == 1
    assert time.monotonic() - started < 5 and len(fake.bodies) == 1


def test_timeout_ends_a_hanging_upstream_in_a_subprocess() -> None:
    with socket.socket() as listener:  # accepts connections (kernel backlog) and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        completed = subprocess.run(
            [*PONDER, *solve_against(url, "--timeout", "1.5")],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    assert completed.returncode == 3
    assert "no answer within --timeout 1.5 s" in completed.stderr and "Traceback" not in completed.stderr


def test_upstream_key_on_the_command_line_warns_and_a_key_file_does_not(
    fake_openai_server, capsys, tmp_path
) -> None:
    fake = fake_openai_server(lambda body, _: (200, completion(["\\boxed{1}"]), {}))
    assert main(solve_against(fake.url, "--upstream-key", "sekret")) == 0
    error = capsys.readouterr().err
    assert "warning: --upstream-key is visible to other users" in error and "PONDER_API_KEY" in error
    key_file = tmp_path / "key"
    key_file.write_text("from-file\n")
    assert main(solve_against(fake.url, "--upstream-key-file", str(key_file))) == 0
    assert "warning" not in capsys.readouterr().err
    assert [h["authorization"] for h in fake.headers] == ["Bearer sekret", "Bearer from-file"]
    assert main(solve_against(fake.url, "--upstream-key-file", str(tmp_path / "missing"))) == 2
    assert "cannot read --upstream-key-file" in capsys.readouterr().err


def test_answers_notes_and_specs_print_their_brackets() -> None:
    """Model text and specs are not rich markup: ``[b]`` and ``[judge:...]`` print as they are."""
    from rich.console import Console

    from ponder.cli.render import render_result
    from ponder.core.types import Candidate, Result, Usage

    candidate = Candidate(text="x", answer="[b]7[/b]", finish_reason="stop", completion_tokens=1)
    result = Result(
        answer="[b]7[/b]",
        strategy="best-of-n:scorer=[judge:mode=verbal]",
        candidates=[candidate],
        usage=Usage(calls=1),
        votes={"[b]7[/b]": 1.0},
        note="budget: calls budget met [1 of 1]",
    )
    console = Console(record=True, width=200)
    render_result(result, console)
    text = console.export_text()
    assert text.count("[b]7[/b]") == 2 and "scorer=[judge:mode=verbal]" in text
    assert "note: budget: calls budget met [1 of 1]" in text


def test_a_misspelt_strategy_scorer_option_or_model_gets_a_did_you_mean(capsys) -> None:
    assert main(["solve", "x", "--strategy", "self-consistancy"]) == 2
    error = capsys.readouterr().err
    assert "unknown strategy 'self-consistancy' (did you mean 'self-consistency'" in error
    assert "valid names: adaptive-consistency, " in error
    assert main(["solve", "x", "--strategy", "best-of-n:scorer=jduge"]) == 2
    assert "unknown scorer 'jduge' (did you mean 'judge'?)" in capsys.readouterr().err
    assert main(["solve", "x", "--strategy", "self-consistency:temprature=0.3,nn=3"]) == 2
    error = capsys.readouterr().err
    assert "no option 'nn' (did you mean 'n'?), 'temprature' (did you mean 'temperature'?)" in error
    assert main(["solve", "x", "--model", "qwen-1.5b"]) == 2
    assert "unknown model 'qwen-1.5b' (did you mean 'qwen2.5-coder-1.5b'?)" in capsys.readouterr().err
    assert main(["solve", "x", "--strategy", "zzzz"]) == 2
    assert "unknown strategy 'zzzz'; valid names:" in capsys.readouterr().err  # nothing close: no guess


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["solv", "x"], "(did you mean 'solve'?)"),
        (["strategy"], "(did you mean 'strategies'?)"),
        (["solve", "x", "--jsn"], "(did you mean '--json'?)"),
    ],
)
def test_a_misspelt_command_or_flag_gets_a_did_you_mean(argv: list[str], hint: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert hint in capsys.readouterr().err


def test_strategies_listing_keeps_one_line_per_item_and_escapes_control_characters(capsys) -> None:
    assert main(["strategies"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "strategies" and "scorers" in lines
    # every line is a heading, a strategy (2 spaces), its options (4 spaces) or the closing hint: a
    # "\n\n" delimiter printed raw used to start lines of its own
    assert all(line in ("strategies", "scorers") or line.startswith("  ") for line in lines[:-1])
    assert lines[-1].startswith("one in full: ponder strategies NAME")
    beam = next(index for index, line in enumerate(lines) if line.startswith("  beam-search — "))
    options = " ".join(line.strip() for line in lines[beam + 1 : beam + 3])
    assert 'delimiter="\\n\\n"' in options and "scorer=judge" in options
    assert all(line.rstrip() == line for line in lines)  # no trailing padding in a log


def test_strategies_json_and_one_strategy_in_full(capsys) -> None:
    assert main(["strategies", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    beam = next(entry for entry in listing["strategies"] if entry["name"] == "beam-search")
    delimiter = next(option for option in beam["options"] if option["name"] == "delimiter")
    assert delimiter == {"name": "delimiter", "type": "str", "required": False, "default": "\n\n"}
    assert any(entry["name"] == "judge" for entry in listing["scorers"])
    assert main(["strategies", "beam-search"]) == 0
    out = capsys.readouterr().out
    assert "strategy beam-search — " in out and "best | weighted" in out and '"\\n\\n"' in out
    assert main(["strategies", "prm", "--json"]) == 0
    prm = json.loads(capsys.readouterr().out)
    assert prm["kind"] == "scorer" and prm["options"][0]["required"] is True
    assert main(["strategies", "beamsearch"]) == 2
    assert "(did you mean 'beam-search'" in capsys.readouterr().err


def test_models_json(capsys) -> None:
    assert main(["models", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    names = [model["name"] for model in listing["models"]]
    assert "qwen2.5-coder-1.5b" in names and sum(model["default"] for model in listing["models"]) == 1
    assert set(listing["runtime"]) == {"ready", "path"}
    assert main(["models"]) == 0
    assert "llama-server runtime: " in capsys.readouterr().out


def test_setup_json_when_everything_is_ready(tmp_path, monkeypatch, capsys) -> None:
    from test_embedded_parts import _fake_model

    from ponder.backends.embedded import models

    monkeypatch.setenv("PONDER_CACHE_DIR", str(tmp_path / "cache"))
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv("PONDER_LLAMA_SERVER", str(binary))
    model, fake = _fake_model(tmp_path, [b"GGUF" + b"x" * 100])
    monkeypatch.setitem(models.MODELS, model.name, model)
    models.prepare_model(model.name, quiet=True, download=fake["download"])
    assert main(["setup", "--model", model.name, "--json"]) == 0
    captured = capsys.readouterr()
    ready = json.loads(captured.out)
    assert ready["runtime"] == {"path": str(binary), "built": False}
    assert ready["model"] == {
        "name": "fake-model",
        "path": str(models.model_path(model.name)),
        "assembled": False,
    }
    assert main(["setup", "--model", model.name]) == 0
    err = capsys.readouterr().err
    assert "ready: fake-model at " in err and "(nothing to do)" in err


def test_a_first_run_builds_the_runtime_before_the_event_loop(monkeypatch, capsys) -> None:
    """The build runs on the main thread with no loop running: Ctrl-C stops it at once, and its
    minutes do not count against --timeout."""
    import asyncio

    from ponder.core.errors import SetupError

    seen = []

    def build(quiet: bool = False, **_: object) -> None:
        try:
            asyncio.get_running_loop()
            seen.append("inside a loop")
        except RuntimeError:
            seen.append("no loop")
        raise SetupError("stopped here by the test")

    monkeypatch.setattr("ponder.backends.embedded.runtime.ensure_llama_server", build)
    assert main(["solve", "q", "--model", "smollm2-135m", "--timeout", "1"]) == 4
    assert seen == ["no loop"]
    assert "stopped here by the test" in capsys.readouterr().err


def test_piped_solve_logs_progress_lines_and_json_stays_one_document(fake_openai_server) -> None:
    def slow(body, attempt):
        time.sleep(0.15)
        return 200, completion(["so \\boxed{4}"]), {}

    fake = fake_openai_server(slow)
    done = subprocess.run(
        [*PONDER, "solve", "2+2?", "--base-url", fake.url, "--model", "m", "-s", "debate:agents=2,rounds=3"]
        + ["--server", "generic", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PONDER_PROGRESS_INTERVAL": "0.1"},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["answer"] == "4"
    lines = [line for line in done.stderr.splitlines() if line.startswith("solve: ")]
    assert lines and all(line.endswith("elapsed") for line in lines), done.stderr
    assert any("candidates · " in line and " tokens · " in line for line in lines), done.stderr
    assert "\x1b[" not in done.stderr
