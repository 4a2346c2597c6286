"""Sending invitations: email over SMTP (aiosmtplib) and SMS through a Twilio-style API.

Each send either returns the provider's identifier (Message-ID, message SID) or raises
:class:`SendFailed` (final: the reason in words a person can act on) or
:class:`SendRetry` (temporary: the server said try later, nothing was sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib
import httpx

from clientlink.common.config import EmailConfig, SmsConfig

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
"""Awaited by a send just before the message's bytes leave (after any wait for a connection):
what happens after it may have delivered the message."""


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
        """Send one composed message; returns its Message-ID. ``leaving`` is awaited once
        a connection is ready, just before the message is handed over."""
        async with self._available:
            client = self._idle.pop() if self._idle else None
            try:
                if client is None or not client.is_connected:
                    client = await self._connect()
                if leaving is not None:
                    await leaving()
                await client.send_message(mail)
            except aiosmtplib.SMTPResponseException as exc:
                self._discard(client, keep=exc.code < 500 or exc.code == 550)
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
            except aiosmtplib.SMTPException as exc:
                self._discard(client, keep=False)
                # Cut off mid-conversation: whether it went out is unknown to us.
                raise SendUncertain(f"the mail server stopped answering: {exc}") from exc
            self._idle.append(client)
        return str(mail["Message-ID"])

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
        assert self._token is not None
        url = (
            f"{self._config.api_base}/2010-04-01/Accounts/{self._config.account_sid}"
            f"/Messages/{sid}.json"
        )
        async with httpx.AsyncClient(timeout=self._config.timeout_seconds) as http:
            response = await http.get(url, auth=(self._config.account_sid, self._token))
        response.raise_for_status()
        return str(response.json().get("status"))


def _twilio_error(response: httpx.Response) -> tuple[int | None, str | None]:
    try:
        body = response.json()
    except ValueError:
        return None, None
    return body.get("code"), body.get("message")
