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


# The most common passwords of public breach corpora that pass a length check; refusing them stops the first
# minutes of any credential-stuffing list. A full breach list is a deployment's choice, not a dependency of ours.
COMMON = frozenset("""
password 12345678 123456789 1234567890 qwertyuiop password1 iloveyou1 11111111 00000000 abc12345 sunshine1
princess1 football1 baseball1 welcome1 trustno1 superman1 whatever1 qwerty123 1q2w3e4r 1qaz2wsx zaq12wsx
qwerty12 asdfghjk asdfasdf letmein1 passw0rd password123 password12 admin123 changeme administrator 87654321
12341234 11223344 123123123 987654321 q1w2e3r4 monkey123 dragon123 master123 michael1 jennifer1 computer
internet starwars whatever 1234qwer qwertyui zxcvbnm1 zxcvbnmm iloveyou 88888888 12121212 qweasdzxc abcd1234
""".split())


def weakness(password: str, *, min_length: int, identities: tuple[str | None, ...] = ()) -> str | None:
    """Why a new password is too weak, or None. Length first (NIST SP 800-63B), then the obvious guesses."""
    if len(password) < min_length:
        return f"password must be at least {min_length} characters"
    lowered = password.lower()
    if lowered in COMMON or len(set(password)) < 4:
        return "password is too common or too simple"
    for identity in identities:
        if identity and len(identity) >= 3 and identity.split("@")[0].lower() in lowered:
            return "password must not contain your email or username"
    return None
