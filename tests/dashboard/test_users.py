"""The Users page end to end (dashboard/test/users.test.ts, vitest): Chromium signs in at /_/ of a real `hapta serve`
whose SMTP_URL is a real SMTP server started here (aiosmtpd), and every account action from the page reaches the
user's client (a JS client in Node): mails with links that work, revoked sessions, a deleted account. Users are
named by email or username on the Users, Live and Records pages, the id on hover. The JS side reads the mails this
server received from MAIL_DIR (one JSON file each: to, subject, text). Its screenshot (users.png) goes to this
test's temp folder (DASHBOARD_SHOTS=docs/dashboard with `npm test` in dashboard/ makes the committed one; start an
SMTP server and set SMTP_URL and MAIL_DIR for it then, as here)."""
from __future__ import annotations

import email
import json
from email import policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from tests.dashboard.conftest import in_chromium, screenshots
from tests.services import free_port


class MailDrop:
    """An SMTP handler that writes each mail it receives to `folder` as JSON (the text part decoded), for the
    Node side to read."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    async def handle_DATA(self, server, session, envelope):   # aiosmtpd's handler hook
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        text = message.get_body(preferencelist=("plain",)).get_content()
        self.count += 1
        written = {"to": list(envelope.rcpt_tos), "subject": str(message["Subject"]), "text": text}
        partial = self.folder / f"{self.count:04d}.partial"
        partial.write_text(json.dumps(written))
        partial.rename(self.folder / f"{self.count:04d}.json")   # whole or not there: the reader polls
        return "250 OK"


@pytest.fixture
def smtp(tmp_path):
    folder = tmp_path / "mail"
    folder.mkdir()
    handler = MailDrop(folder)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield f"smtp://127.0.0.1:{controller.port}", folder, handler
    controller.stop()


async def test_the_users_page_in_chromium(npm, pg_admin, tmp_path, smtp):
    smtp_url, mail_dir, handler = smtp
    shots = tmp_path / "shots"
    output = await in_chromium(npm, pg_admin, "test/users", shots,
                               env={"SMTP_URL": smtp_url, "MAIL_DIR": str(mail_dir)})
    assert handler.count >= 4, handler.count   # invite, verification, reset, factor removed: through SMTP
    assert screenshots(shots) == ["users.png"]
    print(output[-400:])
