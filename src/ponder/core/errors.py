"""One error vocabulary for ponder.

Every failure a user can cause or meet is one of these classes. The CLI maps them to exit codes in one
place (``EXIT_CODES``) and the server (later) maps them to HTTP statuses, so nothing else needs to know.
"""

from __future__ import annotations


class PonderError(Exception):
    """Base class of every error ponder raises on purpose."""

    exit_code = 1


class UsageError(PonderError):
    """The user asked for something that does not exist or is malformed (exit code 2)."""

    exit_code = 2


class UnknownNameError(UsageError):
    """A strategy, scorer, backend, model or dataset name that is not registered."""

    def __init__(self, kind: str, name: str, valid: list[str]):
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        super().__init__(f"unknown {kind} {name!r}; valid names: {', '.join(self.valid)}")


class OptionError(UsageError):
    """An option name that the component does not take, or a value of the wrong type."""


class BackendError(PonderError):
    """A backend could not produce tokens: unreachable, failing, or misconfigured (exit code 3)."""

    exit_code = 3


class BackendUnavailableError(BackendError):
    """The backend could not be reached after bounded retries; names the URL and the cause."""

    def __init__(self, url: str, cause: str, attempts: int):
        self.url, self.cause, self.attempts = url, cause, attempts
        super().__init__(f"backend at {url} unreachable after {attempts} attempt(s): {cause}")


class BackendRejectedError(BackendError):
    """The backend answered but refused the request (a 4xx other than 429); retrying would not help."""


class SetupError(PonderError):
    """The embedded runtime or model could not be prepared (download, build or checksum failed)."""

    exit_code = 4


class BudgetExhaustedError(PonderError):
    """Raised inside a strategy when the budget forbids another call; strategies catch it and select."""
