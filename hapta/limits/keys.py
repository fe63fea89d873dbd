"""Every Redis key name the limiter uses, in one place (as arq's constants.py does), so that an operator can see
what Hapta stores in a shared Redis and nothing collides with another app using the same server.

All keys start with the deployment's prefix (HAPTA_REDIS_PREFIX, default "hapta:").
"""
from __future__ import annotations

DEFAULT_PREFIX = "hapta:"


def limit_state(prefix: str, key: str) -> str:
    """One rate-limit key's TAT (a string of integer microseconds), expiring when the key is idle again."""
    return f"{prefix}limit:{key}"
