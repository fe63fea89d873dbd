"""Admin accounts: the people who run the app from the dashboard, each with an email, a password (argon2id) and a
TOTP second factor (required in production), and the short-lived sessions they sign in to.

    create(email, password, totp)      -> {email, totp: {secret, uri} | None}   (the secret is shown this once)
    accounts()                         -> [{email, created, last_sign_in, totp, sessions}]
    delete(email, by)                  never the last admin, never the one asking
    reset_totp(email, keep)            -> {secret, uri}: a new factor; the admin's other sessions end
    sign_in(address, email, password, code) -> (Principal, {role, admin, token, expires_at})
    resume(token)                      -> (Principal, {role, admin, expires_at}): a reload, a new connection, or the
                                          refresh of a connection whose session nears its end; no sign-in attempt
    sign_out(session)                  the session ends on every connection that holds it

A session is a random 256-bit token, kept hashed. It lives `idle` seconds from its last use, and never past `lifetime`
from its sign-in (App.sessions.admin_idle_timeout and admin_ttl); the principal it binds (role admin, `name` the
admin's email: what logs say acted) expires with it, so that a connection left alone stops acting as admin when its
session does. Ending sessions reaches their sockets through the SessionHub's channel (auth/hub.py), from the gateway
and the command line alike.
The admin key (HAPTA_ADMIN_KEY, auth.admin) is not an account: it stays, for machines.
"""
from __future__ import annotations

import hashlib
import logging
import secrets
from typing import Any, Awaitable, Callable

import msgspec
import pyotp

from ..clock import Clock, wall
from ..principal import ADMIN, Principal
from ..protocol.errors import (ALREADY_EXISTS, FORBIDDEN, INVALID_CREDENTIALS, NOT_FOUND, TOKEN_INVALID,
                               HaptaError)
from ..store.failures import UPSTREAM_ERRORS
from ..store.postgres import Database
from .hub import CHANNEL, Revoked
from .identity import email_of, invalid, weakness
from .mfa import step_of
from .passwords import hash_password, verify_password
from .tokens import hash_secret

log = logging.getLogger("hapta.admins")

# The defaults of App.sessions.admin_idle_timeout and admin_ttl:
SESSION_IDLE = 15 * 60         # seconds a session lives past its last use (the dashboard renews it while open)
SESSION_MAX = 12 * 60 * 60     # seconds from sign-in after which it ends however busy it was: sign in again
MIN_PASSWORD = 12              # an admin opens everything: longer than a user's minimum
WRONG = "email, password or code is wrong"   # one answer for each: which part was wrong is not told

Throttle = Callable[[str, str, str], Awaitable[None]]


def totp_of(secret: str) -> pyotp.TOTP:
    """The factor, with its algorithm pinned: RFC 6238's defaults (HMAC-SHA1, 6 digits, 30 s), the only ones every
    authenticator app reads from a provisioning URI."""
    return pyotp.TOTP(secret, digits=6, digest=hashlib.sha1, interval=30)


class AdminAccounts:
    def __init__(self, db: Database, *, require_totp: bool, issuer: str = "Hapta", throttle: Throttle | None = None,
                 clock: Clock = wall, idle: int = SESSION_IDLE, lifetime: int = SESSION_MAX):
        self.db = db
        self.idle = idle                   # a session's life from its last use, seconds
        self.lifetime = lifetime           # and from its sign-in, at most
        self.require_totp = require_totp   # HAPTA_ENV=production: no account without a second factor
        self.issuer = issuer               # what an authenticator app names the factor
        self.throttle = throttle           # per-account sign-in attempts (the gateway's limiter); None: the CLI
        self.clock = clock                 # TOTP time steps

    def _factor(self, email: str) -> dict[str, str]:
        secret = pyotp.random_base32()
        return {"secret": secret, "uri": totp_of(secret).provisioning_uri(name=email, issuer_name=self.issuer)}

    # ---- the accounts ----

    async def create(self, email_text: str, password: str, *, totp: bool = True,
                     actor: str = "hapta admin") -> dict[str, Any]:
        """A new account (`actor`: who made it, for the log: an admin's label, or the command line)."""
        email = email_of(email_text)
        if not totp and self.require_totp:
            raise invalid("totp", "HAPTA_ENV=production requires a second factor for every admin")
        problem = weakness(password, min_length=MIN_PASSWORD, identities=(email,))
        if problem:
            raise invalid("password", problem)
        factor = self._factor(email) if totp else None
        created = await self.db.fetchval(
            "INSERT INTO hapta.admins (email, password_hash, totp_secret) VALUES ($1, $2, $3) "
            "ON CONFLICT (email) DO NOTHING RETURNING true",
            email, await hash_password(password), factor and factor["secret"])
        if not created:
            raise HaptaError(ALREADY_EXISTS, f"there is an admin {email} already", details={"field": "email"})
        log.info("admin account %s created by %s", email, actor)
        return {"email": email, "totp": factor}

    async def accounts(self) -> list[dict[str, Any]]:
        rows = await self.db.fetch("""
            SELECT a.email, a.created, a.last_sign_in, a.totp_secret IS NOT NULL AS totp,
                   (SELECT count(*) FROM hapta.admin_sessions s WHERE s.admin_id = a.id AND s.revoked_at IS NULL
                      AND s.expires_at > now()) AS sessions
            FROM hapta.admins a ORDER BY a.email""")
        return [dict(row) for row in rows]

    async def delete(self, email_text: str, *, by: str | None, actor: str = "hapta admin") -> None:
        """Delete an account and end its sessions. `by`: the admin account asking (None: the admin key, the
        command line), who may not delete their own."""
        email = email_text.strip().lower()
        if by is not None and email == by:
            raise HaptaError(FORBIDDEN, "you cannot delete your own admin account: another admin can")
        async with self.db.transaction() as conn:
            # every row locked: two admins deleting the two last accounts at once cannot both succeed
            emails = [row["email"] for row in await conn.fetch("SELECT email FROM hapta.admins ORDER BY id FOR UPDATE")]
            if email not in emails:
                raise HaptaError(NOT_FOUND, f"no admin {email[:254]}")
            if len(emails) == 1:
                raise HaptaError(FORBIDDEN, "the last admin account cannot be deleted: create another first")
            ended = [row["id"] for row in await conn.fetch(
                "SELECT s.id FROM hapta.admin_sessions s JOIN hapta.admins a ON a.id = s.admin_id WHERE a.email = $1 "
                "AND s.revoked_at IS NULL AND s.expires_at > now()", email)]
            await conn.execute("DELETE FROM hapta.admins WHERE email = $1", email)
        log.info("admin account %s deleted by %s", email, actor)
        await self._announce(ended, "admin account deleted")

    async def reset_totp(self, email_text: str, *, keep: str | None = None,
                         actor: str = "hapta admin") -> dict[str, str]:
        """A new second factor for a lost or exposed one; the old one stops working, and so does every session of
        the account but `keep` (the asking admin's own, when they reset their own)."""
        email = email_text.strip().lower()
        factor = self._factor(email)
        async with self.db.transaction() as conn:
            found = await conn.fetchval("UPDATE hapta.admins SET totp_secret = $2, totp_last_step = 0 WHERE email = $1 "
                                        "RETURNING id", email, factor["secret"])
            if found is None:
                raise HaptaError(NOT_FOUND, f"no admin {email[:254]}")
            ended = [row["id"] for row in await conn.fetch(
                "UPDATE hapta.admin_sessions SET revoked_at = now() WHERE admin_id = $1 AND revoked_at IS NULL "
                "AND id IS DISTINCT FROM $2 RETURNING id", found, keep)]
        log.info("admin account %s: second factor reset by %s", email, actor)
        await self._announce(ended, "second factor reset")
        return factor

    # ---- signing in ----

    async def sign_in(self, address: str | None, email_text: str, password: str,
                      code: str | None) -> tuple[Principal, dict[str, Any]]:
        """Email, password and the current TOTP code, in one attempt: a wrong one of the three gets the same answer
        (an unknown email costs a password check as a known one does: a dummy hash is verified)."""
        email = email_text.strip().lower()
        row = await self.db.fetchrow("SELECT id, password_hash, totp_secret, totp_last_step FROM hapta.admins "
                                     "WHERE email = $1", email)
        if self.throttle is not None:   # guesses at one account from many addresses
            await self.throttle("auth.admin.signin", "identity", row["id"] if row is not None else email)
        if not await verify_password(row["password_hash"] if row else None, password) or row is None:
            raise HaptaError(INVALID_CREDENTIALS, WRONG)
        if row["totp_secret"] is None:
            if self.require_totp:
                raise HaptaError(FORBIDDEN, "this admin has no second factor, which HAPTA_ENV=production requires: "
                                 "`hapta admin totp-reset --email ...` gives one")
        else:
            step = step_of(totp_of(row["totp_secret"]), code or "", row["totp_last_step"], self.clock)
            # spent in the same statement that checks it is still unspent: two sign-ins racing with one code, one wins
            if step is None or not await self.db.fetchval(
                    "UPDATE hapta.admins SET totp_last_step = $2 WHERE id = $1 AND totp_last_step < $2 RETURNING true",
                    row["id"], step):
                raise HaptaError(INVALID_CREDENTIALS, WRONG)
        token = secrets.token_urlsafe(32)
        session = await self.db.fetchrow("""
            WITH signed AS (UPDATE hapta.admins SET last_sign_in = now() WHERE id = $1)
            INSERT INTO hapta.admin_sessions (admin_id, token_hash, address, expires_at)
            VALUES ($1, $2, $3, now() + make_interval(secs => $4))
            RETURNING id, floor(extract(epoch FROM expires_at))::bigint AS expires_at""",
            row["id"], hash_secret(token), address, min(self.idle, self.lifetime))
        log.info("admin %s signed in from %s", email, address)
        principal = Principal(ADMIN, session_id=session["id"], expires_at=session["expires_at"], name=email)
        return principal, {"role": ADMIN, "admin": {"email": email}, "token": token,
                           "expires_at": session["expires_at"]}

    async def resume(self, token: str) -> tuple[Principal, dict[str, Any]]:
        """The session `token` stands for, if it is live; its life starts over (up to `lifetime`)."""
        row = await self.db.fetchrow("""
            UPDATE hapta.admin_sessions s SET last_seen = now(),
                   expires_at = least(now() + make_interval(secs => $2), s.created + make_interval(secs => $3))
            FROM hapta.admins a
            WHERE s.token_hash = $1 AND a.id = s.admin_id AND s.revoked_at IS NULL AND s.expires_at > now()
              AND s.created + make_interval(secs => $3) > now()
            RETURNING s.id, a.email, floor(extract(epoch FROM s.expires_at))::bigint AS expires_at""",
            hash_secret(token), self.idle, self.lifetime)
        if row is None:
            raise HaptaError(TOKEN_INVALID, "this admin session has ended: sign in again")
        principal = Principal(ADMIN, session_id=row["id"], expires_at=row["expires_at"], name=row["email"])
        return principal, {"role": ADMIN, "admin": {"email": row["email"]}, "expires_at": row["expires_at"]}

    async def sign_out(self, session_id: str) -> None:
        ended = await self.db.fetch("UPDATE hapta.admin_sessions SET revoked_at = now() WHERE id = $1 "
                                    "AND revoked_at IS NULL RETURNING id", session_id)
        await self._announce([row["id"] for row in ended], "signed out")

    async def sweep(self) -> None:
        """Forget sessions dead for a day (the sweep of auth/hub.py runs it)."""
        await self.db.execute("DELETE FROM hapta.admin_sessions WHERE expires_at < now() - interval '1 day' "
                              "OR revoked_at < now() - interval '1 day'")

    async def _announce(self, session_ids: list[str], reason: str) -> None:
        """Tell every gateway process to close the connections of these sessions (the SessionHub's channel: what
        auth.logout uses for users' sessions). Already ended in the database, which is what counts: a lost notice
        leaves a socket open only until its principal expires, and its token can no longer resume."""
        if not session_ids:
            return
        try:   # an admin has a handful of sessions: one payload, far under PostgreSQL's 8000 bytes
            await self.db.execute("SELECT pg_notify($1, $2)", CHANNEL,
                                  msgspec.json.encode(Revoked(session_ids, reason)).decode())
        except UPSTREAM_ERRORS as exc:
            log.warning("could not tell the sockets of %d ended admin sessions (%s)", len(session_ids),
                        type(exc).__name__)
