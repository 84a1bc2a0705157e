"""Test generator and test runner: the model writes assert-style tests, the sandbox runs candidates on them.

The test generator asks for ``k`` asserts in one code block (the execution scorer's prompt and reader,
``ponder.scorers.execution``, after CodeT, Chen et al., 2022), from ``writers`` independent samples; with
``discriminating`` it is shown the pool's candidates and asked for tests that tell them apart, the
selection step of CodeMonkeys ("CodeMonkeys: Scaling Test-Time Compute for Software Engineering",
Ehrlich et al., 2025). Tests are added to the pool, without duplicates.

The test runner runs every candidate's code (its last fenced block) against the pool's tests, or the
problem's given tests (``source=given``), one sandbox run per test (``ponder.tasks.sandbox`` through the
execution scorer's ``run_all``); score = fraction passed; the pool is ordered by score (ties keep
their order) and trimmed to ``keep``. Sandbox seconds are billed on ``role:NAME@sandbox``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from ponder.core.cost import Cost
from ponder.core.registry import Sandbox
from ponder.core.types import Message, Usage
from ponder.messages import numbered_solutions
from ponder.roles.base import ROLES, Pool, Role, RoleOptions
from ponder.scorers.execution import TEST_WRITER_PROMPT, ExecutionOptions, given_tests, parse_tests, run_all
from ponder.tasks.extract import extract_code

if TYPE_CHECKING:
    from ponder.context import Context

DISCRIMINATING_PROMPT = (
    "Below are {count} candidate solutions of this problem; some may be wrong. Write {k} independent "
    "assert statements that a correct solution passes, chosen to tell these candidates apart: prefer "
    "inputs on which they would behave differently. Use only the function named in the problem and put "
    "all of them in one ```python code block, one assert per line.\n\nProblem:\n{question}\n\n"
    "Candidates:\n\n{solutions}"
)


class TestGeneratorOptions(RoleOptions):
    role: Literal["test-generator"] = "test-generator"
    k: int = Field(5, ge=1, le=50)  # asserts asked of each writer (the execution scorer's default)
    writers: int = Field(1, ge=1, le=64)  # independent samples of tests
    discriminating: bool = False  # show the candidates, ask for tests that tell them apart


@ROLES.register("test-generator", TestGeneratorOptions)
class TestGenerator(Role[TestGeneratorOptions]):
    """The model writes assert tests (optionally ones that tell the pool's candidates apart)."""

    kind = "test-generator"

    async def apply(self, pool: Pool, ctx: Context) -> dict[str, Any]:
        options, question = self.options, pool.problem.question
        if options.discriminating and pool.candidates:
            prompt = DISCRIMINATING_PROMPT.format(
                count=len(pool.candidates),
                k=options.k,
                question=question,
                solutions=numbered_solutions(pool.candidates),
            )
        else:
            prompt = TEST_WRITER_PROMPT.format(k=options.k, question=question)
        request = self.request(ctx, (Message("user", prompt),), n=options.writers)
        [generations] = await self.call(ctx, [request])
        written = [test for g in generations for test in parse_tests(g.text, options.k)]
        new = [test for test in dict.fromkeys(written) if test not in pool.tests]
        pool.tests += new
        return {"tests": new, "discriminating": options.discriminating}

    def max_cost(self, pool: int) -> Cost:
        """One request of ``writers`` samples."""
        return Cost.sample(self.options.writers, self.options.max_tokens)


class TestRunnerOptions(RoleOptions):
    role: Literal["test-runner"] = "test-runner"
    source: Literal["pool", "given"] = "pool"  # the written tests, or problem.metadata["tests"]
    keep: int | None = Field(None, ge=1)
    timeout: Sandbox[float] = Field(10.0, gt=0)  # seconds per test run (the execution scorer's default)
    workers: Sandbox[int] = Field(2, ge=1, le=64)


@ROLES.register("test-runner", TestRunnerOptions)
class TestRunner(Role[TestRunnerOptions]):
    """Runs each candidate's code on the tests in the sandbox; orders the pool by fraction passed."""

    kind = "test-runner"

    async def apply(self, pool: Pool, ctx: Context) -> dict[str, Any]:
        tests = pool.tests if self.options.source == "pool" else given_tests(pool.problem)
        scores = await run_candidates(ctx, f"role:{self.name}@sandbox", pool, tests, self.options)
        for candidate, score in zip(pool.candidates, scores, strict=True):
            candidate.scores[f"tests:{self.name}"] = score
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        pool.candidates = [pool.candidates[i] for i in order][: self.options.keep]
        return {"tests": len(tests), "scores": scores, "order": order}

    def max_cost(self, pool: int) -> Cost:
        """None upstream: the tests run in the local sandbox."""
        return Cost()

    def max_pool(self, pool: int) -> int:
        return min(pool, self.options.keep or pool)


async def run_candidates(
    ctx: Context, line: str, pool: Pool, tests: list[str], options: TestRunnerOptions
) -> list[float]:
    """Fraction of ``tests`` each pool candidate passes, sandbox seconds billed on ``line``."""
    execution = ExecutionOptions(timeout=options.timeout, workers=options.workers)
    codes = [extract_code(candidate.text) for candidate in pool.candidates]
    reports = await run_all(codes, tests, execution)
    for candidate, report in zip(pool.candidates, reports, strict=True):
        seconds = Usage(seconds=sum(outcome.seconds for outcome in report.outcomes))
        ctx.ledger.record(line, seconds)
        candidate.scoring_usage = candidate.scoring_usage + seconds
    return [report.score for report in reports]
