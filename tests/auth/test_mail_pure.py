"""The development mail file, without servers: a person opening the .eml in an editor can copy its link as it is
(issue 33, item 3). Quoted-printable would turn `#verify=<token>` into `#verify=3D<token>`."""
from __future__ import annotations

import email
from email import policy
from pathlib import Path

from hapta.auth.mail import Mailer, Templates

LINK = "https://app.example/#verify=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def mail_file(app: str = "Chat", link: str = LINK, template: str = "verify") -> bytes:
    """The bytes of the .eml the mailer writes without SMTP_URL for one mail of `template`."""
    mailer = Mailer(None, Templates(None), app, smtp_url=None, sender="hapta@localhost", folder=Path("."),
                    log_links=False)
    subject, text, html = mailer.templates.render(template, {"app": app, "link": link, "code": "123456"})
    row = {"id": 1, "recipient": "ann@example.com", "subject": subject, "text_body": text, "html_body": html}
    return mailer._message(row, readable=True).as_bytes()


def test_the_link_in_a_mail_file_is_the_link_as_plain_text():
    for template in ("verify", "reset", "email", "taken_over"):
        raw = mail_file(template=template)
        assert LINK.encode() in raw.splitlines(), template
        assert b"=3D" not in raw


def test_a_mail_file_reads_back_as_the_mail_it_was():
    raw = mail_file(app="Café ☕", template="email")
    message = email.message_from_bytes(raw, policy=policy.default)
    plain = message.get_body(preferencelist=("plain",))
    assert plain["Content-Transfer-Encoding"] == "8bit"
    assert LINK in plain.get_content().splitlines()
    assert f'href="{LINK}"' in message.get_body(preferencelist=("html",)).get_content()
    assert "Café ☕" in raw.decode()


def test_an_ascii_mail_file_is_7bit():
    message = email.message_from_bytes(mail_file(), policy=policy.default)
    assert {part["Content-Transfer-Encoding"] for part in message.iter_parts()} == {"7bit"}


def test_a_line_too_long_for_mail_keeps_an_encoding_and_still_reads_back():
    """RFC 5322 caps a line at 998 bytes: such a part (an app's template) is encoded as before."""
    link = LINK + "x" * 1200
    message = email.message_from_bytes(mail_file(link=link), policy=policy.default)
    plain = message.get_body(preferencelist=("plain",))
    assert plain["Content-Transfer-Encoding"] != "8bit"
    assert link in plain.get_content()
