"""ping: a cheap round trip for liveness and latency."""
from __future__ import annotations

import time

from .base import Call, op


class MiscOps:
    @op("ping", guest=True)
    async def ping(self, call: Call, args: None) -> dict[str, int]:
        return {"time": int(time.time() * 1000)}
