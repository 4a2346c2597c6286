"""The sandbox's own admin API under `/_sandbox/`: what tests and the demo use to steer it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from clientlink.sandbox import (
    basiq_api,
    bgl_api,
    bgl_identity,
    classsuper_api,
    classsuper_identity,
    myob_api,
    myob_identity,
    quickbooks_api,
    quickbooks_identity,
    twilio_api,
    xero_identity,
)
from clientlink.sandbox.accounts import DEMO_PASSWORD, TOTP_SECRET, SandboxApp
from clientlink.sandbox.basiq import BANK_LOGIN, BANK_PASSWORD, BASIQ_API_KEY, BASIQ_VERSION
from clientlink.sandbox.mail import SMTP_PASSWORD, SMTP_USER
from clientlink.sandbox.oauth import Grant, OAuthProvider
from clientlink.sandbox.sms import TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN
from clientlink.sandbox.state import SandboxState
from clientlink.sandbox.xero_api import CONNECTIONS_PATH, ORGANISATION_PATH

ADMIN_PREFIX = "/_sandbox"


def _state(request: Request) -> SandboxState:
    return request.app.state.sandbox


def _bad_request(message: str, status_code: int = 400) -> Response:
    return JSONResponse({"error": message}, status_code=status_code)


async def _json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object; an empty body is an empty object."""
    raw = await request.body()
    if not raw.strip():
        return {}
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


def base_url_of(request: Request) -> str:
    """The sandbox's own base URL as the caller reached it."""
    return str(request.base_url).rstrip("/")


def _app_json(app: SandboxApp, provider: OAuthProvider) -> dict[str, Any]:
    return {
        "client_id": app.client_id,
        "provider": provider.name,
        "name": app.name,
        "type": "public" if app.is_public else "confidential",
        "client_secret": app.client_secret,
        "redirect_uris": list(app.redirect_uris) or ["http://127.0.0.1:{any port}/{any path}"],
        "any_loopback_port": True,
        "tier": app.tier,
    }


async def xero_tier(request: Request) -> Response:
    """POST `{tier}`: put a Xero app on a pricing tier (starter, core, plus, ...)."""
    state = _state(request)
    client_id = request.path_params["client_id"]
    if client_id not in state.xero.apps:
        return JSONResponse({"error": f"no Xero app {client_id!r}"}, status_code=404)
    try:
        body = await _json_body(request)
        app = state.xero.set_tier(client_id, str(body.get("tier", "")))
    except ValueError as exc:
        return _bad_request(str(exc))
    return JSONResponse(
        _app_json(app, state.xero) | {"connections": state.xero.app_connection_count(client_id)}
    )


async def info(request: Request) -> Response:
    """Credentials, apps, endpoint URLs and org count.

    `apps` lists Xero's apps (as it always has); QuickBooks' are under `quickbooks.apps`.
    """
    state = _state(request)
    base = base_url_of(request)
    qbo_api = base + quickbooks_api.API_BASE_PATH
    return JSONResponse(
        {
            "base_url": base,
            "admin_url": base + ADMIN_PREFIX,
            "users": [user.email for user in state.xero.users.values()],
            "password": DEMO_PASSWORD,
            "totp_secret": TOTP_SECRET,
            "apps": [_app_json(app, state.xero) for app in state.xero.apps.values()],
            "xero": {
                "authorize_url": base + xero_identity.AUTHORIZE_PATH,
                "token_url": base + xero_identity.TOKEN_PATH,
                "revocation_url": base + xero_identity.REVOCATION_PATH,
                "connections_url": base + CONNECTIONS_PATH,
                "api_base_url": base + "/xero/api.xro/2.0",
                "organisation_url": base + ORGANISATION_PATH,
            },
            "quickbooks": {
                "authorize_url": base + quickbooks_identity.AUTHORIZE_PATH,
                "token_url": base + quickbooks_identity.TOKEN_PATH,
                "revocation_url": base + quickbooks_identity.REVOCATION_PATH,
                "api_base_url": qbo_api,
                "companyinfo_url": qbo_api + "/{realmId}/companyinfo/{realmId}",
                "apps": [
                    _app_json(app, state.quickbooks) for app in state.quickbooks.apps.values()
                ],
            },
            "bgl": {
                "authorize_url": base + bgl_identity.AUTHORIZE_PATH,
                "token_url": base + bgl_identity.TOKEN_PATH,
                "api_base_url": base + bgl_api.API_BASE_PATH,
                "fund_list_url": base + bgl_api.FUND_LIST_PATH,
                "firm": {"code": state.bgl.firm.code, "name": state.bgl.firm.name},
                "entity_count": len(state.bgl.entities),
                "apps": [_app_json(app, state.bgl) for app in state.bgl.apps.values()],
            },
            "myob": {
                "authorize_url": base + myob_identity.AUTHORIZE_PATH,
                "token_url": base + myob_identity.TOKEN_PATH,
                "api_base_url": base + myob_api.API_BASE_PATH,
                "company_url": base + myob_api.COMPANY_PATH,
                "apps": [_app_json(app, state.myob) for app in state.myob.apps.values()],
                "non_admin_users": sorted(state.myob.non_admins),
            },
            "class": _class_json(state, base),
            "smtp": _smtp_json(state),
            "twilio": {
                "api_base_url": base + twilio_api.API_BASE_PATH,
                "messages_url": base
                + twilio_api.MESSAGES_PATH.format(account_sid=TWILIO_ACCOUNT_SID),
                "account_sid": TWILIO_ACCOUNT_SID,
                "auth_token": TWILIO_AUTH_TOKEN,
            },
            "basiq": {
                "api_base_url": base + basiq_api.API_BASE_PATH,
                "token_url": base + basiq_api.API_BASE_PATH + "/token",
                "consent_url_prefix": base + basiq_api.CONSENT_PATH + "/",
                "api_key": BASIQ_API_KEY,
                "basiq_version": BASIQ_VERSION,
                "bank_login": BANK_LOGIN,
                "bank_password": BANK_PASSWORD,
            },
            "outbox_url": base + ADMIN_PREFIX + "/outbox",
            "org_count": len(state.orgs),
            "seed": state.seed,
            "enforce_limits": state.limits.enforce,
        }
    )


def _class_json(state: SandboxState, base: str) -> dict[str, Any]:
    """Class Super's endpoints, apps, businesses and who reaches which."""
    provider = state.classsuper
    return {
        "authorize_url": base + classsuper_identity.AUTHORIZE_PATH,
        "token_url": base + classsuper_identity.TOKEN_PATH,
        "revocation_url": base + classsuper_identity.REVOCATION_PATH,
        "discovery_url": base + classsuper_identity.DISCOVERY_PATH,
        "api_base_url": base + classsuper_api.API_BASE_PATH,
        "apps": [_app_json(app, provider) for app in provider.apps.values()],
        "businesses": [
            {"code": b.code, "name": b.name, "funds": len(b.funds)}
            for b in provider.businesses.values()
        ],
        "access": {
            user: sorted(codes) if codes is not None else None
            for user, codes in provider.access.items()
        },
    }


async def class_businesses(request: Request) -> Response:
    """Class Super's businesses with every fund they hold."""
    provider = _state(request).classsuper
    return JSONResponse([business.to_json() for business in provider.businesses.values()])


CLASS_FUND_FIELDS = ("name", "abn", "email", "entity_type")


async def change_class_fund(request: Request) -> Response:
    """`{name?, abn?, email?, entity_type?}`: the fund's details are edited in Class."""
    try:
        body = await _json_body(request)
    except ValueError as exc:
        return _bad_request(str(exc))
    unknown = sorted(set(body) - set(CLASS_FUND_FIELDS))
    changes = {key: value for key, value in body.items() if key in CLASS_FUND_FIELDS}
    if unknown or not changes or not all(isinstance(v, str) and v for v in changes.values()):
        return _bad_request(f"send one or more of {', '.join(CLASS_FUND_FIELDS)} as text")
    fund_id = request.path_params["fund_id"]
    try:
        fund = _state(request).classsuper.change_fund(fund_id, **changes)
    except KeyError:
        return _bad_request(f"unknown Class fund {fund_id}", 404)
    return JSONResponse(fund.to_json())


def _smtp_json(state: SandboxState) -> dict[str, Any] | None:
    """SMTP host, port and login; None when the app runs without `SandboxServer`."""
    if state.smtp is None:
        return None
    return {
        "host": state.smtp.host,
        "port": state.smtp.port,
        "user": SMTP_USER,
        "password": SMTP_PASSWORD,
        "starttls": state.smtp.certificate_pem is not None,
        # Self-signed: trust this PEM, or skip verification for the sandbox only.
        "certificate_pem": state.smtp.certificate_pem,
    }


def _clock_json(state: SandboxState) -> dict[str, Any]:
    return {"now": state.clock.now().isoformat(), "offset_seconds": state.clock.offset_seconds}


async def clock(request: Request) -> Response:
    """GET the clock, or POST `{advance_seconds}` / `{set: ISO8601}` to move it."""
    state = _state(request)
    if request.method == "POST":
        try:
            body = await _json_body(request)
            if "advance_seconds" in body:
                state.clock.advance(float(body["advance_seconds"]))
            elif "set" in body:
                state.clock.set(datetime.fromisoformat(str(body["set"])))
            else:
                return _bad_request("send {advance_seconds: N} or {set: ISO8601}")
        except (ValueError, TypeError) as exc:
            return _bad_request(f"bad clock request: {exc}")
        # SMS statuses (and their callbacks) follow the jump at once, not at the next tick.
        state.tick()
    return JSONResponse(_clock_json(state))


async def orgs(request: Request) -> Response:
    """The seed organisations (with each one's QuickBooks `realm_id`)."""
    return JSONResponse([org.to_dict() for org in _state(request).orgs])


ORG_CHANGES = {
    "name": "name",
    "legal_name": "legal_name",
    "abn": "abn",
    "email": "email",
    "type": "organisation_type",
}
"""What `/_sandbox/orgs/{tenant_id}` may change: body key -> the organisation's field."""


async def rename_org(request: Request) -> Response:
    """`{name?, legal_name?, abn?, email?, type?}`: the business edits its details (in every
    provider that holds it); a new name without a legal name renames both."""
    try:
        body = await _json_body(request)
    except ValueError as exc:
        return _bad_request(str(exc))
    unknown = sorted(set(body) - set(ORG_CHANGES))
    if unknown or not body or not all(isinstance(v, str) and v for v in body.values()):
        return _bad_request(f"send one or more of {', '.join(ORG_CHANGES)} as non-empty text")
    changes = {ORG_CHANGES[key]: value for key, value in body.items()}
    if "name" in changes and "legal_name" not in changes:
        changes["legal_name"] = changes["name"]
    tenant_id = request.path_params["tenant_id"]
    try:
        org = _state(request).change_org(tenant_id, **changes)
    except KeyError:
        return _bad_request(f"unknown organisation {tenant_id}", 404)
    except ValueError as exc:
        return _bad_request(str(exc))
    return JSONResponse(org.to_dict())


async def bgl_funds(request: Request) -> Response:
    """The BGL firm's funds and entities as the sandbox holds them now."""
    return JSONResponse([e.to_dict() for e in _state(request).bgl.entities.values()])


_BGL_CHANGES = ("fund_name", "abn", "email", "entity_type", "fund_id")


async def bgl_fund(request: Request) -> Response:
    """POST `{fund_name?, abn?, email? (null clears it), entity_type?, fund_id?}`: the firm
    changes an entity in SF360; DELETE: the firm stops holding it."""
    bgl = _state(request).bgl
    fund_id = request.path_params["fund_id"]
    if fund_id not in bgl.entities:
        return _bad_request(f"unknown BGL fund {fund_id}", 404)
    if request.method == "DELETE":
        return JSONResponse(bgl.remove_entity(fund_id).to_dict())
    try:
        body = await _json_body(request)
    except ValueError as exc:
        return _bad_request(str(exc))
    unknown = set(body) - set(_BGL_CHANGES)
    texts = {key: body[key] for key in _BGL_CHANGES if key in body and key != "email"}
    if unknown or not body or any(not isinstance(v, str) for v in texts.values()):
        return _bad_request(f"send a JSON object with text values for {', '.join(_BGL_CHANGES)}")
    email = body.get("email")
    if email is not None and not isinstance(email, str):
        return _bad_request("email must be text, or null to clear it")
    try:
        changed = bgl.change_entity(
            fund_id,
            fund_name=texts.get("fund_name"),
            abn=texts.get("abn"),
            email=email,
            clear_email="email" in body and email is None,
            entity_type=texts.get("entity_type"),
            fund_id_to=texts.get("fund_id"),
        )
    except ValueError as exc:
        return _bad_request(str(exc))
    return JSONResponse(changed.to_dict())


async def myob_companies(request: Request) -> Response:
    """MYOB's company files: each business's businessId and Company Information."""
    myob = _state(request).myob
    return JSONResponse(
        [
            {"tenant_id": org.tenant_id, "business_id": myob.company_id(org)}
            | myob_api.company_json(myob, org)
            for org in myob.orgs.values()
        ]
    )


async def myob_edit_company(request: Request) -> Response:
    """`{company_name?, abn_or_tfn?, email?}`: the file's Company Information is edited in
    MYOB (what a re-import then shows as differences)."""
    myob = _state(request).myob
    try:
        body = await _json_body(request)
        if not body or not all(isinstance(v, str) and v for v in body.values()):
            raise ValueError("send {company_name?, abn_or_tfn?, email?} as non-empty text")
        myob.edit_company(request.path_params["business_id"], body)
    except KeyError:
        return _bad_request(f"unknown company file {request.path_params['business_id']}", 404)
    except ValueError as exc:
        return _bad_request(str(exc))
    org = myob.org_for_business(request.path_params["business_id"])
    assert org is not None
    return JSONResponse(myob_api.company_json(myob, org))


async def grants(request: Request) -> Response:
    """Every grant created by a code exchange, Xero's first, each naming its provider."""
    state = _state(request)
    return JSONResponse(
        [
            provider.grant_json(grant)
            for provider in state.providers
            for grant in provider.grants.values()
        ]
    )


def _grant_of(request: Request) -> tuple[OAuthProvider, Grant] | Response:
    grant_id = request.path_params["grant_id"]
    found = _state(request).find_grant(grant_id)
    return found if found is not None else _bad_request(f"unknown grant {grant_id}", 404)


async def revoke_grant(request: Request) -> Response:
    """As if the user revoked the app: tokens die (and Xero's connections go)."""
    found = _grant_of(request)
    if isinstance(found, Response):
        return found
    provider, grant = found
    return JSONResponse(provider.grant_json(provider.revoke_grant(grant.grant_id, disconnect=True)))


async def expire_refresh(request: Request) -> Response:
    """Make the grant's refresh token expired now (the next refresh gets invalid_grant)."""
    found = _grant_of(request)
    if isinstance(found, Response):
        return found
    provider, grant = found
    return JSONResponse(provider.grant_json(provider.expire_refresh(grant.grant_id)))


async def hard_end(request: Request) -> Response:
    """`{at: ISO8601}`: move a QuickBooks grant's hard end (refreshes stop there)."""
    found = _grant_of(request)
    if isinstance(found, Response):
        return found
    provider, grant = found
    if provider.grant_hard_lifetime is None:
        return _bad_request(f"{provider.display_name} grants have no hard end")
    try:
        moment = datetime.fromisoformat(str((await _json_body(request))["at"]))
    except (KeyError, ValueError, TypeError) as exc:
        return _bad_request(f"send {{at: ISO8601}}: {exc}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return JSONResponse(provider.grant_json(provider.set_hard_end(grant.grant_id, moment)))


async def disconnect(request: Request) -> Response:
    """`{tenant_id, user?}`: remove that tenant's connections, as if disconnected in Xero."""
    xero = _state(request).xero
    try:
        body = await _json_body(request)
    except ValueError as exc:
        return _bad_request(str(exc))
    tenant_id = body.get("tenant_id")
    if not tenant_id:
        return _bad_request("tenant_id is required")
    removed = xero.remove_connections(tenant_id=str(tenant_id), user=body.get("user"))
    return JSONResponse({"removed": [xero.connection_json(conn) for conn in removed]})


async def tokens(request: Request) -> Response:
    """Every token ever issued by either provider, with its current state."""
    state = _state(request)
    return JSONResponse(
        [
            provider.token_json(token)
            for provider in state.providers
            for token in provider.tokens.values()
        ]
    )


async def faults(request: Request) -> Response:
    """GET the rules, POST a rule, DELETE all rules."""
    state = _state(request)
    if request.method == "POST":
        try:
            rule = state.faults.add(await _json_body(request))
        except ValueError as exc:
            return _bad_request(str(exc))
        return JSONResponse(rule.to_json(), status_code=201)
    if request.method == "DELETE":
        state.faults.clear()
    return JSONResponse([rule.to_json() for rule in state.faults.rules])


async def limits(request: Request) -> Response:
    """GET or POST `{enforce?: bool, api_latency_seconds?: float}`."""
    state = _state(request)
    if request.method == "POST":
        try:
            body = await _json_body(request)
        except ValueError as exc:
            return _bad_request(str(exc))
        if "enforce" in body:
            if not isinstance(body["enforce"], bool):
                return _bad_request("enforce must be true or false")
            state.limits.enforce = body["enforce"]
        if "api_latency_seconds" in body:
            latency = body["api_latency_seconds"]
            if not isinstance(latency, int | float) or latency < 0:
                return _bad_request("api_latency_seconds must be a non-negative number")
            state.api_latency_seconds = float(latency)
    return JSONResponse(
        {"enforce": state.limits.enforce, "api_latency_seconds": state.api_latency_seconds}
    )


async def stats(request: Request) -> Response:
    """Call counts, 429s served and peak per-tenant concurrency."""
    return JSONResponse(_state(request).stats_json())


OUTBOX_CHANNELS = ("email", "sms")


async def outbox(request: Request) -> Response:
    """GET the messages sent (`?channel=email|sms`, both by default, oldest first); DELETE
    forgets them (for one channel with `?channel=`)."""
    state = _state(request)
    channel = request.query_params.get("channel")
    if channel is not None and channel not in OUTBOX_CHANNELS:
        return _bad_request(f"channel must be one of {', '.join(OUTBOX_CHANNELS)}")
    if request.method == "DELETE":
        if channel in (None, "email"):
            state.mail.clear()
        if channel in (None, "sms"):
            state.sms.clear()
        return JSONResponse({"cleared": channel or "all"})
    state.tick()
    messages: list[dict[str, Any]] = []
    if channel in (None, "email"):
        messages.extend(state.mail.messages)
    if channel in (None, "sms"):
        messages.extend(state.sms.outbox_json())
    return JSONResponse(sorted(messages, key=lambda message: message["received_at"]))


async def callbacks(request: Request) -> Response:
    """Every status callback and webhook POST the sandbox made, with its outcome."""
    return JSONResponse(_state(request).callbacks.deliveries)


async def reset(request: Request) -> Response:
    """Forget everything issued and injected; the seed data stays."""
    state = _state(request)
    state.reset()
    return JSONResponse({"reset": True} | _clock_json(state))


def admin_routes() -> list[Route]:
    """The admin API's routes."""
    p = ADMIN_PREFIX
    return [
        Route(f"{p}/info", info, methods=["GET"]),
        Route(f"{p}/clock", clock, methods=["GET", "POST"]),
        Route(f"{p}/orgs", orgs, methods=["GET"]),
        Route(f"{p}/orgs/{{tenant_id}}", rename_org, methods=["POST"]),
        Route(f"{p}/bgl/funds", bgl_funds, methods=["GET"]),
        Route(f"{p}/bgl/funds/{{fund_id}}", bgl_fund, methods=["POST", "DELETE"]),
        Route(f"{p}/myob/companies", myob_companies, methods=["GET"]),
        Route(f"{p}/myob/companies/{{business_id}}", myob_edit_company, methods=["POST"]),
        Route(f"{p}/grants", grants, methods=["GET"]),
        Route(f"{p}/grants/{{grant_id}}/revoke", revoke_grant, methods=["POST"]),
        Route(f"{p}/grants/{{grant_id}}/expire-refresh", expire_refresh, methods=["POST"]),
        Route(f"{p}/grants/{{grant_id}}/hard-end", hard_end, methods=["POST"]),
        Route(f"{p}/connections/disconnect", disconnect, methods=["POST"]),
        Route(f"{p}/tokens", tokens, methods=["GET"]),
        Route(f"{p}/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route(f"{p}/limits", limits, methods=["GET", "POST"]),
        Route(f"{p}/xero/apps/{{client_id}}/tier", xero_tier, methods=["POST"]),
        Route(f"{p}/class/businesses", class_businesses, methods=["GET"]),
        Route(f"{p}/class/funds/{{fund_id}}", change_class_fund, methods=["POST"]),
        Route(f"{p}/stats", stats, methods=["GET"]),
        Route(f"{p}/outbox", outbox, methods=["GET", "DELETE"]),
        Route(f"{p}/callbacks", callbacks, methods=["GET"]),
        Route(f"{p}/reset", reset, methods=["POST"]),
    ]
