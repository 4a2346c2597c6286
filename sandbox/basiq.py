"""The Basiq-like bank-feed provider: institutions, tokens, users, auth links, connections.

This module holds state and rules only; `basiq_api.py` turns HTTP into calls on
`BasiqProvider`. Rules follow Basiq's documentation: tokens live 3600 s; an auth link is
single-use, valid for 7 days and only a user's newest link works; a connection is
`active`, `invalid` (the bank needs the client again; reconnecting restores `active`) or
`pending`. Our extension: an auth link names the institutions to pre-select, which is how
an invitation asks for exactly the banks a client must add.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from clientlink.sandbox.callbacks import Callback, CallbackSender, is_loopback_url
from clientlink.sandbox.clock import SandboxClock

BASIQ_API_KEY = "Y2xpZW50bGluay1zYW5kYm94OnNhbmRib3gtYmFzaXEtYXBpLWtleQ=="
BASIQ_VERSION = "3.0"
TOKEN_LIFETIME = timedelta(seconds=3600)
AUTH_LINK_LIFETIME = timedelta(days=7)
# How long a client's consent to share their bank data lasts before `action=extend`.
CONSENT_LIFETIME = timedelta(days=365)
# Consent UI actions (provider-facts §4): none (first consent or re-consent), manage,
# connect (add institutions), update, extend (an expiring consent).
CONSENT_ACTIONS = frozenset({"", "null", "manage", "connect", "update", "extend"})
# What a client types at the sandbox's bank sign-in, for every bank.
BANK_LOGIN = "demo"
BANK_PASSWORD = "demo"
DEFAULT_PRACTICE = "Your accounting practice"

EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
MOBILE = re.compile(r"\+?[0-9]{8,15}")

# (id, name, shortName, institutionType, tier). AU00000 is Basiq's own test bank, Hooli.
INSTITUTIONS: tuple[tuple[str, str, str, str, str], ...] = (
    ("AU00000", "Hooli", "Hooli", "Test Bank", "4"),
    ("AU00101", "Commonwealth Bank of Australia", "CommBank", "Bank", "1"),
    ("AU00201", "Westpac Banking Corporation", "Westpac", "Bank", "1"),
    ("AU00301", "Australia and New Zealand Banking Group", "ANZ", "Bank", "1"),
    ("AU00401", "National Australia Bank", "NAB", "Bank", "1"),
    ("AU00501", "St.George Bank", "St.George", "Bank", "2"),
    ("AU00502", "Bank of Melbourne", "Bank of Melbourne", "Bank", "2"),
    ("AU00503", "BankSA", "BankSA", "Bank", "2"),
    ("AU00601", "Bankwest", "Bankwest", "Bank", "2"),
    ("AU00701", "ING Australia", "ING", "Bank", "2"),
    ("AU00801", "Macquarie Bank", "Macquarie", "Bank", "2"),
    ("AU00901", "Suncorp Bank", "Suncorp", "Bank", "2"),
    ("AU01001", "Bendigo Bank", "Bendigo", "Bank", "2"),
    ("AU01101", "Bank of Queensland", "BOQ", "Bank", "2"),
    ("AU01201", "AMP Bank", "AMP", "Bank", "2"),
    ("AU01301", "ME Bank", "ME", "Bank", "2"),
    ("AU01401", "HSBC Bank Australia", "HSBC", "Bank", "2"),
    ("AU01501", "Citibank Australia", "Citi", "Bank", "2"),
    ("AU01601", "Ubank", "Ubank", "Bank", "2"),
    ("AU01701", "Judo Bank", "Judo", "Bank", "3"),
    ("AU01801", "Rabobank Australia", "Rabobank", "Bank", "3"),
    ("AU01901", "Great Southern Bank", "Great Southern", "Bank", "3"),
    ("AU02001", "Heritage Bank", "Heritage", "Bank", "3"),
    ("AU02101", "Newcastle Permanent", "Newcastle Permanent", "Building Society", "3"),
    ("AU02201", "Teachers Mutual Bank", "Teachers Mutual", "Mutual Bank", "3"),
    ("AU02301", "Beyond Bank Australia", "Beyond Bank", "Mutual Bank", "3"),
    ("AU02401", "People's Choice Credit Union", "People's Choice", "Credit Union", "3"),
    ("AU02501", "Bank Australia", "Bank Australia", "Mutual Bank", "3"),
    ("AU02601", "IMB Bank", "IMB", "Mutual Bank", "3"),
    ("AU02701", "MyState Bank", "MyState", "Bank", "3"),
    ("AU02801", "Defence Bank", "Defence Bank", "Mutual Bank", "3"),
    ("AU02901", "Police Bank", "Police Bank", "Mutual Bank", "3"),
    ("AU03001", "Auswide Bank", "Auswide", "Bank", "3"),
    ("AU03101", "American Express Australia", "Amex", "Credit Card", "2"),
)


class BasiqError(Exception):
    """A refusal in Basiq's terms: HTTP status, error code slug and a sentence."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


class LinkUnusable(Exception):
    """An auth link that cannot be used: `reason` is expired, used, superseded or unknown."""

    def __init__(self, reason: str, link: AuthLink | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.link = link


def basiq_time(moment: datetime) -> str:
    """Basiq's timestamps: ISO 8601 UTC to the second, with a Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class AccessToken:
    """A bearer token: SERVER_ACCESS, or CLIENT_ACCESS bound to one user (or none yet)."""

    value: str
    scope: str
    user_id: str | None
    expires_at: datetime


@dataclass
class BasiqUser:
    """One invited client."""

    id: str
    email: str | None
    mobile: str | None
    first_name: str | None
    last_name: str | None
    business_name: str | None
    created_at: datetime
    current_link_id: str | None = None


@dataclass
class AuthLink:
    """A consent link; `opaque` is the secret in its URL."""

    id: str
    user_id: str
    opaque: str
    institutions: list[str]
    practice: str
    created_at: datetime
    expires_at: datetime
    opened_at: datetime | None = None
    used_at: datetime | None = None
    deleted: bool = False


@dataclass
class BankConnection:
    """A user's connection to one institution."""

    id: str
    user_id: str
    institution_id: str
    created_at: datetime
    last_used: datetime
    status: str = "active"
    history: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Consent:
    """A user's consent to share their bank data with the practice (one per user)."""

    id: str
    user_id: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None


@dataclass
class Event:
    """Something that happened to an entity, as `GET /events/{id}` shows it."""

    id: str
    entity: str
    event_type: str
    user_id: str
    entity_id: str
    created_at: datetime

    @property
    def type_id(self) -> str:
        """`entity.eventType`, e.g. `connection.created` (a webhook's `eventTypeId`)."""
        return f"{self.entity}.{self.event_type}"


def webhook_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`
    under the secret's key (the Standard Webhooks scheme Basiq's webhooks use)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


class BasiqProvider:
    """The emulated Basiq, all in memory."""

    def __init__(self, clock: SandboxClock, callbacks: CallbackSender) -> None:
        self.clock = clock
        self._callbacks = callbacks
        self.institutions = {row[0]: row for row in INSTITUTIONS}
        self.tokens: dict[str, AccessToken] = {}
        self.users: dict[str, BasiqUser] = {}
        self.links: dict[str, AuthLink] = {}
        self.connections: dict[str, BankConnection] = {}
        self.webhooks: list[str] = []
        self.consents: dict[str, Consent] = {}
        self.events: dict[str, Event] = {}
        # Signs every webhook message; shown by the admin API so receivers can verify.
        self.webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        # The API base webhook links point at (set from the first API request's address).
        self.api_base = ""

    # -- tokens -------------------------------------------------------------------------

    def issue_token(self, api_key: str, scope: str, user_id: str | None) -> AccessToken:
        """`POST /token` with `Authorization: Basic <API_KEY>`."""
        if not secrets.compare_digest(api_key, BASIQ_API_KEY):
            raise BasiqError(401, "unauthorized-access", "Invalid API key.")
        if scope not in ("SERVER_ACCESS", "CLIENT_ACCESS"):
            raise BasiqError(
                400, "parameter-not-valid", "scope must be SERVER_ACCESS or CLIENT_ACCESS."
            )
        if scope == "SERVER_ACCESS":
            user_id = None
        elif user_id is not None and user_id not in self.users:
            raise BasiqError(404, "resource-not-found", f"User {user_id} was not found.")
        token = AccessToken(
            value=secrets.token_urlsafe(48),
            scope=scope,
            user_id=user_id,
            expires_at=self.clock.now() + TOKEN_LIFETIME,
        )
        self.tokens[token.value] = token
        return token

    def authenticate(self, authorization: str | None, user_id: str | None = None) -> AccessToken:
        """Resolve `Authorization: Bearer`; a client token reaches only its own user."""
        scheme, _, value = (authorization or "").partition(" ")
        token = self.tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if token is None or self.clock.now() >= token.expires_at:
            raise BasiqError(
                401, "unauthorized-access", "The access token is invalid or has expired."
            )
        if token.scope == "CLIENT_ACCESS" and (user_id is None or token.user_id != user_id):
            raise BasiqError(403, "forbidden-access", "A CLIENT_ACCESS token cannot do this.")
        return token

    # -- users --------------------------------------------------------------------------

    def create_user(self, data: dict[str, Any]) -> BasiqUser:
        """`POST /users {email?, mobile?, firstName?, lastName?, businessName?}`."""
        email, mobile = data.get("email"), data.get("mobile")
        if not email and not mobile:
            raise BasiqError(400, "parameter-not-supplied", "email or mobile is required.")
        if email and not (isinstance(email, str) and EMAIL.fullmatch(email)):
            raise BasiqError(400, "parameter-not-valid", f"email {email!r} is not valid.")
        if mobile and not (isinstance(mobile, str) and MOBILE.fullmatch(mobile)):
            raise BasiqError(400, "parameter-not-valid", f"mobile {mobile!r} is not valid.")
        user = BasiqUser(
            id=str(uuid.uuid4()),
            email=email or None,
            mobile=mobile or None,
            first_name=data.get("firstName"),
            last_name=data.get("lastName"),
            business_name=data.get("businessName"),
            created_at=self.clock.now(),
        )
        self.users[user.id] = user
        return user

    def user(self, user_id: str) -> BasiqUser:
        """The user or a 404."""
        found = self.users.get(user_id)
        if found is None:
            raise BasiqError(404, "resource-not-found", f"User {user_id} was not found.")
        return found

    # -- auth links ---------------------------------------------------------------------

    def create_auth_link(
        self, user_id: str, institutions: list[str], practice: str | None = None
    ) -> AuthLink:
        """A new link for `user_id`; every older link of the user stops working."""
        user = self.user(user_id)
        self._check_institutions(institutions)
        now = self.clock.now()
        link = AuthLink(
            id=secrets.token_hex(8),
            user_id=user.id,
            opaque=secrets.token_urlsafe(24),
            institutions=list(dict.fromkeys(institutions)),
            practice=practice or DEFAULT_PRACTICE,
            created_at=now,
            expires_at=now + AUTH_LINK_LIFETIME,
        )
        self.links[link.id] = link
        user.current_link_id = link.id
        return link

    def _check_institutions(self, institutions: list[str]) -> None:
        unknown = [inst for inst in institutions if inst not in self.institutions]
        if unknown:
            detail = f"Unknown institutions: {', '.join(unknown)}."
            raise BasiqError(400, "institution-not-supported", detail)

    def current_link(self, user_id: str) -> AuthLink:
        """The user's newest link, or a 404 when there is none (or it was deleted)."""
        user = self.user(user_id)
        link = self.links.get(user.current_link_id or "")
        if link is None or link.deleted:
            raise BasiqError(404, "resource-not-found", "This user has no auth link.")
        return link

    def delete_link(self, user_id: str) -> None:
        """`DELETE /users/{id}/auth_link`: the current link stops working."""
        self.current_link(user_id).deleted = True

    def link_status(self, link: AuthLink) -> str:
        """`active`, `used`, `expired`, `superseded` or `deleted`."""
        if link.used_at is not None:
            return "used"
        if link.deleted:
            return "deleted"
        if self.users[link.user_id].current_link_id != link.id:
            return "superseded"
        if self.clock.now() >= link.expires_at:
            return "expired"
        return "active"

    def open_link(self, opaque: str) -> AuthLink:
        """A person opened the link: record it the first time; raise LinkUnusable if dead."""
        link = next((lnk for lnk in self.links.values() if lnk.opaque == opaque), None)
        if link is None:
            raise LinkUnusable("unknown")
        status = self.link_status(link)
        if status != "active":
            raise LinkUnusable(status, link)
        if link.opened_at is None:
            link.opened_at = self.clock.now()
        return link

    def complete_consent(self, opaque: str, institutions: list[str]) -> list[BankConnection]:
        """Connect `institutions` for the link's user and use the link up."""
        link = self.open_link(opaque)
        made = self.connect_banks(link.user_id, institutions)
        link.used_at = self.clock.now()
        return made

    def connect_banks(self, user_id: str, institutions: list[str]) -> list[BankConnection]:
        """The user consents and connects `institutions` (all or none)."""
        if not institutions:
            raise BasiqError(400, "parameter-not-supplied", "Choose at least one bank.")
        self._check_institutions(institutions)
        now = self.clock.now()
        self._record_consent(user_id, now)
        return [self._connect(user_id, inst, now) for inst in dict.fromkeys(institutions)]

    def client_user(self, token_value: str) -> str:
        """The user a CLIENT_ACCESS token (the Consent UI's `token`) is bound to."""
        token = self.tokens.get(token_value)
        if token is None or self.clock.now() >= token.expires_at:
            raise LinkUnusable("expired" if token is not None else "unknown")
        if token.scope != "CLIENT_ACCESS" or token.user_id is None:
            raise LinkUnusable("unknown")
        return token.user_id

    # -- consents -----------------------------------------------------------------------

    def _record_consent(self, user_id: str, now: datetime) -> Consent:
        consent = next((c for c in self.consents.values() if c.user_id == user_id), None)
        if consent is None or consent.revoked_at is not None:
            consent = Consent(str(uuid.uuid4()), user_id, now, now, now + CONSENT_LIFETIME)
            self.consents[consent.id] = consent
            self._emit_event("consent", "created", user_id, consent.id)
        else:
            consent.updated_at = now
            consent.expires_at = now + CONSENT_LIFETIME
            self._emit_event("consent", "updated", user_id, consent.id)
        return consent

    def consents_of(self, user_id: str) -> list[Consent]:
        """The user's consents, oldest first."""
        self.user(user_id)
        found = [c for c in self.consents.values() if c.user_id == user_id]
        return sorted(found, key=lambda consent: consent.created_at)

    def consent_json(self, consent: Consent) -> dict[str, Any]:
        """A consent as `GET /users/{id}/consents` lists it."""
        now = self.clock.now()
        if consent.revoked_at is not None:
            status = "revoked"
        elif now >= consent.expires_at:
            status = "expired"
        else:
            status = "active"
        return {
            "type": "consent",
            "id": consent.id,
            "created": basiq_time(consent.created_at),
            "updated": basiq_time(consent.updated_at),
            "expiryDate": basiq_time(consent.expires_at),
            "origin": "user",
            "status": status,
            "purpose": {
                "primary": {
                    "title": "Bank feeds for your accountant",
                    "description": "Your accountant reads the transactions of the accounts "
                    "you connect.",
                }
            },
            "data": {
                "retainData": False,
                "initialRetrievalDays": 365,
                "permissions": [
                    {
                        "scope": "ACCOUNTS",
                        "required": True,
                        "entity": "ACCOUNTS",
                        "purpose": "To show your accountant the accounts you connect.",
                    },
                    {
                        "scope": "TRANSACTIONS",
                        "required": True,
                        "entity": "TRANSACTIONS",
                        "purpose": "To feed your transactions into your books.",
                    },
                ],
            },
            "revoked": basiq_time(consent.revoked_at) if consent.revoked_at else None,
        }

    # -- connections --------------------------------------------------------------------

    def _connect(self, user_id: str, institution_id: str, now: datetime) -> BankConnection:
        existing = next(
            (
                conn
                for conn in self.connections.values()
                if conn.user_id == user_id and conn.institution_id == institution_id
            ),
            None,
        )
        if existing is not None:
            # Basiq keeps the connection and its id; a successful login makes it active again.
            existing.last_used = now
            if existing.status != "active":
                self._set_status(existing, "active", "connection.activated")
            return existing
        conn = BankConnection(
            id=str(uuid.uuid4()),
            user_id=user_id,
            institution_id=institution_id,
            created_at=now,
            last_used=now,
        )
        self.connections[conn.id] = conn
        conn.history.append({"status": "active", "at": now.isoformat()})
        self._emit("connection.created", conn)
        return conn

    def invalidate(self, connection_id: str) -> BankConnection:
        """The bank broke the connection (changed login, revoked access): status invalid."""
        conn = self.connections.get(connection_id)
        if conn is None:
            detail = f"Connection {connection_id} was not found."
            raise BasiqError(404, "resource-not-found", detail)
        self._set_status(conn, "invalid", "connection.invalidated")
        return conn

    def _set_status(self, conn: BankConnection, status: str, event: str) -> None:
        conn.status = status
        conn.history.append({"status": status, "at": self.clock.now().isoformat()})
        self._emit(event, conn)

    def connections_of(self, user_id: str) -> list[BankConnection]:
        """The user's connections, oldest first."""
        self.user(user_id)
        found = [conn for conn in self.connections.values() if conn.user_id == user_id]
        return sorted(found, key=lambda conn: conn.created_at)

    # -- webhooks -----------------------------------------------------------------------

    def add_webhook(self, url: str) -> None:
        """Register a loopback URL for connection events."""
        if not is_loopback_url(url):
            detail = f"Webhooks go to loopback URLs only, not {url}."
            raise BasiqError(400, "parameter-not-valid", detail)
        if url not in self.webhooks:
            self.webhooks.append(url)

    def _emit(self, event_type: str, conn: BankConnection) -> None:
        entity, _, kind = event_type.partition(".")
        self._emit_event(entity, kind, conn.user_id, conn.id)

    def _emit_event(self, entity: str, kind: str, user_id: str, entity_id: str) -> None:
        """Record an event and send every webhook its signed notification.

        The body is what Basiq's webhooks send, `{eventTypeId, eventId, links}`; the
        receiver fetches the event and the entity from the links.
        """
        event = Event(str(uuid.uuid4()), entity, kind, user_id, entity_id, self.clock.now())
        self.events[event.id] = event
        links = self.event_links(event, self.api_base)
        body = {"eventTypeId": event.type_id, "eventId": event.id, "links": links}
        raw = json.dumps(body, separators=(",", ":")).encode()
        for url in self.webhooks:
            message_id = "msg_" + secrets.token_hex(12)
            timestamp = int(self.clock.now().timestamp())
            headers = {
                "content-type": "application/json",
                "webhook-id": message_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": webhook_signature(
                    self.webhook_secret, message_id, timestamp, raw
                ),
            }
            self._callbacks.send(Callback(url, content=raw, headers=headers))

    def entity_url(self, event: Event, base: str) -> str:
        """Where the event's entity lives in the API."""
        if event.entity == "connection":
            return f"{base}/users/{event.user_id}/connections/{event.entity_id}"
        if event.entity == "consent":
            return f"{base}/users/{event.user_id}/consents"
        return f"{base}/users/{event.user_id}"

    def event_links(self, event: Event, base: str) -> dict[str, str]:
        return {"self": f"{base}/events/{event.id}", "eventEntity": self.entity_url(event, base)}

    def event_json(self, event: Event, base: str) -> dict[str, Any]:
        """An event as `GET /events/{id}` shows it."""
        return {
            "type": "event",
            "id": event.id,
            "createdDate": basiq_time(event.created_at),
            "entity": event.entity,
            "eventType": event.event_type,
            "userId": event.user_id,
            "links": self.event_links(event, base),
        }

    # -- JSON ---------------------------------------------------------------------------

    def institution_json(self, institution_id: str, base: str) -> dict[str, Any]:
        """An institution as `GET /institutions` lists it."""
        inst_id, name, short_name, kind, tier = self.institutions[institution_id]
        return {
            "type": "institution",
            "id": inst_id,
            "name": name,
            "shortName": short_name,
            "institutionType": kind,
            "country": "Australia",
            "tier": tier,
            "authorization": "user",
            "loginIdCaption": "Username",
            "passwordCaption": "Password",
            "stage": "live",
            "status": "operational",
            "links": {"self": f"{base}/institutions/{inst_id}"},
        }

    def connector_json(self, institution_id: str, base: str) -> dict[str, Any]:
        """An institution as v3's `GET /connectors` lists it (one per sign-in method)."""
        inst_id, name, short_name, kind, tier = self.institutions[institution_id]
        return {
            "type": "connector",
            "id": inst_id,
            "method": "web",
            "name": name,
            "shortName": short_name,
            "institutionType": kind,
            "country": "Australia",
            "tier": tier,
            "stage": "live",
            "status": "operational",
            "authorization": {
                "type": "user",
                "meta": {"loginIdCaption": "Username", "passwordCaption": "Password"},
            },
            "features": {"accounts": True, "transactions": True},
            "logo": {
                "type": "image",
                "colors": {"primary": "#1a3d6d"},
                "links": {"square": f"{base}/connectors/{inst_id}/web"},
            },
            "links": {"self": f"{base}/connectors/{inst_id}/web"},
        }

    def user_json(self, user: BasiqUser, base: str) -> dict[str, Any]:
        """A user as `GET /users/{id}` shows it."""
        connections = self.connections_of(user.id)
        link = self.links.get(user.current_link_id or "")
        live_link = link is not None and not link.deleted
        return {
            "type": "user",
            "id": user.id,
            "email": user.email or "",
            "mobile": user.mobile or "",
            "firstName": user.first_name or "",
            "middleName": "",
            "lastName": user.last_name or "",
            "businessName": user.business_name or "",
            "businessIdNo": "",
            "businessIdNoType": "ABN",
            "businessAddress": None,
            "verificationStatus": False,
            "verificationDate": "",
            "createdDate": basiq_time(user.created_at),
            "accounts": {"type": "list", "count": 0, "data": []},
            "connections": {
                "type": "list",
                "count": len(connections),
                "data": [
                    {"type": "connection", "id": conn.id, "links": self._conn_links(conn, base)}
                    for conn in connections
                ],
            },
            "links": {
                "self": f"{base}/users/{user.id}",
                "connections": f"{base}/users/{user.id}/connections",
                "consents": f"{base}/users/{user.id}/consents",
            }
            # Named only while the user has a link to show (a dead one is 410, not 404).
            | ({"auth_link": f"{base}/users/{user.id}/auth_link"} if live_link else {}),
        }

    def link_json(self, link: AuthLink, base: str, consent_url: str) -> dict[str, Any]:
        """An auth link, with what the invitation needs to follow it: opened, used, status."""
        user = self.users[link.user_id]
        return {
            "type": "auth_link",
            "id": link.id,
            "userId": link.user_id,
            "mobile": user.mobile or "",
            "url": consent_url,
            "institutions": list(link.institutions),
            "practice": link.practice,
            "createdAt": basiq_time(link.created_at),
            "expiresAt": basiq_time(link.expires_at),
            "status": self.link_status(link),
            "opened": link.opened_at is not None,
            "openedAt": basiq_time(link.opened_at) if link.opened_at else None,
            "used": link.used_at is not None,
            "usedAt": basiq_time(link.used_at) if link.used_at else None,
            "links": {"self": f"{base}/users/{link.user_id}/auth_link", "public": consent_url},
        }

    def connection_json(self, conn: BankConnection, base: str) -> dict[str, Any]:
        """A connection as `GET /users/{id}/connections` lists it."""
        consent = next((c for c in self.consents.values() if c.user_id == conn.user_id), None)
        return {
            "type": "connection",
            "id": conn.id,
            "status": conn.status,
            "method": "web",
            "mfaEnabled": False,
            "createdDate": basiq_time(conn.created_at),
            "lastUsed": basiq_time(conn.last_used),
            "expiryDate": basiq_time(consent.expires_at) if consent else None,
            "institution": {
                "type": "institution",
                "id": conn.institution_id,
                "links": {"self": f"{base}/institutions/{conn.institution_id}"},
            },
            "accounts": {"type": "list", "count": 0, "data": []},
            "links": self._conn_links(conn, base),
        }

    @staticmethod
    def _conn_links(conn: BankConnection, base: str) -> dict[str, str]:
        return {"self": f"{base}/users/{conn.user_id}/connections/{conn.id}"}

    def reset(self) -> None:
        """Forget every token, user, link, connection and webhook."""
        self.tokens.clear()
        self.users.clear()
        self.links.clear()
        self.connections.clear()
        self.webhooks.clear()
        self.consents.clear()
        self.events.clear()
