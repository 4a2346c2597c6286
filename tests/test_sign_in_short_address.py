"""The short sign-in address served by the loopback listener, over real HTTP."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx

from clientlink.common import protocol as p
from tests.helpers import port_closes

NOTHING_WAITS = "No sign-in is waiting at this address"


async def _get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30, follow_redirects=False) as browser:
        return await browser.get(url)


def _code(short_url: str) -> str:
    return urlsplit(short_url).path.removeprefix("/s/")


async def test_the_short_address_redirects_to_the_provider_while_the_session_waits(practice):
    rpc = await practice.connect()
    client_id = practice.client_ids_needing_reauth[0]
    session = await rpc.call(p.AUTH_BEGIN, provider="xero", client_id=client_id)
    short = urlsplit(session.short_url)
    redirect = urlsplit(session.redirect_uri)
    assert (short.scheme, short.netloc) == (redirect.scheme, redirect.netloc)
    assert short.netloc == f"127.0.0.1:{session.callback_port}"
    code = _code(session.short_url)
    assert re.fullmatch(r"[A-Za-z0-9_-]{12,}", code), code  # 72 random bits, url-safe
    assert len(session.short_url) < 60  # one line at 80 columns, with room to spare

    answer = await _get(session.short_url)
    assert answer.status_code == 302
    assert answer.headers["location"] == session.authorize_url
    assert answer.headers["cache-control"] == "no-store"
    # The browser follows it to the provider's own sign-in page.
    async with httpx.AsyncClient(timeout=30, follow_redirects=True) as browser:
        page = await browser.get(session.short_url)
    assert page.status_code == 200
    assert str(page.url).startswith(practice.sandbox.base_url)
    # Asked again, still there: it stays valid as long as the session waits.
    assert (await _get(session.short_url)).status_code == 302

    # Each session has its own code.
    other = await rpc.call(p.AUTH_BEGIN, provider="xero")
    assert _code(other.short_url) != code
    assert (await _get(other.short_url)).headers["location"] == other.authorize_url
    await rpc.call(p.AUTH_CANCEL, session_id=other.session_id)
    await rpc.call(p.AUTH_CANCEL, session_id=session.session_id)


async def test_the_short_address_refuses_once_the_session_no_longer_waits(practice):
    rpc = await practice.connect()
    client_id = practice.client_ids_needing_reauth[0]
    client = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    keep_open = await rpc.call(p.AUTH_BEGIN, provider="xero")  # keeps the listener up
    completed = await rpc.call(p.AUTH_BEGIN, provider="xero", client_id=client_id)
    cancelled = await rpc.call(p.AUTH_BEGIN, provider="xero")
    expiring = await rpc.call(p.AUTH_BEGIN, provider="xero")

    redirect = await practice.approve(completed.authorize_url, [client.tenant_id])
    await rpc.call(p.AUTH_COMPLETE, session_id=completed.session_id, redirect_url=redirect)
    await rpc.call(p.AUTH_CANCEL, session_id=cancelled.session_id)
    base = completed.short_url.rsplit("/", 1)[0]
    unknown = f"{base}/{'A' * len(_code(completed.short_url))}"

    pages = {}
    for name, url in (
        ("completed", completed.short_url),
        ("cancelled", cancelled.short_url),
        ("unknown", unknown),
        ("hostile", f"{base}/%3Cscript%3E%00"),
    ):
        page = await _get(url)
        assert page.status_code == 404, name
        assert "location" not in page.headers
        pages[name] = page.text
    assert NOTHING_WAITS in pages["completed"]
    # The same page whatever the reason: nothing to learn about which codes exist.
    assert len(set(pages.values())) == 1
    for session in (completed, cancelled, keep_open):
        assert session.authorize_url not in pages["completed"]
        assert "state=" not in pages["completed"]

    # Expiry counts on the daemon's clock, not on a timer having fired.
    assert (await _get(expiring.short_url)).status_code == 302
    practice.clock.advance(11 * 60)
    expired = await _get(expiring.short_url)
    assert expired.status_code == 404 and NOTHING_WAITS in expired.text
    assert (await rpc.call(p.AUTH_STATUS, session_id=expiring.session_id)).state == "expired"

    # With nothing pending the listener closes: the address no longer answers at all.
    await rpc.call(p.AUTH_CANCEL, session_id=keep_open.session_id)
    assert await port_closes(keep_open.callback_port)
