"""HTTP side of the Basiq-like provider under `/basiq`, its consent pages, and its admin API.

The consent page is what an invited client opens from the email or SMS: it shows the
practice's request with the requested banks ticked, a sign-in per bank (`demo` / `demo`),
and Connect. `/_sandbox/basiq/...` lets tests and the demo play that client and break banks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from clientlink.sandbox.basiq import (
    BANK_LOGIN,
    BANK_PASSWORD,
    BASIQ_VERSION,
    CONSENT_ACTIONS,
    DEFAULT_PRACTICE,
    AuthLink,
    BasiqError,
    BasiqProvider,
    LinkUnusable,
)
from clientlink.sandbox.faults import basiq_error
from clientlink.sandbox.state import SandboxState

API_BASE_PATH = "/basiq"
CONSENT_PATH = API_BASE_PATH + "/consent"
ADMIN_PATH = "/_sandbox/basiq"

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

LINK_PROBLEMS = {
    "expired": "This link has expired. Links are valid for 7 days; ask your accountant "
    "to send you a new one.",
    "used": "This link has already been used to connect your banks. Ask your accountant "
    "for a new link if you need to connect another bank.",
    "superseded": "This link has been replaced by a newer one. Please use the most recent "
    "message from your accountant.",
    "deleted": "This link has been cancelled by your accountant.",
    "unknown": "This link is not valid. Check that you copied the whole address.",
}


def _state(request: Request) -> SandboxState:
    return request.app.state.sandbox


def _basiq(request: Request) -> BasiqProvider:
    basiq = _state(request).basiq
    # Webhook messages link to the API at the address the sandbox is reached by.
    basiq.api_base = basiq.api_base or api_base_url(request)
    return basiq


def api_base_url(request: Request) -> str:
    """The Basiq API base as the caller reached the sandbox."""
    return str(request.base_url).rstrip("/") + API_BASE_PATH


def consent_url(request: Request, link: AuthLink) -> str:
    """The public consent URL of `link`."""
    return f"{str(request.base_url).rstrip('/')}{CONSENT_PATH}/{link.opaque}"


def _error(exc: BasiqError) -> Response:
    return JSONResponse(basiq_error(exc.status, exc.code, exc.detail), status_code=exc.status)


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise BasiqError(400, "invalid-content", f"The body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BasiqError(400, "invalid-content", "The body must be a JSON object.")
    return data


Handler = Callable[[Request, BasiqProvider], Awaitable[Response]]


def _api(kind: str, handler: Handler, *, user_scoped: bool = False) -> Callable:
    """Wrap an API handler: count, faults, bearer auth (client tokens for their user only)."""

    async def endpoint(request: Request) -> Response:
        state = _state(request)
        state.calls[f"basiq.{kind}"] += 1

        async def process() -> Response:
            try:
                user_id = request.path_params.get("user_id") if user_scoped else None
                basiq = _basiq(request)
                basiq.authenticate(request.headers.get("authorization"), user_id)
                return await handler(request, basiq)
            except BasiqError as exc:
                return _error(exc)

        return await state.with_faults("banks", "basiq", process)

    return endpoint


async def token(request: Request) -> Response:
    """`POST /basiq/token`: Basic <API_KEY>, basiq-version 3.0, form scope (and userId)."""
    state = _state(request)
    state.calls["basiq.token"] += 1

    async def process() -> Response:
        try:
            if request.headers.get("basiq-version") != BASIQ_VERSION:
                raise BasiqError(
                    400, "parameter-not-valid", "The basiq-version header must be 3.0."
                )
            scheme, _, api_key = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "basic":
                raise BasiqError(401, "unauthorized-access", "Use Authorization: Basic <API_KEY>.")
            form = await request.form()
            issued = state.basiq.issue_token(
                api_key.strip(),
                str(form.get("scope", "")),
                str(form["userId"]) if form.get("userId") else None,
            )
        except BasiqError as exc:
            return _error(exc)
        body = {"access_token": issued.value, "token_type": "Bearer", "expires_in": 3600}
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    return await state.with_faults("banks", "basiq", process)


async def institutions(request: Request, basiq: BasiqProvider) -> Response:
    """`GET /basiq/institutions`."""
    base = api_base_url(request)
    data = [basiq.institution_json(inst_id, base) for inst_id in basiq.institutions]
    return JSONResponse({"type": "list", "count": len(data), "data": data})


async def institution(request: Request, basiq: BasiqProvider) -> Response:
    """`GET /basiq/institutions/{id}`: what an institution's `links.self` names."""
    inst_id = request.path_params["institution_id"]
    if inst_id not in basiq.institutions:
        raise BasiqError(404, "resource-not-found", f"Institution {inst_id} was not found.")
    return JSONResponse(basiq.institution_json(inst_id, api_base_url(request)))


async def connectors(request: Request, basiq: BasiqProvider) -> Response:
    """`GET /basiq/connectors`: v3's catalogue of institutions and their sign-in methods."""
    base = api_base_url(request)
    data = [basiq.connector_json(inst_id, base) for inst_id in basiq.institutions]
    return JSONResponse({"type": "list", "count": len(data), "data": data})


async def connector(request: Request, basiq: BasiqProvider) -> Response:
    """`GET /basiq/connectors/{id}/{method}`."""
    inst_id, method = request.path_params["connector_id"], request.path_params["method"]
    if inst_id not in basiq.institutions or method != "web":
        raise BasiqError(404, "resource-not-found", f"Connector {inst_id}/{method} was not found.")
    return JSONResponse(basiq.connector_json(inst_id, api_base_url(request)))


async def consents(request: Request, basiq: BasiqProvider) -> Response:
    """`GET /basiq/users/{user_id}/consents`."""
    data = [basiq.consent_json(c) for c in basiq.consents_of(request.path_params["user_id"])]
    return JSONResponse({"type": "list", "size": len(data), "data": data})


async def events(request: Request, basiq: BasiqProvider) -> Response:
    """`GET /basiq/events[?filter=user.id.eq('...')]`: newest first."""
    base = api_base_url(request)
    wanted = request.query_params.get("filter", "")
    user_id = None
    if wanted:
        found = re.fullmatch(r"user\.id\.eq\('([^']+)'\)", wanted)
        if found is None:
            raise BasiqError(400, "parameter-not-valid", "filter must be user.id.eq('<id>').")
        user_id = found.group(1)
    listed = [e for e in basiq.events.values() if user_id is None or e.user_id == user_id]
    data = [basiq.event_json(event, base) for event in reversed(listed)]
    return JSONResponse({"type": "list", "count": len(data), "data": data})


async def event(request: Request, basiq: BasiqProvider) -> Response:
    """`GET /basiq/events/{event_id}`."""
    found = basiq.events.get(request.path_params["event_id"])
    if found is None:
        raise BasiqError(404, "resource-not-found", "Event not found.")
    return JSONResponse(basiq.event_json(found, api_base_url(request)))


async def create_user(request: Request, basiq: BasiqProvider) -> Response:
    """`POST /basiq/users {email, mobile, ...}` → 201 user."""
    user = basiq.create_user(await _json_object(request))
    return JSONResponse(basiq.user_json(user, api_base_url(request)), status_code=201)


async def get_user(request: Request, basiq: BasiqProvider) -> Response:
    """`GET /basiq/users/{user_id}`."""
    user = basiq.user(request.path_params["user_id"])
    return JSONResponse(basiq.user_json(user, api_base_url(request)))


async def auth_link(request: Request, basiq: BasiqProvider) -> Response:
    """POST a new auth link (`{institutions?, practice?}`), GET the current one, or DELETE it."""
    user_id = request.path_params["user_id"]
    if request.method == "DELETE":
        basiq.delete_link(user_id)
        return Response(status_code=204)
    if request.method == "POST":
        body = await _json_object(request)
        wanted = body.get("institutions") or []
        if not isinstance(wanted, list) or not all(isinstance(i, str) for i in wanted):
            raise BasiqError(400, "parameter-not-valid", "institutions must be a list of ids.")
        practice = body.get("practice")
        link = basiq.create_auth_link(user_id, wanted, str(practice) if practice else None)
        status = 201
    else:
        link, status = basiq.current_link(user_id), 200
        if basiq.link_status(link) == "expired":
            raise BasiqError(410, "resource-no-longer-available", "The auth link has expired.")
    body = basiq.link_json(link, api_base_url(request), consent_url(request, link))
    return JSONResponse(body, status_code=status)


async def connections(request: Request, basiq: BasiqProvider) -> Response:
    """`GET /basiq/users/{user_id}/connections`."""
    base = api_base_url(request)
    data = [
        basiq.connection_json(conn, base)
        for conn in basiq.connections_of(request.path_params["user_id"])
    ]
    return JSONResponse({"type": "list", "count": len(data), "data": data})


async def connection(request: Request, basiq: BasiqProvider) -> Response:
    """`GET /basiq/users/{user_id}/connections/{connection_id}`."""
    user_id, conn_id = request.path_params["user_id"], request.path_params["connection_id"]
    conn = basiq.connections.get(conn_id)
    if conn is None or conn.user_id != user_id:
        raise BasiqError(404, "resource-not-found", f"Connection {conn_id} was not found.")
    return JSONResponse(basiq.connection_json(conn, api_base_url(request)))


# -- the consent pages --------------------------------------------------------------------


def _page(
    request: Request, name: str, title: str, status_code: int = 200, **context: Any
) -> Response:
    context = {"title": title, "provider_name": "Basiq", **context}
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


def _problem_page(request: Request, reason: str) -> Response:
    return _page(
        request,
        "bank_link_problem.html",
        "This link cannot be used",
        404 if reason == "unknown" else 410,
        reason=reason,
        error=LINK_PROBLEMS[reason],
    )


def _consent_page(
    request: Request, link: AuthLink, error: str | None = None, status_code: int = 200
) -> Response:
    basiq = _basiq(request)
    offered = link.institutions or list(basiq.institutions)
    banks = [
        {"id": inst, "name": basiq.institutions[inst][1], "requested": inst in link.institutions}
        for inst in offered
    ]
    return _page(
        request,
        "bank_consent.html",
        "Connect your banks",
        status_code,
        practice=link.practice,
        banks=banks,
        action=f"{CONSENT_PATH}/{link.opaque}",
        hint=f"{BANK_LOGIN} / {BANK_PASSWORD}",
        error=error,
    )


async def consent_page(request: Request) -> Response:
    """GET the consent page; the first visit records that the link was opened."""
    try:
        link = _basiq(request).open_link(request.path_params["opaque"])
    except LinkUnusable as exc:
        return _problem_page(request, exc.reason)
    return _consent_page(request, link)


async def consent_home(request: Request) -> Response:
    """The v3 Consent UI: `GET|POST /basiq/home?token=<CLIENT_ACCESS>&action=...`.

    The client token names the user; the page offers every bank (with `action=connect`
    `institutionId` may pre-select some) and connects the ticked ones on POST.
    """
    basiq = _basiq(request)
    action = request.query_params.get("action", "")
    if action not in CONSENT_ACTIONS:
        return _page(
            request,
            "bank_link_problem.html",
            "This link cannot be used",
            400,
            reason="unknown",
            error=f"Unknown action {action!r}: use manage, connect, update or extend.",
        )
    try:
        user_id = basiq.client_user(request.query_params.get("token", ""))
    except LinkUnusable as exc:
        return _problem_page(request, exc.reason)
    requested = [i for i in request.query_params.getlist("institutionId") if i]
    if request.method == "GET":
        return _home_page(request, basiq, requested)
    form = await request.form()
    chosen = [str(value) for value in form.getlist("institution")]
    problem = _login_problem(basiq, form, chosen)
    if problem:
        return _home_page(request, basiq, requested, problem, 400)
    try:
        made = basiq.connect_banks(user_id, chosen)
    except BasiqError as exc:
        return _home_page(request, basiq, requested, exc.detail, 400)
    names = [basiq.institutions[conn.institution_id][1] for conn in made]
    return _page(
        request, "bank_connected.html", "Banks connected", practice=DEFAULT_PRACTICE, banks=names
    )


def _home_page(
    request: Request,
    basiq: BasiqProvider,
    requested: list[str],
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    banks = [
        {"id": inst, "name": row[1], "requested": inst in requested}
        for inst, row in basiq.institutions.items()
    ]
    return _page(
        request,
        "bank_consent.html",
        "Connect your banks",
        status_code,
        practice=DEFAULT_PRACTICE,
        banks=banks,
        action=f"{API_BASE_PATH}/home?{request.url.query}",
        hint=f"{BANK_LOGIN} / {BANK_PASSWORD}",
        error=error,
    )


def _login_problem(basiq: BasiqProvider, form: Any, chosen: list[str]) -> str | None:
    """What is wrong with the ticked banks and their sign-ins, or None."""
    if not chosen:
        return "Tick at least one bank to connect."
    refused = [
        basiq.institutions[inst][1]
        for inst in chosen
        if inst in basiq.institutions
        and (form.get(f"login-{inst}"), form.get(f"password-{inst}")) != (BANK_LOGIN, BANK_PASSWORD)
    ]
    if refused:
        return f"The sign-in details were not accepted by: {', '.join(refused)}."
    return None


async def consent_submit(request: Request) -> Response:
    """POST the ticked banks with a login per bank; connect them all or none."""
    basiq = _basiq(request)
    opaque = request.path_params["opaque"]
    try:
        link = basiq.open_link(opaque)
    except LinkUnusable as exc:
        return _problem_page(request, exc.reason)
    form = await request.form()
    chosen = [str(value) for value in form.getlist("institution")]
    problem = _login_problem(basiq, form, chosen)
    if problem:
        return _consent_page(request, link, problem, 400)
    try:
        made = basiq.complete_consent(opaque, chosen)
    except BasiqError as exc:
        return _consent_page(request, link, exc.detail, 400)
    names = [basiq.institutions[conn.institution_id][1] for conn in made]
    return _page(
        request, "bank_connected.html", "Banks connected", practice=link.practice, banks=names
    )


# -- admin --------------------------------------------------------------------------------


async def admin_users(request: Request) -> Response:
    """Every user with their current link and connections."""
    basiq = _basiq(request)
    base = api_base_url(request)
    users = []
    for user in basiq.users.values():
        link = basiq.links.get(user.current_link_id or "")
        users.append(
            basiq.user_json(user, base)
            | {
                "auth_link": None
                if link is None
                else basiq.link_json(link, base, consent_url(request, link))
                | {"opaque": link.opaque},
                "connection_details": [
                    basiq.connection_json(conn, base) | {"history": conn.history}
                    for conn in basiq.connections_of(user.id)
                ],
            }
        )
    return JSONResponse(users)


async def admin_complete(request: Request) -> Response:
    """Play the client: open the link and connect `{institutions?}` (default: those requested)."""
    basiq = _basiq(request)
    opaque = request.path_params["opaque"]
    try:
        body = await _json_object(request)
        link = basiq.open_link(opaque)
        chosen = body.get("institutions") or link.institutions
        made = basiq.complete_consent(opaque, list(chosen))
    except LinkUnusable as exc:
        code = 404 if exc.reason == "unknown" else 410
        return JSONResponse({"error": LINK_PROBLEMS[exc.reason], "reason": exc.reason}, code)
    except BasiqError as exc:
        return JSONResponse({"error": exc.detail}, status_code=exc.status)
    base = api_base_url(request)
    return JSONResponse(
        {
            "user_id": link.user_id,
            "auth_link": basiq.link_json(link, base, consent_url(request, link)),
            "connections": [basiq.connection_json(conn, base) for conn in made],
        }
    )


async def admin_invalidate(request: Request) -> Response:
    """A bank broke this connection: status invalid (and a connection.invalidated webhook)."""
    basiq = _basiq(request)
    try:
        conn = basiq.invalidate(request.path_params["connection_id"])
    except BasiqError as exc:
        return JSONResponse({"error": exc.detail}, status_code=exc.status)
    return JSONResponse(basiq.connection_json(conn, api_base_url(request)))


async def admin_webhook(request: Request) -> Response:
    """GET the webhook URLs, POST `{url}` to add a loopback one, DELETE them all."""
    basiq = _basiq(request)
    if request.method == "POST":
        try:
            url = (await _json_object(request)).get("url")
            if not isinstance(url, str) or not url:
                raise BasiqError(400, "parameter-not-supplied", "send {url}")
            basiq.add_webhook(url)
        except BasiqError as exc:
            return JSONResponse({"error": exc.detail}, status_code=exc.status)
    elif request.method == "DELETE":
        basiq.webhooks.clear()
    return JSONResponse({"webhooks": list(basiq.webhooks), "secret": basiq.webhook_secret})


def api_routes() -> list[Route]:
    """Basiq's API, the consent pages and the Basiq admin routes."""
    p, a = API_BASE_PATH, ADMIN_PATH
    return [
        Route(f"{p}/token", token, methods=["POST"]),
        Route(f"{p}/institutions", _api("institutions", institutions), methods=["GET"]),
        Route(
            f"{p}/institutions/{{institution_id}}",
            _api("institution", institution),
            methods=["GET"],
        ),
        Route(f"{p}/connectors", _api("connectors", connectors), methods=["GET"]),
        Route(
            f"{p}/connectors/{{connector_id}}/{{method}}",
            _api("connector", connector),
            methods=["GET"],
        ),
        Route(f"{p}/events", _api("events", events), methods=["GET"]),
        Route(f"{p}/events/{{event_id}}", _api("event", event), methods=["GET"]),
        Route(
            f"{p}/users/{{user_id}}/consents",
            _api("consents", consents, user_scoped=True),
            methods=["GET"],
        ),
        Route(f"{p}/home", consent_home, methods=["GET", "POST"]),
        Route(f"{p}/users", _api("users.create", create_user), methods=["POST"]),
        Route(
            f"{p}/users/{{user_id}}",
            _api("users.get", get_user, user_scoped=True),
            methods=["GET"],
        ),
        Route(
            f"{p}/users/{{user_id}}/auth_link",
            _api("auth_link", auth_link, user_scoped=True),
            methods=["GET", "POST", "DELETE"],
        ),
        Route(
            f"{p}/users/{{user_id}}/connections",
            _api("connections", connections, user_scoped=True),
            methods=["GET"],
        ),
        Route(
            f"{p}/users/{{user_id}}/connections/{{connection_id}}",
            _api("connection", connection, user_scoped=True),
            methods=["GET"],
        ),
        Route(f"{CONSENT_PATH}/{{opaque}}", consent_page, methods=["GET"]),
        Route(f"{CONSENT_PATH}/{{opaque}}", consent_submit, methods=["POST"]),
        Route(f"{a}/users", admin_users, methods=["GET"]),
        Route(f"{a}/consent/{{opaque}}/complete", admin_complete, methods=["POST"]),
        Route(f"{a}/connections/{{connection_id}}/invalidate", admin_invalidate, methods=["POST"]),
        Route(f"{a}/webhook", admin_webhook, methods=["GET", "POST", "DELETE"]),
    ]
