"""Invitations: a personal bank-connection link sent by email or SMS, then followed up.

Sending is a job item, and each (invitation, channel) is sent at most once: the
invitation is recorded as ``queued`` with its sealed link while it waits for the pace and
a connection, becomes ``sending`` (committed) only when its bytes are about to leave (the
mail server accepted MAIL and RCPT and DATA is next, the SMS request is about to be
made; a reused SMTP connection that broke before that is replaced, not uncertain), and is
marked ``sent`` together with the item's outcome after. A daemon that dies in between finds the
``sending`` record at its next start and marks the invitation ``uncertain`` — shown to the
person, never resent silently. A ``queued`` one never left: it is sent after the restart,
with the same link.

The bank-feed service (Basiq) has no way to find a user again and no idempotency key: the
user id is committed on the client's row before any link is made, one client's user is
created by one task at a time, and a creation whose answer was lost is told to the person.

The follow-up asks the SMS service whether a message was delivered and the bank-feed
service whether the link was opened and which banks were connected; an invitation moves
sent → delivered → opened → bank connected, and a client who has not acted after
``reminder_days`` is reminded once with the same link.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from datetime import datetime, timedelta
from typing import Any

from clientlink.common import protocol as p
from clientlink.common.config import Config
from clientlink.common.protocol import (
    BankConnectionChanged,
    Channel,
    ErrorCode,
    InvitationChanged,
    JobKind,
)
from clientlink.common.timeutil import from_iso, to_iso
from clientlink.daemon.banks import BankFeeds, BanksUnavailable
from clientlink.daemon.channels import (
    EmailChannel,
    OutgoingEmail,
    SendFailed,
    SendRetry,
    SendUncertain,
    SmsChannel,
)
from clientlink.daemon.clock import Clock
from clientlink.daemon.contacts import is_mobile
from clientlink.daemon.events import EventBus
from clientlink.daemon.jobs import Finish, ItemFailed, ItemRetry, JobEngine
from clientlink.daemon.limits import LimitSpec, ProviderLimits, RateLimiter
from clientlink.daemon.rpc_errors import RpcFailure
from clientlink.daemon.store import (
    ClientRow,
    InvitationRow,
    JobItemRow,
    JobRow,
    Store,
    add_audit_sync,
    add_history_sync,
    bank_user_state_sync,
    set_bank_user_sync,
    set_meta_sync,
    update_invitation_sync,
)
from clientlink.daemon.templates import (
    DEFAULT_LINK_LENGTH,
    Template,
    TemplateBook,
    example_link,
    placeholder_values,
    render_text,
    sms_segments,
)
from clientlink.daemon.vault import Vault

log = logging.getLogger(__name__)

OPEN_STATES = ("sent", "delivered", "opened")
UNCERTAIN = "uncertain"
QUEUED = "queued"
"""Recorded, link made, waiting for the pace or a connection: nothing has left yet."""
LINK_LENGTH_META = "invite_link_length"
"""The length of the last link the bank-feed service made: what segment counts assume."""
LINK_VALID = timedelta(days=7)
"""How long a bank-feed link works (Basiq's rule): for previews of {link_expires}."""


def address_for(client: ClientRow, channel: str) -> str | None:
    """Where an invitation on ``channel`` goes."""
    return client.email if channel == "email" else client.phone


def reach_problem(client: ClientRow, channel: str) -> str | None:
    """Why an invitation on ``channel`` cannot reach ``client`` (short), or None.

    The one rule for the send, the single invite and the bulk preview's skipped list."""
    if not client.active:
        return "deactivated"
    address = address_for(client, channel)
    if not address:
        return "no email address" if channel == "email" else "no mobile number"
    if channel == "sms" and not is_mobile(address):
        return f"{address} is not a mobile number"
    return None


class InviteJob:
    """Send one invitation per client with a fresh consent link for the chosen banks."""

    concurrency = 8  # link creation is I/O; the email pool bounds SMTP connections

    def __init__(self, invitations: Invitations) -> None:
        self._invitations = invitations

    async def run(self, job: JobRow, item: JobItemRow, finish: Finish) -> None:
        await self._invitations.send_item(job, item, finish)

    async def recover(self, job: JobRow, item: JobItemRow) -> str:
        return await self._invitations.recover_item(item)

    async def finished(self, job: JobRow) -> None:
        return None


class Invitations:
    """Everything about invitations: sending, recovering, following up, reminding."""

    def __init__(
        self,
        store: Store,
        vault: Vault,
        events: EventBus,
        clock: Clock,
        config: Config,
        email: EmailChannel,
        sms: SmsChannel,
        banks: BankFeeds,
        templates: TemplateBook,
        jobs: JobEngine,
    ) -> None:
        self._store = store
        self._vault = vault
        self._link_length_seen: int | None = None
        self._events = events
        self._clock = clock
        self._config = config
        self.email = email
        self.sms = sms
        self.banks = banks
        self._templates = templates
        self._pace = {
            "email": RateLimiter(
                ProviderLimits(app=LimitSpec(per_minute=config.email.per_minute)), clock
            ),
            "sms": RateLimiter(
                ProviderLimits(app=LimitSpec(per_minute=config.sms.per_minute)), clock
            ),
        }
        self.jobs = jobs
        self._follow_up: asyncio.Task[None] | None = None
        self._bank_user_locks: dict[int, asyncio.Lock] = {}

    # ------------------------------------------------------------------ sending

    def channel_problem(self, channel: str) -> str | None:
        sender = self.email if channel == "email" else self.sms
        return sender.problem() or self.banks.problem()

    async def check_job_params(
        self, channel: Channel | None, template_id: str | None, bank_ids: list[str]
    ) -> dict[str, Any]:
        """Check an invitation's channel, template and banks before any job is recorded;
        the job's params."""
        if channel is None:
            raise RpcFailure(ErrorCode.INVALID_PARAMS, "an invitation needs a channel")
        problem = self.channel_problem(channel.value)
        if problem:
            raise RpcFailure(ErrorCode.PROVIDER_NOT_CONFIGURED, problem)
        template = await self._templates.get(template_id or f"default-{channel.value}")
        if template.channel != channel.value:
            raise RpcFailure(
                ErrorCode.INVALID_PARAMS,
                f"template {template.name!r} is for {template.channel}, not {channel.value}",
            )
        try:
            await self.banks.bank_names(bank_ids)
        except BanksUnavailable as exc:
            raise RpcFailure(ErrorCode.INVALID_PARAMS, str(exc)) from exc
        return {"channel": channel.value, "template_id": template.id, "bank_ids": bank_ids}

    async def send_item(self, job: JobRow, item: JobItemRow, finish: Finish) -> None:
        """Send one item's invitation. Its trips to the database are few and shared with
        the other items' (the store's group commit): one read of where it starts from, the
        bank-feed user's two commits when the client has none yet, the record before the
        send, the ``sending`` mark, and the sent record with the item's outcome."""
        params = job.params
        channel = params["channel"]
        client = item.client  # read with the claim
        if client is None:
            raise ItemFailed("the client no longer exists")
        problem = self.channel_problem(channel)
        if problem:
            raise ItemFailed(problem)
        problem = reach_problem(client, channel)
        if problem:
            raise ItemFailed(
                f"{client.name}: {problem}"
                + ("" if problem == "deactivated" else ": correct it in the client's details")
            )
        address = address_for(client, channel) or ""
        template: Template = await self._templates.get(params["template_id"])
        reminder_of = params.get("reminder_of")
        queued, user_id = await self._store.invitation_start(item.id, client.id)
        try:
            reused = await self._queued_link(queued, user_id) if queued is not None else None
            if reused is not None:
                link, expires, bank_ids = reused
            elif reminder_of:
                link, expires, bank_ids = await self._reuse_link(reminder_of)
            else:
                bank_ids = list(params.get("bank_ids") or [])
                user_id = user_id or await self._bank_user(client)
                link, expires = await self.banks.create_link(
                    user_id, bank_ids, self._config.practice.name
                )
                await self._remember_link_length(len(link))
            bank_names = await self.banks.bank_names(bank_ids)
        except BanksUnavailable as exc:
            raise ItemRetry(str(exc)) from exc
        values = placeholder_values(
            client.name, self._config.practice.name, bank_names, link, expires
        )
        body = render_text(template.body, values)
        subject = render_text(template.subject or "", values, one_line=True)
        if reminder_of:
            subject = f"Reminder: {subject}"
        now = self._clock.now()
        fields: dict[str, Any] = {
            "bank_ids": _json(bank_ids),
            "link_sealed": self._seal(link, client.id),
            "link_expires_at": to_iso(expires),
            "state": QUEUED,
            "error": None,
        }
        if queued is not None:
            invitation_id = queued.id
            await self._store.update_invitation(invitation_id, **fields)
        else:
            invitation_id = await self._store.add_invitation(
                client_id=client.id,
                job_item_id=item.id,
                channel=channel,
                template_id=template.id,
                actor=job.actor,
                reminder_of=reminder_of,
                created_at=to_iso(now),
                **fields,
            )

        async def leaving() -> None:
            # Only now can the message leave: what dies after this is uncertain.
            await self._store.update_invitation(invitation_id, state="sending")

        try:
            async with self._pace[channel].slot(None):
                if channel == "email":
                    mail = self.email.compose(OutgoingEmail(address, subject, body))
                    reference = await self.email.send(mail, leaving=leaving)
                else:
                    reference = await self.sms.send(address, body, leaving=leaving)
        except SendRetry as exc:
            # Nothing left the machine: queued again, the same link is used next time.
            await self._store.update_invitation(invitation_id, state=QUEUED)
            raise ItemRetry(str(exc), after=exc.after) from exc
        except SendFailed as exc:
            await self._store.update_invitation(invitation_id, state="failed", error=str(exc))
            self._announce(invitation_id, client, "failed")
            raise ItemFailed(str(exc)) from exc
        except SendUncertain as exc:
            reason = f"Uncertain: {exc}; check with the client before sending again"
            await self._store.update_invitation(invitation_id, state=UNCERTAIN, error=reason)
            self._announce(invitation_id, client, UNCERTAIN)
            raise ItemFailed(reason) from exc
        at = to_iso(self._clock.now())
        sent = {"state": "sent", "provider_ref": reference, "sent_at": at}
        audit = {"invitation_id": invitation_id, "channel": channel, "banks": bank_ids}
        outcome = finish.statements({"invitation_id": invitation_id})

        def record(conn: sqlite3.Connection) -> None:
            update_invitation_sync(conn, invitation_id, sent)
            if reminder_of:
                update_invitation_sync(conn, reminder_of, {"reminded_at": at})
            add_audit_sync(
                conn,
                actor=job.actor,
                action="invitation.sent",
                client_id=client.id,
                detail=audit,
                at=at,
            )
            outcome(conn)

        await self._store.commit_unit(record)
        self._announce(invitation_id, client, "sent")

    async def recover_item(self, item: JobItemRow) -> str:
        invitation = await self._store.invitation_for_item(item.id)
        if invitation is None or invitation.state == QUEUED:
            return "redo"  # nothing left the machine; a queued one keeps its link
        if invitation.state == "sending":
            await self._store.update_invitation(
                invitation.id,
                state=UNCERTAIN,
                error="Uncertain: clientlinkd stopped while sending; check with the client "
                "before sending again",
            )
            return "uncertain"
        return "redo"

    async def _queued_link(
        self, invitation: InvitationRow, user_id: str | None
    ) -> tuple[str, datetime, list[str]] | None:
        """The link of this item's queued invitation, while it is still the client's
        current, unexpired link (a redone item sends the link it made, not a new one)."""
        if invitation.state != QUEUED or not invitation.link_sealed:
            return None
        expires = from_iso(invitation.link_expires_at)
        if expires is None or expires <= self._clock.now():
            return None
        link = self._vault.decrypt(
            invitation.link_sealed, f"invite-link:{invitation.client_id}"
        ).decode()
        if user_id is None:
            return None
        current = await self.banks.link_state(user_id)
        if not current or current.get("url") != link or current.get("used"):
            return None  # a newer link replaced it (only the latest works) or it was used
        return link, expires, list(invitation.bank_ids)

    async def _remember_link_length(self, length: int) -> None:
        """Keep the length of the links the bank-feed service makes (what SMS segment counts
        assume); written only when it changes, so a bulk send does not write it per item."""
        if length == self._link_length_seen:
            return
        if await self._store.get_meta(LINK_LENGTH_META) != str(length):
            await self._store.set_meta(LINK_LENGTH_META, str(length))
        self._link_length_seen = length

    async def link_length(self) -> tuple[int, bool]:
        """(length, measured): the last real link's length, or the default before any."""
        stored = await self._store.get_meta(LINK_LENGTH_META)
        if stored and stored.isdigit():
            return int(stored), True
        return DEFAULT_LINK_LENGTH, False

    async def example_values(
        self, client_name: str, bank_names: list[str]
    ) -> tuple[dict[str, str], int, bool]:
        """Placeholder values as a real send would fill them, with a link of real length."""
        length, measured = await self.link_length()
        values = placeholder_values(
            client_name,
            self._config.practice.name,
            bank_names,
            example_link(length),
            self._clock.now() + LINK_VALID,
        )
        return values, length, measured

    async def preview(
        self,
        client_ids: list[int],
        template_id: str,
        bank_ids: list[str],
        sample_client_id: int | None,
    ) -> p.InvitesPreviewResult:
        """What a bulk invitation would send, before anything is: who gets it on the
        template's channel, who is skipped and why, one client's message as it arrives, and
        for SMS each message's segments (the same rule and the same link length as the send)."""
        template = await self._templates.get(template_id)
        try:
            bank_names = await self.banks.bank_names(bank_ids)
        except BanksUnavailable as exc:
            raise RpcFailure(ErrorCode.INVALID_PARAMS, str(exc)) from exc
        channel = template.channel
        reachable = {each.value: 0 for each in Channel}
        sending: list[ClientRow] = []
        skipped: list[p.InviteSkip] = []
        for client_id in dict.fromkeys(client_ids):
            client = await self._store.get_client(client_id)
            if client is None:
                skipped.append(p.InviteSkip(client_id=client_id, name="", reason="no such client"))
                continue
            for each in Channel:
                reachable[each.value] += reach_problem(client, each.value) is None
            problem = reach_problem(client, channel)
            if problem:
                skipped.append(p.InviteSkip(client_id=client.id, name=client.name, reason=problem))
            else:
                sending.append(client)
        sample_id = (
            sample_client_id
            if any(client.id == sample_client_id for client in sending)
            else (sending[0].id if sending else None)
        )
        values, length, measured = await self.example_values("", bank_names)
        segments: list[int] = []
        encodings: set[str] = set()
        sample: p.InviteSample | None = None
        for client in sending:
            values["client_name"] = client.name
            body = render_text(template.body, values)
            count: int | None = None
            if channel == "sms":
                encoding, count = sms_segments(body)
                encodings.add(encoding)
                segments.append(count)
            if client.id == sample_id:
                subject = (
                    render_text(template.subject, values, one_line=True)
                    if template.subject
                    else None
                )
                sample = p.InviteSample(
                    client_id=client.id,
                    name=client.name,
                    address=address_for(client, channel) or "",
                    subject=subject,
                    body=body,
                    sms_segments=count,
                )
        return p.InvitesPreviewResult(
            channel=Channel(channel),
            template_name=template.name,
            reachable=reachable,
            sending=[client.id for client in sending],
            skipped=skipped,
            sample=sample,
            problem=self.channel_problem(channel),
            sms_encoding=" or ".join(sorted(encodings)) or None,
            sms_segments=segments,
            link_length=length,
            link_length_measured=measured,
        )

    async def _bank_user(self, client: ClientRow) -> str:
        """The client's bank-feed user, created once.

        Basiq does not look for existing users and honours no idempotency key, so the id
        is committed on the client's row as soon as it is known, and one task at a time
        creates a client's user. A creation whose answer never arrived may have left a
        user behind at Basiq that nobody can find through the API: that is recorded
        before the next attempt so the person can delete the spare one. Looking for the
        user, that record and the marker of this attempt are one commit.
        """
        client_id = client.id
        lock = self._bank_user_locks.setdefault(client_id, asyncio.Lock())
        marker = _user_marker(client_id)
        unsure_reason = (
            "an earlier request to create this client's bank-feed user got no "
            "answer; if the bank-feed dashboard lists two users for "
            f"{client.email or client.phone}, delete the one without connections"
        )
        async with lock:
            now = to_iso(self._clock.now())

            def about_to_create(conn: sqlite3.Connection) -> str | None:
                user_id, unsure = bank_user_state_sync(conn, client_id, marker)
                if user_id is not None:  # another task made it while this one waited
                    return user_id
                if unsure:
                    add_history_sync(conn, client_id, "bank_user_unsure", now, reason=unsure_reason)
                set_meta_sync(conn, marker, now or "")
                return None

            known = await self._store.commit_unit(about_to_create)
            if known is not None:
                return known
            user_id = await self.banks.create_user(client.email, client.phone, client.name)

            def created(conn: sqlite3.Connection) -> None:
                set_bank_user_sync(conn, client_id, user_id)
                set_meta_sync(conn, marker, "")

            await self._store.commit_unit(created)
            return user_id

    async def _reuse_link(self, invitation_id: int) -> tuple[str, datetime, list[str]]:
        original = await self._store.get_invitation(invitation_id)
        if original is None or not original.link_sealed:
            raise ItemFailed("the invitation to remind about is gone")
        expires = from_iso(original.link_expires_at)
        assert expires is not None
        if expires <= self._clock.now():
            raise ItemFailed("the link has expired: send a new invitation instead")
        link = self._vault.decrypt(
            original.link_sealed, f"invite-link:{original.client_id}"
        ).decode()
        return link, expires, original.bank_ids

    def _seal(self, link: str, client_id: int) -> bytes:
        # A consent link is a bearer credential for the client's banks: never stored bare.
        return self._vault.encrypt(link.encode(), f"invite-link:{client_id}")

    def _announce(self, invitation_id: int, client: ClientRow, state: str) -> None:
        self._events.publish(
            InvitationChanged(
                invitation_id=invitation_id,
                client_id=client.id,
                name=client.name,
                state=state,
            )
        )

    # ------------------------------------------------------------------ following up

    def start(self) -> None:
        self._follow_up = asyncio.create_task(self._follow_up_loop(), name="invite-follow-up")

    async def stop(self) -> None:
        if self._follow_up is not None:
            self._follow_up.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follow_up
        await self.email.close()
        await self.banks.close()

    async def _follow_up_loop(self) -> None:
        while True:
            await asyncio.sleep(self._config.invites.poll_seconds)
            if self.jobs.is_running(JobKind.INVITE):
                # The sending comes first: a round asks the bank-feed service about every
                # open invitation (two calls each), and thousands of them would take the
                # job's share of the machine. The next round after the job catches up.
                continue
            try:
                await self.follow_up()
            except Exception:
                log.exception("following up invitations failed")

    async def follow_up(self) -> dict[str, int]:
        """Learn what happened to open invitations; remind the ones due. Returns counts."""
        counts = {"checked": 0, "changed": 0, "reminded": 0}
        for invitation in await self._store.list_invitations(None, OPEN_STATES, 10_000):
            counts["checked"] += 1
            if await self._follow_one(invitation):
                counts["changed"] += 1
        counts["reminded"] = await self._remind_due()
        counts["changed"] += await self._watch_bank_connections()
        return counts

    async def _watch_bank_connections(self) -> int:
        """Every invited client's bank connections: a broken one needs a reconnect."""
        changed = 0
        for client_id, user_id in await self._store.bank_users():
            try:
                connections = await self.banks.connections(user_id)
            except BanksUnavailable as exc:
                log.info("bank connections not checked: %s", exc)
                return changed
            for connection in connections:
                changed += await self._record_connection(client_id, connection)
        return changed

    async def _record_connection(self, client_id: int, connection: dict[str, Any]) -> int:
        institution = connection["institution"]["id"]
        previous = await self._store.set_bank_connection(
            connection["id"], client_id, institution, connection["status"], self._clock.now()
        )
        if previous == connection["status"]:
            return 0
        client = await self._store.get_client(client_id)
        broken = connection["status"] == "invalid"
        self._events.publish(
            BankConnectionChanged(
                client_id=client_id,
                name=client.name if client else "",
                connection_id=connection["id"],
                institution_id=institution,
                status=connection["status"],
                needs_reconnect=broken,
            )
        )
        if broken and client is not None:
            await self._store.add_history(
                client_id,
                "bank_broken",
                self._clock.now(),
                reason=f"the bank connection to {institution} broke: invite the client to "
                "reconnect it",
            )
        return 1

    async def _follow_one(self, invitation: InvitationRow) -> bool:
        now = self._clock.now()
        changes: dict[str, Any] = {}
        if invitation.channel == "sms" and invitation.state == "sent" and not self.sms.problem():
            with contextlib.suppress(Exception):
                status = await self.sms.status(invitation.provider_ref)
                if status == "delivered":
                    changes.update(state="delivered", delivered_at=to_iso(now))
                elif status in ("undelivered", "failed"):
                    changes.update(state="failed", error=f"the SMS was {status}")
        user_id = await self._store.bank_user(invitation.client_id)
        if user_id and not changes.get("state") == "failed":
            try:
                link = await self.banks.link_state(user_id)
                connections = await self.banks.connections(user_id)
            except BanksUnavailable as exc:
                log.info("bank-feed follow-up skipped: %s", exc)
                return False
            for connection in connections:
                await self._record_connection(invitation.client_id, connection)
            if link.get("opened") and not invitation.opened_at:
                changes.update(state="opened", opened_at=link.get("openedAt") or to_iso(now))
            wanted = set(invitation.bank_ids)
            active = {c["institution"]["id"] for c in connections if c["status"] == "active"}
            if wanted and wanted <= active:
                changes.update(state="connected", connected_at=to_iso(now))
        if not changes or changes.get("state") == invitation.state:
            return False
        await self._store.update_invitation(invitation.id, **changes)
        client = await self._store.get_client(invitation.client_id)
        if client is not None:
            self._announce(invitation.id, client, changes["state"])
            if changes["state"] == "connected":
                await self._store.add_audit(
                    actor="clientlinkd",
                    action="invitation.bank_connected",
                    client_id=client.id,
                    detail={"invitation_id": invitation.id, "banks": invitation.bank_ids},
                    now=now,
                )
        return True

    async def _remind_due(self) -> int:
        days = self._config.invites.reminder_days
        if not days:
            return 0
        due = self._clock.now() - timedelta(days=days)
        reminded = 0
        for invitation in await self._store.list_invitations(None, ("sent", "delivered"), 10_000):
            sent = from_iso(invitation.sent_at)
            expires = from_iso(invitation.link_expires_at)
            if (
                invitation.reminder_of is None
                and invitation.reminded_at is None
                and sent is not None
                and sent <= due
                and expires is not None
                and expires > self._clock.now()
            ):
                # Recorded first, so a crash cannot turn into a second reminder.
                await self._store.update_invitation(
                    invitation.id, reminded_at=to_iso(self._clock.now())
                )
                await self.jobs.submit(
                    JobKind.INVITE,
                    [invitation.client_id],
                    {
                        "channel": invitation.channel,
                        "template_id": invitation.template_id,
                        "reminder_of": invitation.id,
                    },
                    "clientlinkd (reminder)",
                )
                reminded += 1
        return reminded


def _user_marker(client_id: int) -> str:
    """The meta key set while a client's bank-feed user is being created."""
    return f"bank_user_pending:{client_id}"


def _json(value: Any) -> str:
    import json

    return json.dumps(value)
