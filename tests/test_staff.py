"""The staff list, who owns each connection, and the audit trail by staff member and client,
in process over the real socket (the caller is the daemon's own user, its admin; real
identities over a firm's group socket are in ``test_firm_roles.py``)."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import pwd
from pathlib import Path

import pytest

from clientlink.common import protocol as p
from clientlink.common.client import DaemonClient, RpcError
from clientlink.common.protocol import ErrorCode, Role
from clientlink.daemon.rpc_errors import RpcFailure
from clientlink.sandbox.accounts import STAFF_USERS
from tests.conftest import Practice, RunningDaemon
from tests.helpers import clientlink_cli

ME = pwd.getpwuid(os.getuid()).pw_name
OTHER = "nobody"  # a login every Linux system has


async def _refused(rpc: DaemonClient, method: p.Method, code: ErrorCode, **params) -> str:  # type: ignore[type-arg]
    with pytest.raises(RpcError) as caught:
        await rpc.call(method, **params)
    assert caught.value.error_code == code, caught.value.message
    return caught.value.message


async def add_unconnected_client(rpc: DaemonClient, folder: Path) -> int:
    """A client added from a spreadsheet: never authorised, so resting on nobody's sign-in."""
    path = folder / "one-client.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Client name", "Software", "Software ID"])
        writer.writerow(["Nobody's Own Pty Ltd", "Xero", "t-not-yet-connected"])
    preview = await rpc.call(p.CLIENTS_IMPORT_FILE, path=str(path))
    done = await rpc.call(
        p.CLIENTS_IMPORT_FILE, path=str(path), confirm=True, digest=preview.digest
    )
    assert done.created == 1
    listed = await rpc.call(p.CLIENTS_LIST, filter={"text": "Nobody's Own"})
    return listed.items[0].id


async def test_an_admin_adds_and_changes_staff_and_each_change_is_audited(
    daemon: RunningDaemon, rpc: DaemonClient
) -> None:
    added = await rpc.call(
        p.STAFF_ADD, login=OTHER, display_name="  Sam   Lee ", email="Sam@Practice.Example"
    )
    assert (added.login, added.display_name, added.role, added.state) == (
        OTHER,
        "Sam Lee",
        Role.STAFF,
        "active",
    )
    assert added.email == "Sam@practice.example"  # the domain normalised, as for clients
    listed = await rpc.call(p.STAFF_LIST)
    assert [m.login for m in listed.items] == [OTHER]
    assert listed.firm is False
    # The directory sees the change at once: the name is what the audit shows.
    assert daemon.daemon.services.staff.member(OTHER).display_name == "Sam Lee"

    changed = await rpc.call(p.STAFF_UPDATE, login=OTHER, role="read-only", email="")
    assert (changed.role, changed.email) == (Role.READ_ONLY, None)

    trail = await rpc.call(p.AUDIT_LIST, actor=ME)
    actions = [(e.action, e.detail.get("login")) for e in trail.items]
    assert ("staff.added", OTHER) in actions
    update = next(e for e in trail.items if e.action == "staff.updated")
    assert update.detail["role"] == {"from": "staff", "to": "read-only"}
    assert update.actor == ME


async def test_bad_staff_input_is_refused_with_a_sentence_and_changes_nothing(
    daemon: RunningDaemon, rpc: DaemonClient
) -> None:
    message = await _refused(rpc, p.STAFF_ADD, ErrorCode.INVALID_PARAMS, login="no_such_person")
    assert "no user 'no_such_person'" in message and "useradd" in message
    message = await _refused(
        rpc, p.STAFF_ADD, ErrorCode.INVALID_PARAMS, login=OTHER, display_name="Sam\x1b]52;c;x\x07"
    )
    assert "control" in message and "\x1b" not in message
    await _refused(rpc, p.STAFF_ADD, ErrorCode.INVALID_PARAMS, login=OTHER, email="not an email")
    await _refused(rpc, p.STAFF_ADD, ErrorCode.INVALID_PARAMS, login="../etc")
    await _refused(rpc, p.STAFF_ADD, ErrorCode.INVALID_PARAMS, login=OTHER, role="owner")
    assert (await rpc.call(p.STAFF_LIST)).items == []

    await rpc.call(p.STAFF_ADD, login=OTHER)
    message = await _refused(rpc, p.STAFF_ADD, ErrorCode.CONFLICT, login=OTHER)
    assert "already on the staff list" in message
    message = await _refused(rpc, p.STAFF_UPDATE, ErrorCode.NOT_FOUND, login="ghost")
    assert "clientlink staff add ghost" in message
    # Leaving is its own step (it lists what rested on their sign-ins).
    message = await _refused(
        rpc, p.STAFF_UPDATE, ErrorCode.INVALID_PARAMS, login=OTHER, active=False
    )
    assert "clientlink staff leave" in message
    assert [(m.login, m.state) for m in (await rpc.call(p.STAFF_LIST)).items] == [(OTHER, "active")]


async def test_the_last_active_admin_cannot_be_demoted(
    daemon: RunningDaemon, rpc: DaemonClient
) -> None:
    await rpc.call(p.STAFF_ADD, login=ME, role="admin")
    await rpc.call(p.STAFF_ADD, login=OTHER, role="admin")
    # With two admins one may step down; then the other is the last and stays admin.
    assert (await rpc.call(p.STAFF_UPDATE, login=OTHER, role="staff")).role == Role.STAFF
    message = await _refused(rpc, p.STAFF_UPDATE, ErrorCode.CONFLICT, login=ME, role="read-only")
    assert "last active admin" in message
    assert (await daemon.daemon.store.get_staff(ME)).role == "admin"  # type: ignore[union-attr]
    # A name change of the last admin is fine.
    assert (await rpc.call(p.STAFF_UPDATE, login=ME, display_name="Alex Kim")).role == Role.ADMIN


async def test_a_connection_shows_its_owner_and_the_provider_user(
    practice: Practice, rpc: DaemonClient
) -> None:
    await rpc.call(p.STAFF_ADD, login=ME, display_name="Alex Kim", role="admin")
    client = await rpc.call(p.CLIENTS_GET, client_id=practice.xero_connected_ids[0])
    assert client.owner_login == ME == client.authorised_by
    assert client.owner_name == "Alex Kim"
    assert client.provider_user is not None
    signed_in_as = client.provider_user["email"]
    assert signed_in_as in STAFF_USERS
    software = practice.daemon.services.providers.definitions["xero"].display_name
    assert software.startswith("Xero")
    assert client.owner_label == f"Alex Kim, as {signed_in_as} in {software}"
    # The grant keeps who signed in at the provider.
    grant = await practice.daemon.store.get_grant(client.grant_id)  # type: ignore[union-attr,arg-type]
    assert grant is not None and signed_in_as in (grant.provider_user or "")
    listed = await rpc.call(p.CLIENTS_LIST, filter={"text": client.name})
    assert listed.items[0].owner_label == client.owner_label


async def test_my_connections_are_the_ones_i_authorised(
    practice: Practice, rpc: DaemonClient, short_tmp: Path
) -> None:
    unconnected = await add_unconnected_client(rpc, short_tmp)
    everyone = await rpc.call(p.CLIENTS_LIST, limit=1000)
    mine = await rpc.call(p.CLIENTS_LIST, filter={"mine": True}, limit=1000)
    assert mine.total == len(mine.items) == everyone.total - 1
    assert unconnected not in {c.id for c in mine.items}
    assert all(c.owner_login == ME and c.owner_label for c in mine.items)
    nobody = next(c for c in everyone.items if c.id == unconnected)
    assert (nobody.owner_login, nobody.owner_name, nobody.owner_label) == (None, None, None)
    # Combined with the other filters, and in an export of "mine".
    needing = await rpc.call(p.CLIENTS_LIST, filter={"mine": True, "status": "needs_reauth"})
    assert needing.total == len(practice.client_ids_needing_reauth)
    target = short_tmp / "mine.csv"
    exported = await rpc.call(p.CLIENTS_EXPORT, path=str(target), filter={"mine": True})
    assert exported.rows == mine.total


async def test_the_audit_filters_by_staff_member_and_client_and_pages(
    practice: Practice, rpc: DaemonClient
) -> None:
    client_id = practice.xero_connected_ids[0]
    await rpc.call(p.CLIENTS_UPDATE, client_id=client_id, email="books@client.example")
    await rpc.call(p.CLIENTS_UPDATE, client_id=client_id, phone="0491 570 156")
    for_client = await rpc.call(p.AUDIT_LIST, client_id=client_id)
    assert for_client.total == len(for_client.items) >= 2
    assert {e.client_id for e in for_client.items} == {client_id}
    assert (
        for_client.items[0].client_name == (await rpc.call(p.CLIENTS_GET, client_id=client_id)).name
    )
    assert (await rpc.call(p.AUDIT_LIST, actor="somebody_else")).total == 0
    everything = await rpc.call(p.AUDIT_LIST, limit=10_000)
    assert everything.total == len(everything.items) > 3
    pages = []
    for offset in range(0, everything.total, 3):
        pages += (await rpc.call(p.AUDIT_LIST, offset=offset, limit=3)).items
    assert [e.id for e in pages] == [e.id for e in everything.items]
    assert (await rpc.call(p.AUDIT_LIST, actor=ME, client_id=client_id)).total == for_client.total


async def test_the_audit_exports_to_csv_with_the_filters(
    practice: Practice, rpc: DaemonClient, tmp_path: Path
) -> None:
    client_id = practice.xero_connected_ids[0]
    # A name a spreadsheet would run as a formula stays text in the file.
    await rpc.call(p.STAFF_ADD, login=ME, display_name="=HYPERLINK(1)", role="admin")
    await rpc.call(p.CLIENTS_UPDATE, client_id=client_id, email="books@client.example")
    target = tmp_path / "audit.csv"
    result = await rpc.call(p.AUDIT_EXPORT, path=str(target), client_id=client_id)
    with target.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert result.rows == len(rows) >= 1
    assert {row["Client id"] for row in rows} == {str(client_id)}
    assert {row["Staff login"] for row in rows} == {ME}
    assert {row["Staff member"] for row in rows} == {"'=HYPERLINK(1)"}
    assert json.loads(rows[0]["Detail"])["email"][1] == "books@client.example"
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    # The export itself is in the trail, by whom and where.
    latest = (await rpc.call(p.AUDIT_LIST, limit=1)).items[0]
    assert (latest.action, latest.detail["path"]) == ("audit.export", str(target))

    # Checked like a client export: not over an existing file, not into clientlink's folders.
    message = await _refused(rpc, p.AUDIT_EXPORT, ErrorCode.CONFLICT, path=str(target))
    assert "already exists" in message
    own = practice.paths.data_dir / "audit.csv"
    await _refused(rpc, p.AUDIT_EXPORT, ErrorCode.INVALID_PARAMS, path=str(own))
    assert not own.exists()
    await _refused(rpc, p.AUDIT_EXPORT, ErrorCode.INVALID_PARAMS, path="relative.csv")


async def test_the_command_line_manages_staff_and_reads_the_audit(
    practice: Practice, tmp_path: Path
) -> None:
    home = str(practice.paths.config_dir.parent)
    code, out, err = await clientlink_cli(
        "--home", home, "staff", "add", OTHER, "--name", "Sam Lee", "--role", "read-only"
    )
    assert code == 0, err
    assert b"read-only" in out and b"Sam Lee" in out
    code, out, err = await clientlink_cli("--home", home, "staff", "add", "no_such_person")
    assert code == 2 and b"useradd" in err and b"Traceback" not in err
    code, out, _ = await clientlink_cli("--home", home, "staff", "update", OTHER, "--role", "staff")
    assert code == 0 and b"staff" in out
    code, out, _ = await clientlink_cli("--home", home, "staff", "list", "--json")
    assert [(m["login"], m["role"]) for m in json.loads(out)["items"]] == [(OTHER, "staff")]

    # Leaving: a dry run lists and changes nothing; then they are left, and cannot leave twice.
    code, out, err = await clientlink_cli("--home", home, "staff", "leave", OTHER, "--dry-run")
    assert code == 0, err
    assert b"owns 0 sign-ins with 0 clients" in out and b"nothing was changed" in out
    assert (await practice.daemon.store.get_staff(OTHER)).state == "active"
    code, out, err = await clientlink_cli("--home", home, "staff", "leave", OTHER)
    assert code == 0, err
    assert b"Sam Lee has left" in out
    assert (await practice.daemon.store.get_staff(OTHER)).state == "left"

    code, out, _ = await clientlink_cli("--home", home, "audit", "--actor", ME, "--json")
    actions = [entry["action"] for entry in json.loads(out)["items"]]
    assert actions[:3] == ["staff.left", "staff.updated", "staff.added"]
    target = tmp_path / "trail.csv"
    code, out, err = await clientlink_cli("--home", home, "audit", "--export", str(target))
    assert code == 0, err
    with target.open(newline="", encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) >= 2

    code, out, _ = await clientlink_cli("--home", home, "clients", "--mine", "--json")
    mine = json.loads(out)
    assert mine["total"] > 0
    first = mine["items"][0]
    assert first["owner_login"] == ME and first["owner_name"] == ME
    assert first["owner_label"].startswith(f"{ME}, as ")
    code, out, _ = await clientlink_cli("--home", home, "clients", "--json")
    assert json.loads(out)["total"] >= mine["total"]


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    daemon: RunningDaemon, rpc: DaemonClient
) -> None:
    await rpc.call(p.STAFF_ADD, login=ME, role="admin")
    await rpc.call(p.STAFF_ADD, login=OTHER, role="admin")
    # Two admins' calls in flight together (each awaits the database between its check
    # and its write): one change at a time keeps one admin.
    staff = daemon.daemon.services.staff
    outcomes = await asyncio.gather(
        staff.update(ME, role=Role.STAFF),
        staff.update(OTHER, role=Role.STAFF),
        return_exceptions=True,
    )
    refusals = [o for o in outcomes if isinstance(o, RpcFailure)]
    assert len(refusals) == 1 and "last active admin" in refusals[0].message
    roles = [m.role for m in (await rpc.call(p.STAFF_LIST)).items]
    assert sorted(roles) == [Role.ADMIN, Role.STAFF]
