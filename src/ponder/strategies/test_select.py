"""Test-select: sample n solutions, vote by how many model-written tests each passes, then let a
selection round write tests that tell the best few apart.

"CodeMonkeys: Scaling Test-Time Compute for Software Engineering" (Ehrlich et al., 2025): generated
tests are a cheap, strong verifier; candidates are first ranked by the tests they pass ("voting"),
then a selection step looks at the top candidates and writes new tests meant to discriminate between
them. Here ``writers`` samples of ``k`` asserts each make the first tests (CodeMonkeys writes one test
script per sample; 2 writers of 5 asserts keep it cheap), candidates run on them in the sandbox
(``ponder.tasks.sandbox``, one run per test), the top ``finalists`` (3, as CodeMonkeys' selection looks
at a few top candidates) with distinct code go to one selection round, and the finalist passing most
of all the tests wins; ties keep the first round's order. n=8 is a small version of the paper's
sampling. For code tasks (the candidates' last fenced block is run). Billed on ``role:generate``,
``role:test-writer``, ``role:select`` and sandbox seconds on ``role:…@sandbox``.
"""

from __future__ import annotations

from pydantic import Field

from ponder.context import Context, SamplingOptions
from ponder.core.cost import Cost
from ponder.core.registry import Sandbox
from ponder.core.types import Candidate, Problem, Result
from ponder.roles import Pool
from ponder.roles.generator import Generator, GeneratorOptions
from ponder.roles.testing import TestGenerator, TestGeneratorOptions, TestRunner, TestRunnerOptions
from ponder.strategies.base import STRATEGIES, Strategy
from ponder.tasks.extract import extract_code


class TestSelectOptions(SamplingOptions):
    n: int = Field(8, ge=1, le=256)
    writers: int = Field(2, ge=1, le=64)  # samples of tests in the voting round
    k: int = Field(5, ge=1, le=50)  # asserts asked of each writer
    finalists: int = Field(3, ge=1, le=16)
    selection: bool = True  # the round of discriminating tests among the finalists
    timeout: Sandbox[float] = Field(10.0, gt=0)  # seconds per sandbox test run


@STRATEGIES.register("test-select", TestSelectOptions)
class TestSelect(Strategy[TestSelectOptions]):
    """n samples voted on by generated tests; a selection round of discriminating tests (CodeMonkeys)."""

    name = "test-select"
    budget_option = "n"

    def __init__(self, options: TestSelectOptions):
        super().__init__(options)
        sampling = {"temperature": options.temperature, "max_tokens": options.max_tokens}
        self.generator = Generator(GeneratorOptions(name="generate", n=options.n, **sampling))
        self.writer = TestGenerator(
            TestGeneratorOptions(name="test-writer", k=options.k, writers=options.writers, **sampling)
        )
        self.selector = TestGenerator(
            TestGeneratorOptions(name="select", k=options.k, discriminating=True, **sampling)
        )
        self.runner = TestRunner(TestRunnerOptions(name="test-runner", timeout=options.timeout))

    async def run(self, problem: Problem, ctx: Context) -> Result:
        options = self.options
        pool = Pool(problem)
        await self.generator.apply(pool, ctx)
        written = await self.writer.apply(pool, ctx)
        voting = await self.runner.apply(pool, ctx)
        trace = {"tests": written["tests"], "voting": voting["scores"]}
        finalists = distinct_code(pool.candidates)[: options.finalists]
        if options.selection and len(finalists) > 1 and not ctx.ledger.exhausted:
            pool.candidates = finalists
            selecting = await self.selector.apply(pool, ctx)
            final = await self.runner.apply(pool, ctx)
            trace["selection"] = {
                "finalists": [position(pool.generated, c) for c in finalists],
                "tests": selecting["tests"],
                "scores": final["scores"],
            }
        ranked = pool.candidates or pool.generated
        winner = ranked[0] if ranked else None
        trace["winner"] = position(pool.generated, winner) if winner is not None else None
        return ctx.result(
            self.spec,
            pool.generated,
            winner.answer if winner else None,
            text=winner.text if winner else None,
            trace=trace,
        )

    def max_cost(self) -> Cost:
        """Its roles' costs: n samples, the voting tests, then the selection tests for the finalists."""
        options = self.options
        voting = (
            self.generator.max_cost(0) + self.writer.max_cost(options.n) + self.runner.max_cost(options.n)
        )
        if not options.selection:
            return voting
        return voting + self.selector.max_cost(options.finalists) + self.runner.max_cost(options.finalists)


def distinct_code(candidates: list[Candidate]) -> list[Candidate]:
    """The candidates with a code block, first of each distinct code, in order."""
    seen: dict[str, Candidate] = {}
    for candidate in candidates:
        code = extract_code(candidate.text)
        if code is not None:
            seen.setdefault(code.strip(), candidate)
    return list(seen.values())


def position(candidates: list[Candidate], candidate: Candidate) -> int:
    return next(i for i, c in enumerate(candidates) if c is candidate)
