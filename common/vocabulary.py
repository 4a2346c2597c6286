"""The words both sides use for a staff member's role and a client's connection status.

Plain enums, no models: the command line builds its arguments from them without loading
the protocol's models. ``clientlink.common.protocol`` re-exports every name here.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """A staff member's role on a firm-mode daemon (single-user mode: the owner is admin).

    Read-only staff look; staff also re-authorise, invite, import and export; admins also
    manage staff, app credentials and channel secrets.
    """

    READ_ONLY = "read-only"
    STAFF = "staff"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return ROLE_RANKS[self]

    def allows(self, needed: Role) -> bool:
        """Whether this role may call what ``needed`` guards."""
        return self.rank >= needed.rank


ROLE_RANKS = {Role.READ_ONLY: 0, Role.STAFF: 1, Role.ADMIN: 2}


class ConnectionStatus(StrEnum):
    """A client's connection status: one vocabulary in the DB, RPC, TUI and CLI."""

    CONNECTED = "connected"
    EXPIRING = "expiring"
    NEEDS_REAUTH = "needs_reauth"
    NOT_CONNECTED = "not_connected"
    ERROR = "error"

    @property
    def label(self) -> str:
        """The words a person sees for this status."""
        return STATUS_LABELS[self]

    @property
    def needs_attention(self) -> bool:
        """Whether a person has to act on a client in this status."""
        return self in (
            ConnectionStatus.EXPIRING,
            ConnectionStatus.NEEDS_REAUTH,
            ConnectionStatus.ERROR,
        )


STATUS_LABELS = {
    ConnectionStatus.CONNECTED: "Connected",
    ConnectionStatus.EXPIRING: "Expiring",
    ConnectionStatus.NEEDS_REAUTH: "Needs re-auth",
    ConnectionStatus.NOT_CONNECTED: "Not connected",
    ConnectionStatus.ERROR: "Error",
}
