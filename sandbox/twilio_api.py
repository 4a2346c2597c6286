"""HTTP side of the Twilio-like gateway: Messages.json under `/twilio/2010-04-01`."""

from __future__ import annotations

import base64
import binascii
import secrets
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from clientlink.sandbox.faults import twilio_error
from clientlink.sandbox.sms import API_VERSION, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, SmsError
from clientlink.sandbox.state import SandboxState

API_BASE_PATH = "/twilio"
ACCOUNT_PATH = f"{API_BASE_PATH}/{API_VERSION}/Accounts/{{account_sid}}"
MESSAGES_PATH = ACCOUNT_PATH + "/Messages.json"
MESSAGE_PATH = ACCOUNT_PATH + "/Messages/{message_sid}.json"


def _state(request: Request) -> SandboxState:
    return request.app.state.sandbox


def _error(exc: SmsError) -> Response:
    return JSONResponse(twilio_error(exc.status, exc.code, exc.message), status_code=exc.status)


def _check_auth(request: Request) -> None:
    """HTTP Basic `AccountSid:AuthToken`, for the account named in the path; else 20003."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        user = password = ""
    good = (
        scheme.lower() == "basic"
        and secrets.compare_digest(user, TWILIO_ACCOUNT_SID)
        and secrets.compare_digest(password, TWILIO_AUTH_TOKEN)
        and request.path_params["account_sid"] == TWILIO_ACCOUNT_SID
    )
    if not good:
        raise SmsError(401, 20003, "Authenticate")


async def create_message(request: Request) -> Response:
    """POST Messages.json: validate and queue one SMS (201 with the message resource)."""
    state = _state(request)
    state.calls["twilio.messages.create"] += 1

    async def process() -> Response:
        try:
            _check_auth(request)
            form = await request.form()
            message = state.sms.create({key: str(value) for key, value in form.items()})
        except SmsError as exc:
            response = _error(exc)
            if exc.status == 401:
                response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
            return response
        return JSONResponse(message.to_json(), status_code=201)

    return await state.with_faults("sms", "twilio", process)


async def fetch_message(request: Request) -> Response:
    """GET one message's current state."""
    state = _state(request)
    state.calls["twilio.messages.fetch"] += 1
    try:
        _check_auth(request)
    except SmsError as exc:
        return _error(exc)
    state.sms.tick()
    message = state.sms.messages.get(request.path_params["message_sid"])
    if message is None:
        text = f"The requested resource {request.url.path} was not found"
        return JSONResponse(twilio_error(404, 20404, text), status_code=404)
    return JSONResponse(message.to_json())


def _page_number(value: str | None, default: int, low: int, high: int) -> int | None:
    try:
        number = int(value) if value is not None else default
    except ValueError:
        return None
    return number if low <= number <= high else None


async def list_messages(request: Request) -> Response:
    """GET Messages.json: the account's messages, newest first, in Twilio's page envelope.

    Filters `To` and `From`; pages with `PageSize` (1-1000, default 50) and `Page`.
    """
    state = _state(request)
    state.calls["twilio.messages.list"] += 1
    try:
        _check_auth(request)
    except SmsError as exc:
        return _error(exc)
    state.sms.tick()
    query = request.query_params
    size = _page_number(query.get("PageSize"), 50, 1, 1000)
    page = _page_number(query.get("Page"), 0, 0, 1_000_000)
    if size is None or page is None:
        text = "PageSize must be 1 to 1000 and Page a whole number from 0"
        return JSONResponse(twilio_error(400, 20001, text), status_code=400)
    messages = [
        message
        for message in state.sms.messages.values()
        if (not query.get("To") or message.to == query["To"])
        and (not query.get("From") or message.from_ == query["From"])
    ]
    # Newest first; messages created at the same instant, latest sent first.
    messages.sort(key=lambda message: message.created_at)
    messages.reverse()
    chosen = messages[page * size : (page + 1) * size]
    # Like the messages' own `uri`, page URIs are relative to the API base.
    path = request.url.path.removeprefix(API_BASE_PATH)
    filters = {key: query[key] for key in ("To", "From") if query.get(key)}

    def page_uri(number: int) -> str:
        return f"{path}?{urlencode({**filters, 'PageSize': size, 'Page': number})}"

    more = (page + 1) * size < len(messages)
    body = {
        "messages": [message.to_json() for message in chosen],
        "end": page * size + max(len(chosen) - 1, 0),
        "first_page_uri": page_uri(0),
        "next_page_uri": page_uri(page + 1) if more else None,
        "page": page,
        "page_size": size,
        "previous_page_uri": page_uri(page - 1) if page > 0 else None,
        "start": page * size,
        "uri": page_uri(page),
    }
    return JSONResponse(body)


def api_routes() -> list[Route]:
    """The gateway's routes."""
    return [
        Route(MESSAGES_PATH, create_message, methods=["POST"]),
        Route(MESSAGES_PATH, list_messages, methods=["GET"]),
        Route(MESSAGE_PATH, fetch_message, methods=["GET"]),
    ]
