"""Budget conformance: every registered strategy under a set of caps, with what it spent beside each cap.

Runs each strategy at its default options (``pipeline:moa`` for the pipeline) on the scripted backend,
with replies that keep it working (answers that never agree, reviews that never accept, steps that never
finish), under caps on calls, tokens, completion tokens and FLOPs, and prints spent/cap for each, whether
the result says the budget stopped it, and whether anything went over. The scripted backend counts
whitespace-separated words as tokens and bills FLOPs as 2 x 1e6 parameters per token. Deterministic: the
same table every run. It never passes or fails; the test suite asserts the caps (tests/test_budget_caps.py).

    python benchmarks/budget_conformance.py [--caps calls=1,calls=4,...] [--markdown]
"""

from __future__ import annotations

import argparse
import asyncio

import ponder
from ponder.backends.base import GenRequest
from ponder.backends.scripted import Reply, ScriptedBackend
from ponder.core.ledger import Budget
from ponder.core.types import Usage
from ponder.strategies import STRATEGIES

CAPS = ["calls=1", "calls=4", "calls=16", "tokens=600", "completion_tokens=200", "flops=4e8"]
PARAMETERS = 1e6
WORDS = " ".join(["step"] * 60)


def stubborn(request: GenRequest, index: int) -> str | Reply:
    """Replies that keep a strategy spending: no agreement, no acceptance, no finished search."""
    system = request.messages[0].content if request.messages and request.messages[0].role == "system" else ""
    if "Yes or No" in system:
        return Reply("No", top={"No": -0.05, "Yes": -3.0})
    if "\n\n" in request.stop:
        return Reply(f"{WORDS} {index}.", stop_sequence="\n\n")
    return f"{WORDS} so the answer is \\boxed{{{index}}}."


def spent_of(usage: Usage, cap: Budget) -> tuple[str, float, float]:
    """The capped quantity's name, what was spent of it, and the cap."""
    for name, spent in (
        ("calls", usage.calls),
        ("tokens", usage.total_tokens),
        ("completion_tokens", usage.completion_tokens),
        ("flops", usage.flops),
    ):
        value = getattr(cap, name)
        if value is not None:
            return name, float(spent), float(value)
    raise ValueError("no cap given")


async def row(spec: str, cap: str) -> tuple[str, str, float, float, bool, bool]:
    backend = ScriptedBackend(script=stubborn, parameters=PARAMETERS)
    result = await ponder.asolve("What is 2 + 3?", spec, backend=backend, seed=0, budget=cap)
    _, spent, limit = spent_of(result.usage, Budget.parse(cap))
    said = result.budget_exhausted and "budget" in (result.note or "")
    return spec, cap, spent, limit, said, spent > limit


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--caps", default=",".join(CAPS).replace(",", ";"), help="caps separated by ;")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args()
    caps = [cap for cap in args.caps.split(";") if cap]
    specs = [f"{name}:moa" if name == "pipeline" else name for name in STRATEGIES.names()]
    rows = [await row(spec, cap) for spec in specs for cap in caps]
    if args.markdown:
        print("| strategy | " + " | ".join(f"`{cap}`" for cap in caps) + " |")
        print("|---|" + "---|" * len(caps))
    worst = 0.0
    for spec in specs:
        cells = []
        for _, _, spent, limit, said, over in (r for r in rows if r[0] == spec):
            worst = max(worst, spent / limit if limit else 0.0)
            mark = ("" if said else " (not stopped)") + (" OVER" if over else "")
            cells.append(f"{spent:g}/{limit:g}{mark}")
        if args.markdown:
            print(f"| `{spec}` | " + " | ".join(cells) + " |")
        else:
            print(f"{spec:24} " + "  ".join(f"{cell:>16}" for cell in cells))
    over = sum(r[5] for r in rows)
    print(f"\n{len(rows)} runs; largest spent/cap {worst:.3f}; over a cap: {over}")


if __name__ == "__main__":
    asyncio.run(main())
