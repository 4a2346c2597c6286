"""Client names and provider text never put an escape sequence on a staff member's terminal.

A business names itself in its own Xero file, and a provider writes its own error
descriptions: both are stored as received and shown made visible (``common/safe_text.py``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from urllib.parse import urlencode

import pytest

from clientlink.cli.demo import seed_practice
from clientlink.common import protocol as p
from clientlink.common.safe_text import terminal_json, visible
from tests.helpers import clientlink_cli, sandbox_get, sandbox_post

# What was seen in the wild, one attack a name.
PAYLOADS = {
    "osc52": "Clip \x1b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\x07 Pty Ltd",
    "osc0": "Title \x1b]0;you have been owned\x07 Pty Ltd",
    "clear": "Wipe \x1b[2J\x1b[H Pty Ltd",
    "csi8": "Eight \x9b2J\x9b31m Pty Ltd",
    "bidi": "Bidi \u202egnp.exe\u202c \u2066x\u2069 Pty Ltd",
    "nul_del_bell": "Bell \x07\x00\x7f\x08 Pty Ltd",
    "newline": "Two\nLines Pty Ltd",
    "markup": "Markup [red]red[/] [@click=app.quit]quit[/] Pty Ltd",
}
# Bytes the attacker wrote, none of which may reach the terminal raw.
FORBIDDEN = [
    b"\x1b]52",
    b"\x1b]0;",
    b"\x1b[2J",
    "\x9b".encode(),
    "\u202e".encode(),
    "\u2066".encode(),
    "\u2069".encode(),
    b"\x07",
    b"\x00",
    b"\x7f",
    b"\x08",
]


def assert_no_attack(data: bytes, *, allow_esc: bool = False) -> None:
    for sequence in FORBIDDEN:
        assert sequence not in data, f"{sequence!r} reached the terminal"
    # A raw 0x9b byte is 8-bit CSI to a terminal not in UTF-8 mode; in UTF-8 output it can
    # only stand inside a character (``␛`` is e2 90 9b), so the output must decode cleanly
    # and hold no C1 character at all.
    text = data.decode("utf-8")
    assert not any(0x80 <= ord(char) <= 0x9F for char in text)
    if not allow_esc:
        assert b"\x1b" not in data


# --------------------------------------------------------------------------- the function


@pytest.mark.parametrize("code", [*range(0x20), 0x7F, *range(0x80, 0xA0)])
def test_every_control_character_is_made_visible_one_for_one(code: int) -> None:
    shown = visible(f"a{chr(code)}b")
    assert len(shown) == 3 and shown[0] == "a" and shown[2] == "b"
    assert shown[1] != chr(code)
    assert shown[1] == (chr(0x2400 + code) if code < 0x20 else "␡" if code == 0x7F else "\ufffd")


@pytest.mark.parametrize(
    "char", ["\u061c", "\u200e", "\u200f", *map(chr, range(0x202A, 0x202F)), "\u2066", "\u2069"]
)
def test_bidirectional_controls_are_made_visible(char: str) -> None:
    assert visible(f"a{char}b") == "a\ufffdb"


def test_ordinary_text_is_left_alone() -> None:
    for text in ("Smith & Jones Pty Ltd", "Café Ŝtudio 東京", "O'Brien [Trust]", ""):
        assert visible(text) is text
    assert visible("line one\nline two", keep_newlines=True) == "line one\nline two"
    assert visible("line one\nline two") == "line one␊line two"
    assert visible("\ud800") == "\ufffd"  # a lone surrogate cannot be written as UTF-8


def test_terminal_json_is_valid_json_of_exactly_the_stored_values() -> None:
    value = {"names": list(PAYLOADS.values()), "plain": "Café"}
    text = terminal_json(value)
    assert json.loads(text) == value
    assert_no_attack(text.encode())
    assert "Café" in text and "\\u001b" in text and "\\u009b" in text and "\\u202e" in text


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
async def hostile_practice(daemon):
    """The demo practice after some businesses renamed themselves to attacks."""
    orgs = await sandbox_get(daemon.sandbox.base_url, "/_sandbox/orgs")
    for org, name in zip(orgs, PAYLOADS.values(), strict=False):
        await sandbox_post(
            daemon.sandbox.base_url, f"/_sandbox/orgs/{org['tenant_id']}", {"name": name}
        )
    client = await daemon.connect("seed")
    await seed_practice(client, daemon.sandbox.base_url)
    return daemon


clientlink = clientlink_cli


async def test_the_sandbox_renames_a_business_in_every_provider(daemon) -> None:
    base = daemon.sandbox.base_url
    org = (await sandbox_get(base, "/_sandbox/orgs"))[3]
    renamed = await sandbox_post(base, f"/_sandbox/orgs/{org['tenant_id']}", {"name": "New"})
    assert renamed["name"] == renamed["legal_name"] == "New"
    assert (await sandbox_get(base, "/_sandbox/orgs"))[3]["name"] == "New"
    async with __import__("httpx").AsyncClient(base_url=base) as http:
        missing = await http.post("/_sandbox/orgs/nope", json={"name": "x"})
        empty = await http.post(f"/_sandbox/orgs/{org['tenant_id']}", json={"name": ""})
    assert missing.status_code == 404 and empty.status_code == 400


async def test_clients_table_shows_hostile_names_made_visible(hostile_practice) -> None:
    listing = await (await hostile_practice.connect()).call(p.CLIENTS_LIST, limit=1000)
    stored = {item.name for item in listing.items}
    assert set(PAYLOADS.values()) <= stored  # kept as received

    home = str(hostile_practice.paths.config_dir.parent)
    code, out, err = await clientlink("--home", home, "clients")
    assert code == 0, err
    assert_no_attack(out)
    text = out.decode()
    assert "Clip ␛]52;c;Y3VybCBldmlsLnNoIHwgc2g=␇ Pty Ltd" in text
    assert "Title ␛]0;you have been owned␇ Pty Ltd" in text
    assert "Wipe ␛[2J␛[H Pty Ltd" in text
    assert "Eight \ufffd2J\ufffd31m Pty Ltd" in text
    assert "Bidi \ufffdgnp.exe\ufffd \ufffdx\ufffd Pty Ltd" in text
    assert "Two␊Lines Pty Ltd" in text
    # One client a line, whatever its name holds.
    assert len(out.splitlines()) == listing.total + 1


async def test_clients_json_is_valid_and_escaped(hostile_practice) -> None:
    home = str(hostile_practice.paths.config_dir.parent)
    code, out, err = await clientlink("--home", home, "clients", "--json")
    assert code == 0, err
    assert_no_attack(out)
    names = {item["name"] for item in json.loads(out)["items"]}
    assert set(PAYLOADS.values()) <= names
    code, out, err = await clientlink("--home", home, "rpc", "clients.list", '{"limit": 1000}')
    assert code == 0, err
    assert_no_attack(out)
    assert set(PAYLOADS.values()) <= {item["name"] for item in json.loads(out)["items"]}


async def test_the_grants_table_names_a_few_businesses_made_visible(hostile_practice) -> None:
    home = str(hostile_practice.paths.config_dir.parent)
    code, out, err = await clientlink("--home", home, "grants")
    assert code == 0, err
    assert_no_attack(out)
    lines = out.decode().splitlines()
    assert lines[-1].endswith("unused (revoke one with clientlink grants --revoke ID)")
    staff_sign_in = next(line for line in lines if "more" in line)
    assert len(staff_sign_in) < 200  # three names and a count, not every business
    code, out, err = await clientlink("--home", home, "grants", "--json")
    assert code == 0, err
    assert_no_attack(out)
    assert json.loads(out)["items"]


async def test_a_reader_that_goes_away_gets_no_traceback(hostile_practice) -> None:
    home = str(hostile_practice.paths.config_dir.parent)
    read, write = os.pipe()
    os.close(read)  # like `clientlink clients | head` once head has finished
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "clientlink.cli",
        "--home",
        home,
        "clients",
        stdout=write,
        stderr=subprocess.PIPE,
    )
    os.close(write)
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert b"Traceback" not in stderr
    assert process.returncode != 0  # nothing more could be said, and no traceback said it


async def test_a_providers_error_description_is_shown_made_visible(daemon, rpc) -> None:
    """The provider sends the browser back with an error and its own description."""
    session = await rpc.call(p.AUTH_BEGIN, provider="xero")
    state = dict(pair.split("=", 1) for pair in session.authorize_url.split("?", 1)[1].split("&"))[
        "state"
    ]
    description = "Denied \x1b]52;c;ZXZpbA==\x07\x1b]0;owned\x07\x9b2J\u202eok [bold]x[/]"
    redirect = (
        session.redirect_uri
        + "?"
        + urlencode({"state": state, "error": "server_error", "error_description": description})
    )
    home = str(daemon.paths.config_dir.parent)
    params = json.dumps({"session_id": session.session_id, "redirect_url": redirect})
    code, out, err = await clientlink("--home", home, "rpc", "auth.complete", params)
    assert code != 0
    assert_no_attack(out + err)
    assert "␛]52;c;ZXZpbA==␇␛]0;owned␇\ufffd2J\ufffdok [bold]x[/]" in err.decode()
    # Stored as received: the session's error keeps the provider's own text.
    status = await rpc.call(p.AUTH_STATUS, session_id=session.session_id)
    assert description in status.error["message"]


# --------------------------------------------------------------------------- the log


def test_the_daemons_log_escapes_what_it_quotes() -> None:
    code = (
        "import logging\n"
        "from clientlink.daemon.main import configure_logging\n"
        "configure_logging('INFO')\n"
        "log = logging.getLogger('clientlinkd.test')\n"
        f"log.warning('grant 7: refresh failed: %s', {PAYLOADS['osc52']!r})\n"
        f"log.info('client %s', {PAYLOADS['csi8'] + PAYLOADS['newline']!r})\n"
        "try:\n"
        f"    raise ValueError({PAYLOADS['osc0'] + PAYLOADS['bidi']!r})\n"
        "except ValueError:\n"
        "    log.exception('job 3 item 4 failed')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, cwd="/")
    assert result.returncode == 0, result.stderr
    assert_no_attack(result.stderr)
    lines = result.stderr.decode().splitlines()
    assert lines[0].endswith("refresh failed: Clip ␛]52;c;Y3VybCBldmlsLnNoIHwgc2g=␇ Pty Ltd")
    assert lines[1].endswith("client Eight \ufffd2J\ufffd31m Pty LtdTwo␊Lines Pty Ltd")
    assert "job 3 item 4 failed" in lines[2] and "Traceback" in lines[3]  # still readable
    assert lines[-1].startswith("ValueError: Title ␛]0;you have been owned␇")


# --------------------------------------------------------------------------- the TUI

STORED_TO_SHOWN = {
    PAYLOADS["osc52"]: "Clip ␛]52;c;Y3VybCBldmlsLnNoIHwgc2g=␇ Pty Ltd",
    PAYLOADS["csi8"]: "Eight \ufffd2J\ufffd31m Pty Ltd",
    PAYLOADS["bidi"]: "Bidi \ufffdgnp.exe\ufffd \ufffdx\ufffd Pty Ltd",
    PAYLOADS["markup"]: PAYLOADS["markup"],  # literally, brackets and all
}


async def test_the_tui_shows_hostile_names_made_visible_and_literal(hostile_practice) -> None:
    from textual.widgets import DataTable

    from clientlink.tui.app import ClientlinkApp
    from clientlink.tui.screens.manage_clients import ManageClientsScreen
    from tests.test_tui_app import wait_until

    app = ClientlinkApp(hostile_practice.socket_path, open_browser=False)
    async with app.run_test(size=(160, 50)) as pilot:
        screen = app.screen
        assert isinstance(screen, ManageClientsScreen)
        await wait_until(pilot, lambda: len(screen.clients) >= len(PAYLOADS), "clients listed")
        table = screen.query_one(DataTable)
        cells = {table.get_cell(str(cid), "name").plain for cid in screen.clients}
        for stored, expected in STORED_TO_SHOWN.items():
            assert stored not in cells or stored == expected
            assert any(cell.startswith(expected[:20]) for cell in cells), expected
        for cell in cells:
            assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in cell), cell
        # Walk every row: the detail pane shows each name; nothing quits or crashes.
        for _ in range(len(screen.clients)):
            await pilot.press("down")
        await pilot.pause()
        assert app.is_running and app.screen is screen


async def test_a_sign_in_refused_with_a_hostile_description_is_shown_made_visible(
    hostile_practice,
) -> None:
    from textual.widgets import Static

    from tests.test_tui_app import (
        ClientlinkApp,
        open_sign_in_for_a_client_needing_reauth,
        toasts,
        wait_until,
    )

    app = ClientlinkApp(hostile_practice.socket_path, open_browser=False)
    practice = hostile_practice
    listing = await (await practice.connect()).call(
        p.CLIENTS_LIST, filter={"status": "needs_reauth"}, limit=1000
    )
    practice = type("P", (), {"client_ids_needing_reauth": [i.id for i in listing.items]})
    async with app.run_test(size=(160, 50)) as pilot:
        _, sign_in, _ = await open_sign_in_for_a_client_needing_reauth(pilot, practice)
        session = sign_in.session
        state = session.authorize_url.split("state=", 1)[1].split("&", 1)[0]
        description = "No \x1b]52;c;ZXZpbA==\x07 \x9b2J \u202eok [@click=app.quit]x[/]"
        redirect = (
            session.redirect_uri
            + "?"
            + urlencode({"state": state, "error": "server_error", "error_description": description})
        )
        await hostile_practice.deliver(redirect)
        error = sign_in.query_one("#sign-in-error", Static)
        await wait_until(pilot, lambda: "Sign-in failed" in str(error.render()), "the failure")
        shown = str(error.render())
        assert "No ␛]52;c;ZXZpbA==␇ \ufffd2J \ufffdok [@click=app.quit]x[/]" in shown
        assert "\x1b" not in shown and "\x9b" not in shown
        for toast in toasts(app):
            assert "\x1b" not in toast and "\x9b" not in toast
        assert app.is_running


def _read_pty(fd: int, until: float) -> bytes:
    import os
    import select
    import time

    data = b""
    while time.monotonic() < until:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    return data


async def test_the_tui_in_a_real_terminal_writes_none_of_the_attackers_bytes(
    hostile_practice,
) -> None:
    """`clientlink` in a pty: Textual writes its own escapes, never the names' ones."""
    import fcntl
    import os
    import pty
    import signal
    import struct
    import termios
    import time

    home = str(hostile_practice.paths.config_dir.parent)
    pid, fd = pty.fork()
    if pid == 0:  # the child: the TUI, as a person starts it
        os.environ["TERM"] = "xterm-256color"
        os.execv(sys.executable, [sys.executable, "-m", "clientlink.cli", "--home", home])
    loop = asyncio.get_running_loop()
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
        # The daemon serves in this event loop: read the terminal in a thread meanwhile.
        output = await loop.run_in_executor(None, _read_pty, fd, time.monotonic() + 12)
        os.write(fd, b"\x1b[B" * 10)  # walk down the rows: the detail pane shows each
        output += await loop.run_in_executor(None, _read_pty, fd, time.monotonic() + 3)
    finally:
        os.kill(pid, signal.SIGTERM)
        await loop.run_in_executor(None, os.waitpid, pid, 0)
        os.close(fd)
    for payload in PAYLOADS.values():
        if payload != PAYLOADS["markup"]:
            assert payload.encode() not in output
    for sequence in (b"\x1b]52", b"\x1b]0;you", b"\x9b2J", "\x9b".encode(), "\u202e".encode()):
        assert sequence not in output, f"{sequence!r} reached the terminal"
    assert not any(0x80 <= ord(c) <= 0x9F for c in output.decode("utf-8", "replace"))
    assert "Clip ␛]52;c;Y3".encode() in output  # it was drawn (the column cuts it)
