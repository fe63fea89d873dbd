"""Sessions in PostgreSQL: start one, roll its refresh token, detect reuse, check it is alive, revoke it.

A session is one login on one device. Its refresh tokens form a family; `auth.refresh` spends the presented token
and mints the next one. The rules, after GoTrue's and Auth0's refresh-token rotation:

    presented token  | what happens
    -----------------+-------------------------------------------------------------------------------
    unknown          | TOKEN_INVALID
    session revoked  | TOKEN_INVALID
    session too old  | TOKEN_EXPIRED (absolute lifetime or inactivity timeout passed)
    unspent          | spent now; a new token is minted; the session's last_seen moves on
    spent <= reuse   | (two tabs racing) the family's current token, found through the sealed successors
    spent > reuse    | TOKEN_REUSED, and the whole session is revoked: someone holds a stolen token

Racing refreshes of one token are serialised by locking the session row, so they can never mint two families.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from ..protocol.errors import TOKEN_EXPIRED, TOKEN_INVALID, TOKEN_REUSED, HaptaError
from ..store.postgres import Database
from .tokens import hash_secret, new_refresh_token, seal_successor, unseal_successor
from .users import USER_COLUMNS

USER_SELECT = ", ".join(f"u.{column}" for column in USER_COLUMNS)

# How many racing refreshes in a row a late tab may walk through to find the current token.
MAX_CHAIN_WALK = 16


class TokenReused(HaptaError):
    """A spent refresh token came back after the reuse interval; its session is now revoked."""

    def __init__(self, session_id: str):
        super().__init__(TOKEN_REUSED, "this refresh token was already used; the session is revoked")
        self.session_id = session_id


@dataclass(frozen=True)
class Policy:
    lifetime: float          # absolute session lifetime, seconds
    idle_timeout: float      # a session unused (no refresh, no resume) this long expires, seconds
    reuse_interval: float    # a spent token presented again this soon is a racing tab, not a thief, seconds


@dataclass(frozen=True)
class Rolled:
    user: dict
    session_id: str
    refresh_token: str


class Sessions:
    def __init__(self, db: Database, policy: Policy):
        self.db = db
        self.policy = policy

    async def start(self, user_id: str, lifetime: float | None = None) -> tuple[str, str]:
        """A new session with its first refresh token: (session id, refresh token). `lifetime`: a shorter one
        than the policy's (an admin's impersonation)."""
        refresh = new_refresh_token()
        session_id = await self.db.fetchval("""
            WITH s AS (INSERT INTO hapta.sessions (user_id, expires_at)
                       VALUES ($1, now() + make_interval(secs => $2)) RETURNING id)
            INSERT INTO hapta.refresh_tokens (hash, session_id) SELECT $3, id FROM s RETURNING session_id""",
            user_id, self.policy.lifetime if lifetime is None else min(lifetime, self.policy.lifetime),
            hash_secret(refresh))
        return session_id, refresh

    async def refresh(self, presented: str) -> Rolled:
        """Spend `presented` and return the family's next token (see the table above)."""
        async with self.db.acquire() as conn:
            try:
                async with conn.transaction():
                    return await self._refresh(conn, presented)
            except TokenReused as reused:
                # Outside the failed transaction: the revocation must stick even though the call fails.
                await self._revoke(conn, "id = $1", [reused.session_id], "refresh token reused")
                raise

    async def _refresh(self, conn: asyncpg.Connection, presented: str) -> Rolled:
        token_hash = hash_secret(presented)
        session_id = await conn.fetchval("SELECT session_id FROM hapta.refresh_tokens WHERE hash = $1", token_hash)
        if session_id is None:
            raise HaptaError(TOKEN_INVALID, "refresh token is not valid")
        # The lock that serialises racing refreshes of this family; every read after it sees the winner's writes.
        session = await conn.fetchrow(f"""
            SELECT s.id, s.revoked_at, s.expires_at <= now() AS too_old,
                   s.last_seen + make_interval(secs => $2) <= now() AS idle, {USER_SELECT}
            FROM hapta.sessions s JOIN users u ON u.id = s.user_id
            WHERE s.id = $1 FOR UPDATE OF s""", session_id, self.policy.idle_timeout)
        if session is None or session["revoked_at"] is not None:
            raise HaptaError(TOKEN_INVALID, "refresh token is not valid")
        if session["too_old"] or session["idle"]:
            raise HaptaError(TOKEN_EXPIRED, "the session has expired; log in again")
        user = {column: session[column] for column in USER_COLUMNS}
        row = await conn.fetchrow("""
            SELECT spent_at IS NOT NULL AS spent, sealed_next, now() - spent_at AS since
            FROM hapta.refresh_tokens WHERE hash = $1""", token_hash)
        if not row["spent"]:
            successor = new_refresh_token()
            await conn.execute("""
                UPDATE hapta.refresh_tokens SET spent_at = now(), replaced_by = $2, sealed_next = $3
                WHERE hash = $1""", token_hash, hash_secret(successor), seal_successor(presented, successor))
            await conn.execute("INSERT INTO hapta.refresh_tokens (hash, session_id) VALUES ($1, $2)",
                               hash_secret(successor), session_id)
            await conn.execute("UPDATE hapta.sessions SET last_seen = now() WHERE id = $1", session_id)
            return Rolled(user, session_id, successor)
        if row["since"] > timedelta(seconds=self.policy.reuse_interval):
            raise TokenReused(session_id)
        return Rolled(user, session_id, await self._current(conn, presented, row["sealed_next"]))

    async def _current(self, conn: asyncpg.Connection, token: str, sealed: bytes | None) -> str:
        """Walk the sealed successors from a spent token to the family's unspent one."""
        for _ in range(MAX_CHAIN_WALK):
            if sealed is None:
                break
            token = unseal_successor(token, sealed)
            row = await conn.fetchrow(
                "SELECT spent_at IS NOT NULL AS spent, sealed_next FROM hapta.refresh_tokens WHERE hash = $1",
                hash_secret(token))
            if row is None:
                break
            if not row["spent"]:
                return token
            sealed = row["sealed_next"]
        raise HaptaError(TOKEN_INVALID, "refresh token is not valid")

    async def alive(self, session_id: str, user_id: str) -> dict | None:
        """The session's user when the session may still be used (auth.resume); counts as activity."""
        row = await self.db.fetchrow(f"""
            UPDATE hapta.sessions s SET last_seen = now() FROM users u
            WHERE s.id = $1 AND s.user_id = $2 AND u.id = s.user_id AND s.revoked_at IS NULL
              AND s.expires_at > now() AND s.last_seen + make_interval(secs => $3) > now()
            RETURNING {USER_SELECT}""", session_id, user_id, self.policy.idle_timeout)
        return dict(row) if row else None

    async def owner(self, session_id: str) -> str | None:
        """The user a session (live or not) belongs to."""
        return await self.db.fetchval("SELECT user_id FROM hapta.sessions WHERE id = $1", session_id)

    async def list(self, user_id: str) -> list[dict]:
        rows = await self.db.fetch("""
            SELECT id, created, last_seen, expires_at FROM hapta.sessions
            WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()
              AND last_seen + make_interval(secs => $2) > now()
            ORDER BY last_seen DESC LIMIT 100""", user_id, self.policy.idle_timeout)
        return [dict(row) for row in rows]

    async def revoke(self, session_ids: list[str], reason: str) -> list[str]:
        async with self.db.acquire() as conn:
            return await self._revoke(conn, "id = ANY($1::text[])", [session_ids], reason)

    async def revoke_user(self, user_id: str, reason: str, *, keep: tuple[str | None, ...] = (),
                          conn: asyncpg.Connection | None = None) -> list[str]:
        """Every live session of a user but those in `keep` (the caller's own): after a password change, or by an
        admin. On `conn` when given: inside the transaction of the write that ends them (a password change)."""
        where, params = "user_id = $1 AND NOT (id = ANY($2::text[]))", [user_id, [k for k in keep if k]]
        if conn is not None:
            return await self._revoke(conn, where, params, reason)
        async with self.db.acquire() as own:
            return await self._revoke(own, where, params, reason)

    @staticmethod
    async def _revoke(conn: asyncpg.Connection, where: str, params: list, reason: str) -> list[str]:
        rows = await conn.fetch(f"""
            UPDATE hapta.sessions SET revoked_at = now(), revoked_reason = ${len(params) + 1}
            WHERE {where} AND revoked_at IS NULL RETURNING id""", *params, reason)
        return [row["id"] for row in rows]

    async def sweep(self) -> int:
        """Forget sessions long dead (their tokens go with them, ON DELETE CASCADE), then the guests left with no
        session: a guest has no email or password, so no one can ever sign in as it again (its records go with it,
        as the app's foreign keys say)."""
        status = await self.db.execute("""
            DELETE FROM hapta.sessions
            WHERE expires_at < now() - interval '1 day'
               OR revoked_at < now() - interval '1 day'
               OR last_seen + make_interval(secs => $1) < now() - interval '1 day'""", self.policy.idle_timeout)
        await self.db.execute("""
            DELETE FROM users u WHERE u.anonymous AND u.created < now() - interval '1 day'
              AND NOT EXISTS (SELECT FROM hapta.sessions s WHERE s.user_id = u.id)""")
        return int(status.split()[-1])
