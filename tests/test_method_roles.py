"""Every RPC method's least role, decided once for each (issue 12, part 2): read-only staff
look; staff also re-authorise, invite, import, export, deactivate and run jobs; only
admins manage staff, app credentials and channel secrets. A new method must be placed here,
so nobody gets a role by default without a decision."""

from __future__ import annotations

from clientlink.common.protocol import METHODS, Role

R, S, A = Role.READ_ONLY, Role.STAFF, Role.ADMIN

ROLES: dict[str, Role] = {
    # looking
    "daemon.hello": R,
    "daemon.status": R,
    "providers.list": R,
    "clients.list": R,
    "clients.get": R,
    "clients.history": R,
    "templates.list": R,
    "templates.preview": R,
    "invites.list": R,
    "invites.preview": R,
    "banks.connections": R,
    "banks.list": R,
    "jobs.list": R,
    "jobs.get": R,
    "notifications.list": R,
    "notifications.ack": R,  # one's own "read" marks
    "auth.status": R,
    "events.subscribe": R,
    "audit.list": R,
    "grants.list": R,
    # doing: re-authorise, import, check, correct, export, deactivate, invite, run jobs
    "clients.import": S,
    "clients.attach": S,
    "clients.check": S,  # it calls the provider and may change a status
    "clients.refresh": S,
    "clients.export": S,
    "clients.import_file": S,
    "clients.deactivate": S,
    "clients.reactivate": S,
    "clients.apply_reimport": S,
    "clients.update": S,
    "templates.create": S,
    "templates.update": S,
    "templates.delete": S,
    "invites.send": S,
    "invites.resend": S,
    "invites.follow_up": S,
    "jobs.start": S,
    "jobs.cancel": S,
    "jobs.pause": S,
    "jobs.resume": S,
    "jobs.retry": S,
    "jobs.add_sign_in": S,
    "jobs.skip_sign_in": S,
    "jobs.export": S,
    "auth.begin": S,
    "auth.complete": S,
    "auth.cancel": S,
    "grants.revoke": S,  # only an unused sign-in; clients' grants are refused anyway
    "audit.export": S,  # an export, like clients.export
    # managing the practice
    "providers.set_secret": A,
    "channels.set_secret": A,
    "staff.list": A,
    "staff.add": A,
    "staff.update": A,
    "staff.leave": A,
    # each person's own alert preferences: anyone on the staff list, for themselves only
    "staff.preferences": R,
    "staff.set_preferences": R,
    "alerts.list": S,
}


def test_every_method_has_the_role_decided_for_it() -> None:
    assert {name: method.role for name, method in METHODS.items()} == {
        name: ROLES[name] for name in METHODS if name in ROLES
    } | {name: "undecided" for name in METHODS if name not in ROLES}


def test_read_only_staff_cannot_change_secrets_export_invite_or_reauthorise() -> None:
    forbidden = [
        name
        for name in METHODS
        if name.endswith((".export", "set_secret", ".deactivate"))
        or name.startswith(("invites.send", "auth.begin", "auth.complete", "jobs.start"))
    ]
    assert len(forbidden) >= 9
    assert all(not Role.READ_ONLY.allows(METHODS[name].role) for name in forbidden)
    own = {"staff.preferences", "staff.set_preferences"}
    assert all(
        METHODS[name].role == Role.ADMIN
        for name in METHODS
        if name.startswith("staff.") and name not in own
    )
