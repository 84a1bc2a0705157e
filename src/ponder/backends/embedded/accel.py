"""What the embedded ``llama-server`` is built for: CUDA where a toolkit and a GPU are, else the CPU.

A CPU build of llama.cpp runs everywhere but decodes a 0.5B model at tens of tokens/s; the same sources built
with ``GGML_CUDA=ON`` run it at thousands on one GPU. Building for CUDA needs ``nvcc`` (the toolkit, not just
the driver) and, to run, a GPU. So the choice is made in this order:

1. ``$PONDER_CUDA`` (``1`` asks for CUDA, ``0`` forbids it) for one process;
2. the choice ``ponder setup --cuda`` or ``--no-cuda`` saved in the cache directory, so that every later
   ``ponder solve`` or ``ponder serve`` on this machine runs the binary that setup built;
3. detection: CUDA when ``nvcc`` is found (``PATH``, ``$CUDA_HOME``, ``$CUDA_PATH``, ``/usr/local/cuda``) and
   ``nvidia-smi`` lists a GPU, else the CPU.

The CUDA flags are those seen building on an H200 (nvcc 13.0): the GPUs' own compute capabilities as
``CMAKE_CUDA_ARCHITECTURES`` (one architecture compiles in about 4 minutes on 16 cores; llama.cpp's
default list takes several times that), NCCL off (one GPU per server). They join the build flags, which key
the binary's cache directory, so a CUDA and a CPU build live side by side; the CPU build's flags are
unchanged, so its cached binary stays valid.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ponder.backends.embedded.paths import cache_dir
from ponder.core.errors import SetupError

ENV_CUDA = "PONDER_CUDA"
#: the saved choice (``cuda`` or ``cpu``), beside the cached binaries
CHOICE_FILE = Path("runtime") / "acceleration"
_NVIDIA_SMI_TIMEOUT = 20.0
#: where the toolkit installs itself when it is not on PATH
_DEFAULT_HOMES: tuple[str, ...] = ("/usr/local/cuda",)


@dataclass(frozen=True)
class Acceleration:
    """A build target: the CMake flags it adds and the ``llama-server`` arguments it runs with."""

    name: str
    cmake_flags: tuple[str, ...] = ()
    server_args: tuple[str, ...] = ()


CPU = Acceleration("cpu")


def find_nvcc() -> Path | None:
    """The CUDA compiler, from ``PATH`` or the toolkit's usual homes; None when no toolkit is installed."""
    found = shutil.which("nvcc")
    if found:
        return Path(found)
    homes = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), *_DEFAULT_HOMES]
    for home in filter(None, homes):
        candidate = Path(home) / "bin" / "nvcc"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def gpu_architectures() -> tuple[str, ...]:
    """The CUDA architectures of the visible GPUs (``("90",)`` for an H100 or H200); empty when none answer.

    Read from ``nvidia-smi``, which ships with the driver: no GPU listed means no GPU this process can use.
    """
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ()
    try:
        answer = subprocess.run(
            [smi, "--query-gpu=compute_cap", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=_NVIDIA_SMI_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ()
    if answer.returncode != 0:
        return ()
    found = {line.strip().replace(".", "") for line in answer.stdout.splitlines()}
    return tuple(sorted(value for value in found if value.isdigit()))


def cuda_acceleration(nvcc: Path, architectures: tuple[str, ...]) -> Acceleration:
    """The CUDA build target for ``nvcc``; with no architectures known, llama.cpp's default list is built."""
    flags = ["-DGGML_CUDA=ON", f"-DCMAKE_CUDA_COMPILER={nvcc}", "-DGGML_CUDA_NCCL=OFF"]
    if architectures:
        flags.append(f"-DCMAKE_CUDA_ARCHITECTURES={';'.join(architectures)}")
    # every layer on the GPU: the default ("auto") may keep some on the CPU to fit a larger context
    return Acceleration("cuda", tuple(flags), ("--n-gpu-layers", "all"))


def _parse_switch(value: str, where: str) -> bool:
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on", "cuda"):
        return True
    if text in ("0", "false", "no", "off", "cpu"):
        return False
    raise SetupError(f"{where} must be 1 (CUDA) or 0 (CPU), got {value!r}")


def saved_choice() -> bool | None:
    """What ``ponder setup --cuda``/``--no-cuda`` saved: True for CUDA, False for the CPU, None if nothing."""
    path = cache_dir() / CHOICE_FILE
    try:
        return _parse_switch(path.read_text(), str(path))
    except FileNotFoundError:
        return None


def save_choice(cuda: bool) -> None:
    """Remember the build target for every later run on this machine (``ponder setup --cuda/--no-cuda``)."""
    path = cache_dir() / CHOICE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("cuda\n" if cuda else "cpu\n")


@functools.lru_cache(maxsize=1)
def _detected() -> tuple[Path | None, tuple[str, ...]]:
    """nvcc and the GPUs' architectures, looked up once per process (``nvidia-smi`` takes a moment)."""
    return find_nvcc(), gpu_architectures()


def choose_acceleration(cuda: bool | None = None) -> Acceleration:
    """The build target: ``cuda`` if given, else ``$PONDER_CUDA``, else the saved choice, else detection.

    Asking for CUDA where no ``nvcc`` is found fails with what to install; asking for it with no GPU
    visible builds for llama.cpp's default architectures (a build machine need not be the one that runs).
    """
    if cuda is None and os.environ.get(ENV_CUDA, "").strip():
        cuda = _parse_switch(os.environ[ENV_CUDA], f"${ENV_CUDA}")
    if cuda is None:
        cuda = saved_choice()
    nvcc, architectures = _detected()
    if cuda is None:
        cuda = nvcc is not None and bool(architectures)
    if not cuda:
        return CPU
    if nvcc is None:
        raise SetupError(
            "a CUDA build of llama-server was asked for, but no nvcc was found on PATH, in $CUDA_HOME/bin, "
            "$CUDA_PATH/bin or /usr/local/cuda/bin: install the CUDA toolkit (not only the driver), or "
            f"build for the CPU (ponder setup --no-cuda, or {ENV_CUDA}=0)"
        )
    return cuda_acceleration(nvcc, architectures)
