"""The one place where errors become HTTP responses with OpenAI-style bodies.

ponder's error vocabulary (``ponder.core.errors``) maps to statuses here and nowhere else: bad input
400; an upstream that is unreachable, fails (5xx) or answers something malformed 502; an upstream that
timed out 504; an upstream that refused the request (4xx) 400 with code ``upstream_rejected``. No
upstream failure is ever a 500. Errors that only the server can meet (authentication, overload,
unknown model) are :class:`HTTPFailure` with their status set directly.

Messages name an upstream by its configured name, never by its URL: :class:`Redactor` replaces every
trace of an upstream's address (URL, host and port, a distinctive path) before a body leaves the server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from ponder.core.errors import (
    BackendError,
    BackendFailedError,
    BackendProtocolError,
    BackendRejectedError,
    BackendUnavailableError,
    BudgetExhaustedError,
    PonderError,
    SetupError,
    UsageError,
)

#: upstream refusals a client cannot fix by changing its request: the server's own credential is wrong
OPERATOR_REFUSALS = (401, 403, 407)


class HTTPFailure(Exception):
    """A failure with its own status: 401 bad key, 404 unknown model, 429 overloaded, 504 timeout."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.code = status, message, type_, code
        self.param, self.headers = param, headers or {}


class InvalidRequest(HTTPFailure):
    """A request the server will not run (400), naming the offending parameter."""

    def __init__(self, message: str, param: str | None = None, code: str = "invalid_request"):
        super().__init__(400, message, "invalid_request_error", code, param)


def upstream_failure(status: int, message: str, code: str) -> HTTPFailure:
    """A 502 or 504 that the upstream caused (type ``upstream_error``)."""
    return HTTPFailure(status, message, "upstream_error", code)


def backend_failure(error: BackendError, upstream: str | None) -> HTTPFailure:
    """The answer for a backend failure, built from its fields so it names the upstream, not its URL."""
    who = f"upstream {upstream!r}" if upstream else "the upstream"
    if isinstance(error, BackendUnavailableError):
        if error.timed_out:
            return upstream_failure(
                504, f"{who} timed out after {error.attempts} attempt(s)", "upstream_timeout"
            )
        message = f"{who} unreachable after {error.attempts} attempt(s): {error.cause}"
        return upstream_failure(502, message, "upstream_unavailable")
    if isinstance(error, BackendFailedError):
        message = f"{who} failed with HTTP {error.status} after {error.attempts} attempt(s): {error.cause}"
        return upstream_failure(502, message, "upstream_failed")
    if isinstance(error, BackendRejectedError):
        if error.status in OPERATOR_REFUSALS:
            return upstream_failure(502, f"{who} refused this server's credentials", "upstream_rejected")
        message = f"{who} rejected the request: {error}"
        return HTTPFailure(400, message, "invalid_request_error", "upstream_rejected")
    if isinstance(error, BackendProtocolError):
        return upstream_failure(502, f"{who} sent a malformed reply: {error}", "upstream_malformed")
    return upstream_failure(502, f"{who} failed: {error}", "upstream_error")


def to_failure(error: BaseException, upstream: str | None = None) -> HTTPFailure:
    """The HTTP failure for any exception; upstream failures name the upstream."""
    if isinstance(error, HTTPFailure):
        return error
    if isinstance(error, UsageError):
        return InvalidRequest(str(error))
    if isinstance(error, BackendError):
        return backend_failure(error, upstream)
    if isinstance(error, SetupError):
        return HTTPFailure(503, str(error), "server_error", "setup_failed")
    if isinstance(error, TimeoutError):
        message = f"request timed out waiting for upstream {upstream!r}" if upstream else "request timed out"
        return HTTPFailure(504, message, "timeout_error", "request_timeout")
    if isinstance(error, BudgetExhaustedError):  # the request's caps, enforced while it ran
        return InvalidRequest(str(error), param="model", code="over_limit")
    if isinstance(error, RecursionError):  # JSON nested deeper than the parser (or encoder) can follow
        return InvalidRequest("request body is nested too deeply")
    if isinstance(error, PonderError):
        return HTTPFailure(500, str(error), "server_error", "internal_error")
    return HTTPFailure(500, f"internal error ({type(error).__name__})", "server_error", "internal_error")


@dataclass(frozen=True)
class Redactor:
    """Rewrites text so that no upstream's address survives in it, each shown as ``upstream NAME``.

    An address shows up whole (``http://host:port/path/v1``), as ``host:port``, as a connection error's
    ``('host', port)``, or as its path alone (a 404 page saying ``Cannot POST /path/v1/...``). A bare
    ``/v1`` path says nothing about a deployment and is left alone, so messages stay readable. One pass
    over the text, so a replacement is never rewritten again.
    """

    pattern: re.Pattern[str] | None = None
    replacements: tuple[str, ...] = ()

    @classmethod
    def for_upstreams(cls, urls: Mapping[str, Sequence[str]]) -> Redactor:
        """A redactor for upstreams given as name -> their URLs (several for replicas, none for those
        that are no HTTP server)."""
        found = [
            (kind, form, f"upstream {name}")
            for name, addresses in urls.items()
            for url in addresses
            for kind, form in enumerate(_address_forms(url))
            if form
        ]
        forms = [(form, name) for _, form, name in sorted(found, key=lambda item: item[0])]  # URLs first
        if not forms:
            return cls()
        alternatives = "|".join(f"(?P<g{index}>{form})" for index, (form, _) in enumerate(forms))
        return cls(re.compile(alternatives, re.IGNORECASE), tuple(name for _, name in forms))

    def text(self, text: str) -> str:
        if self.pattern is None:
            return text
        return self.pattern.sub(lambda match: self.replacements[int(str(match.lastgroup)[1:])], text)

    def body(self, data: bytes) -> bytes:
        """An upstream's relayed body, rewritten only when it mentions an address."""
        text = data.decode(errors="replace")
        redacted = self.text(text)
        return data if redacted == text else redacted.encode()

    def failure(self, failure: HTTPFailure) -> HTTPFailure:
        message = self.text(failure.message)
        return HTTPFailure(
            failure.status, message, failure.type, failure.code, failure.param, failure.headers
        )


def _address_forms(url: str) -> list[str | None]:
    """Patterns for each form of ``url`` that could say where the upstream lives, most specific first."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    return [
        re.escape(url.rstrip("/")),
        re.escape(parts.netloc),
        re.escape(path) if path not in ("", "/v1") else None,
        rf"(?<![\w.-]){re.escape(parts.hostname)}(?![\w-])" if parts.hostname else None,
        rf"(?<!\d){parts.port}(?!\d)" if parts.port is not None else None,
    ]


def error_body(failure: HTTPFailure) -> dict[str, object]:
    return {
        "error": {
            "message": failure.message,
            "type": failure.type,
            "param": failure.param,
            "code": failure.code,
        }
    }
