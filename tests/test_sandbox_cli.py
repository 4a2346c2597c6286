"""`python -m clientlink.sandbox` (what `clientlink sandbox` mounts) as a real process."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from clientlink.sandbox import SandboxServer
from clientlink.sandbox.testkit import authorize_url, pkce_pair, quickbooks_authorize_url

REDIRECT_URI = "http://127.0.0.1:53682/callback"


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer(org_count=10) as server:
        yield server


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "clientlink.sandbox",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_serve_prints_listening_line_first_and_stops_cleanly_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "clientlink.sandbox",
        "--port",
        "0",
        "--orgs",
        "5",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    first = (await asyncio.wait_for(proc.stdout.readline(), timeout=20)).decode()
    match = re.fullmatch(r"Sandbox listening on (http://127\.0\.0\.1:\d+)\n", first)
    assert match, first
    banner = []
    while not banner or not banner[-1].startswith("Press Ctrl-C"):
        banner.append((await asyncio.wait_for(proc.stdout.readline(), timeout=20)).decode())
    assert "  Xero\n" in banner and "  QuickBooks Online\n" in banner
    assert "  Class Super\n" in banner
    assert any("clientlink-class (secret sandbox-class-secret)" in line for line in banner)
    async with httpx.AsyncClient() as http:
        info = (await http.get(match.group(1) + "/_sandbox/info")).json()
    assert info["org_count"] == 5
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), timeout=10) == 0


async def test_approve_command_prints_the_code_redirect(sandbox: SandboxServer) -> None:
    org = sandbox.state.orgs[2]
    url = authorize_url(sandbox.base_url, redirect_uri=REDIRECT_URI, code_challenge=pkce_pair()[1])
    code, out, _ = await run_cli("approve", url, "--orgs", org.name.lower())
    assert code == 0
    params = parse_qs(urlsplit(out.strip()).query)
    assert "code" in params and params["state"] == ["st-123"]


async def test_approve_command_with_unknown_org_exits_1_with_a_clear_message(
    sandbox: SandboxServer,
) -> None:
    url = authorize_url(sandbox.base_url, redirect_uri=REDIRECT_URI, code_challenge=pkce_pair()[1])
    code, out, err = await run_cli("approve", url, "--orgs", "No Such Fund")
    assert code == 1
    assert out == ""
    assert "'No Such Fund' is not available" in err


async def test_approve_command_picks_the_named_quickbooks_company(sandbox: SandboxServer) -> None:
    org = sandbox.state.orgs[3]
    url = quickbooks_authorize_url(sandbox.base_url, redirect_uri=REDIRECT_URI)
    code, out, _ = await run_cli("approve", url, "--orgs", org.realm_id)
    assert code == 0
    params = parse_qs(urlsplit(out.strip()).query)
    assert params["realmId"] == [org.realm_id] and "code" in params
