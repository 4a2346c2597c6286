"""Handover when someone leaves, and one outcome when two reach for the same client.

In-process, against the demo practice: the real sandbox over HTTP, the real daemon on its
socket and SQLite file. Every sign-in here is the test's own login (single-user mode), so
``owned_by`` records, as a firm-mode daemon would, that a colleague signed in for a grant;
tests/test_handover_firm.py does the same with real Unix users over the group socket.
"""

from __future__ import annotations

import pytest

from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.protocol import ErrorCode
from clientlink.sandbox.accounts import STAFF_USERS
from tests.helpers import finished, sandbox_get
from tests.test_class_multi_business import class_practice, class_sign_in, job_waiting_for

SAM_XERO = STAFF_USERS[2]  # the seeded practice's second Xero sign-in
ALEX_XERO = STAFF_USERS[1]
ATTENTION = [status.value for status in p.ConnectionStatus if status.needs_attention]


async def refused(call) -> RpcError:
    with pytest.raises(RpcError) as caught:
        await call
    return caught.value


async def add_staff(practice, login: str, name: str, role: str) -> None:
    await practice.daemon.store.add_staff(
        login=login, display_name=name, email=None, role=role, now=practice.clock.now()
    )
    await practice.daemon.services.staff.reload()


async def owned_by(practice, grant_id: int, login: str) -> None:
    """Record that ``login`` signed in for the grant (what a firm-mode sign-in records)."""
    async with practice.daemon.store.transaction() as db:
        await db.execute("UPDATE grants SET authorised_by = ? WHERE id = ?", (login, grant_id))


async def sams_grant(rpc) -> int:
    """The daemon's grant of the seeded Xero sign-in as sam@ (from its audit entry)."""
    audit = await rpc.call(p.AUDIT_LIST, limit=10_000)
    for entry in audit.items:
        user = entry.detail.get("provider_user") or {}
        if entry.action == "grant.created" and user.get("email") == SAM_XERO:
            return entry.detail["grant_id"]
    raise AssertionError("no grant signed in as sam@")


async def sandbox_revoked(practice) -> dict[str, bool]:
    grants = await sandbox_get(practice.sandbox.base_url, "/_sandbox/grants")
    return {grant["grant_id"]: grant["revoked"] for grant in grants}


async def sam_has_left_the_practice(practice, rpc) -> tuple[int, list[int]]:
    """Sam Lee (login sam) owns the sam@ Xero grant; an admin stays. Returns the grant and
    the clients resting on it."""
    await add_staff(practice, "sam", "Sam Lee", "staff")
    await add_staff(practice, "alex", "Alex Chen", "admin")
    grant_id = await sams_grant(rpc)
    await owned_by(practice, grant_id, "sam")
    listing = await rpc.call(p.CLIENTS_LIST, limit=1000)
    resting = sorted(client.id for client in listing.items if client.grant_id == grant_id)
    assert resting
    return grant_id, resting


async def test_leaving_flags_every_client_on_their_sign_ins_and_revokes_nothing(practice):
    rpc = await practice.connect()
    grant_id, resting = await sam_has_left_the_practice(practice, rpc)
    before = {c.id: c for c in (await rpc.call(p.CLIENTS_LIST, limit=1000)).items}
    at_sandbox = await sandbox_revoked(practice)

    preview = await rpc.call(p.STAFF_LEAVE, login="sam", dry_run=True)
    assert preview.dry_run and preview.member.state == "active" and preview.flagged == []
    assert [g.grant_id for g in preview.grants] == [grant_id]
    assert sorted(c.id for c in preview.grants[0].clients) == resting
    assert {c.id: c.status for c in (await rpc.call(p.CLIENTS_LIST, limit=1000)).items} == {
        c.id: c.status for c in before.values()
    }

    left = await rpc.call(p.STAFF_LEAVE, login="sam")
    assert left.member.state == "left" and left.member.left_at
    working = [c for c in resting if before[c].status in ("connected", "expiring")]
    assert left.flagged == working and working
    assert "Take over connections" in left.message

    attention = await rpc.call(p.CLIENTS_LIST, filter={"status": ATTENTION}, limit=1000)
    flagged = {c.id: c for c in attention.items if c.id in resting}
    assert sorted(flagged) == resting  # every one of Sam's clients is in Needs attention
    for client_id in working:
        assert flagged[client_id].status == "expiring"
        assert flagged[client_id].status_reason.startswith("owner Sam Lee left on ")
    others = [c for c in attention.items if c.id not in resting]
    assert all("owner" not in (c.status_reason or "") for c in others)
    assert await sandbox_revoked(practice) == at_sandbox  # nothing revoked at Xero

    # The watcher keeps the grant alive and the flag on: a forced refresh works, still flagged.
    refreshed = await rpc.call(p.CLIENTS_REFRESH, client_id=working[0])
    assert refreshed.status == "expiring" and "owner Sam Lee left" in refreshed.status_reason
    audit = await rpc.call(p.AUDIT_LIST, limit=50)
    entry = next(e for e in audit.items if e.action == "staff.left")
    assert entry.detail["login"] == "sam" and entry.detail["grants"] == [grant_id]


async def test_the_last_admin_cannot_leave_and_unknown_logins_change_nothing(practice):
    rpc = await practice.connect()
    await add_staff(practice, "alex", "Alex Chen", "admin")
    last = await refused(rpc.call(p.STAFF_LEAVE, login="alex"))
    assert last.code == ErrorCode.CONFLICT and "last active admin" in last.message
    assert (await practice.daemon.store.get_staff("alex")).state == "active"
    nobody = await refused(rpc.call(p.STAFF_LEAVE, login="nobody"))
    assert nobody.code == ErrorCode.NOT_FOUND and "staff list" in nobody.message
    bad = await refused(rpc.call_raw("staff.leave", {"login": "a\x00b"}))
    assert bad.code == ErrorCode.INVALID_PARAMS


async def test_a_colleague_takes_over_every_client_in_one_job_and_revokes_the_old_grant(
    practice,
):
    rpc = await practice.connect()
    grant_id, resting = await sam_has_left_the_practice(practice, rpc)
    await rpc.call(p.STAFF_LEAVE, login="sam")
    tenants = [(await rpc.call(p.CLIENTS_GET, client_id=c)).tenant_id for c in resting]

    # Only Sam's clients may be in a takeover of Sam's connections.
    stranger = next(c for c in practice.xero_connected_ids if c not in resting)
    jobs_before = len((await rpc.call(p.JOBS_LIST)).items)
    session = await rpc.call(p.AUTH_BEGIN, provider="xero")
    redirect = await practice.approve(session.authorize_url, tenants, user=ALEX_XERO)
    signed_in = await rpc.call(
        p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect
    )
    wrong = await refused(
        rpc.call(
            p.JOBS_START,
            kind="reauthorise",
            grant_id=signed_in.grant_id,
            client_ids=[*resting, stranger],
            takeover_of="sam",
        )
    )
    assert wrong.code == ErrorCode.INVALID_PARAMS and "Sam Lee" in wrong.message
    assert len((await rpc.call(p.JOBS_LIST)).items) == jobs_before

    started = await rpc.call(
        p.JOBS_START,
        kind="reauthorise",
        grant_id=signed_in.grant_id,
        client_ids=resting,
        takeover_of="sam",
    )
    assert started.skipped == []
    job = await finished(rpc, started.job_id)
    assert job.state == "completed" and job.done == len(resting)
    assert (job.takeover_of, job.takeover_name) == ("sam", "Sam Lee")
    for client_id in resting:
        client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
        assert client.grant_id == signed_in.grant_id
        assert client.status == "connected" and client.status_reason is None
    audit = (await rpc.call(p.AUDIT_LIST, limit=200)).items
    done = next(e for e in audit if e.action == "connections.taken_over")
    assert done.detail == {
        "job_id": started.job_id,
        "takeover_of": "sam",
        "done": len(resting),
        "failed": 0,
        "old_grants_unused": [grant_id],
    }
    moved = [e for e in audit if e.action == "client.reauthorised" and e.client_id in resting]
    assert {e.detail["previous_grant_id"] for e in moved} == {grant_id}

    # On request: the old grant, which no client rests on now, is revoked at Xero.
    at_sandbox = await sandbox_revoked(practice)
    revoked = await rpc.call(p.GRANTS_REVOKE, grant_id=grant_id)
    assert revoked.state == "revoked"
    now_revoked = await sandbox_revoked(practice)
    changed = [g for g, flag in now_revoked.items() if flag != at_sandbox[g]]
    grants = await sandbox_get(practice.sandbox.base_url, "/_sandbox/grants")
    assert [g["user"] for g in grants if g["grant_id"] in changed] == [SAM_XERO]
    # Alex's new connections survive Xero ending Sam's.
    checked = await rpc.call(p.CLIENTS_CHECK, client_ids=resting)
    assert checked is not None
    for client_id in resting:
        assert (await rpc.call(p.CLIENTS_GET, client_id=client_id)).status == "connected"
    # A grant clients rest on is still refused.
    in_use = await refused(rpc.call(p.GRANTS_REVOKE, grant_id=signed_in.grant_id))
    assert in_use.code == ErrorCode.CONFLICT


async def test_overlapping_jobs_skip_held_clients_and_a_sign_in_is_told_who_holds_it(daemon):
    rpc = await daemon.connect()
    by_business = await class_practice(rpc, daemon.sandbox.base_url)
    first, second = list(by_business)[:2]
    held = by_business[first]

    one = await rpc.call(p.JOBS_START, kind="reauthorise", client_ids=held)
    await job_waiting_for(rpc, one.job_id, first)

    # A sign-in for a client the job holds is refused, naming the job and who started it.
    begin = await refused(rpc.call(p.AUTH_BEGIN, provider="class", client_id=held[0]))
    assert begin.code == ErrorCode.CONFLICT
    assert f"job {one.job_id} (waiting) is already re-authorising" in begin.message
    assert begin.data["job_id"] == one.job_id

    # An overlapping job leaves out what the first holds, saying why.
    two = await rpc.call(p.JOBS_START, kind="reauthorise", client_ids=[*held, *by_business[second]])
    assert sorted(s.client_id for s in two.skipped) == sorted(held)
    assert all(f"job {one.job_id} (waiting)" in s.reason for s in two.skipped)
    job_two = await job_waiting_for(rpc, two.job_id, second)
    assert job_two.total == len(held) + len(by_business[second])
    items = await rpc.call(p.JOBS_GET, job_id=two.job_id, items=True, item_state="skipped")
    assert sorted(i.client_id for i in items.items) == sorted(held)
    assert all(i.error.startswith("skipped: ") for i in items.items)

    # Wholly held: refused, and no job is recorded.
    count = len((await rpc.call(p.JOBS_LIST)).items)
    three = await refused(rpc.call(p.JOBS_START, kind="reauthorise", client_ids=held))
    assert three.code == ErrorCode.CONFLICT and "Nothing was started" in three.message
    assert len((await rpc.call(p.JOBS_LIST)).items) == count

    # The first job signs in and finishes: its clients are free again, done once each.
    signed_in = await class_sign_in(rpc, first)
    await rpc.call(p.JOBS_ADD_SIGN_IN, job_id=one.job_id, grant_id=signed_in.grant_id)
    done = await finished(rpc, one.job_id)
    assert done.done == len(held)
    await rpc.call(p.JOBS_CANCEL, job_id=two.job_id)
    session = await rpc.call(p.AUTH_BEGIN, provider="class", client_id=held[0])

    # A job started while a sign-in for a client is open leaves that client out.
    four = await rpc.call(p.JOBS_START, kind="reauthorise", client_ids=held[:2])
    assert [s.client_id for s in four.skipped] == [held[0]]
    assert "is already re-authorising" in four.skipped[0].reason
    await rpc.call(p.JOBS_CANCEL, job_id=four.job_id)
    # The same person may open their own sign-in for it again (an earlier tab).
    again = await rpc.call(p.AUTH_BEGIN, provider="class", client_id=held[0])
    await rpc.call(p.AUTH_CANCEL, session_id=session.session_id)
    await rpc.call(p.AUTH_CANCEL, session_id=again.session_id)
