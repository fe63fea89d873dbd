"""auth.*: how a connection becomes anon, a user or admin, and how its session rolls and ends.

A login creates a session (one device's login) with its first refresh token, and authenticates the connection
that asked. Unknown identity and wrong password answer alike, in the same time (a dummy hash is verified).
Every change of a connection's identity goes through the SessionHub (hapta/auth/hub.py), which also carries
revocations to the session's other connections, in this process and all others.
"""
from __future__ import annotations

import hmac
import logging
from typing import Annotated, Any, Callable

import asyncpg
import msgspec

from ..auth import oauth2
from ..auth.hub import SessionHub
from ..auth.accounts import InvalidIdentity, is_email, normalize_email, normalize_username, weakness
from ..auth.passwords import hash_password, verify_password
from ..auth.sessions import USER_COLUMNS, TokenReused
from ..auth.tokens import TokenSigner, hash_secret
from ..config import OAuth2Provider
from ..limits import Limiter
from ..principal import ADMIN, ANON, GUEST, USER, Principal
from ..protocol.errors import (ALREADY_EXISTS, BAD_REQUEST, FORBIDDEN, INVALID_CREDENTIALS, NOT_FOUND, TOKEN_INVALID,
                               VALIDATION_FAILED, HaptaError)
from ..store.postgres import Database
from .accounts import second_factor
from .base import Args, Call, op

log = logging.getLogger("hapta.auth")

SELECT_USER = ", ".join(USER_COLUMNS)

Text = Annotated[str, msgspec.Meta(max_length=1024)]
Token = Annotated[str, msgspec.Meta(max_length=4096)]


class RegisterArgs(Args):
    email: Text
    password: Text
    username: Text | None = None


class LoginArgs(Args):
    identity: Text
    password: Text


class ResumeArgs(Args):
    token: Token


class RefreshArgs(Args):
    refresh_token: Token


class PasswordArgs(Args):
    old: Text
    new: Text


class RevokeArgs(Args):
    session: Text | None = None
    user: Text | None = None     # admins: every session of this user


class SessionsArgs(Args):
    user: Text | None = None     # admins: that user's sessions


class ImpersonateArgs(Args):
    user: Text


IMPERSONATION_SECONDS = 900   # an admin acting as a user: 15 minutes, no refresh


class OAuth2Args(Args):
    provider: Text


class AnonArgs(Args):
    apikey: Text


class AdminArgs(Args):
    key: Text


def _invalid(field: str, message: str) -> HaptaError:
    return HaptaError(VALIDATION_FAILED, message, details={"field": field})


def _key_matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class AuthOps:
    def __init__(self, db: Database, hub: SessionHub, signer: TokenSigner, limiter: Limiter, *, anon_key: str,
                 admin_key: str, min_password_length: int, providers: dict[str, OAuth2Provider],
                 redirect_uri: Callable[[], str]):
        self.db = db
        self.hub = hub
        self.signer = signer
        self.limiter = limiter
        self.anon_key = anon_key
        self.admin_key = admin_key
        self.min_password_length = min_password_length
        self.providers = providers
        self.redirect_uri = redirect_uri   # asked each time: the server settles public_url once it listens

    async def _limit_account(self, call: Call, account: str) -> None:
        """Guesses against one account are limited wherever they come from (the dispatcher already limits each
        client address): the bucket `<op>:identity` of App.limits, else the op's own limit. `account` is the
        user's id when there is one, so that its email and its username share one budget; else the identity
        given. It is hashed so that no email address lands in Redis."""
        await self.limiter.enforce(call.op, "identity:" + hash_secret(account)[:32], collection="identity")

    def _check_password(self, password: str, *identities: str | None) -> None:
        problem = weakness(password, min_length=self.min_password_length, identities=identities)
        if problem:
            raise _invalid("password", problem)

    @op("auth.register", RegisterArgs, guest=True)
    async def register(self, call: Call, args: RegisterArgs) -> dict[str, Any]:
        """A new account, signed in on this connection. On a connection signed in as a guest (auth.guest) the guest
        becomes the account: the same id, so everything it wrote stays its own; its guest sessions end (their
        tokens stood for no password) and this connection gets the account's first session.

        A taken email answers ALREADY_EXISTS: register signs in at once, so it cannot answer as if it had worked;
        docs/security.md says what bounds that oracle."""
        try:
            email = normalize_email(args.email)
        except InvalidIdentity as exc:
            raise _invalid("email", str(exc)) from None
        try:
            username = normalize_username(args.username) if args.username is not None else None
        except InvalidIdentity as exc:
            raise _invalid("username", str(exc)) from None
        await self._limit_account(call, email)
        self._check_password(args.password, email, username)
        password_hash = await hash_password(args.password)
        principal, hub = call.principal, self.hub
        guest_sessions: list[str] = []
        try:
            if principal.role == USER and principal.anonymous:
                async with self.db.transaction() as conn:
                    user = await conn.fetchrow(
                        f"UPDATE users SET email = $2, username = $3, password_hash = $4, anonymous = false "
                        f"WHERE id = $1 AND anonymous RETURNING {SELECT_USER}",
                        principal.user_id, email, username, password_hash)
                    if user is None:   # another tab of the guest registered first, or the guest is gone
                        raise HaptaError(TOKEN_INVALID, "this guest is no longer a guest: sign in again")
                    guest_sessions = await hub.sessions.revoke_user(user["id"], "the guest became an account",
                                                                    conn=conn)
            else:
                user = await self.db.fetchrow(
                    f"INSERT INTO users (email, username, password_hash) VALUES ($1, $2, $3) RETURNING {SELECT_USER}",
                    email, username, password_hash)
        except asyncpg.UniqueViolationError as exc:
            field = "username" if "username" in (exc.constraint_name or "") else "email"
            raise HaptaError(ALREADY_EXISTS, f"that {field} is taken", details={"field": field}) from None
        session = await hub.sign_in(call.peer, user)   # this connection leaves the guest session first ...
        if guest_sessions:
            await hub.announce(guest_sessions, "the guest became an account")   # ... so only other tabs hear
        return session

    @op("auth.guest", guest=True)
    async def guest(self, call: Call, args: None) -> dict[str, Any]:
        """A guest account signed in on this connection: a user with no email or password (rules read
        `@user.anonymous` true), with a Session like any sign-in's, so that it survives reconnects through
        auth.resume and auth.refresh. auth.register on a connection signed in as it makes it an account. A guest
        whose sessions are all gone can never be signed in again, and the session sweep deletes it."""
        user = await self.db.fetchrow(f"INSERT INTO users (anonymous) VALUES (true) RETURNING {SELECT_USER}")
        return await self.hub.sign_in(call.peer, user)

    @op("auth.login", LoginArgs, guest=True)
    async def login(self, call: Call, args: LoginArgs) -> dict[str, Any]:
        """An identity with an '@' is an email, anything else a username: each names at most one account. Unknown
        identity and wrong password answer alike, in the same time (a dummy hash is verified)."""
        identity = args.identity.strip().lower()
        column = "email" if is_email(identity) else "username"
        row = await self.db.fetchrow(
            f"SELECT {SELECT_USER}, password_hash FROM users WHERE {column} = $1", identity)
        await self._limit_account(call, row["id"] if row is not None else identity)
        if not await verify_password(row["password_hash"] if row else None, args.password) or row is None:
            raise HaptaError(INVALID_CREDENTIALS, "identity or password is wrong")
        await second_factor(self.db, row["id"])   # MFA_REQUIRED with a challenge when the user has one
        return await self.hub.sign_in(call.peer, row)

    @op("auth.refresh", RefreshArgs, guest=True)
    async def refresh(self, call: Call, args: RefreshArgs) -> dict[str, Any]:
        hub = self.hub
        try:
            rolled = await hub.sessions.refresh(args.refresh_token)
        except TokenReused as reused:
            await hub.announce([reused.session_id], "refresh token reused")
            raise
        return hub.rolled(call.peer, rolled.user, rolled.session_id, rolled.refresh_token)

    @op("auth.resume", ResumeArgs, guest=True)
    async def resume(self, call: Call, args: ResumeArgs) -> dict[str, Any]:
        claims = self.signer.verify(args.token)
        user = await self.hub.sessions.alive(claims.session_id, claims.user_id)
        if user is None:   # deleted user, revoked or expired session: the token no longer speaks for anyone
            raise HaptaError(TOKEN_INVALID, "token is not valid")
        self.hub.bind(call.peer, Principal.of_user(user, claims.session_id, claims.expires_at))
        return {"user": user, "expires_at": claims.expires_at}

    @op("auth.anon", AnonArgs, guest=True)
    async def anon(self, call: Call, args: AnonArgs) -> dict[str, Any]:
        if not _key_matches(args.apikey, self.anon_key):
            raise HaptaError(INVALID_CREDENTIALS, "that key is not valid")
        self.hub.bind(call.peer, Principal(ANON))
        return {"role": ANON}

    @op("auth.admin", AdminArgs, guest=True)
    async def admin(self, call: Call, args: AdminArgs) -> dict[str, Any]:
        if not _key_matches(args.key, self.admin_key):
            raise HaptaError(INVALID_CREDENTIALS, "that key is not valid")
        self.hub.bind(call.peer, Principal(ADMIN))
        return {"role": ADMIN}

    @op("auth.logout", guest=True)
    async def logout(self, call: Call, args: None) -> dict[str, Any]:
        """Revoke this connection's session everywhere; this connection stays open as a guest."""
        session_id = call.principal.session_id
        self.hub.bind(call.peer, Principal(GUEST))
        if session_id is not None:
            await self.hub.revoke([session_id], "logout")
        return {}

    @op("auth.password", PasswordArgs)
    async def password(self, call: Call, args: PasswordArgs) -> dict[str, Any]:
        """Change the password; every other session of the user ends (this one goes on)."""
        principal = call.principal
        if principal.role != USER:
            raise HaptaError(FORBIDDEN, "only a signed-in user has a password")
        row = await self.db.fetchrow(
            "SELECT email, username, password_hash FROM users WHERE id = $1", principal.user_id)
        if row is None:
            raise HaptaError(TOKEN_INVALID, "this user no longer exists")
        if not await verify_password(row["password_hash"], args.old):
            raise HaptaError(INVALID_CREDENTIALS, "the current password is wrong")
        self._check_password(args.new, row["email"], row["username"])
        new_hash = await hash_password(args.new)
        hub = self.hub
        async with self.db.transaction() as conn:   # the new password and the end of the other sessions: both
            await conn.execute("UPDATE users SET password_hash = $2 WHERE id = $1", principal.user_id, new_hash)
            others = await hub.sessions.revoke_user(principal.user_id, "password changed", keep=principal.session_id,
                                                    conn=conn)
        await hub.announce(others, "password changed")
        return {}

    @op("auth.sessions", SessionsArgs)
    async def sessions(self, call: Call, args: SessionsArgs) -> dict[str, Any]:
        """The signed-in user's live sessions (devices), most recently used first; an admin names the `user`."""
        principal = call.principal
        if args.user is not None:
            if not principal.is_admin:
                raise HaptaError(FORBIDDEN, "only an admin lists the sessions of another user")
            return {"items": [{**item, "current": False} for item in await self.hub.sessions.list(args.user)]}
        if principal.role != USER:
            raise HaptaError(FORBIDDEN, "only a signed-in user has sessions")
        items = await self.hub.sessions.list(principal.user_id)
        for item in items:
            item["current"] = item["id"] == principal.session_id
        return {"items": items}

    @op("auth.revoke", RevokeArgs)
    async def revoke(self, call: Call, args: RevokeArgs) -> dict[str, Any]:
        """End a session (a user: one of their own; an admin: any session, or every session of `user`)."""
        principal, hub = call.principal, self.hub
        if (args.session is None) == (args.user is None):
            raise HaptaError(BAD_REQUEST, "give either session or user")
        if args.user is not None:
            if not principal.is_admin:
                raise HaptaError(FORBIDDEN, "only an admin revokes every session of a user")
            revoked = await hub.sessions.revoke_user(args.user, "revoked by an admin")
            await hub.announce(revoked, "revoked by an admin")
            return {"revoked": len(revoked)}
        if not principal.is_admin:
            owner = await self.db.fetchval("SELECT user_id FROM hapta.sessions WHERE id = $1", args.session)
            if principal.role != USER or owner != principal.user_id:
                raise HaptaError(NOT_FOUND, "no such session")
        reason = "revoked by an admin" if principal.is_admin else "revoked by the user"
        revoked = await hub.sessions.revoke([args.session], reason)
        await hub.announce(revoked, reason)
        return {"revoked": len(revoked)}

    @op("auth.impersonate", ImpersonateArgs)
    async def impersonate(self, call: Call, args: ImpersonateArgs) -> dict[str, Any]:
        """An admin becomes a user on this connection, for support: a session of IMPERSONATION_SECONDS without a
        refresh token, its access token marked `imp`, and a line in the log. {user, token, expires_at,
        impersonated: true}; the rules apply as to the user."""
        if not call.principal.is_admin:
            raise HaptaError(FORBIDDEN, "auth.impersonate is for admins only")
        user = await self.db.fetchrow(f"SELECT {SELECT_USER} FROM users WHERE id = $1", args.user)
        if user is None:
            raise HaptaError(NOT_FOUND, "no such user")
        session_id, _ = await self.hub.sessions.start(user["id"], lifetime=IMPERSONATION_SECONDS)
        token, expires_at = self.signer.issue(user["id"], session_id, ttl=IMPERSONATION_SECONDS, impersonated=True)
        log.warning("an admin (from %s) impersonates user %s: session %s", call.peer.address, user["id"], session_id)
        self.hub.bind(call.peer, Principal.of_user(user, session_id, expires_at))
        return {"user": dict(user), "token": token, "expires_at": expires_at, "impersonated": True}

    @op("auth.oauth2", OAuth2Args, guest=True)
    async def oauth2_begin(self, call: Call, args: OAuth2Args) -> dict[str, str]:
        provider = self.providers.get(args.provider)
        if provider is None:
            raise HaptaError(BAD_REQUEST, f"no OAuth2 provider {args.provider[:64]!r}",
                             details={"providers": sorted(self.providers)})
        waiter = self.hub.await_oauth2(call.peer)
        return await oauth2.begin(self.db, args.provider, provider, self.redirect_uri(), waiter)

    @op("auth.me", guest=True)
    async def me(self, call: Call, args: None) -> dict[str, Any]:
        principal = call.principal
        if principal.role != USER:
            return {"role": principal.role}
        user = await self.db.fetchrow(f"SELECT {SELECT_USER} FROM users WHERE id = $1", principal.user_id)
        if user is None:
            raise HaptaError(TOKEN_INVALID, "this user no longer exists")
        return {"user": dict(user)}
