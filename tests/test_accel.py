"""Choosing the embedded runtime's build target: CUDA where nvcc and a GPU are, the CPU otherwise, an explicit
choice (``$PONDER_CUDA``, ``ponder setup --cuda/--no-cuda``) over detection, and a separate cache per target.

Detection runs the real lookups against fake ``nvcc`` and ``nvidia-smi`` scripts put first on ``PATH``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ponder.backends.embedded import accel, runtime
from ponder.backends.embedded.server import LlamaServer
from ponder.cli.main import main
from ponder.core.errors import SetupError


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty cache, no ``$PONDER_CUDA``, and a PATH holding only a folder the test fills (plus the
    system's compilers, so the CPU flag probe still runs)."""
    monkeypatch.setenv("PONDER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(accel.ENV_CUDA, raising=False)
    for name in ("CUDA_HOME", "CUDA_PATH"):
        monkeypatch.delenv(name, raising=False)
    tools = tmp_path / "bin"
    tools.mkdir()
    monkeypatch.setenv("PATH", f"{tools}:/usr/bin:/bin")
    monkeypatch.setattr(accel, "_DEFAULT_HOMES", ())
    accel._detected.cache_clear()
    yield tools
    accel._detected.cache_clear()


def tool(directory: Path, name: str, script: str) -> Path:
    path = directory / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(0o755)
    return path


def gpus(directory: Path, *capabilities: str) -> None:
    lines = "\\n".join(capabilities)
    tool(directory, "nvidia-smi", f'printf "{lines}\\n"')


def test_no_toolkit_builds_for_the_cpu_with_the_old_cache_key(isolated: Path) -> None:
    gpus(isolated, "9.0")  # a driver and a GPU, but no nvcc: nothing to build CUDA code with
    assert accel.choose_acceleration() == accel.CPU
    assert runtime.build_flags() == runtime._cpu_flags()
    assert runtime.runtime_dir() == runtime.runtime_dir(runtime._cpu_flags())


def test_toolkit_and_gpu_build_for_cuda_at_the_gpus_architectures(isolated: Path) -> None:
    nvcc = tool(isolated, "nvcc", "exit 0")
    gpus(isolated, "9.0", "8.9", "9.0")
    chosen = accel.choose_acceleration()
    assert chosen.name == "cuda"
    assert "-DGGML_CUDA=ON" in chosen.cmake_flags
    assert f"-DCMAKE_CUDA_COMPILER={nvcc}" in chosen.cmake_flags
    assert "-DCMAKE_CUDA_ARCHITECTURES=89;90" in chosen.cmake_flags
    assert chosen.server_args == ("--n-gpu-layers", "all")
    # a CUDA binary is cached apart from the CPU one
    assert set(chosen.cmake_flags) <= set(runtime.build_flags())
    assert runtime.runtime_dir() != runtime.runtime_dir(runtime._cpu_flags())


def test_toolkit_without_a_gpu_stays_on_the_cpu_unless_asked(isolated: Path, monkeypatch: Any) -> None:
    tool(isolated, "nvcc", "exit 0")
    tool(isolated, "nvidia-smi", "echo 'NVIDIA-SMI has failed' >&2; exit 9")
    assert accel.choose_acceleration() == accel.CPU
    monkeypatch.setenv(accel.ENV_CUDA, "1")
    forced = accel.choose_acceleration()
    assert forced.name == "cuda"  # a build machine need not run it: llama.cpp's default architectures
    assert not any(flag.startswith("-DCMAKE_CUDA_ARCHITECTURES") for flag in forced.cmake_flags)


def test_cuda_home_is_searched_when_nvcc_is_not_on_path(
    isolated: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    home = tmp_path / "cuda-13.0"
    (home / "bin").mkdir(parents=True)
    nvcc = tool(home / "bin", "nvcc", "exit 0")
    monkeypatch.setenv("CUDA_HOME", str(home))
    assert accel.find_nvcc() == nvcc


def test_asking_for_cuda_without_a_toolkit_says_what_to_install(isolated: Path, monkeypatch: Any) -> None:
    gpus(isolated, "9.0")
    with pytest.raises(SetupError, match="install the CUDA toolkit"):
        accel.choose_acceleration(cuda=True)
    monkeypatch.setenv(accel.ENV_CUDA, "yes please")
    with pytest.raises(SetupError, match="PONDER_CUDA must be 1"):
        accel.choose_acceleration()


def test_the_saved_choice_beats_detection_and_the_environment_beats_both(
    isolated: Path, monkeypatch: Any
) -> None:
    tool(isolated, "nvcc", "exit 0")
    gpus(isolated, "9.0")
    assert accel.saved_choice() is None
    accel.save_choice(False)
    assert accel.saved_choice() is False
    assert accel.choose_acceleration() == accel.CPU
    monkeypatch.setenv(accel.ENV_CUDA, "1")
    assert accel.choose_acceleration().name == "cuda"
    monkeypatch.setenv(accel.ENV_CUDA, "0")
    accel.save_choice(True)
    assert accel.choose_acceleration() == accel.CPU


def test_a_cuda_server_puts_every_layer_on_the_gpu(isolated: Path, monkeypatch: Any) -> None:
    tool(isolated, "nvcc", "exit 0")
    gpus(isolated, "9.0")
    from ponder.backends.embedded import models

    monkeypatch.setattr(models, "prepare_model", lambda name, **_: Path("/models/x.gguf"))
    monkeypatch.setattr(runtime, "ensure_llama_server", lambda quiet=False: Path("/bin/llama-server"))
    server = LlamaServer.for_model(models.DEFAULT_MODEL, quiet=True)
    assert server.extra_args == ("--n-gpu-layers", "all")
    monkeypatch.setenv(accel.ENV_CUDA, "0")
    assert LlamaServer.for_model(models.DEFAULT_MODEL, quiet=True).extra_args == ()


def test_setup_cuda_flag_saves_the_choice_before_building(isolated: Path, monkeypatch: Any) -> None:
    tool(isolated, "nvcc", "exit 0")
    built: list[tuple[str, ...]] = []

    def fake_ensure(*args: Any, **kwargs: Any) -> Path:
        built.append(runtime.build_flags())
        return Path("/bin/llama-server")

    monkeypatch.setattr(runtime, "ensure_llama_server", fake_ensure)
    from ponder.backends.embedded import models

    monkeypatch.setattr(models, "prepare_model", lambda name, **_: Path("/models/x.gguf"))
    assert main(["setup", "--cuda"]) == 0
    assert accel.saved_choice() is True and "-DGGML_CUDA=ON" in built[-1]
    assert main(["setup", "--no-cuda"]) == 0
    assert accel.saved_choice() is False and "-DGGML_CUDA=ON" not in built[-1]


def test_setup_cuda_without_a_toolkit_fails_and_saves_nothing(
    isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["setup", "--cuda"]) == 4
    assert "install the CUDA toolkit" in capsys.readouterr().err
    assert accel.saved_choice() is None
