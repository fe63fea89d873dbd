"""OAuth2 sign-in through the socket: authorization code flow with PKCE (S256).

    socket   auth.oauth2 {provider}      -> {url, state}; the state is bound to this socket, single use, 10 min
    browser  opens url, signs in at the provider, which redirects it to GET /oauth2/callback?code&state
    gateway  (any worker, any node) spends the state, exchanges the code (with the PKCE verifier and the client
             secret), reads the user info, links or creates the user, answers the browser with a small page, and
             NOTIFYs `hapta_oauth2` with the waiting socket's address and the user id (never a token)
    socket   the process holding it starts a session and pushes the event auth.oauth2 {Session} or {error}

The provider is reached with the standard library's HTTP client in a thread: a sign-in is rare next to the
socket traffic, and one more HTTP library is not worth its weight here.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import json
import logging
import secrets
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import msgspec

from ..config import OAuth2Provider
from ..protocol.errors import BAD_REQUEST, INVALID_CREDENTIALS, UNAVAILABLE, HaptaError
from ..store.postgres import Database
from .identity import InvalidIdentity, normalize_email
from .tokens import hash_secret

log = logging.getLogger("hapta.oauth2")

CHANNEL = "hapta_oauth2"
STATE_TTL = 600          # seconds a sign-in may take
HTTP_TIMEOUT = 10        # seconds for each call to the provider
MAX_RESPONSE = 1 << 20   # bytes read from the provider at most


def challenge_of(verifier: str) -> str:
    """The PKCE code_challenge for a code_verifier, method S256 (RFC 7636, section 4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, code_challenge)."""
    verifier = secrets.token_urlsafe(48)
    return verifier, challenge_of(verifier)


def authorize_url(provider: OAuth2Provider, redirect_uri: str, state: str, challenge: str) -> str:
    query = {"response_type": "code", "client_id": provider.client_id, "redirect_uri": redirect_uri,
             "state": state, "code_challenge": challenge, "code_challenge_method": "S256"}
    if provider.scope:
        query["scope"] = provider.scope
    separator = "&" if "?" in provider.authorize_url else "?"
    return provider.authorize_url + separator + urllib.parse.urlencode(query)


class ProviderError(Exception):
    """The provider refused or failed; the message is safe to show (no codes, no tokens)."""


def _http_json(request: urllib.request.Request) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            body = response.read(MAX_RESPONSE + 1)
    except urllib.error.HTTPError as exc:
        raise ProviderError(f"the provider answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ProviderError(f"the provider could not be reached ({type(exc).__name__})") from None
    if len(body) > MAX_RESPONSE:
        raise ProviderError("the provider's answer is too large")
    try:
        data = json.loads(body)
    except ValueError:
        raise ProviderError("the provider's answer is not JSON") from None
    if not isinstance(data, dict):
        raise ProviderError("the provider's answer is not an object")
    return data


def exchange_code(provider: OAuth2Provider, code: str, verifier: str, redirect_uri: str) -> dict[str, Any]:
    """The user info for an authorization code (blocking: run it in a thread)."""
    form = urllib.parse.urlencode({
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
        "client_id": provider.client_id, "client_secret": provider.client_secret, "code_verifier": verifier,
    }).encode()
    tokens = _http_json(urllib.request.Request(provider.token_url, data=form, method="POST", headers={
        "Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}))
    access_token = tokens.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise ProviderError("the provider gave no access token")
    return _http_json(urllib.request.Request(provider.userinfo_url, headers={
        "Accept": "application/json", "Authorization": f"Bearer {access_token}", "User-Agent": "hapta"}))


class Outcome(msgspec.Struct, omit_defaults=True):
    """What the callback tells the waiting socket's process."""
    waiter: str
    user_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class Waiting:
    process: str
    connection: int

    def __str__(self) -> str:
        return f"{self.process}:{self.connection}"

    @classmethod
    def parse(cls, text: str) -> "Waiting":
        process, _, connection = text.rpartition(":")
        return cls(process, int(connection))


async def begin(db: Database, name: str, provider: OAuth2Provider, redirect_uri: str,
                waiter: Waiting) -> dict[str, str]:
    state = secrets.token_urlsafe(32)
    verifier, challenge = pkce_pair()
    await db.execute("""
        INSERT INTO hapta.oauth_states (state_hash, provider, verifier, waiter, expires_at)
        VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))""",
        hash_secret(state), name, verifier, str(waiter), float(STATE_TTL))
    await db.execute("DELETE FROM hapta.oauth_states WHERE expires_at < now() - interval '1 hour'")
    return {"url": authorize_url(provider, redirect_uri, state, challenge), "state": state}


# link(provider name, subject, email, vouched) -> the user's id: the Accounts service's link_provider
Link = Callable[[str, str, "str | None", bool], Awaitable[str]]


async def complete(db: Database, providers: dict[str, OAuth2Provider], redirect_uri: str, params: dict[str, str],
                   link: Link) -> tuple[Outcome | None, str]:
    """Handle the browser's return: (what to tell the waiting socket or None, a line for the browser)."""
    state = params.get("state", "")
    if not state or len(state) > 200:
        return None, "This sign-in link is not valid."
    row = await db.fetchrow(   # spends the state: a replay finds nothing
        "DELETE FROM hapta.oauth_states WHERE state_hash = $1 RETURNING provider, verifier, waiter, "
        "expires_at > now() AS fresh", hash_secret(state))
    if row is None:
        return None, "This sign-in link is not valid or was already used."
    waiter = row["waiter"]
    provider = providers.get(row["provider"])
    if not row["fresh"] or provider is None:
        expired = _failed(waiter, INVALID_CREDENTIALS, "the sign-in took too long; start again")
        return expired, "This sign-in expired."
    if "error" in params:
        return _failed(waiter, INVALID_CREDENTIALS, "the provider refused the sign-in"), "Sign-in was refused."
    code = params.get("code", "")
    if not code or len(code) > 2048:
        return _failed(waiter, BAD_REQUEST, "the provider sent no code"), "Sign-in failed."
    try:
        info = await asyncio.to_thread(exchange_code, provider, code, row["verifier"], redirect_uri)
        user_id = await link(row["provider"], *_identity(provider, info))
    except ProviderError as exc:
        log.warning("oauth2 sign-in with %s failed: %s", row["provider"], exc)
        return _failed(waiter, UNAVAILABLE, str(exc)), "Sign-in failed at the provider."
    except HaptaError as exc:
        return _failed(waiter, exc.code, exc.message), "Sign-in failed: " + exc.message
    return Outcome(waiter, user_id=user_id), "You are signed in. You can close this window."


def _failed(waiter: str, code: str, message: str) -> Outcome:
    return Outcome(waiter, error_code=code, error_message=message)


def _identity(provider: OAuth2Provider, info: dict[str, Any]) -> tuple[str, str | None, bool]:
    """(subject, email or None, vouched): who the provider says signed in, and whether it vouches for the email
    (the app trusts the provider's emails, and this one is marked verified)."""
    subject = info.get(provider.subject_field)
    if not isinstance(subject, (str, int)) or isinstance(subject, bool) or str(subject) == "":
        raise ProviderError("the provider named no user")
    try:
        email: str | None = normalize_email(info.get(provider.email_field))
    except InvalidIdentity:
        email = None
    vouched = email is not None and provider.trust_email and provider.verified_field is not None \
        and info.get(provider.verified_field) is True
    return str(subject)[:200], email, vouched


def page(line: str) -> str:
    """The browser's answer: one line, escaped, no scripts."""
    return ("<!doctype html><meta charset=utf-8><title>Hapta sign-in</title>"
            f"<p style='font:16px system-ui;margin:3em auto;max-width:30em'>{html.escape(line)}</p>\n")
