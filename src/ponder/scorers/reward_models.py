"""Reward models run locally through Hugging Face transformers: process (``prm:MODEL``) and outcome
(``orm:MODEL``).

Process reward models come in three families, chosen with ``family=`` or read from the model's config
(its declared architecture and number of labels, never its name):

- ``separator``: a token-classification head with 2 labels; the assistant turn is the steps joined by a
  separator token (``<extra_0>``), and a step's score is softmax(logits at its separator)[1]. This is
  Qwen2.5-Math-PRM ("The Lessons of Developing Process Reward Models in Mathematical Reasoning", Zhang
  et al., 2025; its model card gives the format, system prompt and separator used here).
- ``step-tag``: a causal LM; every step is followed by a tag token (``ки``) and the step's score is
  P(good) = softmax over the logits of the "good" and "bad" tokens (``+``, ``-``) at the tag. This is
  Math-Shepherd (Wang et al., 2024; its model card gives the format and tokens).
- ``value-head``: a token-classification head with 1 label, read at each step's separator: sigmoid.

An outcome reward model is a sequence classifier over the whole conversation: sigmoid(logit) with one
label, softmax[1] with two.

torch and transformers are an optional extra (``pip install 'ponder[rm]'``), imported on first use.
Models run in batches (``batch_size``) in a worker thread, on ``device=auto`` (CUDA when available),
in float32 on CPU and bfloat16 on GPU unless ``dtype`` says otherwise. A model is loaded once per process
for each name, device and precision, and shared by every scorer that names it: ``ponder serve`` builds
scorers per request, and must not read the weights again for each.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import Field

from ponder.core.cost import Cost
from ponder.core.errors import UsageError
from ponder.core.extras import import_extra
from ponder.core.registry import OperatorOnly, OptionalText, Options, Text
from ponder.core.types import Candidate, Problem, Usage
from ponder.scorers.base import SCORERS, Scorer
from ponder.scorers.steps import Aggregate, StepScorer, share_usage

if TYPE_CHECKING:
    from ponder.context import Context

Family = Literal["separator", "step-tag", "value-head"]
Device = Literal["auto", "cpu", "cuda"]
DType = Literal["auto", "float32", "bfloat16", "float16"]

#: Qwen2.5-Math-PRM's system prompt (model card).
PRM_SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."

#: Aggregation used when the option is not given, per family (sources in ``ponder.scorers.steps``).
DEFAULT_AGGREGATE: dict[Family, Aggregate] = {"separator": "min", "step-tag": "min", "value-head": "last"}


class _ModelOptions(Options):
    positional_field: ClassVar[str | None] = "model"

    model: Annotated[str, OperatorOnly("local-model")]
    #: where the tokenizer is, when not next to the model
    tokenizer: Annotated[str | None, OperatorOnly("local-model")] = None
    device: Annotated[Device, OperatorOnly("local-model")] = "auto"
    dtype: Annotated[DType, OperatorOnly("local-model")] = "auto"
    batch_size: Annotated[int, OperatorOnly("local-model")] = Field(8, ge=1)
    max_length: Annotated[int | None, OperatorOnly("local-model")] = Field(None, ge=16)
    system_prompt: OptionalText = PRM_SYSTEM_PROMPT
    trust_remote_code: Annotated[bool, OperatorOnly("remote-code")] = False


class PRMOptions(_ModelOptions):
    family: Literal["auto", "separator", "step-tag", "value-head"] = "auto"
    aggregate: Aggregate | None = None
    separator: Text = "<extra_0>"
    step_tag: Text = "ки"
    good_token: Text = "+"
    bad_token: Text = "-"


class ORMOptions(_ModelOptions):
    pass


def _import_torch() -> tuple[Any, Any]:
    return import_extra("torch", "rm", "a reward model"), import_extra("transformers", "rm", "a reward model")


def detect_family(config: Any) -> Family:
    """The PRM family a model config declares: its architecture and its number of labels."""
    architectures = list(getattr(config, "architectures", None) or [])
    num_labels = int(getattr(config, "num_labels", 2))
    if any(a.endswith("ForCausalLM") for a in architectures):
        return "step-tag"
    if any(a.endswith(("ForTokenClassification", "ForProcessRewardModel")) for a in architectures):
        return "value-head" if num_labels == 1 else "separator"
    raise UsageError(
        f"cannot tell the PRM family from the model config (architectures {architectures or 'none'}, "
        f"{num_labels} labels); pass family=separator|step-tag|value-head"
    )


@dataclass
class _Loaded:
    torch: Any
    tokenizer: Any
    model: Any
    device: str
    parameters: int
    #: held while a thread calls the tokenizer or the model: scorers share them (``_LOADED``), and a
    #: tokenizer call may change its padding and truncation settings, so two threads must not overlap
    lock: threading.Lock = field(default_factory=threading.Lock)


Kind = Literal["token", "causal", "sequence"]
#: what makes two loads the same: model, tokenizer, head kind, device, dtype, remote code allowed
_LoadKey = tuple[str, str | None, Kind, str, str, bool]

#: every model this process has loaded, by ``_LoadKey``; models are read-only, so scorers share them
_LOADED: dict[_LoadKey, _Loaded] = {}
_LOADING = threading.Lock()


class _HFModel:
    """A model and tokenizer, loaded on first use (once per process, see ``_LOADED``), run in batches in a
    worker thread."""

    def __init__(self, options: _ModelOptions, kind: Kind):
        self.options, self.kind = options, kind

    def config(self) -> Any:
        _, transformers = _import_torch()
        return transformers.AutoConfig.from_pretrained(
            self.options.model, trust_remote_code=self.options.trust_remote_code
        )

    def load(self) -> _Loaded:
        """The loaded model: this process's copy when one was loaded for the same key, else a new one."""
        torch, _ = _import_torch()
        options = self.options
        device = options.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = options.dtype
        if dtype == "auto":
            dtype = "float32" if device == "cpu" else "bfloat16"
        key: _LoadKey = (
            options.model,
            options.tokenizer,
            self.kind,
            device,
            dtype,
            options.trust_remote_code,
        )
        with _LOADING:
            if key not in _LOADED:
                _LOADED[key] = self._load(device, dtype)
            return _LOADED[key]

    def _load(self, device: str, dtype: str) -> _Loaded:
        torch, transformers = _import_torch()
        options = self.options
        config = self.config()
        if self.kind == "causal":
            factory = transformers.AutoModelForCausalLM
        elif self.kind == "sequence":
            factory = transformers.AutoModelForSequenceClassification
        elif options.trust_remote_code and "AutoModel" in (getattr(config, "auto_map", None) or {}):
            factory = transformers.AutoModel  # e.g. Qwen2ForProcessRewardModel, shipped as remote code
        else:
            factory = transformers.AutoModelForTokenClassification
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                options.tokenizer or options.model, trust_remote_code=options.trust_remote_code
            )
            model = factory.from_pretrained(
                options.model, dtype=getattr(torch, dtype), trust_remote_code=options.trust_remote_code
            )
        except OSError as error:
            raise UsageError(f"cannot load reward model {options.model!r}: {error}") from None
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        model.to(device).eval()
        parameters = sum(p.numel() for p in model.parameters())
        return _Loaded(torch, tokenizer, model, device, parameters)

    def run(self, texts: list[str], read: Any) -> tuple[list[Any], list[Usage]]:
        """Tokenise and run ``texts`` in batches; ``read(input_ids, logits)`` turns one row into a result."""
        loaded = self.load()
        torch, tokenizer = loaded.torch, loaded.tokenizer
        results: list[Any] = []
        usages: list[Usage] = []
        size = self.options.batch_size
        with loaded.lock:
            for start in range(0, len(texts), size):
                batch = texts[start : start + size]
                started = time.monotonic()
                encoded = tokenizer(
                    batch,
                    return_tensors="pt",
                    padding=True,
                    truncation=self.options.max_length is not None,
                    max_length=self.options.max_length,
                    add_special_tokens=False,
                ).to(loaded.device)
                with torch.inference_mode():
                    output = loaded.model(**encoded)
                logits = (output.logits if hasattr(output, "logits") else output[0]).float().cpu()
                ids = encoded["input_ids"].cpu()
                mask = encoded["attention_mask"].cpu()
                for row in range(len(batch)):
                    keep = mask[row].bool()
                    per_token = logits[row][keep] if logits.dim() == 3 else logits[row]
                    results.append(read(ids[row][keep], per_token))
                lengths = [int(m.sum()) for m in mask]
                usages += share_usage(lengths, time.monotonic() - started, loaded.parameters)
        return results, usages


def _single_token(tokenizer: Any, text: str, what: str) -> int:
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) != 1:
        raise UsageError(f"the {what} {text!r} must be one token of this tokenizer; it encodes to {ids}")
    return int(ids[0])


def _chat(tokenizer: Any, system: str | None, question: str, answer: str) -> str:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": question},
        {"role": "assistant", "content": answer},
    ]
    if getattr(tokenizer, "chat_template", None):
        return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False))
    return "\n\n".join(m["content"] for m in messages)


@SCORERS.register("prm", PRMOptions)
class PRMScorer(StepScorer[PRMOptions]):
    """A local process reward model scores each step (separator, step-tag or value-head family)."""

    name = "prm"

    def __init__(self, options: PRMOptions):
        super().__init__(options)
        self._family: Family | None = None
        self._models: dict[Family, _HFModel] = {}

    @property
    def family(self) -> Family:
        if self._family is None:
            options = self.options
            if options.family != "auto":
                self._family = options.family
            else:
                self._family = detect_family(_HFModel(options, "token").config())
        return self._family

    def aggregate(self) -> Aggregate:
        return self.options.aggregate or DEFAULT_AGGREGATE[self.family]

    def max_cost(self, candidates: int) -> Cost:
        """None upstream: the model runs in this process."""
        return Cost()

    def format(self, tokenizer: Any, question: str, steps: list[str]) -> str:
        """The text the model reads: every step is followed by the separator (or tag) token."""
        options = self.options
        if self.family == "step-tag":  # Math-Shepherd: "question step1 ки\nstep2 ки\n"
            return f"{question} " + "".join(f"{step} {options.step_tag}\n" for step in steps)
        answer = "".join(step + options.separator for step in steps)
        return _chat(tokenizer, options.system_prompt, question, answer)

    async def evaluate(
        self, problem: Problem, steps: list[list[str]]
    ) -> tuple[list[list[float]], list[Usage]]:
        return await asyncio.to_thread(self._evaluate, problem, steps)

    def _evaluate(self, problem: Problem, steps: list[list[str]]) -> tuple[list[list[float]], list[Usage]]:
        options = self.options
        family = self.family
        kind: Kind = "causal" if family == "step-tag" else "token"
        model = self._models.setdefault(family, _HFModel(options, kind))
        loaded = model.load()
        torch, tokenizer = loaded.torch, loaded.tokenizer
        with loaded.lock:  # an encode can change the shared tokenizer's settings (see _Loaded.lock)
            if family == "step-tag":
                marker = _single_token(tokenizer, options.step_tag, "step tag")
                choices = [
                    _single_token(tokenizer, options.good_token, "good token"),
                    _single_token(tokenizer, options.bad_token, "bad token"),
                ]
            else:
                marker = _single_token(tokenizer, options.separator, "separator")

        def read(ids: Any, logits: Any) -> list[float]:
            positions = (ids == marker).nonzero().flatten()
            rows = logits[positions]
            if family == "step-tag":
                return [float(p) for p in torch.softmax(rows[:, choices], dim=-1)[:, 0]]
            if family == "separator":
                return [float(p) for p in torch.softmax(rows, dim=-1)[:, 1]]
            return [float(p) for p in torch.sigmoid(rows[:, 0])]

        scored = [index for index, solution in enumerate(steps) if solution]
        texts = [self.format(tokenizer, problem.question, steps[index]) for index in scored]
        results, usages = model.run(texts, read) if texts else ([], [])
        scores: list[list[float]] = [[] for _ in steps]
        costs = [Usage() for _ in steps]
        for index, result, usage in zip(scored, results, usages, strict=True):
            # Truncation (max_length) can drop the last separators: those steps get no score.
            scores[index], costs[index] = result[: len(steps[index])], usage
        return scores, costs


@SCORERS.register("orm", ORMOptions)
class ORMScorer(Scorer[ORMOptions]):
    """A local outcome reward model (sequence classifier) scores each whole solution."""

    name = "orm"
    granularity = "answer"

    def __init__(self, options: ORMOptions):
        super().__init__(options)
        self._model = _HFModel(options, "sequence")

    async def score(self, problem: Problem, candidates: list[Candidate], ctx: Context) -> list[float]:
        ctx.admit_calls(len(candidates))  # its forward passes are calls on the budget too
        scores, usages = await asyncio.to_thread(self._score, problem, [c.text for c in candidates])
        ctx.ledger.record(self.line, Usage.total(usages))
        for candidate, usage in zip(candidates, usages, strict=True):
            candidate.scoring_usage = candidate.scoring_usage + usage
        return scores

    def max_cost(self, candidates: int) -> Cost:
        """None upstream: the model runs in this process."""
        return Cost()

    def _score(self, problem: Problem, texts: list[str]) -> tuple[list[float], list[Usage]]:
        options = self.options
        loaded = self._model.load()
        torch, tokenizer = loaded.torch, loaded.tokenizer

        def read(ids: Any, logits: Any) -> float:
            if logits.shape[-1] == 1:
                return float(torch.sigmoid(logits[0]))
            return float(torch.softmax(logits, dim=-1)[1])

        formatted = [_chat(tokenizer, options.system_prompt, problem.question, text) for text in texts]
        if not formatted:
            return [], []
        return self._model.run(formatted, read)
