"""``ponder serve``: an OpenAI-compatible endpoint that applies any strategy (or passes through)."""

from ponder.server.app import create_app
from ponder.server.lifecycle import ServerSettings, Upstream

__all__ = ["ServerSettings", "Upstream", "create_app"]
