"""Benchmark: sending N invitation emails through clientlink against a bare aiosmtplib loop.

The sandbox (SMTP server, bank feeds) and a real ``clientlinkd`` run as child processes on a
temporary home configured as ``clientlink demo`` writes it; N clients with email addresses
are written to the daemon's database before it starts. clientlink's figure is the real
path: one ``jobs.start {kind: "invite"}`` for all N clients — per client a bank-feed user and
a personal consent link, the default template rendered, the invitation recorded before the
send and marked sent with the item after it — timed from ``jobs.start`` to
``job.finished``. The bare baseline, in the same run against the same SMTP server: plain
aiosmtplib sending the same number of comparable messages over ONE reused connection.

Run: .venv/bin/python bench/invites_email.py [--emails 5000] [--quick]
Target (issue 5): clientlink's rate at least 0.8x the bare loop's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import httpx

sys.path.insert(0, str(Path(__file__).parent))
from bulk_reauth import World

from clientlink.cli.demo import demo_config_text
from clientlink.common import protocol as p
from clientlink.common.config import load_config
from clientlink.common.protocol import ConnectionStatus
from clientlink.daemon.store import Store
from clientlink.daemon.vault import Vault
from clientlink.sandbox.basiq import BASIQ_API_KEY
from clientlink.sandbox.mail import SMTP_PASSWORD, SMTP_USER


async def populate(world: World, count: int) -> None:
    config = load_config(world.paths.config_file)
    store = await Store.open(world.paths.database)
    await Vault.open(config.vault, store)
    now = datetime.now(UTC)
    async with store.transaction():
        for number in range(count):
            client_id = await store.create_client(
                provider="xero",
                tenant_id=f"tenant-{number}",
                name=f"Client {number} Pty Ltd",
                legal_name=None,
                abn=None,
                grant_id=None,
                status=ConnectionStatus.NOT_CONNECTED,
                now=now,
            )
            await store.update_client_details(
                client_id, now, email=f"accounts{number}@client{number}.example"
            )
    await store.close()


async def run_clientlink(world: World, count: int) -> float:
    rpc = await world.start_daemon()
    await rpc.call(p.CHANNELS_SET_SECRET, channel="email", secret=SMTP_PASSWORD)
    await rpc.call(p.CHANNELS_SET_SECRET, channel="banks", secret=BASIQ_API_KEY)
    bank = (await rpc.call(p.BANKS_LIST)).items[1].id
    await rpc.subscribe(["job.finished"])
    began = time.perf_counter()
    started = await rpc.call(
        p.JOBS_START,
        kind=p.JobKind.INVITE,
        client_ids=list(range(1, count + 1)),
        channel=p.Channel.EMAIL,
        bank_ids=[bank],
    )
    async for event in rpc.events():
        if event.get("job_id") == started.job_id:
            break
    elapsed = time.perf_counter() - began
    if event["failed"]:
        raise SystemExit(f"{event['failed']} invitations failed; see the daemon's log")
    await rpc.close()
    return elapsed


async def run_bare(port: int, count: int) -> float:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=True, validate_certs=False)
    await client.connect()
    await client.login(SMTP_USER, SMTP_PASSWORD)
    began = time.perf_counter()
    for number in range(count):
        mail = EmailMessage()
        mail["From"] = "practice@harbourside.example"
        mail["To"] = f"accounts{number}@client{number}.example"
        mail["Subject"] = "Harbourside Accounting (demo): please connect your bank feeds"
        mail["Message-ID"] = f"<bench-{number}@harbourside.example>"
        mail.set_content(
            f"Dear Client {number},\n\nPlease connect: https://example.invalid/{number}\n"
        )
        await client.send_message(mail)
    elapsed = time.perf_counter() - began
    await client.quit()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=5000)
    parser.add_argument("--quick", action="store_true", help="200 emails: a smoke run")
    parser.add_argument("--json", metavar="PATH", help="also write the figures here as JSON")
    args = parser.parse_args()
    count = 200 if args.quick else args.emails
    with tempfile.TemporaryDirectory(prefix="cl-bench-") as folder:
        world = World(Path(folder), orgs=5)
        world.env = {**__import__("os").environ, "CLIENTLINK_VAULT_PASSPHRASE": "bench"}
        __import__("os").environ["CLIENTLINK_VAULT_PASSPHRASE"] = "bench"
        try:
            world.start_sandbox()
            port = httpx.get(f"{world.url}/_sandbox/info", timeout=10).json()["smtp"]["port"]
            world.paths.ensure()
            # The practice's pace (60 a minute by default) would measure only itself.
            config = demo_config_text(world.url, smtp_port=port).replace(
                "[email]\n", "[email]\nper_minute = 10000\n"
            )
            world.paths.config_file.write_text(config, encoding="utf-8")
            asyncio.run(populate(world, count))
            ours = asyncio.run(run_clientlink(world, count))
            httpx.delete(f"{world.url}/_sandbox/outbox", timeout=10)
            bare = asyncio.run(run_bare(port, count))
        finally:
            world.stop()
    ours_rate, bare_rate = count / ours, count / bare
    verdict = "PASS" if ours_rate >= 0.8 * bare_rate else "MISS"
    print(f"{count} invitation emails to the sandbox SMTP server")
    print(f"  clientlink (invite job, links, records):  {ours:7.2f} s  {ours_rate:7.1f}/s")
    print(f"  bare aiosmtplib, one connection:          {bare:7.2f} s  {bare_rate:7.1f}/s")
    print(
        f"  rate ratio clientlink / bare: {ours_rate / bare_rate:5.2f}x (target >= 0.8x) {verdict}"
    )
    if args.json:
        figures = {
            "emails": count,
            "clientlink_s": ours,
            "bare_s": bare,
            "clientlink_per_s": ours_rate,
            "bare_per_s": bare_rate,
        }
        Path(args.json).write_text(json.dumps(figures), encoding="utf-8")


if __name__ == "__main__":
    main()
