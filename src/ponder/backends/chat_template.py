"""Continue a partial assistant message where the server cannot: apply the chat template here.

The conversation is rendered with the model's chat template, ending inside the assistant message right
after the prefix (what Hugging Face calls ``continue_final_message``), and sent as a raw prompt to
``/v1/completions``. The template is a Jinja file, or the ``chat_template`` of a Hugging Face tokenizer
(a directory or a hub name, loaded with ``transformers.AutoTokenizer``, which also supplies its special
tokens). Rendering follows transformers' own environment (sandboxed Jinja, ``trim_blocks``,
``lstrip_blocks``, ``raise_exception``, a ``tojson`` that keeps non-ASCII text).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ponder.core.errors import UsageError
from ponder.core.extras import import_extra
from ponder.core.types import Message

#: put after the prefix while rendering, then cut: what follows it is the end-of-turn markup
_END_OF_PREFIX = "<<ponder-end-of-prefix>>"


class ChatTemplate:
    """A chat template that renders a conversation whose last assistant message is to be continued."""

    def __init__(self, template: str, special_tokens: dict[str, str] | None = None):
        def raise_exception(message: str) -> None:
            raise TemplateError(message)

        def tojson(value: Any, indent: int | None = None, **_: Any) -> str:
            return json.dumps(value, ensure_ascii=False, indent=indent)

        environment = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
        )
        environment.filters["tojson"] = tojson
        environment.globals["raise_exception"] = raise_exception
        environment.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        self.template = environment.from_string(template)
        self.special_tokens = special_tokens or {}

    @classmethod
    def load(cls, source: str) -> ChatTemplate:
        """From a Jinja file, else from a Hugging Face tokenizer directory or hub name."""
        path = Path(source).expanduser()
        if path.is_file():
            return cls(path.read_text())
        transformers = import_extra("transformers", "rm", f"chat_template {source!r} (not a file)")
        tokenizer = transformers.AutoTokenizer.from_pretrained(source)
        if not tokenizer.chat_template:
            raise UsageError(f"tokenizer {source!r} has no chat template")
        tokens = {
            name: str(value) for name, value in tokenizer.special_tokens_map.items() if isinstance(value, str)
        }
        return cls(tokenizer.chat_template, tokens)

    def render(self, messages: Sequence[Message], prefix: str) -> str:
        """The prompt that makes the model continue an assistant message that begins with ``prefix``."""
        conversation = [{"role": m.role, "content": m.content} for m in messages]
        conversation.append({"role": "assistant", "content": prefix + _END_OF_PREFIX})
        rendered = self.template.render(
            messages=conversation, add_generation_prompt=False, **self.special_tokens
        )
        if _END_OF_PREFIX not in rendered:
            raise UsageError("the chat template dropped the assistant message: it cannot continue one")
        return rendered[: rendered.rindex(_END_OF_PREFIX)]
