"""``ponder models`` and ``ponder strategies``: what ponder can run, and with which options."""

from __future__ import annotations

import argparse

from ponder.cli.console import stdout


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    models = commands.add_parser("models", help="list embedded models, their sizes and whether each is ready")
    models.set_defaults(handler=command_models)
    strategies = commands.add_parser("strategies", help="list strategies and scorers with their options")
    strategies.set_defaults(handler=command_strategies)


def command_models(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ponder.backends.embedded.models import DEFAULT_MODEL, MODELS, is_ready, model_path
    from ponder.backends.embedded.runtime import runtime_ready

    table = Table(title="embedded models", title_justify="left")
    for column in ("name", "size", "parameters", "ready"):
        table.add_column(column, no_wrap=True)
    for name, info in MODELS.items():
        marker = " (default)" if name == DEFAULT_MODEL else ""
        table.add_row(
            name + marker,
            f"{info.size_bytes / 1e9:.2f} GB",
            f"{info.parameters / 1e9:.2f} B",
            "yes" if is_ready(name) else "no (ponder setup --model " + name + ")",
        )
    stdout.print(table)
    stdout.print(f"models in {model_path(DEFAULT_MODEL).parent}", soft_wrap=True)
    stdout.print(f"llama-server runtime: {'ready' if runtime_ready() else 'not built yet (ponder setup)'}")
    return 0


def command_strategies(args: argparse.Namespace) -> int:
    from ponder.scorers import SCORERS
    from ponder.strategies import STRATEGIES

    for title, registry in (("strategies", STRATEGIES), ("scorers", SCORERS)):
        stdout.print(f"[bold]{title}[/]")
        for entry in registry.entries():
            options = ", ".join(
                f"{name}={'<required>' if field.is_required() else field.default}"
                for name, field in entry.options.model_fields.items()
            )
            stdout.print(
                f"  [cyan]{entry.name}[/] — {entry.summary}\n    [dim]{options or '(no options)'}[/]"
            )
    return 0
