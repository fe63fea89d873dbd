"""What an account's identity may be: one email address and at most one username, never mistaken for each other.
Pure: no I/O. Every path that writes them (auth.register, records.update on users, OAuth2) goes through here, and
the database holds the same rules as CHECK constraints (store/sql/0005_accounts.sql) for writes made in SQL.

- Emails are lowercased and trimmed, and must look like an address (there is no other way to tell without mail).
- Usernames are 2-32 of ASCII a-z, 0-9, '_' and '.': no '@' (so no username can equal an email, and a login
  identity names one account), no look-alike letters from other scripts, no invisible or space characters.
"""
from __future__ import annotations

import re

from zxcvbn import zxcvbn

from ..protocol.errors import VALIDATION_FAILED, HaptaError

EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{1,63}")
USERNAME = re.compile(r"[a-z0-9_.]{2,32}")
USERNAME_RULE = "username must be 2-32 of a-z, 0-9, '_' and '.'"
# zxcvbn's score: 0-1 fall to an online guessing attack in well under 10^6 tries; 2 and up resist it.
MIN_SCORE = 2
ZXCVBN_MAX = 72   # zxcvbn's own bound on what it looks at (its matching is quadratic in the length)


class InvalidIdentity(ValueError):
    """The value cannot be an account's email or username; the message says why and is safe to show."""


def normalize_email(value: object) -> str:
    email = value.strip().lower() if isinstance(value, str) else ""
    if not EMAIL.fullmatch(email) or len(email) > 254:
        raise InvalidIdentity("email is not a valid address")
    return email


def invalid(field: str, message: str) -> HaptaError:
    """A refusal of one field of an account's data, named in `details.field`."""
    return HaptaError(VALIDATION_FAILED, message, details={"field": field})


def email_of(text: str) -> str:
    """An email as accounts keep it, or VALIDATION_FAILED naming the field."""
    try:
        return normalize_email(text)
    except InvalidIdentity as exc:
        raise invalid("email", str(exc)) from None


def normalize_username(value: object) -> str:
    """The username as stored: trimmed and lowercased ("Ada " is "ada"), then held to USERNAME."""
    username = value.strip().lower() if isinstance(value, str) else ""
    if not USERNAME.fullmatch(username):
        raise InvalidIdentity(USERNAME_RULE)
    return username


def is_email(identity: str) -> bool:
    """How a login identity is read: with an '@' it can only be an email (no username holds one)."""
    return "@" in identity


def weakness(password: str, *, min_length: int, identities: tuple[str | None, ...] = ()) -> str | None:
    """Why a new password is too weak, or None: too short (NIST SP 800-63B's first rule), built from the account's
    own email or username, or too easy to guess, as zxcvbn judges it against its lists of common and breached
    passwords, words and names, with their keyboard patterns, repeats and l33t substitutions ('P@ssw0rd!')."""
    if len(password) < min_length:
        return f"password must be at least {min_length} characters"
    lowered = password.lower()
    inputs = [part for identity in identities if identity for part in {identity, identity.split("@")[0]}]
    if any(len(part) >= 3 and part.lower() in lowered for part in inputs):
        return "password must not contain your email or username"
    verdict = zxcvbn(password[:ZXCVBN_MAX], user_inputs=inputs)
    if verdict["score"] < MIN_SCORE:
        warning = verdict["feedback"].get("warning") or ""
        return "password is too common or too simple" + (f": {warning}" if warning else "")
    return None
