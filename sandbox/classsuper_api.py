"""HTTP side of the Class-like API: `/class/api/1.0/b/{business}/fund-data/...`.

Class's URL structure is `/api/{version}/{scope}/{area}/{action}` with the action version in
the Accept header (`vnd.superip.action.v1`). Served here: the business's `fund-list` and one
fund's `fund-detail/{id}`. Errors are RFC 7807 problem details (assumed, see classsuper.py):
401 for a bad or expired access token, 403 for a business the grant does not cover (or its
user no longer reaches), 404 for a fund the business does not hold, 406 for a response type
the sandbox does not serve.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from clientlink.sandbox.classsuper import ClassBusiness
from clientlink.sandbox.oauth import ApiAuthError
from clientlink.sandbox.sign_in_pages import sandbox_state

API_BASE_PATH = "/class/api/1.0"
FUND_LIST_PATH = API_BASE_PATH + "/b/{business}/fund-data/fund-list"
FUND_DETAIL_PATH = API_BASE_PATH + "/b/{business}/fund-data/fund-detail/{fund_id}"
MEDIA_TYPE = "application/vnd.superip.action.v1+json"

_VERSION = re.compile(r"vnd\.superip\.action\.v(\d+)")


def problem(status: int, title: str, detail: str, **headers: str) -> Response:
    """An RFC 7807 problem details answer."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(
        body, status_code=status, media_type="application/problem+json", headers=headers
    )


def _unacceptable(accept: str) -> Response | None:
    """406 unless the Accept header asks for JSON at action version 1."""
    versions = _VERSION.findall(accept)
    if versions and versions != ["1"] * len(versions):
        return problem(406, "Not Acceptable", "this action has version 1 only")
    if "json" not in accept.lower():
        return problem(
            406,
            "Not Acceptable",
            f"the sandbox answers JSON only: send Accept: {MEDIA_TYPE}",
        )
    return None


async def _serve(
    request: Request, stat: str, handler: Callable[[ClassBusiness], Response]
) -> Response:
    """Shared pipeline: count, fault, check Accept, authenticate, check the business."""
    state = sandbox_state(request)
    provider = state.classsuper
    state.calls[stat] += 1

    async def process() -> Response:
        refused = _unacceptable(request.headers.get("accept", ""))
        if refused is not None:
            return refused
        try:
            grant = provider.authenticate_bearer(request.headers.get("authorization"))
            business = provider.business_for(grant, request.path_params["business"])
        except ApiAuthError as exc:
            challenge = 'Bearer error="invalid_token"'
            extra = {"WWW-Authenticate": challenge} if exc.status == 401 else {}
            return problem(exc.status, exc.title, exc.detail, **extra)
        return handler(business)

    return await state.with_faults("api", provider.name, process)


def _json(body: object) -> Response:
    return JSONResponse(body, media_type=MEDIA_TYPE)


async def fund_list(request: Request) -> Response:
    """GET the business's funds, sorted by name."""

    def handle(business: ClassBusiness) -> Response:
        funds = sorted(business.funds.values(), key=lambda fund: fund.name.casefold())
        return _json([fund.to_json() for fund in funds])

    return await _serve(request, "class.fund-list", handle)


async def fund_detail(request: Request) -> Response:
    """GET one fund of the business."""
    fund_id = request.path_params["fund_id"]

    def handle(business: ClassBusiness) -> Response:
        fund = business.funds.get(fund_id)
        if fund is None:
            return problem(404, "Not Found", f"No fund {fund_id} in business {business.code}")
        return _json(fund.to_json())

    return await _serve(request, "class.fund-detail", handle)


def api_routes() -> list[Route]:
    """The API's routes."""
    return [
        Route(FUND_LIST_PATH, fund_list, methods=["GET"]),
        Route(FUND_DETAIL_PATH, fund_detail, methods=["GET"]),
    ]
