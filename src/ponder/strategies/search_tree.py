"""What every step-level search shares: steps, the search tree, expansion, step values and selection.

**Steps.** A step ends at ``delimiter`` (default a blank line, the step convention of the PRMs ponder
supports and of Hugging Face's search-and-learn), sent as the request's stop string, or after
``tokens_per_step`` tokens when that is set (then no stop string is sent). Any chat model works without
special prompting.

**Continuation.** A node's children continue its partial solution: each request carries it as
``GenRequest.prefix``, a partial assistant message the backend continues (server continuation, or the
chat template applied locally with raw completions; see ``ponder.backends.openai``). Expanding a depth
is ONE ``ctx.generate`` call with one request per live node (``n`` = its samples), so the server batches
them and its prompt cache serves the shared prefixes instead of prefilling them again.

**When is a solution complete?** llama-server and vLLM report ``finish_reason == "stop"`` both for
end-of-sequence and for a stop string, and strip the stop string from the text, so the text cannot tell
them apart. The backend reports which stop string matched (``Generation.stop_sequence``: llama-server's
``stopping_word``, vLLM's ``stop_reason``, SGLang's ``matched_stop``). A step therefore

* ends at a step boundary when it stopped on a stop string and wrote something (the delimiter is put
  back into the partial solution, so the next step starts after the blank line);
* completes the solution when it stopped by itself (``finish_reason == "stop"`` with no stop string,
  i.e. end-of-sequence), or wrote nothing at all (search-and-learn's rule: an empty step adds nothing);
* is truncated when it ran into ``max_tokens``, the cap on the whole solution's completion tokens.

At ``max_depth`` the last expansion is sent without a stop string, so a search that reaches it
finishes its solutions (search-and-learn's last iteration does the same). A server that does not report
the matched stop string (OpenAI's own API, Ollama) makes every delimiter step look complete: use
``tokens_per_step`` there.

**Step values.** A :class:`~ponder.scorers.steps.StepScorer` (PRM) scores the path's steps and the last
step's score is the node's value (``last``, Snell et al., 2024, and search-and-learn's default); any
other scorer (default ``judge``) scores the partial solution as a candidate, all live nodes in one call.

**Selection.** Only complete solutions are returned. ``select=best`` returns the highest-valued one,
``select=weighted`` a vote over equivalent answers weighted by value (``ponder.scorers.selection``).
The result's ``trace`` is the whole tree: ``{"kind": "search-tree", "nodes": [...]}``, each node with its
step text, value, parent, depth, how the step ended and what the search did with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from pydantic import Field, field_validator

from ponder.backends.base import Generation
from ponder.context import Context, SamplingOptions
from ponder.core.registry import ScorerSpec, Text
from ponder.core.types import Candidate, Problem, Result, TokenLogprob, Usage
from ponder.scorers import SCORERS
from ponder.scorers.selection import argmax, weighted_vote
from ponder.scorers.steps import StepScorer

#: how a step ended: at a step boundary, at end-of-sequence (solution complete), or at the token cap
from ponder.strategies.base import Strategy

StepEnd = Literal["step", "end", "length"]
#: what the search did with a node: not decided yet, expanded, dropped, kept as an answer, out of tokens
NodeState = Literal["open", "kept", "pruned", "finished", "truncated"]
#: a new node's state follows from how its step ended
_STATE_OF_END: dict[StepEnd, NodeState] = {"step": "open", "end": "finished", "length": "truncated"}


class StepSearchOptions(SamplingOptions):
    """Options of every step-level search. ``max_tokens`` caps each solution's completion tokens."""

    temperature: float = Field(0.8, ge=0.0, le=5.0)  # search-and-learn's sampling temperature
    scorer: ScorerSpec = "judge"
    delimiter: Text = "\n\n"
    tokens_per_step: int | None = Field(None, ge=1)
    max_depth: int = Field(40, ge=1)  # search-and-learn's num_iterations
    select: Literal["best", "weighted"] = "best"

    @field_validator("delimiter")
    @classmethod
    def _unescape(cls, value: str) -> str:
        """``delimiter=\\n\\n`` typed in a spec means two newlines."""
        if not value:
            raise ValueError("delimiter must not be empty")
        return value.replace("\\n", "\n").replace("\\t", "\t")


StepSearchOptionsT = TypeVar("StepSearchOptionsT", bound=StepSearchOptions)


@dataclass(eq=False)
class Node:
    """One step of a partial solution. ``solution`` is the whole partial solution up to this step."""

    id: int
    parent: int | None
    depth: int
    step: str
    solution: str
    tokens: int  # completion tokens of the whole partial solution
    end: StepEnd = "step"
    state: NodeState = "open"
    score: float | None = None
    rollout: bool = False  # generated only to value another node
    usage: Usage = field(default_factory=Usage)  # generating this step
    scoring_usage: Usage = field(default_factory=Usage)
    logprobs: list[TokenLogprob] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {
            "id": self.id,
            "parent": self.parent,
            "depth": self.depth,
            "text": self.step,
            "score": self.score,
            "end": self.end,
            "state": self.state,
            "tokens": self.tokens,
        }
        return {**data, "rollout": True} if self.rollout else data


class SearchTree:
    """Every node a search created, root first (id 0, the empty solution)."""

    def __init__(self) -> None:
        self.nodes = [Node(0, None, 0, "", "", 0, state="kept")]

    @property
    def root(self) -> Node:
        return self.nodes[0]

    def add(self, parent: Node, step: str, end: StepEnd, generation: Generation, rollout: bool) -> Node:
        node = Node(
            id=len(self.nodes),
            parent=parent.id,
            depth=parent.depth + 1,
            step=step,
            solution=parent.solution + step,
            tokens=parent.tokens + generation.completion_tokens,
            end=end,
            state=_STATE_OF_END[end],
            rollout=rollout,
            usage=generation.usage,
            logprobs=generation.logprobs,
        )
        self.nodes.append(node)
        return node

    def path(self, node: Node) -> list[Node]:
        """The nodes from the first step down to ``node`` (the root excluded)."""
        path = []
        while node.parent is not None:
            path.append(node)
            node = self.nodes[node.parent]
        return path[::-1]

    def children(self, node: Node) -> list[Node]:
        return [n for n in self.nodes if n.parent == node.id and not n.rollout]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "search-tree", "nodes": [node.to_dict() for node in self.nodes]}


class StepSearch(Strategy[StepSearchOptionsT], Generic[StepSearchOptionsT]):
    """Base of the step-level searches: expansion, step values, and the final selection."""

    budget_option = "n"
    depth_option = "max_depth"  # one generate call after another, one per depth

    def __init__(self, options: StepSearchOptionsT):
        super().__init__(options)
        self.scorer = SCORERS.build(options.scorer)

    async def expand(
        self,
        problem: Problem,
        ctx: Context,
        tree: SearchTree,
        parents: list[Node],
        samples: list[int],
        final: bool = False,
        rollout: bool = False,
        **changes: Any,
    ) -> list[list[Node]]:
        """Sample ``samples[i]`` next steps of ``parents[i]``, all in one generate call; ``final`` writes
        the solutions to their end (no stop string). ``changes`` override request fields (temperature)."""
        options = self.options
        requests = []
        for parent, count in zip(parents, samples, strict=True):
            remaining = options.max_tokens - parent.tokens
            by_tokens = options.tokens_per_step is not None and not final
            requests.append(
                ctx.request(
                    problem,
                    options,
                    n=count,
                    max_tokens=min(options.tokens_per_step or remaining, remaining)
                    if by_tokens
                    else remaining,
                    stop=() if final or by_tokens else (options.delimiter,),
                    prefix=parent.solution or None,
                    logprobs=self.scorer.needs_logprobs,
                    **changes,
                )
            )
        results = await ctx.generate(requests, line="rollout" if rollout else "generate")
        children = [
            [self._grow(tree, parent, generation, rollout) for generation in generations]
            for parent, generations in zip(parents, results, strict=True)
        ]
        ctx.emit("generated", count=len(tree.nodes) - 1, usage=ctx.ledger.total)
        return children

    def _grow(self, tree: SearchTree, parent: Node, generation: Generation, rollout: bool) -> Node:
        options = self.options
        tokens = parent.tokens + generation.completion_tokens
        at_boundary = generation.stop_sequence is not None and generation.text.strip()
        if generation.finish_reason != "length" and not at_boundary:
            return tree.add(parent, generation.text, "end", generation, rollout)
        end: StepEnd = "length" if tokens >= options.max_tokens else "step"
        return tree.add(parent, generation.text + (generation.stop_sequence or ""), end, generation, rollout)

    def candidate(self, ctx: Context, tree: SearchTree, node: Node) -> Candidate:
        """The partial (or complete) solution of ``node``, billed what its path cost."""
        path = tree.path(node)
        logprobs = [lp for n in path for lp in (n.logprobs or [])] if node.logprobs is not None else None
        candidate = Candidate(
            text=node.solution,
            answer=ctx.extract(node.solution),
            score=node.score,
            finish_reason={"end": "stop", "length": "length"}.get(node.end),
            completion_tokens=node.tokens,
            logprobs=logprobs,
            usage=Usage.total([n.usage for n in path]),
            scoring_usage=Usage.total([n.scoring_usage for n in path]),
            partial=node.end == "step",
        )
        if node.score is not None:
            candidate.scores[self.scorer.name] = node.score
        return candidate

    async def score(self, problem: Problem, ctx: Context, tree: SearchTree, nodes: list[Node]) -> None:
        """Set each node's value: the step scorer's score of its last step, or the scorer's score of its
        partial solution; one scorer call for all of them."""
        if not nodes:
            return
        if isinstance(self.scorer, StepScorer):
            steps = [[n.step.strip() for n in tree.path(node)] for node in nodes]
            step_scores = await self.scorer.score_steps(problem, steps, ctx)
            values = [scores[-1] if scores else 0.0 for scores in step_scores]
        else:
            candidates = [self.candidate(ctx, tree, node) for node in nodes]
            for candidate in candidates:
                candidate.scoring_usage = Usage()  # so it reads what scoring this node cost
            values = await self.scorer.score(problem, candidates, ctx)
            for node, candidate in zip(nodes, candidates, strict=True):
                node.scoring_usage = candidate.scoring_usage
        for node, value in zip(nodes, values, strict=True):
            node.score = value
        ctx.emit("scored", scores=values)

    def conclude(self, ctx: Context, tree: SearchTree, why_none: str) -> Result:
        """The result: every finished solution as a candidate, the selected answer, and the tree."""
        options = self.options
        finished = [node for node in tree.nodes if node.state == "finished"]
        candidates = [self.candidate(ctx, tree, node) for node in finished]
        if not candidates:
            return ctx.result(
                self.spec, [], None, note=f"no solution finished: {why_none}", trace=tree.to_dict()
            )
        scores = [node.score if node.score is not None else 0.0 for node in finished]
        vote = (
            weighted_vote(candidates, scores) if options.select == "weighted" else argmax(candidates, scores)
        )
        text = candidates[vote.winner].text if vote.winner is not None else None
        return ctx.result(
            self.spec, candidates, vote.answer, text=text, votes=vote.table, trace=tree.to_dict()
        )

    def out_of_budget(self, ctx: Context) -> bool:
        """Whether the budget is met (then the search stops and returns what finished)."""
        return ctx.budget_exhausted or ctx.ledger.exhausted
