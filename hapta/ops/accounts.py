"""auth.verify.*, auth.reset.*, auth.otp.*, auth.email.*, auth.mfa.*: what an account does by mail and with a
second factor (docs/sessions.md, "Mail"). Each op is one call of the Accounts service (hapta/auth/accounts.py).

    auth.verify.request            a signed-in user asks for a link to confirm their email
    auth.verify {token, password?} the link's token: the email is verified (rules read @user.verified); followed by
                                   anyone but the account's holder, an unverified account is taken over
    auth.reset.request {email}     a link to choose a new password; the same answer whether the account exists
    auth.reset {token, password}   the new password; every session of the account ends
    auth.otp.request {email}       a six-digit sign-in code by mail; the same answer whether the account exists
    auth.otp {email, code}         signs in (and verifies the email): 10 minutes, once, five guesses
    auth.email.change {email, password?}   a link to the new address (the current password is asked);
                                   auth.email.confirm {token} makes it the account's (verified), tells the old one
    auth.mfa.enroll / .confirm     a TOTP second factor (hapta/auth/mfa.py) and its recovery codes
    auth.mfa.verify {challenge, code}   the second factor of a sign-in that answered MFA_REQUIRED
    auth.mfa.disable {code}        removes the factor (a current code or a recovery code)
    auth.mfa.reset {user}          an admin removes a user's factor (and every session of the user ends)

An admin's hand on an account (the dashboard's Users page), admins only; a user's deletion is records.delete:
    auth.user.create {email, username?, password?, verified?}   a new account; no password: a mail to choose one
    auth.user.password {user, password}   sets it; every session of the user ends, as after a reset
    auth.user.reset {user}         the mail auth.reset.request sends
    auth.user.verify {user}        the email counts as verified
    auth.user.verify.request {user}   the mail auth.verify.request sends
"""
from __future__ import annotations

from typing import Annotated, Any

import msgspec

from ..auth.accounts import Accounts
from .base import Args, Call, op

Text = Annotated[str, msgspec.Meta(max_length=1024)]
Code = Annotated[str, msgspec.Meta(max_length=32)]


class TokenArgs(Args):
    token: Text


class VerifyArgs(Args):
    token: Text
    password: Text | None = None   # the account's: followed by its holder on a socket not signed in to it


class ResetArgs(Args):
    token: Text
    password: Text


class EmailArgs(Args):
    email: Text


class EmailChangeArgs(Args):
    email: Text
    password: Text | None = None   # the current password (an account without one: a fresh sign-in instead)


class CodeArgs(Args):
    code: Code


class MfaVerifyArgs(Args):
    challenge: Text
    code: Code


class UserArgs(Args):
    user: Text


class CreateUserArgs(Args):
    email: Text
    username: Text | None = None
    password: Text | None = None   # none: the account's address gets a link to choose one
    verified: bool = False


class SetPasswordArgs(Args):
    user: Text
    password: Text


class OtpArgs(Args):
    email: Text
    code: Annotated[str, msgspec.Meta(max_length=16)]


class AccountOps:
    def __init__(self, accounts: Accounts):
        self.accounts = accounts

    @op("auth.verify.request")
    async def verify_request(self, call: Call, args: None) -> dict[str, Any]:
        return await self.accounts.verify_request(call.principal)

    @op("auth.verify", VerifyArgs, guest=True)
    async def verify(self, call: Call, args: VerifyArgs) -> dict[str, Any]:
        return await self.accounts.verify(call.peer, args.token, args.password)

    @op("auth.reset.request", EmailArgs, guest=True)
    async def reset_request(self, call: Call, args: EmailArgs) -> dict[str, Any]:
        return await self.accounts.reset_request(args.email)

    @op("auth.reset", ResetArgs, guest=True)
    async def reset(self, call: Call, args: ResetArgs) -> dict[str, Any]:
        return await self.accounts.reset(args.token, args.password)

    @op("auth.otp.request", EmailArgs, guest=True)
    async def otp_request(self, call: Call, args: EmailArgs) -> dict[str, Any]:
        return await self.accounts.otp_request(args.email)

    @op("auth.otp", OtpArgs, guest=True)
    async def otp(self, call: Call, args: OtpArgs) -> dict[str, Any]:
        return await self.accounts.otp(call.peer, args.email, args.code)

    @op("auth.mfa.enroll")
    async def mfa_enroll(self, call: Call, args: None) -> dict[str, Any]:
        return await self.accounts.mfa_enroll(call.principal)

    @op("auth.mfa.confirm", CodeArgs)
    async def mfa_confirm(self, call: Call, args: CodeArgs) -> dict[str, Any]:
        return await self.accounts.mfa_confirm(call.principal, args.code)

    @op("auth.mfa.verify", MfaVerifyArgs, guest=True)
    async def mfa_verify(self, call: Call, args: MfaVerifyArgs) -> dict[str, Any]:
        return await self.accounts.mfa_verify(call.peer, args.challenge, args.code)

    @op("auth.mfa.disable", CodeArgs)
    async def mfa_disable(self, call: Call, args: CodeArgs) -> dict[str, Any]:
        return await self.accounts.mfa_disable(call.principal, args.code)

    @op("auth.mfa.reset", UserArgs, admin=True)
    async def mfa_reset(self, call: Call, args: UserArgs) -> dict[str, Any]:
        return await self.accounts.mfa_reset(args.user)

    @op("auth.email.change", EmailChangeArgs)
    async def email_change(self, call: Call, args: EmailChangeArgs) -> dict[str, Any]:
        return await self.accounts.email_change(call.principal, args.email, args.password)

    @op("auth.email.confirm", TokenArgs, guest=True)
    async def email_confirm(self, call: Call, args: TokenArgs) -> dict[str, Any]:
        return await self.accounts.email_confirm(call.peer, args.token)

    @op("auth.user.create", CreateUserArgs, admin=True)
    async def user_create(self, call: Call, args: CreateUserArgs) -> dict[str, Any]:
        return await self.accounts.create_user(args.email, args.username, args.password, args.verified)

    @op("auth.user.password", SetPasswordArgs, admin=True)
    async def user_password(self, call: Call, args: SetPasswordArgs) -> dict[str, Any]:
        return await self.accounts.set_password(args.user, args.password)

    @op("auth.user.reset", UserArgs, admin=True)
    async def user_reset(self, call: Call, args: UserArgs) -> dict[str, Any]:
        return await self.accounts.mail_reset(args.user)

    @op("auth.user.verify", UserArgs, admin=True)
    async def user_verify(self, call: Call, args: UserArgs) -> dict[str, Any]:
        return await self.accounts.mark_verified(args.user)

    @op("auth.user.verify.request", UserArgs, admin=True)
    async def user_verify_request(self, call: Call, args: UserArgs) -> dict[str, Any]:
        return await self.accounts.mail_verification(args.user)
