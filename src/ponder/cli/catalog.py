"""``ponder models`` and ``ponder strategies``: what ponder can run, and with which options."""

from __future__ import annotations

import argparse
import json
import textwrap
import typing
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ponder.cli.console import print_json, stdout
from ponder.core.errors import UnknownNameError
from ponder.core.registry import Entry, Registry

#: a default longer than this (a prompt) is cut in the listing; ``ponder strategies NAME`` shows it whole
_SHORT_DEFAULT = 40


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    models = commands.add_parser("models", help="list embedded models, their sizes and whether each is ready")
    models.add_argument("--json", action="store_true", help="print the models as JSON on stdout")
    models.set_defaults(handler=command_models)
    strategies = commands.add_parser("strategies", help="list strategies and scorers with their options")
    strategies.add_argument(
        "name", nargs="?", default=None, help="one strategy or scorer: its options with their types"
    )
    strategies.add_argument("--json", action="store_true", help="print them as JSON on stdout")
    strategies.set_defaults(handler=command_strategies)


def command_models(args: argparse.Namespace) -> int:
    from ponder.backends.embedded.models import DEFAULT_MODEL, MODELS, is_ready, model_path
    from ponder.backends.embedded.runtime import cached_binary, runtime_ready

    ready = {name: is_ready(name) for name in MODELS}
    if args.json:
        print_json(
            {
                "models": [
                    {
                        "name": name,
                        "default": name == DEFAULT_MODEL,
                        "description": info.description,
                        "size_bytes": info.size_bytes,
                        "parameters": info.parameters,
                        "ready": ready[name],
                        "path": str(model_path(name)),
                    }
                    for name, info in MODELS.items()
                ],
                "runtime": {"ready": runtime_ready(), "path": str(cached_binary())},
            }
        )
        return 0
    table = Table(title="embedded models", title_justify="left")
    for column in ("name", "size", "parameters", "ready"):
        justify = "right" if column in ("size", "parameters") else "left"
        table.add_column(column, no_wrap=True, justify=justify)
    for name, info in MODELS.items():
        marker = " (default)" if name == DEFAULT_MODEL else ""
        table.add_row(
            name + marker,
            f"{info.size_bytes / 1e9:.2f} GB",
            f"{info.parameters / 1e9:.2f} B",
            "[green]yes[/]" if ready[name] else "no",
        )
    stdout.print(table)
    say = {"markup": False, "highlight": False, "soft_wrap": True}
    if not all(ready.values()):
        stdout.print("prepare one ahead of its first use: ponder setup --model NAME", **say)
    stdout.print(f"models in {model_path(DEFAULT_MODEL).parent}", **say)
    runtime = "ready" if runtime_ready() else "not built yet (ponder setup builds it, about 10 minutes)"
    stdout.print(f"llama-server runtime: {runtime}", **say)
    return 0


def show_default(value: Any, limit: int | None = _SHORT_DEFAULT) -> str:
    """An option's default as one line: control characters escaped (a ``\\n\\n`` delimiter would break
    the listing), text past ``limit`` cut."""
    text = json.dumps(value) if isinstance(value, str) and not value.isprintable() else str(value)
    if isinstance(value, str) and value.isprintable() and " " in value:
        text = json.dumps(value)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def options_of(entry: Entry[Any]) -> list[dict[str, Any]]:
    """Name, type, default and whether it is required, of each option of a component."""
    options = []
    for name, field in entry.options.model_fields.items():
        required = field.is_required()
        default = None if required else field.get_default(call_default_factory=True)
        options.append(
            {"name": name, "type": type_name(field.annotation), "required": required, "default": default}
        )
    return options


def indented(text: str, first: int, rest: int) -> str:
    """``text`` wrapped to the console's width; the first line indented by ``first``, the rest by ``rest``."""
    width = max(stdout.width, 40)
    return textwrap.fill(
        text, width=width, initial_indent=" " * first, subsequent_indent=" " * rest, break_on_hyphens=False
    )


def type_name(annotation: Any) -> str:
    """``int``, ``int | None``, ``best | weighted`` (a choice lists its values)."""
    if annotation is None:
        return ""
    if typing.get_origin(annotation) is typing.Literal:
        return " | ".join(str(value) for value in typing.get_args(annotation))
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def summary_of(entry: Entry[Any]) -> str:
    return entry.summary.replace("``", "")


def describe(kind: str, entry: Entry[Any]) -> dict[str, Any]:
    return {"kind": kind, "name": entry.name, "summary": summary_of(entry), "options": options_of(entry)}


def command_strategies(args: argparse.Namespace) -> int:
    from ponder.scorers import SCORERS
    from ponder.strategies import STRATEGIES

    registries: dict[str, Registry[Any]] = {"strategy": STRATEGIES, "scorer": SCORERS}
    if args.name is not None:
        return show_one(args.name, registries, args.json)
    if args.json:
        print_json(
            {
                "strategies": [describe("strategy", entry) for entry in STRATEGIES.entries()],
                "scorers": [describe("scorer", entry) for entry in SCORERS.entries()],
            }
        )
        return 0
    for title, kind in (("strategies", "strategy"), ("scorers", "scorer")):
        stdout.print(f"[bold]{title}[/]")
        for entry in registries[kind].entries():
            # wrapped within the indent at word boundaries, so long option lists stay readable in 80 columns
            summary = indented(f"{entry.name} — {summary_of(entry)}", 2, 4)
            name_end = len(entry.name) + 2
            stdout.print(Text.assemble((summary[:name_end], "cyan"), summary[name_end:]))
            options = ", ".join(
                f"{option['name']}={'<required>' if option['required'] else show_default(option['default'])}"
                for option in options_of(entry)
            )
            stdout.print(Text(indented(options or "(no options)", 4, 4), style="dim"))
    hint = "one in full: ponder strategies NAME · set options as NAME:key=value,key=value"
    stdout.print(Text(hint, style="dim"))
    return 0


def show_one(name: str, registries: dict[str, Registry[Any]], as_json: bool) -> int:
    """``ponder strategies NAME``: one strategy or scorer, each option with its type and whole default."""
    found = [(kind, registry.get(name)) for kind, registry in registries.items() if name in registry.names()]
    if not found:
        every = sorted({entry for registry in registries.values() for entry in registry.names()})
        raise UnknownNameError("strategy or scorer", name, every)
    if as_json:
        print_json(describe(*found[0]) if len(found) == 1 else [describe(*item) for item in found])
        return 0
    for kind, entry in found:
        stdout.print(Text.assemble(f"{kind} ", (entry.name, "bold cyan"), " — ", summary_of(entry)))
        table = Table()
        for column in ("option", "type", "default"):
            table.add_column(column, overflow="fold")
        for option in options_of(entry):
            default = "<required>" if option["required"] else show_default(option["default"], limit=None)
            table.add_row(option["name"], escape(option["type"]), escape(default))
        stdout.print(table)
    return 0
