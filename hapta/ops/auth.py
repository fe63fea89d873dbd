"""auth.*: how a connection becomes anon, a user or admin, and how its session rolls and ends.

A login creates a session (one device's login) with its first refresh token, and authenticates the connection
that asked. The account use cases (register, login, the password) are the Accounts service's
(hapta/auth/accounts.py); sessions and the sockets that follow them are the SessionHub's (hapta/auth/hub.py), which
also carries revocations to the session's other connections, in this process and all others.
"""
from __future__ import annotations

import hmac
import logging
from typing import Annotated, Any, Callable

import msgspec

from ..auth import oauth2
from ..auth.accounts import Accounts
from ..auth.admins import AdminAccounts
from ..auth.hub import SessionHub
from ..auth.sessions import TokenReused
from ..auth.tokens import TokenSigner
from ..config import OAuth2Provider
from ..principal import ADMIN, ANON, GUEST, USER, Principal
from ..protocol.errors import BAD_REQUEST, FORBIDDEN, INVALID_CREDENTIALS, NOT_FOUND, TOKEN_INVALID, HaptaError
from .base import Args, Call, op

log = logging.getLogger("hapta.auth")

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
    new: Text
    old: Text | None = None      # the current password (an account without one: a fresh sign-in instead)


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


def _key_matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class AuthOps:
    def __init__(self, accounts: Accounts, hub: SessionHub, signer: TokenSigner, *, anon_key: str, admin_key: str,
                 providers: dict[str, OAuth2Provider], redirect_uri: Callable[[], str],
                 admins: AdminAccounts | None = None):
        self.accounts = accounts
        self.hub = hub
        self.signer = signer
        self.anon_key = anon_key
        self.admin_key = admin_key
        self.providers = providers
        self.redirect_uri = redirect_uri   # asked each time: the server settles public_url once it listens
        self.admins = admins               # admin accounts' sessions end here too (auth.logout)

    @op("auth.register", RegisterArgs, guest=True)
    async def register(self, call: Call, args: RegisterArgs) -> dict[str, Any]:
        return await self.accounts.register(call.peer, args.email, args.password, args.username)

    @op("auth.guest", guest=True)
    async def guest(self, call: Call, args: None) -> dict[str, Any]:
        return await self.accounts.guest(call.peer)

    @op("auth.login", LoginArgs, guest=True)
    async def login(self, call: Call, args: LoginArgs) -> dict[str, Any]:
        return await self.accounts.login(call.peer, args.identity, args.password)

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
        principal = call.principal
        self.hub.bind(call.peer, Principal(GUEST))
        if principal.session_id is None:
            return {}
        if principal.is_admin and self.admins is not None:   # an admin account's session (auth.admin.signin)
            await self.admins.sign_out(principal.session_id)
        else:
            await self.hub.revoke([principal.session_id], "logout")
        return {}

    @op("auth.password", PasswordArgs)
    async def password(self, call: Call, args: PasswordArgs) -> dict[str, Any]:
        """Change the password; every other session of the user ends (this one goes on)."""
        return await self.accounts.change_password(call.principal, args.old, args.new)

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
            return {"revoked": await self.accounts.revoke_all(args.user, "revoked by an admin")}
        if not principal.is_admin:
            owner = await hub.sessions.owner(args.session)
            if principal.role != USER or owner != principal.user_id:
                raise HaptaError(NOT_FOUND, "no such session")
        reason = "revoked by an admin" if principal.is_admin else "revoked by the user"
        revoked = await hub.sessions.revoke([args.session], reason)
        await hub.announce(revoked, reason)
        return {"revoked": len(revoked)}

    @op("auth.impersonate", ImpersonateArgs, admin=True)
    async def impersonate(self, call: Call, args: ImpersonateArgs) -> dict[str, Any]:
        """An admin becomes a user on this connection, for support: a session of IMPERSONATION_SECONDS without a
        refresh token, its access token marked `imp`, and a line in the log. {user, token, expires_at,
        impersonated: true}; the rules apply as to the user."""
        user = await self.accounts.users.get(args.user)
        if user is None:
            raise HaptaError(NOT_FOUND, "no such user")
        session_id, _ = await self.hub.sessions.start(user["id"], lifetime=IMPERSONATION_SECONDS)
        token, expires_at = self.signer.issue(user["id"], session_id, ttl=IMPERSONATION_SECONDS, impersonated=True)
        log.warning("an admin (from %s) impersonates user %s: session %s", call.peer.address, user["id"], session_id)
        self.hub.bind(call.peer, Principal.of_user(user, session_id, expires_at))
        return {"user": user, "token": token, "expires_at": expires_at, "impersonated": True}

    @op("auth.oauth2", OAuth2Args, guest=True)
    async def oauth2_begin(self, call: Call, args: OAuth2Args) -> dict[str, str]:
        provider = self.providers.get(args.provider)
        if provider is None:
            raise HaptaError(BAD_REQUEST, f"no OAuth2 provider {args.provider[:64]!r}",
                             details={"providers": sorted(self.providers)})
        waiter = self.hub.await_oauth2(call.peer)
        return await oauth2.begin(self.accounts.db, args.provider, provider, self.redirect_uri(), waiter)

    @op("auth.me", guest=True)
    async def me(self, call: Call, args: None) -> dict[str, Any]:
        return await self.accounts.me(call.principal)
