"""What needs no database: the command line's shape, the factor's pinned algorithm, and reading the password."""
from __future__ import annotations

import hashlib
import io

import pyotp
import pytest

from hapta.admin.accounts import read_password
from hapta.auth.admins import totp_of
from hapta.cli import _parse


def test_admin_alone_and_its_subcommands_parse():
    alone = _parse(["admin", "--config", "app/config.py", "--port", "9000"])
    assert (alone.admin_command, alone.config, alone.port) == (None, "app/config.py", 9000)
    create = _parse(["admin", "create", "--email", "a@example.com", "--password-stdin", "--config", "x.py"])
    assert (create.admin_command, create.email, create.password_stdin, create.no_totp, create.config) == \
        ("create", "a@example.com", True, False, "x.py")
    before = _parse(["admin", "--config", "y.py", "totp-reset", "--email", "a@example.com"])
    assert (before.admin_command, before.config) == ("totp-reset", "y.py")
    assert _parse(["admin", "list"]).config == "config.py"
    with pytest.raises(SystemExit):
        _parse(["admin", "delete"])   # --email is required


def test_the_factor_is_rfc_6238_sha1_six_digits_thirty_seconds():
    secret = pyotp.random_base32()
    factor = totp_of(secret)
    assert (factor.digest, factor.digits, factor.interval) == (hashlib.sha1, 6, 30)
    # what an authenticator app computes from the URI is what the gateway checks
    assert pyotp.parse_uri(factor.provisioning_uri(name="a@example.com", issuer_name="X")).at(1_700_000_000) \
        == factor.at(1_700_000_000)


def test_the_password_is_the_first_line_of_stdin_without_its_line_end():
    assert read_password(True, io.StringIO("correct horse battery\r\nrest\n")) == "correct horse battery"
    with pytest.raises(SystemExit, match="--password-stdin"):
        read_password(False, io.StringIO(""))   # not a terminal: nothing to ask on
