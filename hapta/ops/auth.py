"""auth.*: how a connection becomes anon, a user or admin.

A login creates a session (one device's login) with its first refresh token, and authenticates the connection
that asked. Unknown identity and wrong password answer alike, in the same time (a dummy hash is verified).
"""
from __future__ import annotations

import hmac
import re
from typing import Annotated, Any

import asyncpg
import msgspec

from ..auth.passwords import hash_password, verify_password
from ..auth.tokens import hash_secret, new_refresh_token
from ..protocol.errors import (ALREADY_EXISTS, INVALID_CREDENTIALS, TOKEN_INVALID, VALIDATION_FAILED,
                               HaptaError)
from .base import ADMIN, ANON, USER, Args, Call, Principal, op

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{1,63}$")
USERNAME = re.compile(r"^[a-z0-9_.]{2,32}$")
USER_COLUMNS = "id, email, username, created, updated, version"

Text = Annotated[str, msgspec.Meta(max_length=1024)]


class RegisterArgs(Args):
    email: Text
    password: Text
    username: Text | None = None


class LoginArgs(Args):
    identity: Text
    password: Text


class ResumeArgs(Args):
    token: Annotated[str, msgspec.Meta(max_length=4096)]


class AnonArgs(Args):
    apikey: Text


class AdminArgs(Args):
    key: Text


def _invalid(field: str, message: str) -> HaptaError:
    return HaptaError(VALIDATION_FAILED, message, details={"field": field})


async def _start_session(call: Call, user: asyncpg.Record) -> dict[str, Any]:
    """Create a session with its first refresh token; authenticate the calling connection; return a Session."""
    gateway = call.gateway
    refresh = new_refresh_token()
    session_id = await gateway.pool.fetchval("""
        WITH s AS (INSERT INTO hapta.sessions (user_id, expires_at)
                   VALUES ($1, now() + make_interval(secs => $2)) RETURNING id)
        INSERT INTO hapta.refresh_tokens (hash, session_id) SELECT $3, id FROM s RETURNING session_id""",
        user["id"], float(gateway.app.session_ttl), hash_secret(refresh))
    token, expires_at = gateway.signer.issue(user["id"], session_id)
    call.peer.principal = Principal(USER, user["id"], session_id, expires_at)
    return {"user": dict(user), "token": token, "expires_at": expires_at, "refresh_token": refresh}


@op("auth.register", RegisterArgs, guest=True)
async def register(call: Call, args: RegisterArgs) -> dict[str, Any]:
    email = args.email.strip().lower()
    if not EMAIL.match(email) or len(email) > 254:
        raise _invalid("email", "email is not a valid address")
    username = args.username.strip().lower() if args.username is not None else None
    if username is not None and not USERNAME.match(username):
        raise _invalid("username", "username must be 2-32 of a-z, 0-9, '_' and '.'")
    if len(args.password) < call.gateway.app.min_password_length:
        raise _invalid("password", f"password must be at least {call.gateway.app.min_password_length} characters")
    password_hash = await hash_password(args.password)
    try:
        user = await call.gateway.pool.fetchrow(
            f"INSERT INTO users (email, username, password_hash) VALUES ($1, $2, $3) RETURNING {USER_COLUMNS}",
            email, username, password_hash)
    except asyncpg.UniqueViolationError as exc:
        field = "username" if "username" in (exc.constraint_name or "") else "email"
        raise HaptaError(ALREADY_EXISTS, f"that {field} is taken", details={"field": field}) from None
    return await _start_session(call, user)


@op("auth.login", LoginArgs, guest=True)
async def login(call: Call, args: LoginArgs) -> dict[str, Any]:
    identity = args.identity.strip().lower()
    row = await call.gateway.pool.fetchrow(
        f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = $1 OR username = $1 LIMIT 1", identity)
    if not await verify_password(row["password_hash"] if row else None, args.password) or row is None:
        raise HaptaError(INVALID_CREDENTIALS, "identity or password is wrong")
    user = {key: row[key] for key in row.keys() if key != "password_hash"}
    return await _start_session(call, user)


@op("auth.resume", ResumeArgs, guest=True)
async def resume(call: Call, args: ResumeArgs) -> dict[str, Any]:
    claims = call.gateway.signer.verify(args.token)
    user = await call.gateway.pool.fetchrow(f"""
        SELECT {', '.join('u.' + c for c in USER_COLUMNS.split(', '))}
        FROM hapta.sessions s JOIN users u ON u.id = s.user_id
        WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > now()""",
        claims.session_id, claims.user_id)
    if user is None:   # deleted user, revoked or expired session: the token no longer speaks for anyone
        raise HaptaError(TOKEN_INVALID, "token is not valid")
    call.peer.principal = Principal(USER, claims.user_id, claims.session_id, claims.expires_at)
    return {"user": dict(user), "expires_at": claims.expires_at}


def _key_matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


@op("auth.anon", AnonArgs, guest=True)
async def anon(call: Call, args: AnonArgs) -> dict[str, Any]:
    if not _key_matches(args.apikey, call.gateway.settings.anon_key):
        raise HaptaError(INVALID_CREDENTIALS, "that key is not valid")
    call.peer.principal = Principal(ANON)
    return {"role": ANON}


@op("auth.admin", AdminArgs, guest=True)
async def admin(call: Call, args: AdminArgs) -> dict[str, Any]:
    if not _key_matches(args.key, call.gateway.settings.admin_key):
        raise HaptaError(INVALID_CREDENTIALS, "that key is not valid")
    call.peer.principal = Principal(ADMIN)
    return {"role": ADMIN}


@op("auth.me")
async def me(call: Call, args: None) -> dict[str, Any]:
    principal = call.principal
    if principal.role != USER:
        return {"role": principal.role}
    user = await call.gateway.pool.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE id = $1", principal.user_id)
    if user is None:
        raise HaptaError(TOKEN_INVALID, "this user no longer exists")
    return {"user": dict(user)}
