"""The daemon's SQLite store: one :class:`Store` with every query, split by aggregate.

Where each thing lives:

- ``schema``: the migrations and their runner.
- ``core``: opening the database, the one writer, its identity, the disk reserve,
  ``transaction()``, ``after_commit``, and the one-hop units (``run_sync``, and
  ``commit_unit``: the job engine's group commit).
- one module per aggregate, each a class of that aggregate's queries and the frozen
  dataclasses of its rows: ``clients`` (and their history), ``grants`` (and their tenants,
  and the watcher's schedule), ``jobs``, ``invitations``, ``banks``, ``templates``,
  ``notifications``, ``audit``, ``staff``, ``alerts``, ``secrets`` (and ``meta``).

Callers import from here (``from clientlink.daemon.store import Store, GrantRow``) and
never from the modules, so the split stays an inside matter.
"""

from __future__ import annotations

from clientlink.daemon.store.alerts import AlertItemRow, AlertMailRow, AlertQueries
from clientlink.daemon.store.audit import AuditQueries, AuditRow, add_audit_sync
from clientlink.daemon.store.banks import BankConnectionRow, BankQueries, set_bank_user_sync
from clientlink.daemon.store.clients import (
    CLIENT_COLUMNS,
    CLIENT_FROM,
    ClientQueries,
    ClientRow,
    HistoryRow,
    add_history_sync,
    find_by_tenant_sync,
    set_status_sync,
    update_details_sync,
)
from clientlink.daemon.store.core import Database, Unit
from clientlink.daemon.store.grants import (
    GrantQueries,
    GrantRow,
    GrantSummary,
    GrantTimes,
    TenantRow,
)
from clientlink.daemon.store.invitations import (
    InvitationQueries,
    InvitationRow,
    add_invitation_sync,
    bank_user_state_sync,
    update_invitation_sync,
)
from clientlink.daemon.store.jobs import (
    JobItemRow,
    JobQueries,
    JobRow,
    claim_sync,
    finish_item_sync,
)
from clientlink.daemon.store.notifications import NotificationQueries, NotificationRow
from clientlink.daemon.store.schema import MIGRATIONS, split_statements
from clientlink.daemon.store.secrets import MetaAndSecrets, set_meta_sync
from clientlink.daemon.store.staff import StaffQueries, StaffRow
from clientlink.daemon.store.templates import TemplateQueries, TemplateRow


class Store(
    MetaAndSecrets,
    GrantQueries,
    ClientQueries,
    NotificationQueries,
    JobQueries,
    TemplateQueries,
    InvitationQueries,
    BankQueries,
    AuditQueries,
    StaffQueries,
    AlertQueries,
    Database,
):
    """All reads and writes of the daemon's database."""


__all__ = [
    "CLIENT_COLUMNS",
    "CLIENT_FROM",
    "MIGRATIONS",
    "AlertItemRow",
    "AlertMailRow",
    "AuditRow",
    "BankConnectionRow",
    "ClientRow",
    "GrantRow",
    "GrantSummary",
    "GrantTimes",
    "HistoryRow",
    "InvitationRow",
    "JobItemRow",
    "JobRow",
    "NotificationRow",
    "StaffRow",
    "Store",
    "TemplateRow",
    "TenantRow",
    "Unit",
    "add_audit_sync",
    "add_history_sync",
    "add_invitation_sync",
    "bank_user_state_sync",
    "claim_sync",
    "find_by_tenant_sync",
    "finish_item_sync",
    "set_bank_user_sync",
    "set_meta_sync",
    "set_status_sync",
    "split_statements",
    "update_details_sync",
    "update_invitation_sync",
]
