"""Execution: run each code candidate against tests in the sandbox; score = fraction of tests passed.

Tests come from one of two sources (``tests=``):

- ``given``: the problem's own tests, in ``problem.metadata["tests"]``: a list of test snippets (each
  one a test, e.g. ``assert add(2, 3) == 5``) or one string (one test program, e.g. HumanEval's
  ``check`` function followed by ``check(entry_point)``).
- ``generated``: the model writes ``k`` assert-style tests for the problem in one fenced block (one
  request per problem on the ledger line ``scorer:tests``, billed to the first candidate), as in
  CodeT ("CodeT: Code Generation with Generated Tests", Chen et al., 2022) and CodeMonkeys (Ehrlich et
  al., 2025). Every top-level ``assert`` is a test; the block's other statements (imports, helpers)
  run before each one.

Each test is one sandbox run of the candidate's code (the last fenced block, ``extract_code``) and
the test, so a test that hangs, crashes or kills its process costs only itself. Runs go through
``ponder.tasks.sandbox.arun_checks`` (limits, namespaces, read-only file system, group kill), a few at
a time: the test calls the candidate's functions from another process, gets plain values back, and
passes only if the harness reports that it ran to the end; cancelling the scorer kills its runs. Why
each test failed is sent as a ``tests`` event (``ctx.emit``) and is what ``run_tests`` returns;
sandbox seconds are recorded on the scorer's ledger line.
"""

from __future__ import annotations

import ast
import asyncio
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from ponder.backends.base import GenRequest
from ponder.core.cost import Cost
from ponder.core.errors import UsageError
from ponder.core.registry import Options, Sandbox
from ponder.core.types import Candidate, Message, Problem, Usage
from ponder.scorers.base import SCORERS, Scorer
from ponder.tasks.extract import extract_code
from ponder.tasks.sandbox import Limits, SandboxResult, arun_checks

if TYPE_CHECKING:
    from ponder.context import Context

#: the ``Problem.metadata`` key that holds given tests
TESTS_KEY = "tests"

TEST_WRITER_PROMPT = (
    "Write {k} independent assert statements that test a correct solution of this problem. "
    "Use only the function named in the problem, cover normal and edge cases, and put all of them in "
    "one ```python code block, one assert per line.\n\nProblem:\n{question}"
)


class ExecutionOptions(Options):
    tests: Literal["given", "generated"] = "given"
    k: int = Field(5, ge=1, le=50)  # tests to generate
    timeout: Sandbox[float] = Field(10.0, gt=0)  # wall-clock seconds per test run
    memory_mb: Sandbox[int] = Field(1024, ge=64)
    max_processes: Sandbox[int] = Field(64, ge=1)
    workers: Sandbox[int] = Field(2, ge=1, le=64)  # sandbox runs at a time
    temperature: float = Field(0.0, ge=0.0, le=2.0)  # when generating tests
    max_tokens: int = Field(1024, ge=16)


@dataclass(frozen=True)
class Outcome:
    passed: bool
    reason: str  # "passed", or why not: "timed out after 2s", "AssertionError", "killed by SIGKILL"...
    seconds: float = 0.0


@dataclass(frozen=True)
class ExecutionReport:
    outcomes: tuple[Outcome, ...]
    reason: str | None = None  # why no test ran (no code block)

    @property
    def score(self) -> float:
        return sum(o.passed for o in self.outcomes) / len(self.outcomes) if self.outcomes else 0.0


def failure_reason(result: SandboxResult, timeout: float) -> str:
    """Why a sandbox run did not pass, in a few words."""
    if result.ok:
        return "passed"
    if result.timed_out:
        return f"timed out after {timeout:g}s"
    if result.exit_code == 0:
        return "the checks did not report"
    if result.exit_code < 0:
        try:
            return f"killed by {signal.Signals(-result.exit_code).name}"
        except ValueError:
            return f"killed by signal {-result.exit_code}"
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    return lines[-1].strip()[:200] if lines else f"exit code {result.exit_code}"


def run_tests(code: str | None, tests: list[str], options: ExecutionOptions) -> ExecutionReport:
    """Run ``code`` against each test, one sandbox run per test (a few at a time)."""
    [report] = asyncio.run(run_all([code], tests, options))
    return report


async def run_all(
    codes: list[str | None], tests: list[str], options: ExecutionOptions
) -> list[ExecutionReport]:
    """``run_tests`` for several candidates' code, ``options.workers`` runs at a time.

    The runs belong to the awaiting task: cancelling it kills every run still going.
    """
    slots = asyncio.Semaphore(options.workers)
    limits = Limits(timeout=options.timeout, memory_mb=options.memory_mb, max_processes=options.max_processes)

    async def run(code: str, test: str) -> Outcome:
        async with slots:
            result = await arun_checks(code, test, limits=limits)
        return Outcome(result.ok, failure_reason(result, options.timeout), result.seconds)

    jobs = [run(code, test) for code in codes if code is not None for test in tests]
    outcomes = iter(await asyncio.gather(*jobs))
    reports = []
    for code in codes:
        if code is None:
            reports.append(ExecutionReport(outcomes=(), reason="no code block"))
        elif not tests:
            reports.append(ExecutionReport(outcomes=(), reason="no tests"))
        else:
            reports.append(ExecutionReport(outcomes=tuple(next(outcomes) for _ in tests)))
    return reports


def parse_tests(text: str, k: int) -> list[str]:
    """Up to ``k`` tests from a reply: each top-level assert of its code block, after the setup lines.

    Function and class definitions are left out of the setup: a test writer that restates the solution
    beside its asserts would otherwise replace the candidate's function with its own, and every
    candidate would pass or fail alike.
    """
    code = extract_code(text) or ""
    try:
        tree = ast.parse(code)
    except SyntaxError:  # keep the lines that parse on their own
        asserts = [line.strip() for line in code.splitlines() if line.strip().startswith("assert ")]
        return [line for line in asserts if _parses(line)][:k]
    definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assert)
    setup = [
        ast.get_source_segment(code, node) or "" for node in tree.body if not isinstance(node, definitions)
    ]
    prelude = "\n".join(part for part in setup if part)
    tests = [ast.get_source_segment(code, node) or "" for node in tree.body if isinstance(node, ast.Assert)]
    return [f"{prelude}\n{test}" if prelude else test for test in tests if test][:k]


def _parses(line: str) -> bool:
    try:
        ast.parse(line)
    except SyntaxError:
        return False
    return True


def given_tests(problem: Problem) -> list[str]:
    tests = problem.metadata.get(TESTS_KEY)
    if isinstance(tests, str):
        return [tests]
    if isinstance(tests, list) and all(isinstance(t, str) for t in tests):
        return list(tests)
    raise UsageError(
        f"scorer 'tests' with tests=given needs problem.metadata[{TESTS_KEY!r}] (a test program or a list "
        f"of test snippets); problem {problem.id or problem.question[:40]!r} has none: use tests=generated"
    )


@SCORERS.register("tests", ExecutionOptions)
class ExecutionScorer(Scorer[ExecutionOptions]):
    """Runs each code candidate against given or model-written tests; score = fraction passed."""

    name = "tests"

    async def tests_for(self, problem: Problem, ctx: Context) -> tuple[list[str], Usage]:
        options = self.options
        if options.tests == "given":
            return given_tests(problem), Usage()
        request = GenRequest(
            messages=(Message("user", TEST_WRITER_PROMPT.format(k=options.k, question=problem.question)),),
            temperature=options.temperature,
            max_tokens=options.max_tokens,
        )
        [[generation]] = await ctx.generate([request], line=self.line)
        return parse_tests(generation.text, options.k), generation.usage

    async def score(self, problem: Problem, candidates: list[Candidate], ctx: Context) -> list[float]:
        options = self.options
        tests, writing = await self.tests_for(problem, ctx)
        if candidates:
            candidates[0].scoring_usage = candidates[0].scoring_usage + writing
        codes = [extract_code(candidate.text) for candidate in candidates]
        reports = await run_all(codes, tests, options)
        for candidate, report in zip(candidates, reports, strict=True):
            seconds = sum(o.seconds for o in report.outcomes)
            ctx.ledger.record(self.line, Usage(seconds=seconds))
            candidate.scoring_usage = candidate.scoring_usage + Usage(seconds=seconds)
        ctx.emit(
            "tests",
            tests=len(tests),
            results=[
                {"score": r.score, "reason": r.reason, "outcomes": [o.reason for o in r.outcomes]}
                for r in reports
            ],
        )
        return [report.score for report in reports]

    def max_cost(self, candidates: int) -> Cost:
        """One request that writes the tests when they are generated (per call, whatever the number of
        candidates); the sandbox runs are local."""
        options = self.options
        return Cost.sample(1, options.max_tokens) if options.tests == "generated" else Cost()
