"""What the account tests share: a real SMTP server in this process (aiosmtpd) that receives what the gateways
send, two gateway processes on a database of their own that send to it, and reading links and codes out of mails."""
from __future__ import annotations

import asyncio
import email
import re
import secrets
import time
from email import policy

import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller

from hapta.client import Client
from hapta.protocol.errors import HaptaError
from tests.conftest import PASSWORD, gateway_env
from tests.services import GatewayProcess, create_database, drop_database, free_port, next_loopback


class Inbox:
    """What the SMTP server received: (recipients, parsed message)."""

    def __init__(self) -> None:
        self.mails: list[tuple[list[str], email.message.EmailMessage]] = []
        self.taken: set[int] = set()

    async def handle_DATA(self, server, session, envelope):   # aiosmtpd's handler hook
        self.mails.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"

    async def to(self, address: str, timeout: float = 20.0) -> email.message.EmailMessage:
        deadline = time.monotonic() + timeout
        while True:
            for recipients, message in self.mails:
                if address in recipients:
                    return message
            assert time.monotonic() < deadline, f"no mail to {address} within {timeout} s"
            await asyncio.sleep(0.05)

    async def take(self, address: str, subject: str, timeout: float = 20.0) -> email.message.EmailMessage:
        """The oldest mail to `address` whose subject holds `subject` that no earlier take returned."""
        deadline = time.monotonic() + timeout
        while True:
            for number, (recipients, message) in enumerate(self.mails):
                if number not in self.taken and address in recipients and subject in message["Subject"]:
                    self.taken.add(number)
                    return message
            assert time.monotonic() < deadline, f"no mail {subject!r} to {address} within {timeout} s"
            await asyncio.sleep(0.05)

    def subjects(self, address: str) -> list[str]:
        return [message["Subject"] for recipients, message in self.mails if address in recipients]


@pytest.fixture(scope="module")
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield inbox, f"smtp://127.0.0.1:{controller.port}"
    controller.stop()


@pytest_asyncio.fixture(scope="module")
async def mail_database(pg_admin):
    """A database of its own: every gateway on a database sends its outbox, so the other tests' gateways (no
    SMTP_URL: files) must not be the ones to claim these mails."""
    dsn = await create_database(pg_admin)
    yield dsn
    await drop_database(pg_admin, dsn)


@pytest.fixture(scope="module")
def nodes(mail_database, smtp):
    _, url = smtp
    env = gateway_env(mail_database, SMTP_URL=url, HAPTA_PUBLIC_URL="https://app.example.com",
                      HAPTA_MAIL_FROM="Hapta Tests <tests@example.com>")
    processes = [GatewayProcess(env).start() for _ in range(2)]
    yield processes
    for process in processes:
        process.stop()
    for process in processes:
        assert "Traceback" not in process.log_text(), process.log_text()


@pytest_asyncio.fixture
async def connect(nodes):
    clients: list[Client] = []

    async def make(node: int = 0) -> Client:
        client = await Client.connect(nodes[node].url, local_addr=(next_loopback(), 0))
        clients.append(client)
        return client
    yield make
    for client in clients:
        await client.close()


def token_in(message: email.message.EmailMessage, action: str) -> str:
    text = message.get_body(preferencelist=("plain",)).get_content()
    found = re.search(rf"https://app\.example\.com/#{action}=(\S+)", text)
    assert found, text
    return found.group(1)


async def refused(coroutine) -> str:
    with pytest.raises(HaptaError) as error:
        await coroutine
    return error.value.code


async def register(client: Client) -> tuple[str, dict]:
    address = f"m{secrets.token_hex(5)}@example.com"
    session = await client.call("auth.register", {"email": address, "password": PASSWORD})
    return address, session


def code_in(message: email.message.EmailMessage) -> str:
    found = re.search(r"\b(\d{6})\b", message["Subject"])
    assert found, message["Subject"]
    return found.group(1)


