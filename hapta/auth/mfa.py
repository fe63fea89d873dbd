"""Two factors: TOTP (pyotp) with recovery codes, and the challenge a sign-in answers until the second factor.

    enroll(db, user, issuer)          -> {secret, uri}            (not in force until confirmed)
    confirm(db, user, code)           -> ten recovery codes       (shown once; kept hashed)
    challenge(db, user)               -> a challenge or None      (None: the user has no factor in force)
    challenged(db, challenge)         -> the user's id, or None   (whose sign-in a live challenge finishes)
    answer(db, challenge, code)       -> the user's id, or None   (a TOTP code or a recovery code)
    disable(db, user, code)           -> True when it was removed (a current TOTP code or a recovery code)
    remove(conn, user)                -> True when there was one  (an admin's reset: no code)

A code works once: the time step it belongs to is kept, and a code of that step or an earlier one is refused. A
challenge lives CHALLENGE_MINUTES and takes CHALLENGE_ATTEMPTS wrong codes before it is burnt; with the per-account
limit on auth.mfa.verify, six digits cannot be walked through.
"""
from __future__ import annotations

import hmac
import secrets
from typing import Any

import pyotp

from ..clock import Clock, wall
from ..store.postgres import Database
from .tokens import hash_secret

CHALLENGE_MINUTES = 5
CHALLENGE_ATTEMPTS = 5
RECOVERY_CODES = 10
STEP = 30   # seconds of a TOTP time step


def _digits(code: str) -> str | None:
    """A code as typed ("123 456", " 123456 "), as the six ASCII digits a TOTP code is; None if it is not one
    (str.isdigit() also takes other scripts' digits, which no authenticator shows)."""
    code = code.strip().replace(" ", "")
    return code if code.isascii() and code.isdigit() else None


def step_of(totp: pyotp.TOTP, code: str, last_step: int, clock: Clock = wall) -> int | None:
    """The time step `code` is valid for (now, or one step either side for clock drift), if it is after
    `last_step`."""
    code = _digits(code)
    if code is None:
        return None
    now = int(clock()) // STEP
    for step in (now - 1, now, now + 1):
        if step > last_step and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


async def enroll(db: Database, user_id: str, email: str, issuer: str) -> dict[str, str] | None:
    """A new secret, not yet in force (None when a factor is in force already: disable it first)."""
    secret = pyotp.random_base32()
    stored = await db.fetchval(
        "INSERT INTO hapta.mfa_factors (user_id, secret) VALUES ($1, $2) ON CONFLICT (user_id) DO UPDATE "
        "SET secret = excluded.secret, last_step = 0 WHERE hapta.mfa_factors.confirmed_at IS NULL RETURNING user_id",
        user_id, secret)
    if stored is None:
        return None
    return {"secret": secret, "uri": pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)}


async def confirm(db: Database, user_id: str, code: str, clock: Clock = wall) -> list[str] | None:
    """Put the enrolled factor in force with a first code from the app; the recovery codes (None: wrong code)."""
    async with db.transaction() as conn:
        row = await conn.fetchrow("SELECT secret, last_step FROM hapta.mfa_factors WHERE user_id = $1 AND "
                                  "confirmed_at IS NULL FOR UPDATE", user_id)
        step = None if row is None else step_of(pyotp.TOTP(row["secret"]), code, row["last_step"], clock)
        if step is None:
            return None
        codes = [secrets.token_hex(5) for _ in range(RECOVERY_CODES)]
        await conn.execute("UPDATE hapta.mfa_factors SET confirmed_at = now(), last_step = $2, recovery = $3 "
                           "WHERE user_id = $1", user_id, step, [hash_secret(c) for c in codes])
    return codes


async def challenge(db: Database, user_id: str) -> str | None:
    """A challenge for a sign-in whose first factor was right, or None when the user has no factor in force."""
    if not await db.fetchval("SELECT true FROM hapta.mfa_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL",
                             user_id):
        return None
    token = secrets.token_urlsafe(32)
    await db.execute("INSERT INTO hapta.account_tokens (hash, user_id, purpose, email, expires_at) SELECT $1, id, "
                     "'mfa', email, now() + make_interval(mins => $3) FROM users WHERE id = $2",
                     hash_secret(token), user_id, CHALLENGE_MINUTES)
    return token


async def challenged(db: Database, challenge_token: str) -> str | None:
    """The user whose sign-in a live challenge would finish (for the per-account limit on guesses)."""
    return await db.fetchval("SELECT user_id FROM hapta.account_tokens WHERE hash = $1 AND purpose = 'mfa' "
                             "AND used_at IS NULL AND expires_at > now()", hash_secret(challenge_token))


async def answer(db: Database, challenge_token: str, code: str, clock: Clock = wall) -> Any:
    """The user a challenge stands for, when `code` is their TOTP code (unused) or one of their recovery codes
    (then spent); None otherwise (a wrong code counts against the challenge)."""
    code = code.strip().replace(" ", "")
    async with db.transaction() as conn:
        live = await conn.fetchrow(
            "SELECT t.hash, t.user_id, f.secret, f.last_step, f.recovery FROM hapta.account_tokens t "
            "JOIN hapta.mfa_factors f ON f.user_id = t.user_id WHERE t.hash = $1 AND t.purpose = 'mfa' "
            "AND t.used_at IS NULL AND t.expires_at > now() AND t.attempts < $2 AND f.confirmed_at IS NOT NULL "
            "FOR UPDATE OF t, f", hash_secret(challenge_token), CHALLENGE_ATTEMPTS)
        if live is None:
            return None
        if not await _use_code(conn, live, code, clock):
            await conn.execute("UPDATE hapta.account_tokens SET attempts = attempts + 1 WHERE hash = $1", live["hash"])
            return None
        await conn.execute("UPDATE hapta.account_tokens SET used_at = now() WHERE hash = $1", live["hash"])
        return live["user_id"]


async def _use_code(conn: Any, factor: Any, code: str, clock: Clock) -> bool:
    """Spend `code` against a factor in force (a row with user_id, secret, last_step, recovery): a TOTP code of a
    step not used before, or one of the recovery codes. False when it is neither."""
    step = step_of(pyotp.TOTP(factor["secret"]), code, factor["last_step"], clock)
    if step is not None:
        await conn.execute("UPDATE hapta.mfa_factors SET last_step = $2 WHERE user_id = $1", factor["user_id"], step)
        return True
    recovery = hash_secret(code)
    if recovery not in factor["recovery"]:
        return False
    await conn.execute("UPDATE hapta.mfa_factors SET recovery = array_remove(recovery, $2) WHERE user_id = $1",
                       factor["user_id"], recovery)
    return True


async def disable(db: Database, user_id: str, code: str, clock: Clock = wall) -> bool:
    """Remove the user's factor in force, proven with one of its codes (a current TOTP code or a recovery code):
    False when there is none or the code is wrong."""
    code = code.strip().replace(" ", "")
    async with db.transaction() as conn:
        factor = await conn.fetchrow("SELECT user_id, secret, last_step, recovery FROM hapta.mfa_factors "
                                     "WHERE user_id = $1 AND confirmed_at IS NOT NULL FOR UPDATE", user_id)
        if factor is None or not await _use_code(conn, factor, code, clock):
            return False
        await conn.execute("DELETE FROM hapta.mfa_factors WHERE user_id = $1", user_id)
        return True


async def remove(conn: Any, user_id: str) -> bool:
    """Remove the user's factor, in force or being enrolled, without a code (an admin's reset)."""
    return await conn.fetchval("DELETE FROM hapta.mfa_factors WHERE user_id = $1 RETURNING true", user_id) or False
