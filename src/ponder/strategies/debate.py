"""Multi-agent debate: M agents answer, then for T-1 rounds each sees the others' latest answers and
updates its own; the answer is the majority vote of the last round.

"Improving Factuality and Reasoning in Language Models through Multiagent Debate" (Du et al., 2023):
agents=3 and rounds=2 are its main setting (rounds counts the first, independent answers), and the
update prompt follows its "These are the solutions to the problem from other agents ... Using the
reasoning from other agents as additional advice, can you give an updated answer?". Each agent sees
its own previous answer (as its assistant turn) and only the other agents' *latest* answers, which keeps
prompts from growing with the rounds. "Revisiting Multi-Agent Debate as Test-Time Scaling" (2025)
finds debate rarely beats self-consistency at equal compute on math, and helps more with diverse
agents: give ``models=[a,b,c]`` (one per agent, in turn; billed per model) and/or
``personas=[a careful mathematician;a skeptical checker]`` (``;``-separated when they hold commas).
Every agent's calls go on its own ledger line ``role:agentI@MODEL``; ``Result.trace`` has each round.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from pydantic import Field

from ponder.context import Context, SamplingOptions
from ponder.core.cost import Cost
from ponder.core.registry import BaseURL, FreeText, ServedModel
from ponder.core.types import Candidate, Message, Problem, Result
from ponder.messages import Names, ask, persona_line, seeds, shown, with_system
from ponder.scorers import majority_vote
from ponder.strategies.base import STRATEGIES, Strategy

DEBATE_TEMPLATE = (
    "These are the solutions to the problem from other agents:\n\n{others}\n\n"
    "Using the reasoning from other agents as additional advice, can you give an updated answer? "
    "Examine your solution and that of the other agents step by step."
)


class DebateOptions(SamplingOptions):
    agents: int = Field(3, ge=1, le=32)
    rounds: int = Field(2, ge=1, le=10)  # including the first, independent answers
    models: Annotated[Names, ServedModel()] = []  # one model per agent, in turn (default: the run's model)
    personas: Annotated[Names, FreeText()] = []  # one persona per agent, in turn
    base_url: BaseURL = None  # an OpenAI-compatible server for the named models


@STRATEGIES.register("debate", DebateOptions)
class Debate(Strategy[DebateOptions]):
    """M agents, T rounds; each round every agent sees the others' latest answers; final majority vote."""

    name = "debate"
    depth_option = "rounds"

    def agent(self, index: int) -> tuple[str | None, str | None]:
        """The model and persona of agent ``index``."""
        options = self.options
        model = options.models[index % len(options.models)] if options.models else None
        persona = options.personas[index % len(options.personas)] if options.personas else None
        return model, persona

    def max_cost(self) -> Cost:
        """One answer per agent per round."""
        options = self.options
        return Cost.sample(options.agents * options.rounds, options.max_tokens)

    async def run(self, problem: Problem, ctx: Context) -> Result:
        options = self.options
        next_seed = seeds(ctx, options.seed)
        rounds: list[list[Candidate]] = []
        for number in range(options.rounds):
            if ctx.ledger.exhausted:  # ctx.result reports the budget as what stopped it
                break
            latest = rounds[-1] if rounds else None
            rounds.append(
                await asyncio.gather(
                    *(self.speak(problem, ctx, i, latest, next_seed()) for i in range(options.agents))
                )
            )
            ctx.emit("generated", count=(number + 1) * options.agents, usage=ctx.ledger.total)
        final = rounds[-1] if rounds else []
        vote = majority_vote(final)
        text = final[vote.winner].text if vote.winner is not None else None
        trace = {
            "agents": [
                {"model": model or ctx.backend.model, "persona": persona}
                for model, persona in map(self.agent, range(options.agents))
            ],
            "rounds": [[candidate.answer for candidate in answers] for answers in rounds],
        }
        candidates = [candidate for answers in rounds for candidate in answers]
        return ctx.result(self.spec, candidates, vote.answer, text=text, votes=vote.table, trace=trace)

    async def speak(
        self, problem: Problem, ctx: Context, index: int, latest: list[Candidate] | None, seed: int | None
    ) -> Candidate:
        """Agent ``index``'s answer: alone in the first round, then after the others' latest answers."""
        options = self.options
        model, persona = self.agent(index)
        messages = with_system(problem.as_messages(ctx.system_prompt), persona_line(persona))
        if latest is not None:
            others = "\n\n".join(
                f"One agent solution: ```{shown(c.text)}```" for j, c in enumerate(latest) if j != index
            )
            messages += (
                Message("assistant", latest[index].text),
                Message("user", DEBATE_TEMPLATE.format(others=others)),
            )
        request = ctx.request(problem, options, n=1).with_(messages=messages, seed=seed)
        backend = await ctx.backends.get(ctx.backend, model, options.base_url)
        [[generation]] = await ask(ctx, f"agent{index + 1}", backend, [request])
        return ctx.candidate(generation)
