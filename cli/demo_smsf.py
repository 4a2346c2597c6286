"""The demo's SMSF practice: funds in BGL Simple Fund 360 and Class Super, beside the books.

Set up through the real flows, after :func:`clientlink.cli.demo.seed_practice`: a staff
member signs in to SF360 (one sign-in covers the firm) and to two Class businesses (one
sign-in each), the funds are imported, and a few company files the books practice did not
take go to MYOB (one sign-in per file). Then the authorisations die the ways these providers
let them: the firm removes clientlink in SF360's Integrations page, one Class business
cancels the app in Class, the other's refresh token runs out; and a few details change at
the providers (a BGL fund renamed, a Class fund's ABN and email, a Xero organisation
renamed) so that a re-import has differences to review.

BGL has one grant per firm, so its funds show one reason at a time; the demo shows the
removed integration (the common case, and the one the person must act on in SF360 too).
A Class refresh token that ran out is found when clientlink next refreshes it: the demo
asks for that refresh at once (``clients.refresh``) instead of waiting out the access
token's 15 minutes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from clientlink.common import protocol as p
from clientlink.common.client import DaemonClient
from clientlink.common.wording import plural
from clientlink.sandbox.accounts import (
    BGL_CLIENT_SECRET,
    DEMO_PASSWORD,
    DEMO_USER,
    MYOB_CLIENT_SECRET,
)
from clientlink.sandbox.approve import approve
from clientlink.sandbox.classsuper import CLASS_CLIENT_SECRET, business_of_scope
from clientlink.sandbox.seed import make_abn

# How many Class businesses the demo's practice keeps funds in (the sandbox has three).
CLASS_BUSINESSES = 2
# Company files the books practice leaves for MYOB (see seed_practice's ``spare``).
MYOB_FILES = 5
# What the demo changes at the providers, for a re-import to find.
RENAMED_BGL_FUND = "Harbourside Retirement Fund"
CHANGED_CLASS_EMAIL = "trustees@marsh-super.example"
RENAMED_XERO_ORG = "Southern Cross Electrical Services"
RENAMED_XERO_LEGAL_NAME = "Southern Cross Electrical and Refrigeration Services Pty Ltd"


@dataclass
class SeededSmsf:
    """What :func:`seed_smsf_practice` did (client ids sorted)."""

    bgl_firm: str
    bgl_ids: list[int]
    # Class client ids by business code, in the order signed in to.
    class_ids: dict[str, list[int]]
    revoked_business: str
    expired_business: str
    myob_ids: list[int]
    # client id -> {field: [before, after]}: what a re-import of that client should find.
    changed: dict[int, dict[str, list[str | None]]] = field(default_factory=dict)

    @property
    def class_total(self) -> int:
        return sum(len(ids) for ids in self.class_ids.values())

    @property
    def needs_reauth_ids(self) -> list[int]:
        return sorted(self.bgl_ids + [i for ids in self.class_ids.values() for i in ids])


async def seed_smsf_practice(
    daemon: DaemonClient,
    sandbox_url: str,
    *,
    myob_tenants: list[str] | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> SeededSmsf:
    """Import the SMSF practice (and ``myob_tenants`` into MYOB), then break and change it."""
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=30) as admin:
        info = await _get(admin, "/_sandbox/info")
        for provider, secret in (
            ("bgl", BGL_CLIENT_SECRET),
            ("class", CLASS_CLIENT_SECRET),
            ("myob", MYOB_CLIENT_SECRET),
        ):
            await daemon.call(p.PROVIDERS_SET_SECRET, provider=provider, client_secret=secret)

        firm = info["bgl"]["firm"]
        say(f"  {DEMO_USER} signs in to BGL Simple Fund 360 (firm {firm['code']})")
        bgl_ids = await _sign_in_and_import(daemon, "bgl")
        class_ids: dict[str, list[int]] = {}
        for business in info["class"]["businesses"][:CLASS_BUSINESSES]:
            say(f"  {DEMO_USER} signs in to Class Super business {business['code']}")
            class_ids[business["code"]] = await _sign_in_and_import(
                daemon, "class", business=business["code"]
            )
        myob_ids: list[int] = []
        if myob_tenants:
            say(f"  {DEMO_USER} connects {plural(len(myob_tenants), 'MYOB company file')}")
        for tenant_id in myob_tenants or []:  # a consent covers one company file
            myob_ids += await _sign_in_and_import(daemon, "myob", orgs=[tenant_id])

        changed = await _change_details(daemon, admin, bgl_ids, class_ids)

        say("  the firm removes clientlink in SF360's Integrations page")
        revoked_business, expired_business = list(class_ids)[:2]
        grants = await _get(admin, "/_sandbox/grants")
        for grant in grants:
            if grant["provider"] == "bgl" and not grant["revoked"]:
                await _post(admin, f"/_sandbox/grants/{grant['grant_id']}/revoke")
        class_grants = {
            business_of_scope(grant["scope"] or ""): grant["grant_id"]
            for grant in grants
            if grant["provider"] == "class"
        }
        say(f"  Class business {revoked_business} cancels clientlink's access in Class")
        await _post(admin, f"/_sandbox/grants/{class_grants[revoked_business]}/revoke")
        say(f"  Class business {expired_business}'s sign-in runs out (its refresh token expired)")
        await _post(admin, f"/_sandbox/grants/{class_grants[expired_business]}/expire-refresh")

    say("  clientlink checks the funds' connections")
    await daemon.call(p.CLIENTS_CHECK, client_ids=bgl_ids + class_ids[revoked_business])
    # The access token still works; the next refresh is refused (asked for now, not later).
    await daemon.call(p.CLIENTS_REFRESH, client_id=class_ids[expired_business][0], force=True)
    return SeededSmsf(
        bgl_firm=firm["code"],
        bgl_ids=bgl_ids,
        class_ids=class_ids,
        revoked_business=revoked_business,
        expired_business=expired_business,
        myob_ids=myob_ids,
        changed=changed,
    )


async def _change_details(
    daemon: DaemonClient,
    admin: httpx.AsyncClient,
    bgl_ids: list[int],
    class_ids: dict[str, list[int]],
) -> dict[int, dict[str, list[str | None]]]:
    """A BGL fund renamed, a Class fund's ABN and email changed, a Xero organisation's name,
    legal name, ABN and entity type changed; returns what a re-import of each should show."""
    changed: dict[int, dict[str, list[str | None]]] = {}
    fund = await _first(daemon, bgl_ids, lambda c: c.entity_type == "SMSF")
    await _post(admin, f"/_sandbox/bgl/funds/{fund.tenant_id}", {"fund_name": RENAMED_BGL_FUND})
    changed[fund.id] = {"name": [fund.name, RENAMED_BGL_FUND]}

    first_business = next(iter(class_ids.values()))
    class_fund = await _first(daemon, first_business, lambda c: bool(c.abn))
    abn = class_fund.abn or ""
    rng = random.Random(class_fund.tenant_id)
    while abn == class_fund.abn:
        abn = make_abn(rng)
    await _post(
        admin,
        f"/_sandbox/class/funds/{class_fund.tenant_id}",
        {"abn": abn, "email": CHANGED_CLASS_EMAIL},
    )
    changed[class_fund.id] = {
        "abn": [class_fund.abn, abn],
        "email": [class_fund.email, CHANGED_CLASS_EMAIL],
    }

    listing = await daemon.call(
        p.CLIENTS_LIST, filter={"provider": "xero", "status": "connected"}, limit=1
    )
    if listing.items:
        # A business that restructured: new name, legal name, ABN and entity type.
        org = listing.items[0]
        rng = random.Random(org.tenant_id)
        xero_abn = org.abn or ""
        while xero_abn == org.abn:
            xero_abn = make_abn(rng)
        entity_type = "TRUST" if org.entity_type != "TRUST" else "COMPANY"
        await _post(
            admin,
            f"/_sandbox/orgs/{org.tenant_id}",
            {
                "name": RENAMED_XERO_ORG,
                "legal_name": RENAMED_XERO_LEGAL_NAME,
                "abn": xero_abn,
                "type": entity_type,
            },
        )
        changed[org.id] = {
            "name": [org.name, RENAMED_XERO_ORG],
            "legal_name": [org.legal_name, RENAMED_XERO_LEGAL_NAME],
            "abn": [org.abn, xero_abn],
            "entity_type": [org.entity_type, entity_type],
        }
    return changed


async def _first(
    daemon: DaemonClient, client_ids: list[int], wanted: Callable[[p.Client], bool]
) -> p.Client:
    for client_id in client_ids:
        client = await daemon.call(p.CLIENTS_GET, client_id=client_id)
        if wanted(client):
            return client
    return await daemon.call(p.CLIENTS_GET, client_id=client_ids[0])


async def _sign_in_and_import(
    daemon: DaemonClient,
    provider: str,
    *,
    business: str | None = None,
    orgs: list[str] | None = None,
) -> list[int]:
    """One sign-in (the sandbox plays the person) and its funds or file imported."""
    session = await daemon.call(p.AUTH_BEGIN, provider=provider, business=business)
    redirect = await approve(session.authorize_url, orgs=orgs, user=DEMO_USER)
    grant = await daemon.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect)
    imported = await daemon.call(p.CLIENTS_IMPORT, grant_id=grant.grant_id)
    return sorted(imported.created)


async def _get(admin: httpx.AsyncClient, path: str) -> Any:
    response = await admin.get(path)
    response.raise_for_status()
    return response.json()


async def _post(admin: httpx.AsyncClient, path: str, body: dict[str, Any] | None = None) -> Any:
    response = await admin.post(path, json=body)
    if response.is_error:
        raise RuntimeError(f"the sandbox refused {path}: {response.text}")
    return response.json()


def smsf_summary(seeded: SeededSmsf, reasons: dict[int, str | None]) -> list[str]:
    """The demo's printout of the SMSF practice: funds per software and business, how many
    need re-authorising and why (``reasons`` by client id), and how to sign in."""
    lines = ["SMSF practice:"]

    def group(label: str, ids: list[int]) -> None:
        waiting = [i for i in ids if reasons.get(i)]
        if not waiting:
            lines.append(f"  {label}, connected")
            return
        count = "all" if len(waiting) == len(ids) else str(len(waiting))
        lines.append(f"  {label}; {count} need re-authorising:")
        for why in sorted({(reasons[i] or "").removesuffix(": re-authorise") for i in waiting}):
            lines.append(f"    {why}")

    group(
        f"BGL Simple Fund 360, firm {seeded.bgl_firm}: "
        f"{plural(len(seeded.bgl_ids), 'fund and entity', 'funds and entities')}",
        seeded.bgl_ids,
    )
    for code, ids in seeded.class_ids.items():
        group(f"Class Super, business {code}: {plural(len(ids), 'fund')}", ids)
    if seeded.myob_ids:
        group(f"MYOB: {plural(len(seeded.myob_ids), 'company file')}", seeded.myob_ids)
    lines += [
        f"  {plural(len(seeded.changed), 'client')} changed at the provider (a BGL fund, a Class"
        " fund, a Xero business):",
        "    b → Re-import client details (the funds once re-authorised)",
        "In clientlink: b → Re-authorise Bulk Clients → pick the software. BGL takes one",
        f"  sign-in for the firm; Class one per business ({len(seeded.class_ids)})."
        " Sandbox sign-in (every provider):",
        f"  {DEMO_USER}, password {DEMO_PASSWORD}; the authenticator page shows its code.",
    ]
    return lines
