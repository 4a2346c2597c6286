"""The sandbox's SMTP server and Twilio-like SMS gateway over real loopback sockets."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import aiosmtplib
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from clientlink.common.loopback import LoopbackServer
from clientlink.sandbox import SandboxServer
from clientlink.sandbox.mail import SMTP_PASSWORD, SMTP_USER
from clientlink.sandbox.sms import (
    TWILIO_ACCOUNT_SID,
    TWILIO_AUTH_TOKEN,
    segment_count,
    twilio_signature,
)

MESSAGES = f"/twilio/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/Messages.json"
MOBILE = "+61491570156"
SENDER = "+61491570006"


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer(org_count=3) as server:
        yield server


@pytest.fixture
async def http(sandbox: SandboxServer) -> AsyncIterator[httpx.AsyncClient]:
    auth = (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)
    async with httpx.AsyncClient(base_url=sandbox.base_url, auth=auth, timeout=10) as client:
        yield client


def invitation(to: str = "trustee@harper.example") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Harper & Co Accountants <practice@harper.example>"
    message["To"] = to
    message["Subject"] = "Please connect your bank"
    message["Message-ID"] = make_msgid(domain="clientlink.test")
    message.set_content("Connect here: http://127.0.0.1/basiq/consent/abc")
    message.add_alternative("<p>Connect <a href='http://127.0.0.1/x'>here</a></p>", subtype="html")
    return message


async def send_mail(
    sandbox: SandboxServer,
    message: EmailMessage,
    *,
    password: str = SMTP_PASSWORD,
    start_tls: bool = True,
) -> Any:
    # AUTH is offered only after STARTTLS, as on a real submission port (issue 10).
    return await aiosmtplib.send(
        message,
        hostname="127.0.0.1",
        port=sandbox.smtp_port,
        username=SMTP_USER,
        password=password,
        start_tls=start_tls,
        validate_certs=False,
        timeout=5,
    )


async def outbox(http: httpx.AsyncClient, channel: str) -> list[dict[str, Any]]:
    response = await http.get("/_sandbox/outbox", params={"channel": channel})
    assert response.status_code == 200
    return response.json()


async def add_fault(http: httpx.AsyncClient, rule: dict[str, Any]) -> None:
    response = await http.post("/_sandbox/faults", json=rule)
    assert response.status_code == 201, response.text


async def advance(http: httpx.AsyncClient, seconds: float) -> None:
    response = await http.post("/_sandbox/clock", json={"advance_seconds": seconds})
    assert response.status_code == 200


# -- SMTP -----------------------------------------------------------------------------------


async def test_authenticated_message_lands_in_the_outbox_parsed(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    message = invitation()
    await send_mail(sandbox, message)
    [kept] = await outbox(http, "email")
    assert kept["message_id"] == message["Message-ID"]
    assert kept["rcpt_tos"] == ["trustee@harper.example"]
    assert kept["mail_from"] == "practice@harper.example"
    assert kept["subject"] == "Please connect your bank"
    assert kept["text"].startswith("Connect here:")
    assert "<a href=" in kept["html"]
    assert kept["headers"]["Subject"] == "Please connect your bank"
    assert kept["authenticated_as"] == SMTP_USER and kept["tls"] is True


async def test_starttls_with_the_self_signed_certificate_is_offered(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    await send_mail(sandbox, invitation(), start_tls=True)
    [kept] = await outbox(http, "email")
    assert kept["tls"] is True
    info = (await http.get("/_sandbox/info")).json()["smtp"]
    assert info["port"] == sandbox.smtp_port and info["user"] == SMTP_USER
    assert info["certificate_pem"].startswith("-----BEGIN CERTIFICATE-----")


async def test_wrong_password_is_refused_with_535_and_nothing_is_kept(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    with pytest.raises(aiosmtplib.SMTPAuthenticationError) as refused:
        await send_mail(sandbox, invitation(), password="guess")
    assert refused.value.code == 535
    assert await outbox(http, "email") == []


async def test_sending_without_auth_is_refused(sandbox: SandboxServer) -> None:
    with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
        await aiosmtplib.send(
            invitation(), hostname="127.0.0.1", port=sandbox.smtp_port, start_tls=False
        )
    assert refused.value.code == 530


async def test_temporary_fault_refuses_the_next_n_messages_with_451(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    await add_fault(http, {"kind": "smtp_4xx", "count": 2})
    for _ in range(2):
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await send_mail(sandbox, invitation())
        assert refused.value.code == 451
    await send_mail(sandbox, invitation())
    assert len(await outbox(http, "email")) == 1


async def test_permanent_fault_refuses_with_550(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    await add_fault(http, {"kind": "smtp_5xx", "count": 1})
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await send_mail(sandbox, invitation())
    assert refused.value.code == 550
    assert await outbox(http, "email") == []


async def test_421_refuses_and_closes_the_connection(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    await add_fault(http, {"kind": "smtp_4xx", "smtp_code": 421, "count": 1})
    with pytest.raises(aiosmtplib.SMTPException):
        await send_mail(sandbox, invitation())
    assert await outbox(http, "email") == []


async def test_drop_after_data_keeps_the_message_but_the_sender_sees_a_disconnect(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    await add_fault(http, {"kind": "smtp_drop_after_data", "count": 1})
    message = invitation()
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await send_mail(sandbox, message)
    [kept] = await outbox(http, "email")
    assert kept["message_id"] == message["Message-ID"]


async def test_smtp_faults_never_fire_on_http_and_http_faults_never_on_smtp(
    sandbox: SandboxServer, http: httpx.AsyncClient
) -> None:
    await add_fault(http, {"kind": "500"})
    await send_mail(sandbox, invitation())
    assert len(await outbox(http, "email")) == 1
    bad = await http.post("/_sandbox/faults", json={"kind": "smtp_5xx", "target": "api"})
    assert bad.status_code == 400


async def test_delete_clears_the_outbox(sandbox: SandboxServer, http: httpx.AsyncClient) -> None:
    await send_mail(sandbox, invitation())
    assert (await http.delete("/_sandbox/outbox")).status_code == 200
    assert await outbox(http, "email") == []


# -- SMS ------------------------------------------------------------------------------------


async def send_sms(http: httpx.AsyncClient, **form: str) -> httpx.Response:
    return await http.post(MESSAGES, data={"To": MOBILE, "From": SENDER, "Body": "Hi"} | form)


async def test_send_returns_201_with_twilios_message_shape(http: httpx.AsyncClient) -> None:
    response = await send_sms(http, Body="Please connect your bank: http://127.0.0.1/x")
    assert response.status_code == 201
    body = response.json()
    assert body["sid"].startswith("SM") and len(body["sid"]) == 34
    assert body["account_sid"] == TWILIO_ACCOUNT_SID
    assert (body["to"], body["from"], body["status"]) == (MOBILE, SENDER, "queued")
    assert body["direction"] == "outbound-api" and body["num_segments"] == "1"
    assert body["error_code"] is None and body["error_message"] is None
    assert body["messaging_service_sid"] is None
    assert body["uri"] == f"/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/Messages/{body['sid']}.json"
    assert body["date_created"].endswith("+0000")
    [kept] = await outbox(http, "sms")
    assert kept["sid"] == body["sid"] and kept["channel"] == "sms"


@pytest.mark.parametrize(
    ("form", "status", "code"),
    [
        ({"To": "0491570156"}, 400, 21211),
        ({"To": "+61 491 570 156"}, 400, 21211),
        ({"To": "+61298765432"}, 400, 21614),
        ({"To": "+61491580012"}, 400, 21610),
        ({"Body": ""}, 400, 21602),
        ({"Body": "x" * 1601}, 400, 21617),
        ({"From": ""}, 400, 21603),
        ({"StatusCallback": "https://example.com/status"}, 400, 21609),
    ],
)
async def test_invalid_requests_get_twilios_error_codes(
    http: httpx.AsyncClient, form: dict[str, str], status: int, code: int
) -> None:
    response = await send_sms(http, **form)
    assert response.status_code == status
    body = response.json()
    assert body["code"] == code and body["status"] == status
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert await outbox(http, "sms") == []


async def test_invalid_to_message_names_the_number(http: httpx.AsyncClient) -> None:
    body = (await send_sms(http, To="12345")).json()
    assert body["message"] == "The 'To' number 12345 is not a valid phone number."


async def test_bad_credentials_get_401_code_20003(sandbox: SandboxServer) -> None:
    async with httpx.AsyncClient(base_url=sandbox.base_url, auth=(TWILIO_ACCOUNT_SID, "x")) as c:
        response = await c.post(MESSAGES, data={"To": MOBILE, "From": SENDER, "Body": "Hi"})
    assert response.status_code == 401 and response.json()["code"] == 20003


async def test_429_fault_answers_twilios_20429_and_sends_nothing(http: httpx.AsyncClient) -> None:
    await add_fault(http, {"kind": "429", "target": "sms", "count": 1})
    response = await send_sms(http)
    assert response.status_code == 429 and response.json()["code"] == 20429
    assert await outbox(http, "sms") == []
    assert (await send_sms(http)).status_code == 201


async def test_status_moves_queued_sent_delivered_on_the_sandbox_clock(
    http: httpx.AsyncClient,
) -> None:
    sid = (await send_sms(http)).json()["sid"]
    url = f"/twilio/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/Messages/{sid}.json"
    assert (await http.get(url)).json()["status"] == "queued"
    await advance(http, 1.5)
    assert (await http.get(url)).json()["status"] == "sent"
    await advance(http, 2)
    fetched = (await http.get(url)).json()
    assert fetched["status"] == "delivered" and fetched["date_sent"] is not None


async def test_reserved_range_ends_undelivered_with_30003(http: httpx.AsyncClient) -> None:
    sid = (await send_sms(http, To="+61491580901")).json()["sid"]
    await advance(http, 10)
    url = f"/twilio/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/Messages/{sid}.json"
    fetched = (await http.get(url)).json()
    assert (fetched["status"], fetched["error_code"]) == ("undelivered", 30003)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[tuple[dict[str, str], str]]]]:
    received: list[tuple[dict[str, str], str]] = []

    async def status(request: Request) -> Response:
        form = {key: str(value) for key, value in (await request.form()).items()}
        received.append((form, request.headers.get("x-twilio-signature", "")))
        return Response(status_code=204)

    server = LoopbackServer(Starlette(routes=[Route("/status", status, methods=["POST"])]))
    await server.start()
    try:
        yield f"http://127.0.0.1:{server.port}/status", received
    finally:
        await server.stop()


async def test_status_callbacks_are_posted_signed_and_in_order(
    http: httpx.AsyncClient, receiver: tuple[str, list[tuple[dict[str, str], str]]]
) -> None:
    url, received = receiver
    sid = (await send_sms(http, StatusCallback=url)).json()["sid"]
    await advance(http, 5)
    for _ in range(100):
        if len(received) == 3:
            break
        await asyncio.sleep(0.05)
    assert [form["MessageStatus"] for form, _ in received] == ["queued", "sent", "delivered"]
    form, signature = received[-1]
    assert form["MessageSid"] == sid and form["To"] == MOBILE
    assert signature == twilio_signature(TWILIO_AUTH_TOKEN, url, form)


@pytest.mark.parametrize(
    ("body", "segments", "encoding"),
    [
        ("a" * 160, 1, "GSM-7"),
        ("a" * 161, 2, "GSM-7"),
        ("a" * 306, 2, "GSM-7"),
        ("a" * 307, 3, "GSM-7"),
        ("€" * 80, 1, "GSM-7"),
        ("€" * 81, 2, "GSM-7"),
        ("é" * 160, 1, "GSM-7"),
        ("ā" * 70, 1, "UCS-2"),
        ("ā" * 71, 2, "UCS-2"),
        ("Hi 👋" + "a" * 63, 1, "UCS-2"),
        ("ā" * 134, 2, "UCS-2"),
        ("ā" * 135, 3, "UCS-2"),
    ],
)
def test_segment_counts_follow_gsm7_and_ucs2_rules(body: str, segments: int, encoding: str) -> None:
    assert segment_count(body) == (segments, encoding)


async def test_num_segments_reported_for_a_ucs2_body(http: httpx.AsyncClient) -> None:
    body = (await send_sms(http, Body="Kia ora ā " + "x" * 70)).json()
    assert body["num_segments"] == "2"


async def test_sms_outbox_cli_prints_json(sandbox: SandboxServer, http: httpx.AsyncClient) -> None:
    await send_sms(http, Body="CLI check")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "clientlink.sandbox",
        "outbox",
        "--url",
        sandbox.base_url,
        "--channel",
        "sms",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert proc.returncode == 0
    assert MOBILE in out.decode() and "CLI check" in out.decode()
