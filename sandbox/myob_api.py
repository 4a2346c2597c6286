"""HTTP side of the MYOB Business-like API under `/myob/accountright/`.

- `GET /myob/accountright/`: the company file list, empty for keys made after 12 March 2025
  (the consented file is named on the redirect instead);
- `GET /myob/accountright/{businessId}/`: the file itself (`{"CompanyFile": {...}}`);
- `GET /myob/accountright/{businessId}/Company`: its Company Information.

Every call needs `Authorization: Bearer`, `x-myobapi-key` (the API key the token was issued
to) and `x-myobapi-version: v2`. Errors use MYOB's `{"Errors": [...]}` body (see `myob.py`
for what is assumed).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from clientlink.sandbox.myob import (
    API_VERSION,
    COMPANY_FILE_SCOPE,
    COMPANY_SETTINGS_SCOPE,
    MyobProvider,
)
from clientlink.sandbox.oauth import ApiAuthError
from clientlink.sandbox.seed import SeedOrg
from clientlink.sandbox.sign_in_pages import sandbox_state

API_BASE_PATH = "/myob/accountright"
COMPANY_FILE_PATH = API_BASE_PATH + "/{business_id}/"
COMPANY_PATH = API_BASE_PATH + "/{business_id}/Company"


def myob_error(status: int, name: str, message: str, code: int) -> Response:
    """MYOB's error body."""
    body = {
        "Errors": [
            {
                "Name": name,
                "Message": message,
                "AdditionalDetails": "",
                "ErrorCode": code,
                "Severity": "Error",
            }
        ],
        "Information": "",
    }
    return JSONResponse(body, status_code=status)


def rate_limit_error() -> Response:
    """The quoted answer of MYOB's gateway to a key over its rate."""
    return myob_error(403, "RateLimitError", "Developer Over Qps", 1930)


def company_json(myob: MyobProvider, org: SeedOrg) -> dict[str, object]:
    """The Company Information of `org`'s file."""
    file = myob.company_file(org)
    return {
        "CompanyName": file.company_name,
        "SerialNumber": file.serial_number,
        "Address": "",
        "PhoneNumber": file.phone,
        "FaxNumber": "",
        "EmailAddress": file.email,
        "ABNOrTFN": file.abn_or_tfn,
        "ABNBranch": file.abn_branch,
        "ACN": file.acn,
        "SalesTaxNumber": "",
        "PayeeNumber": "",
        "ReadOnly": False,
        "RowVersion": str(-(uuid.UUID(file.business_id).int % 10**18)),
    }


def company_file_json(request: Request, myob: MyobProvider, org: SeedOrg) -> dict[str, object]:
    """The file as the API's company file resource describes it."""
    file = myob.company_file(org)
    uri = f"{str(request.base_url).rstrip('/')}{API_BASE_PATH}/{file.business_id}"
    return {
        "Id": file.business_id,
        "Name": file.company_name,
        "LibraryPath": file.company_name,
        "ProductVersion": "2026.3",
        "ProductLevel": {"Code": 30, "Name": "Plus"},
        "CheckedOutDate": None,
        "CheckedOutBy": None,
        "Uri": uri,
        "Country": "AU",
        "SerialNumber": file.serial_number,
        "UIAccessFlags": 3,
    }


Handler = Callable[[SeedOrg], Awaitable[Response]]


async def _serve(request: Request, stat: str, scopes: frozenset[str], handler: Handler) -> Response:
    """Count, fault, check the headers and the token, the file, the scope, the rate, handle."""
    state = sandbox_state(request)
    myob = state.myob
    business_id = request.path_params["business_id"]
    state.calls[stat] += 1

    async def process() -> Response:
        key = request.headers.get("x-myobapi-key", "")
        if key not in myob.apps:
            return myob_error(403, "DeveloperInactive", "Developer Inactive", 1920)
        if request.headers.get("x-myobapi-version", "") != API_VERSION:
            return myob_error(400, "UnsupportedApiVersion", "Send x-myobapi-version: v2", 1910)
        try:
            grant = myob.authenticate_bearer(request.headers.get("authorization"))
        except ApiAuthError as exc:
            return myob_error(401, exc.title, exc.detail, 1)
        if grant.client_id != key:
            return myob_error(401, "OAuthTokenIsInvalid", "The token belongs to another key", 1)
        if myob.realm_of(grant) != business_id:
            return myob_error(
                403, "AccessDenied", "This app has no consent for this company file", 1501
            )
        if not scopes & set(grant.scope.split()):
            return myob_error(
                403, "InsufficientScope", f"Needs one of: {', '.join(sorted(scopes))}", 1502
            )
        decision = state.limits.admit_myob(key)
        if not decision.allowed:
            state.rate_limited += 1
            return rate_limit_error()
        org = myob.org_for_business(business_id)
        assert org is not None

        async def handle() -> Response:
            return await handler(org)

        return await state.serve_admitted(key, None, handle)

    return await state.with_faults("api", myob.name, process)


async def company_files(request: Request) -> Response:
    """GET the file list: empty for this key (files are named on the redirect)."""
    state = sandbox_state(request)
    state.calls["myob.companyfiles"] += 1
    key = request.headers.get("x-myobapi-key", "")
    if key not in state.myob.apps:
        return myob_error(403, "DeveloperInactive", "Developer Inactive", 1920)
    return JSONResponse([])


async def company_file(request: Request) -> Response:
    """GET one file (the consented one)."""
    myob = sandbox_state(request).myob

    async def handle(org: SeedOrg) -> Response:
        return JSONResponse({"CompanyFile": company_file_json(request, myob, org)})

    return await _serve(request, "myob.companyfile", frozenset({COMPANY_FILE_SCOPE}), handle)


async def company(request: Request) -> Response:
    """GET the consented file's Company Information."""
    myob = sandbox_state(request).myob

    async def handle(org: SeedOrg) -> Response:
        return JSONResponse(company_json(myob, org))

    scopes = frozenset({COMPANY_FILE_SCOPE, COMPANY_SETTINGS_SCOPE})
    return await _serve(request, "myob.company", scopes, handle)


def api_routes() -> list[Route]:
    """The API's routes; a resource answers with or without a trailing slash."""
    return [
        Route(API_BASE_PATH + "/", company_files, methods=["GET"]),
        Route(COMPANY_FILE_PATH, company_file, methods=["GET"]),
        Route(COMPANY_PATH, company, methods=["GET"]),
        Route(COMPANY_PATH + "/", company, methods=["GET"]),
    ]
