"""A re-authorisation across provider businesses: one job, one sign-in per business.

Where one authorisation covers one provider business (Class Super: scope
``target:b/<code>``), re-authorising funds of three businesses takes three sign-ins. The job
is recorded whole before any of them: an item for every chosen fund, grouped business by
business (positions ``first`` to ``first + funds``), and the businesses in order in the
job's params, each with the grant of its sign-in once that completed::

    {"provider": "class", "sign_ins": [
        {"business": "ACME01", "first": 0, "funds": 80, "grant_id": 12, "skipped": false},
        {"business": "ACME02", "first": 80, "funds": 80, "grant_id": null, "skipped": false},
        ...]}

Sign-ins are taken in that order. The engine runs the items of the businesses before the
first one without a sign-in (``claim_limit``) and waits there (``next_step``); a skipped
business's items fail with the reason. The params are the job's own row, so a restarted
daemon knows which sign-ins it holds and which it still waits for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from clientlink.common.protocol import JobSignIn, SignInState, SignInWait
from clientlink.daemon.store import ClientRow


@dataclass(frozen=True)
class SignInStep:
    """One business of the job: where its items are, and its sign-in once there is one."""

    business: str
    first: int
    funds: int
    grant_id: int | None = None
    skipped: bool = False

    @property
    def end(self) -> int:
        return self.first + self.funds

    @property
    def resolved(self) -> bool:
        return self.grant_id is not None or self.skipped

    @property
    def state(self) -> SignInState:
        if self.skipped:
            return SignInState.SKIPPED
        return SignInState.PENDING if self.grant_id is None else SignInState.SIGNED_IN


@dataclass(frozen=True)
class SignInPlan:
    """The businesses of a job in the order they are signed in to."""

    provider: str
    steps: tuple[SignInStep, ...]

    @classmethod
    def of(cls, params: Mapping[str, Any]) -> SignInPlan | None:
        """The plan a job's params hold, or None for a job with one sign-in (or none)."""
        steps = params.get("sign_ins")
        if not steps:
            return None
        return cls(str(params["provider"]), tuple(SignInStep(**step) for step in steps))

    def as_params(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "sign_ins": [dataclasses.asdict(step) for step in self.steps],
        }

    def next_step(self) -> tuple[int, SignInStep] | None:
        """The first business without a sign-in (nor skipped), with its index from 0."""
        for index, step in enumerate(self.steps):
            if not step.resolved:
                return index, step
        return None

    def claim_limit(self) -> int | None:
        """Items before this position may run (None: every item may)."""
        waiting = self.next_step()
        return waiting[1].first if waiting else None

    def step_at(self, position: int) -> SignInStep | None:
        for step in self.steps:
            if step.first <= position < step.end:
                return step
        return None

    def replace(self, index: int, **changes: Any) -> SignInPlan:
        steps = list(self.steps)
        steps[index] = dataclasses.replace(steps[index], **changes)
        return SignInPlan(self.provider, tuple(steps))

    def wait(self) -> SignInWait | None:
        """What the job waits for, as the protocol says it."""
        waiting = self.next_step()
        if waiting is None:
            return None
        index, step = waiting
        return SignInWait(
            provider=self.provider,
            business=step.business,
            index=index + 1,
            of=len(self.steps),
            funds=step.funds,
        )

    def sign_ins(self) -> list[JobSignIn]:
        return [
            JobSignIn(
                business=step.business, funds=step.funds, state=step.state, grant_id=step.grant_id
            )
            for step in self.steps
        ]


def plan_for(
    provider: str, clients: Iterable[ClientRow], grants: Mapping[str, int] | None = None
) -> tuple[SignInPlan, list[int]]:
    """The plan for these clients (businesses in the order their first client comes) and
    the client ids in item order, business by business; ``grants`` are sign-ins already
    held (a retry keeps those still usable)."""
    by_business: dict[str, list[int]] = {}
    for client in clients:
        assert client.business, "plan_for needs every client's business"
        by_business.setdefault(client.business, []).append(client.id)
    steps = []
    ordered: list[int] = []
    for business, ids in by_business.items():
        steps.append(
            SignInStep(
                business=business,
                first=len(ordered),
                funds=len(ids),
                grant_id=(grants or {}).get(business),
            )
        )
        ordered.extend(ids)
    return SignInPlan(provider, tuple(steps)), ordered
