"""Does llama-server stop generating when ponder cancels a request? Read its log afterwards.

Run: python benchmarks/cancellation.py
Then: grep -a "cancel\\|release" ~/.cache/ponder/logs/llama-server-PID-*.log (PID as printed).
"""

import asyncio
import os

from ponder.backends import GenRequest
from ponder.backends.embedded.backend import embedded_backend
from ponder.core.types import Message


async def main() -> None:
    print("pid", os.getpid())
    backend = embedded_backend("smollm2-135m")
    await backend.start()
    story = Message("user", "Write a long story about a dragon.")
    request = GenRequest(messages=(story,), max_tokens=400, temperature=0.7, seed=3)
    task = asyncio.ensure_future(backend.generate([request]))
    await asyncio.sleep(4)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(6)
    [[generation]] = await backend.generate([request.with_(max_tokens=5)])
    print("the server still serves:", generation.completion_tokens, "tokens")
    await backend.close()


asyncio.run(main())
