"""HTTP side of the Xero-like API: `/xero/connections` and `/xero/api.xro/2.0/Organisation`."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from clientlink.sandbox.oauth import ApiAuthError, Grant
from clientlink.sandbox.oauth_http import case_insensitive
from clientlink.sandbox.quickbooks_api import company_address
from clientlink.sandbox.ratelimit import LimitDecision
from clientlink.sandbox.seed import SeedOrg
from clientlink.sandbox.state import SandboxState

CONNECTIONS_PATH = "/xero/connections"
ORGANISATION_PATH = "/xero/api.xro/2.0/Organisation"

Handler = Callable[[Grant], Awaitable[Response]]


def created_ms(org: SeedOrg) -> int:
    """When `org` was created in Xero, in ms since the epoch (stable per organisation)."""
    return (1_325_376_000 + int(org.realm_id) % 378_432_000) * 1000


def line_of_business(org: SeedOrg) -> str:
    """What the organisation does, in Xero's words."""
    kinds = {
        "SELF_MANAGED_SUPERANNUATION_FUND": "Superannuation fund",
        "TRUST": "Investment trust",
    }
    return kinds.get(org.organisation_type, "Professional services")


def organisation_addresses(org: SeedOrg) -> list[dict[str, str]]:
    """The postal and street address, as Xero's AddressForOrganisation items."""
    address = company_address(org)
    parts = {
        "AddressLine1": address["Line1"],
        "City": address["City"],
        "Region": address["CountrySubDivisionCode"],
        "PostalCode": address["PostalCode"],
        "Country": "Australia",
    }
    return [{"AddressType": "POBOX", **parts}, {"AddressType": "STREET", **parts}]


def _state(request: Request) -> SandboxState:
    return request.app.state.sandbox


def _problem(status: int, title: str, detail: str) -> dict[str, object]:
    """Xero's RFC 7807-style problem body, as its API returns for 401 and 403."""
    return {
        "Type": None,
        "Title": title,
        "Status": status,
        "Detail": detail,
        "Instance": str(uuid.uuid4()),
        "Extensions": {},
    }


async def _serve_api(
    request: Request, kind: str, tenant_id: str | None, handler: Handler
) -> Response:
    """Shared pipeline: count, fault, authenticate, check tenant, rate-limit, handle."""
    state = _state(request)
    state.calls[kind] += 1

    async def process() -> Response:
        try:
            grant = state.xero.authenticate_bearer(request.headers.get("authorization"))
        except ApiAuthError as exc:
            return JSONResponse(
                _problem(exc.status, exc.title, exc.detail),
                status_code=exc.status,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        if kind == "organisation" and (
            not tenant_id or not state.xero.is_connected(grant.user, grant.client_id, tenant_id)
        ):
            return JSONResponse(
                _problem(403, "Forbidden", "AuthenticationUnsuccessful"), status_code=403
            )
        day_limit = state.xero.tier(grant.client_id).day_limit_per_organisation
        decision = state.limits.admit(grant.client_id, tenant_id, day_limit)
        if not decision.allowed:
            state.rate_limited += 1
            return _rate_limited(decision)
        response = await state.serve_admitted(grant.client_id, tenant_id, lambda: handler(grant))
        response.headers.update(decision.headers)
        return response

    target = "connections" if kind == "connections" else "api"
    return await state.with_faults(target, state.xero.name, process)


def _rate_limited(decision: LimitDecision) -> Response:
    headers = dict(decision.headers)
    assert decision.problem is not None
    headers["X-Rate-Limit-Problem"] = decision.problem
    if decision.retry_after is not None:
        headers["Retry-After"] = str(decision.retry_after)
    body = {
        "Title": "Too Many Requests",
        "Status": 429,
        "Detail": f"Rate limit exceeded: {decision.problem}",
    }
    return JSONResponse(body, status_code=429, headers=headers)


async def list_connections(request: Request) -> Response:
    """GET /connections[?authEventId=]: the token's user+app connections."""
    xero = _state(request).xero
    auth_event_id = request.query_params.get("authEventId")

    async def handle(grant: Grant) -> Response:
        connections = xero.connections_of(grant.user, grant.client_id, auth_event_id)
        return JSONResponse([xero.connection_json(conn) for conn in connections])

    return await _serve_api(request, "connections", None, handle)


async def delete_connection(request: Request) -> Response:
    """DELETE /connections/{id}: 204, or 404 when this user+app has no such connection."""
    xero = _state(request).xero
    connection_id = request.path_params["connection_id"]

    async def handle(grant: Grant) -> Response:
        conn = xero.connections.get(connection_id)
        if conn is None or (conn.user, conn.client_id) != (grant.user, grant.client_id):
            return JSONResponse(_problem(404, "Not Found", "Connection not found"), status_code=404)
        del xero.connections[connection_id]
        return Response(status_code=204)

    return await _serve_api(request, "connections", None, handle)


async def organisation(request: Request) -> Response:
    """GET Organisation for the tenant named in `xero-tenant-id`."""
    state = _state(request)
    tenant_id = request.headers.get("xero-tenant-id", "").strip().lower() or None

    async def handle(grant: Grant) -> Response:
        assert tenant_id is not None
        org = state.xero.orgs[tenant_id]
        app = state.xero.apps[grant.client_id]
        now = state.clock.now()
        body = {
            "Id": str(uuid.uuid4()),
            "Status": "OK",
            "ProviderName": app.name,
            "DateTimeUTC": f"/Date({int(now.timestamp() * 1000)})/",
            "Organisations": [
                {
                    "OrganisationID": org.tenant_id,
                    "Name": org.name,
                    "LegalName": org.legal_name,
                    "PaysTax": True,
                    "Version": "AU",
                    "OrganisationType": org.organisation_type,
                    "OrganisationEntityType": org.organisation_type,
                    "BaseCurrency": "AUD",
                    "CountryCode": "AU",
                    "IsDemoCompany": False,
                    "OrganisationStatus": "ACTIVE",
                    "RegistrationNumber": org.abn,
                    "TaxNumber": org.abn,
                    "FinancialYearEndDay": 30,
                    "FinancialYearEndMonth": 6,
                    "SalesTaxBasis": "ACCRUALS",
                    "Timezone": "AUSEASTERNSTANDARDTIME",
                    "ShortCode": org.short_code,
                    "Edition": "BUSINESS",
                    "Class": "STANDARD",
                    "APIKey": "",
                    "SalesTaxPeriod": "QUARTERLY1",
                    "DefaultSalesTax": "Tax Exclusive",
                    "DefaultPurchasesTax": "Tax Inclusive",
                    "CreatedDateUTC": f"/Date({created_ms(org)})/",
                    "LineOfBusiness": line_of_business(org),
                    "Addresses": organisation_addresses(org),
                    "Phones": [
                        {"PhoneType": "OFFICE", "PhoneNumber": org.phone.removeprefix("+61")},
                        {"PhoneType": "MOBILE", "PhoneNumber": org.phone.removeprefix("+61")},
                    ],
                    "ExternalLinks": [],
                    "PaymentTerms": {},
                }
            ],
        }
        return JSONResponse(body)

    return await _serve_api(request, "organisation", tenant_id, handle)


def api_routes() -> list[Route]:
    """The API's routes (paths match in any case: the SDK calls `/Connections`)."""
    return case_insensitive(
        [
            Route(CONNECTIONS_PATH, list_connections, methods=["GET"]),
            Route(CONNECTIONS_PATH + "/{connection_id}", delete_connection, methods=["DELETE"]),
            Route(ORGANISATION_PATH, organisation, methods=["GET"]),
        ]
    )
