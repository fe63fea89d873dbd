"""Account lifecycles an attacker cannot hijack, as sequences through real sockets: two gateway processes on one
database, a real SMTP server (aiosmtpd) and an OAuth2 provider the tests play (tests/auth/sessions/provider.py).

The attacker of most of these pre-registers the victim's address with a password of their own and waits; or holds
a stolen 15-minute access token. Each test is a sequence that worked for the attacker before the account's
lifecycle was made explicit (hapta/auth/accounts.py, docs/sessions.md "An account's life").
"""
from __future__ import annotations

import asyncio
import http.client
import secrets
import urllib.parse

import pyotp
import pytest

from hapta.client import Client
from hapta.protocol.errors import HaptaError
from tests.auth.accounts.conftest import code_in, refused, token_in
from tests.conftest import ADMIN_KEY, PASSWORD, gateway_env
from tests.services import GatewayProcess, next_loopback, write_app
from tests.auth.sessions.provider import CLIENT_ID, CLIENT_SECRET, Provider

PUBLIC = "https://app.example.com"
NEW_PASSWORD = "a brand new passphrase"
TAKEN_OVER = "taken over by the owner of its email"


def address(prefix: str = "a") -> str:
    return f"{prefix}{secrets.token_hex(5)}@example.com"


@pytest.fixture(scope="module")
def provider():
    provider = Provider().start()
    yield provider
    provider.stop()


def _config(provider: Provider, **overrides: object) -> str:
    settings = "".join(f", {key}={value!r}" for key, value in overrides.items())
    return f"""
        import dataclasses, runpy
        from hapta.config import Limit, OAuth2Provider
        demo = runpy.run_path(APP + "/config.py")["app"]
        # every test here signs in and registers from fresh loopback addresses; the limits per account stay
        limits = {{**demo.limits, "auth.login": Limit(1000, per=60), "auth.register": Limit(1000, per=60)}}
        test = OAuth2Provider("{provider.base}/authorize", "{provider.base}/token", "{provider.base}/userinfo",
                              "{CLIENT_ID}", "{CLIENT_SECRET}", scope="openid email", trust_email=True)
        app = dataclasses.replace(demo, oauth2={{"test": test}}, limits=limits{settings})
    """


@pytest.fixture(scope="module")
def nodes(tmp_path_factory, mail_database, smtp, provider):
    """Two processes on one database (the victim and the attacker may be on either), sending to the test SMTP."""
    _, url = smtp
    config = write_app(tmp_path_factory.mktemp("lifecycle"), _config(provider))
    env = gateway_env(mail_database, SMTP_URL=url, HAPTA_PUBLIC_URL=PUBLIC)
    processes = [GatewayProcess(env, config=config).start() for _ in range(2)]
    yield processes
    for process in processes:
        process.stop()
    for process in processes:
        assert "Traceback" not in process.log_text(), process.log_text()


@pytest.fixture(scope="module")
def by_mail(tmp_path_factory, mail_database, smtp, provider):
    """A gateway whose app requires verified emails: registering there mails a link and signs nobody in."""
    _, url = smtp
    config = write_app(tmp_path_factory.mktemp("by-mail"), _config(provider, require_verified=True))
    process = GatewayProcess(gateway_env(mail_database, SMTP_URL=url, HAPTA_PUBLIC_URL=PUBLIC),
                             config=config).start()
    yield process
    process.stop()
    assert "Traceback" not in process.log_text(), process.log_text()


async def revoked(client: Client) -> str:
    """The reason of the auth.revoked event this socket gets next."""
    event = await client.next_event(timeout=10)
    assert event["event"] == "auth.revoked", event
    return event["data"]["reason"]


async def enrol_factor(client: Client) -> pyotp.TOTP:
    enrolled = await client.call("auth.mfa.enroll")
    totp = pyotp.TOTP(enrolled["secret"])
    await client.call("auth.mfa.confirm", {"code": totp.now()})
    return totp


async def signed_out_everywhere(connect, email: str, password: str, refresh_token: str) -> None:
    """The attacker's credentials open nothing: the password, and the refresh token of their session."""
    fresh = await connect(1)
    assert await refused(fresh.call("auth.login", {"identity": email, "password": password})) == \
        "INVALID_CREDENTIALS"
    assert await refused(fresh.call("auth.refresh", {"refresh_token": refresh_token})) == "TOKEN_INVALID"


# ---- 1. a pending email change outlives nothing -------------------------------------------------------------


async def test_a_pre_registrants_email_change_dies_with_the_owners_password_reset(connect, smtp):
    """The issue's sequence: the attacker pre-registers victim@, asks a change to attacker@evil and keeps the link;
    the victim resets the password and uses the account; the attacker's confirm must then be refused."""
    inbox, _ = smtp
    victim_email, evil = address("victim"), address("evil")
    attacker = await connect(0)
    await attacker.call("auth.register", {"email": victim_email, "password": PASSWORD})
    assert await attacker.call("auth.email.change", {"email": evil, "password": PASSWORD}) == {}
    change = token_in(await inbox.take(evil, "new email"), "email")

    victim = await connect(1)
    await victim.call("auth.reset.request", {"email": victim_email})
    await victim.call("auth.reset", {"token": token_in(await inbox.take(victim_email, "Reset"), "reset"),
                                     "password": NEW_PASSWORD})
    assert await revoked(attacker) == "password reset"
    me = (await victim.call("auth.login", {"identity": victim_email, "password": NEW_PASSWORD}))["user"]
    await victim.call("records.create", {"collection": "posts", "data": {"author": me["id"], "text": "mine",
                                                                          "public": False}})

    later = await connect(0)
    assert await refused(later.call("auth.email.confirm", {"token": change})) == "TOKEN_INVALID"
    assert (await victim.call("auth.me"))["user"]["email"] == victim_email
    await later.call("auth.reset.request", {"email": evil})   # evil holds no account: nothing can be reset there
    assert await refused(later.call("auth.login", {"identity": evil, "password": PASSWORD})) == "INVALID_CREDENTIALS"


async def test_a_stolen_access_token_cannot_start_an_email_change(connect, smtp):
    inbox, _ = smtp
    owner = await connect(0)
    owner_email = address("owner")
    session = await owner.call("auth.register", {"email": owner_email, "password": PASSWORD})
    thief = await connect(1)
    await thief.call("auth.resume", {"token": session["token"]})   # 15 minutes of the owner's access
    evil = address("evil")
    assert await refused(thief.call("auth.email.change", {"email": evil})) == "INVALID_CREDENTIALS"
    assert await refused(thief.call("auth.email.change", {"email": evil, "password": "not the password at all"})) \
        == "INVALID_CREDENTIALS"
    # the owner, with the password, may; and what the owner does to the account ends the pending change
    new = address("new")
    await owner.call("auth.email.change", {"email": new, "password": PASSWORD})
    pending = token_in(await inbox.take(new, "new email"), "email")
    await owner.call("auth.password", {"old": PASSWORD, "new": NEW_PASSWORD})
    assert await refused(thief.call("auth.email.confirm", {"token": pending})) == "TOKEN_INVALID"

    newer = address("newer")
    await owner.call("auth.email.change", {"email": newer, "password": NEW_PASSWORD})
    pending = token_in(await inbox.take(newer, "new email"), "email")
    admin = await connect(1)
    await admin.call("auth.admin", {"key": ADMIN_KEY})
    await admin.call("auth.revoke", {"user": session["user"]["id"]})   # an admin ends every session of the user
    assert await refused(admin.call("auth.email.confirm", {"token": pending})) == "TOKEN_INVALID"
    fresh = await connect(0)
    assert (await fresh.call("auth.login", {"identity": owner_email, "password": NEW_PASSWORD}))["user"]["email"] \
        == owner_email


async def test_a_confirmed_change_tells_the_old_address_and_ends_the_other_sessions(connect, smtp):
    inbox, _ = smtp
    old, new = address("old"), address("new")
    phone = await connect(0)
    await phone.call("auth.register", {"email": old, "password": PASSWORD})
    laptop = await connect(1)
    await laptop.call("auth.login", {"identity": old, "password": PASSWORD})
    await phone.call("auth.email.change", {"email": new, "password": PASSWORD})
    link = token_in(await inbox.take(new, "new email"), "email")
    anywhere = await connect(1)   # the link opened in a browser signed in to nothing
    assert (await anywhere.call("auth.email.confirm", {"token": link}))["user"]["email"] == new
    assert await revoked(laptop) == "email changed"
    assert (await phone.call("auth.me"))["user"]["email"] == new   # the session that asked goes on
    told = await inbox.take(old, "email was changed")
    assert new in told.get_body(preferencelist=("plain",)).get_content()


# ---- 2, 3. proving the address evicts the pre-registrant -----------------------------------------------------


async def test_a_sign_in_code_evicts_the_pre_registrant_and_their_second_factor(connect, smtp):
    inbox, _ = smtp
    victim_email = address("victim")
    attacker = await connect(0)
    stolen = await attacker.call("auth.register", {"email": victim_email, "password": PASSWORD})
    await enrol_factor(attacker)   # the attacker's authenticator would lock the owner out
    victim = await connect(1)
    await victim.call("auth.otp.request", {"email": victim_email})
    session = await victim.call("auth.otp", {"email": victim_email,
                                             "code": code_in(await inbox.take(victim_email, "sign-in code"))})
    assert session["user"]["verified"] is True and session["user"]["id"] == stolen["user"]["id"]
    assert await revoked(attacker) == TAKEN_OVER
    await signed_out_everywhere(connect, victim_email, PASSWORD, stolen["refresh_token"])
    # the owner is told, with a link to choose a password of their own
    told = await inbox.take(victim_email, "yours alone")
    await victim.call("auth.reset", {"token": token_in(told, "reset"), "password": NEW_PASSWORD})
    fresh = await connect(0)
    assert (await fresh.call("auth.login", {"identity": victim_email, "password": NEW_PASSWORD}))["user"]["id"] \
        == stolen["user"]["id"]   # no MFA_REQUIRED: the attacker's factor went with the takeover


async def test_a_verification_link_followed_elsewhere_evicts_the_pre_registrant(connect, smtp):
    inbox, _ = smtp
    victim_email = address("victim")
    attacker = await connect(0)
    stolen = await attacker.call("auth.register", {"email": victim_email, "password": PASSWORD})
    await attacker.call("auth.verify.request")   # the link goes to the victim's mailbox
    victim = await connect(1)   # the victim opens it, signed in to nothing
    link = token_in(await inbox.take(victim_email, "Confirm your email"), "verify")
    assert await victim.call("auth.verify", {"token": link}) == {"verified": True, "taken_over": True}
    assert await revoked(attacker) == TAKEN_OVER
    await signed_out_everywhere(connect, victim_email, PASSWORD, stolen["refresh_token"])
    await inbox.take(victim_email, "yours alone")


async def test_the_accounts_holder_verifies_without_losing_anything(connect, smtp):
    """Followed where its holder is signed in, or with the account's password, a link only verifies."""
    inbox, _ = smtp
    email = address("holder")
    laptop = await connect(0)
    await laptop.call("auth.register", {"email": email, "password": PASSWORD})
    await laptop.call("auth.verify.request")
    link = token_in(await inbox.take(email, "Confirm your email"), "verify")
    phone = await connect(1)   # the mail app opened the link in a browser not signed in
    assert await refused(phone.call("auth.verify", {"token": link, "password": "not the password at all"})) == \
        "INVALID_CREDENTIALS"
    assert await phone.call("auth.verify", {"token": link, "password": PASSWORD}) == {"verified": True}
    assert (await laptop.call("auth.me"))["user"]["verified"] is True   # still signed in
    assert (await phone.call("auth.login", {"identity": email, "password": PASSWORD}))["user"]["verified"] is True


async def test_a_reset_of_an_unverified_account_removes_the_pre_registrants_factor(connect, smtp):
    inbox, _ = smtp
    victim_email = address("victim")
    attacker = await connect(0)
    await attacker.call("auth.register", {"email": victim_email, "password": PASSWORD})
    await enrol_factor(attacker)
    victim = await connect(1)
    await victim.call("auth.reset.request", {"email": victim_email})
    await victim.call("auth.reset", {"token": token_in(await inbox.take(victim_email, "Reset"), "reset"),
                                     "password": NEW_PASSWORD})
    session = await victim.call("auth.login", {"identity": victim_email, "password": NEW_PASSWORD})
    assert session["user"]["verified"] is True   # the reset link proved the address


async def test_a_provider_takeover_ends_pending_changes_and_factors(connect, smtp, provider, nodes):
    inbox, _ = smtp
    victim_email, evil = address("victim"), address("evil")
    attacker = await connect(0)
    await attacker.call("auth.register", {"email": victim_email, "password": PASSWORD})
    await enrol_factor(attacker)
    await attacker.call("auth.email.change", {"email": evil, "password": PASSWORD})
    pending = token_in(await inbox.take(evil, "new email"), "email")

    provider.user = {"sub": "p" + secrets.token_hex(5), "email": victim_email, "email_verified": True}
    victim = await connect(1)
    begun = await victim.call("auth.oauth2", {"provider": "test"})
    status, headers = await asyncio.to_thread(_get, begun["url"])
    assert status == 302
    callback = headers["Location"].replace(PUBLIC, nodes[0].http)   # the balancer picked the other process
    assert (await asyncio.to_thread(_get, callback))[0] == 200
    event = await victim.next_event(timeout=10)
    assert event["event"] == "auth.oauth2" and "token" in event["data"], event   # no MFA_REQUIRED
    assert await revoked(attacker) == TAKEN_OVER
    assert await refused(victim.call("auth.email.confirm", {"token": pending})) == "TOKEN_INVALID"
    await inbox.take(victim_email, "yours alone")


def _get(url: str) -> tuple[int, dict[str, str]]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)
    try:
        conn.request("GET", parts.path + ("?" + parts.query if parts.query else ""))
        response = conn.getresponse()
        response.read()
        return response.status, dict(response.getheaders())
    finally:
        conn.close()


# ---- 4. a mailed token holds for the address and the password it was minted for ------------------------------


async def test_mailed_tokens_hold_only_for_the_address_and_password_they_were_minted_for(connect, smtp):
    inbox, _ = smtp
    client = await connect(0)
    old, new = address("old"), address("new")
    await client.call("auth.register", {"email": old, "password": PASSWORD})
    await client.call("auth.reset.request", {"email": old})
    to_old = token_in(await inbox.take(old, "Reset"), "reset")
    await client.call("auth.otp.request", {"email": old})
    code = code_in(await inbox.take(old, "sign-in code"))
    await client.call("auth.email.change", {"email": new, "password": PASSWORD})
    await client.call("auth.email.confirm", {"token": token_in(await inbox.take(new, "new email"), "email")})
    anyone = await connect(1)
    assert await refused(anyone.call("auth.reset", {"token": to_old, "password": NEW_PASSWORD})) == "TOKEN_INVALID"
    assert await refused(anyone.call("auth.otp", {"email": new, "code": code})) == "INVALID_CREDENTIALS"
    assert await refused(anyone.call("auth.otp", {"email": old, "code": code})) == "INVALID_CREDENTIALS"

    # two reset links: once the newer one set a password, the older one is dead
    await anyone.call("auth.reset.request", {"email": new})
    older = token_in(await inbox.take(new, "Reset"), "reset")
    await anyone.call("auth.reset.request", {"email": new})
    newer = token_in(await inbox.take(new, "Reset"), "reset")
    await anyone.call("auth.reset", {"token": newer, "password": NEW_PASSWORD})
    assert await refused(anyone.call("auth.reset", {"token": older, "password": "yet another passphrase"})) == \
        "TOKEN_INVALID"
    assert (await anyone.call("auth.login", {"identity": new, "password": NEW_PASSWORD}))["user"]["email"] == new


# ---- 3, 6. second factors: removing one, and codes in other scripts -------------------------------------------


async def test_a_factor_is_removed_with_its_code_or_by_an_admin(connect, smtp):
    inbox, _ = smtp
    email = address("mfa")
    client = await connect(0)
    user = (await client.call("auth.register", {"email": email, "password": PASSWORD}))["user"]
    enrolled = await client.call("auth.mfa.enroll")
    totp = pyotp.TOTP(enrolled["secret"])
    assert await refused(client.call("auth.mfa.confirm", {"code": "١٢٣٤٥٦"})) == "INVALID_CREDENTIALS"   # not INTERNAL
    codes = (await client.call("auth.mfa.confirm", {"code": totp.now()}))["recovery_codes"]

    signing_in = await connect(1)
    challenge = (await _mfa_required(signing_in, email))["challenge"]
    assert await refused(signing_in.call("auth.mfa.verify", {"challenge": challenge, "code": "١٢٣٤٥٦"})) == \
        "INVALID_CREDENTIALS"
    assert await refused(client.call("auth.mfa.disable", {"code": "١٢٣٤٥٦"})) == "INVALID_CREDENTIALS"
    assert await refused(client.call("auth.mfa.disable", {"code": "0000000000"})) == "INVALID_CREDENTIALS"
    assert await client.call("auth.mfa.disable", {"code": codes[0]}) == {}
    await inbox.take(email, "second factor")
    assert (await (await connect(1)).call("auth.login", {"identity": email, "password": PASSWORD}))["user"]["id"] \
        == user["id"]   # no second factor any more

    await enrol_factor(client)
    await _mfa_required(await connect(0), email)
    assert await refused(client.call("auth.mfa.reset", {"user": user["id"]})) == "FORBIDDEN"
    admin = await connect(1)
    await admin.call("auth.admin", {"key": ADMIN_KEY})
    assert await admin.call("auth.mfa.reset", {"user": user["id"]}) == {"removed": True}
    assert await admin.call("auth.mfa.reset", {"user": user["id"]}) == {"removed": False}
    assert await refused(admin.call("auth.mfa.reset", {"user": "nosuchuser12345"})) == "NOT_FOUND"
    assert (await (await connect(0)).call("auth.login", {"identity": email, "password": PASSWORD}))["user"]["id"] \
        == user["id"]


async def _mfa_required(client: Client, email: str) -> dict:
    with pytest.raises(HaptaError) as required:
        await client.call("auth.login", {"identity": email, "password": PASSWORD})
    assert required.value.code == "MFA_REQUIRED"
    return required.value.details


async def test_second_factor_guesses_are_limited_per_account_from_any_address(connect):
    """Five wrong codes burn a challenge; a new sign-in from another address brings a new one. Per account, from
    anywhere, at most 20 guesses in 10 minutes (DEFAULT_LIMITS["auth.mfa.verify:identity"]; without REDIS_URL each
    process counts its own, so this runs on one)."""
    email = address("guessed")
    owner = await connect(0)
    await owner.call("auth.register", {"email": email, "password": PASSWORD})
    totp = await enrol_factor(owner)
    wrong = f"{(int(totp.now()) + 500_000) % 10 ** 6:06d}"
    outcomes = []
    for attempt in range(5):
        guesser = await connect(0)   # each sign-in from an address of its own
        challenge = (await _mfa_required(guesser, email))["challenge"]
        for _ in range(5):
            outcomes.append(await refused(guesser.call("auth.mfa.verify", {"challenge": challenge, "code": wrong})))
    assert outcomes[:20] == ["INVALID_CREDENTIALS"] * 20
    assert outcomes[20:] == ["RATE_LIMITED"] * 5


# ---- 5. enumeration ---------------------------------------------------------------------------------------------


async def test_registering_by_mail_answers_alike_for_a_taken_email_and_tells_its_owner(by_mail, smtp):
    inbox, _ = smtp
    taken, fresh = address("taken"), address("fresh")
    answers = []
    for email in (taken, taken, fresh):
        async with await Client.connect(by_mail.url, local_addr=(next_loopback(), 0)) as client:
            answers.append(await client.call("auth.register", {"email": email, "password": PASSWORD}))
            answers.append(await client.call("auth.me"))
    assert answers == [{"check_mail": True}, {"role": "guest"}] * 3
    await inbox.take(taken, "Confirm your email")   # the first registration's link
    told = await inbox.take(taken, "with your address")
    assert "already has one" in told.get_body(preferencelist=("plain",)).get_content()
    await inbox.take(fresh, "Confirm your email")
    # usernames are public: a taken one is said
    async with await Client.connect(by_mail.url, local_addr=(next_loopback(), 0)) as client:
        name = "u" + secrets.token_hex(4)
        await client.call("auth.register", {"email": address(), "password": PASSWORD, "username": name})
        assert await refused(client.call("auth.register", {"email": address(), "password": PASSWORD,
                                                           "username": name})) == "ALREADY_EXISTS"


async def test_email_changes_to_one_outside_address_are_limited_from_every_account_together(connect, smtp):
    target = address("target")
    outcomes = []
    for _ in range(4):
        client = await connect(0)
        await client.call("auth.register", {"email": address(), "password": PASSWORD})
        try:
            outcomes.append(await client.call("auth.email.change", {"email": target, "password": PASSWORD}))
        except HaptaError as error:
            outcomes.append(error.code)
    assert outcomes == [{}, {}, {}, "RATE_LIMITED"]
