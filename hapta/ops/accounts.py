"""auth.verify.* and auth.reset.*: what an account does by mail (docs/sessions.md, "Mail").

    auth.verify.request            a signed-in user asks for a link to confirm their email
    auth.verify {token}            the link's token: the email is verified (rules read @user.verified)
    auth.reset.request {email}     a link to choose a new password; the same answer whether the account exists
    auth.reset {token, password}   the new password; every session of the account ends
    auth.otp.request {email}       a six-digit sign-in code by mail; the same answer whether the account exists
    auth.otp {email, code}         signs in (and verifies the email): 10 minutes, once, OTP_ATTEMPTS guesses
    auth.email.change {email}      a link to the new address; auth.email.confirm {token} makes it the account's
                                   (verified) and tells the old address
    auth.mfa.enroll / .confirm     a TOTP second factor (hapta/auth/mfa.py) and its recovery codes
    auth.mfa.verify {challenge, code}   the second factor of a sign-in that answered MFA_REQUIRED

Tokens are 256-bit secrets, mailed once, kept only as SHA-256 (hapta.account_tokens), single-use, and short-lived:
24 hours to verify, 30 minutes to reset. A reset request does the same work in the same one statement whether the
email names an account or not, so neither the answer nor its time tells.
"""
from __future__ import annotations

import hmac
import secrets
from dataclasses import replace
from typing import Annotated, Any, Callable

import msgspec

from ..auth.accounts import InvalidIdentity, normalize_email, weakness
from ..auth.hub import SessionHub
from ..auth import mfa
from ..auth.mail import Mailer
from ..auth.passwords import hash_password
from ..auth.sessions import USER_COLUMNS
from ..auth.tokens import hash_secret
from ..limits import Limiter
from ..principal import USER, Principal
from ..protocol.errors import (ALREADY_EXISTS, FORBIDDEN, INVALID_CREDENTIALS, MFA_REQUIRED, TOKEN_INVALID,
                               VALIDATION_FAILED, HaptaError)
from ..store.postgres import Database
from .base import Args, Call, op

SELECT_USER = ", ".join(USER_COLUMNS)
VERIFY_HOURS = 24
RESET_MINUTES = 30
OTP_MINUTES = 10
OTP_ATTEMPTS = 5      # wrong guesses that burn a code (with the per-email limit: no brute force of six digits)
Text = Annotated[str, msgspec.Meta(max_length=1024)]


class TokenArgs(Args):
    token: Text


class ResetRequestArgs(Args):
    email: Text


class ResetArgs(Args):
    token: Text
    password: Text


class EmailArgs(Args):
    email: Text


class CodeArgs(Args):
    code: Annotated[str, msgspec.Meta(max_length=32)]


class MfaVerifyArgs(Args):
    challenge: Text
    code: Annotated[str, msgspec.Meta(max_length=32)]


class OtpRequestArgs(Args):
    email: Text


class OtpArgs(Args):
    email: Text
    code: Annotated[str, msgspec.Meta(max_length=16)]


# One statement for known and unknown addresses alike: the token and the mail are written only where the user is.
RESET_REQUEST = """
WITH target AS (SELECT id, email FROM users WHERE email = $1),
     token AS (INSERT INTO hapta.account_tokens (hash, user_id, purpose, email, expires_at)
               SELECT $2, id, 'reset', email, now() + make_interval(mins => $6) FROM target RETURNING user_id),
     mail AS (INSERT INTO hapta.mail_outbox (recipient, subject, text_body, html_body)
              SELECT email, $3, $4, $5 FROM target RETURNING id)
SELECT (SELECT count(*) FROM token) + (SELECT count(*) FROM mail) AS written
"""
# A one-time code: any earlier live code of the account is burnt, so only the newest works.
OTP_REQUEST = """
WITH target AS (SELECT id, email FROM users WHERE email = $1),
     burnt AS (UPDATE hapta.account_tokens SET used_at = now() WHERE purpose = 'otp' AND used_at IS NULL
               AND user_id IN (SELECT id FROM target) RETURNING 1),
     token AS (INSERT INTO hapta.account_tokens (hash, user_id, purpose, email, expires_at)
               SELECT encode(sha256(convert_to(id || ':' || $2, 'UTF8')), 'hex'), id, 'otp', email,
                      now() + make_interval(mins => $6) FROM target RETURNING user_id),
     mail AS (INSERT INTO hapta.mail_outbox (recipient, subject, text_body, html_body)
              SELECT email, $3, $4, $5 FROM target RETURNING id)
SELECT (SELECT count(*) FROM token) + (SELECT count(*) FROM mail) + (SELECT count(*) FROM burnt) AS written
"""
# Spend a token: it works once, before it expires, for its purpose.
SPEND = """
UPDATE hapta.account_tokens SET used_at = now()
 WHERE hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()
RETURNING user_id, email
"""


async def second_factor(db: Database, user_id: str) -> None:
    """After a right first factor: MFA_REQUIRED with a challenge when the user has a second factor in force."""
    challenge = await mfa.challenge(db, user_id)
    if challenge is not None:
        raise HaptaError(MFA_REQUIRED, "a second factor is required: send auth.mfa.verify with this challenge",
                         details={"challenge": challenge})


def _account_holder(principal: Principal, refusal: str) -> None:
    """FORBIDDEN unless a signed-in user with an account: a guest (auth.guest) has no email or factor to manage
    until auth.register makes it an account."""
    if principal.role != USER:
        raise HaptaError(FORBIDDEN, refusal)
    if principal.anonymous:
        raise HaptaError(FORBIDDEN, "a guest has no email yet: auth.register makes it an account")


class AccountOps:
    def __init__(self, db: Database, hub: SessionHub, mailer: Mailer, limiter: Limiter, *,
                 link: Callable[[str, str], str], min_password_length: int):
        self.db = db
        self.hub = hub
        self.mailer = mailer
        self.limiter = limiter
        self.link = link   # link(action, token) -> the URL a mail carries (App.mail_link)
        self.min_password_length = min_password_length

    @op("auth.verify.request")
    async def verify_request(self, call: Call, args: None) -> dict[str, Any]:
        """Mail the signed-in user a link that confirms their email ({sent: false} when it already is)."""
        principal = call.principal
        _account_holder(principal, "only a signed-in user has an email to verify")
        token = secrets.token_urlsafe(32)
        async with self.db.transaction() as conn:
            user = await conn.fetchrow("SELECT email, verified FROM users WHERE id = $1", principal.user_id)
            if user is None:
                raise HaptaError(TOKEN_INVALID, "this user no longer exists")
            if user["verified"]:
                return {"sent": False}
            await conn.execute("INSERT INTO hapta.account_tokens (hash, user_id, purpose, email, expires_at) "
                               "VALUES ($1, $2, 'verify', $3, now() + make_interval(hours => $4))",
                               hash_secret(token), principal.user_id, user["email"], VERIFY_HOURS)
            await self.mailer.queue(conn, "verify", user["email"], link=self.link("verify", token), code=token)
        return {"sent": True}

    @op("auth.verify", TokenArgs, guest=True)
    async def verify(self, call: Call, args: TokenArgs) -> dict[str, Any]:
        """Confirm an email with the token its mail carried; this connection, if signed in as that user, now
        reads @user.verified true. A wrong, spent or expired token: TOKEN_INVALID."""
        async with self.db.transaction() as conn:
            spent = await conn.fetchrow(SPEND, hash_secret(args.token), "verify")
            # the address must still be the account's: a verification holds for the address it was sent to
            updated = spent is not None and await conn.fetchval(
                "UPDATE users SET verified = true WHERE id = $1 AND email = $2 RETURNING id",
                spent["user_id"], spent["email"])
        if not updated:
            raise HaptaError(TOKEN_INVALID, "that link is not valid (used, expired or for another address)")
        principal = call.principal
        if principal.role == USER and principal.user_id == spent["user_id"] and not principal.verified:
            self.hub.bind(call.peer, replace(principal, verified=True))
        return {"verified": True}

    @op("auth.reset.request", ResetRequestArgs, guest=True)
    async def reset_request(self, call: Call, args: ResetRequestArgs) -> dict[str, Any]:
        """Mail a link to choose a new password, if the email names an account. The answer is {} either way, after
        the same work, so it tells nobody whether the address has an account."""
        email = self._email(args.email)
        # guesses per address are the dispatcher's limit; per email, from anywhere, this one (hashed: no address
        # lands in Redis)
        await self.limiter.enforce(call.op, "identity:" + hash_secret(email)[:32], collection="identity")
        token = secrets.token_urlsafe(32)
        subject, text, html = self.mailer.templates.render("reset", {
            "app": self.mailer.app_name, "link": self.link("reset", token), "code": token})
        if await self._same_time_either_way(RESET_REQUEST, email, hash_secret(token), subject, text, html,
                                            RESET_MINUTES):
            self.mailer.woken(self.link("reset", token))
        return {}

    async def _same_time_either_way(self, statement: str, *params: Any) -> int:
        """A request statement that writes only for a known email, committed without waiting for the disk
        (synchronous_commit off, for this transaction alone): otherwise that flush, ~1 ms, tells a known email
        from an unknown one (bench/enumeration.py). What a crash could lose is a mail the user asks for again."""
        async with self.db.transaction() as conn:
            await conn.execute("SET LOCAL synchronous_commit = off")
            return await conn.fetchval(statement, *params)

    @op("auth.reset", ResetArgs, guest=True)
    async def reset(self, call: Call, args: ResetArgs) -> dict[str, Any]:
        """A new password with the token a reset mail carried; every session of the account ends, on every
        process. Then sign in with it. A wrong, spent or expired token: TOKEN_INVALID."""
        token_hash = hash_secret(args.token)
        owner = await self.db.fetchrow("SELECT u.email, u.username FROM hapta.account_tokens t JOIN users u ON "
                                       "u.id = t.user_id WHERE t.hash = $1 AND t.purpose = 'reset' AND "
                                       "t.used_at IS NULL AND t.expires_at > now()", token_hash)
        if owner is None:
            raise HaptaError(TOKEN_INVALID, "that link is not valid (used or expired)")
        problem = weakness(args.password, min_length=self.min_password_length,
                           identities=(owner["email"], owner["username"]))
        if problem:
            raise HaptaError(VALIDATION_FAILED, problem, details={"field": "password"})
        new_hash = await hash_password(args.password)
        async with self.db.transaction() as conn:   # spent, the password set and every session ended: all or none
            spent = await conn.fetchrow(SPEND, token_hash, "reset")
            if spent is None:   # spent meanwhile by a concurrent reset
                raise HaptaError(TOKEN_INVALID, "that link is not valid (used or expired)")
            await conn.execute("UPDATE users SET password_hash = $2 WHERE id = $1", spent["user_id"], new_hash)
            ended = await self.hub.sessions.revoke_user(spent["user_id"], "password reset", conn=conn)
        await self.hub.announce(ended, "password reset")
        return {}

    @op("auth.otp.request", OtpRequestArgs, guest=True)
    async def otp_request(self, call: Call, args: OtpRequestArgs) -> dict[str, Any]:
        """Mail a six-digit code that signs in, if the email names an account: {} either way, after the same work.
        A new code burns the one before."""
        email = self._email(args.email)
        await self.limiter.enforce(call.op, "identity:" + hash_secret(email)[:32], collection="identity")
        code = f"{secrets.randbelow(10 ** 6):06d}"
        subject, text, html = self.mailer.templates.render("otp", {
            "app": self.mailer.app_name, "link": self.link("otp", code), "code": code})
        if await self._same_time_either_way(OTP_REQUEST, email, code, subject, text, html, OTP_MINUTES):
            self.mailer.woken()
        return {}

    @op("auth.otp", OtpArgs, guest=True)
    async def otp(self, call: Call, args: OtpArgs) -> dict[str, Any]:
        """Sign in with a mailed code: a Session, and the email counts as verified (its owner read the mail).
        Wrong, spent, expired or burnt (OTP_ATTEMPTS wrong guesses): INVALID_CREDENTIALS, alike."""
        email = self._email(args.email)
        await self.limiter.enforce(call.op, "identity:" + hash_secret(email)[:32], collection="identity")
        async with self.db.transaction() as conn:
            live = await conn.fetchrow(
                "SELECT t.hash, t.user_id FROM hapta.account_tokens t JOIN users u ON u.id = t.user_id "
                "WHERE u.email = $1 AND t.purpose = 'otp' AND t.used_at IS NULL AND t.expires_at > now() "
                "AND t.attempts < $2 FOR UPDATE OF t", email, OTP_ATTEMPTS)
            right = live is not None and hmac.compare_digest(
                live["hash"], hash_secret(f"{live['user_id']}:{args.code.strip()}"))
            if live is not None and not right:
                await conn.execute("UPDATE hapta.account_tokens SET attempts = attempts + 1 WHERE hash = $1",
                                   live["hash"])
            if right:
                await conn.execute("UPDATE hapta.account_tokens SET used_at = now() WHERE hash = $1", live["hash"])
                user = await conn.fetchrow(f"UPDATE users SET verified = true WHERE id = $1 RETURNING {SELECT_USER}",
                                           live["user_id"])
        if not right:
            raise HaptaError(INVALID_CREDENTIALS, "that code is not valid")
        await second_factor(self.db, user["id"])
        return await self.hub.sign_in(call.peer, user)

    @staticmethod
    def _email(text: str) -> str:
        try:
            return normalize_email(text)
        except InvalidIdentity as exc:
            raise HaptaError(VALIDATION_FAILED, str(exc), details={"field": "email"}) from None

    # ---- two factors ----

    @op("auth.mfa.enroll")
    async def mfa_enroll(self, call: Call, args: None) -> dict[str, Any]:
        """{secret, uri}: a TOTP secret for an authenticator app (the uri is what a QR code shows); not in force
        until auth.mfa.confirm. ALREADY_EXISTS when a factor is in force."""
        principal = call.principal
        _account_holder(principal, "only a signed-in user enrols a second factor")
        email = await self.db.fetchval("SELECT email FROM users WHERE id = $1", principal.user_id)
        enrolled = await mfa.enroll(self.db, principal.user_id, email or "", self.mailer.app_name)
        if enrolled is None:
            raise HaptaError(ALREADY_EXISTS, "a second factor is in force already")
        return enrolled

    @op("auth.mfa.confirm", CodeArgs)
    async def mfa_confirm(self, call: Call, args: CodeArgs) -> dict[str, Any]:
        """A first code from the authenticator puts the factor in force: {recovery_codes} (ten, each once; shown
        only now). From then on a sign-in answers MFA_REQUIRED until auth.mfa.verify."""
        principal = call.principal
        _account_holder(principal, "only a signed-in user enrols a second factor")
        codes = await mfa.confirm(self.db, principal.user_id, args.code)
        if codes is None:
            raise HaptaError(INVALID_CREDENTIALS, "that code is not valid (or nothing is being enrolled)")
        return {"recovery_codes": codes}

    @op("auth.mfa.verify", MfaVerifyArgs, guest=True)
    async def mfa_verify(self, call: Call, args: MfaVerifyArgs) -> dict[str, Any]:
        """The second factor of a sign-in that answered MFA_REQUIRED: a Session. A wrong code (five burn the
        challenge), a spent or expired challenge: INVALID_CREDENTIALS."""
        user_id = await mfa.answer(self.db, args.challenge, args.code)
        if user_id is None:
            raise HaptaError(INVALID_CREDENTIALS, "that code is not valid")
        user = await self.db.fetchrow(f"SELECT {SELECT_USER} FROM users WHERE id = $1", user_id)
        if user is None:
            raise HaptaError(INVALID_CREDENTIALS, "that code is not valid")
        return await self.hub.sign_in(call.peer, user)

    # ---- changing the email ----

    @op("auth.email.change", EmailArgs)
    async def email_change(self, call: Call, args: EmailArgs) -> dict[str, Any]:
        """Mail the new address a link that makes it the account's email; nothing changes until it is followed.
        {} whether or not another account has that address (auth.email.confirm says so, to the one holding the
        link)."""
        principal = call.principal
        _account_holder(principal, "only a signed-in user has an email to change")
        email = self._email(args.email)
        token = secrets.token_urlsafe(32)
        async with self.db.transaction() as conn:
            await conn.execute("INSERT INTO hapta.account_tokens (hash, user_id, purpose, email, expires_at) "
                               "VALUES ($1, $2, 'email', $3, now() + make_interval(hours => $4))",
                               hash_secret(token), principal.user_id, email, VERIFY_HOURS)
            await self.mailer.queue(conn, "email", email, link=self.link("email", token), code=token)
        return {}

    @op("auth.email.confirm", TokenArgs, guest=True)
    async def email_confirm(self, call: Call, args: TokenArgs) -> dict[str, Any]:
        """Follow the new address's link: it becomes the account's email, verified, and the old address is told.
        ALREADY_EXISTS when another account took that address meanwhile; a spent or expired token: TOKEN_INVALID."""
        async with self.db.transaction() as conn:
            spent = await conn.fetchrow(SPEND, hash_secret(args.token), "email")
            if spent is None:
                raise HaptaError(TOKEN_INVALID, "that link is not valid (used or expired)")
            old = await conn.fetchval("SELECT email FROM users WHERE id = $1 FOR UPDATE", spent["user_id"])
            if await conn.fetchval("SELECT true FROM users WHERE email = $1 AND id <> $2", spent["email"],
                                   spent["user_id"]):
                raise HaptaError(ALREADY_EXISTS, "another account has that email", details={"field": "email"})
            user = await conn.fetchrow(f"UPDATE users SET email = $2, verified = true WHERE id = $1 "
                                       f"RETURNING {SELECT_USER}", spent["user_id"], spent["email"])
            if old is not None and old != spent["email"]:
                await self.mailer.queue(conn, "email_changed", old, code=spent["email"])
        principal = call.principal
        if principal.role == USER and principal.user_id == spent["user_id"]:
            self.hub.bind(call.peer, replace(principal, verified=True))
        return {"user": dict(user)}
