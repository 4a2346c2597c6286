"""When an email invitation is ``sending``: only once the mail server took MAIL and RCPT.

The daemon keeps SMTP connections open between messages. A mail server closes one that sat
idle (or says it is busy) whenever it likes, and the daemon only learns so on its next
command. Nothing has left then: the message goes on a fresh connection, and ``uncertain``
stays for what broke after DATA began (``tests/test_invitations.py`` covers that one with
the sandbox's ``smtp_drop_after_data``).

The faults here come before DATA, which the sandbox's SMTP faults do not reach, so the
daemon talks to a mail server the test owns: aiosmtpd, served in the test's event loop.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from clientlink.common import protocol as p
from clientlink.common.paths import Paths
from tests.helpers import finished, on_the_clock
from tests.test_invitations import _email_settings

BUSY = "451 4.3.2 Too busy, try again later (test fault)"


class MailServer:
    """An SMTP server whose faults fire on a connection's second message, before DATA.

    ``fault`` is one of ``close_at_mail`` (the server closed the idle connection as the
    client spoke: no reply, just the end of the connection), ``busy_mail`` or ``busy_rcpt``
    (a 451 to MAIL or RCPT); ``fresh_busy_rcpt`` answers 451 to the RCPT of a
    connection's first message. Each fault fires ``times`` times.
    """

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.fault: str | None = None
        self.times = 1
        self.connections = 0
        self._delivered: dict[SMTP, int] = {}
        self._server: asyncio.Server | None = None
        self._sessions: list[SMTP] = []
        self.port = 0

    def _fires(self, server: SMTP, fault: str) -> bool:
        if self.fault != fault or self.times <= 0:
            return False
        if self._delivered.get(server, 0) < (0 if fault.startswith("fresh") else 1):
            return False
        self.times -= 1
        return True

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if self._fires(server, "close_at_mail"):
            assert server.transport is not None
            server.transport.close()
            await asyncio.get_running_loop().create_future()  # cancelled as it closes
        if self._fires(server, "busy_mail"):
            return BUSY
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if self._fires(server, "busy_rcpt") or self._fires(server, "fresh_busy_rcpt"):
            return BUSY
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        parsed = email.message_from_bytes(
            envelope.original_content or b"", policy=email.policy.default
        )
        assert isinstance(parsed, email.message.EmailMessage)
        self.messages.append(parsed)
        self._delivered[server] = self._delivered.get(server, 0) + 1
        return "250 2.0.0 OK: queued"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()

        def protocol() -> SMTP:
            self.connections += 1
            session = SMTP(self, hostname="mail.test", auth_require_tls=False, loop=loop)
            self._sessions.append(session)
            return session

        self._server = await loop.create_server(protocol, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for session in self._sessions:
            if session.transport is not None:
                session.transport.close()
        await self._server.wait_closed()


@pytest.fixture
async def mail_server() -> AsyncIterator[MailServer]:
    server = MailServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def home(home: Paths, mail_server: MailServer) -> Paths:
    """The usual home, its email going to the test's own server (plain, no login)."""
    _email_settings(home, host="127.0.0.1", port=mail_server.port, security="none", username="")
    return home


async def send_one(rpc: Any, client_id: int) -> p.Job:
    started = await rpc.call(p.INVITES_SEND, client_id=client_id, channel="email")
    return await finished(rpc, started.job_id, within=30)


async def invitation_states(rpc: Any) -> list[str]:
    return [item.state for item in (await rpc.call(p.INVITES_LIST)).items]


@pytest.mark.parametrize("fault", ["close_at_mail", "busy_mail", "busy_rcpt"])
async def test_a_reused_connection_failing_before_data_sends_on_a_fresh_one(
    practice, mail_server: MailServer, fault: str
) -> None:
    rpc = await practice.connect()
    first, second = practice.connected_ids[:2]
    assert (await send_one(rpc, first)).done == 1
    assert mail_server.connections == 1  # its connection now waits, idle, for the next one

    mail_server.fault = fault
    job = await send_one(rpc, second)

    assert mail_server.times == 0, "the fault fired"
    assert (job.done, job.failed, job.items[0].attempts) == (1, 0, 1)
    assert await invitation_states(rpc) == ["sent", "sent"]
    assert mail_server.connections == 2
    emails = [(await rpc.call(p.CLIENTS_GET, client_id=c)).email for c in (first, second)]
    assert [message["To"] for message in mail_server.messages] == emails


async def test_a_busy_answer_to_rcpt_on_a_fresh_connection_is_retried_never_uncertain(
    practice, mail_server: MailServer
) -> None:
    rpc = await practice.connect()
    mail_server.fault = "fresh_busy_rcpt"
    job = await on_the_clock(practice.clock, send_one(rpc, practice.connected_ids[0]))
    assert mail_server.times == 0, "the fault fired"
    assert (job.done, job.failed, job.items[0].attempts) == (1, 0, 2)
    assert await invitation_states(rpc) == ["sent"]
    assert len(mail_server.messages) == 1
