"""The pure parts of sessions: sealed successors, key rotation by kid, password strength, proxy addresses."""
from __future__ import annotations

import pytest

from hapta.auth.identity import weakness
from hapta.auth.tokens import TokenSigner, new_refresh_token, seal_successor, unseal_successor
from hapta.gateway.proxies import client_address
from hapta.protocol.errors import HaptaError

OLD = "old-secret-" + "o" * 40
NEW = "new-secret-" + "n" * 40


def test_a_sealed_successor_opens_only_with_the_spent_token():
    spent, successor = new_refresh_token(), new_refresh_token()
    sealed = seal_successor(spent, successor)
    assert unseal_successor(spent, sealed) == successor
    assert unseal_successor(new_refresh_token(), sealed) != successor
    assert successor.encode() not in sealed and len(sealed) == 32


def test_rotating_the_signing_secret_keeps_old_tokens_valid_until_they_expire():
    old_token, _ = TokenSigner(OLD, 900).issue("user1", "sess1")
    rotated = TokenSigner(NEW, 900, retired=(OLD,))
    assert rotated.verify(old_token).user_id == "user1"
    new_token, _ = rotated.issue("user1", "sess1")
    assert rotated.verify(new_token).session_id == "sess1"
    with pytest.raises(HaptaError) as refused:   # once the old secret is dropped, its tokens are refused
        TokenSigner(NEW, 900).verify(old_token)
    assert refused.value.code == "TOKEN_INVALID"
    with pytest.raises(HaptaError):              # and an old server never accepts what the new secret signs
        TokenSigner(OLD, 900).verify(new_token)


@pytest.mark.parametrize("password, problem", [
    ("short", "at least 8"),
    ("password", "too common"),
    ("PassWord", "too common"),
    ("aaaaaaaaaaaa", "too simple"),
    ("ababababab", "too simple"),
    ("alice-rocks-2026", "email or username"),
    ("correct horse battery", None),
])
def test_password_strength(password, problem):
    found = weakness(password, min_length=8, identities=("alice@example.com", "alice"))
    assert (found is None) if problem is None else (problem in found)


TRUSTED = ("10.0.0.0/8", "::1")


@pytest.mark.parametrize("peer, header, expected", [
    ("203.0.113.9", "1.2.3.4", "203.0.113.9"),            # not a trusted proxy: the header is ignored
    ("10.1.2.3", "198.51.100.7", "198.51.100.7"),         # trusted proxy: the client it saw
    ("10.1.2.3", "1.1.1.1, 198.51.100.7", "198.51.100.7"),  # a client-supplied first hop is not believed
    ("10.1.2.3", "198.51.100.7, 10.9.9.9", "198.51.100.7"),  # two trusted proxies in a row
    ("10.1.2.3", "not-an-ip", "10.1.2.3"),                # garbage: keep the socket's address
    ("10.1.2.3", None, "10.1.2.3"),
    ("::1", "2001:db8::5", "2001:db8::5"),
])
def test_forwarded_for_is_believed_only_from_trusted_proxies(peer, header, expected):
    assert client_address(peer, header, TRUSTED) == expected
    assert client_address(peer, header, ()) == peer       # off by default
