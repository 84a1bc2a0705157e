"""Registries of named components with typed options, and the one spec-string parser.

A *spec* names a component and sets its options: ``self-consistency:n=16,temperature=0.8``. A
component may take one positional argument first (``prm:Qwen/Qwen2.5-Math-PRM-7B,aggregate=min``).
A value that itself contains commas is wrapped in brackets: ``best-of-n:scorer=[judge:temperature=0]``.
The CLI, server and eval all parse specs here, so the syntax and its errors are the same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ponder.core.errors import OptionError, UnknownNameError, UsageError, did_you_mean

T = TypeVar("T")


# -- who may set an option ----------------------------------------------------------------------------
# Markers in an option's type (``Annotated[...]``) that say what its value can reach, so that
# ``ponder serve`` can decide what an untrusted client may set (``ponder.server.policy``). An option
# without a marker may be set by a client when it is a number, a boolean or one of fixed choices, and
# is the operator's alone otherwise: a new text option is closed to clients until someone classifies it.
@dataclass(frozen=True)
class OperatorOnly:
    """Only the operator sets this option: it names a file, module, URL, credential, local model, remote
    code or a resource limit (``what``). ``client_values`` are values a client may still give (a shipped
    preset's name where a path could also go)."""

    what: str
    client_values: tuple[str, ...] = ()


@dataclass(frozen=True)
class NestedSpec:
    """The value is itself a spec of a registered ``strategy`` or ``scorer``, checked the same way."""

    kind: str


@dataclass(frozen=True)
class ServedModel:
    """A model name (or names). Run locally it may be any backend; a server allows only its upstreams."""


@dataclass(frozen=True)
class FreeText:
    """Text that only goes into prompts or parsing (a persona, a step delimiter): safe from a client."""


ScorerSpec = Annotated[str, NestedSpec("scorer")]
OptionalScorerSpec = Annotated[str | None, NestedSpec("scorer")]
StrategySpec = Annotated[str, NestedSpec("strategy")]
ModelName = Annotated[str | None, ServedModel()]
BaseURL = Annotated[str | None, OperatorOnly("url")]
Text = Annotated[str, FreeText()]
OptionalText = Annotated[str | None, FreeText()]
Sandbox = Annotated[T, OperatorOnly("sandbox")]  # a limit of the code sandbox (time, memory, processes)
Limit = Annotated[T, OperatorOnly("limits")]  # a client-side limit of a remote service (retries, time-outs)


class Options(BaseModel):
    """Base of every options model: unknown options are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: name of the field that a bare positional argument fills (``prm:MODEL``), if any.
    positional_field: ClassVar[str | None] = None


@dataclass(frozen=True)
class Spec:
    name: str
    positional: str | None
    options: dict[str, str]

    def __str__(self) -> str:
        parts = ([self.positional] if self.positional else []) + [f"{k}={v}" for k, v in self.options.items()]
        return self.name + (":" + ",".join(parts) if parts else "")


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside brackets."""
    items: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
            if depth < 0:
                raise UsageError(f"unbalanced brackets in {text!r}")
        if char == "," and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth:
        raise UsageError(f"unbalanced brackets in {text!r}")
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def _unwrap(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == "[" and value[-1] == "]":
        return value[1:-1]
    return value


def parse_spec(text: str) -> Spec:
    """Parse ``name[:positional][,key=value...]`` (the positional, if any, comes first)."""
    text = text.strip()
    if not text:
        raise UsageError("empty spec")
    name, _, rest = text.partition(":")
    positional: str | None = None
    options: dict[str, str] = {}
    for index, item in enumerate(_split_top_level(rest)):
        key, sep, value = item.partition("=")
        if not sep:
            if index != 0:
                raise UsageError(f"in {text!r}: {item!r} must be key=value (only the first item may be bare)")
            positional = _unwrap(item)
            continue
        key = key.strip().replace("-", "_")
        if key in options:
            raise UsageError(f"in {text!r}: option {key!r} given twice")
        options[key] = _unwrap(value)
    return Spec(name=name.strip(), positional=positional, options=options)


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    factory: Callable[..., T]
    options: type[Options]
    summary: str


class Registry(Generic[T]):
    """Named factories with typed options. ``build('name:k=v')`` validates and constructs."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self, name: str, options: type[Options], summary: str = ""
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorate(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            doc_lines = (factory.__doc__ or "").strip().splitlines()
            self._entries[name] = Entry(
                name, factory, options, summary or (doc_lines[0] if doc_lines else "")
            )
            return factory

        return decorate

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[name] for name in self.names()]

    def get(self, name: str) -> Entry[T]:
        if name not in self._entries:
            raise UnknownNameError(self.kind, name, self.names())
        return self._entries[name]

    def parse_options(self, spec: Spec | str, **overrides: Any) -> tuple[Entry[T], Options]:
        """Validate a spec's options against the component's model; overrides win over the spec."""
        if isinstance(spec, str):
            spec = parse_spec(spec)
        entry = self.get(spec.name)
        model = entry.options
        values: dict[str, Any] = dict(spec.options)
        if spec.positional is not None:
            field_name = model.positional_field
            if not field_name:
                raise OptionError(
                    f"{self.kind} {spec.name!r} takes no positional argument (got {spec.positional!r})"
                )
            values[field_name] = spec.positional
        values.update({k: v for k, v in overrides.items() if v is not None})
        valid = sorted(model.model_fields)
        unknown = sorted(set(values) - set(valid))
        if unknown:
            named = ", ".join(f"{name!r}{did_you_mean(name, valid)}" for name in unknown)
            raise OptionError(
                f"{self.kind} {spec.name!r} has no option {named}; "
                f"valid options: {', '.join(valid) or '(none)'}"
            )
        try:
            return entry, model(**values)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors(include_url=False)
            )
            raise OptionError(f"{self.kind} {spec.name!r}: {problems}") from None

    def build(self, spec: Spec | str, *args: Any, **overrides: Any) -> T:
        entry, options = self.parse_options(spec, **overrides)
        return entry.factory(options, *args)
