"""A waiting daemon never loads what only a sign-in, a provider call or a send needs.

authlib's OAuth2 client, httpx (with the click, rich and pygments it pulls in) and
aiosmtplib cost an idle daemon tens of megabytes; the adapters and channels import them
when they are first used. A real ``clientlinkd`` (its ``main``, its socket, its SQLite
file) runs on a home configured with providers, email, SMS and bank feeds; once it answers
``daemon.status`` its own ``sys.modules`` is read, then a provider is really used.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from clientlink.cli.demo import PASSPHRASE_ENV, demo_config_text
from clientlink.common.paths import resolve_paths

LAZY = ("httpx", "authlib", "aiosmtplib", "click", "rich", "pygments")

SCRIPT = """
import asyncio, json, os, signal, sys, threading
from clientlink.common import protocol as p
from clientlink.common.client import DaemonClient, DaemonUnavailable
from clientlink.common.paths import resolve_paths
from clientlink.daemon.main import main

home, report, lazy = sys.argv[1], sys.argv[2], sys.argv[3].split(",")


async def probe():
    for _ in range(400):
        try:
            async with DaemonClient(resolve_paths(home).socket) as client:
                await client.call(p.DAEMON_STATUS)
                waiting = sorted(name for name in lazy if name in sys.modules)
                # A sign-in begins: the provider's OAuth2 client is built now.
                await client.call(p.AUTH_BEGIN, provider="xero")
                signing_in = sorted(name for name in lazy if name in sys.modules)
                return {"waiting": waiting, "signing_in": signing_in}
        except (OSError, DaemonUnavailable):
            await asyncio.sleep(0.05)
    return {"error": "the daemon did not answer"}


def check():
    try:
        result = asyncio.run(probe())
    except Exception as exc:
        result = {"error": repr(exc)}
    with open(report, "w") as out:
        json.dump(result, out)
    os.kill(os.getpid(), signal.SIGTERM)


threading.Thread(target=check, daemon=True).start()
sys.exit(main(["--home", home]))
"""


def test_a_waiting_daemon_has_not_imported_httpx_authlib_or_aiosmtplib(tmp_path: Path) -> None:
    home = tmp_path / "home"
    paths = resolve_paths(home)
    paths.ensure()
    # Nothing listens on port 9: the daemon must not need the outside world to wait.
    paths.config_file.write_text(
        demo_config_text("http://127.0.0.1:9", smtp_port=9), encoding="utf-8"
    )
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(home), str(report), ",".join(LAZY)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), PASSPHRASE_ENV: "lean test"},
    )
    assert report.exists(), done.stderr[-3000:]
    result = json.loads(report.read_text())
    assert "error" not in result, (result, done.stderr[-3000:])
    assert result["waiting"] == [], result
    # The probe would pass vacuously if nothing ever imported them: a sign-in does.
    assert {"httpx", "authlib"} <= set(result["signing_in"]), result
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
