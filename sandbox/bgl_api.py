"""HTTP side of the SF360-like API: `GET /bgl/fund/list` and `GET /bgl/sf/funds/{fundId}`.

`/fund/list` answers `{"funds": [...]}` with every entity of the firm in BGL's published
shape; `/sf/funds/{fundId}` one entity's details. A bad bearer token gets 401
`{"error": "invalid_token", "error_description": ...}` (RFC 6750), an entity the firm does
not hold 404. No rate limits are documented, so none are enforced; faults (target `api`,
provider `bgl`) still apply.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from clientlink.sandbox.bgl import BglProvider, fund_details, fund_list_item
from clientlink.sandbox.oauth import ApiAuthError, Grant
from clientlink.sandbox.sign_in_pages import sandbox_state

API_BASE_PATH = "/bgl"
FUND_LIST_PATH = API_BASE_PATH + "/fund/list"
FUND_PATH = API_BASE_PATH + "/sf/funds/{fund_id}"

Handler = Callable[[BglProvider, Grant], Awaitable[Response]]


async def _serve(request: Request, stat: str, handler: Handler) -> Response:
    """Count, fault, authenticate, handle."""
    state = sandbox_state(request)
    bgl = state.bgl
    state.calls[stat] += 1

    async def process() -> Response:
        try:
            grant = bgl.authenticate_bearer(request.headers.get("authorization"))
        except ApiAuthError as exc:
            return JSONResponse(
                {"error": exc.title, "error_description": exc.detail},
                status_code=exc.status,
                headers={"WWW-Authenticate": f'Bearer error="{exc.title}"'},
            )

        async def handle() -> Response:
            return await handler(bgl, grant)

        return await state.serve_admitted(grant.client_id, None, handle)

    return await state.with_faults("api", bgl.name, process)


async def fund_list(request: Request) -> Response:
    """GET every fund and entity of the firm."""

    async def handle(bgl: BglProvider, grant: Grant) -> Response:
        return JSONResponse({"funds": [fund_list_item(e) for e in bgl.funds_of(grant)]})

    return await _serve(request, "bgl.fund_list", handle)


async def fund(request: Request) -> Response:
    """GET one entity's details by its fund id."""
    fund_id = request.path_params["fund_id"]

    async def handle(bgl: BglProvider, grant: Grant) -> Response:
        entity = next((e for e in bgl.funds_of(grant) if e.fund_id == fund_id), None)
        if entity is None:
            return JSONResponse(
                {"error": "not_found", "error_description": f"No fund {fund_id} in this firm"},
                status_code=404,
            )
        return JSONResponse(fund_details(entity))

    return await _serve(request, "bgl.fund", handle)


def api_routes() -> list[Route]:
    """The API's routes."""
    return [
        Route(FUND_LIST_PATH, fund_list, methods=["GET"]),
        Route(FUND_PATH, fund, methods=["GET"]),
    ]
