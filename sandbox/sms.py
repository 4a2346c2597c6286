"""The Twilio-like SMS gateway: validation, segments, status progression and the outbox.

This module holds state and rules only; `twilio_api.py` turns HTTP into calls on
`SmsGateway`. Messages move queued → sent → delivered on the sandbox clock (or end
`undelivered` for the reserved range below), and each change is POSTed to the message's
StatusCallback, signed like Twilio's.

Reserved recipients (outside the seed's `+6149157xxxx` block, so seeded clients always get
their messages):
- Australian landlines `+61 2/3/7/8 …` and Twilio's magic `+15005550009`: 21614, not SMS-capable.
- `+614915800xx` and Twilio's magic `+15005550004`: 21610, unsubscribed (replied STOP).
- `+614915809xx`: accepted, then `undelivered` with error 30003 (unreachable handset).
- Twilio's magic `+15005550001`: 21211, invalid number.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Any

from clientlink.sandbox.callbacks import Callback, CallbackSender, is_loopback_url
from clientlink.sandbox.clock import SandboxClock

TWILIO_ACCOUNT_SID = "AC5a4d0b0c1e1f2a3b4c5d6e7f8091a2b3"
TWILIO_AUTH_TOKEN = "sandbox-twilio-auth-token-0001"
API_VERSION = "2010-04-01"
MAX_BODY_CHARS = 1600

# When each status is reached, counted from the message's creation on the sandbox clock.
SENT_AFTER = timedelta(seconds=1)
DELIVERED_AFTER = timedelta(seconds=3)

E164 = re.compile(r"\+[1-9]\d{7,14}")
MESSAGING_SERVICE_SID = re.compile(r"MG[0-9a-f]{32}")
# An alphanumeric sender id (Australia allows them): up to 11 letters, digits and spaces.
ALPHANUMERIC_SENDER = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")
AU_LANDLINE = re.compile(r"\+61[2378]\d{8}")
UNSUBSCRIBED_PREFIX = "+614915800"
UNDELIVERED_PREFIX = "+614915809"
TWILIO_INVALID = "+15005550001"
TWILIO_UNSUBSCRIBED = "+15005550004"
TWILIO_NOT_SMS_CAPABLE = "+15005550009"
UNDELIVERED_ERROR = (30003, "Unreachable destination handset")

# GSM 03.38: the basic set is one septet each, the extension table two (escape + char).
GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = set("\f^{}\\[~]|€")


class SmsError(Exception):
    """A request Twilio refuses: HTTP status, Twilio error code and its message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def segment_count(body: str) -> tuple[int, str]:
    """How many SMS parts `body` takes and its encoding (`GSM-7` or `UCS-2`).

    One part holds 160 GSM-7 septets or 70 UCS-2 units; a concatenated part loses room to
    its header (153 and 67), and a part never splits an escape pair or a surrogate pair.
    """
    if all(char in GSM_BASIC or char in GSM_EXTENSION for char in body):
        units = [2 if char in GSM_EXTENSION else 1 for char in body]
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = [2 if ord(char) > 0xFFFF else 1 for char in body]
        single, multi, encoding = 70, 67, "UCS-2"
    if sum(units) <= single:
        return 1, encoding
    parts, used = 1, 0
    for size in units:
        if used + size > multi:
            parts, used = parts + 1, 0
        used += size
    return parts, encoding


def twilio_date(moment: datetime) -> str:
    """Twilio's RFC 2822 dates: `Thu, 24 Aug 2023 05:01:45 +0000`."""
    return format_datetime(moment.replace(microsecond=0))


def twilio_signature(auth_token: str, url: str, form: dict[str, str]) -> str:
    """`X-Twilio-Signature`: base64 HMAC-SHA1 over the URL and the sorted form pairs."""
    payload = url + "".join(key + form[key] for key in sorted(form))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


@dataclass
class SmsMessage:
    """One message the gateway accepted."""

    sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    created_at: datetime
    status_callback: str | None
    undeliverable: bool
    num_segments: int
    encoding: str
    status: str = "queued"
    updated_at: datetime | None = None
    sent_at: datetime | None = None
    error: tuple[int, str] | None = None
    history: list[dict[str, str]] = field(default_factory=list)

    @property
    def uri(self) -> str:
        """The message's path, relative to the Twilio API base (as Twilio gives it)."""
        return f"/{API_VERSION}/Accounts/{TWILIO_ACCOUNT_SID}/Messages/{self.sid}.json"

    def to_json(self) -> dict[str, Any]:
        """The message resource as Twilio's API returns it."""
        updated = self.updated_at or self.created_at
        return {
            "account_sid": TWILIO_ACCOUNT_SID,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": twilio_date(self.created_at),
            "date_sent": twilio_date(self.sent_at) if self.sent_at else None,
            "date_updated": twilio_date(updated),
            "direction": "outbound-api",
            "error_code": self.error[0] if self.error else None,
            "error_message": self.error[1] if self.error else None,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": "0",
            "num_segments": str(self.num_segments),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": self.uri.removesuffix(".json") + "/Media.json"},
            "to": self.to,
            "uri": self.uri,
        }


class SmsGateway:
    """Accepts messages, moves them along on the sandbox clock, and reports each change."""

    def __init__(self, clock: SandboxClock, callbacks: CallbackSender) -> None:
        self._clock = clock
        self._callbacks = callbacks
        self.messages: dict[str, SmsMessage] = {}
        self.unsubscribed: set[str] = {TWILIO_UNSUBSCRIBED}

    def create(self, form: dict[str, str]) -> SmsMessage:
        """Validate a Messages.json form like Twilio and queue the message, or raise SmsError."""
        to = form.get("To", "").strip()
        if not to:
            raise SmsError(400, 21604, "A 'To' phone number is required.")
        if not E164.fullmatch(to) or to == TWILIO_INVALID:
            raise SmsError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        sender = form.get("From", "").strip() or None
        service = form.get("MessagingServiceSid", "").strip() or None
        if sender is None and service is None:
            raise SmsError(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required.")
        if sender is not None and not (
            E164.fullmatch(sender) or ALPHANUMERIC_SENDER.fullmatch(sender)
        ):
            raise SmsError(400, 21212, f"The 'From' number {sender} is not a valid phone number.")
        if service is not None and not MESSAGING_SERVICE_SID.fullmatch(service):
            raise SmsError(400, 21701, f"The Messaging Service Sid {service} is invalid.")
        body = form.get("Body", "")
        if not body:
            raise SmsError(400, 21602, "Message body is required.")
        if len(body) > MAX_BODY_CHARS:
            raise SmsError(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        if AU_LANDLINE.fullmatch(to) or to == TWILIO_NOT_SMS_CAPABLE:
            raise SmsError(400, 21614, f"The 'To' number {to} is not a valid mobile number.")
        if to in self.unsubscribed or to.startswith(UNSUBSCRIBED_PREFIX):
            raise SmsError(400, 21610, "Attempt to send to unsubscribed recipient")
        callback = form.get("StatusCallback", "").strip() or None
        if callback is not None and not is_loopback_url(callback):
            raise SmsError(400, 21609, f"The StatusCallback URL {callback} is not a loopback URL.")
        segments, encoding = segment_count(body)
        message = SmsMessage(
            sid="SM" + secrets.token_hex(16),
            to=to,
            from_=sender,
            messaging_service_sid=service,
            body=body,
            created_at=self._clock.now(),
            status_callback=callback,
            undeliverable=to.startswith(UNDELIVERED_PREFIX),
            num_segments=segments,
            encoding=encoding,
            # With a Messaging Service (and no From) Twilio first says `accepted`.
            status="accepted" if sender is None else "queued",
        )
        self.messages[message.sid] = message
        self._record(message, message.status, message.created_at)
        return message

    def tick(self) -> None:
        """Move every message to the status it has reached by now on the sandbox clock."""
        now = self._clock.now()
        for message in self.messages.values():
            age = now - message.created_at
            if message.status in ("accepted", "queued") and age >= SENT_AFTER:
                if message.status == "accepted":
                    self._record(message, "queued", message.created_at + SENT_AFTER)
                message.sent_at = message.created_at + SENT_AFTER
                self._record(message, "sent", message.sent_at)
            if message.status == "sent" and age >= DELIVERED_AFTER:
                at = message.created_at + DELIVERED_AFTER
                if message.undeliverable:
                    message.error = UNDELIVERED_ERROR
                    self._record(message, "undelivered", at)
                else:
                    self._record(message, "delivered", at)

    def _record(self, message: SmsMessage, status: str, at: datetime) -> None:
        message.status = status
        message.updated_at = at
        message.history.append({"status": status, "at": at.isoformat()})
        if message.status_callback is not None:
            self._callbacks.send(self._status_callback(message))

    def _status_callback(self, message: SmsMessage) -> Callback:
        assert message.status_callback is not None
        form = {
            "AccountSid": TWILIO_ACCOUNT_SID,
            "ApiVersion": API_VERSION,
            "From": message.from_ or "",
            "MessageSid": message.sid,
            "MessageStatus": message.status,
            "SmsSid": message.sid,
            "SmsStatus": message.status,
            "To": message.to,
        }
        if message.messaging_service_sid:
            form["MessagingServiceSid"] = message.messaging_service_sid
        if message.error is not None:
            form["ErrorCode"] = str(message.error[0])
        signature = twilio_signature(TWILIO_AUTH_TOKEN, message.status_callback, form)
        return Callback(
            message.status_callback, form=form, headers={"X-Twilio-Signature": signature}
        )

    def outbox_json(self) -> list[dict[str, Any]]:
        """Every message, oldest first, as the outbox shows it."""
        return [
            message.to_json()
            | {
                "channel": "sms",
                "received_at": message.created_at.isoformat(),
                "encoding": message.encoding,
                "status_callback": message.status_callback,
                "history": list(message.history),
            }
            for message in sorted(self.messages.values(), key=lambda m: m.created_at)
        ]

    def clear(self) -> None:
        """Forget every message (the unsubscribed list stays)."""
        self.messages.clear()
