"""Human-readable rendering of results for the terminal (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ponder.core.types import Result, Usage


def usage_line(usage: Usage, wall_seconds: float | None = None) -> str:
    parts = [
        f"{usage.calls} calls",
        f"{usage.prompt_tokens} prompt tokens ({usage.cached_prompt_tokens} cached)",
        f"{usage.completion_tokens} completion tokens",
        f"{usage.seconds:.1f} s model time",
        f"{usage.flops:.3g} FLOPs" if usage.flops else "FLOPs unknown (model size not given)",
    ]
    if wall_seconds is not None:
        parts.append(f"{wall_seconds:.1f} s wall")
    return " · ".join(parts)


def render_result(result: Result, console: Console) -> None:
    if result.votes:
        table = Table(title="votes", title_justify="left")
        table.add_column("answer")
        table.add_column("votes", justify="right")
        for answer, weight in result.votes.items():
            table.add_row(escape(answer), f"{weight:g}")
        console.print(table)
    elif any(c.score is not None for c in result.candidates):
        table = Table(title="candidates", title_justify="left")
        for column in ("#", "answer", "score", "tokens"):
            table.add_column(column, justify="right" if column != "answer" else "left")
        for i, c in enumerate(result.candidates):
            table.add_row(
                str(i),
                escape(str(c.answer)),
                f"{c.score:.3f}" if c.score is not None else "-",
                str(c.completion_tokens),
            )
        console.print(table)
    # answers, notes and specs are the model's or the user's text: [brackets] in them are not markup
    if result.answer is None:
        console.print(f"[bold red]no answer[/]: {escape(result.note or '')}")
    else:
        console.print(f"[bold]answer:[/] [bold green]{escape(result.answer)}[/]")
        if result.note:  # the budget that stopped it, candidates cut off by max_tokens
            console.print(f"[yellow]note:[/] {escape(result.note)}")
    usage = usage_line(result.usage, result.wall_seconds)
    wrap = not console.is_terminal  # words wrap on a terminal; a log keeps one line to grep
    console.print(f"[dim]strategy {escape(result.strategy)} · {usage}[/]", soft_wrap=wrap)
    if len(result.usage_by_line) > 1:
        for line, usage in result.usage_by_line.items():
            console.print(f"[dim]  {escape(line)}: {usage_line(usage)}[/]", soft_wrap=wrap)
