"""The demo's SMSF practice: what `seed_smsf_practice` leaves, and that a person can put it right.

Seeded once for this module (as `clientlink demo` does: the books practice with five
businesses left for MYOB, then the SMSF practice) in a sandbox and daemon of its own; each
test gets a copy (the daemon's files and the sandbox's world), like the ``practice`` fixture.
Real sandbox over HTTP, real daemon on its socket and SQLite; the TUI driven with Pilot.
"""

from __future__ import annotations

import asyncio
import copy
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from textual.widgets import OptionList

from clientlink.cli.demo import (
    PASSPHRASE_ENV,
    _auto_approver,
    demo_config_text,
    myob_config_text,
    seed_practice,
)
from clientlink.cli.demo_smsf import (
    CHANGED_CLASS_EMAIL,
    MYOB_FILES,
    RENAMED_BGL_FUND,
    SeededSmsf,
    seed_smsf_practice,
    smsf_summary,
)
from clientlink.common import protocol as p
from clientlink.common.client import DaemonClient
from clientlink.common.config import load_config
from clientlink.common.paths import Paths, resolve_paths
from clientlink.daemon.clock import Clock
from clientlink.daemon.service import Daemon
from clientlink.sandbox.approve import approve
from clientlink.sandbox.classsuper import DEFAULT_FUND_COUNTS
from clientlink.sandbox.seed import abn_is_valid
from clientlink.sandbox.server import SandboxServer
from clientlink.sandbox.smsf_seed import DEFAULT_ENTITY_COUNT
from clientlink.tui.app import ClientlinkApp
from clientlink.tui.screens.bulk_reauth import BulkReauthScreen, ChooseSoftwareScreen
from clientlink.tui.screens.business_reauth import BusinessReauthScreen
from clientlink.tui.screens.job_progress import JobProgressScreen
from clientlink.tui.widgets.checklist import Checklist
from tests.conftest import TEST_ORGS, TEST_PASSPHRASE, PracticeTemplate, RunningDaemon
from tests.helpers import finished, sandbox_get, wait_until
from tests.test_tui_bulk import clients_screen_with_list, open_bulk_menu, screen_of


def config_text(sandbox: SandboxServer) -> str:
    """The demo's config.toml, MYOB included."""
    return demo_config_text(sandbox.base_url, smtp_port=sandbox.smtp_port) + myob_config_text(
        sandbox.base_url
    )


@dataclass
class SmsfTemplate:
    practice: PracticeTemplate
    smsf: SeededSmsf


async def _seed(folder: Path) -> SmsfTemplate:
    async with SandboxServer(org_count=TEST_ORGS) as server:
        paths = resolve_paths(folder / "home")
        paths.ensure()
        paths.config_file.write_text(config_text(server), encoding="utf-8")
        clock = Clock()
        instance = Daemon(paths, load_config(paths.config_file), clock=clock, desktop=None)
        await instance.start()
        try:
            async with DaemonClient(paths.socket, client_name="seed") as client:
                seeded = await seed_practice(client, server.base_url, spare=MYOB_FILES)
                smsf = await seed_smsf_practice(
                    client, server.base_url, myob_tenants=seeded.spare_tenants
                )
                await instance.notifier.flush()
                await client.call(p.NOTIFICATIONS_ACK)
        finally:
            await instance.stop()
        world = server.state.snapshot()
        return SmsfTemplate(PracticeTemplate(paths, world, clock.now(), seeded), smsf)


@pytest.fixture(scope="module")
def smsf_template() -> Iterator[SmsfTemplate]:
    """The demo's practice seeded once for the module, in a thread with its own loop."""
    folder = Path(tempfile.mkdtemp(prefix="cl-"))
    built: list[SmsfTemplate] = []
    failed: list[BaseException] = []

    def build() -> None:
        try:
            built.append(asyncio.run(_seed(folder)))
        except BaseException as exc:
            failed.append(exc)

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(PASSPHRASE_ENV, TEST_PASSPHRASE)
        worker = threading.Thread(target=build, name="smsf-template")
        worker.start()
        worker.join()
    if failed:
        raise failed[0]
    yield built[0]
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def home(short_tmp: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> Paths:
    """A home whose config is the demo's, MYOB included."""
    monkeypatch.setenv(PASSPHRASE_ENV, TEST_PASSPHRASE)
    paths = resolve_paths(short_tmp / "home")
    paths.ensure()
    paths.config_file.write_text(config_text(sandbox), encoding="utf-8")
    return paths


@dataclass
class Demo:
    running: RunningDaemon
    rpc: DaemonClient
    smsf: SeededSmsf


@pytest.fixture
async def demo(
    home: Paths, sandbox: SandboxServer, smsf_template: SmsfTemplate
) -> AsyncIterator[Demo]:
    """A copy of the demo's practice: its daemon started, a client connected."""
    clock = smsf_template.practice.copy_into(home, sandbox)
    instance = Daemon(home, load_config(home.config_file), clock=clock, desktop=None)
    await instance.start()
    running = RunningDaemon(daemon=instance, paths=home, clock=clock, sandbox=sandbox)
    try:
        rpc = await running.connect()
        yield Demo(running, rpc, copy.deepcopy(smsf_template.smsf))
    finally:
        for client in running.clients:
            await client.close()
        await instance.stop()


async def job_summary(app: ClientlinkApp) -> str:
    """The progress screen's last words once the job ends (a 120-fund job, every part in
    this one event loop on a shared machine: more time than test_tui_bulk's helper gives)."""
    progress = await screen_of(app, JobProgressScreen)
    await wait_until(
        lambda: progress.job is not None and progress.job.state.finished,
        within=60,
        what="the job to end",
    )
    return str(progress.query_one("#job-summary").render())


async def clients_of(rpc: DaemonClient, provider: str) -> list[p.Client]:
    listed = await rpc.call(p.CLIENTS_LIST, filter={"provider": provider}, limit=1000)
    return listed.items


async def test_the_smsf_practice_is_imported_per_software_and_business_with_its_reasons(demo):
    rpc, smsf = demo.rpc, demo.smsf
    info = await sandbox_get(demo.running.sandbox.base_url, "/_sandbox/info")
    bgl = await clients_of(rpc, "bgl")
    assert len(bgl) == DEFAULT_ENTITY_COUNT == info["bgl"]["entity_count"]
    assert {c.business for c in bgl} == {info["bgl"]["firm"]["code"]} == {smsf.bgl_firm}
    assert {c.entity_type for c in bgl} >= {"SMSF", "BillableTrust", "BillableCompany"}
    assert all(c.abn and abn_is_valid(c.abn) for c in bgl)
    for client in bgl:
        assert client.status == "needs_reauth"
        assert "SF360 integration was removed" in (client.status_reason or "")

    # Two of the sandbox's three Class businesses, the third left alone.
    businesses = info["class"]["businesses"]
    assert list(smsf.class_ids) == [b["code"] for b in businesses[:2]]
    by_business: dict[str | None, list[p.Client]] = {}
    for client in await clients_of(rpc, "class"):
        by_business.setdefault(client.business, []).append(client)
    assert {code: len(found) for code, found in by_business.items()} == dict(
        zip(smsf.class_ids, DEFAULT_FUND_COUNTS[:2], strict=True)
    )
    reasons = {
        code: {(c.status, c.status_reason) for c in found} for code, found in by_business.items()
    }
    (revoked,) = reasons[smsf.revoked_business]
    (expired,) = reasons[smsf.expired_business]
    assert revoked[0] == expired[0] == "needs_reauth"
    assert "cancelled in Class Super (sandbox), which revoked" in revoked[1]
    assert "expired after 30 days without use" in expired[1] and "revoked" not in expired[1]

    # MYOB holds the five businesses the books practice left: none is also a Xero or
    # QuickBooks client.
    myob = await clients_of(rpc, "myob")
    assert len(myob) == MYOB_FILES and {c.status for c in myob} == {"connected"}
    books = await clients_of(rpc, "xero") + await clients_of(rpc, "quickbooks")
    assert len(books) == TEST_ORGS - MYOB_FILES
    assert not {c.abn for c in myob} & {c.abn for c in books}
    assert not {c.name for c in myob} & {c.name for c in books}

    # The printout says the same.
    funds = bgl + [c for found in by_business.values() for c in found]
    waiting = {c.id: c.status_reason for c in funds}
    said = "\n".join(smsf_summary(smsf, waiting))
    assert f"firm {smsf.bgl_firm}: {DEFAULT_ENTITY_COUNT} funds and entities; all need" in said
    assert f"business {smsf.revoked_business}: {DEFAULT_FUND_COUNTS[0]} funds; all need" in said
    assert "the SF360 integration was removed" in said
    assert "expired after 30 days without use" in said
    assert f"MYOB: {MYOB_FILES} company files, connected" in said
    assert "demo@practice.example, password sandbox-demo" in said


async def test_bulk_reauthorisation_brings_every_fund_back_and_reimport_finds_the_changes(demo):
    rpc, smsf, running = demo.rpc, demo.smsf, demo.running
    before = len(await sandbox_get(running.sandbox.base_url, "/_sandbox/grants"))
    # BGL: one sign-in covers the firm; one job re-authorises all its funds and entities.
    session = await rpc.call(p.AUTH_BEGIN, provider="bgl")
    redirect = await approve(session.authorize_url)
    signed = await rpc.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect)
    assert sorted(t.client_id for t in signed.tenants) == smsf.bgl_ids
    started = await rpc.call(
        p.JOBS_START, kind="reauthorise", grant_id=signed.grant_id, client_ids=smsf.bgl_ids
    )
    job = await finished(rpc, started.job_id)
    assert (job.state, job.done, job.failed) == ("completed", len(smsf.bgl_ids), 0)

    # Class: one job over both businesses' funds, waiting for a sign-in to each in turn.
    class_ids = [i for ids in smsf.class_ids.values() for i in ids]
    started = await rpc.call(p.JOBS_START, kind="reauthorise", client_ids=class_ids)
    for code in smsf.class_ids:

        async def waits_for(code: str = code) -> bool:
            wait = (await rpc.call(p.JOBS_GET, job_id=started.job_id)).waiting_for_sign_in
            return wait is not None and wait.business == code

        await wait_until(waits_for, what=f"the job to wait for {code}")
        session = await rpc.call(p.AUTH_BEGIN, provider="class", business=code)
        redirect = await approve(session.authorize_url)
        signed = await rpc.call(
            p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect
        )
        await rpc.call(p.JOBS_ADD_SIGN_IN, job_id=started.job_id, grant_id=signed.grant_id)
    job = await finished(rpc, started.job_id)
    assert (job.state, job.done, job.failed) == ("completed", len(class_ids), 0)
    assert [s.state for s in job.sign_ins] == ["signed_in", "signed_in"]
    # Three sign-ins in all, and nothing else signed in to.
    assert len(await sandbox_get(running.sandbox.base_url, "/_sandbox/grants")) == before + 3
    for client_id in smsf.needs_reauth_ids:
        client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
        assert client.status == "connected", client.status_reason

    # Re-import: exactly the details the demo changed at BGL, Class and Xero differ.
    everyone = [c.id for c in (await rpc.call(p.CLIENTS_LIST, limit=1000)).items]
    started = await rpc.call(p.JOBS_START, kind="reimport", client_ids=everyone)
    job = await finished(rpc, started.job_id)
    found = {item.client_id: item.changes for item in job.items if item.changes}
    assert set(found) == set(smsf.changed) and len(found) == 3
    for client_id, changes in smsf.changed.items():
        for name, pair in changes.items():
            assert found[client_id][name] == pair
    values = [pair[1] for changes in smsf.changed.values() for pair in changes.values()]
    assert RENAMED_BGL_FUND in values and CHANGED_CLASS_EMAIL in values


async def test_pressing_b_reauthorises_every_bgl_and_class_fund_at_80x24(demo):
    rpc, smsf, running = demo.rpc, demo.smsf, demo.running
    app = ClientlinkApp(running.socket_path, auto_approve=_auto_approver(), open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await clients_screen_with_list(app)

        async def choose(provider: str) -> str:
            await open_bulk_menu(pilot)
            await pilot.press("enter")  # Re-authorise Bulk Clients
            chooser = await screen_of(app, ChooseSoftwareScreen)
            options = chooser.query_one(OptionList)
            await wait_until(lambda: options.option_count > 0, what="the software list")
            assert "Which software?" in str(chooser.query_one("#choose-software-question").render())
            options.highlighted = options.get_option_index(provider)
            prompt = str(options.get_option(provider).prompt)
            await pilot.press("enter")
            return prompt

        prompt = await choose("bgl")
        assert f"{len(smsf.bgl_ids)} clients to re-authorise" in prompt
        # The demo's auto-approve plays the one SF360 sign-in; every entity is ticked.
        bulk = await screen_of(app, BulkReauthScreen)
        checklist = bulk.query_one(Checklist)
        await wait_until(lambda: checklist.option_count == len(smsf.bgl_ids), what="the funds")
        said = str(bulk.query_one("#bulk-summary").render())
        assert f"{len(smsf.bgl_ids)} covered, {len(smsf.bgl_ids)} of them clients" in said
        await pilot.press("enter")
        summary = await job_summary(app)
        assert f"{len(smsf.bgl_ids)} re-authorised, 0 failed" in summary
        await pilot.press("m")
        await clients_screen_with_list(app)

        prompt = await choose("class")
        assert f"{smsf.class_total} clients to re-authorise" in prompt
        walk = await screen_of(app, BusinessReauthScreen)
        checklist = walk.query_one(Checklist)
        await wait_until(lambda: checklist.option_count == smsf.class_total, what="the funds")
        said = str(walk.query_one("#business-summary").render())
        assert f"These {smsf.class_total} funds are in 2 Class Super (sandbox) businesses" in said
        assert "you will sign in 2 times" in said
        await pilot.press("enter")  # start: the first business's sign-in is played
        second = list(sorted(smsf.class_ids, key=str.casefold))[1]
        step = f"Sign-in 2 of 2: business {second}"
        await wait_until(
            lambda: step in str(walk.query_one("#business-step").render()), what="sign-in 2"
        )
        await pilot.press("enter")  # sign in to the second business
        summary = await job_summary(app)
        assert f"{smsf.class_total} re-authorised, 0 failed" in summary

    for client_id in smsf.needs_reauth_ids:
        assert (await rpc.call(p.CLIENTS_GET, client_id=client_id)).status == "connected"
