"""The clientlink wire protocol, shared by the daemon and every client.

JSON-RPC 2.0 over a Unix stream socket: one UTF-8 JSON object per line, at most
``MAX_FRAME_BYTES`` per line. The first call on a connection is ``daemon.hello``.
Daemon-pushed events are JSON-RPC notifications ``{"method": "event", "params": {...}}``
whose params always carry ``topic`` and ``seq``.

This module is the single definition of method names, parameter shapes, result shapes,
error codes and event topics. It must never import Textual or anything daemon-side.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

# Re-exported: the roles and statuses are defined where the command line reads them cheaply.
from clientlink.common.vocabulary import ROLE_RANKS as ROLE_RANKS
from clientlink.common.vocabulary import STATUS_LABELS as STATUS_LABELS
from clientlink.common.vocabulary import ConnectionStatus as ConnectionStatus
from clientlink.common.vocabulary import Role as Role

PROTOCOL_VERSION = 1
"""Major protocol version. Additive changes keep it; clients ignore unknown fields."""

PROTOCOL_MINOR = 1
"""Minor protocol version, raised by each additive change (a new field, method or topic).

``daemon.hello`` reports it; only the major must match, so a client of a higher minor
works against an older daemon of the same major (it reads the older daemon's answers,
whose missing new fields take their defaults). Minor 1: ``daemon.hello`` says ``minor``
and ``epoch``.
"""

MAX_FRAME_BYTES = 1024 * 1024
"""Largest accepted frame (one JSON object plus its newline)."""

EVENT_METHOD = "event"

MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects a frame may hold (checked before decoding)."""

MAX_INT_DIGITS = 40
"""Longest integer literal a frame may hold (checked while decoding)."""

INT_MIN, INT_MAX = -(2**63), 2**63 - 1
"""The range of every integer in the protocol: SQLite's 64-bit integers."""


def value_problem(value: Any) -> str | None:
    """What makes a decoded value unusable anywhere in clientlink, or ``None``.

    Integers must fit SQLite's 64 bits; text must hold no NUL character and no lone
    surrogate (which cannot be written as UTF-8). Lists and objects are checked item by item;
    the answer names the item (``[3]``, ``.key``) ahead of the rule.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        if INT_MIN <= value <= INT_MAX:
            return None
        return f"is out of range: integers must lie between {INT_MIN} and {INT_MAX}"
    if isinstance(value, str):
        if "\x00" in value:
            return "must not contain a NUL character (\\x00)"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "must be valid Unicode text (it holds a lone surrogate such as \\ud800)"
        return None
    if isinstance(value, (list, tuple, set, frozenset)):
        for index, item in enumerate(value):
            problem = value_problem(item)
            if problem:
                return f"[{index}] {problem}"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            problem = value_problem(key) or value_problem(item)
            if problem:
                return f".{key!r} {problem}" if isinstance(key, str) else f"key {problem}"
        return None
    return None


class ErrorCode(IntEnum):
    """JSON-RPC error codes: the standard ones, then clientlink's own."""

    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603

    HELLO_REQUIRED = 1000
    PROTOCOL_MISMATCH = 1001
    PERMISSION_DENIED = 1002
    ROLE_REQUIRED = 1003
    NOT_FOUND = 1010
    CONFLICT = 1011

    AUTH_SESSION_UNKNOWN = 1100
    AUTH_SESSION_EXPIRED = 1101
    AUTH_STATE_MISMATCH = 1102
    AUTH_SESSION_FINISHED = 1103
    AUTH_PROVIDER_REFUSED = 1104
    AUTH_CLIENT_NOT_SELECTED = 1105
    AUTH_REDIRECT_INVALID = 1106

    PROVIDER_UNKNOWN = 1200
    PROVIDER_NOT_CONFIGURED = 1201
    PROVIDER_UNAVAILABLE = 1202

    VAULT_UNAVAILABLE = 1300

    STORE_UNWRITABLE = 1400
    STORAGE_FULL = 1401


class AuthSessionState(StrEnum):
    """Where an auth session stands."""

    PENDING = "pending"
    EXCHANGING = "exchanging"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Topic(StrEnum):
    """Event topics pushed to subscribers."""

    CLIENT_STATUS_CHANGED = "client.status_changed"
    CLIENT_REAUTHORISED = "client.reauthorised"
    CLIENTS_IMPORTED = "clients.imported"
    AUTH_COMPLETED = "auth.completed"
    AUTH_FAILED = "auth.failed"
    JOB_PROGRESS = "job.progress"
    JOB_FINISHED = "job.finished"
    NOTIFICATION = "notification"
    NOTIFICATIONS_READ = "notifications.read"
    INVITATION_CHANGED = "invitation.changed"
    BANK_CONNECTION_CHANGED = "bank.connection_changed"


# --------------------------------------------------------------------------- shapes


class _Params(BaseModel):
    """Base for request parameters: unknown fields are refused so typos surface.

    Every field, whatever its type, holds only integers in SQLite's range and text without
    NUL or lone surrogates (see :func:`value_problem`).
    """

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        problem = value_problem(value)
        if problem:
            raise PydanticCustomError("unstorable_value", problem)
        return value


class _Result(BaseModel):
    """Base for result shapes: unknown fields are ignored so clients stay compatible."""

    model_config = ConfigDict(extra="ignore")


class HelloParams(_Params):
    protocol: int = Field(description="The protocol major version the client speaks.")
    client: str = Field(default="unknown", max_length=100)


class HelloResult(_Result):
    protocol: int
    daemon_version: str
    user: str
    pid: int
    minor: int = Field(default=0, description="The daemon's minor protocol version.")
    epoch: str | None = Field(
        default=None,
        description="A random id of this daemon start: event seq numbers restart with it.",
    )


class Empty(_Params):
    pass


class ClientFilter(_Params):
    status: ConnectionStatus | list[ConnectionStatus] | None = None
    provider: str | None = None
    text: str | None = Field(default=None, max_length=200)
    active: bool | None = True
    mine: bool = Field(
        default=False,
        description="My connections: only clients whose grant the caller authorised.",
    )


class ClientsListParams(_Params):
    filter: ClientFilter = Field(default_factory=ClientFilter)
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=200, ge=1, le=1000)


class Client(_Result):
    id: int
    name: str
    legal_name: str | None = None
    abn: str | None = None
    provider: str
    tenant_id: str | None = None
    status: ConnectionStatus
    status_reason: str | None = None
    status_since: str | None = None
    access_expires_at: str | None = None
    refresh_expires_at: str | None = None
    email: str | None = None
    phone: str | None = None
    entity_type: str | None = Field(
        default=None,
        description="The entity's type as its software names it (SMSF, trust, company...).",
    )
    business: str | None = Field(
        default=None,
        description="The software business it is reached through (a Class business code, "
        "a BGL firm), where one sign-in covers one business.",
    )
    active: bool = True
    grant_id: int | None = None
    last_verified_at: str | None = None
    hard_expires_at: str | None = Field(
        default=None, description="When the grant ends for good, whatever is refreshed."
    )
    authorised_by: str | None = None
    owner_login: str | None = Field(
        default=None, description="The staff member (Unix login) whose sign-in it rests on."
    )
    owner_name: str | None = Field(
        default=None, description="That staff member's display name (the login if unknown)."
    )
    provider_user: dict[str, str | None] | None = Field(
        default=None, description="Who signed in at the provider (sub, email, name, user_id)."
    )
    owner_label: str | None = Field(
        default=None,
        description="Authorised by, in words: 'Sam Lee, as sam@practice.example in Xero'.",
    )
    authorised_at: str | None = None
    last_refresh_at: str | None = None
    next_check_at: str | None = Field(
        default=None, description="When the watcher next refreshes or checks this connection."
    )


class ClientsListResult(_Result):
    total: int
    items: list[Client]
    counts: dict[str, int] = Field(
        default_factory=dict, description="Active clients by status, ignoring the filter."
    )


class ClientIdParams(_Params):
    client_id: int


class ClientRefreshParams(_Params):
    client_id: int
    force: bool = Field(
        default=False, description="Refresh even when the access token is still fresh."
    )


class ClientsImportParams(_Params):
    grant_id: int
    tenant_ids: list[str] | None = Field(
        default=None, description="Import only these tenants; all of the grant's by default."
    )
    as_new: list[str] = Field(
        default_factory=list,
        max_length=10000,
        description="Tenants to make new clients even though a client under other software "
        "has their ABN (the person said they are not the same business).",
    )


class PossibleMatch(_Result):
    """A business not imported because a client under other software has its ABN: the
    same business moved software, or a duplicate in the making; the person decides."""

    tenant_id: str
    name: str = Field(description="The business as this software names it.")
    abn: str
    client_id: int
    client_name: str
    client_provider: str
    client_active: bool = True


class ClientsImportResult(_Result):
    created: list[int]
    updated: list[int]
    possible_matches: list[PossibleMatch] = Field(
        default_factory=list,
        description="Tenants left out, each with the client of other software that has its "
        "ABN: attach it to that client (clients.attach) or import it with as_new.",
    )


class ClientAttachParams(_Params):
    grant_id: int
    tenant_id: str = Field(max_length=200)
    client_id: int


class HistoryEntry(_Result):
    at: str
    kind: str = Field(description="status, reauthorised, refresh, refresh_failed, audit...")
    status: ConnectionStatus | None = None
    old_status: ConnectionStatus | None = None
    reason: str | None = None
    actor: str | None = None


class ClientHistoryParams(_Params):
    client_id: int
    limit: int = Field(default=50, ge=1, le=1000)


class ClientHistoryResult(_Result):
    items: list[HistoryEntry]


class NotificationKind(StrEnum):
    """What a notification is about."""

    NEEDS_REAUTH = "needs_reauth"
    EXPIRING = "expiring"
    ERROR = "error"
    RECOVERED = "recovered"
    DIGEST = "digest"


class Notification(_Result):
    id: int
    at: str
    kind: NotificationKind
    title: str
    body: str
    client_ids: list[int]
    read: bool
    desktop: str = Field(
        description="Desktop delivery: 'sent', 'pending', 'disabled', 'no session bus', "
        "'replaced' (by a digest or a recovery) or 'failed: <reason>'."
    )


class NotificationsListParams(_Params):
    unread_only: bool = False
    limit: int = Field(default=100, ge=1, le=1000)


class NotificationsListResult(_Result):
    unread: int
    items: list[Notification]


class NotificationsAckParams(_Params):
    ids: list[int] | None = Field(default=None, description="These; every unread one if absent.")


class NotificationsAckResult(_Result):
    unread: int


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"


class JobKind(StrEnum):
    """What a bulk job does to each of its items."""

    REAUTHORISE = "reauthorise"
    REIMPORT = "reimport"
    INVITE = "invite"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    # A re-authorisation across provider businesses (one grant per business) whose next
    # business has no sign-in yet: nothing runs until jobs.add_sign_in or jobs.skip_sign_in.
    WAITING = "waiting"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (JobState.CANCELLED, JobState.COMPLETED, JobState.FAILED)


class ItemState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


class JobStartParams(_Params):
    kind: JobKind
    client_ids: list[int] = Field(min_length=1, max_length=100_000)
    grant_id: int | None = Field(
        default=None, description="reauthorise: the grant from the bulk sign-in."
    )
    channel: Channel | None = Field(default=None, description="invite: email or sms.")
    template_id: str | None = Field(
        default=None, description="invite: the template; the channel's default if absent."
    )
    bank_ids: list[str] = Field(
        default_factory=list, description="invite: the banks the link pre-selects."
    )
    takeover_of: str | None = Field(
        default=None,
        max_length=64,
        description="reauthorise: the login whose connections this job takes over (handover).",
    )


class SkippedClient(_Result):
    """A client a job left out, and why (another job or sign-in holds it)."""

    client_id: int
    name: str
    reason: str


class JobStartResult(_Result):
    job_id: int
    skipped: list[SkippedClient] = Field(
        default_factory=list,
        description="reauthorise: clients left out because another job or sign-in holds them.",
    )


class JobItem(_Result):
    id: int
    client_id: int
    name: str
    state: ItemState
    attempts: int
    error: str | None = None
    changes: dict[str, list[str | None]] | None = Field(
        default=None, description="reimport: {field: [stored, provider's]} for review."
    )
    applied_at: str | None = Field(
        default=None, description="reimport: when its changes were applied (null: not yet)."
    )
    finished_at: str | None = None


class SignInState(StrEnum):
    """Where one business of a multi-business re-authorisation stands."""

    PENDING = "pending"
    SIGNED_IN = "signed_in"
    SKIPPED = "skipped"


class JobSignIn(_Result):
    """One business of a re-authorisation that needs a sign-in per business, in order."""

    business: str
    funds: int = Field(description="How many of the job's clients are in this business.")
    state: SignInState
    grant_id: int | None = None


class SignInWait(_Result):
    """What a waiting job needs: a sign-in to this business (``index`` of ``of``, from 1)."""

    provider: str
    business: str
    index: int
    of: int
    funds: int


class Job(_Result):
    id: int
    kind: JobKind
    state: JobState
    total: int
    done: int
    failed: int
    actor: str
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    current: str | None = Field(default=None, description="The client being worked on.")
    rate_per_minute: float | None = None
    eta_seconds: float | None = None
    retry_of: int | None = None
    items: list[JobItem] | None = None
    provider: str | None = Field(
        default=None, description="reauthorise across businesses: the software."
    )
    sign_ins: list[JobSignIn] | None = Field(
        default=None,
        description="reauthorise where one sign-in covers one business: every business, "
        "in the order they are signed in to.",
    )
    waiting_for_sign_in: SignInWait | None = Field(
        default=None, description="Set while the job waits for the person's next sign-in."
    )
    takeover_of: str | None = Field(
        default=None, description="A handover: the login whose connections the job takes over."
    )
    takeover_name: str | None = Field(
        default=None, description="A handover: that person's display name."
    )


class JobsListParams(_Params):
    state: JobState | None = None
    limit: int = Field(default=50, ge=1, le=1000)


class JobsListResult(_Result):
    items: list[Job]


class JobGetParams(_Params):
    job_id: int
    items: bool = False
    item_state: ItemState | None = None
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=500, ge=1, le=2000)


class JobIdParams(_Params):
    job_id: int


class JobAddSignInParams(_Params):
    job_id: int
    grant_id: int = Field(description="The grant of the sign-in to the business the job waits for.")


class JobSkipSignInParams(_Params):
    job_id: int
    business: str = Field(
        max_length=64,
        description="The business the job waits for (said back, so a stale "
        "screen cannot skip another).",
    )


class JobExportParams(_Params):
    job_id: int
    path: str = Field(description="Absolute path of the CSV file to write.")
    overwrite: bool = False
    machine_names: bool = Field(
        default=False,
        description="Column names and outcomes as the API spells them (outcome, done), "
        "not as people say them (Outcome, Done).",
    )


class ExportResult(_Result):
    path: str
    rows: int
    created_folder: str | None = Field(
        default=None, description="The folder clientlinkd created for the file, if any."
    )


CLIENT_EXPORT_COLUMNS = (
    "id",
    "name",
    "legal_name",
    "abn",
    "provider",
    "tenant_id",
    "status",
    "status_reason",
    "status_since",
    "email",
    "phone",
    "active",
    "access_expires_at",
    "refresh_expires_at",
    "authorised_by",
    "authorised_at",
)

CLIENT_EXPORT_LABELS = {
    "id": "Client id",
    "name": "Name",
    "legal_name": "Legal name",
    "abn": "ABN",
    "provider": "Software",
    "tenant_id": "Tenant id (the software's)",
    "status": "Status",
    "status_reason": "Status reason",
    "status_since": "Status since",
    "email": "Email",
    "phone": "Phone",
    "active": "Active",
    "access_expires_at": "Access token ends",
    "refresh_expires_at": "Refresh token ends",
    "authorised_by": "Authorised by",
    "authorised_at": "Authorised at",
}
"""Each export column as people say it: the CSV heading, and the TUI's word for it."""


class ClientsExportParams(_Params):
    path: str = Field(description="Absolute path of the CSV file to write.")
    columns: list[str] = Field(
        default_factory=lambda: ["name", "abn", "provider", "status", "status_reason"],
        min_length=1,
    )
    filter: ClientFilter = Field(default_factory=ClientFilter)
    overwrite: bool = False
    machine_names: bool = Field(
        default=False,
        description="Column names and statuses as the API spells them (provider, "
        "needs_reauth), not as people say them (Software, Needs re-auth).",
    )


class ClientsImportFileParams(_Params):
    path: str = Field(
        max_length=4096, description="Absolute path (or ~/...) of the CSV or XLSX file to read."
    )
    confirm: bool = Field(default=False, description="Import it (after a preview).")
    digest: str | None = Field(
        default=None,
        max_length=100,
        description="The digest the preview answered: a file changed since is refused.",
    )
    skip_refused: bool = Field(
        default=False, description="Import the other rows when some are refused."
    )
    verdict: Literal["add", "match", "refuse"] | None = Field(
        default=None, description="List only the rows with this verdict."
    )
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=100, ge=1, le=1000)


class ImportRow(_Result):
    row: int = Field(description="The row's number as the spreadsheet shows it.")
    verdict: Literal["add", "match", "refuse"]
    name: str
    software: str = Field(description="The Software cell as written.")
    provider: str | None = None
    tenant_id: str | None = None
    abn: str | None = None
    email: str | None = None
    phone: str | None = None
    client_id: int | None = Field(default=None, description="The client a match is.")
    reason: str | None = Field(
        default=None, description="Why it is refused, or which client it matches and how."
    )
    fills: list[str] = Field(
        default_factory=list, description="The matched client's blank fields the row fills."
    )


class ClientsImportFileResult(_Result):
    path: str
    digest: str = Field(description="SHA-256 of the file's bytes: give it back to import.")
    kind: Literal["csv", "xlsx"]
    columns: dict[str, str] = Field(description="Each column understood, by its heading.")
    counts: dict[str, int] = Field(description="Rows by verdict: add, match, refuse.")
    total: int = Field(description="Rows listed with the verdict filter (for paging).")
    rows: list[ImportRow]
    imported: bool = False
    created: int = 0
    updated: int = Field(default=0, description="Matched clients whose blanks were filled.")


class ClientIdsParams(_Params):
    client_ids: list[int] = Field(min_length=1, max_length=100_000)


class ClientsChangedResult(_Result):
    changed: list[int]


class ReimportApplyParams(_Params):
    job_id: int
    client_ids: list[int] | None = Field(
        default=None, description="Apply these clients' reviewed changes; all by default."
    )


class ClientUpdateParams(_Params):
    client_id: int
    email: str | None = Field(default=None, max_length=320, description="'' clears it.")
    phone: str | None = Field(default=None, max_length=40, description="'' clears it.")


class InvitationTemplate(_Result):
    id: str
    name: str
    channel: Channel
    subject: str | None = None
    body: str
    builtin: bool = False


class TemplatesListResult(_Result):
    items: list[InvitationTemplate]
    placeholders: dict[str, str]


class TemplateIdParams(_Params):
    template_id: str


class TemplateCreateParams(_Params):
    name: str = Field(min_length=1, max_length=200)
    channel: Channel
    subject: str | None = Field(default=None, max_length=300)
    body: str = Field(min_length=1, max_length=20_000)


class TemplateUpdateParams(_Params):
    template_id: str
    name: str | None = Field(default=None, min_length=1, max_length=200)
    subject: str | None = Field(default=None, max_length=300)
    body: str | None = Field(default=None, min_length=1, max_length=20_000)


class TemplatePreviewParams(_Params):
    client_id: int
    template_id: str | None = None
    channel: Channel | None = Field(default=None, description="With subject/body: unsaved.")
    subject: str | None = None
    body: str | None = Field(default=None, max_length=20_000)
    bank_ids: list[str] = Field(default_factory=list)


class TemplatePreviewResult(_Result):
    channel: Channel
    subject: str | None
    body: str
    sms_encoding: str | None = None
    sms_segments: int | None = None
    sms_segments_min: int | None = Field(
        default=None, description="SMS: the fewest segments across the active clients."
    )
    sms_segments_max: int | None = Field(
        default=None, description="SMS: the most (the longest name, a real link length)."
    )
    longest_name: str | None = Field(default=None, description="SMS: whose message is longest.")
    link_length: int | None = None


class InviteParams(_Params):
    client_id: int
    channel: Channel
    template_id: str | None = None
    bank_ids: list[str] = Field(default_factory=list, max_length=50)


class InvitesPreviewParams(_Params):
    client_ids: list[int] = Field(min_length=1, max_length=100_000)
    template_id: str = Field(min_length=1, max_length=100)
    bank_ids: list[str] = Field(default_factory=list, max_length=50)
    sample_client_id: int | None = Field(
        default=None, description="Whose message to render (the first one sent if absent)."
    )


class InviteSkip(_Result):
    client_id: int
    name: str
    reason: str = Field(description="Why no message goes to this client, e.g. 'no mobile number'.")


class InviteSample(_Result):
    client_id: int
    name: str
    address: str
    subject: str | None
    body: str
    sms_segments: int | None = None


class InvitesPreviewResult(_Result):
    """What a bulk invitation would do, before anything is sent."""

    channel: Channel
    template_name: str
    reachable: dict[str, int] = Field(
        description="Per channel (email, sms): how many of the chosen clients it reaches."
    )
    sending: list[int] = Field(description="The clients who would get the message, in order.")
    skipped: list[InviteSkip]
    sample: InviteSample | None
    problem: str | None = Field(default=None, description="Why nothing can be sent now.")
    sms_encoding: str | None = None
    sms_segments: list[int] = Field(
        default_factory=list, description="SMS only: each sent message's segments (as sending)."
    )
    link_length: int = Field(description="The link length the counts assume.")
    link_length_measured: bool = Field(
        description="True when it is the length of the last link the bank-feed service made."
    )


class Invitation(_Result):
    id: int
    client_id: int
    client_name: str
    channel: Channel
    template_id: str
    bank_ids: list[str]
    state: str = Field(
        description="queued, sending, sent, delivered, opened, connected, failed or uncertain"
    )
    error: str | None = None
    actor: str
    reminder_of: int | None = None
    created_at: str
    sent_at: str | None = None
    delivered_at: str | None = None
    opened_at: str | None = None
    connected_at: str | None = None
    link_expires_at: str | None = None


class InvitesListParams(_Params):
    client_id: int | None = None
    limit: int = Field(default=100, ge=1, le=1000)


class InvitesListResult(_Result):
    items: list[Invitation]


class InvitationIdParams(_Params):
    invitation_id: int


class FollowUpResult(_Result):
    checked: int
    changed: int
    reminded: int


class Bank(_Result):
    id: str
    name: str
    short_name: str | None = None


class BanksListResult(_Result):
    items: list[Bank]


class BankConnection(_Result):
    id: str
    institution_id: str
    bank_name: str
    status: str = Field(description="active, invalid (broken: needs a reconnect), pending...")
    needs_reconnect: bool
    updated_at: str


class BankConnectionsResult(_Result):
    items: list[BankConnection]


class ChannelSecretParams(_Params):
    channel: Literal["email", "sms", "banks"]
    secret: str = Field(min_length=1, max_length=4096)


class ClientsCheckParams(_Params):
    client_ids: list[int] | None = Field(
        default=None, description="Check only these clients; every active client by default."
    )


class ClientsCheckResult(_Result):
    checked: int
    by_status: dict[str, int]


class AuthBeginParams(_Params):
    provider: str
    client_id: int | None = Field(
        default=None, description="Re-authorise this client once the sign-in completes."
    )
    new_connections: int = Field(
        default=1,
        ge=0,
        le=1_000_000,
        description="How many businesses this sign-in may newly connect (a bulk flow's "
        "count), checked against the Xero tier's connection cap.",
    )
    business: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="The provider business to sign in to, where one authorisation covers one "
        "business (Class Super: its code, letters, digits, '.', '_' or '-'); the client's own "
        "business when client_id is given; left out, the provider's page asks which.",
    )


class AuthBeginResult(_Result):
    session_id: str
    authorize_url: str
    short_url: str = Field(
        description="A short address on the loopback listener (http://127.0.0.1:PORT/s/CODE) "
        "that redirects to authorize_url while the session is pending; one line to copy.",
    )
    redirect_uri: str
    expires_at: str
    callback_port: int
    warning: str | None = Field(
        default=None, description="Said before the sign-in, e.g. a tier cap it would pass."
    )


class AuthCompleteParams(_Params):
    session_id: str
    redirect_url: str = Field(max_length=8192)


class Tenant(_Result):
    tenant_id: str
    name: str
    tenant_type: str | None = None
    business: str | None = None
    client_id: int | None = Field(default=None, description="The client bound to this tenant.")
    abn: str | None = Field(
        default=None, description="The entity's ABN, where the software's tenant list gives it."
    )
    match: str | None = Field(
        default=None,
        description="How client_id was found when the software's id changed (\"matched by "
        'ABN: fund id changed from X to Y"), or why the ABN named no client (no guess).',
    )


class AuthCompleteResult(_Result):
    grant_id: int
    tenants: list[Tenant]
    client_id: int | None = None
    provider_user: dict[str, str | None] | None = Field(
        default=None,
        description="Who signed in at the provider (sub, email, name, user_id), read from "
        "the OpenID Connect id_token; null when the provider sent none.",
    )


class AuthSessionParams(_Params):
    session_id: str


class AuthStatusResult(_Result):
    session_id: str
    provider: str
    client_id: int | None
    state: AuthSessionState
    expires_at: str
    error: dict[str, Any] | None = None
    result: AuthCompleteResult | None = None


class EventsSubscribeParams(_Params):
    topics: list[Topic] | None = Field(default=None, description="All topics by default.")
    since_seq: int | None = Field(
        default=None, description="Replay buffered events after this sequence number."
    )


class EventsSubscribeResult(_Result):
    seq: int = Field(description="The sequence number of the newest event so far.")
    replayed: int = 0
    gap: bool = Field(
        default=False,
        description="True when events after since_seq were no longer buffered: resync.",
    )


class ProviderInfo(_Result):
    name: str
    kind: str
    display_name: str
    configured: bool
    has_secret: bool
    problem: str | None = None
    one_grant_per_business: bool = Field(
        default=False,
        description="One sign-in covers one business (Class Super): a bulk re-authorisation "
        "signs in once per business.",
    )
    sign_in_covers: str = Field(
        default="",
        description='What one sign-in covers ("one sign-in covers every fund of the firm", '
        '"one sign-in per company file").',
    )


class ProvidersListResult(_Result):
    items: list[ProviderInfo]


class ProviderSecretParams(_Params):
    provider: str
    client_secret: str = Field(min_length=1, max_length=4096)


class StaffMember(_Result):
    """One of the practice's staff, as a firm-mode daemon knows them."""

    id: int
    login: str = Field(description="The Unix login the daemon recognises on its socket.")
    display_name: str
    email: str | None = None
    role: Role
    state: Literal["active", "left"]
    preferences: dict[str, Any] = Field(default_factory=dict)
    created_at: str
    updated_at: str
    left_at: str | None = None


class StaffListParams(_Params):
    include_left: bool = Field(default=True, description="List those who left too.")


class StaffListResult(_Result):
    items: list[StaffMember]
    firm: bool = Field(description="Whether the daemon runs in firm mode (serving the group).")


class StaffAddParams(_Params):
    login: str = Field(min_length=1, max_length=32, description="An existing Unix login.")
    display_name: str | None = Field(
        default=None, max_length=100, description="As people say it; the system's name by default."
    )
    email: str | None = Field(default=None, max_length=320)
    role: Role = Role.STAFF


class StaffUpdateParams(_Params):
    login: str = Field(min_length=1, max_length=32)
    display_name: str | None = Field(default=None, max_length=100)
    email: str | None = Field(default=None, max_length=320, description="'' clears it.")
    role: Role | None = None
    active: bool | None = Field(
        default=None, description="true: back on the staff list after leaving."
    )


class StaffLeaveParams(_Params):
    login: str = Field(min_length=1, max_length=64)
    dry_run: bool = Field(
        default=False, description="Only list what rests on their sign-ins; change nothing."
    )


class LeftClient(_Result):
    """A client resting on a grant of someone who left."""

    id: int
    name: str
    status: ConnectionStatus
    status_reason: str | None = None
    active: bool = True


class LeftGrant(_Result):
    """A grant someone who left authorised, and the clients resting on it."""

    grant_id: int
    provider: str
    business: str | None = None
    state: str
    created_at: str
    clients: list[LeftClient]


class StaffLeaveResult(_Result):
    member: StaffMember
    dry_run: bool
    grants: list[LeftGrant] = Field(description="Every grant they authorised, still active.")
    flagged: list[int] = Field(
        default_factory=list, description="Clients now shown as expiring: owner left."
    )
    message: str


class AuditListParams(_Params):
    client_id: int | None = None
    actor: str | None = Field(
        default=None, max_length=64, description="Only what this staff member (login) did."
    )
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=100, ge=1, le=10_000)


class AuditEntry(_Result):
    id: int
    at: str
    actor: str
    action: str
    client_id: int | None
    detail: dict[str, Any]
    actor_name: str | None = Field(default=None, description="The actor's display name.")
    client_name: str | None = None


class AuditListResult(_Result):
    items: list[AuditEntry]
    total: int = Field(default=0, description="Entries matching the filters (for paging).")


class AuditExportParams(_Params):
    path: str = Field(description="Absolute path of the CSV file to write.")
    client_id: int | None = None
    actor: str | None = Field(default=None, max_length=64)
    overwrite: bool = False


class GrantsListParams(_Params):
    unused_only: bool = Field(
        default=False, description="Only sign-ins no client was ever bound to."
    )


class GrantInfo(_Result):
    """One stored authorisation (no token in it)."""

    id: int
    provider: str
    state: str
    state_reason: str | None = None
    authorised_by: str
    created_at: str
    access_expires_at: str | None = None
    refresh_expires_at: str | None = None
    next_check_at: str | None = None
    clients: int = Field(description="Clients bound to it now.")
    unused: bool = Field(description="A sign-in no client was ever bound to.")
    tenants: list[str] = Field(default_factory=list, description="Businesses it reaches.")


class GrantsListResult(_Result):
    items: list[GrantInfo]


class GrantIdParams(_Params):
    grant_id: int


class GrantRevokeResult(_Result):
    grant_id: int
    state: str
    message: str


class DaemonStatusResult(_Result):
    version: str
    protocol: int
    started_at: str
    now: str
    vault_backend: str
    clients_by_status: dict[str, int]
    inactive_clients: int
    pending_auth_sessions: int
    providers: list[ProviderInfo]
    attention: int = Field(default=0, description="Active clients that need a person.")
    unread_notifications: int = 0
    watched_grants: int = 0
    next_wakeup_at: str | None = None
    database_problem: str | None = Field(
        default=None, description="Why the daemon stopped writing its database, if it did."
    )
    disk_reserve: bool = Field(
        default=False, description="Whether the disk reserve for token commits is in place."
    )
    unused_sign_ins: int = Field(
        default=0, description="Stored sign-ins no client was ever bound to (grants.list)."
    )
    usage: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Per Xero provider: tier, connections against its cap, and this "
        "month's API egress in bytes.",
    )


class OkResult(_Result):
    ok: bool = True


# --------------------------------------------------------------------------- events


class Event(_Result):
    """Every event: its topic, a daemon-wide sequence number and when it happened.

    The daemon builds each event from its model (``ClientStatusChanged(client_id=...)``);
    its bus numbers it (``seq``) and stamps it (``at``) as it publishes it.
    """

    topic: Topic
    seq: int = Field(default=0, description="Set as the event is published (from 1).")
    at: str = Field(default="", description="Set as the event is published.")


class ClientStatusChanged(Event):
    topic: Topic = Topic.CLIENT_STATUS_CHANGED
    client_id: int
    name: str
    old_status: ConnectionStatus | None
    status: ConnectionStatus
    reason: str | None = None


class ClientReauthorised(Event):
    topic: Topic = Topic.CLIENT_REAUTHORISED
    client_id: int
    name: str
    grant_id: int


class ClientsImported(Event):
    topic: Topic = Topic.CLIENTS_IMPORTED
    created: list[int]
    updated: list[int]
    more: int = Field(
        default=0, description="How many more clients changed than are listed (a big import)."
    )


class AuthCompleted(Event):
    topic: Topic = Topic.AUTH_COMPLETED
    session_id: str
    provider: str
    client_id: int | None = None
    grant_id: int
    tenants: list[Tenant]


class AuthFailed(Event):
    topic: Topic = Topic.AUTH_FAILED
    session_id: str
    provider: str
    client_id: int | None = None
    code: int
    message: str


class NotificationEvent(Event):
    topic: Topic = Topic.NOTIFICATION
    id: int
    kind: NotificationKind
    title: str
    body: str
    client_ids: list[int]
    unread: int


class JobProgress(Event):
    """A job's progress (``job.progress``) or its end (``job.finished``): give the topic."""

    job_id: int
    kind: JobKind
    state: JobState
    total: int
    done: int
    failed: int
    current: str | None = None
    rate_per_minute: float | None = None
    eta_seconds: float | None = None
    waiting_for_sign_in: SignInWait | None = None


class NotificationsRead(Event):
    """Notifications were marked read (acknowledged, or cleared by a recovery)."""

    topic: Topic = Topic.NOTIFICATIONS_READ
    unread: int


class InvitationChanged(Event):
    """An invitation moved on: sent, delivered, opened, connected, failed or uncertain."""

    topic: Topic = Topic.INVITATION_CHANGED
    invitation_id: int
    client_id: int
    name: str
    state: str


class BankConnectionChanged(Event):
    """A client's bank connection changed status (e.g. broke: it needs a reconnect)."""

    topic: Topic = Topic.BANK_CONNECTION_CHANGED
    client_id: int
    name: str
    connection_id: str
    institution_id: str
    status: str
    needs_reconnect: bool


EVENT_MODELS: dict[Topic, type[Event]] = {
    Topic.CLIENT_STATUS_CHANGED: ClientStatusChanged,
    Topic.CLIENT_REAUTHORISED: ClientReauthorised,
    Topic.CLIENTS_IMPORTED: ClientsImported,
    Topic.AUTH_COMPLETED: AuthCompleted,
    Topic.AUTH_FAILED: AuthFailed,
    Topic.NOTIFICATION: NotificationEvent,
    Topic.JOB_PROGRESS: JobProgress,
    Topic.JOB_FINISHED: JobProgress,
    Topic.INVITATION_CHANGED: InvitationChanged,
    Topic.NOTIFICATIONS_READ: NotificationsRead,
    Topic.BANK_CONNECTION_CHANGED: BankConnectionChanged,
}


# --------------------------------------------------------------------------- methods


P = TypeVar("P", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)


@dataclass(frozen=True)
class Method(Generic[P, R]):
    """One RPC method: its wire name, parameter and result models and a one-line description.

    Each method is a constant below (``CLIENTS_LIST``...), typed in its params and result, so
    ``await client.call(CLIENTS_LIST, limit=10)`` is a ``ClientsListResult`` to a type checker.
    """

    name: str
    params: type[P]
    result: type[R]
    summary: str
    role: Role = Role.STAFF
    """The least role that may call it (checked by the daemon before the handler runs)."""


MethodSpec = Method
"""The former name of :class:`Method`."""


DAEMON_HELLO = Method(
    "daemon.hello",
    HelloParams,
    HelloResult,
    "Negotiate the protocol version.",
    role=Role.READ_ONLY,
)


DAEMON_STATUS = Method(
    "daemon.status",
    Empty,
    DaemonStatusResult,
    "What the daemon holds and does.",
    role=Role.READ_ONLY,
)


PROVIDERS_LIST = Method(
    "providers.list",
    Empty,
    ProvidersListResult,
    "The configured accounting software.",
    role=Role.READ_ONLY,
)


PROVIDERS_SET_SECRET = Method(
    "providers.set_secret",
    ProviderSecretParams,
    OkResult,
    "Store an app's client secret in the vault.",
    role=Role.ADMIN,
)


CLIENTS_LIST = Method(
    "clients.list",
    ClientsListParams,
    ClientsListResult,
    "List clients, filtered.",
    role=Role.READ_ONLY,
)


CLIENTS_GET = Method(
    "clients.get",
    ClientIdParams,
    Client,
    "One client.",
    role=Role.READ_ONLY,
)


CLIENTS_IMPORT = Method(
    "clients.import",
    ClientsImportParams,
    ClientsImportResult,
    "Create or update clients from a grant's tenants.",
)


CLIENTS_ATTACH = Method(
    "clients.attach",
    ClientAttachParams,
    Client,
    "Move an existing client to a grant's tenant of other software with the same ABN (the "
    "business changed software): one transaction, audited; a conflict changes nothing.",
)


CLIENTS_CHECK = Method(
    "clients.check",
    ClientsCheckParams,
    ClientsCheckResult,
    "Verify clients' connections now with one provider call each.",
)


CLIENTS_HISTORY = Method(
    "clients.history",
    ClientHistoryParams,
    ClientHistoryResult,
    "A connection's history: status changes, refreshes, re-authorisations.",
    role=Role.READ_ONLY,
)


CLIENTS_REFRESH = Method(
    "clients.refresh",
    ClientRefreshParams,
    Client,
    "Refresh the client's grant now and verify it with one provider call.",
)


CLIENTS_EXPORT = Method(
    "clients.export",
    ClientsExportParams,
    ExportResult,
    "Write clients to a CSV file with the chosen columns.",
)


CLIENTS_IMPORT_FILE = Method(
    "clients.import_file",
    ClientsImportFileParams,
    ClientsImportFileResult,
    "Preview, then import, clients from a CSV or XLSX file: every row checked, all or nothing.",
)


CLIENTS_DEACTIVATE = Method(
    "clients.deactivate",
    ClientIdsParams,
    ClientsChangedResult,
    "Stop watching clients; their data is kept and they are listed as inactive.",
)


CLIENTS_REACTIVATE = Method(
    "clients.reactivate",
    ClientIdsParams,
    ClientsChangedResult,
    "Watch deactivated clients again.",
)


CLIENTS_APPLY_REIMPORT = Method(
    "clients.apply_reimport",
    ReimportApplyParams,
    ClientsChangedResult,
    "Apply the differences a re-import job found, after review.",
)


CLIENTS_UPDATE = Method(
    "clients.update",
    ClientUpdateParams,
    Client,
    "Correct a client's email or phone (validated; nothing saved when invalid).",
)


TEMPLATES_LIST = Method(
    "templates.list",
    Empty,
    TemplatesListResult,
    "Invitation templates: the built-in defaults and the practice's own.",
    role=Role.READ_ONLY,
)


TEMPLATES_CREATE = Method(
    "templates.create",
    TemplateCreateParams,
    InvitationTemplate,
    "Save a new invitation template (placeholders checked).",
)


TEMPLATES_UPDATE = Method(
    "templates.update",
    TemplateUpdateParams,
    InvitationTemplate,
    "Change a template of the practice's own.",
)


TEMPLATES_DELETE = Method(
    "templates.delete",
    TemplateIdParams,
    OkResult,
    "Delete a template of the practice's own.",
)


TEMPLATES_PREVIEW = Method(
    "templates.preview",
    TemplatePreviewParams,
    TemplatePreviewResult,
    "Render a template for one client, with SMS segment count.",
    role=Role.READ_ONLY,
)


INVITES_SEND = Method(
    "invites.send",
    InviteParams,
    JobStartResult,
    "Invite one client (a persistent job of one).",
)


INVITES_PREVIEW = Method(
    "invites.preview",
    InvitesPreviewParams,
    InvitesPreviewResult,
    "What a bulk invitation would send: counts per channel, who is skipped and why, one "
    "client's rendered message and the SMS segments of each.",
    role=Role.READ_ONLY,
)


INVITES_LIST = Method(
    "invites.list",
    InvitesListParams,
    InvitesListResult,
    "Invitations, newest first: a client's communication timeline.",
    role=Role.READ_ONLY,
)


INVITES_RESEND = Method(
    "invites.resend",
    InvitationIdParams,
    JobStartResult,
    "Send an invitation again with a new link (the old one stops working).",
)


INVITES_FOLLOW_UP = Method(
    "invites.follow_up",
    Empty,
    FollowUpResult,
    "Ask the SMS and bank-feed services what became of open invitations now.",
)


BANKS_CONNECTIONS = Method(
    "banks.connections",
    ClientIdParams,
    BankConnectionsResult,
    "A client's bank connections as last seen; broken ones need a reconnect.",
    role=Role.READ_ONLY,
)


BANKS_LIST = Method(
    "banks.list",
    Empty,
    BanksListResult,
    "The banks clients can connect.",
    role=Role.READ_ONLY,
)


CHANNELS_SET_SECRET = Method(
    "channels.set_secret",
    ChannelSecretParams,
    OkResult,
    "Store the SMTP password, SMS token or bank-feed API key in the vault.",
    role=Role.ADMIN,
)


JOBS_START = Method(
    "jobs.start",
    JobStartParams,
    JobStartResult,
    "Start a persistent bulk job.",
)


JOBS_LIST = Method(
    "jobs.list",
    JobsListParams,
    JobsListResult,
    "Jobs, newest first.",
    role=Role.READ_ONLY,
)


JOBS_GET = Method(
    "jobs.get",
    JobGetParams,
    Job,
    "One job, with its items if asked.",
    role=Role.READ_ONLY,
)


JOBS_CANCEL = Method(
    "jobs.cancel",
    JobIdParams,
    Job,
    "Stop a job; items not started are skipped.",
)


JOBS_PAUSE = Method(
    "jobs.pause",
    JobIdParams,
    Job,
    "Pause a running job.",
)


JOBS_RESUME = Method(
    "jobs.resume",
    JobIdParams,
    Job,
    "Resume a paused job.",
)


JOBS_RETRY = Method(
    "jobs.retry",
    JobIdParams,
    JobStartResult,
    "A new job for the failed items of a finished job.",
)


JOBS_ADD_SIGN_IN = Method(
    "jobs.add_sign_in",
    JobAddSignInParams,
    Job,
    "Give a waiting re-authorisation the sign-in to the business it waits for.",
)


JOBS_SKIP_SIGN_IN = Method(
    "jobs.skip_sign_in",
    JobSkipSignInParams,
    Job,
    "Skip the business a re-authorisation waits for: its clients fail, the job moves on.",
)


JOBS_EXPORT = Method(
    "jobs.export",
    JobExportParams,
    ExportResult,
    "Write a job's per-client outcome to a CSV file.",
)


NOTIFICATIONS_LIST = Method(
    "notifications.list",
    NotificationsListParams,
    NotificationsListResult,
    "Stored notifications, newest first, with the unread count.",
    role=Role.READ_ONLY,
)


NOTIFICATIONS_ACK = Method(
    "notifications.ack",
    NotificationsAckParams,
    NotificationsAckResult,
    "Mark notifications read.",
    role=Role.READ_ONLY,
)


AUTH_BEGIN = Method(
    "auth.begin",
    AuthBeginParams,
    AuthBeginResult,
    "Open a sign-in session.",
)


AUTH_COMPLETE = Method(
    "auth.complete",
    AuthCompleteParams,
    AuthCompleteResult,
    "Finish a sign-in with the URL the browser was redirected to.",
)


AUTH_STATUS = Method(
    "auth.status",
    AuthSessionParams,
    AuthStatusResult,
    "A sign-in session's state.",
    role=Role.READ_ONLY,
)


AUTH_CANCEL = Method(
    "auth.cancel",
    AuthSessionParams,
    AuthStatusResult,
    "Abandon a sign-in session.",
)


EVENTS_SUBSCRIBE = Method(
    "events.subscribe",
    EventsSubscribeParams,
    EventsSubscribeResult,
    "Receive events on this connection.",
    role=Role.READ_ONLY,
)


AUDIT_LIST = Method(
    "audit.list",
    AuditListParams,
    AuditListResult,
    "Who did what, newest first.",
    role=Role.READ_ONLY,
)


GRANTS_LIST = Method(
    "grants.list",
    GrantsListParams,
    GrantsListResult,
    "Stored authorisations, with the unused sign-ins among them.",
    role=Role.READ_ONLY,
)


GRANTS_REVOKE = Method(
    "grants.revoke",
    GrantIdParams,
    GrantRevokeResult,
    "Revoke an unused sign-in at the provider and stop watching it.",
)


AUDIT_EXPORT = Method(
    "audit.export",
    AuditExportParams,
    ExportResult,
    "Write the audit trail (filtered by staff member or client) to a CSV file.",
)


STAFF_LIST = Method(
    "staff.list",
    StaffListParams,
    StaffListResult,
    "The practice's staff: login, name, email, role, active or left.",
    role=Role.ADMIN,
)


STAFF_ADD = Method(
    "staff.add",
    StaffAddParams,
    StaffMember,
    "Put a Unix login on the staff list with a role.",
    role=Role.ADMIN,
)


STAFF_UPDATE = Method(
    "staff.update",
    StaffUpdateParams,
    StaffMember,
    "Change a staff member's name, email or role, or bring them back after leaving.",
    role=Role.ADMIN,
)


STAFF_LEAVE = Method(
    "staff.leave",
    StaffLeaveParams,
    StaffLeaveResult,
    "Mark a staff member as left; list and flag the clients resting on their sign-ins.",
    role=Role.ADMIN,
)


# --------------------------------------------------------------------------- alerts


AgentScope = Literal["mine", "all"]
"""Which connections a staff member's desktop agent notifies about: the ones whose grant
they authorised, or every client's."""


class StaffPreferences(_Result):
    """A staff member's own choices about the alerts that reach them."""

    agent: AgentScope = Field(
        default="mine", description="Desktop notices for my connections only, or for all."
    )
    email_alerts: bool = Field(
        default=True, description="Digest emails about my connections that need attention."
    )


class StaffPreferencesResult(_Result):
    """Who the caller is to the daemon, and their alert preferences."""

    login: str
    display_name: str
    firm: bool = Field(description="Whether the daemon serves a practice's staff (firm mode).")
    on_staff_list: bool
    email: str | None = None
    preferences: StaffPreferences


class StaffSetPreferencesParams(_Params):
    """Change the caller's own preferences; fields left out keep their value."""

    agent: AgentScope | None = None
    email_alerts: bool | None = None


class AlertMail(_Result):
    """One digest email about connections needing attention, and what became of it."""

    id: int
    recipient: str
    staff_login: str | None = None
    state: Literal["queued", "sending", "sent", "failed", "uncertain", "dropped"]
    due_at: str
    attempts: int
    error: str | None = None
    client_ids: list[int]
    created_at: str
    sent_at: str | None = None


class AlertsListParams(_Params):
    limit: int = Field(default=100, ge=1, le=1000)


class AlertsListResult(_Result):
    items: list[AlertMail]


STAFF_PREFERENCES = Method(
    "staff.preferences",
    Empty,
    StaffPreferencesResult,
    "Who I am to the daemon, and my alert preferences.",
    role=Role.READ_ONLY,
)


STAFF_SET_PREFERENCES = Method(
    "staff.set_preferences",
    StaffSetPreferencesParams,
    StaffPreferencesResult,
    "Change my own alert preferences (anyone may set their own).",
    role=Role.READ_ONLY,
)


ALERTS_LIST = Method(
    "alerts.list",
    AlertsListParams,
    AlertsListResult,
    "Alert digest emails, newest first: who, which clients, sent or why not.",
)


METHODS: dict[str, Method[Any, Any]] = {
    method.name: method
    for method in (
        DAEMON_HELLO,
        DAEMON_STATUS,
        PROVIDERS_LIST,
        PROVIDERS_SET_SECRET,
        CLIENTS_LIST,
        CLIENTS_GET,
        CLIENTS_IMPORT,
        CLIENTS_ATTACH,
        CLIENTS_CHECK,
        CLIENTS_HISTORY,
        CLIENTS_REFRESH,
        CLIENTS_EXPORT,
        CLIENTS_IMPORT_FILE,
        CLIENTS_DEACTIVATE,
        CLIENTS_REACTIVATE,
        CLIENTS_APPLY_REIMPORT,
        CLIENTS_UPDATE,
        TEMPLATES_LIST,
        TEMPLATES_CREATE,
        TEMPLATES_UPDATE,
        TEMPLATES_DELETE,
        TEMPLATES_PREVIEW,
        INVITES_SEND,
        INVITES_PREVIEW,
        INVITES_LIST,
        INVITES_RESEND,
        INVITES_FOLLOW_UP,
        BANKS_CONNECTIONS,
        BANKS_LIST,
        CHANNELS_SET_SECRET,
        JOBS_START,
        JOBS_LIST,
        JOBS_GET,
        JOBS_CANCEL,
        JOBS_PAUSE,
        JOBS_RESUME,
        JOBS_RETRY,
        JOBS_ADD_SIGN_IN,
        JOBS_SKIP_SIGN_IN,
        JOBS_EXPORT,
        NOTIFICATIONS_LIST,
        NOTIFICATIONS_ACK,
        AUTH_BEGIN,
        AUTH_COMPLETE,
        AUTH_STATUS,
        AUTH_CANCEL,
        EVENTS_SUBSCRIBE,
        AUDIT_LIST,
        GRANTS_LIST,
        GRANTS_REVOKE,
        AUDIT_EXPORT,
        STAFF_LIST,
        STAFF_ADD,
        STAFF_UPDATE,
        STAFF_LEAVE,
        STAFF_PREFERENCES,
        STAFF_SET_PREFERENCES,
        ALERTS_LIST,
    )
}
"""Every method by its wire name (the daemon serves exactly these)."""
