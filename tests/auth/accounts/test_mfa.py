"""Two factors (TOTP): enrolment with a real authenticator's codes (pyotp), a sign-in that answers MFA_REQUIRED and
leaves the connection a guest until the second factor, codes that work once, recovery codes, and guessing that
burns the challenge."""
from __future__ import annotations

import secrets
import time

import pyotp
import pytest

from hapta.client import Client
from hapta.protocol.errors import HaptaError
from tests.conftest import PASSWORD
from tests.services import next_loopback


async def refused(coroutine) -> HaptaError:
    with pytest.raises(HaptaError) as error:
        await coroutine
    return error.value


async def test_a_second_factor_guards_every_sign_in(gateway):
    async with await Client.connect(gateway.url, local_addr=(next_loopback(), 0)) as phone:
        address = f"f{secrets.token_hex(5)}@example.com"
        await phone.call("auth.register", {"email": address, "password": PASSWORD})
        enrolled = await phone.call("auth.mfa.enroll")
        assert enrolled["uri"].startswith("otpauth://totp/") and address.replace("@", "%40") in enrolled["uri"]
        totp = pyotp.TOTP(enrolled["secret"])
        assert (await refused(phone.call("auth.mfa.confirm", {"code": "000000" if totp.now() != "000000"
                                                                      else "111111"}))).code == "INVALID_CREDENTIALS"
        codes = (await phone.call("auth.mfa.confirm", {"code": totp.now()}))["recovery_codes"]
        assert len(codes) == 10 and len(set(codes)) == 10
        assert (await refused(phone.call("auth.mfa.enroll"))).code == "ALREADY_EXISTS"

    async def sign_in() -> tuple[Client, str]:
        client = await Client.connect(gateway.url, local_addr=(next_loopback(), 0))
        required = await refused(client.call("auth.login", {"identity": address, "password": PASSWORD}))
        assert required.code == "MFA_REQUIRED"
        # the password was right, but nothing works before the second factor
        assert (await client.call("auth.me")) == {"role": "guest"}
        assert (await refused(client.call("records.list", {"collection": "posts"}))).code == "UNAUTHENTICATED"
        return client, required.details["challenge"]

    laptop, challenge = await sign_in()
    code = totp.at(time.time() + 30)   # the next step's code (the one just used to confirm is spent)
    for n in range(4):   # wrong codes count against the challenge ...
        wrong = f"{(int(code) + 1 + n) % 10 ** 6:06d}"
        assert (await refused(laptop.call("auth.mfa.verify", {"challenge": challenge, "code": wrong}))).code \
            == "INVALID_CREDENTIALS"
    session = await laptop.call("auth.mfa.verify", {"challenge": challenge, "code": code})   # ... up to five
    assert session["user"]["email"] == address
    assert (await refused(laptop.call("auth.mfa.verify", {"challenge": challenge, "code": code}))).code \
        == "INVALID_CREDENTIALS"   # the challenge is spent
    await laptop.close()

    tablet, challenge = await sign_in()
    assert (await refused(tablet.call("auth.mfa.verify", {"challenge": challenge, "code": code}))).code \
        == "INVALID_CREDENTIALS"   # a TOTP code works once
    assert (await tablet.call("auth.mfa.verify", {"challenge": challenge, "code": codes[0]}))["user"]["email"] \
        == address   # a recovery code
    await tablet.close()

    again, challenge = await sign_in()
    assert (await refused(again.call("auth.mfa.verify", {"challenge": challenge, "code": codes[0]}))).code \
        == "INVALID_CREDENTIALS"   # a recovery code works once too
    for n in range(5):   # and five wrong codes burn the challenge: then even a right one fails
        await refused(again.call("auth.mfa.verify", {"challenge": challenge, "code": f"{n:06d}x"}))
    assert (await refused(again.call("auth.mfa.verify", {"challenge": challenge, "code": codes[1]}))).code \
        == "INVALID_CREDENTIALS"
    await again.close()
