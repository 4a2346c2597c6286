"""App-wide messages: the daemon's connection state and the events it pushes.

The app posts a fresh instance to every screen on the stack; none of them bubble, so a
screen handles each one once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from clientlink.common import protocol


@dataclass
class DaemonConnected(Message, bubble=False):
    """The app (re)connected to clientlinkd and subscribed to its events: reload your data.

    Also sent when the connection missed events (``resync`` says why): what a screen shows
    may be stale, so it reloads exactly as after a reconnect.
    """

    hello: dict[str, Any]
    resync: str = ""


@dataclass
class DaemonDisconnected(Message, bubble=False):
    """The connection to clientlinkd is gone; the app is trying again."""

    reason: str


@dataclass
class ClientStatusChanged(Message, bubble=False):
    """A client's connection status changed."""

    event: protocol.ClientStatusChanged


@dataclass
class ClientReauthorised(Message, bubble=False):
    """A client was bound to a fresh grant."""

    event: protocol.ClientReauthorised


@dataclass
class ClientsImported(Message, bubble=False):
    """Clients were created or updated from a grant."""

    event: protocol.ClientsImported


@dataclass
class AuthCompleted(Message, bubble=False):
    """A sign-in session finished and the daemon holds a new grant."""

    event: protocol.AuthCompleted


@dataclass
class AuthFailed(Message, bubble=False):
    """A sign-in session failed; the event says why."""

    event: protocol.AuthFailed


@dataclass
class NotificationRaised(Message, bubble=False):
    """clientlinkd stored a new notification; the event carries the unread count."""

    event: protocol.NotificationEvent


@dataclass
class JobProgressed(Message, bubble=False):
    """A job moved on. A flood collapses: only the newest pending one per job is handled."""

    event: protocol.JobProgress

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, JobProgressed) and message.event.job_id == self.event.job_id


@dataclass
class JobFinished(Message, bubble=False):
    """A job ended: completed, failed or cancelled. Never collapsed."""

    event: protocol.JobProgress


@dataclass
class InvitationChanged(Message, bubble=False):
    """An invitation's state changed: timelines showing its client reload."""

    event: protocol.InvitationChanged


@dataclass
class BankConnectionChanged(Message, bubble=False):
    """A client's bank connection changed status; ``needs_reconnect`` says it broke."""

    event: protocol.BankConnectionChanged


EVENT_MESSAGES: dict[protocol.Topic, type[Message]] = {
    protocol.Topic.CLIENT_STATUS_CHANGED: ClientStatusChanged,
    protocol.Topic.CLIENT_REAUTHORISED: ClientReauthorised,
    protocol.Topic.CLIENTS_IMPORTED: ClientsImported,
    protocol.Topic.AUTH_COMPLETED: AuthCompleted,
    protocol.Topic.AUTH_FAILED: AuthFailed,
    protocol.Topic.NOTIFICATION: NotificationRaised,
    protocol.Topic.JOB_PROGRESS: JobProgressed,
    protocol.Topic.JOB_FINISHED: JobFinished,
    protocol.Topic.INVITATION_CHANGED: InvitationChanged,
    protocol.Topic.BANK_CONNECTION_CHANGED: BankConnectionChanged,
}
"""The message each event topic becomes; topics not listed are not shown by the TUI yet."""

EVENT_MODELS: dict[protocol.Topic, type[protocol.Event]] = protocol.EVENT_MODELS
"""How each topic's fields are read."""
