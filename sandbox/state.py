"""The whole emulated world in one object, shared by the routes, the admin API and tests."""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from starlette.responses import Response

from clientlink.common.abn import abn_digits, abn_is_valid
from clientlink.sandbox.accounts import (
    SandboxApp,
    StaffUser,
    default_apps,
    default_bgl_apps,
    default_myob_apps,
    default_quickbooks_apps,
    default_users,
)
from clientlink.sandbox.basiq import BasiqProvider
from clientlink.sandbox.bgl import BglProvider
from clientlink.sandbox.callbacks import CallbackSender
from clientlink.sandbox.classsuper import ClassProvider, default_businesses, default_class_apps
from clientlink.sandbox.clock import SandboxClock
from clientlink.sandbox.faults import FaultInjector, error_response
from clientlink.sandbox.mail import MailOutbox
from clientlink.sandbox.myob import MyobProvider
from clientlink.sandbox.oauth import Grant, OAuthProvider
from clientlink.sandbox.quickbooks import QuickBooksProvider
from clientlink.sandbox.ratelimit import RateLimiter
from clientlink.sandbox.seed import (
    DEFAULT_ORG_COUNT,
    DEFAULT_SEED,
    SeedOrg,
    generate_orgs,
)
from clientlink.sandbox.sms import SmsGateway
from clientlink.sandbox.smsf_seed import DEFAULT_ENTITY_COUNT, SmsfBusiness, firm_entities
from clientlink.sandbox.xero import XeroProvider

# Endpoint kinds counted by GET /_sandbox/stats (always listed, even at zero).
STAT_KINDS = (
    "authorize",
    "token.authorization_code",
    "token.refresh_token",
    "revocation",
    "connections",
    "organisation",
    "quickbooks.authorize",
    "quickbooks.token.authorization_code",
    "quickbooks.token.refresh_token",
    "quickbooks.revocation",
    "quickbooks.companyinfo",
    "bgl.authorize",
    "bgl.token.authorization_code",
    "bgl.token.refresh_token",
    "bgl.fund_list",
    "bgl.fund",
    "myob.authorize",
    "myob.token.authorization_code",
    "myob.token.refresh_token",
    "myob.company",
    "class.authorize",
    "class.token.authorization_code",
    "class.token.refresh_token",
    "class.revocation",
    "class.fund-list",
    "class.fund-detail",
)

ProcessCall = Callable[[], Awaitable[Response]]


def _merge_apps(defaults: list[SandboxApp], extra: list[SandboxApp]) -> list[SandboxApp]:
    # Constructor apps override defaults with the same client_id.
    return list({app.client_id: app for app in [*defaults, *extra]}.values())


@dataclass
class SmtpEndpoint:
    """Where the SMTP server listens, once `SandboxServer` started it."""

    host: str
    port: int
    certificate_pem: str | None


# The parts of the world a snapshot copies. `mail`, `faults` and `calls` are restored in place:
# the SMTP server holds them.
_SNAPSHOT_REPLACED = (
    "orgs",
    "xero",
    "quickbooks",
    "bgl",
    "myob",
    "limits",
    "api_latency_seconds",
    "rate_limited",
    "sms",
    "basiq",
    "class_businesses",
    "classsuper",
)
_SNAPSHOT_IN_PLACE = ("mail", "faults")
# Stand-ins for what a snapshot shares with the state it is restored into, not copies:
# the clock (its reading is kept apart) and the callback sender (it owns a connection).
_CLOCK = object()
_CALLBACKS = object()


@dataclass(frozen=True)
class SandboxSnapshot:
    """A deep copy of the world at one moment, see :meth:`SandboxState.snapshot`."""

    world: dict[str, Any]
    calls: Counter[str]
    callbacks_delivered: list[Any]
    clock_now: datetime


class SandboxState:
    """Clock, seed data, the Xero- and QuickBooks-like providers, the SMTP outbox, the SMS
    gateway, the bank-feed provider, faults, limits and stats."""

    def __init__(
        self,
        *,
        org_count: int = DEFAULT_ORG_COUNT,
        seed: int = DEFAULT_SEED,
        clock: SandboxClock | None = None,
        enforce_limits: bool = True,
        apps: Iterable[SandboxApp] = (),
        quickbooks_apps: Iterable[SandboxApp] = (),
        users: Iterable[StaffUser] | None = None,
        smsf_entity_count: int = DEFAULT_ENTITY_COUNT,
    ) -> None:
        self.org_count = org_count
        self.seed = seed
        self.clock = clock or SandboxClock()
        self._extra_apps = list(apps)
        self._extra_quickbooks_apps = list(quickbooks_apps)
        self._users = list(users) if users is not None else None
        self.faults = FaultInjector(seed)
        self.limits = RateLimiter(self.clock, enforce=enforce_limits)
        # Extra seconds every admitted API call takes while holding its concurrency slot,
        # so the concurrency limits can be reached on a fast machine.
        self.api_latency_seconds = 0.0
        self.calls: Counter[str] = Counter()
        self.rate_limited = 0
        self.orgs = generate_orgs(org_count, seed)
        # The SMSF firm BGL holds: its own funds and entities (sandbox/smsf_seed.py).
        self.smsf_firm: SmsfBusiness = firm_entities(smsf_entity_count)
        self.xero, self.quickbooks = self._new_providers()
        self.bgl = self._new_bgl()
        self.myob = self._new_myob()
        # Class Super: the practice's Class businesses and their funds (SMSF software).
        self.class_businesses = default_businesses()
        self.classsuper = self._new_class()
        self.callbacks = CallbackSender(self.clock)
        self.mail = MailOutbox(self.clock)
        self.sms = SmsGateway(self.clock, self.callbacks)
        self.basiq = BasiqProvider(self.clock, self.callbacks)
        self.smtp: SmtpEndpoint | None = None

    def _new_providers(self) -> tuple[XeroProvider, QuickBooksProvider]:
        # Both providers see the same practice: the same staff and the same businesses.
        users = self._users if self._users is not None else default_users()
        xero_apps = _merge_apps(default_apps(), self._extra_apps)
        qbo_apps = _merge_apps(default_quickbooks_apps(), self._extra_quickbooks_apps)
        return (
            XeroProvider(self.clock, self.orgs, xero_apps, users),
            QuickBooksProvider(self.clock, self.orgs, qbo_apps, users),
        )

    def _new_bgl(self) -> BglProvider:
        users = self._users if self._users is not None else default_users()
        return BglProvider(self.clock, self.smsf_firm, default_bgl_apps(), users)

    def _new_myob(self) -> MyobProvider:
        users = self._users if self._users is not None else default_users()
        return MyobProvider(self.clock, self.orgs, default_myob_apps(), users)

    def _new_class(self) -> ClassProvider:
        users = self._users if self._users is not None else default_users()
        return ClassProvider(self.clock, self.class_businesses, default_class_apps(), users)

    @property
    def providers(self) -> tuple[OAuthProvider, ...]:
        """Every emulated provider, Xero first."""
        return (self.xero, self.quickbooks, self.bgl, self.myob, self.classsuper)

    def rename_org(self, tenant_id: str, name: str, legal_name: str | None = None) -> SeedOrg:
        """As if the business renamed itself in its own file: every provider sees the new name.

        Names are the business's own, so they may hold anything (tests use escape sequences).
        """
        return self.change_org(
            tenant_id, name=name, legal_name=name if legal_name is None else legal_name
        )

    def change_org(self, tenant_id: str, **changes: str) -> SeedOrg:
        """As if the business edited its details (name, legal_name, abn, email,
        organisation_type) in its own file: every provider sees them. KeyError for an
        unknown organisation; ValueError for an ABN whose checksum fails."""
        index = next((i for i, org in enumerate(self.orgs) if org.tenant_id == tenant_id), None)
        if index is None:
            raise KeyError(tenant_id)
        if "abn" in changes and not abn_is_valid(changes["abn"]):
            raise ValueError(f"{changes['abn']!r} is not a valid ABN (checksum)")
        if "abn" in changes:
            changes["abn"] = abn_digits(changes["abn"])
        changed = replace(self.orgs[index], **changes)
        self.orgs[index] = changed
        for provider in self.providers:
            if tenant_id in provider.orgs:  # BGL and Class hold SMSF entities, not these
                provider.orgs[tenant_id] = changed
        return changed

    def find_grant(self, grant_id: str) -> tuple[OAuthProvider, Grant] | None:
        """The provider holding `grant_id` and the grant, or None if no provider has it."""
        for provider in self.providers:
            if grant_id in provider.grants:
                return provider, provider.grants[grant_id]
        return None

    def reset(self) -> None:
        """Forget every grant, token, connection, fault, counter, and go back to real time."""
        self.clock.reset()
        self.faults.clear()
        self.limits.reset()
        self.api_latency_seconds = 0.0
        self.calls.clear()
        self.rate_limited = 0
        self.xero, self.quickbooks = self._new_providers()
        self.bgl = self._new_bgl()
        self.myob = self._new_myob()
        self.classsuper = self._new_class()
        self.mail.clear()
        self.sms.clear()
        self.basiq.reset()
        self.callbacks.clear()

    def snapshot(self) -> SandboxSnapshot:
        """A deep copy of every grant, token, connection, message, fault, limit and counter,
        with the clock's reading; :meth:`restore` brings it back, here or in another state
        (tests build one world and give each test its own copy of it)."""
        memo: dict[int, Any] = {id(self.clock): _CLOCK, id(self.callbacks): _CALLBACKS}
        names = (*_SNAPSHOT_REPLACED, *_SNAPSHOT_IN_PLACE)
        world = copy.deepcopy({name: getattr(self, name) for name in names}, memo)
        delivered = copy.deepcopy(self.callbacks.deliveries)
        return SandboxSnapshot(world, Counter(self.calls), delivered, self.clock.now())

    def restore(self, snapshot: SandboxSnapshot) -> None:
        """Make this world a copy of ``snapshot`` (which stays usable for further restores).

        The clock resumes at the snapshot's moment, so tokens are as old as they were then.
        Callbacks this state had already queued still go out (as after :meth:`reset`).
        """
        memo: dict[int, Any] = {id(_CLOCK): self.clock, id(_CALLBACKS): self.callbacks}
        world = copy.deepcopy(snapshot.world, memo)
        for name in _SNAPSHOT_REPLACED:
            setattr(self, name, world[name])
        # Webhook links name the server the bank-feed API was first asked on: a snapshot taken
        # in another server learns this one's address from its first request, as a new one does.
        self.basiq.api_base = ""
        for name in _SNAPSHOT_IN_PLACE:
            vars(getattr(self, name)).clear()
            vars(getattr(self, name)).update(vars(world[name]))
        self.calls.clear()
        self.calls.update(snapshot.calls)
        self.callbacks.deliveries[:] = copy.deepcopy(snapshot.callbacks_delivered)
        self.clock.set(snapshot.clock_now)

    def tick(self) -> None:
        """Bring time-driven state (SMS delivery) up to the sandbox clock's now."""
        self.sms.tick()

    def stats_json(self) -> dict[str, object]:
        """Call counts by endpoint kind, 429s served and peak concurrency per tenant or realm."""
        return {
            "calls": {kind: self.calls.get(kind, 0) for kind in STAT_KINDS}
            | {k: v for k, v in self.calls.items() if k not in STAT_KINDS},
            "rate_limited": self.rate_limited,
            "max_concurrency": dict(self.limits.max_concurrency),
        }

    async def with_faults(self, target: str, provider: str, process: ProcessCall) -> Response:
        """Run one call to `provider`'s `target` under the fault rules.

        An error rule answers instead of processing (so a faulted call consumes no code or
        token); `delay` sleeps before processing; `hang_after` processes, then holds the answer.
        """
        rule = self.faults.pick(target, provider)
        if rule is not None and rule.kind == "delay":
            await asyncio.sleep(rule.delay_seconds)
        elif rule is not None and rule.kind != "hang_after":
            response = error_response(rule, provider)
            if response.status_code == 429:
                self.rate_limited += 1
            return response
        response = await process()
        if rule is not None and rule.kind == "hang_after":
            await asyncio.sleep(rule.delay_seconds)
        return response

    async def serve_admitted(
        self, client_id: str, company_id: str | None, handler: ProcessCall
    ) -> Response:
        """Run an API call the limiter admitted, then give back its concurrency slot."""
        try:
            if self.api_latency_seconds > 0:
                await asyncio.sleep(self.api_latency_seconds)
            return await handler()
        finally:
            if company_id is not None:
                self.limits.release(client_id, company_id)
