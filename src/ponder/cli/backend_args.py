"""The arguments that choose a backend (``solve``, ``eval``, ``rescore``) and the backend they name."""

from __future__ import annotations

import argparse
from pathlib import Path

from ponder.backends import Backend, make_backend
from ponder.cli.console import stderr
from ponder.core.errors import UsageError
from ponder.progress import TaskProgress


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", "-m", default=None, help="embedded model name, or the served model's name with --base-url"
    )
    parser.add_argument(
        "--base-url",
        action="append",
        default=None,
        help="OpenAI-compatible server URL (env PONDER_BASE_URL, then OPENAI_BASE_URL); repeat it for "
        "replicas of one model, load-balanced",
    )
    parser.add_argument(
        "--max-in-flight",
        default=None,
        metavar="N|auto|auto:N",
        help="samples in flight per server: N fixed, auto adapts (default for --base-url: grows while "
        "latency holds, backs off on 429/5xx or queueing), auto:N adapts up to N (env PONDER_MAX_IN_FLIGHT)",
    )
    parser.add_argument(
        "--upstream-key",
        default=None,
        metavar="KEY",
        help="the server's API key (visible to other users in process lists: prefer env PONDER_API_KEY or "
        "OPENAI_API_KEY, or --upstream-key-file)",
    )
    parser.add_argument(
        "--upstream-key-file",
        type=Path,
        default=None,
        metavar="PATH",
        help="read the server's API key from this file",
    )
    parser.add_argument("--api-key", default=None, help="deprecated: --upstream-key")
    parser.add_argument("--api-key-file", type=Path, default=None, help="deprecated: --upstream-key-file")
    parser.add_argument(
        "--server", default=None, help="server profile: generic, openai, vllm, sglang, llama-server, ollama"
    )
    parser.add_argument(
        "--parameters",
        type=float,
        default=None,
        help="served model size, e.g. 7.6e9, for FLOPs (with --base-url)",
    )
    parser.add_argument(
        "--chat-template",
        default=None,
        help="Jinja file or Hugging Face tokenizer to continue partial answers on a server that cannot "
        "(with --base-url; env PONDER_CHAT_TEMPLATE)",
    )


def backend_from_args(args: argparse.Namespace) -> Backend:
    """The backend the shared backend arguments name."""
    return make_backend(
        args.model,
        args.base_url,
        api_key_from_args(args),
        args.server,
        args.parameters,
        args.chat_template,
        args.max_in_flight,
    )


def deprecated_flag(old: str, new: str) -> None:
    """Warn that ``old`` still works but is renamed: ``--api-key`` meant two different keys."""
    stderr.print(f"[yellow]warning:[/] {old} is deprecated; use {new}", highlight=False, soft_wrap=True)


def api_key_from_args(args: argparse.Namespace) -> str | None:
    """The server's key from ``--upstream-key-file`` or ``--upstream-key`` (warned about: command lines
    are public), or their deprecated names ``--api-key-file`` and ``--api-key``.

    None leaves the choice to the environment (PONDER_API_KEY, then OPENAI_API_KEY).
    """
    key, key_file = args.upstream_key, args.upstream_key_file
    if args.api_key is not None:
        deprecated_flag("--api-key", "--upstream-key")
        key = args.api_key if key is None else key
    if args.api_key_file is not None:
        deprecated_flag("--api-key-file", "--upstream-key-file")
        key_file = args.api_key_file if key_file is None else key_file
    if key is not None and key_file is not None:
        raise UsageError("give --upstream-key or --upstream-key-file, not both")
    if key is not None:
        stderr.print(
            "[yellow]warning:[/] --upstream-key is visible to other users of this machine (process lists); "
            "set PONDER_API_KEY or OPENAI_API_KEY, or use --upstream-key-file PATH",
            highlight=False,
            soft_wrap=True,
        )
        return str(key)
    if key_file is None:
        return None
    try:
        text = key_file.read_text().strip()
    except OSError as error:
        raise UsageError(f"cannot read --upstream-key-file {key_file}: {error.strerror}") from None
    if not text:
        raise UsageError(f"--upstream-key-file {key_file} is empty")
    return text


def prepare_embedded(backend: Backend) -> None:
    """Build the embedded runtime and assemble its model now, before the command's event loop starts.

    Done here, on the main thread, so the first run shows the build's progress on stderr and Ctrl-C
    stops the build at once (inside ``asyncio.run`` the first Ctrl-C only cancels the task, and a build
    on a worker thread runs on until it ends). Cheap when both are cached: a ``stat`` each.
    """
    from ponder.backends.embedded.backend import EmbeddedBackend
    from ponder.backends.embedded.models import prepare_model
    from ponder.backends.embedded.runtime import ensure_llama_server

    if isinstance(backend, EmbeddedBackend):
        ensure_llama_server(quiet=backend.quiet, console=stderr)
        prepare_model(backend.model, quiet=backend.quiet, console=stderr)


async def start_backend(backend: Backend) -> None:
    """Start the backend under a live line: an embedded server loads its model for seconds to minutes
    (longer on a busy CPU), which would otherwise pass in silence."""
    with TaskProgress(stderr, f"starting {backend.model}", transient=True):
        await backend.start()
