"""The one place where errors become HTTP responses with OpenAI-style bodies.

ponder's error vocabulary (``ponder.core.errors``) maps to statuses here and nowhere else: bad input
400, unreachable or failing upstream 502 (504 when it timed out). Errors that only the server can meet
(authentication, overload, unknown model) are :class:`HTTPFailure` with their status set directly.
"""

from __future__ import annotations

from ponder.core.errors import BackendError, BackendUnavailableError, PonderError, SetupError, UsageError


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


def _timed_out(error: BackendUnavailableError) -> bool:
    return "timeout" in error.cause.lower()


def to_failure(error: BaseException, upstream: str | None = None) -> HTTPFailure:
    """The HTTP failure for any exception; upstream failures name the upstream."""
    if isinstance(error, HTTPFailure):
        return error
    where = f"upstream {upstream!r}: " if upstream else ""
    if isinstance(error, UsageError):
        return InvalidRequest(str(error))
    if isinstance(error, BackendUnavailableError):
        if _timed_out(error):
            return HTTPFailure(504, where + str(error), "upstream_error", "upstream_timeout")
        return HTTPFailure(502, where + str(error), "upstream_error", "upstream_unavailable")
    if isinstance(error, BackendError):
        return HTTPFailure(502, where + str(error), "upstream_error", "upstream_error")
    if isinstance(error, SetupError):
        return HTTPFailure(503, str(error), "server_error", "setup_failed")
    if isinstance(error, TimeoutError):
        return HTTPFailure(504, "request timed out", "timeout_error", "request_timeout")
    if isinstance(error, PonderError):
        return HTTPFailure(500, str(error), "server_error", "internal_error")
    return HTTPFailure(500, f"internal error ({type(error).__name__})", "server_error", "internal_error")


def error_body(failure: HTTPFailure) -> dict[str, object]:
    return {
        "error": {
            "message": failure.message,
            "type": failure.type,
            "param": failure.param,
            "code": failure.code,
        }
    }
