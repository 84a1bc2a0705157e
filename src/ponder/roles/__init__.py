"""Roles over a shared candidate pool: generator, critic, ranker, fuser, verifier, test generator and
test runner. Importing this package registers every role."""

from ponder.roles import critic, fuser, generator, ranker, testing, verifier  # noqa: F401 - registration
from ponder.roles.base import ROLES, Pool, Role, RoleOptions

__all__ = ["ROLES", "Pool", "Role", "RoleOptions"]
