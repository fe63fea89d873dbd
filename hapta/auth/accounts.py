"""Accounts: every use case of an account's life, from registering to a takeover by the owner of its address.

The socket's auth.* ops (ops/auth.py, ops/accounts.py) are typed args in, one call here, data out; the OAuth2
callback links through `link_provider`. The statements are the users repository's (users.py), sessions and the
sockets that follow them the SessionHub's (hub.py), mail the outbox's (mail.py).

An account's states (docs/sessions.md draws them):

    guest        no email, no password (auth.guest); auth.register makes it an account in place
    unverified   an email nobody has proven yet: whoever registered it may not own it
    verified     the owner of the address has shown the mail reached them
    + pending    an email change waits for its link (an 'email' token, at most EMAIL_CHANGE_MINUTES)

What proves an address: a verification link, a sign-in code, a reset link (each read from the mailbox) and a
provider that vouches for it. Proving the address of an *unverified* account by anyone but its holder (the one
signed in to it, or who knows its password) is a takeover: the pre-registrant's password, sessions, second
factors, provider links and pending tokens all end, and the owner is told. What ends what:

    event                                  ends
    password changed or reset              every other session; every mailed token (the trigger of 0013)
    every session revoked (an admin)       every session; every mailed token
    password set by an admin               every session; every mailed token
    second factor removed by an admin      every session
    email change confirmed                 every session but the one that asked (and the confirming one);
                                           every mailed token; the old address is told
    takeover                               the password, every session, factors, links, every mailed token

Tokens are 256-bit secrets, mailed once, kept only as SHA-256 (hapta.account_tokens), single-use and short-lived.
Requests that take an email from anyone (a reset, a sign-in code, registering by mail) do the same work whether
or not the address has an account, so neither the answer nor its time tells (docs/sessions.md has the table).
"""
from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import replace
from typing import Any, Awaitable, Callable

import asyncpg

from ..clock import Clock, wall
from ..principal import GUEST, USER, Peer, Principal
from ..protocol.errors import (ALREADY_EXISTS, BAD_REQUEST, FORBIDDEN, INVALID_CREDENTIALS, MFA_REQUIRED, NOT_FOUND,
                               TOKEN_INVALID, HaptaError)
from ..store.postgres import Database
from . import mfa
from .hub import SessionHub
from .identity import InvalidIdentity, email_of, invalid, is_email, normalize_username, weakness
from .mail import Mailer
from .passwords import hash_password, verify_password
from .tokens import hash_secret
from .users import Users

log = logging.getLogger("hapta.accounts")

VERIFY_MINUTES = 24 * 60
RESET_MINUTES = 30
OTP_MINUTES = 10
EMAIL_CHANGE_MINUTES = 60
OTP_ATTEMPTS = 5          # wrong guesses that burn a code (with the per-email limit: no brute force of six digits)
FRESH_SIGN_IN = 600       # seconds: an account without a password changes its email or password only this soon
                          # after signing in (the sign-in was the proof; a stolen access token alone is not)

# throttle(op, kind, value): count one attempt of `op` against `value` (an account, an address), from anywhere;
# RATE_LIMITED when over the bucket "<op>:<kind>". The gateway hands in the limiter's.
Throttle = Callable[[str, str, str], Awaitable[None]]

TAKEN_OVER = "taken over by the owner of its email"
MFA_RESET = "second factor removed by an admin"
PASSWORD_SET = "password set by an admin"
INVITE_MINUTES = 24 * 60  # a new account's link to choose its password: a day, as a verification link

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
# The live code of an address, locked (with the account's state: a code may prove an unverified address)
LIVE_CODE = """
SELECT t.hash, t.user_id, u.verified FROM hapta.account_tokens t JOIN users u ON u.id = t.user_id
 WHERE u.email = $1 AND t.email = u.email AND t.purpose = 'otp' AND t.used_at IS NULL AND t.expires_at > now()
   AND t.attempts < $2
   FOR UPDATE OF t
"""


def _account_holder(principal: Principal, refusal: str) -> None:
    """FORBIDDEN unless a signed-in user with an account: a guest (auth.guest) has no email, password or factor to
    manage until auth.register makes it an account."""
    if principal.role != USER:
        raise HaptaError(FORBIDDEN, refusal)
    if principal.anonymous:
        raise HaptaError(FORBIDDEN, "a guest has no email or password yet: auth.register makes it an account")


def _holds(principal: Principal, user_id: str) -> bool:
    """Is this connection signed in to the account (the one who holds it, whoever owns its address)?"""
    return principal.role == USER and principal.user_id == user_id


class Accounts:
    def __init__(self, db: Database, users: Users, hub: SessionHub, mailer: Mailer, throttle: Throttle, *,
                 link: Callable[[str, str], str], min_password_length: int, register_by_mail: bool,
                 clock: Clock = wall):
        self.db = db
        self.clock = clock   # second factors' time steps
        self.users = users
        self.hub = hub
        self.mailer = mailer
        self.throttle = throttle
        self.link = link   # link(action, token) -> the URL a mail carries (App.mail_link)
        self.min_password_length = min_password_length
        # App.require_verified: auth.register answers alike for a new and a taken email and signs nobody in
        self.register_by_mail = register_by_mail

    def _check_password(self, password: str, *identities: str | None) -> None:
        problem = weakness(password, min_length=self.min_password_length, identities=identities)
        if problem:
            raise invalid("password", problem)

    async def _announce(self, ended: list[str], reason: str) -> None:
        if ended:
            await self.hub.announce(ended, reason)

    # ---- registering and signing in ----

    async def register(self, peer: Peer, email_text: str, password: str, username_text: str | None) -> dict[str, Any]:
        """A new account. Signed in on this connection at once (a Session), or, with App.require_verified, not: then
        the answer is {check_mail: true} whether or not the address had an account (the owner of a taken one is
        told by mail), so that registering tells nobody who has an account. On a connection signed in as a guest,
        the guest becomes the account (the same id, so what it wrote stays its own) and its guest sessions end."""
        email = email_of(email_text)
        try:
            username = normalize_username(username_text) if username_text is not None else None
        except InvalidIdentity as exc:
            raise invalid("username", str(exc)) from None
        await self.throttle("auth.register", "identity", email)
        self._check_password(password, email, username)
        password_hash = await hash_password(password)
        if self.register_by_mail:
            return await self._register_by_mail(peer, email, username, password_hash)
        guest_sessions: list[str] = []
        try:
            async with self.db.transaction() as conn:
                user, guest_sessions = await self._create(conn, peer.principal, email, username, password_hash)
        except asyncpg.UniqueViolationError as exc:
            field = "username" if "username" in (exc.constraint_name or "") else "email"
            raise HaptaError(ALREADY_EXISTS, f"that {field} is taken", details={"field": field}) from None
        session = await self.hub.sign_in(peer, user)   # this connection leaves the guest session first ...
        await self._announce(guest_sessions, "the guest became an account")   # ... so only other tabs hear
        return session

    async def _create(self, conn: asyncpg.Connection, principal: Principal, email: str, username: str | None,
                      password_hash: str) -> tuple[dict[str, Any], list[str]]:
        """The account, new or a guest's in place (its guest sessions then end, in this transaction)."""
        if not (principal.role == USER and principal.anonymous):
            return await self.users.create(conn, email, username, password_hash), []
        user = await self.users.upgrade_guest(conn, principal.user_id, email, username, password_hash)
        if user is None:   # another tab of the guest registered first, or the guest is gone
            raise HaptaError(TOKEN_INVALID, "this guest is no longer a guest: sign in again")
        return user, await self.hub.sessions.revoke_user(user["id"], "the guest became an account", conn=conn)

    async def _register_by_mail(self, peer: Peer, email: str, username: str | None,
                                password_hash: str) -> dict[str, Any]:
        """The account, unverified, and a link to verify it; or, for a taken address, a mail to its owner. The same
        answer and the same work either way; the connection stays unsigned (a guest's sessions end)."""
        guest_sessions: list[str] = []
        async with self.db.transaction() as conn:
            await conn.execute("SET LOCAL synchronous_commit = off")   # (as for the reset request: see there)
            try:
                async with conn.transaction():
                    user, guest_sessions = await self._create(conn, peer.principal, email, username, password_hash)
            except asyncpg.UniqueViolationError as exc:
                if "username" in (exc.constraint_name or ""):   # usernames are public: saying so tells nothing
                    raise HaptaError(ALREADY_EXISTS, "that username is taken", details={"field": "username"}) \
                        from None
                await self.mailer.queue(conn, "account_exists", email)
            else:
                token = await self.users.mint(conn, "verify", user["id"], email, VERIFY_MINUTES)
                await self.mailer.queue(conn, "verify", email, link=self.link("verify", token), code=token)
        if guest_sessions:
            self.hub.bind(peer, Principal(GUEST))
            await self._announce(guest_sessions, "the guest became an account")
        return {"check_mail": True}

    async def guest(self, peer: Peer) -> dict[str, Any]:
        """A guest account signed in on this connection (see register for how it becomes an account)."""
        return await self.hub.sign_in(peer, await self.users.create(None, None, None, None, anonymous=True))

    async def login(self, peer: Peer, identity_text: str, password: str) -> dict[str, Any]:
        """An identity with an '@' is an email, anything else a username: each names at most one account. Unknown
        identity and wrong password answer alike, in the same time (a dummy hash is verified)."""
        identity = identity_text.strip().lower()
        row = await self.users.with_password("email" if is_email(identity) else "username", identity)
        await self.throttle("auth.login", "identity", row["id"] if row is not None else identity)
        if not await verify_password(row["password_hash"] if row else None, password) or row is None:
            raise HaptaError(INVALID_CREDENTIALS, "identity or password is wrong")
        await self.second_factor(row["id"])
        return await self.hub.sign_in(peer, row)

    async def second_factor(self, user_id: str) -> None:
        """After a right first factor: MFA_REQUIRED with a challenge when the user has a second factor in force."""
        challenge = await mfa.challenge(self.db, user_id)
        if challenge is not None:
            raise HaptaError(MFA_REQUIRED, "a second factor is required: send auth.mfa.verify with this challenge",
                             details={"challenge": challenge})

    async def me(self, principal: Principal) -> dict[str, Any]:
        if principal.role != USER:
            return {"role": principal.role}
        user = await self.users.get(principal.user_id)
        if user is None:
            raise HaptaError(TOKEN_INVALID, "this user no longer exists")
        return {"user": user}

    # ---- the password and proving it is you ----

    async def _reauthenticate(self, principal: Principal, row: Any, password: str | None, op: str) -> None:
        """What a change of credentials asks beyond a signed-in socket (whose access token may be stolen): the
        current password, or, for an account without one (signed up through a provider, or taken over), a sign-in
        of this session at most FRESH_SIGN_IN ago (that sign-in passed any second factor)."""
        if row["password_hash"] is not None:
            await self.throttle(op, "identity", principal.user_id)
            if password is None or not await verify_password(row["password_hash"], password):
                raise HaptaError(INVALID_CREDENTIALS, "the current password is wrong",
                                 details={"field": "password"})
            return
        age = await self.users.session_age(principal.session_id)
        if age is None or age > FRESH_SIGN_IN:
            raise HaptaError(FORBIDDEN, "sign in again first: this account has no password, so only a fresh "
                             "sign-in may change it", details={"reason": "reauthenticate"})

    async def change_password(self, principal: Principal, old: str | None, new: str) -> dict[str, Any]:
        """A new password (`old`: the current one; none for an account without one, on a fresh sign-in). Every
        other session of the user ends, and every mailed token."""
        _account_holder(principal, "only a signed-in user has a password")
        row = await self.users.with_password("id", principal.user_id)
        if row is None:
            raise HaptaError(TOKEN_INVALID, "this user no longer exists")
        await self._reauthenticate(principal, row, old, "auth.password")
        self._check_password(new, row["email"], row["username"])
        new_hash = await hash_password(new)
        async with self.db.transaction() as conn:   # the new password and the end of the other sessions: both
            await self.users.set_password(conn, principal.user_id, new_hash)
            others = await self.hub.sessions.revoke_user(principal.user_id, "password changed",
                                                         keep=(principal.session_id,), conn=conn)
        await self._announce(others, "password changed")
        return {}

    async def revoke_all(self, user_id: str, reason: str) -> int:
        """Every session of the user ends, and with them whatever a mail or a session had started (pending email
        changes, links, codes): an admin's answer to a stolen account."""
        async with self.db.transaction() as conn:
            ended = await self.hub.sessions.revoke_user(user_id, reason, conn=conn)
            await self.users.end_tokens(conn, user_id)
        await self._announce(ended, reason)
        return len(ended)

    # ---- proving the address ----

    async def _take_over(self, conn: asyncpg.Connection, user_id: str, email: str) -> list[str]:
        """The owner of the address has proven it, and someone else may have registered it: whatever that someone
        left ends (users.evict, every session), and the owner is told, with a link to choose a password. The
        sessions ended, for the caller to announce after commit."""
        ended = await self.hub.sessions.revoke_user(user_id, TAKEN_OVER, conn=conn)
        await self.users.evict(conn, user_id)
        token = await self.users.mint(conn, "reset", user_id, email, RESET_MINUTES)
        await self.mailer.queue(conn, "taken_over", email, link=self.link("reset", token), code=token)
        log.warning("an unverified account was taken over by the owner of its email")
        return ended

    async def verify_request(self, principal: Principal) -> dict[str, Any]:
        """Mail the signed-in user a link that confirms their email ({sent: false} when it already is)."""
        _account_holder(principal, "only a signed-in user has an email to verify")
        sent = await self._mail_verification(principal.user_id, principal.session_id)
        if sent is None:
            raise HaptaError(TOKEN_INVALID, "this user no longer exists")
        return {"sent": sent}

    async def _mail_verification(self, user_id: str, session_id: str | None) -> bool | None:
        """Mail the account a link that confirms its email: True when sent, False when it is verified already,
        None when there is no such user."""
        async with self.db.transaction() as conn:
            user = await self.users.lock(conn, "id", user_id)
            if user is None:
                return None
            if user["verified"]:
                return False
            if not user["email"]:
                raise HaptaError(BAD_REQUEST, "this user has no email (a guest)")
            token = await self.users.mint(conn, "verify", user_id, user["email"], VERIFY_MINUTES,
                                          session_id=session_id)
            await self.mailer.queue(conn, "verify", user["email"], link=self.link("verify", token), code=token)
        return True

    async def verify(self, peer: Peer, token: str, password: str | None) -> dict[str, Any]:
        """Confirm an email with the token its mail carried. Followed by the account's holder (this connection is
        signed in to it, or `password` is its password), the email is simply verified. Followed by anyone else,
        it is the address's owner claiming it: an unverified account is taken over ({taken_over: true}). A wrong
        password: INVALID_CREDENTIALS (the token stays good); a wrong, spent or expired token: TOKEN_INVALID."""
        principal = peer.principal
        owner = await self.users.peek(token, "verify")
        if owner is None:
            raise HaptaError(TOKEN_INVALID, "that link is not valid (used, expired or for another address)")
        holder = _holds(principal, owner["user_id"])
        if not holder and password is not None:
            await self.throttle("auth.verify", "identity", owner["user_id"])
            if not await verify_password(owner["password_hash"], password):
                raise HaptaError(INVALID_CREDENTIALS, "the password is wrong", details={"field": "password"})
            holder = True
        ended: list[str] = []
        async with self.db.transaction() as conn:
            spent = await self.users.spend(conn, token, "verify")
            if spent is None:   # spent meanwhile
                raise HaptaError(TOKEN_INVALID, "that link is not valid (used, expired or for another address)")
            taken_over = not spent["verified"] and not holder
            if taken_over:
                ended = await self._take_over(conn, spent["user_id"], spent["email"])
            await self.users.mark_verified(conn, spent["user_id"])
        await self._announce(ended, TAKEN_OVER)
        if _holds(principal, spent["user_id"]) and not principal.verified:
            self.hub.bind(peer, replace(principal, verified=True))
        return {"verified": True, **({"taken_over": True} if taken_over else {})}

    async def reset_request(self, email_text: str) -> dict[str, Any]:
        """Mail a link to choose a new password, if the email names an account. The answer is {} either way, after
        the same work, so it tells nobody whether the address has an account."""
        email = email_of(email_text)
        await self.throttle("auth.reset.request", "identity", email)
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

    async def reset(self, token: str, password: str) -> dict[str, Any]:
        """A new password with the token a reset mail carried; every session of the account ends, on every
        process, and every other mailed token. The link proves the address: an unverified account loses what a
        pre-registrant may have left (factors, provider links) and counts as verified. A wrong, spent or expired
        token: TOKEN_INVALID."""
        owner = await self.users.peek(token, "reset")
        if owner is None:
            raise HaptaError(TOKEN_INVALID, "that link is not valid (used or expired)")
        self._check_password(password, owner["email"], owner["username"])
        new_hash = await hash_password(password)
        async with self.db.transaction() as conn:   # spent, the password set and every session ended: all or none
            spent = await self.users.spend(conn, token, "reset")
            if spent is None:   # spent meanwhile by a concurrent reset
                raise HaptaError(TOKEN_INVALID, "that link is not valid (used or expired)")
            if not spent["verified"]:
                await self.users.evict(conn, spent["user_id"])
            await self.users.set_password(conn, spent["user_id"], new_hash)
            ended = await self.hub.sessions.revoke_user(spent["user_id"], "password reset", conn=conn)
        await self._announce(ended, "password reset")
        return {}

    async def otp_request(self, email_text: str) -> dict[str, Any]:
        """Mail a six-digit code that signs in, if the email names an account: {} either way, after the same work.
        A new code burns the one before."""
        email = email_of(email_text)
        await self.throttle("auth.otp.request", "identity", email)
        code = f"{secrets.randbelow(10 ** 6):06d}"
        subject, text, html = self.mailer.templates.render("otp", {
            "app": self.mailer.app_name, "link": self.link("otp", code), "code": code})
        if await self._same_time_either_way(OTP_REQUEST, email, code, subject, text, html, OTP_MINUTES):
            self.mailer.woken()
        return {}

    async def otp(self, peer: Peer, email_text: str, code: str) -> dict[str, Any]:
        """Sign in with a mailed code: a Session, and the email counts as verified (its owner read the mail); an
        unverified account signed in to from elsewhere is taken over first. Wrong, spent, expired or burnt
        (OTP_ATTEMPTS wrong guesses): INVALID_CREDENTIALS, alike."""
        email = email_of(email_text)
        await self.throttle("auth.otp", "identity", email)
        ended: list[str] = []
        async with self.db.transaction() as conn:
            live = await conn.fetchrow(LIVE_CODE, email, OTP_ATTEMPTS)
            right = live is not None and hmac.compare_digest(
                live["hash"], hash_secret(f"{live['user_id']}:{code.strip()}"))
            if live is not None and not right:
                await conn.execute("UPDATE hapta.account_tokens SET attempts = attempts + 1 WHERE hash = $1",
                                   live["hash"])
            if right:
                await conn.execute("UPDATE hapta.account_tokens SET used_at = now() WHERE hash = $1", live["hash"])
                if not live["verified"] and not _holds(peer.principal, live["user_id"]):
                    ended = await self._take_over(conn, live["user_id"], email)
                user = await self.users.mark_verified(conn, live["user_id"])
        if not right:
            raise HaptaError(INVALID_CREDENTIALS, "that code is not valid")
        await self._announce(ended, TAKEN_OVER)
        await self.second_factor(user["id"])
        return await self.hub.sign_in(peer, user)

    # ---- changing the email ----

    async def email_change(self, principal: Principal, email_text: str, password: str | None) -> dict[str, Any]:
        """Mail the new address a link that makes it the account's email; nothing changes until it is followed
        (within EMAIL_CHANGE_MINUTES, and only while the account's password and email stay as they are). Asks
        the current password (or a fresh sign-in, for an account without one). {} whether or not another account
        has that address (auth.email.confirm says so, to the one holding the link)."""
        _account_holder(principal, "only a signed-in user has an email to change")
        email = email_of(email_text)
        row = await self.users.with_password("id", principal.user_id)
        if row is None:
            raise HaptaError(TOKEN_INVALID, "this user no longer exists")
        await self._reauthenticate(principal, row, password, "auth.email.change")
        await self.throttle("auth.email.change", "recipient", email)   # one outside address is not mail-bombed
        async with self.db.transaction() as conn:
            token = await self.users.mint(conn, "email", principal.user_id, email, EMAIL_CHANGE_MINUTES,
                                          session_id=principal.session_id)
            await self.mailer.queue(conn, "email", email, link=self.link("email", token), code=token)
        return {}

    async def email_confirm(self, peer: Peer, token: str) -> dict[str, Any]:
        """Follow the new address's link: it becomes the account's email, verified; the old address is told, and
        every session but the one that asked (and this one, if signed in to the account) ends, with every other
        mailed token. ALREADY_EXISTS when another account took that address meanwhile; a spent, expired or
        outdated token: TOKEN_INVALID."""
        principal = peer.principal
        async with self.db.transaction() as conn:
            spent = await self.users.spend(conn, token, "email")
            if spent is None:
                raise HaptaError(TOKEN_INVALID, "that link is not valid (used, expired or no longer in force)")
            old = await self.users.lock(conn, "id", spent["user_id"])
            if await self.users.email_taken(conn, spent["email"], spent["user_id"]):
                raise HaptaError(ALREADY_EXISTS, "another account has that email", details={"field": "email"})
            user = await self.users.set_email(conn, spent["user_id"], spent["email"])
            if old["email"] is not None and old["email"] != spent["email"]:
                await self.mailer.queue(conn, "email_changed", old["email"], code=spent["email"])
            here = principal.session_id if _holds(principal, user["id"]) else None
            ended = await self.hub.sessions.revoke_user(user["id"], "email changed", keep=(spent["session_id"], here),
                                                        conn=conn)
        await self._announce(ended, "email changed")
        if here is not None:
            self.hub.bind(peer, replace(principal, verified=True))
        return {"user": user}

    # ---- two factors ----

    async def mfa_enroll(self, principal: Principal) -> dict[str, Any]:
        """{secret, uri}: a TOTP secret for an authenticator app; not in force until auth.mfa.confirm.
        ALREADY_EXISTS when a factor is in force."""
        _account_holder(principal, "only a signed-in user enrols a second factor")
        user = await self.users.get(principal.user_id)
        enrolled = await mfa.enroll(self.db, principal.user_id, (user or {}).get("email") or "", self.mailer.app_name)
        if enrolled is None:
            raise HaptaError(ALREADY_EXISTS, "a second factor is in force already")
        return enrolled

    async def mfa_confirm(self, principal: Principal, code: str) -> dict[str, Any]:
        """A first code from the authenticator puts the factor in force: {recovery_codes} (ten, each once)."""
        _account_holder(principal, "only a signed-in user enrols a second factor")
        codes = await mfa.confirm(self.db, principal.user_id, code, self.clock)
        if codes is None:
            raise HaptaError(INVALID_CREDENTIALS, "that code is not valid (or nothing is being enrolled)")
        return {"recovery_codes": codes}

    async def mfa_verify(self, peer: Peer, challenge: str, code: str) -> dict[str, Any]:
        """The second factor of a sign-in that answered MFA_REQUIRED: a Session. Guesses count per account, from
        anywhere, as well as against the challenge."""
        challenged = await mfa.challenged(self.db, challenge)
        if challenged is not None:
            await self.throttle("auth.mfa.verify", "identity", challenged)
        user_id = await mfa.answer(self.db, challenge, code, self.clock)
        user = None if user_id is None else await self.users.get(user_id)
        if user is None:
            raise HaptaError(INVALID_CREDENTIALS, "that code is not valid")
        return await self.hub.sign_in(peer, user)

    async def mfa_disable(self, principal: Principal, code: str) -> dict[str, Any]:
        """Remove the second factor with one of its codes (current, or a recovery code); the owner is told."""
        _account_holder(principal, "only a signed-in user has a second factor")
        await self.throttle("auth.mfa.disable", "identity", principal.user_id)
        if not await mfa.disable(self.db, principal.user_id, code, self.clock):
            raise HaptaError(INVALID_CREDENTIALS, "that code is not valid (or no second factor is in force)")
        await self._tell("mfa_removed", principal.user_id)
        return {}

    async def mfa_reset(self, user_id: str) -> dict[str, Any]:
        """An admin removes a user's second factor (a lost phone and lost recovery codes); the owner is told. Every
        session of the user ends with it: the lost phone may still hold one, signed in past the factor that is
        gone."""
        async with self.db.transaction() as conn:
            if await self.users.get(user_id, conn) is None:
                raise HaptaError(NOT_FOUND, "no such user")
            removed = await mfa.remove(conn, user_id)
            ended = await self.hub.sessions.revoke_user(user_id, MFA_RESET, conn=conn) if removed else []
        await self._announce(ended, MFA_RESET)
        if removed:
            await self._tell("mfa_removed", user_id)
        return {"removed": removed}

    async def _tell(self, template: str, user_id: str) -> None:
        async with self.db.transaction() as conn:
            user = await self.users.get(user_id, conn)
            if user is not None and user["email"]:
                await self.mailer.queue(conn, template, user["email"])

    # ---- an admin's hand on an account (the dashboard's Users page; ops/accounts.py: auth.user.*) ----

    async def create_user(self, email_text: str, username_text: str | None, password: str | None,
                          verified: bool) -> dict[str, Any]:
        """A new account made by an admin: with the password given, or without one and a mail to its address with
        a link to choose it (a reset link, valid INVITE_MINUTES; following it proves the address, so the account
        counts as verified from then). {user, mailed}. ALREADY_EXISTS when the email or username is taken."""
        email = email_of(email_text)
        try:
            username = normalize_username(username_text) if username_text else None
        except InvalidIdentity as exc:
            raise invalid("username", str(exc)) from None
        password_hash = None
        if password is not None:
            self._check_password(password, email, username)
            password_hash = await hash_password(password)
        try:
            async with self.db.transaction() as conn:
                user = await self.users.create(conn, email, username, password_hash, verified=verified)
                if password_hash is None:
                    token = await self.users.mint(conn, "reset", user["id"], email, INVITE_MINUTES)
                    await self.mailer.queue(conn, "invite", email, link=self.link("reset", token), code=token)
        except asyncpg.UniqueViolationError as exc:
            field = "username" if "username" in (exc.constraint_name or "") else "email"
            raise HaptaError(ALREADY_EXISTS, f"that {field} is taken", details={"field": field}) from None
        return {"user": user, "mailed": password_hash is None}

    async def set_password(self, user_id: str, password: str) -> dict[str, Any]:
        """An admin sets a user's password: as a reset by mail would, every session of the user ends (their
        sockets hear auth.revoked) and every mailed token (the trigger of 0013). {revoked}."""
        row = await self.users.with_password("id", user_id)
        if row is None:
            raise HaptaError(NOT_FOUND, "no such user")
        self._check_password(password, row["email"], row["username"])
        new_hash = await hash_password(password)
        async with self.db.transaction() as conn:
            await self.users.set_password(conn, user_id, new_hash)
            ended = await self.hub.sessions.revoke_user(user_id, PASSWORD_SET, conn=conn)
        await self._announce(ended, PASSWORD_SET)
        return {"revoked": len(ended)}

    async def mail_reset(self, user_id: str) -> dict[str, Any]:
        """An admin sends a user the mail auth.reset.request would: a link to choose a new password."""
        async with self.db.transaction() as conn:
            user = await self.users.lock(conn, "id", user_id)
            if user is None:
                raise HaptaError(NOT_FOUND, "no such user")
            if not user["email"]:
                raise HaptaError(BAD_REQUEST, "this user has no email (a guest)")
            token = await self.users.mint(conn, "reset", user_id, user["email"], RESET_MINUTES)
            await self.mailer.queue(conn, "reset", user["email"], link=self.link("reset", token), code=token)
        return {"sent": True}

    async def mail_verification(self, user_id: str) -> dict[str, Any]:
        """An admin sends a user the mail auth.verify.request would ({sent: false}: verified already)."""
        sent = await self._mail_verification(user_id, None)
        if sent is None:
            raise HaptaError(NOT_FOUND, "no such user")
        return {"sent": sent}

    async def mark_verified(self, user_id: str) -> dict[str, Any]:
        """An admin vouches for a user's email (rules read @user.verified from the user's next sign-in or
        refresh: a socket keeps the principal it was signed in with, as after a link followed elsewhere)."""
        async with self.db.transaction() as conn:
            if await self.users.lock(conn, "id", user_id) is None:
                raise HaptaError(NOT_FOUND, "no such user")
            user = await self.users.mark_verified(conn, user_id)
        return {"user": user}

    # ---- provider sign-ins (OAuth2) ----

    async def link_provider(self, provider: str, subject: str, email: str | None, vouched: bool) -> str:
        """The user a provider's sign-in stands for. A provider account already linked signs in to its user.
        Otherwise the email decides, and only when the provider vouches for it:

            no account with the email      a new account, verified when the provider vouched
            a verified account             linked: its owner has shown the email is theirs, and so has this person
            an unverified account          taken over by the verified owner (as a verification link followed by
                                           someone else is): pre-registering a victim's address never opens the
                                           victim's account later
            (not vouched, email taken)     ALREADY_EXISTS: nothing is linked
        """
        ended: list[str] = []
        async with self.db.transaction() as conn:
            known = await self.users.linked(conn, provider, subject)
            if known is not None:
                return known
            existing = await self.users.lock(conn, "email", email) if email else None
            if existing is not None and not vouched:
                raise HaptaError(ALREADY_EXISTS, "an account with this email exists; sign in to it first")
            if existing is None:   # no password: this user signs in through the provider (or sets one later)
                user = await self.users.create(conn, email or f"{provider}-{subject}@oauth2.invalid".lower(), None,
                                               None, verified=vouched)
                user_id = user["id"]
            else:
                user_id = existing["id"]
                if not existing["verified"]:
                    ended = await self._take_over(conn, user_id, existing["email"])
            await self.users.link(conn, provider, subject, user_id)
        await self._announce(ended, TAKEN_OVER)
        return user_id
