"""Local reward models: tiny random models built here, scored through the scorers, checked by hand.

Each test saves a 2-layer model with hidden size 32 and a word-level tokenizer to ``tmp_path``, loads
it through ``prm:``/``orm:`` (no hub access), and compares the scores with a computation made directly
from the model's raw logits at the positions the format puts the separator or tag.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from ponder.backends.scripted import ScriptedBackend  # noqa: E402
from ponder.context import Context  # noqa: E402
from ponder.core.errors import UsageError  # noqa: E402
from ponder.core.types import Candidate, Problem  # noqa: E402
from ponder.scorers import SCORERS  # noqa: E402
from ponder.scorers.reward_models import detect_family  # noqa: E402

WORDS = [
    *("what", "is", "2", "+", "3", "-", "4", "5", "1", "=", "first", "add", "then", "subtract"),
    *("answer", "so", "the", "boxed", "ки", "reason", "step", "by", "and", "put", "your", "final"),
]
SPECIALS = ["<pad>", "<unk>", "<extra_0>", "<|im_start|>", "<|im_end|>"]
TEMPLATE = "{% for m in messages %}<|im_start|>{{ m['role'] }} {{ m['content'] }}<|im_end|>{% endfor %}"
PROBLEM = Problem(question="what is 2 + 3 - 4")
SOLUTION = "first add 2 + 3 = 5\n\nthen subtract 5 - 4 = 1\n\nso the answer is 1"
STEPS = ["first add 2 + 3 = 5", "then subtract 5 - 4 = 1", "so the answer is 1"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def _tokenizer(path: Path) -> Any:
    vocab = {token: index for index, token in enumerate([*SPECIALS, *WORDS])}
    model = tokenizers.models.WordLevel(vocab=vocab, unk_token="<unk>")
    backend = tokenizers.Tokenizer(model)
    backend.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", eos_token="<|im_end|>"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIALS[2:]})
    tokenizer.chat_template = TEMPLATE
    tokenizer.save_pretrained(path)
    return tokenizer


def save_model(path: Path, model_class: Any, num_labels: int = 2) -> tuple[Any, Any]:
    """A tiny model in ``path/model`` and its tokenizer in ``path/tokenizer``.

    The tokenizer is saved apart: next to a Qwen2 config, transformers 5 loads any tokenizer as
    Qwen2's BPE class, which would not be this word-level one.
    """
    torch.manual_seed(0)
    tokenizer = _tokenizer(path / "tokenizer")
    config = transformers.Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        num_labels=num_labels,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = model_class(config).eval()
    model.save_pretrained(path / "model")
    return model, tokenizer


def model_spec(kind: str, path: Path, options: str = "") -> str:
    return f"{kind}:{path}/model,tokenizer={path}/tokenizer" + (f",{options}" if options else "")


def record_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths token-classification models (the PRMs here) are loaded from, from now on, in order."""
    loads: list[str] = []
    load = transformers.AutoModelForTokenClassification.from_pretrained

    def recorded(path: str, **settings: Any) -> Any:
        loads.append(str(path))
        return load(path, **settings)

    monkeypatch.setattr(transformers.AutoModelForTokenClassification, "from_pretrained", recorded)
    return loads


def _context() -> Context:
    return Context(backend=ScriptedBackend())


def _score(spec: str, candidates: list[Candidate], ctx: Context | None = None) -> list[float]:
    return asyncio.run(SCORERS.build(spec).score(PROBLEM, candidates, ctx or _context()))


def _logits(model: Any, tokenizer: Any, text: str) -> tuple[Any, Any]:
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        return ids[0], model(input_ids=ids).logits[0]


def test_separator_prm_scores_each_step_from_its_separator(tmp_path: Path) -> None:
    model, tokenizer = save_model(tmp_path, transformers.Qwen2ForTokenClassification)
    assert detect_family(transformers.AutoConfig.from_pretrained(tmp_path / "model")) == "separator"
    scorer = SCORERS.build(model_spec("prm", tmp_path))
    ctx = _context()
    [steps] = asyncio.run(scorer.score_steps(PROBLEM, [STEPS], ctx))

    system = "Please reason step by step, and put your final answer within \\boxed{}."
    text = (
        f"<|im_start|>system {system}<|im_end|><|im_start|>user {PROBLEM.question}<|im_end|>"
        f"<|im_start|>assistant {'<extra_0>'.join(STEPS)}<extra_0><|im_end|>"
    )
    ids, logits = _logits(model, tokenizer, text)
    separator = tokenizer.convert_tokens_to_ids("<extra_0>")
    positions = [i for i, token in enumerate(ids.tolist()) if token == separator]
    assert len(positions) == 3
    expected = [float(torch.softmax(logits[p], dim=-1)[1]) for p in positions]
    assert steps == pytest.approx(expected, abs=1e-5)
    assert ctx.ledger.lines["scorer:prm"].prompt_tokens == len(ids)
    assert ctx.ledger.lines["scorer:prm"].calls == 1

    # score(): split on blank lines, aggregate (the separator family defaults to min), bill candidates
    candidates = [Candidate(text=SOLUTION), Candidate(text=STEPS[0]), Candidate(text="")]
    ctx = _context()
    scores = asyncio.run(scorer.score(PROBLEM, candidates, ctx))
    assert scores[0] == pytest.approx(min(expected), abs=1e-5)
    assert scores[2] == 0.0
    assert candidates[0].scoring_usage.prompt_tokens == len(ids)
    assert candidates[2].scoring_usage.prompt_tokens == 0
    for how, rule in [("last", lambda s: s[-1]), ("mean", lambda s: sum(s) / 3), ("product", math.prod)]:
        [score] = _score(
            model_spec("prm", tmp_path, f"aggregate={how},batch_size=1"), [Candidate(text=SOLUTION)]
        )
        assert score == pytest.approx(rule(expected), abs=1e-5)


def test_batching_and_padding_do_not_change_scores(tmp_path: Path) -> None:
    save_model(tmp_path, transformers.Qwen2ForTokenClassification)
    texts = [SOLUTION, STEPS[1], "\n\n".join(STEPS[:2])]
    one_by_one = [_score(model_spec("prm", tmp_path, "batch_size=1"), [Candidate(text=t)])[0] for t in texts]
    batched = _score(model_spec("prm", tmp_path, "batch_size=3"), [Candidate(text=t) for t in texts])
    assert batched == pytest.approx(one_by_one, abs=1e-5)


def test_step_tag_prm_reads_good_over_bad_at_each_tag(tmp_path: Path) -> None:
    model, tokenizer = save_model(tmp_path, transformers.Qwen2ForCausalLM)
    scorer = SCORERS.build(model_spec("prm", tmp_path))
    assert scorer.family == "step-tag"
    [steps] = asyncio.run(scorer.score_steps(PROBLEM, [STEPS], _context()))

    text = f"{PROBLEM.question} " + "".join(f"{step} ки\n" for step in STEPS)
    ids, logits = _logits(model, tokenizer, text)
    tag, good, bad = (tokenizer.convert_tokens_to_ids(t) for t in ("ки", "+", "-"))
    positions = [i for i, token in enumerate(ids.tolist()) if token == tag]
    assert len(positions) == 3
    expected = [float(torch.softmax(logits[p, [good, bad]], dim=-1)[0]) for p in positions]
    assert steps == pytest.approx(expected, abs=1e-5)


def test_value_head_prm_is_a_sigmoid_at_each_separator(tmp_path: Path) -> None:
    model, tokenizer = save_model(tmp_path, transformers.Qwen2ForTokenClassification, num_labels=1)
    scorer = SCORERS.build(model_spec("prm", tmp_path, "system_prompt="))
    assert scorer.family == "value-head" and scorer.aggregate() == "last"
    [steps] = asyncio.run(scorer.score_steps(PROBLEM, [STEPS], _context()))
    text = (
        f"<|im_start|>user {PROBLEM.question}<|im_end|>"
        f"<|im_start|>assistant {'<extra_0>'.join(STEPS)}<extra_0><|im_end|>"
    )
    ids, logits = _logits(model, tokenizer, text)
    separator = tokenizer.convert_tokens_to_ids("<extra_0>")
    expected = [float(torch.sigmoid(logits[i, 0])) for i, t in enumerate(ids.tolist()) if t == separator]
    assert steps == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("num_labels", [1, 2])
def test_orm_scores_the_whole_solution(tmp_path: Path, num_labels: int) -> None:
    model, tokenizer = save_model(tmp_path, transformers.Qwen2ForSequenceClassification, num_labels)
    ctx = _context()
    candidates = [Candidate(text=SOLUTION), Candidate(text="the answer is 5")]
    scores = _score(model_spec("orm", tmp_path, "batch_size=2"), candidates, ctx)
    system = "Please reason step by step, and put your final answer within \\boxed{}."
    expected = []
    for candidate in candidates:
        text = (
            f"<|im_start|>system {system}<|im_end|><|im_start|>user {PROBLEM.question}<|im_end|>"
            f"<|im_start|>assistant {candidate.text}<|im_end|>"
        )
        _, logits = _logits(model, tokenizer, text)  # the model's head reads the last token
        value = torch.sigmoid(logits[0]) if num_labels == 1 else torch.softmax(logits, dim=-1)[1]
        expected.append(float(value))
    assert scores == pytest.approx(expected, abs=1e-5)
    assert ctx.ledger.lines["scorer:orm"].calls == 1
    assert all(c.scoring_usage.prompt_tokens > 0 for c in candidates)


def test_a_separator_that_is_not_one_token_is_a_usage_error(tmp_path: Path) -> None:
    save_model(tmp_path, transformers.Qwen2ForTokenClassification)
    with pytest.raises(UsageError, match="one token"):
        _score(model_spec("prm", tmp_path, "separator=[what is]"), [Candidate(text=SOLUTION)])


def test_an_undeclared_family_asks_for_the_option(tmp_path: Path) -> None:
    config = transformers.Qwen2Config(num_hidden_layers=1, hidden_size=32, num_attention_heads=4)
    config.architectures = ["Qwen2Model"]
    with pytest.raises(UsageError, match="family="):
        detect_family(config)


def test_scorers_of_one_model_load_it_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server builds a scorer per request: the weights are read once per process, by name and device
    (``auto`` is the device it resolves to), and scorers sharing them may run at once."""
    save_model(tmp_path, transformers.Qwen2ForTokenClassification)
    loads = record_loads(monkeypatch)
    candidates = [Candidate(text=SOLUTION), Candidate(text=STEPS[1])]
    first = _score(model_spec("prm", tmp_path), candidates)
    second = _score(model_spec("prm", tmp_path, "batch_size=1,device=cpu"), candidates)
    assert second == pytest.approx(first, abs=1e-5)
    assert loads == [f"{tmp_path}/model"]

    async def together() -> list[list[float]]:
        specs = [model_spec("prm", tmp_path), model_spec("prm", tmp_path, "max_length=16,aggregate=last")] * 2
        scorers = [SCORERS.build(spec) for spec in specs]
        return await asyncio.gather(*(s.score(PROBLEM, candidates, _context()) for s in scorers))

    full, truncated, *again = asyncio.run(together())
    assert again == [full, truncated] and full == pytest.approx(first, abs=1e-5)
    assert len(loads) == 1
