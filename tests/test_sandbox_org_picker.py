"""The sandbox's organisation picker over real HTTP: sorted by name, a filter box, "select all
shown", each checkbox beside its name; every part works without JavaScript."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from html.parser import HTMLParser

import httpx
import pytest

from clientlink.sandbox import SandboxServer, approve
from clientlink.sandbox.accounts import DEMO_PASSWORD, DEMO_USER
from clientlink.sandbox.seed import format_abn
from clientlink.sandbox.testkit import authorize_url, pkce_pair, quickbooks_authorize_url
from clientlink.sandbox.xero_identity import AUTHORIZE_PATH

REDIRECT_URI = "http://127.0.0.1:53682/callback"
SELECT = AUTHORIZE_PATH + "/organisations"


@dataclass
class Row:
    """One label of the picker: its input, the words beside it, and whether it is hidden."""

    hidden: bool
    input: dict[str, str] = field(default_factory=dict)
    text: str = ""


class PickerParser(HTMLParser):
    """The rows (``label.org``), the filter box and the buttons of the picker page."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[Row] = []
        self.inputs: list[dict[str, str]] = []
        self.buttons: list[dict[str, str]] = []
        self.styles = ""
        self._row: Row | None = None
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "label" and "org" in attributes.get("class", "").split():
            self._row = Row(hidden="hidden" in attributes)
        elif tag == "input":
            self.inputs.append(attributes)
            if self._row is not None:
                self._row.input = attributes
        elif tag == "button":
            self.buttons.append(attributes)
        elif tag == "style":
            self._in_style = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "label" and self._row is not None:
            self._row.text = " ".join(self._row.text.split())
            self.rows.append(self._row)
            self._row = None
        elif tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._row is not None:
            self._row.text += data
        if self._in_style:
            self.styles += data


def picker(html: str) -> PickerParser:
    parser = PickerParser()
    parser.feed(html)
    return parser


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer(org_count=30) as server:
        yield server


@pytest.fixture
async def http(sandbox: SandboxServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as client:
        yield client


async def open_picker(
    sandbox: SandboxServer, http: httpx.AsyncClient, url: str | None = None
) -> tuple[str, str]:
    """Sign in and pass the authenticator as a person would: (the txn, the picker page)."""
    url = url or authorize_url(
        sandbox.base_url, redirect_uri=REDIRECT_URI, code_challenge=pkce_pair()[1]
    )
    page = (await http.get(url)).text
    txn = re.search(r'name="txn" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    sign_in = re.search(r'action="([^"]+/sign-in)"', page).group(1)  # type: ignore[union-attr]
    base = sign_in.removesuffix("/sign-in")
    await http.post(sign_in, data={"txn": txn, "email": DEMO_USER, "password": DEMO_PASSWORD})
    provider = sandbox.state.quickbooks if "quickbooks" in base else sandbox.state.xero
    code = provider.current_totp(DEMO_USER)
    page = (await http.post(base + "/authenticator", data={"txn": txn, "code": code})).text
    assert 'id="select-organisations"' in page
    return txn, page


async def test_the_picker_is_sorted_by_name_with_each_checkbox_beside_its_name(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    _txn, page = await open_picker(sandbox, http)
    shown = picker(page)
    names = [row.input["data-name"] for row in shown.rows]
    seeded = [org.name for org in sandbox.state.orgs]
    assert names != seeded, "the seed is not in name order, so sorting must show"
    assert names == sorted(seeded, key=str.casefold)
    for row, name in zip(shown.rows, names, strict=True):
        # The checkbox and its name are in one label, the name right after the box.
        assert row.input["type"] == "checkbox" and row.input["name"] == "tenant"
        assert row.text.startswith(name + " ABN ")
        assert not row.hidden
    # A row lays out in one line: the label is a flex row, not a block under the box.
    assert re.search(r"label\.org\s*\{[^}]*display:\s*flex", shown.styles)
    filter_box = next(i for i in shown.inputs if i.get("id") == "org-filter")
    assert filter_box["type"] == "search" and filter_box["name"] == "filter"
    labels = {button.get("id") for button in shown.buttons}
    assert {"organisations-filter", "organisations-select-shown"} <= labels
    assert f"{len(seeded)}</span> shown of {len(seeded)}" in page


async def test_filter_without_javascript_hides_the_others_and_keeps_their_ticks(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    txn, _page = await open_picker(sandbox, http)
    orgs = sorted(sandbox.state.orgs, key=lambda org: org.name.casefold())
    target = orgs[5]
    word = target.name.split()[0]
    kept = next(org for org in orgs if word.casefold() not in org.name.casefold())
    kept_value = sandbox.state.xero.company_id(kept)
    page = (
        await http.post(
            SELECT, data={"txn": txn, "action": "filter", "filter": word, "tenant": [kept_value]}
        )
    ).text
    rows = picker(page).rows
    visible = [row.input["data-name"] for row in rows if not row.hidden]
    assert target.name in visible
    assert all(word.casefold() in name.casefold() for name in visible)
    assert len(rows) == len(orgs), "hidden rows stay in the form"
    kept_row = next(row for row in rows if row.input["value"] == kept_value)
    assert kept_row.hidden and "checked" in kept_row.input
    assert f'value="{word}"' in page

    # By ABN too, as the software shows it (with spaces).
    by_abn = (
        await http.post(
            SELECT, data={"txn": txn, "action": "filter", "filter": format_abn(target.abn)}
        )
    ).text
    assert [r.input["data-name"] for r in picker(by_abn).rows if not r.hidden] == [target.name]


async def test_select_all_shown_ticks_only_the_shown_and_continue_posts_them(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    txn, _page = await open_picker(sandbox, http)
    orgs = sorted(sandbox.state.orgs, key=lambda org: org.name.casefold())
    word = orgs[0].name.split()[0]
    matching = [org for org in orgs if word.casefold() in org.name.casefold()]
    assert 0 < len(matching) < len(orgs)
    page = (
        await http.post(SELECT, data={"txn": txn, "action": "select-shown", "filter": word})
    ).text
    rows = picker(page).rows
    ticked = [row for row in rows if "checked" in row.input]
    assert sorted(row.input["data-name"] for row in ticked) == sorted(o.name for o in matching)
    assert all(not row.hidden for row in ticked)

    # Continue posts what the page has ticked, as a browser would: only the shown ones.
    values = [row.input["value"] for row in ticked]
    consent = (await http.post(SELECT, data={"txn": txn, "filter": word, "tenant": values})).text
    assert 'id="consent"' in consent
    txn_state = sandbox.state.xero.transactions[txn]
    assert sorted(txn_state.tenant_ids) == sorted(org.tenant_id for org in matching)


async def test_a_refused_selection_keeps_the_filter_and_the_approve_helper_still_works(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    txn, _page = await open_picker(sandbox, http)
    page = (await http.post(SELECT, data={"txn": txn, "filter": "zzz-nothing"})).text
    assert "Select at least one organisation" in page
    assert 'value="zzz-nothing"' in page
    assert "No organisation matches the filter." in page
    assert 'id="orgs-none" hidden' not in page

    # The approve helper reads the same page and ticks by name.
    chosen = sorted(sandbox.state.orgs, key=lambda org: org.name.casefold())[3]
    url = authorize_url(sandbox.base_url, redirect_uri=REDIRECT_URI, code_challenge=pkce_pair()[1])
    final = await approve(url, orgs=[chosen.name], http=http)
    assert final.startswith(REDIRECT_URI + "?code=")


async def test_one_company_page_is_sorted_and_filters_without_a_select_all(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    url = quickbooks_authorize_url(sandbox.base_url, redirect_uri=REDIRECT_URI)
    _txn, page = await open_picker(sandbox, http, url)
    shown = picker(page)
    assert [row.input["type"] for row in shown.rows] == ["radio"] * len(shown.rows)
    names = [row.input["data-name"] for row in shown.rows]
    assert names == sorted(names, key=str.casefold)
    assert "organisations-select-shown" not in {b.get("id") for b in shown.buttons}
    assert "organisations-filter" in {b.get("id") for b in shown.buttons}
