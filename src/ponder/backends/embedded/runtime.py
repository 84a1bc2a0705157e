"""Providing ``llama-server``: an explicit binary, a cached build, or a one-time build from PyPI sources.

No prebuilt ``llama-server`` is on PyPI, but the ``llama-cpp-python`` source distribution vendors the
complete llama.cpp tree, so ponder downloads that sdist (pinned) and compiles just the server target with
CMake. The build uses llama.cpp's default ``-march=native``, which ties the binary to the CPU that built it,
so the cache key holds the sdist version and a hash of the CPU flags and architecture: a home directory
shared between different machines gets one binary per CPU kind instead of an illegal-instruction crash.
The build takes 8–11 minutes on 2 cores, so it shows its progress (CMake's ``[ NN%]`` or Ninja's ``[N/M]``
lines, the step and the file being compiled, the elapsed time: a live bar on a terminal, a plain line
every 30 s in a log) and says how long it took; it happens once, and concurrent processes wait on a file
lock and reuse the result.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import os
import platform
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from ponder.backends.embedded.accel import choose_acceleration
from ponder.backends.embedded.models import pip_download
from ponder.backends.embedded.paths import cache_dir, exclusive_lock
from ponder.core.errors import SetupError
from ponder.progress import TaskProgress

#: The sdist whose ``vendor/llama.cpp`` is built; bumping it gives a new cache key and a rebuild.
LLAMA_CPP_PYTHON_VERSION = "0.3.36"

#: Exactly the flags seen working here. Without ``LLAMA_USE_PREBUILT_UI=OFF`` the build tries to fetch
#: web assets from a hub; OpenSSL and curl are off because the server only listens on 127.0.0.1 and
#: never downloads models itself; static linking keeps the cached binary self-contained.
CMAKE_FLAGS: tuple[str, ...] = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_CURL=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
)

#: llama.cpp's AMX matmul kernels segfault on some Sapphire Rapids machines (ggml-org/llama.cpp#20824,
#: closed unfixed; reproduced on this project's build machine at the first decode of every model), and
#: ``-march=native`` enables them wherever the CPU has AMX. Switching the AMX ISA off in the compiler keeps
#: every other native feature (AVX-512, VNNI, the repacked CPU kernels). Added only on x86-64 compilers
#: that accept the flags; the flags are part of the cache key, so changing them rebuilds.
NO_AMX_FLAGS: tuple[str, ...] = ("-mno-amx-tile", "-mno-amx-int8", "-mno-amx-bf16")

BINARY_NAME = "llama-server"
ENV_BINARY = "PONDER_LLAMA_SERVER"
_OUTPUT_TAIL_LINES = 40
_PERCENT = re.compile(r"^\[\s*(\d+)%\]")
_NINJA_STEP = re.compile(r"^\[(\d+)/(\d+)\]")
_SOURCE_FILE = re.compile(r"([\w.+-]+\.(?:c|cc|cpp|cxx|cu|m|mm))\.o\b")
_LINKING = re.compile(r"Linking \w+ (?:static library|shared library|executable) (\S+)")

#: Fetches the sdist into a directory and returns its path; injectable for tests.
SdistDownloader = Callable[[Path], Path]


def _cpu_fingerprint() -> str:
    """Short hash of the CPU feature flags and machine architecture (the things ``-march=native`` uses)."""
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith(("flags", "Features")):
                    flags = " ".join(sorted(line.split(":", 1)[1].split()))
                    break
    except OSError:
        flags = platform.processor()
    return hashlib.sha256(f"{platform.machine()}|{flags}".encode()).hexdigest()[:12]


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


def _compiler_accepts(flags: tuple[str, ...]) -> bool:
    compiler = _compiler()
    if compiler is None:
        return False
    probe = subprocess.run([compiler, *flags, "-x", "c++", "-E", os.devnull], capture_output=True)
    return probe.returncode == 0


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> tuple[str, ...]:
    """``CMAKE_FLAGS`` plus AMX switched off on x86-64 (probed once: it runs the compiler)."""
    if platform.machine().lower() in ("x86_64", "amd64") and _compiler_accepts(NO_AMX_FLAGS):
        extra = " ".join(NO_AMX_FLAGS)
        return (*CMAKE_FLAGS, f"-DCMAKE_C_FLAGS={extra}", f"-DCMAKE_CXX_FLAGS={extra}")
    return CMAKE_FLAGS


def build_flags() -> tuple[str, ...]:
    """The CMake arguments of this machine's build: the CPU flags, then the accelerator's (``accel``; none
    for a CPU build, so its cache key is what it was before CUDA builds existed)."""
    return (*_cpu_flags(), *choose_acceleration().cmake_flags)


def runtime_dir(flags: tuple[str, ...] | None = None) -> Path:
    """Cache directory of the binary for this sdist version, this kind of CPU and these build flags."""
    flags = build_flags() if flags is None else flags
    key = hashlib.sha256(f"{_cpu_fingerprint()}|{' '.join(flags)}".encode()).hexdigest()[:12]
    return cache_dir() / "runtime" / f"llama-server-{LLAMA_CPP_PYTHON_VERSION}-{key}"


def cached_binary() -> Path:
    """Where the built ``llama-server`` is (or will be) cached."""
    return runtime_dir() / BINARY_NAME


def _explicit_binary() -> Path | None:
    value = os.environ.get(ENV_BINARY)
    if not value:
        return None
    path = Path(value).expanduser()
    return path if path.is_file() else None


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def runtime_ready() -> bool:
    """True when a ``llama-server`` is available without building (explicit via env, or cached)."""
    return _explicit_binary() is not None or _is_executable(cached_binary())


def _check_toolchain() -> None:
    """Fail with an actionable hint before downloading anything if the build cannot work."""
    missing = []
    if shutil.which("cmake") is None:
        missing.append("cmake")
    if _compiler() is None:
        missing.append("a C++ compiler")
    if shutil.which("make") is None and shutil.which("ninja") is None:
        missing.append("make")
    if missing:
        raise SetupError(
            f"building llama-server needs {', '.join(missing)}, which were not found on PATH. Install them "
            "(Debian/Ubuntu: `apt-get install cmake g++ make`; macOS: `xcode-select --install` and "
            f"`brew install cmake`) or point {ENV_BINARY} at an existing llama-server binary"
        )


def _download_sdist(destination: Path) -> Path:
    return pip_download(f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}", destination, only_binary=False)


def _extract(archive_path: Path, destination: Path) -> Path:
    """Unpack the sdist and return its ``vendor/llama.cpp`` directory."""
    try:
        with tarfile.open(archive_path) as archive:
            archive.extractall(destination, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise SetupError(f"could not unpack {archive_path.name}: {error}") from None
    candidates = sorted(destination.glob("*/vendor/llama.cpp/CMakeLists.txt"))
    if not candidates:
        raise SetupError(
            f"{archive_path.name} has no vendor/llama.cpp/CMakeLists.txt; cannot build llama-server"
        )
    return candidates[0].parent


def _run_logged(command: list[str], tail: collections.deque[str], on_line: Callable[[str], None]) -> int:
    """Run a build step, keeping the last lines of its combined output for an error message.

    On Ctrl-C the step is killed rather than waited for, so the build tree can be removed at once.
    """
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1
    ) as process:
        assert process.stdout is not None
        try:
            for line in process.stdout:
                line = line.rstrip("\n")
                tail.append(line)
                on_line(line)
        except BaseException:
            process.kill()
            raise
        return process.wait()


@dataclass
class BuildStep:
    """What one line of the build's output says: the share done and the step it started, if any."""

    percent: float | None = None
    step: int | None = None
    steps: int | None = None
    name: str = ""


def parse_build_line(line: str) -> BuildStep | None:
    """Read Make's ``[ 45%] Building CXX object .../arg.cpp.o`` or Ninja's ``[12/340] Building ...``.

    ``name`` is the source file or the library being linked, so the display can say what it is on.
    """
    ninja = _NINJA_STEP.match(line)
    make = _PERCENT.match(line)
    if ninja:
        step, steps = int(ninja.group(1)), int(ninja.group(2))
        result = BuildStep(percent=100 * step / max(steps, 1), step=step, steps=steps)
        rest = line[ninja.end() :]
    elif make:
        result = BuildStep(percent=float(make.group(1)))
        rest = line[make.end() :]
    else:
        return None
    source = _SOURCE_FILE.search(rest)
    linking = _LINKING.search(rest)
    if source:
        result.name = source.group(1)
    elif linking:
        result.name = "linking " + Path(linking.group(1)).name
    return result


def _build(source: Path, build: Path, flags: tuple[str, ...], progress: TaskProgress) -> Path:
    """Configure and compile the ``llama-server`` target, reporting to ``progress``; return the binary."""
    tail: collections.deque[str] = collections.deque(maxlen=_OUTPUT_TAIL_LINES)
    jobs = str(os.cpu_count() or 1)
    progress.update(step="configuring with CMake")
    configure = ["cmake", "-S", str(source), "-B", str(build), *flags]
    code = _run_logged(configure, tail, lambda line: None)
    if code != 0:
        raise SetupError(
            f"CMake configuration of llama.cpp failed (exit {code}); last output:\n" + "\n".join(tail)
        )
    compiling = f"compiling with {jobs} jobs"
    progress.update(step=compiling)
    started = 0

    def advance(line: str) -> None:
        nonlocal started
        found = parse_build_line(line)
        if found is None:
            return
        if found.step is not None:
            started = found.step
        elif found.name:  # Make numbers no steps: count the lines that start one (not "Built target")
            started += 1
        counter = f"step {started}/{found.steps}" if found.steps else f"step {started}"
        status = f"{counter}: {found.name}" if found.name else counter
        progress.update(found.percent, step=compiling, status=status)

    command = ["cmake", "--build", str(build), "--config", "Release", "--target", BINARY_NAME, "-j", jobs]
    code = _run_logged(command, tail, advance)
    if code != 0:
        raise SetupError(f"compiling llama-server failed (exit {code}); last output:\n" + "\n".join(tail))
    progress.update(100, step="built", status=f"{started} steps")
    for candidate in (build / "bin" / BINARY_NAME, build / "bin" / "Release" / BINARY_NAME):
        if candidate.is_file():
            return candidate
    raise SetupError(f"the build finished but {BINARY_NAME} was not found under {build / 'bin'}")


def _install(built: Path, target: Path) -> None:
    """Copy the binary into the cache atomically, so no one ever runs a half-copied file."""
    handle, temp_name = tempfile.mkstemp(prefix=f".{BINARY_NAME}.", dir=target.parent)
    os.close(handle)
    try:
        shutil.copyfile(built, temp_name)
        os.chmod(temp_name, 0o755)
        os.replace(temp_name, target)
    finally:
        Path(temp_name).unlink(missing_ok=True)


def ensure_llama_server(
    quiet: bool = False,
    *,
    console: Console | None = None,
    download: SdistDownloader = _download_sdist,
) -> Path:
    """Return the path of a runnable ``llama-server``, building it once if needed.

    Order: ``$PONDER_LLAMA_SERVER`` (an explicit binary, used when it exists), then the cached build for
    this version and CPU, then a fresh build from the pinned ``llama-cpp-python`` sdist. Raises
    ``SetupError`` with a hint when the toolchain is missing and with the build's last output on failure.
    """
    explicit = _explicit_binary()
    if explicit is not None:
        return explicit
    flags = build_flags()
    target = runtime_dir(flags) / BINARY_NAME
    if _is_executable(target):
        return target
    output = console or Console(stderr=True)

    def say_waiting() -> None:
        if not quiet:
            output.print("waiting for another ponder process that is building llama-server ...")

    target.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(target.parent / ".build.lock", on_wait=say_waiting):
        if _is_executable(target):
            return target
        _check_toolchain()
        if not quiet:
            output.print(
                f"building llama-server from llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION} sources "
                f"(one time, about 10 minutes on 2 cores); it will be cached in {target.parent}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        workdir = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
        progress = TaskProgress(output, BINARY_NAME, 100, kind="percent", quiet=quiet)
        try:
            with progress:
                downloads = workdir / "download"
                downloads.mkdir()
                progress.update(step=f"downloading llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION} sources")
                archive = download(downloads)
                progress.update(step="unpacking the sources")
                source = _extract(archive, workdir / "src")
                archive.unlink(missing_ok=True)
                built = _build(source, workdir / "build", flags, progress)
                _install(built, target)
            progress.done(f"built {BINARY_NAME}")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    if not quiet:
        output.print(f"llama-server ready: {target}", markup=False, highlight=False, soft_wrap=True)
    return target
