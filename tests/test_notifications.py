"""Notifications: a digest for many transitions, a clear for a recovery, every one stored.

Desktop delivery goes to a private D-Bus session whose notification server records what
it is asked to show (tests/dbus_session.py).
"""

from __future__ import annotations

from clientlink.common import protocol as p
from tests.helpers import advance_time, next_event, sandbox_get, sandbox_post


async def revoke_staff_grant(practice, user_prefix: str) -> list[str]:
    grants = await sandbox_get(practice.sandbox.base_url, "/_sandbox/grants")
    grant = next(g for g in grants if g["user"].startswith(user_prefix) and not g["revoked"])
    await sandbox_post(practice.sandbox.base_url, f"/_sandbox/grants/{grant['grant_id']}/revoke")
    return grant["tenant_ids"]


async def test_many_clients_changing_together_make_one_digest(notification_server, practice):
    rpc = await practice.connect()
    await rpc.subscribe(["notification"])
    before = len(notification_server.notifications)  # seeding's own digest
    tenants = await revoke_staff_grant(practice, "sam")
    await advance_time(practice, 26 * 60)
    await practice.daemon.notifier.flush()

    (shown,) = notification_server.notifications[before:]
    assert shown.summary == f"{len(tenants)} clients need re-authorisation"
    assert "Open clientlink" in shown.action_titles.values()
    event = await next_event(rpc, "notification")
    assert event["kind"] == "digest" and len(event["client_ids"]) == len(tenants)
    stored = await rpc.call(p.NOTIFICATIONS_LIST)
    assert stored.unread == 1
    assert stored.items[0].desktop == "sent"
    assert stored.items[0].title == shown.summary


async def test_one_client_gets_its_own_notification_and_recovery_only_clears_it(
    notification_server, practice
):
    rpc = await practice.connect()
    client = await rpc.call(p.CLIENTS_GET, client_id=practice.xero_connected_ids[0])
    await sandbox_post(
        practice.sandbox.base_url,
        "/_sandbox/connections/disconnect",
        {"tenant_id": client.tenant_id},
    )
    before = len(notification_server.notifications)
    await rpc.call(p.CLIENTS_REFRESH, client_id=client.id, force=True)
    await practice.daemon.notifier.flush()
    (shown,) = notification_server.notifications[before:]
    assert shown.summary == f"Re-authorise {client.name}"
    assert "disconnected" in shown.body

    session = await rpc.call(p.AUTH_BEGIN, provider="xero", client_id=client.id)
    redirect = await practice.approve(session.authorize_url, [client.tenant_id])
    await rpc.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect)
    await practice.daemon.notifier.flush()

    assert len(notification_server.notifications) == before + 1  # nothing for a recovery
    assert [close.id for close in notification_server.closes] == [shown.id]
    stored = await rpc.call(p.NOTIFICATIONS_LIST)
    assert stored.unread == 0
    assert stored.items[0].desktop == "withdrawn"


async def reauthorise(practice, rpc, client: p.Client) -> None:
    session = await rpc.call(p.AUTH_BEGIN, provider="xero", client_id=client.id)
    redirect = await practice.approve(session.authorize_url, [client.tenant_id])
    await rpc.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect)
    await practice.daemon.notifier.flush()


async def test_a_digest_counts_down_as_its_clients_recover_and_goes_at_zero(
    notification_server, practice
):
    rpc = await practice.connect()
    before = len(notification_server.notifications)
    tenants = await revoke_staff_grant(practice, "sam")
    await advance_time(practice, 26 * 60)
    await practice.daemon.notifier.flush()
    (digest,) = notification_server.notifications[before:]
    assert digest.summary == f"{len(tenants)} clients need re-authorisation"
    listed = (await rpc.call(p.CLIENTS_LIST, limit=500)).items
    clients = sorted((c for c in listed if c.tenant_id in tenants), key=lambda c: c.id)
    assert len(clients) == len(tenants) >= 3
    (stored,) = (await rpc.call(p.NOTIFICATIONS_LIST, unread_only=True)).items

    shown = digest
    for done, client in enumerate(clients[:-1], start=1):
        await reauthorise(practice, rpc, client)
        left = clients[done:]
        newest = notification_server.notifications[-1]
        assert shown.id in [close.id for close in notification_server.closes]
        assert newest.id != shown.id and newest.id in notification_server.showing
        assert shown.id not in notification_server.showing
        shown = newest
        (item,) = (await rpc.call(p.NOTIFICATIONS_LIST, unread_only=True)).items
        assert item.id == stored.id and item.desktop == "sent"
        assert item.client_ids == [c.id for c in left]
        assert item.title == shown.summary
        if len(left) > 1:
            assert shown.summary == f"{len(left)} clients need re-authorisation"
            assert left[0].name in shown.body and client.name not in shown.body
        else:
            assert shown.summary == f"Re-authorise {left[0].name}"  # not "1 clients"

    await reauthorise(practice, rpc, clients[-1])
    assert shown.id not in notification_server.showing
    assert notification_server.showing.isdisjoint(
        call.id for call in notification_server.notifications[before:]
    )
    stored_now = await rpc.call(p.NOTIFICATIONS_LIST)
    assert stored_now.unread == 0
    (item,) = [each for each in stored_now.items if each.id == stored.id]
    assert item.read and item.desktop == "withdrawn"
    assert len(notification_server.notifications) == before + len(clients)  # no new ones


async def test_without_a_session_bus_notifications_are_stored_and_say_why(practice, monkeypatch):
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    from clientlink.daemon.notifications import LazyDesktop

    practice.daemon.notifier._desktop = LazyDesktop(None)
    rpc = await practice.connect()
    await revoke_staff_grant(practice, "sam")
    await advance_time(practice, 26 * 60)
    await practice.daemon.notifier.flush()
    stored = await rpc.call(p.NOTIFICATIONS_LIST, unread_only=True)
    assert stored.unread == 1
    assert stored.items[0].desktop == "no session bus"


async def test_a_delivery_failure_is_recorded_not_swallowed(notification_server, practice):
    rpc = await practice.connect()
    notification_server.stop_answering()
    practice.daemon.notifier._desktop._get()._timeout = 0.3
    await revoke_staff_grant(practice, "sam")
    await advance_time(practice, 26 * 60)
    await practice.daemon.notifier.flush()
    stored = await rpc.call(p.NOTIFICATIONS_LIST)
    assert stored.items[0].desktop.startswith(("failed", "no notification server"))
    assert stored.items[0].desktop != "sent"
    notification_server.resume_answering()


async def test_acknowledging_clears_the_unread_count(practice):
    rpc = await practice.connect()
    await revoke_staff_grant(practice, "sam")
    await advance_time(practice, 26 * 60)
    await practice.daemon.notifier.flush()
    assert (await rpc.call(p.DAEMON_STATUS)).unread_notifications == 1
    assert (await rpc.call(p.NOTIFICATIONS_ACK)).unread == 0
    assert (await rpc.call(p.NOTIFICATIONS_LIST, unread_only=True)).items == []


async def test_a_recovery_that_clears_notifications_announces_the_new_unread_count(practice):
    rpc = await practice.connect()
    await rpc.subscribe(["notifications.read"])
    client = await rpc.call(p.CLIENTS_GET, client_id=practice.xero_connected_ids[0])
    await sandbox_post(
        practice.sandbox.base_url,
        "/_sandbox/connections/disconnect",
        {"tenant_id": client.tenant_id},
    )
    await rpc.call(p.CLIENTS_REFRESH, client_id=client.id, force=True)
    await practice.daemon.notifier.flush()
    assert (await rpc.call(p.DAEMON_STATUS)).unread_notifications == 1
    session = await rpc.call(p.AUTH_BEGIN, provider="xero", client_id=client.id)
    redirect = await practice.approve(session.authorize_url, [client.tenant_id])
    await rpc.call(p.AUTH_COMPLETE, session_id=session.session_id, redirect_url=redirect)
    await practice.daemon.notifier.flush()
    event = await next_event(rpc, "notifications.read")
    assert event["unread"] == 0


async def test_hostile_client_names_reach_the_desktop_made_visible_and_never_as_markup(
    notification_server, daemon
):
    """A business names itself; its name reaches the desktop in a digest and on its own."""
    from clientlink.cli.demo import seed_practice

    notification_server.capabilities.append("body-markup")  # as GNOME, KDE, dunst read it
    base = daemon.sandbox.base_url
    for number, org in enumerate(await sandbox_get(base, "/_sandbox/orgs")):
        hostile = f"<b>Org {number}</b>\x1b]0;owned\x07\x9b2J <a href='https://e.example/'>x</a> &"
        await sandbox_post(base, f"/_sandbox/orgs/{org['tenant_id']}", {"name": hostile})
    rpc = await daemon.connect()
    await seed_practice(rpc, base)
    await daemon.daemon.notifier.flush()
    before = len(notification_server.notifications)

    await revoke_staff_grant(daemon, "sam")
    await advance_time(daemon, 26 * 60)
    await daemon.daemon.notifier.flush()
    (digest,) = notification_server.notifications[before:]
    assert "&lt;b&gt;Org " in digest.body
    assert "&lt;/b&gt;␛]0;owned␇\ufffd2J &lt;a href=" in digest.body
    assert "&lt;/a&gt; &amp;" in digest.body
    assert "<" not in digest.body and "\x1b" not in digest.body and "\x9b" not in digest.body

    listing = await rpc.call(p.CLIENTS_LIST, filter={"status": "connected"}, limit=1000)
    client = next(item for item in listing.items if item.provider == "xero")
    await sandbox_post(base, "/_sandbox/connections/disconnect", {"tenant_id": client.tenant_id})
    await rpc.call(p.CLIENTS_REFRESH, client_id=client.id, force=True)
    await daemon.daemon.notifier.flush()
    single = notification_server.notifications[-1]
    assert single.summary.startswith("Re-authorise <b>Org ")
    assert "</b>␛]0;owned␇\ufffd2J <a href='https://e.example/'>x</a> &" in single.summary
    # Stored as the business named itself; only what reaches a screen is made safe.
    stored = (await rpc.call(p.NOTIFICATIONS_LIST)).items[0]
    assert stored.title == f"Re-authorise {client.name}" and "\x1b" in stored.title
