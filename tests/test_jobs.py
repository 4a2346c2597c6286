"""Bulk jobs: one sign-in re-authorises many clients; jobs persist, cancel, retry, resume."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os

import pytest

from clientlink.cli.demo import seed_practice
from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.protocol import ErrorCode
from clientlink.daemon.export import neutralise
from tests.helpers import DaemonProcess, finished, sandbox_get, sandbox_post, wait_until


async def bulk_sign_in(practice_like, rpc, client_ids: list[int], provider: str = "xero"):
    """One bulk sign-in ticking these clients' businesses; returns auth.complete's result."""
    tenants = [(await rpc.call(p.CLIENTS_GET, client_id=c)).tenant_id for c in client_ids]
    session = await rpc.call(p.AUTH_BEGIN, provider=provider)
    redirect = await practice_like.approve(session.authorize_url, tenants)
    return await rpc.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect)


def xero_needing_reauth(practice) -> list[int]:
    quickbooks = set(practice.seeded.quickbooks_ids)
    return [c for c in practice.client_ids_needing_reauth if c not in quickbooks]


async def reauthorised_audits(rpc, client_id: int) -> int:
    audit = await rpc.call(p.AUDIT_LIST, client_id=client_id)
    return sum(1 for entry in audit.items if entry.action == "client.reauthorised")


async def test_one_sign_in_reauthorises_many_clients(practice):
    rpc = await practice.connect()
    await rpc.subscribe(["job.progress", "job.finished"])
    targets = xero_needing_reauth(practice)
    result = await bulk_sign_in(practice, rpc, targets)
    matched = sorted(t.client_id for t in result.tenants if t.client_id)
    assert matched == sorted(targets)  # only this consent's businesses, matched to clients

    started = await rpc.call(
        p.JOBS_START, kind="reauthorise", grant_id=result.grant_id, client_ids=targets
    )
    job = await finished(rpc, started.job_id)
    assert job.state == "completed"
    assert (job.done, job.failed, job.total) == (len(targets), 0, len(targets))
    for client_id in targets:
        client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
        assert client.status == "connected"
        assert client.grant_id == result.grant_id
        assert await reauthorised_audits(rpc, client_id) == 1
    events = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(1):
            async for event in rpc.events():
                events.append(event)
                if event["topic"] == "job.finished":
                    break
    assert events and events[-1]["topic"] == "job.finished"
    assert events[-1]["done"] == len(targets)


async def test_a_client_not_ticked_at_the_sign_in_fails_with_its_reason(practice):
    rpc = await practice.connect()
    targets = xero_needing_reauth(practice)
    result = await bulk_sign_in(practice, rpc, targets[1:])
    started = await rpc.call(
        p.JOBS_START, kind="reauthorise", grant_id=result.grant_id, client_ids=targets
    )
    job = await finished(rpc, started.job_id)
    assert (job.done, job.failed) == (len(targets) - 1, 1)
    (failure,) = [item for item in job.items if item.state == "failed"]
    assert failure.client_id == targets[0]
    assert "not among the businesses selected" in failure.error
    status = (await rpc.call(p.CLIENTS_GET, client_id=targets[0])).status
    assert status == "needs_reauth"

    retry = await rpc.call(p.JOBS_RETRY, job_id=started.job_id)
    again = await finished(rpc, retry.job_id)
    assert again.retry_of == started.job_id and again.total == 1


async def test_faults_slow_a_job_but_it_completes_and_marks_nobody_needs_reauth(practice):
    rpc = await practice.connect()
    targets = xero_needing_reauth(practice)
    result = await bulk_sign_in(practice, rpc, targets)
    for rule in (
        {"kind": "429", "target": "api", "count": 3, "retry_after": 1, "problem": "minute"},
        {"kind": "503", "target": "api", "count": 3},
    ):
        await sandbox_post(practice.sandbox.base_url, "/_sandbox/faults", rule)
    started = await rpc.call(
        p.JOBS_START, kind="reauthorise", grant_id=result.grant_id, client_ids=targets
    )
    job = await finished(rpc, started.job_id)
    assert (job.done, job.failed) == (len(targets), 0)
    assert any(item.attempts > 1 for item in job.items)
    counts = (await rpc.call(p.CLIENTS_LIST, limit=1)).counts
    assert counts["needs_reauth"] == len(practice.client_ids_needing_reauth) - len(targets)


async def test_cancel_stops_a_job_and_skips_what_was_not_started(practice):
    rpc = await practice.connect()
    targets = xero_needing_reauth(practice)
    result = await bulk_sign_in(practice, rpc, targets)
    await sandbox_post(practice.sandbox.base_url, "/_sandbox/limits", {"api_latency_seconds": 0.3})
    await sandbox_post(
        practice.sandbox.base_url,
        "/_sandbox/faults",
        {"kind": "delay", "delay_seconds": 0.3, "target": "api"},
    )
    practice.daemon.jobs._handlers["reauthorise"].concurrency = 1
    started = await rpc.call(
        p.JOBS_START, kind="reauthorise", grant_id=result.grant_id, client_ids=targets
    )
    cancelled = await rpc.call(p.JOBS_CANCEL, job_id=started.job_id)
    job = await finished(rpc, cancelled.id)
    assert job.state == "cancelled"
    skipped = [item for item in job.items if item.state == "skipped"]
    assert skipped and job.done + len(skipped) == len(targets)


async def test_bad_job_requests_are_refused_and_change_nothing(practice):
    rpc = await practice.connect()
    before = await rpc.call(p.JOBS_LIST)
    for params, code in (
        (
            {"kind": "reauthorise", "client_ids": [practice.seeded.client_ids[0]]},
            ErrorCode.INVALID_PARAMS,
        ),
        (
            {"kind": "reauthorise", "grant_id": 999, "client_ids": [practice.seeded.client_ids[0]]},
            ErrorCode.NOT_FOUND,
        ),
        ({"kind": "reimport", "client_ids": [424242]}, ErrorCode.NOT_FOUND),
        ({"kind": "reimport", "client_ids": []}, ErrorCode.INVALID_PARAMS),
        ({"kind": "launch", "client_ids": [1]}, ErrorCode.INVALID_PARAMS),
    ):
        with pytest.raises(RpcError) as caught:
            await rpc.call(p.JOBS_START, **params)
        assert caught.value.code == code
    assert await rpc.call(p.JOBS_LIST) == before
    with pytest.raises(RpcError) as caught:
        await rpc.call(p.JOBS_RETRY, job_id=999)
    assert caught.value.code == ErrorCode.NOT_FOUND


async def test_reimport_shows_differences_for_review_and_applies_them(practice):
    rpc = await practice.connect()
    client_id = practice.xero_connected_ids[0]
    original = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    await practice.daemon.store.update_client_details(
        client_id, practice.clock.now(), name="Old Name Pty Ltd"
    )
    started = await rpc.call(
        p.JOBS_START, kind="reimport", client_ids=practice.xero_connected_ids[:5]
    )
    job = await finished(rpc, started.job_id)
    changed = [item for item in job.items if item.changes]
    assert [item.client_id for item in changed] == [client_id]
    assert changed[0].changes["name"] == ["Old Name Pty Ltd", original.name]
    assert (await rpc.call(p.CLIENTS_GET, client_id=client_id)).name == "Old Name Pty Ltd"
    applied = await rpc.call(p.CLIENTS_APPLY_REIMPORT, job_id=started.job_id)
    assert applied.changed == [client_id]
    assert (await rpc.call(p.CLIENTS_GET, client_id=client_id)).name == original.name


async def test_deactivated_clients_are_kept_unwatched_and_listed_as_inactive(practice):
    rpc = await practice.connect()
    xero = practice.xero_connected_ids
    before = await rpc.call(p.DAEMON_STATUS)
    await rpc.call(p.CLIENTS_DEACTIVATE, client_ids=xero)
    listing = await rpc.call(p.CLIENTS_LIST, filter={"active": False}, limit=1000)
    assert sorted(c.id for c in listing.items) == sorted(xero)
    assert all(not c.active for c in listing.items)
    status = await rpc.call(p.DAEMON_STATUS)
    assert status.inactive_clients == len(xero)
    assert status.watched_grants < before.watched_grants
    await rpc.call(p.CLIENTS_REACTIVATE, client_ids=xero)
    assert (await rpc.call(p.DAEMON_STATUS)).watched_grants == before.watched_grants


async def test_export_writes_chosen_columns_and_neutralises_formulas(practice, short_tmp):
    rpc = await practice.connect()
    path = short_tmp / "clients.csv"
    result = await rpc.call(
        p.CLIENTS_EXPORT,
        path=str(path),
        columns=["name", "abn", "status"],
        filter={"status": "needs_reauth"},
    )
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["Name", "ABN", "Status"]
    assert {row[2] for row in rows[1:]} == {"Needs re-auth"}
    assert result.rows == len(rows) - 1 == len(practice.client_ids_needing_reauth)
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    with pytest.raises(RpcError) as caught:
        await rpc.call(p.CLIENTS_EXPORT, path=str(path))
    assert caught.value.code == ErrorCode.CONFLICT
    with pytest.raises(RpcError) as caught:
        await rpc.call(p.CLIENTS_EXPORT, path="relative.csv")
    assert "absolute" in caught.value.message
    with pytest.raises(RpcError):
        await rpc.call(p.CLIENTS_EXPORT, path=str(short_tmp / "x.csv"), columns=["secret"])
    assert neutralise('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    assert neutralise("@SUM(A1)") == "'@SUM(A1)" and neutralise("Smith & Co") == "Smith & Co"


async def store_job(home, job_id: int) -> dict:
    """The job as the database holds it (read-only, with the daemon dead)."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(home.database)) as db:
        db.row_factory = sqlite3.Row
        return dict(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())


# Items run ten at a time and each answer takes 0.4 s, so "done" moves in steps of ten:
# killing once it reaches 1, 10 or 20 (of 30) always lands while a batch is in flight.
@pytest.mark.parametrize("kill_after", [1, 10, 20])
async def test_a_killed_daemon_resumes_the_job_and_does_no_client_twice(home, sandbox, kill_after):
    process = DaemonProcess(home)
    try:
        rpc = await process.start()
        seeded = await seed_practice(rpc, sandbox.base_url)
        quickbooks = set(seeded.quickbooks_ids)
        # Re-authorise thirty Xero clients in one go.
        targets = [c for c in seeded.client_ids if c not in quickbooks][:30]

        class Person:
            async def approve(self, url, orgs):
                from clientlink.sandbox.approve import approve

                return await approve(url, orgs=orgs)

        result = await bulk_sign_in(Person(), rpc, targets)
        await sandbox_post(sandbox.base_url, "/_sandbox/limits", {"api_latency_seconds": 0.4})
        started = await rpc.call(
            p.JOBS_START, kind="reauthorise", grant_id=result.grant_id, client_ids=targets
        )

        async def progressed():
            job = await rpc.call(p.JOBS_GET, job_id=started.job_id)
            return job.done >= kill_after

        await wait_until(progressed, what="the job to get going")
        process.kill()
        await process.process.wait()
        assert (await store_job(home, started.job_id))["done"] < len(targets)  # mid-job

        rpc = await process.start()
        job = await finished(rpc, started.job_id)
        assert job.state == "completed"
        assert (job.done, job.failed) == (len(targets), 0)
        for client_id in targets:
            assert await reauthorised_audits(rpc, client_id) == 1, client_id
        await rpc.close()
    finally:
        await process.stop()


async def test_progress_is_coalesced_and_a_stuck_subscriber_does_not_slow_the_job(practice):
    import json
    import socket
    import time

    rpc = await practice.connect()
    await rpc.subscribe(["job.progress", "job.finished"])
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    stuck.connect(str(practice.socket_path))
    for number, method in enumerate((p.DAEMON_HELLO.name, p.EVENTS_SUBSCRIBE.name), start=1):
        params = {"protocol": 1} if method == p.DAEMON_HELLO.name else {}
        frame = {"jsonrpc": "2.0", "id": number, "method": method, "params": params}
        stuck.sendall(json.dumps(frame).encode() + b"\n")  # and never reads again

    targets = xero_needing_reauth(practice)
    result = await bulk_sign_in(practice, rpc, targets)
    await sandbox_post(practice.sandbox.base_url, "/_sandbox/limits", {"api_latency_seconds": 0.2})
    began = time.monotonic()
    started = await rpc.call(
        p.JOBS_START, kind="reauthorise", grant_id=result.grant_id, client_ids=targets
    )
    progress = 0
    async for event in rpc.events():
        if event.get("job_id") != started.job_id:
            continue
        if event["topic"] == "job.progress":
            progress += 1
        if event["topic"] == "job.finished":
            break
    elapsed = time.monotonic() - began
    assert event["done"] == len(targets)
    assert progress <= elapsed * 10 + 3  # about ten a second at most
    stuck.close()


async def test_calls_to_one_business_respect_xeros_concurrency_limit(practice):
    """Twenty checks of one business at once: never more than five in flight, no 429."""
    rpc = await practice.connect()
    client_id = practice.xero_connected_ids[0]
    client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    # Slow enough that five are in flight together: the socket admits a call that waits on
    # a provider only after the one before it has had its 50 ms turn (rpc_gate.FairGate).
    await sandbox_post(practice.sandbox.base_url, "/_sandbox/limits", {"api_latency_seconds": 0.6})
    before = await sandbox_get(practice.sandbox.base_url, "/_sandbox/stats")
    # From five connections: the socket runs only a few calls of one connection at once.
    callers = [await practice.connect(f"caller {n}") for n in range(5)]
    await asyncio.gather(
        *(
            caller.call(p.CLIENTS_CHECK, client_ids=[client_id])
            for caller in callers
            for _ in range(4)
        )
    )
    stats = await sandbox_get(practice.sandbox.base_url, "/_sandbox/stats")
    assert stats["max_concurrency"][client.tenant_id] == 5
    assert stats["rate_limited"] == before["rate_limited"]


async def test_pause_holds_a_job_and_resume_finishes_it(practice):
    rpc = await practice.connect()
    targets = xero_needing_reauth(practice)
    result = await bulk_sign_in(practice, rpc, targets)
    await sandbox_post(practice.sandbox.base_url, "/_sandbox/limits", {"api_latency_seconds": 0.3})
    practice.daemon.jobs._handlers["reauthorise"].concurrency = 1
    started = await rpc.call(
        p.JOBS_START, kind="reauthorise", grant_id=result.grant_id, client_ids=targets
    )
    await rpc.call(p.JOBS_PAUSE, job_id=started.job_id)

    async def paused():
        job = await rpc.call(p.JOBS_GET, job_id=started.job_id)
        return job.state == "paused"

    await wait_until(paused, what="the job to pause")
    held = await rpc.call(p.JOBS_GET, job_id=started.job_id)
    assert held.done < len(targets)
    await rpc.call(p.JOBS_RESUME, job_id=started.job_id)
    job = await finished(rpc, started.job_id)
    assert (job.state, job.done) == ("completed", len(targets))
