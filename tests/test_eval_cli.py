"""``ponder eval`` end to end against a fake server: outputs, bad input, and kill -9 then --resume."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import completion

from ponder.cli.main import main

PONDER = [sys.executable, "-m", "ponder.cli.main"]


def dataset(path: Path, count: int = 6) -> str:
    lines = [json.dumps({"question": f"What is {i}+{i}?", "answer": 2 * i}) for i in range(count)]
    path.write_text("\n".join(lines) + "\n")
    return f"jsonl:{path}"


def answer_doubling(body, attempt):
    number = int(body["messages"][-1]["content"].split()[2].split("+")[0])
    time.sleep(0.05)
    return 200, completion([f"so \\boxed{{{2 * number}}}"]), {}


def eval_args(data: str, url: str, out: Path) -> list[str]:
    return [
        "eval",
        "--dataset",
        data,
        "--strategy",
        "self-consistency",
        "--strategy",
        "greedy",
        "--budgets",
        "1,2",
        "--base-url",
        url,
        "--model",
        "m",
        "--server",
        "llama-server",
        "--out",
        str(out),
        "--concurrency",
        "1",
    ]


def test_eval_writes_records_summary_plot_and_report(tmp_path: Path, fake_openai_server, capsys) -> None:
    fake = fake_openai_server(answer_doubling)
    out = tmp_path / "run"
    assert main(eval_args(dataset(tmp_path / "d.jsonl"), fake.url, out)) == 0
    for name in ("records.jsonl", "summary.json", "curves.png", "report.html", "run.json"):
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    rows = {(r["strategy"], r["budget"]): r for r in summary["rows"]}
    assert set(rows) == {("greedy", 1), ("self-consistency", 1), ("self-consistency", 2)}
    assert all(r["accuracy"] == 1.0 for r in rows.values())
    assert "self-consistency" in capsys.readouterr().out
    assert main(["report", str(out)]) == 0


def test_eval_bad_input_exits_2(tmp_path: Path, capsys) -> None:
    assert main(["eval", "--dataset", "nope", "--strategy", "greedy"]) == 2
    assert "reasoning-gym" in capsys.readouterr().err
    data = dataset(tmp_path / "d.jsonl")
    assert main(["eval", "--dataset", data, "--strategy", "greedy", "--budgets", "1,x"]) == 2
    assert main(["eval", "--dataset", data, "--strategy", "greedy:k=1"]) == 2
    assert "valid options" in capsys.readouterr().err


def test_kill_9_then_resume_finishes_without_loss_or_repeats(tmp_path: Path, fake_openai_server) -> None:
    fake = fake_openai_server(answer_doubling)
    data = dataset(tmp_path / "d.jsonl", count=10)
    out = tmp_path / "run"
    process = subprocess.Popen(
        [*PONDER, *eval_args(data, fake.url, out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    records = out / "records.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not records.exists() or records.read_text().count("\n") < 3):
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    before = records.read_text().count("\n")
    assert 3 <= before < 20, "the run should have been killed midway"
    sent_before = len(fake.bodies)

    resumed = subprocess.run(
        [*PONDER, *eval_args(data, fake.url, out), "--resume"],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert resumed.returncode == 0, resumed.stderr
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    keys = [(r["strategy"], r["seed"], r["problem"]["id"]) for r in lines]
    assert len(lines) == 20 and len(set(keys)) == 20  # 10 problems × 2 strategies, none twice
    # only unfinished units were generated again: at most the one in flight at the kill is redone
    redone = len(fake.bodies) - sent_before
    assert redone <= (20 - before) * 2 + 2

    fresh = tmp_path / "fresh"
    assert (
        subprocess.run(
            [*PONDER, *eval_args(data, fake.url, fresh)],
            capture_output=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        ).returncode
        == 0
    )
    fresh_keys = [
        (r["strategy"], r["seed"], r["problem"]["id"])
        for r in map(json.loads, (fresh / "records.jsonl").read_text().splitlines())
    ]
    assert sorted(fresh_keys) == sorted(keys)


def test_rescore_adds_a_rule_row_without_generating(tmp_path: Path, fake_openai_server, capsys) -> None:
    def solve_or_judge(body, attempt):
        if body["messages"][0]["content"].startswith("You are a careful grader"):
            return 200, completion(["Score: 9"]), {}
        return answer_doubling(body, attempt)

    fake = fake_openai_server(solve_or_judge)
    out = tmp_path / "run"
    assert main(eval_args(dataset(tmp_path / "d.jsonl", count=3), fake.url, out)) == 0
    solved = len(fake.bodies)
    backend = ["--base-url", fake.url, "--model", "m", "--server", "llama-server"]
    assert main(["rescore", str(out), "--scorer", "judge:mode=verbal", *backend]) == 0
    judged = fake.bodies[solved:]
    assert len(judged) == 3 * 2  # every stored self-consistency sample (n=2), judged once
    assert all(r["messages"][0]["content"].startswith("You are a careful grader") for r in judged)
    rows = json.loads((out / "summary.json").read_text())["rows"]
    assert {r["strategy"] for r in rows} >= {"best-of-n:scorer=[judge:mode=verbal] on self-consistency"}
    captured = capsys.readouterr()
    assert "added rule best-of-n:scorer=[judge:mode=verbal]" in captured.out
    assert "rescored 3 records in " in captured.err


def test_ctrl_c_prints_the_resume_command_and_exits_130(tmp_path: Path, fake_openai_server) -> None:
    fake = fake_openai_server(answer_doubling)
    data = dataset(tmp_path / "d.jsonl", count=10)
    out = tmp_path / "run"
    process = subprocess.Popen(
        [*PONDER, *eval_args(data, fake.url, out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    records = out / "records.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not records.exists() or records.read_text().count("\n") < 3):
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    stored = records.read_text().count("\n")
    assert f"interrupted: {stored} finished units are stored in {out}; resume with:" in err
    command = err.strip().splitlines()[-1].strip()
    words = shlex.split(command)
    assert words[:2] == ["ponder", "eval"] and words[-1] == "--resume" and str(out) in words

    resumed = subprocess.run(
        [*PONDER, *words[1:]], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming: {stored} finished" in resumed.stderr
    assert records.read_text().count("\n") == 20


def test_a_failure_mid_run_names_the_error_and_the_resume_command(tmp_path: Path, fake_openai_server) -> None:
    served = iter(range(1000))

    def fails_after_four(body, attempt):
        if next(served) >= 4:
            return 400, {"error": {"message": "context too long"}}, {}
        return answer_doubling(body, attempt)

    fake = fake_openai_server(fails_after_four)
    out = tmp_path / "run"
    args = eval_args(dataset(tmp_path / "d.jsonl"), fake.url, out)
    del args[args.index("--out") : args.index("--out") + 2]
    del args[args.index("self-consistency") - 1 : args.index("self-consistency") + 1]  # one call in flight
    done = subprocess.run(
        [*PONDER, *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, cwd=tmp_path
    )
    assert done.returncode == 3, done.stderr
    assert "error:" in done.stderr and "context too long" in done.stderr and "Traceback" not in done.stderr
    command = done.stderr.strip().splitlines()[-1].strip()
    words = shlex.split(command)
    # no --out was given: the hint names the directory the run chose
    directory = words[words.index("--out") + 1]
    assert directory.startswith("runs/") and (tmp_path / directory / "records.jsonl").exists()
    assert words[-1] == "--resume"


def test_eval_json_is_one_document_on_stdout(tmp_path: Path, fake_openai_server, capsys) -> None:
    fake = fake_openai_server(answer_doubling)
    out = tmp_path / "run"
    assert main([*eval_args(dataset(tmp_path / "d.jsonl", count=2), fake.url, out), "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["directory"] == str(out)
    assert {row["strategy"] for row in summary["rows"]} == {"greedy", "self-consistency"}
    assert summary["run"]["command"].startswith("ponder eval --dataset")
    assert "wrote" in captured.err


def test_piped_eval_logs_progress_lines_and_how_long_it_took(tmp_path: Path, fake_openai_server) -> None:
    fake = fake_openai_server(answer_doubling)
    done = subprocess.run(
        [*PONDER, *eval_args(dataset(tmp_path / "d.jsonl"), fake.url, tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PONDER_PROGRESS_INTERVAL": "0.1"},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    progress = [line for line in lines if line.startswith("eval: ") and "elapsed" in line]
    assert progress, done.stderr
    assert all("/12 units (" in line for line in progress), progress
    assert any("tok/s" in line for line in progress)
    assert any(line.startswith("eval: 12 units in ") for line in lines)
    assert "\x1b[" not in done.stderr  # no escape codes in a log


def test_report_and_compare_json(tmp_path: Path, fake_openai_server, capsys) -> None:
    fake = fake_openai_server(answer_doubling)
    out = tmp_path / "run"
    assert main(eval_args(dataset(tmp_path / "d.jsonl", count=2), fake.url, out)) == 0
    capsys.readouterr()
    assert main(["report", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["directory"] == str(out) and report["rows"] and "wrote" in captured.err
    assert main(["compare", str(out), str(out), "--json"]) == 0
    comparison = json.loads(capsys.readouterr().out)
    assert len(comparison["runs"]) == 2 and comparison["rows"]
    assert all(len(row["accuracy"]) == len(comparison["columns"]) for row in comparison["rows"])
