"""`clientlink demo --no-tui`: sandbox and daemon for scripting, stopped cleanly together;
the printout lists the SMSF practice beside the books."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

from clientlink.cli.demo_smsf import CLASS_BUSINESSES
from clientlink.sandbox.classsuper import DEFAULT_FUND_COUNTS
from clientlink.sandbox.smsf_seed import DEFAULT_ENTITY_COUNT
from tests.helpers import port_closes


async def test_demo_serves_a_practice_until_interrupted_then_cleans_up():
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "clientlink.cli",
        "demo",
        "--no-tui",
        "--orgs",
        "20",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        while not lines or "Press Ctrl+C" not in lines[-1]:
            line = await asyncio.wait_for(process.stdout.readline(), 60)
            assert line, f"demo ended early: {lines} {await process.stderr.read()!r}"
            lines.append(line.decode().strip())
        fields = dict(
            line.split(": ", 1) for line in lines if line.startswith(("home:", "sandbox:"))
        )
        home, sandbox_url = Path(fields["home"].strip()), fields["sandbox"].strip()
        assert any("need re-authorisation" in line for line in lines)
        # The SMSF practice is listed, with the sandbox sign-in to use.
        assert "SMSF practice:" in lines
        said = "\n".join(lines)
        assert f"{DEFAULT_ENTITY_COUNT} funds and entities; all need re-authorising" in said
        assert said.count("Class Super, business ") == CLASS_BUSINESSES
        assert "demo@practice.example, password sandbox-demo" in said

        status = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "clientlink.cli",
            "--home",
            str(home),
            "status",
            "--json",
            stdout=subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(status.communicate(), 30)
        counts = json.loads(out)["clients_by_status"]
        # The 20 businesses (Xero, QuickBooks, MYOB), the BGL firm and two Class businesses.
        smsf = DEFAULT_ENTITY_COUNT + sum(DEFAULT_FUND_COUNTS[:CLASS_BUSINESSES])
        assert sum(counts.values()) == 20 + smsf and counts["needs_reauth"] > smsf
        assert status.returncode == 1  # something needs attention
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), 30)
    assert process.returncode == 0
    assert not home.exists()  # the throwaway home is gone, socket and database with it
    assert await port_closes(int(sandbox_url.rsplit(":", 1)[1]))
