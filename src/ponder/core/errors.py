"""One error vocabulary for ponder.

Every failure a user can cause or meet is one of these classes. The CLI maps them to exit codes in one
place (``EXIT_CODES``) and the server (later) maps them to HTTP statuses, so nothing else needs to know.
"""

from __future__ import annotations

import difflib


class PonderError(Exception):
    """Base class of every error ponder raises on purpose."""

    exit_code = 1


class UsageError(PonderError):
    """The user asked for something that does not exist or is malformed (exit code 2)."""

    exit_code = 2


class UnknownNameError(UsageError):
    """A strategy, scorer, backend, model or dataset name that is not registered.

    The message suggests the closest valid names (a typo is the usual cause) before listing them all.
    """

    def __init__(self, kind: str, name: str, valid: list[str]):
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        self.suggestions = did_you_mean(name, self.valid)
        super().__init__(f"unknown {kind} {name!r}{self.suggestions}; valid names: {', '.join(self.valid)}")


def did_you_mean(name: str, valid: list[str]) -> str:
    """`` (did you mean 'temperature'?)`` for the valid names closest to a misspelt one, else ``""``."""
    close = difflib.get_close_matches(name, valid, n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""


class OptionError(UsageError):
    """An option name that the component does not take, or a value of the wrong type."""


class BackendError(PonderError):
    """A backend could not produce tokens: unreachable, failing, or misconfigured (exit code 3)."""

    exit_code = 3


class BackendUnavailableError(BackendError):
    """The backend could not be reached (connection refused or reset, or a time-out) after bounded retries.

    ``url`` is where the backend was asked: a URL, or the configured name a server shows instead of it.
    ``timed_out`` says the last attempt ran out of time (a server answers 504 rather than 502).
    """

    def __init__(self, url: str, cause: str, attempts: int, timed_out: bool = False):
        self.url, self.cause, self.attempts, self.timed_out = url, cause, attempts, timed_out
        super().__init__(f"backend at {url} unreachable after {attempts} attempt(s): {cause}")


class BackendFailedError(BackendError):
    """The backend answered, with a server error (5xx, or 429 still after the retries)."""

    def __init__(self, url: str, status: int, cause: str, attempts: int):
        self.url, self.status, self.cause, self.attempts = url, status, cause, attempts
        super().__init__(f"backend at {url} failed after {attempts} attempt(s): {cause}")


class BackendRejectedError(BackendError):
    """The backend answered but refused the request (a 4xx other than 429); retrying would not help."""

    def __init__(self, message: str, status: int | None = None):
        self.status = status
        super().__init__(message)


class BackendProtocolError(BackendError):
    """The backend answered 200 with something that is not a completion (bad JSON, wrong shape)."""


class SetupError(PonderError):
    """The embedded runtime or model could not be prepared (download, build or checksum failed)."""

    exit_code = 4


class BudgetExhaustedError(PonderError):
    """Raised inside a strategy when the budget forbids another call; strategies catch it and select."""
