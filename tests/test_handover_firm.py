"""Handover and concurrency between staff, end to end with real Unix users on a firm daemon.

Every call is made by a real user over the firm's group socket (``tests/firm.py``); the
sandbox's approve helper plays each person in the browser. The sandbox knows three Xero
users; which one a staff member signs in as matters only for what revoking a sign-in ends at
Xero (every connection that Xero user gave the app), so Sam signs in as the one whose seeded
sign-in is already revoked, and Alex as another.
"""

from __future__ import annotations

import asyncio

import pytest

from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.protocol import ErrorCode
from clientlink.sandbox.accounts import STAFF_USERS
from clientlink.sandbox.approve import approve
from tests.firm import ADMIN, PEOPLE, STAFF_MEMBER
from tests.helpers import sandbox_get

SAMS_XERO_USER = STAFF_USERS[1]  # its seeded sign-in was revoked: nothing else rests on it
ALEXS_XERO_USER = STAFF_USERS[2]
SAM = PEOPLE[STAFF_MEMBER]
TAKEN = 3


async def refused(call) -> RpcError:
    with pytest.raises(RpcError) as caught:
        await call
    return caught.value


async def bulk_sign_in(firm, login: str, tenants: list[str], xero_user: str) -> dict:
    """``login`` signs in to Xero once, ticking ``tenants``, as ``xero_user`` at Xero."""
    session = await firm.call(login, p.AUTH_BEGIN, {"provider": "xero"})
    redirect = await approve(session["authorize_url"], orgs=tenants, user=xero_user)
    return await firm.call(
        login, p.AUTH_COMPLETE, {"session_id": session["session_id"], "redirect_url": redirect}
    )


async def finished(firm, login: str, job_id: int) -> dict:
    for _ in range(120):
        job = await firm.call(login, p.JOBS_GET, {"job_id": job_id})
        if job["state"] in ("completed", "failed", "cancelled"):
            return job
        await asyncio.sleep(0.25)
    raise AssertionError(f"job {job_id} did not end: {job}")


async def revoked_at_sandbox(firm) -> dict[str, bool]:
    grants = await sandbox_get(firm.sandbox.base_url, "/_sandbox/grants")
    return {grant["grant_id"]: grant["revoked"] for grant in grants}


async def test_sam_leaves_and_alex_takes_over_every_client_in_one_job(firm_practice):
    firm = firm_practice
    listed = await firm.call(
        ADMIN, p.CLIENTS_LIST, {"filter": {"provider": "xero", "status": "connected"}}
    )
    clients = listed["items"][:TAKEN]
    ids = [c["id"] for c in clients]
    tenants = [c["tenant_id"] for c in clients]
    names = {c["id"]: c["name"] for c in clients}

    # Sam signs in and re-authorises three clients: they rest on Sam's sign-in.
    sams = await bulk_sign_in(firm, STAFF_MEMBER, tenants, SAMS_XERO_USER)
    started = await firm.call(
        STAFF_MEMBER,
        p.JOBS_START,
        {"kind": "reauthorise", "grant_id": sams["grant_id"], "client_ids": ids},
    )
    assert (await finished(firm, STAFF_MEMBER, started["job_id"]))["done"] == TAKEN
    for client_id in ids:
        client = await firm.call(ADMIN, p.CLIENTS_GET, {"client_id": client_id})
        assert client["authorised_by"] == STAFF_MEMBER and client["grant_id"] == sams["grant_id"]

    # Sam is re-authorising one of them; Alex reaching for it is told who has it.
    first = ids[0]
    pending = await firm.call(STAFF_MEMBER, p.AUTH_BEGIN, {"provider": "xero", "client_id": first})
    told = await refused(firm.call(ADMIN, p.AUTH_BEGIN, {"provider": "xero", "client_id": first}))
    assert told.code == ErrorCode.CONFLICT
    assert f"{SAM} is already re-authorising {names[first]} (since " in told.message
    assert told.data["held_by"] == STAFF_MEMBER
    alexs = await bulk_sign_in(firm, ADMIN, tenants, ALEXS_XERO_USER)
    jobs_before = len((await firm.call(ADMIN, p.JOBS_LIST))["items"])
    held = await refused(
        firm.call(
            ADMIN,
            p.JOBS_START,
            {"kind": "reauthorise", "grant_id": alexs["grant_id"], "client_ids": [first]},
        )
    )
    assert held.code == ErrorCode.CONFLICT and f"{SAM} is already re-authorising" in held.message
    assert len((await firm.call(ADMIN, p.JOBS_LIST))["items"]) == jobs_before
    await firm.call(STAFF_MEMBER, p.AUTH_CANCEL, {"session_id": pending["session_id"]})

    # Staff may not mark a colleague as left; the admin does, and nothing is revoked.
    not_staff = await refused(firm.call(STAFF_MEMBER, p.STAFF_LEAVE, {"login": ADMIN}))
    assert not_staff.code == ErrorCode.ROLE_REQUIRED
    before = await revoked_at_sandbox(firm)
    left = await firm.call(ADMIN, p.STAFF_LEAVE, {"login": STAFF_MEMBER})
    assert left["member"]["state"] == "left"
    assert [g["grant_id"] for g in left["grants"]] == [sams["grant_id"]]
    assert sorted(c["id"] for c in left["grants"][0]["clients"]) == sorted(ids)
    assert sorted(left["flagged"]) == sorted(ids)
    assert await revoked_at_sandbox(firm) == before
    for client_id in ids:
        client = await firm.call(ADMIN, p.CLIENTS_GET, {"client_id": client_id})
        assert client["status"] == "expiring"
        assert client["status_reason"].startswith(f"owner {SAM} left on ")
    gone = await refused(firm.call(STAFF_MEMBER, p.CLIENTS_LIST))
    assert gone.code == ErrorCode.PERMISSION_DENIED and "has left" in gone.message

    # Alex takes over all of Sam's clients in one job, on Alex's own sign-in.
    takeover = await firm.call(
        ADMIN,
        p.JOBS_START,
        {
            "kind": "reauthorise",
            "grant_id": alexs["grant_id"],
            "client_ids": ids,
            "takeover_of": STAFF_MEMBER,
        },
    )
    assert takeover["skipped"] == []
    job = await finished(firm, ADMIN, takeover["job_id"])
    assert job["done"] == TAKEN and job["failed"] == 0
    assert (job["takeover_of"], job["takeover_name"], job["actor"]) == (STAFF_MEMBER, SAM, ADMIN)
    for client_id in ids:
        client = await firm.call(ADMIN, p.CLIENTS_GET, {"client_id": client_id})
        assert client["grant_id"] == alexs["grant_id"] and client["authorised_by"] == ADMIN
        assert client["status"] == "connected" and client["status_reason"] is None
    audit = (await firm.call(ADMIN, p.AUDIT_LIST, {"limit": 100}))["items"]
    done = next(entry for entry in audit if entry["action"] == "connections.taken_over")
    assert done["actor"] == ADMIN and done["detail"]["old_grants_unused"] == [sams["grant_id"]]
    assert next(e for e in audit if e["action"] == "staff.left")["actor"] == ADMIN

    # On request, Sam's old sign-in is revoked at Xero; Alex's connections stay.
    revoked = await firm.call(ADMIN, p.GRANTS_REVOKE, {"grant_id": sams["grant_id"]})
    assert revoked["state"] == "revoked"
    after = await revoked_at_sandbox(firm)
    changed = [grant for grant, flag in after.items() if flag != before.get(grant)]
    grants = await sandbox_get(firm.sandbox.base_url, "/_sandbox/grants")
    assert [g["user"] for g in grants if g["grant_id"] in changed] == [SAMS_XERO_USER]
    await firm.call(ADMIN, p.CLIENTS_CHECK, {"client_ids": ids})
    for client_id in ids:
        client = await firm.call(ADMIN, p.CLIENTS_GET, {"client_id": client_id})
        assert client["status"] == "connected"
