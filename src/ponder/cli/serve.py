"""``ponder serve``: the OpenAI-compatible endpoint, its upstreams, client keys and serving policy."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ponder.cli.backend_args import deprecated_flag, prepare_embedded
from ponder.cli.console import stderr
from ponder.core.errors import UsageError


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="an OpenAI-compatible endpoint that applies any strategy")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (other than loopback needs keys)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--model", "-m", default=None, help="embedded model to serve (default: the default model)"
    )
    serve.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="OpenAI-compatible server for model NAME, or *=URL for every model it lists at startup "
        "(repeatable; NAME again with another URL adds a replica; no embedded model unless --model)",
    )
    serve.add_argument("--server", default="generic", help="server profile of the --upstream servers")
    serve.add_argument(
        "--client-key",
        action="append",
        default=[],
        metavar="KEY",
        help="a key clients must present as bearer token (repeatable; visible to other users: prefer env "
        "PONDER_SERVE_API_KEYS or --client-keys-file)",
    )
    serve.add_argument(
        "--client-keys-file", type=Path, default=None, metavar="PATH", help="client keys, one per line"
    )
    serve.add_argument("--api-key", action="append", default=[], help="deprecated: --client-key")
    serve.add_argument("--api-keys-file", type=Path, default=None, help="deprecated: --client-keys-file")
    serve.add_argument("--default-strategy", default=None, help="strategy for requests that name none")
    serve.add_argument("--max-n", type=int, default=4, help="largest client n (independent strategy runs)")
    serve.add_argument("--max-samples", type=int, default=64, help="largest strategy n times client n")
    serve.add_argument(
        "--max-depth", type=int, default=64, help="most sequential rounds a strategy may run (depth, rounds)"
    )
    serve.add_argument("--max-budget-tokens", type=int, default=None, help="token cap for every request")
    serve.add_argument("--max-in-flight", type=int, default=64, help="concurrent requests before 429")
    serve.add_argument(
        "--upstream-max-in-flight",
        default=None,
        metavar="N|auto|auto:N",
        help="samples in flight per --upstream server: N fixed, auto adapts (the default), auto:N up to N",
    )
    serve.add_argument("--request-timeout", type=float, default=600.0, help="seconds before 504")
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes serving the port (caps apply per worker; --upstream servers only)",
    )
    serve.add_argument(
        "--max-queue",
        type=int,
        default=1024,
        help="requests that wait for a slot before 429 (first come first served)",
    )
    serve.add_argument(
        "--queue-timeout", type=float, default=30.0, help="seconds a request may wait before 429"
    )
    serve.add_argument(
        "--max-tokens",
        type=int,
        default=4096,
        help="cap on a request's max_tokens (also its default in pass-through)",
    )
    serve.add_argument(
        "--max-response-mb",
        type=float,
        default=32.0,
        help="largest upstream answer relayed in pass-through (MB)",
    )
    serve.add_argument(
        "--preset",
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="a strategy of yours that clients ask for by NAME; may set what clients may not (repeatable)",
    )
    serve.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="KIND",
        help="let clients set an operator-only kind of option: sandbox, limits, file, module, local-model, "
        "remote-code (repeatable; see docs/security.md)",
    )
    serve.add_argument(
        "--max-calls", type=int, default=8192, help="most upstream calls one request may cause (all models)"
    )
    serve.add_argument(
        "--max-request-tokens",
        type=int,
        default=1_048_576,
        help="most completion tokens one request may cause (all models)",
    )
    serve.set_defaults(handler=command_serve)


def command_serve(args: argparse.Namespace) -> int:
    from ponder.backends.embedded.backend import embedded_backend
    from ponder.server import ServerSettings, Upstream
    from ponder.server.run import load_keys, parse_preset, parse_upstreams, serve

    upstreams = parse_upstreams(args.upstream, args.server, args.request_timeout, args.upstream_max_in_flight)
    if args.model or not upstreams:
        backend = embedded_backend(args.model)
        upstreams.insert(0, Upstream(backend.model, backend))
    client_keys, client_keys_file = [*args.client_key, *args.api_key], args.client_keys_file
    if args.api_key:
        deprecated_flag("--api-key", "--client-key")
    if args.api_keys_file is not None:
        deprecated_flag("--api-keys-file", "--client-keys-file")
        if client_keys_file is not None:
            raise UsageError("give --client-keys-file or --api-keys-file, not both")
        client_keys_file = args.api_keys_file
    if client_keys:  # readable by every user of the machine (ps, /proc): accepted, with a warning
        stderr.print(
            "[yellow]warning[/]: --client-key puts the key on the command line, where other users of this "
            "machine can read it; use PONDER_SERVE_API_KEYS (comma-separated) or --client-keys-file instead"
        )
    from_environment = os.environ.get("PONDER_SERVE_API_KEYS", "").split(",")
    settings = ServerSettings(
        api_keys=load_keys([*client_keys, *from_environment], client_keys_file),
        default_strategy=args.default_strategy,
        max_n=args.max_n,
        max_samples=args.max_samples,
        max_depth=args.max_depth,
        max_budget_tokens=args.max_budget_tokens,
        max_in_flight=args.max_in_flight,
        request_timeout=args.request_timeout,
        max_queue=args.max_queue,
        queue_timeout=args.queue_timeout,
        max_tokens=args.max_tokens,
        max_response_bytes=int(args.max_response_mb * 1024 * 1024),
        presets=tuple(parse_preset(text) for text in args.preset),
        allow=frozenset(args.allow),
        max_calls=args.max_calls,
        max_request_tokens=args.max_request_tokens,
    )
    if settings.allow:
        stderr.print(f"[yellow]warning[/]: clients may set {', '.join(sorted(settings.allow))} options")
    for upstream in upstreams:  # a first run's build and model, with progress, before the server starts
        prepare_embedded(upstream.backend)
    serve(args.host, args.port, upstreams, settings, log_level=args.log_level, workers=args.workers)
    return 0
