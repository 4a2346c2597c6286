"""HTTP side of the QuickBooks Online-like API: `/quickbooks/v3/company/{realmId}/companyinfo`.

Errors come in Intuit's two shapes. The gateway in front of the API answers 401
AuthenticationFailed (3200) and 403 ApplicationAuthorizationFailed (3100) with a lower-case
`{"fault": {"error": [{"message", "detail", "code", "element"}], "type"}}` body; the
accounting service's own errors (400 Object Not Found, 610; 4000 query errors) use
`{"Fault": {"Error": [{"Message", "Detail", "code"}], "type"}}`, which is what
python-quickbooks' `handle_exceptions` reads. 429 ThrottleExceeded (003001) has no
Retry-After. `POST|GET /query` answers `select * from CompanyInfo` (what the SDK's
`CompanyInfo.all()` sends); other entities the sandbox does not model come back empty.
"""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from clientlink.sandbox.faults import quickbooks_throttle_fault
from clientlink.sandbox.oauth import ApiAuthError
from clientlink.sandbox.seed import SURNAMES, SeedOrg
from clientlink.sandbox.sign_in_pages import sandbox_state

API_BASE_PATH = "/quickbooks/v3/company"
COMPANY_INFO_PATH = API_BASE_PATH + "/{realm_id}/companyinfo/{company_info_id}"
QUERY_PATH = API_BASE_PATH + "/{realm_id}/query"

# (state, first postcode, city) for addresses that look Australian.
_STATES = (
    ("NSW", 2000, "Sydney"),
    ("VIC", 3000, "Melbourne"),
    ("QLD", 4000, "Brisbane"),
    ("WA", 6000, "Perth"),
    ("SA", 5000, "Adelaide"),
    ("TAS", 7000, "Hobart"),
)


def _fault(kind: str, message: str, code: str, detail: str | None = None) -> dict[str, object]:
    error: dict[str, str] = {"Message": message}
    if detail is not None:
        error["Detail"] = detail
    error["code"] = code
    return {"Fault": {"Error": [error], "type": kind}}


def _gateway_fault(kind: str, message: str, code: str, detail: str | None) -> dict[str, object]:
    """The lower-case body Intuit's API gateway sends for authentication failures."""
    error = {"message": message, "detail": detail, "code": code, "element": None}
    return {"fault": {"error": [error], "type": kind}}


def _authentication_failed(exc: ApiAuthError) -> Response:
    message = "message=AuthenticationFailed; errorCode=003200; statusCode=401"
    return JSONResponse(
        _gateway_fault("AUTHENTICATION", message, "3200", exc.detail),
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="Intuit", error="invalid_token"'},
    )


def _authorization_failed() -> Response:
    message = "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403"
    return JSONResponse(_gateway_fault("SERVICE", message, "3100", None), status_code=403)


def _object_not_found(company_info_id: str) -> Response:
    detail = (
        "Object Not Found : Something you're trying to use has been made inactive or is not "
        f"found: CompanyInfo {company_info_id}"
    )
    return JSONResponse(
        _fault("ValidationFault", "Object Not Found", "610", detail), status_code=400
    )


def company_address(org: SeedOrg) -> dict[str, str]:
    """A made-up but stable street address for `org`."""
    rng = random.Random(org.tenant_id)
    state, postcode, city = rng.choice(_STATES)
    street = f"{rng.randrange(1, 400)} {rng.choice(SURNAMES)} {rng.choice(('St', 'Rd', 'Ave'))}"
    return {
        "Id": "1",
        "Line1": street,
        "City": city,
        "CountrySubDivisionCode": state,
        "PostalCode": str(postcode + rng.randrange(200)),
        "Country": "AU",
    }


def company_info_json(org: SeedOrg) -> dict[str, object]:
    """QuickBooks' CompanyInfo entity for `org` (Id is always "1" in a real company)."""
    address = company_address(org)
    # A stable start year per company; the company was created in QuickBooks that day.
    started = f"{2012 + int(org.realm_id) % 12}-07-01"
    created = f"{started}T09:00:00+10:00"
    return {
        "CompanyName": org.name,
        "LegalName": org.legal_name,
        "CompanyAddr": address,
        "CustomerCommunicationAddr": address,
        "LegalAddr": address,
        "PrimaryPhone": {"FreeFormNumber": org.phone},
        "Email": {"Address": org.email},
        "CompanyStartDate": started,
        "FiscalYearStartMonth": "July",
        "Country": "AU",
        "SupportedLanguages": "en",
        # Where AU companies keep an ABN is undocumented; the sandbox puts it here.
        "NameValue": [
            {"Name": "ABN", "Value": org.abn},
            {"Name": "CompanyType", "Value": org.organisation_type},
            {"Name": "NeoEnabled", "Value": "true"},
        ],
        "domain": "QBO",
        "sparse": False,
        "Id": "1",
        "SyncToken": "1",
        "MetaData": {"CreateTime": created, "LastUpdatedTime": created},
    }


Handler = Callable[[SeedOrg], Awaitable[Response]]


async def _serve(request: Request, stat: str, handler: Handler) -> Response:
    """Shared pipeline: count, fault, authenticate, check the realm, throttle, handle."""
    state = sandbox_state(request)
    qbo = state.quickbooks
    realm_id = request.path_params["realm_id"]
    state.calls[stat] += 1

    async def process() -> Response:
        try:
            grant = qbo.authenticate_bearer(request.headers.get("authorization"))
        except ApiAuthError as exc:
            return _authentication_failed(exc)
        if qbo.realm_of(grant) != realm_id:
            return _authorization_failed()
        decision = state.limits.admit_quickbooks(grant.client_id, realm_id)
        if not decision.allowed:
            state.rate_limited += 1
            return JSONResponse(quickbooks_throttle_fault(), status_code=429)

        async def handle() -> Response:
            org = qbo.org_for_realm(realm_id)
            assert org is not None
            return await handler(org)

        return await state.serve_admitted(grant.client_id, realm_id, handle)

    return await state.with_faults("api", qbo.name, process)


def _now(request: Request) -> str:
    return sandbox_state(request).clock.now().isoformat(timespec="milliseconds")


async def company_info(request: Request) -> Response:
    """GET CompanyInfo of the realm the bearer token's grant covers."""
    company_info_id = request.path_params["company_info_id"]

    async def handle(org: SeedOrg) -> Response:
        if company_info_id != org.realm_id:
            return _object_not_found(company_info_id)
        return JSONResponse({"CompanyInfo": company_info_json(org), "time": _now(request)})

    return await _serve(request, "quickbooks.companyinfo", handle)


_FROM = re.compile(r"\bfrom\s+(\w+)", re.IGNORECASE)
# Entities QuickBooks Online answers queries for; the sandbox holds none of their rows.
_QUERYABLE = frozenset(
    name.lower()
    for name in (
        "Account",
        "Bill",
        "BillPayment",
        "Class",
        "CreditMemo",
        "Customer",
        "Department",
        "Deposit",
        "Employee",
        "Estimate",
        "Invoice",
        "Item",
        "JournalEntry",
        "Payment",
        "PaymentMethod",
        "Preferences",
        "Purchase",
        "PurchaseOrder",
        "SalesReceipt",
        "TaxCode",
        "TaxRate",
        "Term",
        "TimeActivity",
        "Transfer",
        "Vendor",
        "VendorCredit",
    )
)


async def query(request: Request) -> Response:
    """The query endpoint: the statement in a POST body (application/text) or `?query=`."""
    if request.method == "POST":
        statement = (await request.body()).decode("utf-8", "replace")
    else:
        statement = request.query_params.get("query", "")

    async def handle(org: SeedOrg) -> Response:
        found = _FROM.search(statement)
        entity = found.group(1) if found else ""
        if entity.lower() == "companyinfo":
            rows: dict[str, object] = {
                "CompanyInfo": [company_info_json(org)],
                "startPosition": 1,
                "maxResults": 1,
            }
        elif entity.lower() in _QUERYABLE:
            rows = {}
        else:
            detail = f"QueryParserError: Encountered an unknown entity or syntax in: {statement}"
            return JSONResponse(
                _fault("ValidationFault", "Error parsing query", "4000", detail), status_code=400
            )
        return JSONResponse({"QueryResponse": rows, "time": _now(request)})

    return await _serve(request, "quickbooks.query", handle)


def api_routes() -> list[Route]:
    """The API's routes."""
    return [
        Route(COMPANY_INFO_PATH, company_info, methods=["GET"]),
        Route(QUERY_PATH, query, methods=["GET", "POST"]),
    ]
