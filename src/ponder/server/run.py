"""Turn ``ponder serve`` flags into upstreams and settings, check that binding is safe, and serve."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import signal
from pathlib import Path
from typing import Any

import httpx

from ponder.backends.embedded.backend import EmbeddedBackend
from ponder.backends.openai import OpenAIBackend, server_capabilities
from ponder.backends.replicas import ReplicaBackend
from ponder.core.errors import UsageError
from ponder.server.app import ServerSettings, Upstream, create_app


def upstream_key(name: str) -> str | None:
    """The upstream's API key from the environment (never a flag: flags show in process lists).

    ``PONDER_UPSTREAM_KEY_<NAME>`` (NAME upper-cased, non-alphanumerics as ``_``) wins over
    ``PONDER_UPSTREAM_KEY``, which applies to every upstream.
    """
    specific = "PONDER_UPSTREAM_KEY_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()
    return os.environ.get(specific) or os.environ.get("PONDER_UPSTREAM_KEY") or None


def parse_upstream(
    text: str, server: str = "generic", timeout: float = 600.0, max_in_flight: str | int | None = None
) -> Upstream:
    """``NAME=URL``: the model id NAME (routed by the request's model name) served at URL, with at most
    ``max_in_flight`` samples in flight (``--upstream-max-in-flight``: N, ``auto`` or ``auto:N``)."""
    name, sep, url = text.partition("=")
    name, url = name.strip(), url.strip()
    if not sep or not name or not url.startswith(("http://", "https://")):
        raise UsageError(f"--upstream {text!r} must be NAME=URL, e.g. qwen=http://127.0.0.1:8001/v1")
    backend = OpenAIBackend(
        model=name,
        base_url=url,
        api_key=upstream_key(name),
        server=server,
        capabilities=server_capabilities(server),
        timeout=timeout,
        max_in_flight=max_in_flight,
        label=name,  # errors the server returns name the upstream, never its URL
    )
    return Upstream(name, backend)


def parse_upstreams(
    texts: list[str],
    server: str = "generic",
    timeout: float = 600.0,
    max_in_flight: str | int | None = None,
) -> list[Upstream]:
    """Every ``--upstream``: ``NAME=URL``, or ``*=URL`` for each model the server at URL lists.

    ``NAME=URL`` given again with another URL adds a replica: the upstream balances its samples over the
    replicas (``ponder.backends.replicas``: least outstanding samples, a failing replica skipped for a
    while). A name that ``*=URL`` discovers keeps where it was first put (a model named explicitly before
    ``*=URL`` stays there), and the first upstream, the default model, is the first one given or discovered.
    """
    groups: dict[str, list[Upstream]] = {}
    for text in texts:
        name, _, url = text.partition("=")
        if name.strip() == "*":
            for model in discover_models(url.strip(), timeout):
                groups.setdefault(
                    model, [parse_upstream(f"{model}={url.strip()}", server, timeout, max_in_flight)]
                )
            continue
        upstream = parse_upstream(text, server, timeout, max_in_flight)
        group = groups.setdefault(upstream.name, [])
        if all(known.url != upstream.url for known in group):
            group.append(upstream)
    return [
        group[0] if len(group) == 1 else Upstream(name, ReplicaBackend.of([u.backend for u in group]))
        for name, group in groups.items()
    ]


def discover_models(url: str, timeout: float = 600.0) -> list[str]:
    """The model ids the OpenAI-compatible server at ``url`` lists (``GET URL/models``), asked once now.

    The request carries ``PONDER_UPSTREAM_KEY`` if set; an unreachable server, a refusal or an empty list
    stops the server from starting, with the reason.
    """
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--upstream '*={url}' must be *=URL, e.g. *=http://127.0.0.1:8001/v1")
    key = upstream_key("*")
    headers = {"authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.get(
            f"{url.rstrip('/')}/models", headers=headers, timeout=min(timeout, 30.0), trust_env=False
        )
        response.raise_for_status()
        ids = [str(entry["id"]) for entry in response.json()["data"]]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
        raise UsageError(f"cannot list the models of {url} (--upstream '*=URL'): {error}") from None
    if not ids:
        raise UsageError(f"the server at {url} lists no models (--upstream '*=URL')")
    return ids


def parse_preset(text: str) -> tuple[str, str]:
    """``NAME=SPEC``: a strategy of the operator's that clients ask for as ``ponder:NAME@MODEL``."""
    name, sep, spec = text.partition("=")
    if not sep or not name.strip() or not spec.strip():
        raise UsageError(f"--preset {text!r} must be NAME=SPEC, e.g. careful=best-of-n:n=8,scorer=judge")
    return name.strip(), spec.strip()


def load_keys(keys: list[str], keys_file: Path | None) -> frozenset[str]:
    """API keys from flags and a file (one per line; blank lines and ``#`` comments skipped)."""
    found = [k.strip() for k in keys if k.strip()]
    if keys_file is not None:
        try:
            lines = keys_file.read_text().splitlines()
        except OSError as error:
            raise UsageError(f"cannot read --client-keys-file {keys_file}: {error.strerror}") from None
        found += [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    return frozenset(found)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, keys: frozenset[str]) -> None:
    """Refuse to serve beyond this machine without authentication."""
    if not is_loopback(host) and not keys:
        raise UsageError(
            f"refusing to bind {host} without client keys (PONDER_SERVE_API_KEYS or --client-keys-file); "
            "only loopback may be served without them"
        )


def serve(
    host: str,
    port: int,
    upstreams: list[Upstream],
    settings: ServerSettings,
    log_level: str = "info",
    workers: int = 1,
) -> None:
    """Run the server until interrupted (uvicorn on uvloop and httptools where installed; access logs carry
    no headers, so no keys).

    With ``workers`` above one, the socket is bound here and that many forked processes serve it, each
    with its own event loop, upstream connections and caps (``max_in_flight`` and the queue are per
    worker). The embedded model cannot be shared so: it takes one worker.
    """
    import uvicorn

    check_bind(host, settings.api_keys)
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s:     %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per upstream call is noise
    if settings.default_strategy:  # fail on a bad default before binding
        from ponder.strategies import STRATEGIES

        STRATEGIES.build(settings.default_strategy)
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if workers > 1 and any(isinstance(u.backend, EmbeddedBackend) for u in upstreams):
        raise UsageError("--workers above 1 needs --upstream servers: the embedded model takes one worker")
    if workers > 1 and not hasattr(os, "fork"):
        raise UsageError("--workers above 1 needs fork (Linux, macOS)")
    config = uvicorn.Config(
        create_app(upstreams, settings),
        host=host,
        port=port,
        log_level=log_level,
        loop="auto",  # uvloop when installed
        http="auto",  # httptools when installed
    )
    if workers <= 1:
        uvicorn.Server(config).run()
        return
    run_workers(config, workers)


def run_workers(config: Any, workers: int) -> None:
    """Bind once, fork ``workers`` processes serving the socket, stop them all on SIGINT or SIGTERM."""
    import uvicorn

    listener = config.bind_socket()
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # a worker: serve until told to stop, then leave without running the parent's exit
            code = 0
            try:
                uvicorn.Server(config).run(sockets=[listener])
            except BaseException:  # noqa: BLE001 - a worker's failure is its exit status
                code = 1
            finally:
                os._exit(code)
        children.append(pid)
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    listener.close()
    for child in children:
        while True:
            try:
                os.waitpid(child, 0)
                break
            except ChildProcessError:
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries waitpid itself
                continue
