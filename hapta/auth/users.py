"""The users repository: the statements on `users` and on what hangs off an account (mailed tokens, second factors,
provider links) that the account use cases (hapta/auth/accounts.py) are made of. No decisions here: which statement
runs when is the use case's business; each method is one statement or one short sequence that must stay together.

Methods that take `conn` run in the caller's transaction, so that a use case commits all of its writes or none.

Mailed tokens (hapta.account_tokens) are 256-bit secrets or six-digit codes, kept only as SHA-256, single-use and
short-lived. A token holds only for the account as it was minted for: the trigger of store/sql/0013 ends every live
token of an account whose email or password changes, and `spend` also checks that a token's address is still the
account's (but for an email change's, which carries the new one).
"""
from __future__ import annotations

import secrets
from typing import Any

import asyncpg

from ..store.postgres import Database
from .tokens import hash_secret

USER_COLUMNS = ("id", "email", "username", "verified", "anonymous", "created", "updated", "version")
SELECT_USER = ", ".join(USER_COLUMNS)

SPEND = """
UPDATE hapta.account_tokens t SET used_at = now()
  FROM users u
 WHERE t.hash = $1 AND t.purpose = $2 AND t.used_at IS NULL AND t.expires_at > now()
   AND u.id = t.user_id AND (t.purpose = 'email' OR t.email = u.email)
RETURNING t.user_id, t.email, t.session_id, u.verified
"""
# What a live token stands for, without spending it (a use case that checks more before it spends)
PEEK = """
SELECT t.user_id, t.email, u.verified, u.username, u.password_hash FROM hapta.account_tokens t
  JOIN users u ON u.id = t.user_id
 WHERE t.hash = $1 AND t.purpose = $2 AND t.used_at IS NULL AND t.expires_at > now()
   AND (t.purpose = 'email' OR t.email = u.email)
"""


def user_of(row: Any) -> dict[str, Any]:
    """The user as clients see it, from any row that carries USER_COLUMNS."""
    return {column: row[column] for column in USER_COLUMNS}


class Users:
    def __init__(self, db: Database):
        self.db = db

    # ---- users ----

    async def get(self, user_id: str | None, conn: asyncpg.Connection | None = None) -> dict[str, Any] | None:
        run = conn or self.db
        row = await run.fetchrow(f"SELECT {SELECT_USER} FROM users WHERE id = $1", user_id)
        return None if row is None else dict(row)

    async def with_password(self, column: str, value: str) -> Any:
        """The user whose `column` ("id", "email" or "username") is `value`, with its password hash; None."""
        assert column in ("id", "email", "username")
        return await self.db.fetchrow(f"SELECT {SELECT_USER}, password_hash FROM users WHERE {column} = $1", value)

    async def create(self, conn: asyncpg.Connection | None, email: str | None, username: str | None,
                     password_hash: str | None, *, verified: bool = False, anonymous: bool = False) -> dict[str, Any]:
        """A new user; asyncpg.UniqueViolationError when the email or the username is taken."""
        run = conn or self.db
        return dict(await run.fetchrow(
            f"INSERT INTO users (email, username, password_hash, verified, anonymous) VALUES ($1, $2, $3, $4, $5) "
            f"RETURNING {SELECT_USER}", email, username, password_hash, verified, anonymous))

    async def upgrade_guest(self, conn: asyncpg.Connection, user_id: str, email: str, username: str | None,
                            password_hash: str) -> dict[str, Any] | None:
        """A guest becomes an account in place (same id); None when it is no guest (any more)."""
        row = await conn.fetchrow(
            f"UPDATE users SET email = $2, username = $3, password_hash = $4, anonymous = false "
            f"WHERE id = $1 AND anonymous RETURNING {SELECT_USER}", user_id, email, username, password_hash)
        return None if row is None else dict(row)

    async def set_password(self, conn: asyncpg.Connection, user_id: str, password_hash: str | None) -> None:
        await conn.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user_id, password_hash)

    async def set_email(self, conn: asyncpg.Connection, user_id: str, email: str) -> dict[str, Any]:
        """The account's new address, verified (it was proven by the mail that led here)."""
        return dict(await conn.fetchrow(f"UPDATE users SET email = $2, verified = true WHERE id = $1 "
                                        f"RETURNING {SELECT_USER}", user_id, email))

    async def mark_verified(self, conn: asyncpg.Connection, user_id: str) -> dict[str, Any]:
        return dict(await conn.fetchrow(f"UPDATE users SET verified = true WHERE id = $1 RETURNING {SELECT_USER}",
                                        user_id))

    async def email_taken(self, conn: asyncpg.Connection, email: str, by_other_than: str) -> bool:
        return bool(await conn.fetchval("SELECT true FROM users WHERE email = $1 AND id <> $2", email, by_other_than))

    async def lock(self, conn: asyncpg.Connection, column: str, value: str) -> Any:
        """The user row whose `column` ("id" or "email") is `value`, locked for this transaction; None."""
        assert column in ("id", "email")
        return await conn.fetchrow(f"SELECT {SELECT_USER}, password_hash FROM users WHERE {column} = $1 FOR UPDATE",
                                   value)

    async def evict(self, conn: asyncpg.Connection, user_id: str) -> None:
        """Everything a pre-registrant may have left on an account whose address someone else just proved: the
        password, second factors, provider links and every live mailed token. The email counts as verified from
        here on. (Sessions are the session store's to end, in the same transaction.)"""
        await conn.execute("UPDATE users SET password_hash = NULL, verified = true WHERE id = $1", user_id)
        await conn.execute("DELETE FROM hapta.mfa_factors WHERE user_id = $1", user_id)
        await conn.execute("DELETE FROM hapta.identities WHERE user_id = $1", user_id)
        await self.end_tokens(conn, user_id)

    # ---- provider links (OAuth2) ----

    async def linked(self, conn: asyncpg.Connection, provider: str, subject: str) -> str | None:
        return await conn.fetchval("SELECT user_id FROM hapta.identities WHERE provider = $1 AND subject = $2",
                                   provider, subject)

    async def link(self, conn: asyncpg.Connection, provider: str, subject: str, user_id: str) -> None:
        await conn.execute("INSERT INTO hapta.identities (provider, subject, user_id) VALUES ($1, $2, $3)",
                           provider, subject, user_id)

    # ---- mailed tokens ----

    async def mint(self, conn: asyncpg.Connection, purpose: str, user_id: str, email: str, minutes: float, *,
                   session_id: str | None = None) -> str:
        """A new single-use token for `purpose`, valid `minutes`; only its hash is kept."""
        token = secrets.token_urlsafe(32)
        await conn.execute("INSERT INTO hapta.account_tokens (hash, user_id, purpose, email, expires_at, session_id) "
                           "VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5), $6)",
                           hash_secret(token), user_id, purpose, email, minutes * 60.0, session_id)
        return token

    async def peek(self, token: str, purpose: str) -> Any:
        """The account a live token of `purpose` stands for (user_id, email, verified, username, password_hash),
        without spending it; None for a wrong, spent, expired or outdated token."""
        return await self.db.fetchrow(PEEK, hash_secret(token), purpose)

    async def spend(self, conn: asyncpg.Connection, token: str, purpose: str) -> Any:
        """Spend a live token of `purpose`: (user_id, email, session_id, verified), or None (wrong, spent, expired,
        or minted for an address the account no longer has)."""
        return await conn.fetchrow(SPEND, hash_secret(token), purpose)

    async def end_tokens(self, conn: asyncpg.Connection, user_id: str) -> None:
        """Every live mailed token of the account is spent: links, codes, pending changes and challenges."""
        await conn.execute("UPDATE hapta.account_tokens SET used_at = now() WHERE user_id = $1 AND used_at IS NULL",
                           user_id)

    async def session_age(self, session_id: str | None) -> float | None:
        """Seconds since the session was signed in (its creation), or None when there is no such live session."""
        return await self.db.fetchval("SELECT extract(epoch FROM now() - created)::float8 FROM hapta.sessions "
                                      "WHERE id = $1 AND revoked_at IS NULL", session_id)
