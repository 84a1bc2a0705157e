"""Types, ledger, budget, registry and errors: the I/O-free core every other layer builds on."""

from ponder.core.errors import (
    BackendError,
    BackendUnavailableError,
    BudgetExhaustedError,
    OptionError,
    PonderError,
    SetupError,
    UnknownNameError,
    UsageError,
)
from ponder.core.ledger import Budget, Ledger, estimate_flops
from ponder.core.registry import Options, Registry, Spec, parse_spec
from ponder.core.types import Candidate, Message, Problem, Result, TokenLogprob, Usage

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "Budget",
    "BudgetExhaustedError",
    "Candidate",
    "Ledger",
    "Message",
    "OptionError",
    "Options",
    "PonderError",
    "Problem",
    "Registry",
    "Result",
    "SetupError",
    "Spec",
    "TokenLogprob",
    "UnknownNameError",
    "Usage",
    "UsageError",
    "estimate_flops",
    "parse_spec",
]
