"""Staff: the practice's staff list with each person's role and whether they are active.

Admins add people (an existing Unix login) and change their name, email or role; anyone
else is told the list is for admins, and who they are. clientlinkd checks every change
(a login the system knows, a plain name, a valid email, the last admin stays admin) and
saves nothing it refuses; its reason stays in the dialog.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Checkbox, Footer, Header, Input, Label, Select, Static

from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.protocol import ErrorCode, Role, StaffMember
from clientlink.common.wording import plural
from clientlink.tui import messages
from clientlink.tui.commands import PaletteCommand
from clientlink.tui.formatting import format_when
from clientlink.tui.screens.base import DaemonModalScreen, DaemonScreen
from clientlink.tui.screens.confirm import ConfirmScreen
from clientlink.tui.widgets.literal_table import LiteralTable
from clientlink.tui.widgets.offline_banner import OfflineBanner

ROLE_CHOICES = [
    ("Admin", Role.ADMIN.value),
    ("Staff", Role.STAFF.value),
    ("Read-only", Role.READ_ONLY.value),
]
ROLE_WORDS = {value: label for label, value in ROLE_CHOICES}


class StaffScreen(DaemonScreen[None]):
    """Everyone on the staff list; a adds a person, Enter (or e) changes the highlighted one."""

    TITLE = "Staff"
    HELP = (
        "The practice's staff: who may use clientlink on this server, by their Unix login, "
        "and in which role. Read-only staff look; staff also re-authorise, invite, import "
        "and export; admins also manage staff, app credentials and channel secrets.\n\n"
        "a adds a person (their login must exist on the server; in firm mode they must also "
        "be in the practice's group). Enter or e changes the highlighted person's name, "
        "email or role, or brings back someone who left. The last active admin stays admin.\n\n"
        "l marks the highlighted person as having left the practice: first it lists the "
        "clients resting on their sign-ins and asks; then those clients are flagged in Needs "
        "attention (nothing is revoked at the software) until a colleague takes them over "
        "with Bulk Actions → Take over connections.\n\n"
        "Only admins see and change this list."
    )
    BINDINGS = [
        Binding("escape", "back", "Back", id="staff.back"),
        Binding("a", "add", "Add a person", id="staff.add"),
        Binding("e", "edit", "Change (also Enter)", id="staff.edit"),
        Binding("l", "leave", "Left the practice", id="staff.leave"),
        Binding("f5", "reload", "Reload", id="staff.reload"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.members: list[StaffMember] = []
        self.allowed: bool | None = None
        """Whether the caller may manage staff (None until the daemon said)."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield OfflineBanner()
        yield Static("Loading the staff list…", id="staff-summary")
        table = LiteralTable(id="staff-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("Login", "Name", "Role", "State", "Email")
        yield table
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(LiteralTable).focus()
        if self.clientlink.connected:
            self.load()

    def on_daemon_connected(self, message: messages.DaemonConnected) -> None:
        self.load()

    @work(exclusive=True, group="load-staff", exit_on_error=False)
    async def load(self) -> None:
        """``staff.list``; a caller who is not an admin is told so, and by whom it is kept."""
        summary = self.query_one("#staff-summary", Static)
        try:
            listing = await self.clientlink.daemon.call(p.STAFF_LIST)
        except RpcError as exc:
            if exc.error_code != ErrorCode.ROLE_REQUIRED:
                raise
            self.allowed = False
            role = (exc.data or {}).get("role", "not an admin")
            summary.update(
                Text(
                    f"The staff list is for admins; you are {ROLE_WORDS.get(role, role).lower()}. "
                    "An admin can change your role (clientlink staff update).",
                    style="italic",
                )
            )
            return
        self.allowed = True
        self.members = listing.items
        table = self.query_one(LiteralTable)
        table.clear()
        for member in listing.items:
            state = "active" if member.state == "active" else f"left {format_when(member.left_at)}"
            table.add_row(
                member.login,
                member.display_name,
                ROLE_WORDS.get(member.role.value, member.role.value),
                state,
                member.email or "—",
                key=member.login,
            )
        mode = (
            "firm mode: these people connect over the practice's group socket"
            if listing.firm
            else "single-user mode: only this daemon's own user connects; the list is kept "
            "for firm mode"
        )
        summary.update(Text(f"{plural(len(listing.items), 'person', 'people')} · {mode}"))

    def action_reload(self) -> None:
        """Ask the daemon for the list again."""
        self.load()

    def action_back(self) -> None:
        """Back to the screen below."""
        self.app.pop_screen()

    def _highlighted(self) -> StaffMember | None:
        table = self.query_one(LiteralTable)
        if not self.members or table.cursor_row >= len(self.members):
            return None
        return self.members[table.cursor_row]

    def action_add(self) -> None:
        """Add a person (admins)."""
        if self.allowed:
            self.app.push_screen(StaffEditScreen(None), self._after_edit)
        else:
            self.app.notify("Only admins add staff.", severity="warning")

    @on(LiteralTable.RowSelected)
    def action_edit(self) -> None:
        """Change the highlighted person (admins)."""
        member = self._highlighted()
        if self.allowed and member is not None:
            self.app.push_screen(StaffEditScreen(member), self._after_edit)

    @work(exclusive=True, group="staff-leave", exit_on_error=False)
    async def action_leave(self) -> None:
        """The highlighted person left the practice: what rests on their sign-ins, a question,
        then ``staff.leave`` (admins)."""
        member = self._highlighted()
        if not self.allowed or member is None:
            self.app.notify("Only admins mark staff as left.", severity="warning")
            return
        if member.state != "active":
            self.app.notify(f"{member.display_name} has already left.", severity="warning")
            return
        daemon = self.clientlink.daemon
        try:
            listing = await daemon.call(p.STAFF_LEAVE, login=member.login, dry_run=True)
        except RpcError as exc:
            self.app.notify(exc.message, severity="error", markup=False)
            return
        names = [client.name for grant in listing.grants for client in grant.clients]
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        question = (
            f"{member.display_name} ({member.login}) has left the practice?\n\n"
            f"{plural(len(names), 'client')} rest on their "
            f"{plural(len(listing.grants), 'sign-in')}"
            + (f": {shown}." if names else ".")
            + "\n\nThey will be flagged in Needs attention until a colleague takes them over "
            "(Bulk Actions → Take over connections). Nothing is revoked at the software, and "
            f"{member.display_name} can no longer use clientlink."
        )
        confirmed = await self.app.push_screen_wait(
            ConfirmScreen(question, yes_label="They left", no_label="Cancel")
        )
        if not confirmed:
            return
        try:
            result = await daemon.call(p.STAFF_LEAVE, login=member.login)
        except RpcError as exc:
            self.app.notify(exc.message, severity="error", markup=False)
            return
        self.app.notify(result.message, markup=False, timeout=10)
        self.load()

    def _after_edit(self, member: StaffMember | None) -> None:
        if member is not None:
            self.load()

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            PaletteCommand(
                "Staff: add a person", "Let a Unix login use clientlink (a)", self.action_add
            ),
            PaletteCommand(
                "Staff: left the practice",
                "Flag the clients on the highlighted person's sign-ins (l)",
                self.action_leave,
            ),
            PaletteCommand(
                "Staff: change",
                "Name, email or role of the highlighted person (e)",
                self.action_edit,
            ),
        ]


class StaffEditScreen(DaemonModalScreen[StaffMember | None]):
    """Add a person (``member`` None) or change one; Enter (or ctrl+s) saves."""

    TITLE = "Staff member"
    HELP = (
        "Login: the person's Unix login on this server (it cannot be changed later). Name: "
        "how colleagues see them in the audit and as a connection's owner. Email: where "
        "alerts about their connections go. Role: read-only, staff or admin.\n\n"
        "If clientlinkd refuses, the reason is shown in red and nothing is saved."
    )
    BINDINGS = [
        Binding("escape", "close", "Cancel", id="staff_edit.close"),
        Binding("ctrl+s", "save", "Save", id="staff_edit.save"),
    ]

    def __init__(self, member: StaffMember | None) -> None:
        super().__init__()
        self.member = member

    def compose(self) -> ComposeResult:
        member = self.member
        with Vertical(id="staff-dialog") as dialog:
            dialog.border_title = Text(f"Change {member.login}" if member else "Add a person")
            dialog.border_subtitle = "Enter saves · Esc cancels · F1 help"
            yield Label("Unix login")
            yield Input(
                member.login if member else "",
                id="staff-login",
                compact=True,
                disabled=member is not None,
            )
            yield Label("Name")
            yield Input(member.display_name if member else "", id="staff-name", compact=True)
            yield Label("Email")
            yield Input((member.email or "") if member else "", id="staff-email", compact=True)
            yield Label("Role")
            yield Select(
                ROLE_CHOICES,
                value=member.role.value if member else Role.STAFF.value,
                allow_blank=False,
                compact=True,
                id="staff-role",
            )
            if member is not None and member.state != "active":
                yield Checkbox("Back on the staff list", id="staff-active", compact=True)
            yield Static("", id="staff-error")
            with Horizontal(id="staff-buttons"):
                yield Button("Save (Enter)", id="staff-save", variant="primary", compact=True)
                yield Button("Cancel (Esc)", id="staff-cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#staff-name" if self.member else "#staff-login", Input).focus()

    def _show_error(self, message: str) -> None:
        self.query_one("#staff-error", Static).update(Text(message, style="bold red"))
        self.add_class("-error")

    @on(Input.Submitted)
    @on(Button.Pressed, "#staff-save")
    def action_save(self) -> None:
        """Send the fields to clientlinkd."""
        name = self.query_one("#staff-name", Input).value.strip()
        email = self.query_one("#staff-email", Input).value.strip()
        role = str(self.query_one("#staff-role", Select).value)
        member = self.member
        if member is None:
            login = self.query_one("#staff-login", Input).value.strip()
            params: dict[str, object] = {"login": login, "role": role}
            if name:
                params["display_name"] = name
            if email:
                params["email"] = email
            self.save(p.STAFF_ADD, params)
            return
        params = {"login": member.login}
        if name != member.display_name:
            params["display_name"] = name
        if email != (member.email or ""):
            params["email"] = email
        if role != member.role.value:
            params["role"] = role
        if self.query("#staff-active") and self.query_one("#staff-active", Checkbox).value:
            params["active"] = True
        if len(params) == 1:
            self.dismiss(None)  # nothing changed
            return
        self.save(p.STAFF_UPDATE, params)

    @work(exclusive=True, group="save-staff", exit_on_error=False)
    async def save(self, method: p.Method, params: dict[str, object]) -> None:  # type: ignore[type-arg]
        """``staff.add`` or ``staff.update``; a refusal is shown here."""
        try:
            member = await self.clientlink.daemon.call(method, **params)
        except RpcError as exc:
            self._show_error(exc.message)
            return
        self.app.notify(
            f"{member.display_name}: {ROLE_WORDS.get(member.role.value)}", title="Saved"
        )
        self.dismiss(member)

    @on(Button.Pressed, "#staff-cancel")
    def action_close(self) -> None:
        """Close without saving."""
        self.dismiss(None)
