"""Play the person in the browser: walk the sandbox's sign-in pages over plain HTTP.

Used by `clientlink sandbox approve URL`, by the demo and by tests. It reads the pages the way
a browser would (forms, hidden fields, checkboxes, radio buttons), so the pages stay honest
HTML. The same walk serves Xero (tick several organisations) and QuickBooks Online (choose one
company).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
import pyotp

from clientlink.sandbox.accounts import DEMO_PASSWORD, DEMO_USER, TOTP_SECRET


class ApproveError(Exception):
    """The walk through the sign-in pages failed; the message says where and why."""


@dataclass
class _Choice:
    """One organisation checkbox or company radio button."""

    value: str
    name: str
    tenant_id: str

    def matches(self, wanted: str) -> bool:
        key = wanted.strip().casefold()
        return key in (self.value.casefold(), self.name.casefold(), self.tenant_id.casefold())


@dataclass
class _Form:
    id: str
    action: str
    fields: dict[str, str] = field(default_factory=dict)
    choices: list[_Choice] = field(default_factory=list)
    # Radio buttons: the page lets the person pick exactly one.
    single_choice: bool = False


class _PageParser(HTMLParser):
    """Collects forms, their hidden fields and checkboxes, and the page's error message."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[_Form] = []
        self.error_parts: list[str] = []
        self._in_error = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if self._in_error:
            self._in_error += 1
        elif attributes.get("id") == "error":
            self._in_error = 1
        if tag == "form":
            self.forms.append(_Form(attributes.get("id", ""), attributes.get("action", "")))
        elif tag == "input" and self.forms:
            form = self.forms[-1]
            kind = attributes.get("type", "text")
            if kind == "hidden":
                form.fields[attributes.get("name", "")] = attributes.get("value", "")
            elif kind in ("checkbox", "radio"):
                value = attributes.get("value", "")
                form.choices.append(
                    _Choice(
                        value=value,
                        name=attributes.get("data-name", ""),
                        tenant_id=attributes.get("data-tenant-id", value),
                    )
                )
                form.single_choice = kind == "radio"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <input .../> has no end tag, so it must not deepen the error nesting.
        in_error = self._in_error
        self.handle_starttag(tag, attrs)
        self._in_error = in_error

    def handle_endtag(self, tag: str) -> None:
        if self._in_error:
            self._in_error -= 1

    def handle_data(self, data: str) -> None:
        if self._in_error:
            self.error_parts.append(data)

    @property
    def error(self) -> str | None:
        text = " ".join("".join(self.error_parts).split())
        return text or None


def _parse(response: httpx.Response, expected_form: str, step: str) -> _Form:
    """Find `expected_form` on the page, or raise ApproveError with the page's message."""
    parser = _PageParser()
    parser.feed(response.text)
    form = next((f for f in parser.forms if f.id == expected_form), None)
    if form is None or parser.error:
        message = parser.error or f"unexpected page (HTTP {response.status_code})"
        raise ApproveError(f"{step} failed: {message}")
    return form


def _has_form(response: httpx.Response, form_id: str) -> bool:
    parser = _PageParser()
    parser.feed(response.text)
    return not parser.error and any(form.id == form_id for form in parser.forms)


def _select_tenants(form: _Form, orgs: list[str] | None) -> list[str]:
    """Map names or ids (case-insensitive) to the values the page posts.

    None picks the first one offered; on a one-company page only the first of `orgs` counts.
    """
    offered = form.choices
    if not offered:
        raise ApproveError("the organisation page offered no organisations")
    if orgs is None:
        return [offered[0].value]
    wanted_list = orgs[:1] if form.single_choice else orgs
    chosen: list[str] = []
    for wanted in wanted_list:
        match = next((choice for choice in offered if choice.matches(wanted)), None)
        if match is None:
            examples = ", ".join(choice.name for choice in offered[:5])
            raise ApproveError(
                f"organisation {wanted!r} is not available to this user "
                f"({len(offered)} are, e.g. {examples})"
            )
        chosen.append(match.value)
    return chosen


async def _sandbox_now_totp(http: httpx.AsyncClient, base_url: str, secret: str) -> str:
    """The TOTP code at the sandbox's clock, which tests may have moved."""
    response = await http.get(base_url + "/_sandbox/clock")
    response.raise_for_status()
    offset = float(response.json()["offset_seconds"])
    return pyotp.TOTP(secret).at(int(time.time() + offset))


def _redirect_location(response: httpx.Response, step: str) -> str:
    if response.status_code not in (301, 302, 303, 307, 308):
        raise ApproveError(f"{step} failed: expected a redirect, got HTTP {response.status_code}")
    return response.headers["location"]


async def approve(
    authorize_url: str,
    *,
    orgs: list[str] | None = None,
    user: str = DEMO_USER,
    password: str = DEMO_PASSWORD,
    totp_secret: str = TOTP_SECRET,
    deny: bool = False,
    http: httpx.AsyncClient | None = None,
) -> str:
    """Sign in, pass the authenticator, tick `orgs`, allow (or cancel); return the redirect.

    Works for every provider's authorize URL. `orgs` are organisation names, tenant ids or
    QuickBooks realm ids (case-insensitive); None ticks just the first organisation offered.
    Where a consent covers one company (QuickBooks) the first of `orgs` is chosen. The
    returned URL is the `Location` of the final 302 to the app's redirect URI, not followed
    (nothing need listen there). If the authorize request itself is
    redirected with an error, that redirect is returned as it is.
    """
    parts = urlsplit(authorize_url)
    base_url = f"{parts.scheme}://{parts.netloc}"
    own_client = http is None
    client = http or httpx.AsyncClient(timeout=30)
    try:
        try:
            return await _walk(
                client, base_url, authorize_url, orgs, user, password, totp_secret, deny
            )
        except httpx.HTTPError as exc:
            raise ApproveError(f"could not reach the sandbox at {base_url}: {exc}") from exc
    finally:
        if own_client:
            await client.aclose()


async def _walk(
    http: httpx.AsyncClient,
    base_url: str,
    authorize_url: str,
    orgs: list[str] | None,
    user: str,
    password: str,
    totp_secret: str,
    deny: bool,
) -> str:
    response = await http.get(authorize_url, follow_redirects=False)
    if response.is_redirect:
        return _redirect_location(response, "authorize")
    form = _parse(response, "sign-in", "authorize")

    async def submit(form: _Form, data: dict[str, str | list[str]]) -> httpx.Response:
        url = urljoin(authorize_url, form.action)
        return await http.post(url, data={**form.fields, **data}, follow_redirects=False)

    response = await submit(form, {"email": user, "password": password})
    form = _parse(response, "authenticator", "sign-in")

    code = await _sandbox_now_totp(http, base_url, totp_secret)
    response = await submit(form, {"code": code})
    if _has_form(response, "consent"):
        # The request named what to allow (a Class business): no selection page.
        form = _parse(response, "consent", "authenticator code")
    else:
        form = _parse(response, "select-organisations", "authenticator code")
        tenants = _select_tenants(form, orgs)
        response = await submit(form, {"tenant": tenants})
        form = _parse(response, "consent", "organisation selection")

    response = await submit(form, {"decision": "cancel" if deny else "allow"})
    return _redirect_location(response, "consent")
