"""Progress of long tasks: plain lines in a log (fake clock), a live bar on a terminal, and the first-run
``llama-server`` build driven by a fake ``cmake`` that prints Make's and Ninja's progress lines."""

from __future__ import annotations

import io
import os
import sys
import tarfile
import time
from pathlib import Path

import pytest
from rich.console import Console

from ponder.backends.embedded import runtime
from ponder.progress import TaskProgress, format_duration, progress_interval


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def log_console() -> tuple[Console, io.StringIO]:
    """A console writing to a string, as stderr piped into a CI log (not a terminal)."""
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=False, width=160), buffer


def test_durations_read_like_a_person_writes_them() -> None:
    assert [format_duration(s) for s in (0, 45.4, 59.6, 552, 3600 + 120 + 5)] == [
        "0s",
        "45s",
        "1m00s",
        "9m12s",
        "1h02m",
    ]


def test_interval_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PONDER_PROGRESS_INTERVAL", raising=False)
    assert progress_interval() == 30.0
    monkeypatch.setenv("PONDER_PROGRESS_INTERVAL", "5")
    assert progress_interval() == 5.0
    monkeypatch.setenv("PONDER_PROGRESS_INTERVAL", "soon")
    assert progress_interval() == 30.0


def test_a_log_gets_one_line_per_interval_with_amount_elapsed_and_time_left() -> None:
    console, buffer = log_console()
    clock = FakeClock()
    progress = TaskProgress(console, "eval", 250, unit="units", interval=30, clock=clock, background=False)
    with progress:
        progress.update(advance=37, status="80 tok/s")
        clock.now += 29
        assert not progress.tick()  # not due yet
        clock.now += 12 * 60 - 29
        assert progress.tick()
        assert not progress.tick()  # once per interval
        progress.update(advance=13)
        clock.now += 31
        assert progress.tick()
    progress.done("eval: 50 units")
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "eval: 37/250 units (15%), 80 tok/s, 12m00s elapsed, ~1h09m left"
    assert lines[1] == "eval: 50/250 units (20%), 80 tok/s, 12m31s elapsed, ~50m04s left"
    assert lines[2] == "eval: 50 units in 12m31s"
    assert len(lines) == 3


def test_bytes_and_percent_lines() -> None:
    console, buffer = log_console()
    clock = FakeClock()
    model = TaskProgress(console, "m", 1.12e9, kind="bytes", interval=1, clock=clock, background=False)
    model.start()
    model.update(150e6, step="part 3/22")
    clock.now += 60
    model.tick()
    build = TaskProgress(
        console, "llama-server", 100, kind="percent", interval=1, clock=clock, background=False
    )
    build.start()
    build.update(45, step="compiling with 2 jobs", status="step 57: arg.cpp")
    clock.now += 270
    build.tick()
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "m: 150 MB/1.12 GB (13%), part 3/22, 1m00s elapsed, ~6m28s left"
    assert lines[1] == (
        "llama-server: 45%, compiling with 2 jobs, step 57: arg.cpp, 4m30s elapsed, ~5m30s left"
    )


def test_the_background_thread_writes_lines_while_the_task_is_silent() -> None:
    console, buffer = log_console()
    with TaskProgress(console, "solve", interval=0.05) as progress:
        progress.update(status="3 candidates")
        time.sleep(0.4)  # a long compile step or a slow generation: no update arrives
    lines = buffer.getvalue().splitlines()
    assert len(lines) >= 2
    assert all(line.startswith("solve: 3 candidates, ") and line.endswith("elapsed") for line in lines)


def test_a_terminal_gets_the_live_bar_and_no_plain_lines() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    clock = FakeClock()
    progress = TaskProgress(console, "llama-server", 100, kind="percent", interval=0.01, clock=clock)
    with progress:
        progress.update(45, step="compiling with 2 jobs", status="step 57: arg.cpp")
        clock.now += 5
        assert not progress.tick()
    text = buffer.getvalue()
    assert "llama-server: compiling with 2 jobs" in text and "45%" in text and "step 57: arg.cpp" in text
    assert "elapsed" not in text  # the bar's own columns, not the log line


def test_quiet_prints_nothing() -> None:
    console, buffer = log_console()
    with TaskProgress(console, "x", 10, quiet=True, interval=0.01) as progress:
        progress.update(5)
        time.sleep(0.05)
    progress.done("x")
    assert buffer.getvalue() == ""


@pytest.mark.parametrize(
    ("line", "percent", "step", "steps", "name"),
    [
        ("[ 45%] Building CXX object common/CMakeFiles/common.dir/arg.cpp.o", 45, None, None, "arg.cpp"),
        ("[ 98%] Linking CXX executable ../../bin/llama-server", 98, None, None, "linking llama-server"),
        ("[12/40] Building C object ggml/src/CMakeFiles/ggml-base.dir/ggml.c.o", 30, 12, 40, "ggml.c"),
        ("[100%] Built target llama-server", 100, None, None, ""),
    ],
)
def test_build_lines_give_percent_step_and_file(
    line: str, percent: float, step: int | None, steps: int | None, name: str
) -> None:
    found = runtime.parse_build_line(line)
    assert found is not None
    assert (found.percent, found.step, found.steps, found.name) == (percent, step, steps, name)


def test_other_build_output_is_not_progress() -> None:
    assert runtime.parse_build_line("-- Configuring done (1.2s)") is None
    assert runtime.parse_build_line("ggml.c:12: warning: unused variable") is None


FAKE_CMAKE = """#!{python}
import os, sys, time
args = sys.argv[1:]
if "--build" not in args:
    print("-- The C compiler identification is GNU")
    print("-- Configuring done")
    sys.exit(0)
build = args[args.index("--build") + 1]
files = ["ggml.c", "ggml-cpu.c", "llama.cpp", "arg.cpp", "server.cpp"]
for index, name in enumerate(files, start=1):
    percent = index * 100 // (len(files) + 1)
    print(f"[{{percent:3d}}%] Building CXX object x/CMakeFiles/x.dir/{{name}}.o", flush=True)
    time.sleep({pause})
print("[ 99%] Linking CXX executable ../../bin/llama-server", flush=True)
os.makedirs(os.path.join(build, "bin"), exist_ok=True)
path = os.path.join(build, "bin", "llama-server")
with open(path, "w") as binary:
    binary.write("#!/bin/sh\\necho fake\\n")
os.chmod(path, 0o755)
print("[100%] Built target llama-server", flush=True)
"""


def fake_sdist(destination: Path) -> Path:
    """The llama-cpp-python sdist's layout: the llama.cpp tree under ``vendor/``."""
    source = destination / "tree" / "llama_cpp_python-0.3.36" / "vendor" / "llama.cpp"
    source.mkdir(parents=True)
    (source / "CMakeLists.txt").write_text("project(llama.cpp)\n")
    archive = destination / "llama_cpp_python-0.3.36.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(destination / "tree" / "llama_cpp_python-0.3.36", arcname="llama_cpp_python-0.3.36")
    return archive


@pytest.fixture
def fake_toolchain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty cache, a CPU build, and a fake ``cmake`` first on PATH (the compiler and make stay)."""
    monkeypatch.setenv("PONDER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PONDER_CUDA", "0")
    monkeypatch.delenv(runtime.ENV_BINARY, raising=False)
    tools = tmp_path / "bin"
    tools.mkdir()
    cmake = tools / "cmake"
    cmake.write_text(FAKE_CMAKE.format(python=sys.executable, pause=0.15))
    cmake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")


def test_first_build_in_a_log_prints_periodic_lines_and_how_long_it_took(
    fake_toolchain: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PONDER_PROGRESS_INTERVAL", "0.1")
    console, buffer = log_console()
    binary = runtime.ensure_llama_server(console=console, download=fake_sdist)
    assert binary == runtime.cached_binary() and os.access(binary, os.X_OK)
    lines = buffer.getvalue().splitlines()
    progress = [line for line in lines if line.startswith("llama-server: ")]
    assert any("compiling with" in line and "% " not in line and "step " in line for line in progress), lines
    assert any(line.startswith("llama-server: ") and "elapsed" in line for line in progress)
    assert any(line.startswith("built llama-server in ") for line in lines), lines
    assert lines[-1] == f"llama-server ready: {binary}"
    # the second call finds the cached binary and prints nothing
    console2, buffer2 = log_console()
    assert runtime.ensure_llama_server(console=console2, download=fake_sdist) == binary
    assert buffer2.getvalue() == ""


def test_first_build_on_a_terminal_shows_the_bar_with_steps(fake_toolchain: None) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=150)
    runtime.ensure_llama_server(console=console, download=fake_sdist)
    text = buffer.getvalue()
    assert "llama-server: built" in text and "100%" in text and "6 steps" in text
    assert "built llama-server in " in text


def test_model_assembly_in_a_log_names_the_part_bytes_and_how_long_it_took(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_embedded_parts import _fake_model

    from ponder.backends.embedded import models

    monkeypatch.setenv("PONDER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PONDER_PROGRESS_INTERVAL", "0.05")
    model, fake = _fake_model(tmp_path, [b"GGUF" + b"a" * 4000, b"b" * 3000, b"c" * 3000])
    monkeypatch.setitem(models.MODELS, model.name, model)

    def slow_download(requirement: str, destination: Path) -> Path:
        time.sleep(0.2)  # a gigabyte from PyPI: the log still hears from it
        path: Path = fake["download"](requirement, destination)
        return path

    console, buffer = log_console()
    models.prepare_model(model.name, console=console, download=slow_download)
    lines = buffer.getvalue().splitlines()
    assert lines[0].startswith("assembling model fake-model (0.00 GB) from 3 PyPI package(s)")
    progress = [line for line in lines if line.startswith("fake-model: ")]
    assert any("part 2/3 (fake-part2)" in line and "elapsed" in line for line in progress), lines
    assert any("kB/10 kB (" in line for line in progress), lines
    assert lines[-1].startswith("assembled and verified model fake-model in ")


def test_ponder_setup_prints_the_build_progress_and_how_long_it_took(
    fake_toolchain: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from test_embedded_parts import _fake_model

    from ponder.backends.embedded import models
    from ponder.cli.main import main

    monkeypatch.setenv("PONDER_PROGRESS_INTERVAL", "0.1")
    monkeypatch.setattr(runtime, "pip_download", lambda _, destination, **__: fake_sdist(destination))
    model, fake = _fake_model(tmp_path, [b"GGUF" + b"x" * 100])
    monkeypatch.setitem(models.MODELS, model.name, model)
    models.prepare_model(model.name, quiet=True, download=fake["download"])
    assert main(["setup", "--model", model.name]) == 0
    err = capsys.readouterr().err
    assert "building llama-server from llama-cpp-python==" in err
    assert "llama-server: " in err and "compiling with" in err and "elapsed" in err
    assert "built llama-server in " in err
    assert "ready: fake-model at " in err and "(setup took " in err
