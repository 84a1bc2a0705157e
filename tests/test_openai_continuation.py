"""Continuing a partial assistant message on servers without continuation, and reading stop strings.

A fake OpenAI-compatible server on 127.0.0.1 receives the requests: with ``chat_template`` the backend
renders the conversation itself and posts the raw prompt (``/v1/completions``); the stop string that
ended a generation is read from vLLM's ``stop_reason`` and llama-server's verbose ``stopping_word``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import completion

from ponder.backends import GenRequest, OpenAIBackend
from ponder.backends.chat_template import ChatTemplate
from ponder.backends.openai import server_capabilities
from ponder.core import Message
from ponder.core.errors import BackendError

# the shape of Qwen2.5's template (ChatML), trimmed
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
MESSAGES = (Message("system", "Be brief."), Message("user", "2+2?"))
REQUEST = GenRequest(messages=MESSAGES, max_tokens=16, stop=("\n\n",), prefix="Step 1: add.\n\n")
EXPECTED_PROMPT = (
    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
    "<|im_start|>assistant\nStep 1: add.\n\n"
)


def text_completion(text: str, **choice: object) -> dict:
    return {
        "object": "text_completion",
        "choices": [{"index": 0, "text": text, "finish_reason": "stop", **choice}],
        "usage": {
            "prompt_tokens": 30,
            "completion_tokens": 3,
            "prompt_tokens_details": {"cached_tokens": 24},
        },
    }


def backend_for(url: str, server: str = "generic", **kwargs: object) -> OpenAIBackend:
    return OpenAIBackend(
        model="m", base_url=url, server=server, capabilities=server_capabilities(server), **kwargs
    )


def test_template_renders_up_to_the_prefix_keeping_its_trailing_blank_line(tmp_path: Path) -> None:
    path = tmp_path / "chatml.jinja"
    path.write_text(CHATML)
    assert ChatTemplate.load(str(path)).render(MESSAGES, "Step 1: add.\n\n") == EXPECTED_PROMPT
    trimming = ChatTemplate(CHATML.replace("message['content'] }}", "message['content'] | trim }}"))
    assert trimming.render(MESSAGES, "Step 1: add.\n\n").endswith("assistant\nStep 1: add.\n\n")


async def test_server_without_continuation_gets_the_templated_prompt_on_raw_completions(
    fake_openai_server, tmp_path: Path
) -> None:
    path = tmp_path / "chatml.jinja"
    path.write_text(CHATML)
    fake = fake_openai_server(lambda body, _: (200, text_completion("4 apples", stop_reason="\n\n"), {}))
    backend = backend_for(fake.url, "generic", chat_template=str(path), parameters=1e9)
    [[generation]] = await backend.generate([REQUEST.with_(logprobs=2)])
    await backend.close()
    [body] = fake.bodies
    assert "messages" not in body and body["prompt"] == EXPECTED_PROMPT
    assert body["stop"] == ["\n\n"] and body["logprobs"] == 2  # the legacy integer form
    assert generation.text == "4 apples" and generation.stop_sequence == "\n\n"
    assert (generation.usage.prompt_tokens, generation.usage.cached_prompt_tokens) == (30, 24)
    assert generation.usage.flops == 2e9 * (30 - 24 + 3)


async def test_requests_without_prefix_still_use_chat_completions(fake_openai_server, tmp_path: Path) -> None:
    path = tmp_path / "chatml.jinja"
    path.write_text(CHATML)
    fake = fake_openai_server(lambda body, _: (200, completion(["hi"]), {}))
    backend = backend_for(fake.url, "generic", chat_template=str(path))
    await backend.generate([REQUEST.with_(prefix=None)])
    await backend.close()
    assert "messages" in fake.bodies[0] and "prompt" not in fake.bodies[0]


async def test_hugging_face_tokenizer_supplies_template_and_special_tokens(
    fake_openai_server, tmp_path: Path
) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    vocabulary = {"<s>": 0, "</s>": 1, "[UNK]": 2}
    model = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocabulary, unk_token="[UNK]"))
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=model, bos_token="<s>", eos_token="</s>", chat_template="{{ bos_token }}" + CHATML
    )
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    fake = fake_openai_server(lambda body, _: (200, text_completion("4"), {}))
    backend = backend_for(fake.url, "ollama", chat_template=str(tmp_path / "tokenizer"))
    [[generation]] = await backend.generate([REQUEST])
    await backend.close()
    assert fake.bodies[0]["prompt"] == "<s>" + EXPECTED_PROMPT
    assert generation.stop_sequence is None  # the server named no stop string: end of sequence


async def test_without_template_a_server_lacking_continuation_says_how_to_fix_it() -> None:
    backend = backend_for("http://127.0.0.1:9/v1", "openai")
    with pytest.raises(BackendError, match="chat_template"):
        await backend.generate([REQUEST])


async def test_llama_server_is_asked_which_stop_string_matched(fake_openai_server) -> None:
    def answer(body: dict, attempt: int) -> tuple[int, dict, dict]:
        payload = completion(["Step 1: add.\n\nStep 2"])  # llama-server echoes the prefill
        payload["__verbose"] = (
            {"stop_type": "word", "stopping_word": "\n\n"}
            if attempt == 1
            else {
                "stop_type": "eos",
                "stopping_word": "",
            }
        )
        return 200, payload, {}

    fake = fake_openai_server(answer)
    backend = backend_for(fake.url, "llama-server")
    [[step]] = await backend.generate([REQUEST])
    [[last]] = await backend.generate([REQUEST])
    [[plain]] = await backend.generate([REQUEST.with_(stop=(), prefix=None)])
    await backend.close()
    assert fake.bodies[0]["verbose"] is True and fake.bodies[0]["response_fields"] == [
        "stop_type",
        "stopping_word",
    ]
    assert "verbose" not in fake.bodies[2]  # only asked when there are stop strings
    assert step.text == "Step 2" and step.stop_sequence == "\n\n"
    assert last.stop_sequence is None


async def test_vllm_stop_token_id_is_not_a_stop_string(fake_openai_server) -> None:
    payload = completion(["done"])
    payload["choices"][0]["stop_reason"] = 151645  # a stop token id (end of turn), not a string
    fake = fake_openai_server(lambda body, _: (200, payload, {}))
    backend = backend_for(fake.url, "vllm")
    [[generation]] = await backend.generate([REQUEST])
    await backend.close()
    assert generation.stop_sequence is None


async def test_legacy_completion_logprobs_are_parsed(fake_openai_server, tmp_path: Path) -> None:
    path = tmp_path / "chatml.jinja"
    path.write_text(CHATML)
    logprobs = {
        "tokens": ["4", " apples"],
        "token_logprobs": [-0.1, -0.2],
        "top_logprobs": [{"4": -0.1}, None],
    }
    fake = fake_openai_server(lambda body, _: (200, text_completion("4 apples", logprobs=logprobs), {}))
    backend = backend_for(fake.url, "generic", chat_template=str(path))
    [[generation]] = await backend.generate([REQUEST.with_(logprobs=1)])
    await backend.close()
    assert generation.logprobs is not None
    assert [(t.token, t.logprob, t.top) for t in generation.logprobs] == [
        ("4", -0.1, {"4": -0.1}),
        (" apples", -0.2, {}),
    ]
