"""Re-authorising Class funds of several businesses: one job, one sign-in per business.

Class authorises one business per sign-in (scope ``target:b/<code>``), so re-authorising
the funds of its three sandbox businesses takes three sign-ins. The job is recorded whole
first, waits for each sign-in in turn (``waiting``, ``waiting_for_sign_in``), takes a
business's sign-in through ``jobs.add_sign_in`` or skips it through ``jobs.skip_sign_in``,
and survives a SIGKILLed daemon between two sign-ins. Real sandbox over HTTP, real daemon on
its socket and SQLite.
"""

from __future__ import annotations

import asyncio

import pytest

from clientlink.common import protocol as p
from clientlink.common.client import DaemonClient, RpcError
from clientlink.common.protocol import ErrorCode
from clientlink.sandbox.approve import approve
from clientlink.sandbox.classsuper import CLASS_CLIENT_SECRET
from tests.helpers import (
    DaemonProcess,
    clientlink_cli,
    finished,
    sandbox_get,
    sandbox_post,
    wait_until,
)
from tests.test_jobs import store_job


async def class_sign_in(rpc: DaemonClient, business: str) -> p.AuthCompleteResult:
    """One Class sign-in to ``business``, the person approving in the sandbox."""
    session = await rpc.call(p.AUTH_BEGIN, provider="class", business=business)
    redirect = await approve(session.authorize_url, orgs=[])
    return await rpc.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect)


async def class_practice(rpc: DaemonClient, base_url: str) -> dict[str, list[int]]:
    """Every Class business's funds imported as clients, then every Class sign-in revoked
    at Class (a staff member left): all those funds need re-authorisation. Returns the
    client ids by business code, in Class's order of businesses."""
    await rpc.call(p.PROVIDERS_SET_SECRET, provider="class", client_secret=CLASS_CLIENT_SECRET)
    info = await sandbox_get(base_url, "/_sandbox/info")
    by_business: dict[str, list[int]] = {}
    for business in info["class"]["businesses"]:
        signed_in = await class_sign_in(rpc, business["code"])
        imported = await rpc.call(
            p.CLIENTS_IMPORT,
            grant_id=signed_in.grant_id,
            tenant_ids=[tenant.tenant_id for tenant in signed_in.tenants],
        )
        by_business[business["code"]] = sorted(imported.created)
        assert len(imported.created) == business["funds"]
    for grant in await sandbox_get(base_url, "/_sandbox/grants"):
        if grant.get("provider") == "class":
            await sandbox_post(base_url, f"/_sandbox/grants/{grant['grant_id']}/revoke")
    await rpc.call(p.CLIENTS_CHECK)
    for ids in by_business.values():
        for client_id in ids:
            client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
            assert client.status == "needs_reauth", client
    return by_business


async def reauthorised_audits(rpc: DaemonClient, client_id: int) -> int:
    audit = await rpc.call(p.AUDIT_LIST, client_id=client_id)
    return sum(1 for entry in audit.items if entry.action == "client.reauthorised")


async def job_waiting_for(rpc: DaemonClient, job_id: int, business: str) -> p.Job:
    """The job once nothing runs and it waits for the sign-in to ``business``."""
    seen: list[p.Job] = []

    async def parked() -> bool:
        job = await rpc.call(p.JOBS_GET, job_id=job_id)
        seen[:] = [job]
        wait = job.waiting_for_sign_in
        return job.state == "waiting" and wait is not None and wait.business == business

    await wait_until(parked, what=f"job {job_id} to wait for {business}")
    return seen[0]


async def refused(call) -> RpcError:
    with pytest.raises(RpcError) as caught:
        await call
    return caught.value


async def test_funds_of_three_businesses_are_one_job_signed_in_business_by_business(daemon):
    rpc = await daemon.connect()
    base = daemon.sandbox.base_url
    by_business = await class_practice(rpc, base)
    first, second, third = by_business
    everyone = [c for ids in by_business.values() for c in ids]
    # Listed in any order: the job groups them business by business, in first-seen order.
    started = await rpc.call(p.JOBS_START, kind="reauthorise", client_ids=sorted(everyone))

    job = await job_waiting_for(rpc, started.job_id, first)
    assert (job.total, job.done, job.failed) == (len(everyone), 0, 0)
    assert job.provider == "class"
    assert [(s.business, s.funds, s.state) for s in job.sign_ins] == [
        (code, len(ids), "pending") for code, ids in by_business.items()
    ]
    wait = job.waiting_for_sign_in
    assert (wait.index, wait.of, wait.funds) == (1, 3, len(by_business[first]))
    assert [j.state for j in (await rpc.call(p.JOBS_LIST, state="waiting")).items] == ["waiting"]

    signed_first = await class_sign_in(rpc, first)
    job = await rpc.call(p.JOBS_ADD_SIGN_IN, job_id=started.job_id, grant_id=signed_first.grant_id)
    assert job.sign_ins[0].grant_id == signed_first.grant_id
    job = await job_waiting_for(rpc, started.job_id, second)
    assert (job.done, job.failed) == (len(by_business[first]), 0)
    assert job.waiting_for_sign_in.index == 2

    # A sign-in to another business than the one the job waits for changes nothing.
    signed_third = await class_sign_in(rpc, third)
    wrong = await refused(
        rpc.call(p.JOBS_ADD_SIGN_IN, job_id=started.job_id, grant_id=signed_third.grant_id)
    )
    assert wrong.code == ErrorCode.INVALID_PARAMS
    assert f"is a sign-in to business {third}" in wrong.message
    assert f"waits for a sign-in to {second}" in wrong.message
    missing = await refused(
        rpc.call(p.JOBS_ADD_SIGN_IN, job_id=started.job_id, grant_id=signed_third.grant_id + 99)
    )
    assert missing.code == ErrorCode.NOT_FOUND
    stale = await refused(rpc.call(p.JOBS_SKIP_SIGN_IN, job_id=started.job_id, business=third))
    assert stale.code == ErrorCode.INVALID_PARAMS and "nothing skipped" in stale.message
    unchanged = await rpc.call(p.JOBS_GET, job_id=started.job_id)
    assert unchanged.sign_ins == job.sign_ins and unchanged.failed == 0

    # Skip the second business: its funds fail with the reason, the job moves on.
    job = await rpc.call(p.JOBS_SKIP_SIGN_IN, job_id=started.job_id, business=second)
    assert job.failed == len(by_business[second])
    assert job.waiting_for_sign_in.business == third
    job = await rpc.call(p.JOBS_ADD_SIGN_IN, job_id=started.job_id, grant_id=signed_third.grant_id)
    job = await finished(rpc, started.job_id)
    assert job.state == "completed"
    assert (job.done, job.failed) == (
        len(by_business[first]) + len(by_business[third]),
        len(by_business[second]),
    )
    assert job.waiting_for_sign_in is None
    assert [s.state for s in job.sign_ins] == ["signed_in", "skipped", "signed_in"]
    reasons = {item.client_id: item.error for item in job.items if item.state == "failed"}
    assert sorted(reasons) == by_business[second]
    assert set(reasons.values()) == {f"not signed in to business {second} (skipped)"}
    for code, grant in ((first, signed_first), (third, signed_third)):
        for client_id in by_business[code]:
            client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
            assert (client.status, client.grant_id) == ("connected", grant.grant_id)
    for client_id in by_business[second]:
        assert (await rpc.call(p.CLIENTS_GET, client_id=client_id)).status == "needs_reauth"
    after = await refused(rpc.call(p.JOBS_SKIP_SIGN_IN, job_id=started.job_id, business=third))
    assert after.code == ErrorCode.CONFLICT

    # Retry the failures: only the skipped business is left, and it needs its sign-in.
    retry = await rpc.call(p.JOBS_RETRY, job_id=started.job_id)
    again = await job_waiting_for(rpc, retry.job_id, second)
    assert again.total == len(by_business[second])
    assert [(s.business, s.state) for s in again.sign_ins] == [(second, "pending")]


async def test_a_sign_in_already_held_is_kept_and_cancel_ends_a_waiting_job(daemon):
    rpc = await daemon.connect()
    by_business = await class_practice(rpc, daemon.sandbox.base_url)
    first, second, _ = by_business
    started = await rpc.call(
        p.JOBS_START, kind="reauthorise", client_ids=by_business[first] + by_business[second]
    )
    await job_waiting_for(rpc, started.job_id, first)
    signed = await class_sign_in(rpc, first)
    await rpc.call(p.JOBS_ADD_SIGN_IN, job_id=started.job_id, grant_id=signed.grant_id)
    twice = await refused(
        rpc.call(p.JOBS_ADD_SIGN_IN, job_id=started.job_id, grant_id=signed.grant_id)
    )
    assert twice.code == ErrorCode.INVALID_PARAMS  # the job now waits for the second business
    await job_waiting_for(rpc, started.job_id, second)
    # Waiting holds no worker (the task ends just after the job says it waits).
    await wait_until(lambda: not daemon.daemon.jobs._tasks, what="the job's task to end")

    job = await rpc.call(p.JOBS_CANCEL, job_id=started.job_id)
    assert job.state == "cancelled" and job.waiting_for_sign_in is None
    items = (await rpc.call(p.JOBS_GET, job_id=started.job_id, items=True)).items
    assert {i.client_id for i in items if i.state == "skipped"} == set(by_business[second])
    assert {i.client_id for i in items if i.state == "done"} == set(by_business[first])
    ended = await refused(rpc.call(p.JOBS_SKIP_SIGN_IN, job_id=started.job_id, business=second))
    assert ended.code == ErrorCode.CONFLICT


async def test_single_business_software_still_needs_its_one_sign_in(daemon):
    rpc = await daemon.connect()
    by_business = await class_practice(rpc, daemon.sandbox.base_url)
    first = next(iter(by_business))
    signed = await class_sign_in(rpc, first)
    # With the grant of one business's sign-in, a Class job is today's single-grant job.
    started = await rpc.call(
        p.JOBS_START,
        kind="reauthorise",
        grant_id=signed.grant_id,
        client_ids=by_business[first],
    )
    job = await finished(rpc, started.job_id)
    assert (job.done, job.sign_ins, job.waiting_for_sign_in) == (
        len(by_business[first]),
        None,
        None,
    )


@pytest.mark.timeout(180)
async def test_a_killed_daemon_between_two_sign_ins_waits_for_the_next_and_does_nothing_twice(
    home, sandbox
):
    process = DaemonProcess(home)
    try:
        rpc = await process.start()
        by_business = await class_practice(rpc, sandbox.base_url)
        first, second, third = by_business
        everyone = [c for ids in by_business.values() for c in ids]
        started = await rpc.call(p.JOBS_START, kind="reauthorise", client_ids=everyone)
        await job_waiting_for(rpc, started.job_id, first)
        signed_first = await class_sign_in(rpc, first)
        # Slow answers, so the kill lands while the first business's funds are under way.
        await sandbox_post(sandbox.base_url, "/_sandbox/limits", {"api_latency_seconds": 0.4})
        await rpc.call(p.JOBS_ADD_SIGN_IN, job_id=started.job_id, grant_id=signed_first.grant_id)

        async def under_way() -> bool:
            return (await rpc.call(p.JOBS_GET, job_id=started.job_id)).done >= 1

        await wait_until(under_way, what="the first business's funds to get going")
        process.kill()
        await process.process.wait()
        await rpc.close()
        killed_at = await store_job(home, started.job_id)
        assert killed_at["state"] == "running"  # mid-business: items under way were lost
        assert 1 <= killed_at["done"] < len(by_business[first])
        await sandbox_post(sandbox.base_url, "/_sandbox/limits", {"api_latency_seconds": 0})

        rpc = await process.start()
        # The sign-in given before the kill is kept; the rest of its funds are done; then
        # the job waits for the second business, with no session of before the kill.
        job = await job_waiting_for(rpc, started.job_id, second)
        assert (job.done, job.failed) == (len(by_business[first]), 0)
        assert job.waiting_for_sign_in.index == 2 and job.waiting_for_sign_in.of == 3
        for client_id in by_business[first]:
            assert await reauthorised_audits(rpc, client_id) == 1
        listed = await rpc.call(p.JOBS_LIST, state="waiting")
        assert [j.id for j in listed.items] == [started.job_id]
        # The command line says so too.
        code, out, _ = await clientlink_cli("--home", str(home.config_dir.parent), "jobs")
        assert code == 0
        said = f"waiting for you to sign in to {second} (sign-in 2 of 3, "
        assert said in out.decode(), out.decode()

        signed_second = await class_sign_in(rpc, second)
        await rpc.call(p.JOBS_ADD_SIGN_IN, job_id=started.job_id, grant_id=signed_second.grant_id)
        await job_waiting_for(rpc, started.job_id, third)
        await rpc.call(p.JOBS_SKIP_SIGN_IN, job_id=started.job_id, business=third)
        job = await finished(rpc, started.job_id)
        assert job.state == "completed"
        assert (job.done, job.failed) == (
            len(by_business[first]) + len(by_business[second]),
            len(by_business[third]),
        )
        for client_id in by_business[first] + by_business[second]:
            assert await reauthorised_audits(rpc, client_id) == 1
        await rpc.close()
    finally:
        await process.stop()
        await asyncio.sleep(0)
