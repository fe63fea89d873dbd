"""Password hashing with argon2id (argon2-cffi), off the event loop.

Parameters follow OWASP's argon2id minimum (19 MiB, 2 passes): a login costs ~20 ms of one core, run in a
thread so that the loop keeps serving other sockets meanwhile. At most one hash per core runs at once: a flood of
logins (from many addresses, past their rate limits) then waits its turn instead of crowding the event loop and
every other request off the CPU.
"""
from __future__ import annotations

import asyncio
import os

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)

# Verified against when the identity is unknown, so that "no such user" costs the same as "wrong password".
_DUMMY_HASH = _hasher.hash("hapta-dummy-password-for-timing")

_cores: asyncio.Semaphore | None = None


def _turn() -> asyncio.Semaphore:
    global _cores
    if _cores is None:   # made on first use, inside the running loop
        _cores = asyncio.Semaphore(max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                       else os.cpu_count() or 1))
    return _cores


async def hash_password(password: str) -> str:
    async with _turn():
        return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    def check() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False
    async with _turn():
        return await asyncio.to_thread(check)
