"""Firm mode: one clientlinkd for the practice, reached by its staff over the group socket.

Every call here is made by a real Unix user (``tests/firm.py``): the daemon knows who is
calling only from the peer's uid on the socket.
"""

from __future__ import annotations

import os
import stat

import pytest

from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.protocol import ErrorCode
from tests.firm import (
    ADMIN,
    GROUP,
    NEWCOMER,
    OUTSIDER,
    READ_ONLY,
    SERVICE,
    STAFF_MEMBER,
    FirmCliFailed,
)


async def test_staff_admin_and_read_only_each_reach_the_daemon_over_the_group_socket(firm):
    for login in (ADMIN, STAFF_MEMBER, READ_ONLY):
        status = await firm.call(login, p.DAEMON_STATUS)
        assert status["version"]
        listed = await firm.call(login, p.CLIENTS_LIST, {"limit": 5})
        assert listed["total"] == 0


async def test_a_user_outside_the_group_cannot_open_the_socket_and_is_told_why(firm):
    result = await firm.cli(OUTSIDER, "status")
    assert result.code == 2
    assert "Traceback" not in result.err
    assert f"you ({OUTSIDER}) may not open the firm's clientlink socket" in result.err
    assert f"only members of the {GROUP} group may" in result.err
    assert f"sudo usermod -aG {GROUP} {OUTSIDER}" in result.err
    assert "Start it with" not in result.err  # the daemon is running; they may not reach it
    with pytest.raises(FirmCliFailed):
        await firm.call(OUTSIDER, p.DAEMON_STATUS)


async def test_a_group_member_not_on_the_staff_list_is_told_who_can_add_them(firm):
    with pytest.raises(RpcError) as refused:
        await firm.call(NEWCOMER, p.CLIENTS_LIST)
    assert refused.value.code == ErrorCode.PERMISSION_DENIED
    assert f"{NEWCOMER} is not on this practice's clientlink staff list" in refused.value.message
    assert f"`clientlink staff add {NEWCOMER}`" in refused.value.message
    assert ADMIN in refused.value.message  # who can do it
    result = await firm.cli(NEWCOMER, "clients")
    assert result.code == 2 and "Traceback" not in result.err
    assert f"clientlink staff add {NEWCOMER}" in result.err


async def test_a_write_is_audited_under_the_real_login_of_who_made_it(firm_practice):
    client_id = (await firm_practice.call(STAFF_MEMBER, p.CLIENTS_LIST, {"limit": 1}))["items"][0][
        "id"
    ]
    updated = await firm_practice.call(
        STAFF_MEMBER, p.CLIENTS_UPDATE, {"client_id": client_id, "email": "books@example.com"}
    )
    assert updated["email"] == "books@example.com"
    audit = await firm_practice.call(ADMIN, p.AUDIT_LIST, {"client_id": client_id, "limit": 5})
    newest = audit["items"][0]
    assert newest["actor"] == STAFF_MEMBER
    assert newest["client_id"] == client_id


async def test_a_read_only_users_write_is_refused_and_changes_nothing(firm_practice):
    client = (await firm_practice.call(READ_ONLY, p.CLIENTS_LIST, {"limit": 1}))["items"][0]
    with pytest.raises(RpcError) as refused:
        await firm_practice.call(
            READ_ONLY, p.CLIENTS_UPDATE, {"client_id": client["id"], "email": "x@example.com"}
        )
    assert refused.value.code == ErrorCode.ROLE_REQUIRED
    assert f"{READ_ONLY} is read-only" in refused.value.message
    assert "Nothing was changed" in refused.value.message
    again = await firm_practice.call(READ_ONLY, p.CLIENTS_GET, {"client_id": client["id"]})
    assert again["email"] == client["email"]
    audit = await firm_practice.call(ADMIN, p.AUDIT_LIST, {"client_id": client["id"]})
    assert all(entry["actor"] != READ_ONLY for entry in audit["items"])


async def test_the_socket_is_the_groups_and_no_one_elses(firm):
    folder, sock = os.stat(firm.socket.parent), os.stat(firm.socket)
    assert (folder.st_uid, folder.st_gid) == (firm.users.uid(SERVICE), firm.users.gid)
    assert stat.S_IMODE(folder.st_mode) == 0o750
    assert stat.S_ISSOCK(sock.st_mode) and stat.S_IMODE(sock.st_mode) == 0o660
    assert sock.st_gid == firm.users.gid
