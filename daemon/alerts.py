"""Alert digests by email: the people a failing connection matters to hear about it once.

When a client's connection moves to ``needs_reauth``, ``error`` or ``expiring`` (the same
transitions the notifier tells the desktop about), the alert is queued for each person it
concerns: the staff member whose sign-in the client rests on (the grant's
``authorised_by``), when they have an email address on the staff list and have not opted
out (``staff.set_preferences email_alerts=false``), and the practice's alert address
(``[alerts] address``). The alert is written in the same transaction as the status
change, so a daemon killed at any point loses none.

Each person has at most one digest per window (``[alerts] digest_minutes``): their first
alert opens a mail due at the window's end (and no sooner than a window after their last
mail went out); later alerts join it. When it is due, clients that recovered meanwhile (or
whose connection is no longer that person's) are left out; a mail with nobody left in it
is dropped, not sent.

Sending follows the invitations' discipline (:mod:`clientlink.daemon.invitations`): the
mail becomes ``sending`` (committed) only when its bytes are about to leave (the server took
MAIL and RCPT, DATA is next). A server that says try later, or cannot be reached, leaves it
``queued`` with a backoff and the reason recorded; a refusal for good is ``failed``; a
connection that broke after DATA is ``uncertain`` and never resent, and so is a ``sending``
mail found at start-up (the daemon stopped while sending it). ``alerts.list`` shows them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from clientlink.common.config import Config
from clientlink.common.protocol import STATUS_LABELS, ConnectionStatus
from clientlink.common.safe_text import visible
from clientlink.common.timeutil import from_iso, to_iso
from clientlink.common.wording import plural
from clientlink.daemon.channels import (
    EmailChannel,
    OutgoingEmail,
    SendFailed,
    SendRetry,
    SendUncertain,
)
from clientlink.daemon.clock import Clock
from clientlink.daemon.staff import StaffDirectory
from clientlink.daemon.store import AlertItemRow, AlertMailRow, ClientRow, Store

log = logging.getLogger(__name__)

ALERTING = {ConnectionStatus.NEEDS_REAUTH, ConnectionStatus.EXPIRING, ConnectionStatus.ERROR}
FIRST_RETRY_SECONDS = 60.0
LONGEST_RETRY_SECONDS = 3600.0
STOPPED_WHILE_SENDING = (
    "Uncertain: clientlinkd stopped while sending this alert, so it may have arrived; "
    "it is not sent again"
)

WHAT_TO_DO = {
    ConnectionStatus.NEEDS_REAUTH.value: (
        "re-authorise it: in clientlink's Manage Clients press r on its row, or b (Bulk "
        "Actions) to re-authorise many clients after one sign-in"
    ),
    ConnectionStatus.EXPIRING.value: (
        "re-authorise it before it ends: r on its row in Manage Clients, or b (Bulk Actions) "
        "for many at once"
    ),
    ConnectionStatus.ERROR.value: (
        "clientlink keeps retrying; if it goes on, check the software's service status, "
        "then re-authorise it (r on its row in Manage Clients)"
    ),
}


def retry_delay(attempts: int, asked: float = 0.0) -> float:
    """Seconds before the next try after ``attempts`` failed ones: doubling, capped."""
    backoff = FIRST_RETRY_SECONDS * 2 ** max(attempts - 1, 0)
    return min(max(backoff, asked), LONGEST_RETRY_SECONDS)


class AlertMailer:
    """Queues alerts as statuses change and sends each person's digest when it is due."""

    def __init__(
        self,
        store: Store,
        staff: StaffDirectory,
        clock: Clock,
        config: Config,
        email: Callable[[], EmailChannel],
    ) -> None:
        self._store = store
        self._staff = staff
        self._clock = clock
        self._config = config
        # The invitations' channel, read at each send: a new SMTP password replaces it.
        self._email = email
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # The mail being sent now: its clients are read, so newcomers go in the next one.
        self._busy: set[int] = set()

    @property
    def window(self) -> timedelta:
        return timedelta(minutes=self._config.alerts.digest_minutes)

    # ------------------------------------------------------------------ queueing

    async def record(self, client_id: int, status: ConnectionStatus, reason: str | None) -> None:
        """Queue a client's alert for everyone it concerns. Called inside the transaction
        that changed the status, so both are kept or neither is."""
        if not self._config.alerts.email or status not in ALERTING:
            return
        if status.value not in self._config.notifications.kinds:
            return
        client = await self._store.get_client(client_id)
        if client is None or not client.active:
            return
        now = self._clock.now()
        for recipient, login in self._recipients(client):
            await self._store.queue_alert(
                recipient=recipient,
                staff_login=login,
                client_id=client.id,
                status=status.value,
                reason=reason,
                since=client.status_since,
                window=self.window,
                now=now,
                busy=self._busy,
            )
        self._store.after_commit(self._wake.set)

    def _recipients(self, client: ClientRow) -> list[tuple[str, str | None]]:
        """(address, staff login or None for the practice's address), one per address."""
        found: dict[str, tuple[str, str | None]] = {}
        owner = self._staff.member(client.authorised_by) if client.authorised_by else None
        if owner is not None and self._wants_mail(owner.login):
            assert owner.email is not None
            found[owner.email.lower()] = (owner.email, owner.login)
        address = self._config.alerts.address
        if address:
            found.setdefault(address.lower(), (address, None))
        return list(found.values())

    def _wants_mail(self, login: str) -> bool:
        member = self._staff.member(login)
        return (
            member is not None
            and member.active
            and bool(member.email)
            and member.preferences.get("email_alerts", True) is not False
        )

    # ------------------------------------------------------------------ running

    async def start(self) -> None:
        """Mark what a stopped daemon left mid-send uncertain; start the sending loop."""
        for mail in await self._store.alert_mails_in("sending"):
            await self._store.update_alert_mail(
                mail.id, state="uncertain", error=STOPPED_WHILE_SENDING
            )
            log.warning(
                "alert mail %d to %s may have been sent: not resent", mail.id, mail.recipient
            )
        self._task = asyncio.create_task(self._run(), name="alert-mailer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.send_due()
                delay = await self._seconds_to_next()
            except Exception:
                log.exception("sending alert digests failed; trying again in a minute")
                delay = FIRST_RETRY_SECONDS
            waits = [asyncio.ensure_future(self._wake.wait())]
            if delay is not None:
                waits.append(asyncio.ensure_future(self._clock.sleep(delay)))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()

    async def _seconds_to_next(self) -> float | None:
        queued = await self._store.alert_mails_in("queued")
        if not queued:
            return None
        due = min(from_iso(mail.due_at) or self._clock.now() for mail in queued)
        return max((due - self._clock.now()).total_seconds(), 0.0)

    async def send_due(self) -> int:
        """Send every queued mail whose window has ended; returns how many were tried."""
        tried = 0
        for mail in await self._store.alert_mails_in("queued"):
            due = from_iso(mail.due_at)
            if due is not None and due > self._clock.now():
                continue
            tried += 1
            self._busy.add(mail.id)
            try:
                await self._send(mail)
            finally:
                self._busy.discard(mail.id)
        return tried

    # ------------------------------------------------------------------ sending

    async def _send(self, mail: AlertMailRow) -> None:
        live = await self._still_bad(mail)
        if mail.staff_login is not None and not self._wants_mail(mail.staff_login):
            await self._store.update_alert_mail(
                mail.id,
                state="dropped",
                error=f"{mail.staff_login} no longer takes alert emails (opted out, left, "
                "or has no email address)",
            )
            return
        if not live:
            await self._store.update_alert_mail(
                mail.id, state="dropped", error="every client in it recovered before it was due"
            )
            return
        attempts = mail.attempts + 1
        problem = self._email().problem()
        if problem:
            await self._later(mail, attempts, problem)
            return
        subject, body = self.compose(mail, live)
        try:
            message = self._email().compose(OutgoingEmail(mail.recipient, subject, body))
        except ValueError as exc:  # an address no header may hold: nothing can send it
            await self._finish(mail, live, "failed", attempts, error=f"cannot address it: {exc}")
            return

        async def leaving() -> None:
            # Only now can the message leave: what dies after this is uncertain.
            await self._store.update_alert_mail(mail.id, state="sending", attempts=attempts)

        try:
            message_id = await self._email().send(message, leaving=leaving)
        except SendRetry as exc:
            await self._later(mail, attempts, str(exc), exc.after)
            return
        except SendFailed as exc:
            log.warning("alert mail %d to %s refused: %s", mail.id, mail.recipient, exc)
            await self._finish(mail, live, "failed", attempts, error=str(exc))
            return
        except SendUncertain as exc:
            reason = f"Uncertain: {exc}; it may have arrived, so it is not sent again"
            log.warning("alert mail %d to %s: %s", mail.id, mail.recipient, reason)
            await self._finish(mail, live, "uncertain", attempts, error=reason)
            return
        await self._finish(mail, live, "sent", attempts, message_id=message_id)

    async def _later(
        self, mail: AlertMailRow, attempts: int, reason: str, asked: float = 0.0
    ) -> None:
        """Nothing left the machine: keep it queued, try again after a backoff."""
        delay = retry_delay(attempts, asked)
        log.info(
            "alert mail %d to %s: %s; retrying in %.0fs", mail.id, mail.recipient, reason, delay
        )
        await self._store.update_alert_mail(
            mail.id,
            state="queued",
            attempts=attempts,
            error=reason,
            due_at=to_iso(self._clock.now() + timedelta(seconds=delay)),
        )

    async def _finish(
        self,
        mail: AlertMailRow,
        live: list[tuple[AlertItemRow, ClientRow]],
        state: str,
        attempts: int,
        *,
        error: str | None = None,
        message_id: str | None = None,
    ) -> None:
        now = self._clock.now()
        async with self._store.transaction():
            await self._store.update_alert_mail(
                mail.id,
                state=state,
                attempts=attempts,
                error=error,
                message_id=message_id,
                sent_at=to_iso(now) if state != "failed" else None,
            )
            await self._store.add_audit(
                actor="clientlinkd",
                action=f"alert.{state}",
                client_id=None,
                detail={
                    "mail_id": mail.id,
                    "recipient": mail.recipient,
                    "client_ids": [client.id for _, client in live],
                    **({"error": error} if error else {}),
                },
                now=now,
            )

    async def _still_bad(self, mail: AlertMailRow) -> list[tuple[AlertItemRow, ClientRow]]:
        """The mail's clients still in the state it names, in the same episode (not
        recovered and failed again since: that episode has its own alert), and, for a staff
        member's mail, not taken over by a colleague."""
        live: dict[int, tuple[AlertItemRow, ClientRow]] = {}
        for item in await self._store.alert_items(mail.id):
            client = await self._store.get_client(item.client_id)
            if (
                client is None
                or not client.active
                or client.status != item.status
                or client.status_since != item.since
            ):
                continue
            # A failed connection may lose its grant (a disconnected business); one that
            # now rests on a colleague's sign-in is theirs to hear about.
            taken_over = client.authorised_by not in (None, mail.staff_login)
            if mail.staff_login is not None and taken_over:
                continue
            live[client.id] = (item, client)
        return list(live.values())

    def compose(
        self, mail: AlertMailRow, live: list[tuple[AlertItemRow, ClientRow]]
    ) -> tuple[str, str]:
        """The digest's subject and plain-text body: which clients, why, since when, and
        what to do. Client names and reasons come from outside: made visible, one line."""
        count = len(live)
        needs = "needs" if count == 1 else "need"
        subject = f"clientlink: {plural(count, 'client connection')} {needs} attention"
        member = self._staff.member(mail.staff_login) if mail.staff_login else None
        greeting = f"Hello {visible(member.display_name)}," if member else "Hello,"
        whose = "These clients rest on your sign-in" if member else "These clients of the practice"
        lines = [
            greeting,
            "",
            f"{whose} and need attention ({self._config.practice.name}):",
            "",
        ]
        for item, client in sorted(live, key=lambda pair: pair[1].name.lower()):
            label = STATUS_LABELS.get(ConnectionStatus(item.status), item.status)
            lines.append(f"* {visible(client.name)} ({client.provider}): {label}")
            lines.append(f"  since {_when(item.since)}")
            if item.reason:
                lines.append(f"  why: {visible(item.reason)}")
            lines.append(f"  what to do: {WHAT_TO_DO.get(item.status, WHAT_TO_DO['error'])}")
            lines.append("")
        lines.append("Open clientlink (run `clientlink` in a terminal) to see them all.")
        lines.append("")
        if member is not None:
            lines.append(
                "You get this because the connections rest on your sign-in. To stop these "
                "emails: clientlink rpc staff.set_preferences '{\"email_alerts\": false}'"
            )
        else:
            lines.append("This is the practice's alert address ([alerts] address in config.toml).")
        return subject, "\n".join(lines) + "\n"


def _when(iso: str) -> str:
    moment: datetime | None = from_iso(iso)
    return moment.strftime("%d %b %Y %H:%M UTC") if moment else iso
