"""Solve, detect, verify: stop a trace once it is complete, check it cheaply, revise when it is wrong.

After "Solve-Detect-Verify: Inference-Time Scaling with Flexible Generative Verifier" (FlexiVe;
Zhong et al., 2025):

1. **Solve** until a hesitation point: the solver's request stops at words such as "Wait" or "Hmm"
   (``HESITATIONS``), where reasoning models start second-guessing a solution that is often already
   complete.
2. **Detect**: at each hesitation point that follows an answer, a short probe asks the solver whether
   the solution is complete (Yes/No, 2 tokens, line ``detect``). If it is, solving stops there; if
   not, the trace continues after "Wait". A trace that stops on its own (end-of-sequence) is done and
   goes straight to verification: only a stop at a hesitation string is a hesitation point, told by the
   stop string the server reports (``Generation.stop_sequence``). A server that does not report it
   (OpenAI's own API, Ollama) makes every stop look like the end, so its traces are verified undetected.
3. **Verify** flexibly: ``checks`` short verifications (``check_tokens`` each, sampled; line
   ``verify``); when their verdicts agree that verdict stands, when they disagree one long verification
   (``long_check_tokens``, greedy) decides. Verdicts are read by the generative verifier's parser.
4. **Revise** when the verdict is "incorrect": the solver rewrites its solution with the verification
   as feedback, and the new solution is verified again, at most ``revisions`` times.

Defaults (ours, scaled to small models; the paper's budgets are for long reasoning traces): 3 short
checks of 256 tokens, a long check of 1024, one revision.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ponder.backends.base import Generation, GenRequest
from ponder.context import Context, SamplingOptions
from ponder.core.cost import Cost
from ponder.core.types import Candidate, Message, Problem, Result, Usage
from ponder.scorers.base import review_request
from ponder.scorers.genverifier import VERIFIER_SYSTEM_PROMPT, VERIFIER_TEMPLATE, parse_verdict
from ponder.scorers.judge import verbal_verdict
from ponder.strategies.base import STRATEGIES, Strategy

HESITATIONS = ("Wait", "Hmm", "Alternatively")
RESUME = "Wait"
DETECT_TOKENS = 2  # the completion probe's Yes or No
DETECT_SYSTEM_PROMPT = "You check whether a solution is finished. You reply Yes or No."
DETECT_TEMPLATE = (
    "Problem:\n{question}\n\nSolution so far:\n{solution}\n\n"
    "Is this solution complete, with its final answer stated? Reply with one word: Yes or No."
)
REVISE_TEMPLATE = (
    "A check of your solution found a problem:\n{feedback}\n\nWrite a corrected solution to the problem."
)


def hesitated(generation: Generation) -> bool:
    """Whether the solver stopped at a hesitation string, rather than ending its solution itself: both
    report ``finish_reason == "stop"``, and only the first may be resumed."""
    return generation.finish_reason == "stop" and generation.stop_sequence in HESITATIONS


class SolveDetectVerifyOptions(SamplingOptions):
    checks: int = Field(3, ge=1, le=32)
    check_tokens: int = Field(256, ge=1)
    long_check_tokens: int = Field(1024, ge=1)
    revisions: int = Field(1, ge=0, le=8)
    max_solution_chars: int = Field(6000, ge=100)


@STRATEGIES.register("solve-detect-verify", SolveDetectVerifyOptions)
class SolveDetectVerify(Strategy[SolveDetectVerifyOptions]):
    """Solve to a hesitation point, detect completion, verify with short checks (long if they disagree)."""

    name = "solve-detect-verify"

    def max_cost(self) -> Cost:
        """Per attempt (``revisions + 1``): the solution, grown from hesitation point to hesitation point,
        with a completion probe at each; the short checks; the long check. No option bounds the
        hesitation points: each solving request writes at least one token, so there are at most
        ``max_tokens`` of them, and as many probes."""
        options = self.options
        solving = Cost(calls=options.max_tokens, completion_tokens=options.max_tokens)
        probes = Cost.sample(options.max_tokens, DETECT_TOKENS)
        checks = Cost.sample(options.checks, options.check_tokens) + Cost.sample(1, options.long_check_tokens)
        return (solving + probes + checks) * (options.revisions + 1)

    async def run(self, problem: Problem, ctx: Context) -> Result:
        options = self.options
        request = ctx.request(problem, options, stop=HESITATIONS)
        candidates: list[Candidate] = []
        attempts: list[dict[str, Any]] = []
        for attempt in range(options.revisions + 1):
            solution, probes = await self.attempt(problem, request, ctx)
            candidates.append(solution)
            verdict, feedback, escalated = await self.verify(problem, solution, ctx)
            attempts.append(
                {"answer": solution.answer, "probes": probes, "verdict": verdict, "long_check": escalated}
            )
            if verdict != 0.0 or attempt == options.revisions or ctx.ledger.exhausted:
                break
            revision = (
                *request.messages,
                Message("assistant", solution.text),
                Message("user", REVISE_TEMPLATE.format(feedback=feedback)),
            )
            request = request.with_(messages=revision)
        final = candidates[-1]
        return ctx.result(self.spec, candidates, final.answer, final.text, trace={"attempts": attempts})

    async def attempt(self, problem: Problem, request: GenRequest, ctx: Context) -> tuple[Candidate, int]:
        """Grow a solution from hesitation point to hesitation point until it is complete."""
        options = self.options
        text, tokens, usage, probes = "", 0, Usage(), 0
        while True:
            wanted = request.with_(prefix=text or None, max_tokens=options.max_tokens - tokens)
            [[generation]] = await ctx.generate([wanted])
            text, tokens = text + generation.text, tokens + generation.completion_tokens
            usage = usage + generation.usage
            finish = generation.finish_reason
            if not hesitated(generation) or tokens >= options.max_tokens or not generation.completion_tokens:
                break
            if ctx.extract(text) is not None:
                probes += 1
                if await self.complete(problem, text, ctx):
                    break
            text += RESUME
        return ctx.candidate(Generation(text, finish, tokens, usage)), probes

    async def complete(self, problem: Problem, text: str, ctx: Context) -> bool:
        options = self.options
        probe = review_request(
            problem,
            Candidate(text),
            DETECT_SYSTEM_PROMPT,
            DETECT_TEMPLATE,
            options.max_solution_chars,
            temperature=0.0,
            max_tokens=DETECT_TOKENS,
        )
        [[reply]] = await ctx.generate([probe], line="detect")
        return verbal_verdict(reply.text) == 1.0

    async def verify(
        self, problem: Problem, solution: Candidate, ctx: Context
    ) -> tuple[float | None, str, bool]:
        """The verdict (1 correct, 0 incorrect, None unread), its text, and whether it escalated."""
        options = self.options

        def check(**settings: Any) -> GenRequest:
            return review_request(
                problem,
                solution,
                VERIFIER_SYSTEM_PROMPT,
                VERIFIER_TEMPLATE,
                options.max_solution_chars,
                **settings,
            )

        short = check(n=options.checks, temperature=options.temperature, max_tokens=options.check_tokens)
        [checks] = await ctx.generate([short.with_(seed=ctx.seed)], line="verify")
        verdicts = {parse_verdict(g.text) for g in checks}
        if len(verdicts) == 1 and None not in verdicts:
            [verdict] = verdicts
            return verdict, checks[0].text, False
        [[long]] = await ctx.generate(
            [check(temperature=0.0, max_tokens=options.long_check_tokens)], line="verify"
        )
        return parse_verdict(long.text), long.text, True
