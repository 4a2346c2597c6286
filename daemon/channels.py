"""Sending invitations: email over SMTP (aiosmtplib) and SMS through a Twilio-style API.

Each send either returns the provider's identifier (Message-ID, message SID) or raises
:class:`SendFailed` (final: the reason in words a person can act on) or
:class:`SendRetry` (temporary: the server said try later, nothing was sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import email.utils
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from types import ModuleType
from typing import TYPE_CHECKING

from clientlink.common.config import EmailConfig, SmsConfig

if TYPE_CHECKING:
    import aiosmtplib
    import httpx


def _smtp() -> ModuleType:
    """aiosmtplib, imported when an email is first sent: a waiting daemon does without it."""
    import aiosmtplib

    return aiosmtplib


def _httpx() -> ModuleType:
    """httpx, imported when an SMS is first sent or checked."""
    import httpx

    return httpx


TWILIO_ERRORS = {
    21211: "the phone number is not a valid number",
    21214: "the phone number cannot be reached",
    21408: "SMS to this region is not enabled for the account",
    21602: "the message has no text",
    21606: "the sending number cannot send SMS",
    21608: "the trial account can only send to verified numbers",
    21610: "the client has unsubscribed from SMS (replied STOP)",
    21614: "the phone number is not a mobile and cannot receive SMS",
    21617: "the message is longer than 1,600 characters",
    20003: "the SMS account id or token is wrong",
}


class SendFailed(Exception):
    """The message was refused for good; ``str()`` says why."""


class SendRetry(Exception):
    """The server asked us to try later; nothing was sent."""

    def __init__(self, reason: str, after: float = 5.0) -> None:
        super().__init__(reason)
        self.after = after


Leaving = Callable[[], Awaitable[None]]
"""Awaited by a send just before the message's bytes leave (after any wait for a connection,
and for email once the server accepted sender and recipient, right before DATA): what
happens after it may have delivered the message."""


class SendUncertain(Exception):
    """The connection broke after the message was handed over: it may have been sent."""


@dataclass(frozen=True)
class OutgoingEmail:
    to: str
    subject: str
    body: str


class EmailChannel:
    """Email through the practice's SMTP server, over a few reused connections."""

    POOL_SIZE = 4

    def __init__(self, config: EmailConfig, password: str | None) -> None:
        self._config = config
        self._password = password
        self._idle: list[aiosmtplib.SMTP] = []
        self._available = asyncio.Semaphore(self.POOL_SIZE)

    def problem(self) -> str | None:
        """Why email cannot be sent, or None."""
        if not self._config.host or not self._config.from_address:
            return "email is not set up: set host and from_address under [email] in config.toml"
        if self._config.username and not self._password:
            return "the SMTP password is missing: run `clientlink channel set-secret email`"
        return None

    def compose(self, message: OutgoingEmail) -> EmailMessage:
        """The message with its headers; the policy refuses line breaks in any header."""
        mail = EmailMessage()
        mail["From"] = self._config.from_address
        mail["To"] = message.to
        mail["Subject"] = " ".join(message.subject.split())
        mail["Date"] = email.utils.formatdate(localtime=False)
        domain = self._config.from_address.rpartition("@")[2] or "clientlink.invalid"
        mail["Message-ID"] = email.utils.make_msgid(domain=domain)
        mail.set_content(message.body)
        return mail

    async def _connect(self) -> aiosmtplib.SMTP:
        aiosmtplib = _smtp()
        context = None
        if self._config.security != "none":
            context = ssl.create_default_context()
            if not self._config.verify_tls:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        client = aiosmtplib.SMTP(
            hostname=self._config.host,
            port=self._config.port,
            use_tls=self._config.security == "tls",
            start_tls=self._config.security == "starttls",
            tls_context=context,
            timeout=self._config.timeout_seconds,
        )
        await client.connect()
        if self._config.username:
            await client.login(self._config.username, self._password or "")
        return client

    async def send(self, mail: EmailMessage, leaving: Leaving | None = None) -> str:
        """Send one composed message; returns its Message-ID.

        ``leaving`` is awaited once the server has accepted the sender (MAIL) and the
        recipient (RCPT), just before DATA: only what fails after it can have delivered
        the message. A reused connection that breaks or says "try later" before then
        (the server closed it while it sat idle) is replaced by a fresh one at once; a
        fresh one that does the same raises :class:`SendRetry`: nothing was sent.
        """
        aiosmtplib = _smtp()
        async with self._available:
            reused = self._idle.pop() if self._idle else None
            if reused is not None and not reused.is_connected:
                reused.close()
                reused = None
            client = reused
            data_started = False
            try:
                if client is None:
                    client = await self._connect()
                try:
                    message = await self._envelope(client, mail)
                except aiosmtplib.SMTPException as exc:
                    if client is not reused or not _nothing_sent(exc):
                        raise
                    client.close()
                    client = None
                    client = await self._connect()
                    message = await self._envelope(client, mail)
                if leaving is not None:
                    await leaving()
                data_started = True
                await client.data(message)
            except aiosmtplib.SMTPResponseException as exc:
                # A reply is a definite answer: the message was not taken, even after DATA.
                await self._after_refusal(client, exc, before_data=not data_started)
                if exc.code == 535:
                    raise SendFailed("the mail server refused the username or password") from exc
                if 400 <= exc.code < 500:
                    raise SendRetry(
                        f"the mail server said try later ({exc.code} {exc.message})"
                    ) from exc
                raise SendFailed(f"the mail server refused it ({exc.code} {exc.message})") from exc
            except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPConnectTimeoutError) as exc:
                self._discard(client, keep=False)
                raise SendRetry(f"cannot reach the mail server: {exc}") from exc
            except aiosmtplib.SMTPNotSupported as exc:
                self._discard(client, keep=True)
                raise SendFailed(f"the mail server cannot take this message: {exc}") from exc
            except (aiosmtplib.SMTPException, OSError) as exc:
                self._discard(client, keep=False)
                if not data_started:
                    raise SendRetry(
                        f"the mail server broke off before the message was sent: {exc}"
                    ) from exc
                # Cut off mid-conversation: whether it went out is unknown to us.
                raise SendUncertain(f"the mail server stopped answering: {exc}") from exc
            except BaseException:
                # Cancelled, or ``leaving`` could not record the send: an envelope may be
                # open on this connection, so it serves no other message.
                self._discard(client, keep=False)
                raise
            self._idle.append(client)
        return str(mail["Message-ID"])

    async def _envelope(self, client: aiosmtplib.SMTP, mail: EmailMessage) -> bytes:
        """Open the message's envelope (MAIL, then RCPT); return the bytes DATA will carry.

        Raises what aiosmtplib raises: a refused sender or recipient, or a broken connection.
        """
        aiosmtplib = _smtp()
        sender = self._config.from_address
        recipients = [address for _, address in email.utils.getaddresses(mail.get_all("To", []))]
        if client.is_ehlo_or_helo_needed:
            await client.ehlo()
        options: list[str] = []
        utf8 = not (sender + "".join(recipients)).isascii()
        if utf8:
            if not client.supports_extension("smtputf8"):
                raise aiosmtplib.SMTPNotSupported(
                    "the address is not plain ASCII and the server does not offer SMTPUTF8"
                )
            options.append("SMTPUTF8")
        eight_bit = client.supports_extension("8bitmime")
        if eight_bit:
            options.append("BODY=8BITMIME")
        policy = (email.policy.SMTPUTF8 if utf8 else email.policy.SMTP).clone(
            cte_type="8bit" if eight_bit else "7bit"
        )
        message = mail.as_bytes(policy=policy)
        if client.supports_extension("size"):
            options.insert(0, f"SIZE={len(message)}")
        encoding = "utf-8" if utf8 else "ascii"
        await client.mail(sender, options=options, encoding=encoding)
        for recipient in recipients:
            await client.rcpt(recipient, encoding=encoding)
        return message

    async def _after_refusal(
        self,
        client: aiosmtplib.SMTP | None,
        exc: aiosmtplib.SMTPResponseException,
        *,
        before_data: bool,
    ) -> None:
        """A refused MAIL, RCPT or DATA leaves the envelope open: reset it to keep the
        connection for the next message, unless the server is going away or said try later
        (the next try starts on a fresh connection)."""
        aiosmtplib = _smtp()
        if client is None or not client.is_connected or exc.code == 421:
            self._discard(client, keep=False)
            return
        if 400 <= exc.code < 500 and before_data:
            self._discard(client, keep=False)
            return
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError):
            self._discard(client, keep=False)
            return
        self._discard(client, keep=exc.code < 500 or exc.code == 550)

    def _discard(self, client: aiosmtplib.SMTP | None, *, keep: bool) -> None:
        """After a refusal the connection may still serve; after a break it may not."""
        if client is None:
            return
        if keep and client.is_connected:
            self._idle.append(client)
        else:
            client.close()

    async def close(self) -> None:
        while self._idle:
            aiosmtplib = _smtp()
            client = self._idle.pop()
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()


class SmsChannel:
    """SMS through a Twilio-compatible Messages API."""

    def __init__(self, config: SmsConfig, token: str | None) -> None:
        self._config = config
        self._token = token

    def problem(self) -> str | None:
        if not self._config.account_sid or not self._config.from_number:
            return "SMS is not set up: set account_sid and from_number under [sms] in config.toml"
        if not self._token:
            return "the SMS auth token is missing: run `clientlink channel set-secret sms`"
        return None

    async def send(
        self,
        to: str,
        body: str,
        status_callback: str | None = None,
        leaving: Leaving | None = None,
    ) -> str:
        """Send one SMS; returns the message SID. ``leaving`` is awaited just before the
        request is made."""
        httpx = _httpx()
        assert self._token is not None
        url = (
            f"{self._config.api_base}/2010-04-01/Accounts/{self._config.account_sid}/Messages.json"
        )
        form = {"To": to, "From": self._config.from_number, "Body": body}
        if status_callback:
            form["StatusCallback"] = status_callback
        if leaving is not None:
            await leaving()
        try:
            async with httpx.AsyncClient(timeout=self._config.timeout_seconds) as http:
                response = await http.post(
                    url, data=form, auth=(self._config.account_sid, self._token)
                )
        except httpx.ConnectError as exc:
            raise SendRetry(f"cannot reach the SMS service: {exc}") from exc
        except httpx.HTTPError as exc:
            raise SendUncertain(f"the SMS service stopped answering: {exc}") from exc
        if response.status_code in (200, 201):
            return str(response.json()["sid"])
        code, message = _twilio_error(response)
        if response.status_code == 429 or code == 20429:
            after = float(response.headers.get("Retry-After") or 5)
            raise SendRetry("the SMS service is busy (too many requests)", after)
        if response.status_code >= 500:
            raise SendRetry(f"the SMS service failed (HTTP {response.status_code})")
        words = TWILIO_ERRORS.get(code or 0, message or f"HTTP {response.status_code}")
        raise SendFailed(f"SMS refused: {words} (error {code})")

    async def status(self, sid: str) -> str:
        """The message's current status (queued, sent, delivered, undelivered, failed)."""
        httpx = _httpx()
        assert self._token is not None
        url = (
            f"{self._config.api_base}/2010-04-01/Accounts/{self._config.account_sid}"
            f"/Messages/{sid}.json"
        )
        async with httpx.AsyncClient(timeout=self._config.timeout_seconds) as http:
            response = await http.get(url, auth=(self._config.account_sid, self._token))
        response.raise_for_status()
        return str(response.json().get("status"))


def _nothing_sent(exc: Exception) -> bool:
    """Whether a failure before DATA on a reused connection is worth a fresh connection:
    it broke, timed out, or the server said it is busy (4xx). A 5xx is the message's own."""
    aiosmtplib = _smtp()
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return 400 <= exc.code < 500
    return isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPTimeoutError)


def _twilio_error(response: httpx.Response) -> tuple[int | None, str | None]:
    try:
        body = response.json()
    except ValueError:
        return None, None
    return body.get("code"), body.get("message")
