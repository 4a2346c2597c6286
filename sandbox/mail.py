"""The sandbox's SMTP submission server and its outbox.

aiosmtpd's `SMTP` protocol is served with `loop.create_server` inside the sandbox's own
event loop (no `Controller` thread), so tests and `python -m clientlink.sandbox` run it
in-process next to the HTTP side. It demands AUTH PLAIN or LOGIN with `SMTP_USER` /
`SMTP_PASSWORD` (over plain TCP too: it listens on loopback only) and, unless told otherwise,
offers STARTTLS with a self-signed certificate made at start. Clients must trust that
certificate (`SandboxSmtp.certificate_pem`, also in `/_sandbox/info`) or skip verification;
the daemon's sandbox config uses `tls = "starttls"` with `verify = false`.

Every accepted message is parsed and kept in `MailOutbox`; fault rules of the `smtp_*`
kinds (see `faults.py`) refuse messages or drop the connection after DATA.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import itertools
import logging
import re
import secrets
import ssl
import tempfile
import warnings
from email.message import EmailMessage
from pathlib import Path
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from clientlink.sandbox.clock import SandboxClock
from clientlink.sandbox.faults import FaultInjector

# aiosmtpd logs every session at INFO and warns on each connection that AUTH is allowed
# without TLS; on loopback that is by design, so only its errors are worth showing.
logging.getLogger("mail.log").setLevel(logging.ERROR)

SMTP_USER = "smtp-user"
SMTP_PASSWORD = "smtp-sandbox-password"
SMTP_HOSTNAME = "smtp.sandbox.clientlink.test"

SMTP_REPLIES = {
    421: "421 4.3.2 Service not available, closing transmission channel (sandbox fault)",
    450: "450 4.2.1 Mailbox busy, try again later (sandbox fault)",
    451: "451 4.3.0 Local error in processing, try again later (sandbox fault)",
    452: "452 4.3.1 Insufficient system storage (sandbox fault)",
    550: "550 5.1.1 Mailbox unavailable (sandbox fault)",
    552: "552 5.3.4 Message size exceeds fixed maximum (sandbox fault)",
    553: "553 5.1.3 Mailbox name not allowed (sandbox fault)",
    554: "554 5.7.1 Message rejected (sandbox fault)",
}


class MailOutbox:
    """Every message the SMTP server accepted, parsed, oldest first."""

    def __init__(self, clock: SandboxClock) -> None:
        self._clock = clock
        self._ids = itertools.count(1)
        self.messages: list[dict[str, Any]] = []

    def add(self, envelope: Envelope, session: Session) -> dict[str, Any]:
        """Parse and keep one accepted message; return its outbox entry."""
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        headers: dict[str, str] = {}
        for name, value in parsed.items():
            headers.setdefault(name, str(value))
        entry = {
            "id": f"mail-{next(self._ids)}",
            "channel": "email",
            "received_at": self._clock.now().isoformat(),
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "message_id": str(parsed.get("Message-ID", "")).strip() or None,
            "subject": str(parsed.get("Subject", "")).strip(),  # unfolded, as a reader shows it
            "to": str(parsed.get("To", "")),
            "from": str(parsed.get("From", "")),
            "text": _body_of(parsed, "plain"),
            "html": _body_of(parsed, "html"),
            "headers": headers,
            "authenticated_as": login.decode() if login is not None else None,
            "tls": session.ssl is not None,
            "size": len(raw),
        }
        self.messages.append(entry)
        return entry

    def clear(self) -> None:
        """Forget every message."""
        self.messages.clear()


def _body_of(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None:
        return None
    content = part.get_content()
    return content if isinstance(content, str) else None


class _Handler:
    """aiosmtpd hooks: the fault rules decide each message's fate, the outbox keeps it."""

    def __init__(self, outbox: MailOutbox, faults: FaultInjector, calls: Any) -> None:
        self._outbox = outbox
        self._faults = faults
        self._calls = calls

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        """Advertise what a submission server offers besides aiosmtpd's own extensions.

        aiosmtpd reads commands one at a time from its stream, so pipelined commands
        (RFC 2920) are answered in order; every reply carries an RFC 3463 code.
        """
        session.host_name = hostname
        *head, last = responses
        return [*head, "250-PIPELINING", "250-ENHANCEDSTATUSCODES", last]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        rule = self._faults.pick("smtp", "smtp")
        if rule is None:
            self._outbox.add(envelope, session)
            self._calls["smtp.accepted"] += 1
            return "250 2.0.0 OK: queued as " + secrets.token_hex(6).upper()
        if rule.kind == "smtp_drop_after_data":
            # Kept, but the sender never hears the 250: it cannot know the message went.
            self._outbox.add(envelope, session)
            self._calls["smtp.dropped_after_data"] += 1
            assert server.transport is not None
            server.transport.abort()
            # connection_lost cancels this task; nothing more is said on the wire.
            await asyncio.get_running_loop().create_future()
        self._calls["smtp.refused"] += 1
        assert rule.smtp_code is not None
        if rule.smtp_code == 421:
            # 421 means the server is closing the channel; close after the reply is written.
            transport = server.transport
            assert transport is not None
            asyncio.get_running_loop().call_soon(transport.close)
        return SMTP_REPLIES[rule.smtp_code]


def _authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    good = (
        isinstance(auth_data, LoginPassword)
        and secrets.compare_digest(auth_data.login, SMTP_USER.encode())
        and secrets.compare_digest(auth_data.password, SMTP_PASSWORD.encode())
    )
    # handled=False on failure lets aiosmtpd answer 535 itself.
    return AuthResult(success=good, handled=good, auth_data=auth_data if good else None)


def self_signed_tls(host: str) -> tuple[ssl.SSLContext, str]:
    """A server TLS context with a fresh self-signed certificate for `host`, and its PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SMTP_HOSTNAME)])
    now = dt.datetime.now(dt.UTC)
    alt_names: list[x509.GeneralName] = [
        x509.DNSName(SMTP_HOSTNAME),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    try:
        alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        alt_names.append(x509.DNSName(host))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(list(dict.fromkeys(alt_names))), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # load_cert_chain reads files only; keep them just long enough to load.
    with tempfile.TemporaryDirectory(prefix="clientlink-smtp-") as folder:
        cert_file, key_file = Path(folder, "cert.pem"), Path(folder, "key.pem")
        cert_file.write_bytes(cert_pem)
        key_file.write_bytes(key_pem)
        context.load_cert_chain(cert_file, key_file)
    return context, cert_pem.decode()


_ENHANCED = re.compile(rb"^[245]\.\d{1,3}\.\d{1,3}( |$)")


def with_enhanced_code(reply: bytes) -> bytes:
    """Add an RFC 3463 status code (`X.0.0`) to a 2xx/4xx/5xx reply that lacks one."""
    code, separator, text = reply[:3], reply[3:4], reply[4:]
    if code[:1] not in (b"2", b"4", b"5") or not code.isdigit() or _ENHANCED.match(text):
        return reply
    return code + (separator or b" ") + code[:1] + b".0.0 " + text


class _TrackedSMTP(SMTP):
    """aiosmtpd's protocol, remembering open connections so stop() can close them.

    Replies get RFC 3463 enhanced codes (ENHANCEDSTATUSCODES is advertised), except the
    greeting and the EHLO/HELO answers, which RFC 2034 §3 leaves without them.
    """

    def __init__(self, live: set[_TrackedSMTP], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._live = live
        self._greeted = False
        self._in_hello = False

    async def push(self, status: AnyStr) -> None:
        raw = status.encode("utf-8") if isinstance(status, str) else status
        if self._greeted and not self._in_hello:
            raw = with_enhanced_code(raw)
        self._greeted = True
        await super().push(raw)

    async def smtp_EHLO(self, hostname: str) -> None:
        self._in_hello = True
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._in_hello = False

    async def smtp_HELO(self, hostname: str) -> None:
        self._in_hello = True
        try:
            await super().smtp_HELO(hostname)
        finally:
            self._in_hello = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._live.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._live.discard(self)
        super().connection_lost(error)


class SandboxSmtp:
    """The SMTP server on `host:port` (0 picks a free port), in the running event loop."""

    def __init__(
        self,
        outbox: MailOutbox,
        faults: FaultInjector,
        calls: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        starttls: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self._handler = _Handler(outbox, faults, calls)
        self._starttls = starttls
        self.certificate_pem: str | None = None
        self._server: asyncio.Server | None = None
        self._live: set[_TrackedSMTP] = set()

    async def start(self) -> None:
        """Bind and start accepting; raises OSError when the port is taken."""
        loop = asyncio.get_running_loop()
        tls_context = None
        if self._starttls:
            tls_context, self.certificate_pem = await asyncio.to_thread(self_signed_tls, self.host)

        def protocol() -> SMTP:
            with warnings.catch_warnings():
                # aiosmtpd warns about AUTH without TLS (and logs it for every connection);
                # this server is loopback-only, so the warning is noise.
                warnings.simplefilter("ignore")
                return _TrackedSMTP(
                    self._live,
                    self._handler,
                    hostname=SMTP_HOSTNAME,
                    ident="clientlink sandbox ESMTP",
                    tls_context=tls_context,
                    authenticator=_authenticator,
                    auth_required=True,
                    # With STARTTLS on offer, AUTH only after it (as on a real submission
                    # port); a server started without TLS takes AUTH in the clear.
                    auth_require_tls=tls_context is not None,
                    enable_SMTPUTF8=True,
                    loop=loop,
                )

        self._server = await loop.create_server(protocol, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop accepting, close open sessions, release the port."""
        if self._server is None:
            return
        self._server.close()
        for session in list(self._live):
            if session.transport is not None:
                session.transport.close()
        await self._server.wait_closed()
        self._server = None
