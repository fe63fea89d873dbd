"""Admin accounts (hapta/auth/admins.py): signing in as a person, and the dashboard's Admins page.

    auth.admin.signin   {email, password, code?} -> {role, admin: {email}, token, expires_at}   (guests; limited per
                        address and per account, as a sign-in)
    auth.admin.resume   {token} -> {role, admin: {email}, expires_at}   (guests; a reload, a second connection, or
                        the refresh of this one before expires_at: not a sign-in attempt)
    admins.list         {items: [{email, created, last_sign_in, totp, sessions}], you}   (admins only)
    admins.create       {email, password, totp?} -> {email, totp: {secret, uri} | null}
    admins.delete       {email} -> {}   (not the last account, not your own)
    admins.totp.reset   {email} -> {secret, uri}   (the account's other sessions end)

Signing out is auth.logout, as for a user: it ends the admin session on every connection that holds it.
"""
from __future__ import annotations

from typing import Annotated, Any

import msgspec

from ..auth.admins import AdminAccounts
from ..auth.hub import SessionHub
from .base import Args, Call, op

Text = Annotated[str, msgspec.Meta(max_length=1024)]


class SignInArgs(Args):
    email: Text
    password: Text
    code: Annotated[str, msgspec.Meta(max_length=16)] | None = None   # the authenticator app's six digits


class ResumeArgs(Args):
    token: Annotated[str, msgspec.Meta(max_length=256)]


class CreateArgs(Args):
    email: Text
    password: Text
    totp: bool = True   # False: no second factor (development only)


class EmailArgs(Args):
    email: Text


class AdminAccountOps:
    def __init__(self, admins: AdminAccounts, hub: SessionHub):
        self.admins = admins
        self.hub = hub

    @op("auth.admin.signin", SignInArgs, guest=True)
    async def sign_in(self, call: Call, args: SignInArgs) -> dict[str, Any]:
        principal, answer = await self.admins.sign_in(call.peer.address, args.email, args.password, args.code)
        self.hub.bind(call.peer, principal)
        return answer

    @op("auth.admin.resume", ResumeArgs, guest=True)
    async def resume(self, call: Call, args: ResumeArgs) -> dict[str, Any]:
        principal, answer = await self.admins.resume(args.token)
        self.hub.bind(call.peer, principal)
        return answer

    @op("admins.list", admin=True)
    async def list_admins(self, call: Call, args: None) -> dict[str, Any]:
        return {"items": await self.admins.accounts(), "you": call.principal.name}   # None: signed in with the key

    @op("admins.create", CreateArgs, admin=True)
    async def create(self, call: Call, args: CreateArgs) -> dict[str, Any]:
        return await self.admins.create(args.email, args.password, totp=args.totp, actor=call.principal.label)

    @op("admins.delete", EmailArgs, admin=True)
    async def delete(self, call: Call, args: EmailArgs) -> dict[str, Any]:
        await self.admins.delete(args.email, by=call.principal.name, actor=call.principal.label)
        return {}

    @op("admins.totp.reset", EmailArgs, admin=True)
    async def reset_totp(self, call: Call, args: EmailArgs) -> dict[str, Any]:
        return await self.admins.reset_totp(args.email, keep=call.principal.session_id, actor=call.principal.label)
