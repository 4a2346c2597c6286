"""The database's schema: its migrations, in order, and the runner that applies them.

``PRAGMA user_version`` holds how many migrations a database has had. A migration is never
edited once released; a change to the schema is a new migration at the end of the list.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiosqlite

MIGRATIONS: list[str] = [
    # 1: the walking skeleton
    """
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE secrets (
        name TEXT PRIMARY KEY,
        ciphertext BLOB NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE grants (
        id INTEGER PRIMARY KEY,
        uid TEXT NOT NULL UNIQUE,
        provider TEXT NOT NULL,
        auth_event_id TEXT,
        token_ciphertext BLOB NOT NULL,
        access_expires_at TEXT,
        refresh_expires_at TEXT,
        hard_expires_at TEXT,
        state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'revoked')),
        state_reason TEXT,
        authorised_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        refreshed_at TEXT
    );
    CREATE TABLE grant_tenants (
        grant_id INTEGER NOT NULL REFERENCES grants(id) ON DELETE CASCADE,
        tenant_id TEXT NOT NULL,
        connection_id TEXT,
        tenant_name TEXT NOT NULL,
        tenant_type TEXT,
        auth_event_id TEXT,
        PRIMARY KEY (grant_id, tenant_id)
    );
    CREATE TABLE clients (
        id INTEGER PRIMARY KEY,
        provider TEXT NOT NULL,
        tenant_id TEXT,
        name TEXT NOT NULL,
        legal_name TEXT,
        abn TEXT,
        email TEXT,
        phone TEXT,
        grant_id INTEGER REFERENCES grants(id) ON DELETE SET NULL,
        status TEXT NOT NULL DEFAULT 'not_connected',
        status_reason TEXT,
        status_since TEXT NOT NULL,
        active INTEGER NOT NULL DEFAULT 1,
        last_verified_at TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (provider, tenant_id)
    );
    CREATE INDEX clients_by_status ON clients (active, status);
    CREATE INDEX clients_by_name ON clients (name COLLATE NOCASE);
    CREATE INDEX clients_by_grant ON clients (grant_id);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        client_id INTEGER,
        detail TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX audit_by_client ON audit (client_id, id);
    """,
    # 2: the connection watcher
    """
    ALTER TABLE grants ADD COLUMN next_check_at TEXT;
    ALTER TABLE grants ADD COLUMN failure_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE grants ADD COLUMN failure_days TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE grants ADD COLUMN last_error TEXT;
    CREATE TABLE client_history (
        id INTEGER PRIMARY KEY,
        client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT,
        old_status TEXT,
        reason TEXT,
        actor TEXT
    );
    CREATE INDEX client_history_by_client ON client_history (client_id, id);
    CREATE TABLE notifications (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        client_ids TEXT NOT NULL DEFAULT '[]',
        read INTEGER NOT NULL DEFAULT 0,
        desktop TEXT NOT NULL DEFAULT 'pending',
        desktop_id TEXT
    );
    CREATE INDEX notifications_unread ON notifications (read, id);
    """,
    # 3: the job engine
    """
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        params TEXT NOT NULL DEFAULT '{}',
        actor TEXT NOT NULL,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        total INTEGER NOT NULL,
        done INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        retry_of INTEGER REFERENCES jobs(id)
    );
    CREATE INDEX jobs_by_state ON jobs (state, id);
    CREATE TABLE job_items (
        id INTEGER PRIMARY KEY,
        job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        client_id INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        result TEXT,
        started_at TEXT,
        finished_at TEXT
    );
    CREATE INDEX job_items_by_job ON job_items (job_id, state, position);
    """,
    # 4: invitation templates
    """
    CREATE TABLE templates (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        channel TEXT NOT NULL CHECK (channel IN ('email', 'sms')),
        subject TEXT,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # 5: invitations
    """
    CREATE TABLE bank_users (
        client_id INTEGER PRIMARY KEY REFERENCES clients(id) ON DELETE CASCADE,
        user_id TEXT NOT NULL
    );
    CREATE TABLE invitations (
        id INTEGER PRIMARY KEY,
        client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
        job_item_id INTEGER,
        channel TEXT NOT NULL,
        template_id TEXT NOT NULL,
        bank_ids TEXT NOT NULL DEFAULT '[]',
        link_sealed BLOB,
        link_expires_at TEXT,
        state TEXT NOT NULL,
        provider_ref TEXT,
        error TEXT,
        actor TEXT NOT NULL,
        reminder_of INTEGER REFERENCES invitations(id),
        created_at TEXT NOT NULL,
        sent_at TEXT,
        delivered_at TEXT,
        opened_at TEXT,
        connected_at TEXT,
        reminded_at TEXT
    );
    CREATE INDEX invitations_by_client ON invitations (client_id, id);
    CREATE INDEX invitations_by_state ON invitations (state);
    CREATE UNIQUE INDEX invitations_by_item ON invitations (job_item_id);
    CREATE TABLE bank_connections (
        id TEXT PRIMARY KEY,
        client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
        institution_id TEXT NOT NULL,
        status TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # 6: refresh markers (a token call is recorded before it starts) and unused sign-ins
    """
    ALTER TABLE grants ADD COLUMN refresh_pending_since TEXT;
    ALTER TABLE grants ADD COLUMN bound_at TEXT;
    UPDATE grants SET bound_at = created_at
        WHERE EXISTS (SELECT 1 FROM clients c WHERE c.grant_id = grants.id);
    """,
    # 7: SMSF software: an entity's type (SMSF, trust, company...) and the provider business
    # (Class business, BGL firm) a client, a grant and each of its tenants belong to
    """
    ALTER TABLE clients ADD COLUMN entity_type TEXT;
    ALTER TABLE clients ADD COLUMN business TEXT;
    ALTER TABLE grants ADD COLUMN business TEXT;
    ALTER TABLE grant_tenants ADD COLUMN business TEXT;
    """,
    # 8: a practice's staff on one firm-mode daemon, and who signed in at the provider
    """
    CREATE TABLE staff (
        id INTEGER PRIMARY KEY,
        login TEXT NOT NULL UNIQUE,
        display_name TEXT NOT NULL,
        email TEXT,
        role TEXT NOT NULL CHECK (role IN ('admin', 'staff', 'read-only')),
        state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'left')),
        preferences TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        left_at TEXT
    );
    ALTER TABLE grants ADD COLUMN provider_user TEXT;
    """,
    # 9: the ABN each tenant list gave (BGL's fund list): a client whose provider id changed
    # is found by it (ABN as a hint)
    """
    ALTER TABLE grant_tenants ADD COLUMN abn TEXT;
    """,
    # 10: alert digests by email: one mail per recipient per window, each naming its clients
    """
    CREATE TABLE alert_mails (
        id INTEGER PRIMARY KEY,
        recipient TEXT NOT NULL,
        staff_login TEXT,
        state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN
            ('queued', 'sending', 'sent', 'failed', 'uncertain', 'dropped')),
        due_at TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        message_id TEXT,
        created_at TEXT NOT NULL,
        sent_at TEXT
    );
    CREATE INDEX alert_mails_by_state ON alert_mails (state, due_at);
    CREATE INDEX alert_mails_by_recipient ON alert_mails (recipient, state);
    CREATE TABLE alert_items (
        id INTEGER PRIMARY KEY,
        mail_id INTEGER NOT NULL REFERENCES alert_mails (id) ON DELETE CASCADE,
        client_id INTEGER NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
        status TEXT NOT NULL,
        reason TEXT,
        since TEXT NOT NULL,
        UNIQUE (mail_id, client_id, since)
    );
    """,
    # 11: Manage Clients' list (active clients by name) walks an index in name order and
    # stops at the page's end, instead of sorting every active client for each keystroke
    """
    CREATE INDEX clients_by_active_name ON clients (active, name COLLATE NOCASE);
    """,
]


async def migrate(
    db: aiosqlite.Connection, transaction: Callable[[], AbstractAsyncContextManager[Any]]
) -> None:
    """Bring the database up to the newest schema, one transaction per migration; refuse a
    database newer than this code."""
    async with db.execute("PRAGMA user_version") as cursor:
        (version,) = await cursor.fetchone()  # type: ignore[misc]
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"the database is at schema version {version}, newer than this clientlinkd "
            f"understands ({len(MIGRATIONS)}); upgrade clientlink"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        async with transaction():
            for statement in split_statements(script):
                await db.execute(statement)
            await db.execute(f"PRAGMA user_version = {number}")


def split_statements(script: str) -> list[str]:
    """The SQL statements of ``script``: split only where SQLite says a statement ends, so
    a trigger's body or a ``';'`` literal stays whole."""
    statements: list[str] = []
    start = 0
    for end, character in enumerate(script):
        if character == ";" and sqlite3.complete_statement(script[start : end + 1]):
            statement = script[start : end + 1].strip()
            if statement.strip(";").strip():
                statements.append(statement)
            start = end + 1
    rest = script[start:].strip()
    if rest:
        raise ValueError(f"incomplete SQL statement at the end of a migration: {rest[:60]!r}")
    return statements
