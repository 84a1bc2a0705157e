"""Running ``llama-server`` as a child process that never outlives ponder.

The server listens on a free port of 127.0.0.1 only, with one KV-cache slot per parallel stream
(``--ctx-size`` is the per-slot context times the slots, and an explicit ``--parallel`` keeps the KV cache
split per slot, so every slot gets the full per-slot context) and continuous batching, so concurrent
requests share the CPU. Its output goes to a log file in the cache directory; the tail of that log is put
in the error when the server does not come up.

Lifetime: the child gets ``PR_SET_PDEATHSIG=SIGKILL`` (so even ``kill -9`` of ponder takes it down), runs in
its own session (so a Ctrl-C reaches ponder, which then stops it in order through ``atexit`` or the
context manager, instead of racing it), and ``stop()`` sends SIGTERM, then SIGKILL after a grace period.
Linux delivers the parent-death signal when the *thread* that forked the child exits, so every child is
forked from one daemon thread that lives as long as the process, whichever thread calls ``start()``.

Measured on this build (llama-cpp-python 0.3.36 sources = llama.cpp 0.5.0-dev, commit 0c1e570,
``system_fingerprint`` ``"b1-0c1e570"``) with SmolLM2-135M, on ``POST /v1/chat/completions``:

(a) ``n`` > 1 is honoured: ``choices`` has ``n`` entries (``index`` 0..n-1), sampled independently, each
    with its own ``finish_reason`` and ``logprobs``. But ``usage`` describes **one** choice:
    ``usage.completion_tokens`` (and ``timings.predicted_n``) equal the token count of ``choices[0]``
    only (checked with n=4: usage 20 while the choices had 20, 14, 24 and 7 tokens), and
    ``usage.prompt_tokens`` counts the prompt once. Count completion tokens per choice (the length of
    ``choices[i].logprobs.content`` when logprobs are requested, or ``/tokenize``).
(b) A trailing assistant message is continued (assistant prefill): the chat template renders it without
    the end-of-turn token (``POST /apply-template`` ends with the prefill, no ``<|im_end|>``). The
    returned ``choices[0].message.content`` **includes the prefill text** followed by the continuation
    (prefill ``"XYZZY 1, 2, 3,"`` gave ``"XYZZY 1, 2, 3, 4, "``), while ``usage.completion_tokens`` and
    ``logprobs.content`` cover only the new tokens; strip the prefix to get the continuation.
(c) ``"logprobs": true`` with ``"top_logprobs": K`` returns the OpenAI shape:
    ``choices[i].logprobs.content[j]`` = ``{"id", "token", "bytes", "logprob", "top_logprobs": [{"id",
    "token", "bytes", "logprob"}, ...]}``. (``/v1/completions`` with ``"logprobs": K`` uses the same
    ``logprobs.content`` list, not OpenAI's legacy ``tokens``/``token_logprobs`` arrays.)
(d) Prompt caching is on by default (server flag ``--cache-prompt``; per request ``"cache_prompt"``
    defaults to true, ``false`` disables reuse). Reused prompt tokens are reported twice:
    ``usage.prompt_tokens_details.cached_tokens`` and ``timings.cache_n``; ``usage.prompt_tokens`` is the
    whole prompt (cached + evaluated) and ``timings.prompt_n`` the evaluated part only (e.g. 259 prompt
    tokens, second identical-prefix request: ``cached_tokens`` 251, ``prompt_n`` 8).

Also: ``GET /health`` answers 200 ``{"status":"ok"}`` once the model is loaded; ``GET /props``
gives ``total_slots`` and ``default_generation_settings.n_ctx`` (the per-slot context).
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import concurrent.futures
import contextlib
import ctypes
import os
import queue
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from ponder.backends.embedded.paths import cache_dir
from ponder.core.errors import BackendError

_PR_SET_PDEATHSIG = 1
_LOG_TAIL_LINES = 30
_KEEP_LOGS = 10
_PORT_ATTEMPTS = 3


def _load_prctl() -> Callable[..., int] | None:
    """Resolve ``prctl`` in the parent: loading a library in a forked child of a threaded process can hang."""
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):  # not glibc Linux: rely on atexit and stop() alone
        return None


_PRCTL = _load_prctl()


def _set_parent_death_signal() -> None:
    """Runs in the forked child before exec: die with SIGKILL when the forking thread (ponder) dies."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class _Spawner:
    """One daemon thread that forks every child, so the parent-death signal tracks the whole process.

    A thread-pool or ``asyncio.to_thread`` worker that forked the child would kill it when that worker
    exits (for example when ``asyncio.run`` shuts its executor down), long before ponder ends.
    """

    _lock = threading.Lock()
    _requests: queue.Queue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] | None = None

    @classmethod
    def run(cls, action: Callable[[], Any]) -> Any:
        with cls._lock:
            if cls._requests is None:
                cls._requests = queue.Queue()
                threading.Thread(
                    target=cls._serve, args=(cls._requests,), name="ponder-spawner", daemon=True
                ).start()
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        cls._requests.put((action, future))
        return future.result()

    @staticmethod
    def _serve(requests: queue.Queue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]]) -> None:
        while True:
            action, future = requests.get()
            try:
                future.set_result(action())
            except BaseException as error:  # handed to the caller, who re-raises it
                future.set_exception(error)


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free right now (the kernel picks it); the caller retries if it is taken meanwhile."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return "\n".join(line.rstrip("\n") for line in collections.deque(handle, maxlen=lines))
    except OSError:
        return "(no log)"


def _prune_logs(directory: Path, keep: int = _KEEP_LOGS) -> None:
    """Keep the newest few server logs: enough to debug the last runs without growing forever."""
    logs = sorted(directory.glob("llama-server-*.log"), key=lambda path: path.stat().st_mtime, reverse=True)
    for old in logs[keep:]:
        old.unlink(missing_ok=True)


class LlamaServer:
    """A ``llama-server`` child process serving one GGUF model on 127.0.0.1, OpenAI-compatible.

    Use as ``with LlamaServer(...) as server:`` / ``async with``, or call ``start()``/``astart()`` and
    ``stop()``. ``stop()`` is idempotent and also registered with ``atexit``.
    """

    def __init__(
        self,
        model_path: Path | str,
        *,
        binary: Path | str,
        parallel: int = 4,
        context_length: int = 4096,
        threads: int | None = None,
        host: str = "127.0.0.1",
        startup_timeout: float = 120.0,
        stop_timeout: float = 5.0,
        log_dir: Path | str | None = None,
        extra_args: Sequence[str] = (),
    ):
        self.model_path = Path(model_path)
        self.binary = Path(binary)
        self.parallel = parallel
        self.context_length = context_length
        self.threads = threads or os.cpu_count() or 1
        self.host = host
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.extra_args = tuple(extra_args)
        self.log_path: Path | None = None
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_model(cls, name: str, *, quiet: bool = False, **options: Any) -> LlamaServer:
        """A server for a catalog model, preparing the model file and the binary first if needed."""
        from ponder.backends.embedded.accel import choose_acceleration
        from ponder.backends.embedded.models import get_model, prepare_model
        from ponder.backends.embedded.runtime import ensure_llama_server

        model = get_model(name)
        options.setdefault("parallel", model.parallel)
        options.setdefault("context_length", model.context_length)
        options.setdefault("extra_args", choose_acceleration().server_args)  # a CUDA build: layers on the GPU
        path = prepare_model(name, quiet=quiet)
        return cls(path, binary=ensure_llama_server(quiet=quiet), **options)

    # -- properties ---------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise BackendError("llama-server is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """Root URL of the server; the OpenAI-compatible API is under ``base_url + '/v1'``."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def command(self, port: int) -> list[str]:
        """The exact command line (flags checked against ``llama-server --help`` of the pinned version)."""
        return [
            str(self.binary),
            "--model",
            str(self.model_path),
            "--host",
            self.host,
            "--port",
            str(port),
            "--parallel",
            str(self.parallel),
            "--ctx-size",
            str(self.context_length * self.parallel),
            "--cont-batching",
            "--cache-prompt",
            "--threads",
            str(self.threads),
            "--no-webui",
            "--metrics",
            "--log-colors",
            "off",
            *self.extra_args,
        ]

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Launch the server and block until ``GET /health`` answers 200; idempotent while running."""
        with self._lock:
            if self.running:
                return
            if not self.binary.is_file():
                raise BackendError(f"llama-server binary not found: {self.binary}")
            if not self.model_path.is_file():
                raise BackendError(f"model file not found: {self.model_path}")
            log_dir = self.log_dir or cache_dir() / "logs"
            log_dir.mkdir(parents=True, exist_ok=True)
            _prune_logs(log_dir)
            for attempt in range(1, _PORT_ATTEMPTS + 1):
                port = free_port(self.host)
                self.log_path = log_dir / f"llama-server-{os.getpid()}-{port}.log"
                self._launch(port, self.log_path)
                try:
                    self._wait_healthy()
                    return
                except BaseException as error:  # Ctrl-C or a timeout while waiting: leave nothing behind
                    self.stop()
                    if not isinstance(error, _ExitedEarly):
                        raise
                    exited = error
                    lost_port_race = "bind" in exited.log.lower() or "address already in use" in exited.log
                    if not lost_port_race or attempt == _PORT_ATTEMPTS:
                        raise BackendError(
                            f"llama-server exited during startup (exit {exited.code}); "
                            f"log {self.log_path}:\n{exited.log}"
                        ) from None

    async def astart(self) -> None:
        """``start()`` without blocking the event loop (the wait for /health runs in a worker thread)."""
        await asyncio.to_thread(self.start)

    def _launch(self, port: int, log_path: Path) -> None:
        environment = {key: value for key, value in os.environ.items() if not key.startswith("LLAMA_ARG_")}
        log: IO[bytes] = log_path.open("wb")
        command = self.command(port)

        def spawn() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
                start_new_session=True,
                preexec_fn=_set_parent_death_signal,
                close_fds=True,
            )

        try:
            self._process = _Spawner.run(spawn)
        except OSError as error:
            raise BackendError(f"could not start {self.binary}: {error}") from None
        finally:
            log.close()  # the child holds its own copy of the descriptor
        self._port = port
        atexit.register(self.stop)

    def _wait_healthy(self) -> None:
        assert self._process is not None and self.log_path is not None
        deadline = time.monotonic() + self.startup_timeout
        url = f"http://{self.host}:{self._port}/health"
        while True:
            code = self._process.poll()
            if code is not None:
                self._process = None
                raise _ExitedEarly(code, _tail(self.log_path))
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(url, timeout=2) as response,
            ):
                if response.status == 200:
                    return
            if time.monotonic() > deadline:
                raise BackendError(
                    f"llama-server did not become healthy within {self.startup_timeout:.0f}"
                    f" s; log {self.log_path}:\n{_tail(self.log_path)}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after ``stop_timeout``); safe to call repeatedly."""
        process, self._process = self._process, None
        atexit.unregister(self.stop)
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            process.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> LlamaServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> LlamaServer:
        await self.astart()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.astop()


class _ExitedEarly(Exception):
    """The child exited before it was healthy; carries its exit code and log tail for the caller."""

    def __init__(self, code: int, log: str):
        super().__init__(code)
        self.code, self.log = code, log
