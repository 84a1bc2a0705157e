"""The serving policy: what an untrusted client of ``ponder serve`` may ask, and what one request may cost.

A strategy spec from a client is checked option by option, recursively through nested specs
(``best-of-n:scorer=[judge:...]``), against the markers in each option's type (``ponder.core.registry``):

* numbers, booleans and fixed choices, and free text that only reaches prompts: the client's;
* nested strategy and scorer specs: checked the same way, at most ``MAX_NESTING`` deep;
* model names (a judge's, a critic's, debate agents'): only the server's own upstreams;
* anything that names a file, module, URL, credential, local model, remote code or a resource limit,
  and any text option nobody has classified yet: the operator's alone, set in the server's default
  strategy or in a named preset (``--preset careful=SPEC``, asked for by name). A refusal names the
  option and never echoes a value the server read.

The operator widens the policy explicitly, per kind (``--allow sandbox``); URLs and credentials never:
another model is reached by adding it as an upstream, so a credential only goes to the upstream it
belongs to. At run time a request's backends come from :class:`UpstreamBackends`, which means only the
upstreams whatever a spec says, and :class:`CappedBackend` refuses any call beyond the request's caps.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic.fields import FieldInfo

from ponder.backends.base import Backend, Generation, GenRequest, WrappedBackend
from ponder.backends.pool import Backends
from ponder.core.errors import BudgetExhaustedError, UsageError
from ponder.core.registry import (
    FreeText,
    NestedSpec,
    OperatorOnly,
    Registry,
    ServedModel,
    Spec,
    parse_spec,
)
from ponder.messages import split_names
from ponder.scorers import SCORERS
from ponder.server.errors import InvalidRequest
from ponder.strategies import STRATEGIES

#: kinds of operator-only options an operator may open to clients with ``--allow KIND``
WIDENABLE = ("sandbox", "limits", "file", "module", "local-model", "remote-code")
#: kinds no flag opens: a URL or a credential from a client could send the server's keys anywhere
NEVER_WIDENED = ("url", "credential")
#: how deep specs may nest (``then=[atom-of-thoughts:then=[...]]``) before the request is refused
MAX_NESTING = 4

REGISTRIES: dict[str, Registry[Any]] = {"strategy": STRATEGIES, "scorer": SCORERS}
SIMPLE_TYPES = (int, float, bool, type(None))


def _is_plain_value(annotation: Any) -> bool:
    """A number, a boolean or one of fixed choices (or an optional one): safe to take from a client."""
    if annotation in SIMPLE_TYPES:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return True
    if origin in (typing.Union, types.UnionType):
        return all(_is_plain_value(arg) for arg in typing.get_args(annotation))
    return False


def _marker(info: FieldInfo) -> object | None:
    return next(
        (m for m in info.metadata if isinstance(m, OperatorOnly | NestedSpec | ServedModel | FreeText)), None
    )


def format_spec(spec: Spec) -> str:
    """A spec as text that parses back to the same spec (values with commas go in brackets)."""

    def bracketed(value: str) -> str:
        return f"[{value}]" if "," in value else value

    items = [] if spec.positional is None else [bracketed(spec.positional)]
    items += [f"{key}={bracketed(value)}" for key, value in spec.options.items()]
    return spec.name + (":" + ",".join(items) if items else "")


@dataclass(frozen=True)
class Policy:
    """What clients may ask of this server. Presets and the default strategy are the operator's, trusted.

    ``upstreams`` are the model names other models may be chosen among; ``presets`` map a name to a spec;
    ``allow`` holds the operator-only kinds opened to clients.
    """

    upstreams: frozenset[str]
    presets: Mapping[str, str] = field(default_factory=dict)
    allow: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for kind in self.allow:
            if kind in NEVER_WIDENED:
                raise UsageError(
                    f"--allow {kind}: clients may never set a {kind}; add the other model as an --upstream "
                    "(its key stays with it) and let clients name it"
                )
            if kind not in WIDENABLE:
                raise UsageError(f"--allow {kind!r}: valid kinds are {', '.join(WIDENABLE)}")
        for name, spec in self.presets.items():
            if name in STRATEGIES.names():
                raise UsageError(f"--preset {name}: the name is a strategy's; choose another")
            STRATEGIES.build(spec)  # a bad preset fails at startup, not on a client's request

    def resolve(self, text: str) -> str:
        """The spec to run for a client's strategy ``text``: a preset expanded, every client option checked.

        A preset may take client options on top (``careful:n=4``); they are checked like any other.
        """
        spec = parse_spec(text)
        if spec.name in self.presets:
            base = parse_spec(self.presets[spec.name])
            if spec.positional is not None:
                raise InvalidRequest(f"preset {spec.name!r} takes options as key=value only", param="model")
            self._check(Spec(base.name, None, spec.options), "strategy", depth=0)
            return format_spec(Spec(base.name, base.positional, {**base.options, **spec.options}))
        self._check(spec, "strategy", depth=0)
        return text

    def _check(self, spec: Spec, kind: str, depth: int) -> None:
        if depth > MAX_NESTING:
            raise InvalidRequest(f"specs nest deeper than {MAX_NESTING} levels", param="model")
        entry = REGISTRIES[kind].get(spec.name)  # an unknown name: a 400 listing the valid ones
        positional = entry.options.positional_field
        given = {positional: spec.positional} if spec.positional is not None and positional else {}
        given.update(spec.options)
        for option, value in given.items():
            info = entry.options.model_fields.get(option)
            if info is not None:  # an unknown option is refused when the spec is built, listing valid ones
                self._check_option(f"{kind} {spec.name!r}", option, info, value, depth)

    def _check_option(self, where: str, option: str, info: FieldInfo, value: str, depth: int) -> None:
        marker = _marker(info)
        if isinstance(marker, NestedSpec):
            self._check(parse_spec(value), marker.kind, depth + 1)
        elif isinstance(marker, ServedModel):
            unknown = [name for name in split_names(value) if name not in self.upstreams]
            if unknown:
                served = ", ".join(sorted(self.upstreams))
                raise InvalidRequest(
                    f"option {option!r} of {where} must name models served here: {served}",
                    param="model",
                    code="option_not_allowed",
                )
        elif isinstance(marker, OperatorOnly):
            if value in marker.client_values or marker.what in self.allow:
                return
            raise InvalidRequest(
                f"option {option!r} of {where} names a {marker.what} and is set by this server's operator "
                "only (in a preset or the default strategy)",
                param="model",
                code="option_not_allowed",
            )
        elif marker is None and not _is_plain_value(info.annotation):
            raise InvalidRequest(
                f"option {option!r} of {where} is set by this server's operator only",
                param="model",
                code="option_not_allowed",
            )


class UpstreamBackends(Backends):
    """A request's pool in ``ponder serve``: a model name means one of the upstreams, nothing else.

    A URL is never followed (the policy refuses it before a run; this refuses it again if a spec ever
    reaches a run unchecked), so no client can make the server send a key elsewhere.
    """

    def __init__(self, upstreams: Mapping[str, Backend]):
        super().__init__()
        self.upstreams = upstreams

    async def get(self, default: Backend, model: str | None = None, base_url: str | None = None) -> Backend:
        if base_url is not None:
            raise UsageError("a model at another URL cannot be used here; name a model served here")
        if model is None or model == default.model:
            return default
        if model not in self.upstreams:
            raise UsageError(f"a model must be one served here: {', '.join(sorted(self.upstreams))}")
        return self.upstreams[model]


class RequestCap:
    """What one request may still cause upstream: calls (one per choice) and completion tokens."""

    def __init__(self, calls: int | None, completion_tokens: int | None):
        self.calls, self.completion_tokens = calls, completion_tokens
        self.spent_calls = self.spent_tokens = 0

    def reserve(self, requests: list[GenRequest]) -> None:
        """Count a call before it starts; refuse it when it could take the request past a cap."""
        calls = sum(r.n for r in requests)
        tokens = sum(r.n * r.max_tokens for r in requests)
        if self.calls is not None and self.spent_calls + calls > self.calls:
            raise BudgetExhaustedError(
                f"the request reached this server's cap of {self.calls} upstream calls"
            )
        if self.completion_tokens is not None and self.spent_tokens + tokens > self.completion_tokens:
            raise BudgetExhaustedError(
                f"the request reached this server's cap of {self.completion_tokens} completion tokens"
            )
        self.spent_calls += calls
        self.spent_tokens += tokens


@dataclass
class CappedBackend(WrappedBackend):
    """One request's view of an upstream: every call it makes, on any upstream, is counted on one cap.
    The upstream is the server's, so closing this leaves it open."""

    cap: RequestCap = field(default_factory=lambda: RequestCap(None, None))

    async def generate(self, requests: list[GenRequest]) -> list[list[Generation]]:
        self.cap.reserve(requests)
        return await self.wrapped.generate(requests)


def request_backends(upstreams: Mapping[str, Backend], cap: RequestCap) -> dict[str, Backend]:
    """Every upstream as this request sees it: capped together."""
    return {name: CappedBackend.around(backend, cap=cap) for name, backend in upstreams.items()}
