"""Configuration a user of the OpenAI SDK expects, the two key flags, ``ponder.solve`` inside a running
loop, and ids taken from a dataset file's ``id`` field."""

from __future__ import annotations

import asyncio
import gc
import inspect
import warnings
from pathlib import Path

import pytest

import ponder
from ponder.backends import OpenAIBackend, ScriptedBackend, make_backend
from ponder.cli.main import api_key_from_args, build_parser
from ponder.core.errors import UsageError
from ponder.tasks.datasets import load_dataset

ENVIRONMENT = (
    "PONDER_BASE_URL",
    "OPENAI_BASE_URL",
    "PONDER_API_KEY",
    "OPENAI_API_KEY",
    "PONDER_MODEL",
    "PONDER_SERVE_API_KEYS",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


def test_openai_base_url_selects_the_server_not_the_embedded_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    backend = make_backend(model="fake")
    assert isinstance(backend, OpenAIBackend)
    assert (backend.model, backend.base_url, backend.api_key) == (
        "fake",
        "http://127.0.0.1:9/v1",
        "sk-openai",
    )


def test_precedence_is_argument_then_ponder_then_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9001/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    monkeypatch.setenv("PONDER_BASE_URL", "http://127.0.0.1:9002/v1")
    monkeypatch.setenv("PONDER_API_KEY", "sk-ponder")
    from_environment = make_backend(model="fake")
    assert isinstance(from_environment, OpenAIBackend)
    assert (from_environment.base_url, from_environment.api_key) == ("http://127.0.0.1:9002/v1", "sk-ponder")
    from_arguments = make_backend(model="fake", base_url="http://127.0.0.1:9003/v1", api_key="sk-flag")
    assert isinstance(from_arguments, OpenAIBackend)
    assert (from_arguments.base_url, from_arguments.api_key) == ("http://127.0.0.1:9003/v1", "sk-flag")


def test_a_configured_server_without_a_model_names_where_the_url_came_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    with pytest.raises(UsageError, match="from OPENAI_BASE_URL.*--model"):
        make_backend()


def test_solve_takes_the_upstream_key_under_its_new_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = build_parser()
    key_file = tmp_path / "key"
    key_file.write_text("sk-file\n")
    args = parser.parse_args(["solve", "2+2", "--upstream-key-file", str(key_file)])
    assert api_key_from_args(args) == "sk-file"
    assert "deprecated" not in capsys.readouterr().err
    args = parser.parse_args(["solve", "2+2", "--api-key", "sk-old"])
    assert api_key_from_args(args) == "sk-old"
    assert "--api-key is deprecated; use --upstream-key" in capsys.readouterr().err
    args = parser.parse_args(
        [
            "eval",
            "-d",
            "jsonl:x",
            "-s",
            "best-of-n",
            "--upstream-key",
            "sk-a",
            "--upstream-key-file",
            str(key_file),
        ]
    )
    with pytest.raises(UsageError, match="not both"):
        api_key_from_args(args)


def test_serve_takes_client_keys_under_their_new_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ponder.cli import main

    keys_file = tmp_path / "keys"
    keys_file.write_text("from-file\n")
    served: list[frozenset[str]] = []
    monkeypatch.setattr(
        "ponder.server.run.serve",
        lambda host, port, upstreams, settings, log_level, workers=1: served.append(settings.api_keys),
    )
    upstream = ["--upstream", "m=http://127.0.0.1:9/v1"]
    parser = build_parser()
    main.command_serve(parser.parse_args(["serve", *upstream, "--client-keys-file", str(keys_file)]))
    assert "deprecated" not in capsys.readouterr().err
    main.command_serve(parser.parse_args(["serve", *upstream, "--client-key", "new", "--api-key", "old"]))
    assert "--api-key is deprecated; use --client-key" in capsys.readouterr().err
    main.command_serve(parser.parse_args(["serve", *upstream, "--api-keys-file", str(keys_file)]))
    assert "--api-keys-file is deprecated; use --client-keys-file" in capsys.readouterr().err
    assert served == [frozenset({"from-file"}), frozenset({"new", "old"}), frozenset({"from-file"})]


def test_solve_inside_a_running_loop_returns_a_result() -> None:
    async def notebook_cell() -> ponder.Result:
        backend = ScriptedBackend(script=("The answer is \\boxed{4}.",))
        return ponder.solve("2+2", "self-consistency:n=3", backend=backend)

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a never-awaited coroutine would fail here
        result = asyncio.run(asyncio.wait_for(notebook_cell(), timeout=30))
        gc.collect()
    assert result.answer == "4"
    assert len(result.candidates) == 3


def test_solve_spells_out_its_parameters() -> None:
    solve_parameters = inspect.signature(ponder.solve).parameters
    assert list(solve_parameters) == list(inspect.signature(ponder.asolve).parameters)
    assert {"backend", "model", "base_url", "api_key", "seed", "budget", "system_prompt"} <= set(
        solve_parameters
    )
    assert solve_parameters["seed"].annotation in ("int | None", int | None)
    assert (Path(ponder.__file__).parent / "py.typed").is_file()


def test_file_datasets_use_the_rows_id_field_by_default(tmp_path: Path) -> None:
    jsonl = tmp_path / "problems.jsonl"
    jsonl.write_text(
        '{"id": "alpha", "question": "1+1", "answer": "2"}\n'
        '{"question": "2+2", "answer": "4"}\n'
        '{"id": 7, "question": "3+3", "answer": "6"}\n'
    )
    assert [p.id for p in load_dataset(f"jsonl:{jsonl}").problems()] == ["alpha", "2", "7"]
    csv = tmp_path / "problems.csv"
    csv.write_text("id,question,answer\nfirst,1+1,2\n,2+2,4\n")
    assert [p.id for p in load_dataset(f"csv:{csv}").problems()] == ["first", "3"]
    plain = tmp_path / "plain.csv"
    plain.write_text("question,answer\n1+1,2\n")
    assert [p.id for p in load_dataset(f"csv:{plain}").problems()] == ["2"]
