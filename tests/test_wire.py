"""The OpenAI wire format: replies decoded in one validated pass, token logprobs kept as arrays."""

from __future__ import annotations

import json

import pytest

from ponder.backends.wire import Reply, decode, logprob_count, token_logprobs
from ponder.core.errors import BackendProtocolError
from ponder.core.types import TokenLogprob, TokenLogprobs

TOKENS = [
    TokenLogprob("The", -0.1, {"The": -0.1, "A": -2.5}),
    TokenLogprob(" answer", -0.2, {" answer": -0.2}),
    TokenLogprob(" 7", -1.5, {}),
]


def reply(content: list[dict[str, object]]) -> bytes:
    choice = {"index": 0, "message": {"content": "The answer 7"}, "logprobs": {"content": content}}
    return json.dumps({"choices": [choice]}).encode()


def test_arrays_read_as_the_list_of_tokens_they_stand_for() -> None:
    arrays = TokenLogprobs.of(TOKENS)
    assert arrays == TOKENS and list(arrays) == TOKENS and len(arrays) == 3
    assert arrays[0] == TOKENS[0] and arrays[-1].top == {} and arrays[1:] == TOKENS[1:]
    assert arrays.top_values[0] == (-0.1, -2.5) and arrays.logprobs == [-0.1, -0.2, -1.5]
    assert [] + arrays == TOKENS and arrays + TOKENS[:1] == [*TOKENS, TOKENS[0]]
    assert arrays != TOKENS[:2] and TokenLogprobs.of(arrays) is arrays


def test_chat_logprobs_decode_into_arrays_with_their_alternatives() -> None:
    content = [
        {
            "token": t.token,
            "logprob": t.logprob,
            "bytes": [1, 2],
            "top_logprobs": [{"token": k, "logprob": v} for k, v in t.top.items()],
        }
        for t in TOKENS
    ]
    decoded = decode(reply(content), Reply, "reply", "here")
    logprobs = decoded.choices[0].logprobs
    assert token_logprobs(logprobs) == TOKENS and logprob_count(logprobs) == 3


def test_legacy_completions_logprobs_are_arrays_too() -> None:
    legacy = {"tokens": ["a", "b"], "token_logprobs": [-0.5, None], "top_logprobs": [{"a": -0.5}, None]}
    body = json.dumps({"choices": [{"text": "ab", "logprobs": legacy}]}).encode()
    logprobs = decode(body, Reply, "reply", "here").choices[0].logprobs
    assert token_logprobs(logprobs) == [TokenLogprob("a", -0.5, {"a": -0.5}), TokenLogprob("b", 0.0, {})]
    assert logprob_count(logprobs) == 2


@pytest.mark.parametrize(
    ("body", "place"),
    [
        (
            b'{"choices": [{"message": {"content": 987654}}]}',
            "choices.0.message.content: Expected `str | null`",
        ),
        (b'{"choices": []}', "choices: Expected `array` of length >= 1"),
        (b'{"choices": [{"index": -1}]}', "choices.0.index: Expected `int` >= 0"),
        (b'{"choices": [{"index": "1"}]}', "choices.0.index: Expected `int`, got `str`"),
        (
            reply([{"token": "x", "logprob": "LOW"}]).replace(b'"LOW"', b"1e999"),
            "choices.0.logprobs.content.0.logprob: Number out of range",
        ),
        (b"[1, 2]", "Expected `object`, got `array`"),
        (b"{'choices'", "JSON is malformed"),
    ],
)
def test_a_malformed_reply_names_its_first_wrong_field_on_one_line(body: bytes, place: str) -> None:
    with pytest.raises(BackendProtocolError) as raised:
        decode(body, Reply, "reply", "upstream")
    message = str(raised.value)
    assert message.startswith("backend at upstream sent a malformed reply: ") and place in message
    assert "\n" not in message and "987654" not in message  # what the server sent is never quoted


def test_no_number_that_is_not_finite_passes_as_a_logprob() -> None:
    for value in (b"1e999", b"-1e999", b"NaN", b"Infinity"):
        body = reply([{"token": "x", "logprob": "LOW"}]).replace(b'"LOW"', value)
        with pytest.raises(BackendProtocolError):
            decode(body, Reply, "reply", "here")
    logprobs = decode(reply([{"token": "x", "logprob": -3}]), Reply, "reply", "here").choices[0].logprobs
    assert token_logprobs(logprobs) == [TokenLogprob("x", -3.0, {})]
