"""MYOB Business end to end: the sandbox's MYOB over real HTTP, the daemon over its socket.

One sign-in connects one company file (named by businessId on the redirect); the client's
ABN comes from ABNOrTFN only when it is an ABN; the user who signed in is MYOB's
`user.username`; bulk re-authorisation is one sign-in per file; the failures mean what they
mean at MYOB ("Developer Over Qps" is a rate limit, a removed app is a re-authorisation).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from textual import events
from textual.widgets import Input, OptionList

from clientlink.cli.demo import PASSPHRASE_ENV, demo_config_text, myob_config_text
from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.paths import Paths, resolve_paths
from clientlink.sandbox.accounts import DEMO_USER, MYOB_BOOKKEEPER, MYOB_CLIENT_SECRET
from clientlink.sandbox.approve import ApproveError
from clientlink.sandbox.myob import business_id_of
from clientlink.tui.app import ClientlinkApp
from clientlink.tui.screens.bulk_reauth import BulkReauthScreen, ChooseSoftwareScreen
from clientlink.tui.screens.sign_in import Phase, SignInScreen
from clientlink.tui.widgets.checklist import Checklist
from tests.conftest import TEST_PASSPHRASE
from tests.helpers import advance_time, finished, sandbox_get, sandbox_post, wait_until
from tests.test_tui_bulk import clients_screen_with_list, finished_job, open_bulk_menu, screen_of


@pytest.fixture
def home(short_tmp, sandbox, monkeypatch: pytest.MonkeyPatch) -> Paths:
    """The demo's home with the sandbox's MYOB configured as well."""
    monkeypatch.setenv(PASSPHRASE_ENV, TEST_PASSPHRASE)
    paths = resolve_paths(short_tmp / "home")
    paths.ensure()
    text = demo_config_text(sandbox.base_url) + myob_config_text(sandbox.base_url)
    paths.config_file.write_text(text, encoding="utf-8")
    return paths


async def _rpc(daemon):
    rpc = await daemon.connect()
    await rpc.call(p.PROVIDERS_SET_SECRET, provider="myob", client_secret=MYOB_CLIENT_SECRET)
    return rpc


def _files(sandbox, *, tfn: bool) -> list:
    """Seed businesses whose MYOB file holds a TFN (tfn=True) or an ABN in ABNOrTFN."""
    myob = sandbox.state.myob
    return [
        org
        for org in sandbox.state.orgs
        if (len(myob.company_file(org).abn_or_tfn.replace(" ", "")) == 9) == tfn
    ]


async def _sign_in(daemon, rpc, org, *, client_id=None, user=DEMO_USER):
    session = await rpc.call(p.AUTH_BEGIN, provider="myob", client_id=client_id)
    redirect = await daemon.approve(session.authorize_url, [org.tenant_id], user=user)
    return session, await rpc.call(
        p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect
    )


async def _import_one(daemon, rpc, org) -> int:
    _, result = await _sign_in(daemon, rpc, org)
    imported = await rpc.call(p.CLIENTS_IMPORT, grant_id=result.grant_id)
    (client_id,) = imported.created
    return client_id


async def test_one_sign_in_connects_the_chosen_company_file(daemon, sandbox):
    rpc = await _rpc(daemon)
    org = _files(sandbox, tfn=False)[0]
    session, result = await _sign_in(daemon, rpc, org)
    query = parse_qs(urlsplit(session.authorize_url).query)
    assert query["prompt"] == ["consent"]
    assert query["scope"] == ["sme-company-file sme-company-settings"]
    assert session.authorize_url.startswith(sandbox.base_url + "/myob/oauth2/account/authorize")
    assert [t.tenant_id for t in result.tenants] == [business_id_of(org)]
    assert result.tenants[0].name == org.name
    assert result.provider_user["name"] == DEMO_USER  # "as demo@practice.example in MYOB"

    imported = await rpc.call(p.CLIENTS_IMPORT, grant_id=result.grant_id)
    client = await rpc.call(p.CLIENTS_GET, client_id=imported.created[0])
    assert (client.name, client.abn, client.email) == (org.name, org.abn, org.email)
    assert client.provider == "myob" and client.status == "connected"
    # Every API call carried the key and the version (the sandbox refuses calls without).
    stats = await sandbox_get(sandbox.base_url, "/_sandbox/stats")
    assert stats["calls"]["myob.company"] >= 2


async def test_a_tax_file_number_is_never_stored_or_shown(daemon, sandbox):
    rpc = await _rpc(daemon)
    org = _files(sandbox, tfn=True)[0]
    tfn = sandbox.state.myob.company_file(org).abn_or_tfn
    client_id = await _import_one(daemon, rpc, org)
    client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    assert client.abn is None
    listing = await rpc.call(p.CLIENTS_LIST, limit=100)
    assert tfn.replace(" ", "") not in repr(listing) and tfn not in repr(listing)
    raw = daemon.paths.database.read_bytes()
    assert tfn.replace(" ", "").encode() not in raw


async def test_only_an_administrator_of_the_file_may_allow_access(daemon, sandbox):
    rpc = await _rpc(daemon)
    org = _files(sandbox, tfn=False)[0]
    session = await rpc.call(p.AUTH_BEGIN, provider="myob")
    with pytest.raises(ApproveError, match="not an Administrator of"):
        await daemon.approve(session.authorize_url, [org.tenant_id], user=MYOB_BOOKKEEPER)
    assert (await rpc.call(p.CLIENTS_LIST)).total == 0


async def test_reimport_shows_the_name_abn_and_email_changed_in_myob(daemon, sandbox):
    rpc = await _rpc(daemon)
    org, other = _files(sandbox, tfn=False)[:2]
    client_id = await _import_one(daemon, rpc, org)
    await sandbox_post(
        sandbox.base_url,
        f"/_sandbox/myob/companies/{business_id_of(org)}",
        {
            "company_name": "Harper Retirement Fund",
            "abn_or_tfn": other.abn,
            "email": "trustee@harper.example",
        },
    )
    started = await rpc.call(p.JOBS_START, kind="reimport", client_ids=[client_id])
    job = await finished(rpc, started.job_id)
    (item,) = job.items
    assert item.changes["name"] == [org.name, "Harper Retirement Fund"]
    assert item.changes["abn"] == [org.abn, other.abn]
    assert item.changes["email"] == [org.email, "trustee@harper.example"]
    # A TFN typed into ABNOrTFN is no ABN: re-import does not offer it.
    tfn = sandbox.state.myob.company_file(_files(sandbox, tfn=True)[0]).abn_or_tfn
    await sandbox_post(
        sandbox.base_url, f"/_sandbox/myob/companies/{business_id_of(org)}", {"abn_or_tfn": tfn}
    )
    job = await finished(
        rpc, (await rpc.call(p.JOBS_START, kind="reimport", client_ids=[client_id])).job_id
    )
    assert "abn" not in (job.items[0].changes or {})


async def test_single_reauthorisation_after_the_app_was_removed_in_myob(daemon, sandbox):
    rpc = await _rpc(daemon)
    org = _files(sandbox, tfn=False)[0]
    client_id = await _import_one(daemon, rpc, org)
    (grant,) = await sandbox_get(sandbox.base_url, "/_sandbox/grants")
    await sandbox_post(sandbox.base_url, f"/_sandbox/grants/{grant['grant_id']}/revoke")
    await rpc.call(p.CLIENTS_CHECK, client_ids=[client_id])
    client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    assert client.status == "needs_reauth"

    with pytest.raises(RpcError, match="leave out business"):
        await rpc.call(p.AUTH_BEGIN, provider="myob", client_id=client_id, business="X")
    _, result = await _sign_in(daemon, rpc, org, client_id=client_id)
    client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    assert client.status == "connected" and client.grant_id == result.grant_id


async def test_bulk_reauthorisation_signs_in_once_per_company_file(daemon, sandbox):
    rpc = await _rpc(daemon)
    orgs = _files(sandbox, tfn=False)[:2]
    ids = [await _import_one(daemon, rpc, org) for org in orgs]
    for grant in await sandbox_get(sandbox.base_url, "/_sandbox/grants"):
        await sandbox_post(sandbox.base_url, f"/_sandbox/grants/{grant['grant_id']}/expire-refresh")
    await advance_time(daemon, 21 * 60)  # the 20-minute access tokens end; refresh refused
    for client_id in ids:
        assert (await rpc.call(p.CLIENTS_GET, client_id=client_id)).status == "needs_reauth"
    for org, client_id in zip(orgs, ids, strict=True):
        _, result = await _sign_in(daemon, rpc, org)
        assert [t.client_id for t in result.tenants] == [client_id]
        started = await rpc.call(
            p.JOBS_START, kind="reauthorise", grant_id=result.grant_id, client_ids=[client_id]
        )
        job = await finished(rpc, started.job_id)
        assert (job.state, job.done, job.failed) == ("completed", 1, 0)
    for client_id in ids:
        assert (await rpc.call(p.CLIENTS_GET, client_id=client_id)).status == "connected"


async def test_developer_over_qps_is_a_rate_limit_not_a_lost_file(daemon, sandbox):
    rpc = await _rpc(daemon)
    org = _files(sandbox, tfn=False)[0]
    client_id = await _import_one(daemon, rpc, org)
    await sandbox_post(
        sandbox.base_url,
        "/_sandbox/faults",
        {"kind": "429", "target": "api", "provider": "myob", "count": 1},
    )
    await rpc.call(p.CLIENTS_CHECK, client_ids=[client_id])
    client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    assert client.status == "connected"


async def test_the_watcher_keeps_myob_grants_alive_with_rotating_refresh_tokens(daemon, sandbox):
    rpc = await _rpc(daemon)
    client_id = await _import_one(daemon, rpc, _files(sandbox, tfn=False)[0])
    before = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    for _ in range(4):  # an hour and a bit: each 20-minute token is refreshed before its end
        await advance_time(daemon, 17 * 60)
    after = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    assert after.status == "connected"
    assert after.access_expires_at > before.access_expires_at
    tokens = await sandbox_get(sandbox.base_url, "/_sandbox/tokens")
    refresh = [t for t in tokens if t["provider"] == "myob" and t["kind"] == "refresh"]
    assert len(refresh) >= 4  # rotated on every refresh
    assert sum(t["state"] == "active" for t in refresh) == 1
    stats = await sandbox_get(sandbox.base_url, "/_sandbox/stats")
    assert stats["calls"]["myob.token.refresh_token"] >= 3


async def test_myob_is_listed_and_needs_its_secret_before_a_sign_in(daemon):
    rpc = await daemon.connect()
    (info,) = [i for i in (await rpc.call(p.PROVIDERS_LIST)).items if i.name == "myob"]
    assert (info.kind, info.has_secret) == ("myob", False)
    assert info.problem and "secret" in info.problem
    with pytest.raises(RpcError, match="secret"):
        await rpc.call(p.AUTH_BEGIN, provider="myob")
    await rpc.call(p.PROVIDERS_SET_SECRET, provider="myob", client_secret=MYOB_CLIENT_SECRET)
    (info,) = [i for i in (await rpc.call(p.PROVIDERS_LIST)).items if i.name == "myob"]
    assert (info.configured, info.has_secret, info.problem) == (True, True, None)
    assert MYOB_CLIENT_SECRET not in repr(await rpc.call(p.PROVIDERS_LIST))


async def test_tui_bulk_reauthorises_a_myob_file_at_80_by_24(daemon, sandbox):
    rpc = await _rpc(daemon)
    org = _files(sandbox, tfn=False)[0]
    client_id = await _import_one(daemon, rpc, org)
    (grant,) = await sandbox_get(sandbox.base_url, "/_sandbox/grants")
    await sandbox_post(sandbox.base_url, f"/_sandbox/grants/{grant['grant_id']}/revoke")
    await rpc.call(p.CLIENTS_CHECK, client_ids=[client_id])
    app = ClientlinkApp(daemon.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await clients_screen_with_list(app)
        await open_bulk_menu(pilot)
        await pilot.press("enter")  # Re-authorise Bulk Clients
        chooser = await screen_of(app, ChooseSoftwareScreen)
        options = chooser.query_one(OptionList)
        await wait_until(lambda: options.option_count > 0, what="the software list")
        index = options.get_option_index("myob")
        shown = str(options.get_option_at_index(index).prompt)
        assert "MYOB (sandbox)" in shown and "1 client to re-authorise" in shown
        options.highlighted = index
        await pilot.press("enter")
        sign_in = await screen_of(app, SignInScreen)
        await wait_until(lambda: sign_in.phase == Phase.WAITING, what="the sign-in address")
        assert sign_in.session is not None and "prompt=consent" in sign_in.session.authorize_url
        redirect_url = await daemon.approve(sign_in.session.authorize_url, [org.tenant_id])
        app.screen.focused.post_message(events.Paste(redirect_url))
        paste = sign_in.query_one("#sign-in-paste", Input)
        await wait_until(lambda: paste.has_focus, what="the paste field")
        await pilot.press("enter")

        bulk = await screen_of(app, BulkReauthScreen)
        checklist = bulk.query_one(Checklist)
        await wait_until(lambda: checklist.option_count == 1, what="the checklist")
        assert checklist.selected == [client_id]
        assert org.name in str(checklist.get_option_at_index(0).prompt)
        await pilot.press("enter")  # Re-authorise Selected Clients
        progress = await finished_job(pilot)
        assert "1 re-authorised, 0 failed" in str(progress.query_one("#job-summary").render())
    client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    assert client.status == "connected"


async def test_a_redirect_without_the_file_or_naming_another_is_refused_clearly(daemon, sandbox):
    rpc = await _rpc(daemon)
    org, other = _files(sandbox, tfn=False)[:2]
    for change in ("drop", "swap"):
        session = await rpc.call(p.AUTH_BEGIN, provider="myob")
        redirect = await daemon.approve(session.authorize_url, [org.tenant_id])
        parts = urlsplit(redirect)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if change == "drop":
            del query["businessId"], query["businessName"]
        else:
            query["businessId"] = business_id_of(other)
        tampered = parts._replace(query=urlencode(query)).geturl()
        with pytest.raises(RpcError) as caught:
            await rpc.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=tampered)
        expected = "no businessId" if change == "drop" else "no longer gives access"
        assert expected in caught.value.message
        assert "Traceback" not in caught.value.message
    assert (await rpc.call(p.CLIENTS_LIST)).total == 0
