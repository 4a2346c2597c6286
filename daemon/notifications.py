"""Telling people: one notification per client per transition, or one digest for many.

Transitions that arrive within a short window are gathered: when many clients change
together (a revoked staff grant, an outage) the person gets "12 clients need
re-authorisation" once instead of a storm. Every notification is stored (the TUI shows
them over SSH) and pushed as an event; the desktop copy goes through the session bus when
there is one, and its delivery — sent, or why not — is recorded, never swallowed. A
client that recovers clears its notifications instead of raising another; a digest shrinks
as its clients recover ("19 clients need re-authorisation" becomes 18, then one client's
own wording, its desktop copy replaced) and goes once none of them needs attention.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from clientlink.common.config import NotificationsConfig
from clientlink.common.protocol import (
    ConnectionStatus,
    NotificationEvent,
    NotificationKind,
    NotificationsListResult,
    NotificationsRead,
)
from clientlink.common.wording import status_notice
from clientlink.daemon.clock import Clock
from clientlink.daemon.events import EventBus
from clientlink.daemon.store import ClientRow, NotificationRow, Store

log = logging.getLogger(__name__)

BAD = {ConnectionStatus.NEEDS_REAUTH, ConnectionStatus.EXPIRING, ConnectionStatus.ERROR}


class DesktopChannel(Protocol):
    """What the notifier needs from the desktop (``common/desktop.py``)."""

    async def probe(self) -> str | None: ...

    async def send(
        self, title: str, body: str, *, urgency: str = "normal", open_action: bool = True
    ) -> str: ...

    async def withdraw(self, identifier: str) -> None: ...

    async def replace(
        self,
        identifier: str,
        title: str,
        body: str,
        *,
        urgency: str = "normal",
        open_action: bool = True,
    ) -> str: ...


class LazyDesktop:
    """The desktop channel, loaded (D-Bus stack and all) the first time it is needed."""

    def __init__(self, open_command: list[str] | None) -> None:
        self._open_command = open_command
        self._channel: DesktopChannel | None = None

    def _get(self) -> DesktopChannel:
        if self._channel is None:
            from clientlink.common.desktop import DesktopNotifications

            self._channel = DesktopNotifications(open_command=self._open_command)
        return self._channel

    async def probe(self) -> str | None:
        return await self._get().probe()

    async def send(
        self, title: str, body: str, *, urgency: str = "normal", open_action: bool = True
    ) -> str:
        return await self._get().send(title, body, urgency=urgency, open_action=open_action)

    async def withdraw(self, identifier: str) -> None:
        await self._get().withdraw(identifier)

    async def replace(
        self,
        identifier: str,
        title: str,
        body: str,
        *,
        urgency: str = "normal",
        open_action: bool = True,
    ) -> str:
        return await self._get().replace(
            identifier, title, body, urgency=urgency, open_action=open_action
        )


@dataclass(frozen=True)
class _Change:
    client_id: int
    name: str
    status: ConnectionStatus
    reason: str | None


class Notifier:
    """Gathers status transitions into stored, announced and (maybe) desktop notifications."""

    def __init__(
        self,
        store: Store,
        events: EventBus,
        clock: Clock,
        config: NotificationsConfig,
        desktop: DesktopChannel | None,
    ) -> None:
        self._store = store
        self._events = events
        self._clock = clock
        self._config = config
        self._desktop = desktop if config.desktop else None
        self._pending: list[_Change] = []
        self._recovered: set[int] = set()
        self._flush_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def transition(
        self,
        client: ClientRow,
        old: str | None,
        new: ConnectionStatus,
        reason: str | None,
    ) -> None:
        """Note one client's status change; delivery happens after the gathering window."""
        if old == new.value:
            return
        if new in BAD and new.value in self._config.kinds:
            self._pending.append(_Change(client.id, client.name, new, reason))
        elif new == ConnectionStatus.CONNECTED and old in {s.value for s in BAD}:
            self._recovered.add(client.id)
            self._pending = [c for c in self._pending if c.client_id != client.id]
        else:
            return
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.ensure_future(self._flush_later())

    async def _flush_later(self) -> None:
        await self._clock.sleep(self._config.digest_window_seconds)
        await self.flush()

    async def flush(self) -> None:
        """Deliver what has gathered now (the window's end, shutdown, or a test)."""
        async with self._lock:
            changes, self._pending = self._pending, []
            recovered, self._recovered = self._recovered, set()
            cleared = [await self._clear(client_id) for client_id in sorted(recovered)]
            if any(cleared):
                await self._announce_read()
            by_kind: dict[ConnectionStatus, list[_Change]] = {}
            for change in changes:
                by_kind.setdefault(change.status, []).append(change)
            for status, group in by_kind.items():
                if len(group) >= self._config.digest_threshold:
                    await self._notify(NotificationKind.DIGEST, *_digest_text(status, group), group)
                else:
                    for change in group:
                        await self._notify(
                            NotificationKind(status.value), *_single_text(change), [change]
                        )

    async def close(self) -> None:
        """Deliver anything still gathering (shutdown)."""
        if self._flush_task is not None and not self._flush_task.done():
            self._flush_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flush_task
        await self.flush()

    async def list(self, unread_only: bool, limit: int) -> NotificationsListResult:
        rows = await self._store.list_notifications(unread_only, limit)
        return NotificationsListResult(
            unread=await self._store.count_unread_notifications(),
            items=[row.to_protocol() for row in rows],
        )

    async def ack(self, ids: list[int] | None) -> int:
        await self._store.mark_notifications_read(ids)
        return await self._announce_read()

    async def _announce_read(self) -> int:
        unread = await self._store.count_unread_notifications()
        self._events.publish(NotificationsRead(unread=unread))
        return unread

    # ------------------------------------------------------------------ delivery

    async def _notify(
        self, kind: NotificationKind, title: str, body: str, group: list[_Change]
    ) -> None:
        client_ids = [change.client_id for change in group]
        desktop_state = await self._desktop_state()
        notification_id = await self._store.add_notification(
            kind=kind.value,
            title=title,
            body=body,
            client_ids=client_ids,
            desktop=desktop_state,
            now=self._clock.now(),
        )
        if desktop_state == "pending":
            assert self._desktop is not None
            try:
                identifier = await self._desktop.send(
                    title, body, urgency="critical" if kind == NotificationKind.ERROR else "normal"
                )
            except Exception as exc:
                log.warning("desktop notification %s not delivered: %s", notification_id, exc)
                await self._store.set_notification_desktop(notification_id, f"failed: {exc}")
            else:
                await self._store.set_notification_desktop(notification_id, "sent", identifier)
        self._events.publish(
            NotificationEvent(
                id=notification_id,
                kind=kind,
                title=title,
                body=body,
                client_ids=client_ids,
                unread=await self._store.count_unread_notifications(),
            )
        )

    async def _desktop_state(self) -> str:
        if not self._config.desktop:
            return "disabled"
        if self._desktop is None:
            return "no desktop notifier"
        problem = await self._desktop.probe()
        return problem or "pending"

    async def _clear(self, client_id: int) -> bool:
        """A recovered client's own notifications are read and withdrawn from the desktop;
        a digest says how many of its clients still need attention (its desktop copy
        replaced), and goes once none does. Returns whether any notification changed."""
        changed = False
        for item in await self._store.unread_notifications_for(client_id):
            others = [c for c in item.client_ids if c != client_id]
            still = await self._still_bad(others)
            if still and item.kind != NotificationKind.DIGEST.value:
                continue
            changed = True
            if still:
                await self._shrink(item, still)
                continue
            await self._store.mark_notifications_read([item.id])
            if item.desktop == "sent" and item.desktop_id and self._desktop is not None:
                try:
                    await self._desktop.withdraw(item.desktop_id)
                except Exception as exc:
                    log.info("could not withdraw desktop notification: %s", exc)
                await self._store.set_notification_desktop(item.id, "withdrawn")
        return changed

    async def _shrink(self, item: NotificationRow, still: list[ClientRow]) -> None:
        """A digest's text for the clients still in its status: the count, or one's own."""
        status = Counter(client.status for client in still).most_common(1)[0][0]
        kept = [client for client in still if client.status == status]
        named = [(client.name, client.status_reason) for client in kept]
        title, body = status_notice(status, named, digest=len(kept) > 1)
        await self._store.update_notification(
            item.id, title=title, body=body, client_ids=[client.id for client in kept]
        )
        if item.desktop != "sent" or not item.desktop_id or self._desktop is None:
            return
        urgency = "critical" if status == ConnectionStatus.ERROR.value else "normal"
        try:
            identifier = await self._desktop.replace(item.desktop_id, title, body, urgency=urgency)
        except Exception as exc:
            log.info("could not replace desktop notification %s: %s", item.id, exc)
            await self._store.set_notification_desktop(item.id, f"failed: {exc}")
        else:
            await self._store.set_notification_desktop(item.id, "sent", identifier)

    async def _still_bad(self, client_ids: list[int]) -> list[ClientRow]:
        """Those of ``client_ids`` that still need attention, as the store has them now."""
        bad = []
        for client_id in client_ids:
            client = await self._store.get_client(client_id)
            if client is not None and client.status in {s.value for s in BAD}:
                bad.append(client)
        return bad


def _digest_text(status: ConnectionStatus, group: list[_Change]) -> tuple[str, str]:
    return status_notice(status.value, [(c.name, c.reason) for c in group], digest=True)


def _single_text(change: _Change) -> tuple[str, str]:
    return status_notice(change.status.value, [(change.name, change.reason)], digest=False)
