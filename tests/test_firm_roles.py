"""Roles, the staff list and who owns which connection, with real staff over a firm's group
socket (``tests/firm.py``): every call is made by a real Unix user running the real
``clientlink``, so the daemon knows who is calling only from the peer's uid."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.protocol import ErrorCode
from clientlink.sandbox.accounts import DEMO_USER, QUICKBOOKS_CLIENT_SECRET
from clientlink.sandbox.approve import approve
from tests.firm import ADMIN, NEWCOMER, PEOPLE, READ_ONLY, STAFF_MEMBER, FirmDaemon


async def refused(firm: FirmDaemon, login: str, method: p.Method, params: dict) -> RpcError:  # type: ignore[type-arg]
    with pytest.raises(RpcError) as caught:
        await firm.call(login, method, params)
    return caught.value


def stored_secrets(firm: FirmDaemon) -> list[tuple]:  # type: ignore[type-arg]
    """The vault's sealed secrets as committed (read as root, as an auditor would)."""
    with contextlib.closing(sqlite3.connect(f"file:{firm.home.database}?mode=ro", uri=True)) as db:
        return db.execute("SELECT * FROM secrets ORDER BY 1").fetchall()


@pytest.fixture
def outbox() -> Iterator[Path]:
    """A folder anyone may write in (the daemon writes exports as its service account)."""
    folder = Path(tempfile.mkdtemp(prefix="clf-out-"))
    folder.chmod(0o1777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


async def test_read_only_staff_may_look_but_each_change_is_refused_naming_the_role(
    firm_practice: FirmDaemon, outbox: Path
) -> None:
    firm = firm_practice
    listing = await firm.call(READ_ONLY, p.CLIENTS_LIST, {"limit": 1000})
    client = listing["items"][0]
    jobs_before = await firm.call(ADMIN, p.JOBS_LIST, {})
    audit_before = await firm.call(ADMIN, p.AUDIT_LIST, {"limit": 10_000})
    secrets_before = stored_secrets(firm)
    target = outbox / "clients.csv"
    attempts = [
        (p.CLIENTS_EXPORT, {"path": str(target)}, "staff"),
        (p.INVITES_SEND, {"client_id": client["id"], "channel": "email"}, "staff"),
        (p.JOBS_START, {"kind": "reauthorise", "client_ids": [client["id"]]}, "staff"),
        (p.CLIENTS_DEACTIVATE, {"client_ids": [client["id"]]}, "staff"),
        (p.AUTH_BEGIN, {"provider": "xero", "client_id": client["id"]}, "staff"),
        (p.AUDIT_EXPORT, {"path": str(target)}, "staff"),
        (p.PROVIDERS_SET_SECRET, {"provider": "quickbooks", "client_secret": "x"}, "admin"),
        (p.CHANNELS_SET_SECRET, {"channel": "email", "secret": "x"}, "admin"),
        (p.STAFF_LIST, {}, "admin"),
    ]
    for method, params, needed in attempts:
        error = await refused(firm, READ_ONLY, method, params)
        assert error.code == ErrorCode.ROLE_REQUIRED, (method.name, error.message)
        assert f"{method.name} needs the {needed} role" in error.message
        assert f"{READ_ONLY} is read-only" in error.message
        assert "Nothing was changed" in error.message
        assert (error.data["role_needed"], error.data["role"]) == (needed, "read-only")
    # Nothing changed: no file, no job, no invitation, the client still active and
    # watched, no new line in the audit, the app secret as it was.
    assert not target.exists()
    assert await firm.call(ADMIN, p.JOBS_LIST, {}) == jobs_before
    assert (await firm.call(ADMIN, p.INVITES_LIST, {"client_id": client["id"]}))["items"] == []
    assert (await firm.call(ADMIN, p.CLIENTS_GET, {"client_id": client["id"]}))["active"]
    assert await firm.call(ADMIN, p.AUDIT_LIST, {"limit": 10_000}) == audit_before
    assert stored_secrets(firm) == secrets_before
    # And the command line says the same, without a traceback.
    result = await firm.cli(READ_ONLY, "staff", "list")
    assert result.code == 2 and "Traceback" not in result.err
    assert "staff.list needs the admin role" in result.err


async def test_staff_do_their_work_but_only_admins_manage_staff_and_secrets(
    firm_practice: FirmDaemon, outbox: Path
) -> None:
    firm = firm_practice
    target = outbox / "clients.csv"
    exported = await firm.call(STAFF_MEMBER, p.CLIENTS_EXPORT, {"path": str(target)})
    assert exported["rows"] > 0 and target.exists()
    for method, params in (
        (p.STAFF_ADD, {"login": NEWCOMER}),
        (p.STAFF_UPDATE, {"login": STAFF_MEMBER, "role": "admin"}),
        (p.PROVIDERS_SET_SECRET, {"provider": "quickbooks", "client_secret": "x"}),
    ):
        error = await refused(firm, STAFF_MEMBER, method, params)
        assert error.code == ErrorCode.ROLE_REQUIRED
        assert f"{method.name} needs the admin role; {STAFF_MEMBER} is staff" in error.message
    staff = await firm.call(ADMIN, p.STAFF_LIST, {})
    roles = {member["login"]: member["role"] for member in staff["items"]}
    assert NEWCOMER not in roles and roles[STAFF_MEMBER] == "staff"
    assert staff["firm"] is True
    # The admin may.
    await firm.call(
        ADMIN,
        p.PROVIDERS_SET_SECRET,
        {"provider": "quickbooks", "client_secret": QUICKBOOKS_CLIENT_SECRET},
    )


async def test_an_admin_adds_a_newcomer_who_can_then_connect_and_the_audit_names_the_admin(
    firm: FirmDaemon,
) -> None:
    with pytest.raises(RpcError) as before:
        await firm.call(NEWCOMER, p.CLIENTS_LIST)
    assert f"clientlink staff add {NEWCOMER}" in before.value.message

    result = await firm.cli(ADMIN, "staff", "add", NEWCOMER, "--role", "read-only")
    assert result.code == 0, result.err
    assert PEOPLE[NEWCOMER] in result.out  # the system's full name, by default
    assert (await firm.call(NEWCOMER, p.CLIENTS_LIST))["total"] == 0
    # Read-only as added: a change is refused for them.
    error = await refused(firm, NEWCOMER, p.TEMPLATES_CREATE, {})
    assert error.code == ErrorCode.ROLE_REQUIRED

    trail = await firm.call(ADMIN, p.AUDIT_LIST, {"actor": ADMIN})
    added = next(entry for entry in trail["items"] if entry["action"] == "staff.added")
    assert (added["actor"], added["actor_name"], added["detail"]["login"]) == (
        ADMIN,
        PEOPLE[ADMIN],
        NEWCOMER,
    )
    # Made staff by the admin, they may now do what staff do.
    await firm.call(ADMIN, p.STAFF_UPDATE, {"login": NEWCOMER, "role": "staff"})
    template = await firm.call(
        NEWCOMER,
        p.TEMPLATES_CREATE,
        {
            "name": "Newt's reminder",
            "channel": "email",
            "subject": "Hi",
            "body": "Hello, connect here: {link}",
        },
    )
    assert template["name"] == "Newt's reminder"
    mine = await firm.call(ADMIN, p.AUDIT_LIST, {"actor": NEWCOMER})
    assert [entry["actor"] for entry in mine["items"]] == [NEWCOMER] * mine["total"]
    assert mine["total"] >= 1


async def test_my_connections_differ_between_two_staff_and_show_who_signed_in(
    firm_practice: FirmDaemon,
) -> None:
    firm = firm_practice
    everyone = await firm.call(ADMIN, p.CLIENTS_LIST, {"limit": 1000})
    client = next(c for c in everyone["items"] if c["provider"] == "xero" and c["tenant_id"])
    # Sam re-authorises one client: a real sign-in, the redirect pasted back as Sam.
    begun = await firm.call(
        STAFF_MEMBER, p.AUTH_BEGIN, {"provider": "xero", "client_id": client["id"]}
    )
    redirect = await approve(begun["authorize_url"], orgs=[client["tenant_id"]])
    await firm.call(
        STAFF_MEMBER,
        p.AUTH_COMPLETE,
        {"session_id": begun["session_id"], "redirect_url": redirect},
    )

    sams = await firm.call(STAFF_MEMBER, p.CLIENTS_LIST, {"filter": {"mine": True}})
    alexs = await firm.call(ADMIN, p.CLIENTS_LIST, {"filter": {"mine": True}})
    assert [c["id"] for c in sams["items"]] == [client["id"]]
    assert client["id"] not in [c["id"] for c in alexs["items"]]
    owned = sams["items"][0]
    assert (owned["owner_login"], owned["owner_name"]) == (STAFF_MEMBER, PEOPLE[STAFF_MEMBER])
    assert owned["provider_user"]["email"] == DEMO_USER
    assert owned["owner_label"].startswith(f"{PEOPLE[STAFF_MEMBER]}, as {DEMO_USER} in Xero")
    # Anyone may see who owns it; the CLI's --mine says the same.
    seen = await firm.call(READ_ONLY, p.CLIENTS_GET, {"client_id": client["id"]})
    assert seen["owner_label"] == owned["owner_label"]
    result = await firm.cli(STAFF_MEMBER, "clients", "--mine")
    assert result.code == 0 and "1 client" in result.out
    # The sign-in is in the audit under Sam's login, with the provider user.
    trail = await firm.call(ADMIN, p.AUDIT_LIST, {"actor": STAFF_MEMBER})
    created = next(e for e in trail["items"] if e["action"] == "grant.created")
    assert created["detail"]["provider_user"]["email"] == DEMO_USER
