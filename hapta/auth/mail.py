"""Mail: an outbox in PostgreSQL and a sender task in every gateway process.

    await mail.queue(conn, "reset", to, link=..., code=...)   # in the caller's transaction: sent iff it commits

A mail is rendered from the app's templates (`mail/<name>.subject`, `.txt`, `.html` beside config.py; string.Template
with $app, $link and $code) or the defaults below, and written to hapta.mail_outbox. After commit, whichever
process claims it first sends it: to the SMTP server of SMTP_URL (aiosmtplib; smtps:// is TLS from the start,
smtp:// upgrades with STARTTLS when the server offers it), or, without SMTP_URL, into HAPTA_DATA_DIR/mail/ as .eml
files written as plain text (a link copied from one works), with the link logged outside production. A failure
is retried after 5 s, 30 s, 2 min, 10 min, then kept with its error. A claim pushes next_try ahead (the lease): a
process that dies mid-send leaves the mail to the next one.
"""
from __future__ import annotations

import asyncio
import email.message
import email.utils
import logging
import secrets
import string
import urllib.parse
from pathlib import Path
from typing import Any

import asyncpg

from ..store.failures import UPSTREAM_ERRORS

from ..store.postgres import Database

log = logging.getLogger("hapta.mail")

RETRIES = (5, 30, 120, 600)   # seconds before each retry of a mail that failed
LEASE = 60                    # seconds a claimed mail is someone's to send
POLL = 2.0                    # seconds between looks at the outbox when nothing woke the sender

DEFAULTS: dict[str, dict[str, str]] = {
    "verify": {
        "subject": "Confirm your email for $app",
        "txt": "Confirm that this address is yours:\n\n$link\n\nor enter the code $code in the app. It is valid for "
               "24 hours. If you did not ask for this, ignore this mail.\n",
        "html": '<p>Confirm that this address is yours:</p><p><a href="$link">Confirm my email</a></p>'
                "<p>or enter the code <b>$code</b> in the app. It is valid for 24 hours. If you did not ask for "
                "this, ignore this mail.</p>",
    },
    "otp": {
        "subject": "Your $app sign-in code: $code",
        "txt": "Your code to sign in to $app is\n\n    $code\n\nIt is valid for 10 minutes and once. If you did not "
               "ask for it, ignore this mail.\n",
        "html": "<p>Your code to sign in to $app is</p><p style=\"font-size:24px\"><b>$code</b></p><p>It is valid "
                "for 10 minutes and once. If you did not ask for it, ignore this mail.</p>",
    },
    "email": {
        "subject": "Confirm your new email for $app",
        "txt": "Someone asked to make this address the email of their $app account. If it was you, confirm:\n\n"
               "$link\n\nor enter the code $code in the app. It is valid for 24 hours.\n",
        "html": "<p>Someone asked to make this address the email of their $app account. If it was you:</p>"
                "<p><a href=\"$link\">Confirm my new email</a></p><p>or enter the code <b>$code</b> in the app. It "
                "is valid for 24 hours.</p>",
    },
    "email_changed": {
        "subject": "Your $app email was changed",
        "txt": "The email of your $app account is now $code. If that was not you, reset your password and tell "
               "us.\n",
        "html": "<p>The email of your $app account is now <b>$code</b>. If that was not you, reset your password "
                "and tell us.</p>",
    },
    "account_exists": {
        "subject": "Someone tried to sign up to $app with your address",
        "txt": "Someone tried to create a $app account with this address, which already has one. If it was you, "
               "sign in instead, or reset your password from the app. If it was not, you need not do anything: "
               "your account is unchanged.\n",
        "html": "<p>Someone tried to create a $app account with this address, which already has one. If it was you, "
                "sign in instead, or reset your password from the app. If it was not, you need not do anything: "
                "your account is unchanged.</p>",
    },
    "taken_over": {
        "subject": "Your $app account is yours alone now",
        "txt": "This address was just proven to be yours, on an account that someone had registered with it "
               "before (maybe you, on another device). To keep it yours alone, its password, second factor, linked "
               "sign-ins and every session were ended. To choose a password:\n\n$link\n\nor enter the code "
               "$code in the app. It is valid for 30 minutes and once.\n",
        "html": "<p>This address was just proven to be yours, on an account that someone had registered with it "
                "before (maybe you, on another device). To keep it yours alone, its password, second factor, "
                "linked sign-ins and every session were ended.</p><p><a href=\"$link\">Choose a password</a></p>"
                "<p>or enter the code <b>$code</b> in the app. It is valid for 30 minutes and once.</p>",
    },
    "mfa_removed": {
        "subject": "The second factor of your $app account was removed",
        "txt": "The second factor (authenticator app) of your $app account was removed. If that was not you, "
               "reset your password and enrol a new one.\n",
        "html": "<p>The second factor (authenticator app) of your $app account was removed. If that was not you, "
                "reset your password and enrol a new one.</p>",
    },
    "reset": {
        "subject": "Reset your $app password",
        "txt": "Someone asked to reset the password of this account. To choose a new one:\n\n$link\n\nor enter the "
               "code $code in the app. It is valid for 30 minutes and once. If it was not you, ignore this mail: "
               "your password stays as it is.\n",
        "html": "<p>Someone asked to reset the password of this account.</p><p><a href=\"$link\">Choose a new "
                "password</a></p><p>or enter the code <b>$code</b> in the app. It is valid for 30 minutes and once. "
                "If it was not you, ignore this mail: your password stays as it is.</p>",
    },
}


class Templates:
    """The app's mail templates (app_dir/mail/<name>.<part>), each part falling back to the default."""

    def __init__(self, folder: Path | None):
        self.folder = folder

    def part(self, name: str, part: str) -> str:
        if self.folder is not None:
            path = self.folder / f"{name}.{part}"
            if path.is_file():
                return path.read_text()
        return DEFAULTS[name][part]

    def render(self, name: str, values: dict[str, str]) -> tuple[str, str, str]:
        subject, text, html = (string.Template(self.part(name, part)).safe_substitute(values)
                               for part in ("subject", "txt", "html"))
        return " ".join(subject.split()), text, html


class Mailer:
    def __init__(self, db: Database, templates: Templates, app_name: str, *, smtp_url: str | None, sender: str,
                 folder: Path, log_links: bool):
        self.db = db
        self.templates = templates
        self.app_name = app_name
        self.smtp_url = smtp_url
        self.sender = sender
        self.folder = folder            # where mails go without SMTP_URL
        self.log_links = log_links      # development: say in the log where a mail's link goes
        self.wake = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def queue(self, conn: asyncpg.Connection, template: str, to: str, **values: str) -> None:
        """Write a mail to the outbox in `conn`'s transaction: it leaves once that commits."""
        subject, text, html = self.templates.render(template, {"app": self.app_name, **values})
        await conn.execute("INSERT INTO hapta.mail_outbox (recipient, subject, text_body, html_body) "
                           "VALUES ($1, $2, $3, $4)", to, subject, text, html)
        if self.log_links and "link" in values:
            log.info("mail %r to %s: %s", template, _masked(to), values["link"])
        asyncio.get_running_loop().call_soon(self.wake.set)

    def woken(self, link: str | None = None) -> None:
        """A mail was written to the outbox some other way (one statement of the caller's): send soon."""
        if self.log_links and link is not None:
            log.info("mail written; its link: %s", link)
        asyncio.get_running_loop().call_soon(self.wake.set)

    def start(self) -> None:
        self.task = asyncio.ensure_future(self._send_loop())

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def _send_loop(self) -> None:
        while True:
            try:
                while await self._send_some():
                    pass
            except UPSTREAM_ERRORS as exc:
                log.warning("the outbox cannot be read: %s", type(exc).__name__)
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), POLL)
            except asyncio.TimeoutError:
                pass

    async def _send_some(self) -> bool:
        """Claim and send up to 10 due mails; True if there were any."""
        rows = await self.db.fetch(
            "UPDATE hapta.mail_outbox SET attempts = attempts + 1, next_try = now() + make_interval(secs => $1) "
            "WHERE id IN (SELECT id FROM hapta.mail_outbox WHERE sent_at IS NULL AND next_try <= now() "
            "AND attempts <= $2 ORDER BY id LIMIT 10 FOR UPDATE SKIP LOCKED) RETURNING *", LEASE, len(RETRIES))
        for row in rows:
            try:
                await self._deliver(row)
            except Exception as exc:   # the server refused or is away: retry later, keep the reason
                attempt = row["attempts"]
                wait = RETRIES[min(attempt - 1, len(RETRIES) - 1)]
                log.warning("mail %d to %s not sent (attempt %d): %s", row["id"], _masked(row["recipient"]),
                            attempt, type(exc).__name__)
                await self.db.execute("UPDATE hapta.mail_outbox SET next_try = now() + make_interval(secs => $2), "
                                      "error = $3 WHERE id = $1", row["id"], wait, f"{type(exc).__name__}: {exc}"[:500])
            else:
                await self.db.execute("UPDATE hapta.mail_outbox SET sent_at = now(), error = NULL WHERE id = $1",
                                      row["id"])
        return bool(rows)

    def _message(self, row: Any, *, readable: bool = False) -> email.message.EmailMessage:
        """The mail of an outbox row. `readable`: for a person to open as a file, so each part is written as it
        is (7bit or 8bit) where mail allows, not quoted-printable, which turns a link's `#verify=` into `=3D`."""
        message = email.message.EmailMessage()
        message["From"] = self.sender
        message["To"] = row["recipient"]
        message["Subject"] = row["subject"]
        message["Date"] = email.utils.formatdate(usegmt=True)
        message["Message-ID"] = email.utils.make_msgid(idstring=f"hapta{row['id']}")
        message.set_content(row["text_body"], cte=_plain_cte(row["text_body"]) if readable else None)
        if row["html_body"]:
            message.add_alternative(row["html_body"], subtype="html",
                                    cte=_plain_cte(row["html_body"]) if readable else None)
        return message

    async def send_now(self, to: str, subject: str, text: str) -> str:
        """Send one mail at once, past the outbox (the dashboard's test mail: its sender waits for the outcome), and
        say where it went; raises what the SMTP server or the disk raised."""
        row = {"id": secrets.randbelow(10**8), "recipient": to, "subject": subject, "text_body": text,
               "html_body": None}
        await self._deliver(row)
        if self.smtp_url is None:
            return f"written to {self.folder / '{:08d}.eml'.format(row['id'])} (no SMTP_URL)"
        url = urllib.parse.urlsplit(self.smtp_url)
        return f"accepted by {url.hostname}:{url.port or (465 if url.scheme == 'smtps' else 25)}"

    async def _deliver(self, row: Any) -> None:
        message = self._message(row, readable=self.smtp_url is None)
        if self.smtp_url is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / f"{row['id']:08d}.eml").write_bytes(message.as_bytes())
            return
        import aiosmtplib
        url = urllib.parse.urlsplit(self.smtp_url)
        implicit = url.scheme == "smtps"
        await aiosmtplib.send(message, hostname=url.hostname or "localhost", port=url.port or (465 if implicit else 25),
                              username=urllib.parse.unquote(url.username) if url.username else None,
                              password=urllib.parse.unquote(url.password) if url.password else None,
                              use_tls=implicit, start_tls=None if not implicit else False, timeout=30)


def _plain_cte(body: str) -> str | None:
    """7bit or 8bit for `body` as it is, or None (let the email package choose) when a line is longer than mail
    allows (998 bytes, RFC 5322), as an app's own template may be."""
    encoded = body.encode()
    if max((len(line) for line in encoded.splitlines()), default=0) > 998:
        return None
    return "7bit" if encoded.isascii() else "8bit"


def _masked(address: str) -> str:
    """An address as the log shows it: enough to tell mails apart, not to collect addresses."""
    name, _, domain = address.partition("@")
    return f"{name[:1]}***@{domain}"
