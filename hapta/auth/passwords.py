"""Password hashing with argon2id (argon2-cffi), off the event loop.

Parameters follow OWASP's argon2id minimum (19 MiB, 2 passes): a login costs ~20 ms of one core, run in a
thread so that the loop keeps serving other sockets meanwhile.
"""
from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)

# Verified against when the identity is unknown, so that "no such user" costs the same as "wrong password".
_DUMMY_HASH = _hasher.hash("hapta-dummy-password-for-timing")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    def check() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False
    return await asyncio.to_thread(check)
