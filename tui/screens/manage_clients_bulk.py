"""What Manage Clients does with its marked clients (or, with none marked, the ones shown
or the highlighted one): the Bulk Actions menu and each of its choices.

:class:`MarkedClientsActions` is mixed into :class:`ManageClientsScreen`, which keeps the
bindings, the buttons and the list these actions read (``marked``, ``clients``, ``total``).
"""

from __future__ import annotations

from typing import Any

from textual import work

from clientlink.common.protocol import (
    CLIENTS_DEACTIVATE,
    CLIENTS_REACTIVATE,
    JOBS_START,
    JobKind,
    ProviderInfo,
)
from clientlink.common.wording import plural
from clientlink.tui.screens.bulk_actions import BulkAction, BulkActionsScreen
from clientlink.tui.screens.bulk_reauth import BulkReauthScreen, ChooseSoftwareScreen
from clientlink.tui.screens.business_reauth import BusinessReauthScreen
from clientlink.tui.screens.confirm import ConfirmScreen
from clientlink.tui.screens.export_clients import ExportClientsScreen
from clientlink.tui.screens.job_progress import JobProgressScreen
from clientlink.tui.screens.take_over import ChooseOwnerScreen, TakeOverScreen

NAMES_IN_CONFIRM = 3


def _names_and_more(loaded_names: list[str], count: int) -> str:
    """A few of ``count`` clients by name, "A, B, C and 7 more".

    Marks can be on clients not loaded yet (mark all): only the loaded ones have names.
    """
    named = loaded_names[:NAMES_IN_CONFIRM]
    more = count - len(named)
    if not more:
        return ", ".join(named)
    return f"{', '.join(named)} and {more} more" if named else "none of them loaded yet"


class MarkedClientsActions:
    """The bulk actions of Manage Clients."""

    def _scope(self) -> str:
        if self.marked:
            return (
                f"For {plural(len(self.marked), 'marked client')} "
                f"(export writes all {self.total} shown)."
            )
        verb = "reactivate" if self.inactive_view else "deactivate"
        return (
            f"No clients marked (space marks one): re-import and export use all "
            f"{self.total} shown; {verb} uses the highlighted one."
        )

    def action_bulk_actions(self) -> None:
        """Open the Bulk Actions menu."""
        self.app.push_screen(
            BulkActionsScreen(self._scope(), inactive_view=self.inactive_view), self._run_bulk
        )

    def _run_bulk(self, action: BulkAction | None) -> None:
        if action == BulkAction.REAUTHORISE:
            self.action_bulk_reauthorise()
        elif action == BulkAction.REIMPORT:
            self.action_reimport()
        elif action == BulkAction.EXPORT:
            self.action_export()
        elif action == BulkAction.DEACTIVATE:
            self.action_set_active(False)
        elif action == BulkAction.REACTIVATE:
            self.action_set_active(True)
        elif action == BulkAction.TAKE_OVER:
            self.action_take_over()

    def action_take_over(self) -> None:
        """Take over connections: choose whose, then sign in as you and move their clients."""

        def open_take_over(owner: str | None) -> None:
            if owner is not None:
                self.app.push_screen(TakeOverScreen(owner))

        self.app.push_screen(ChooseOwnerScreen(), open_take_over)

    def action_bulk_reauthorise(self) -> None:
        """Re-authorise Bulk Clients: choose the software, sign in once, tick clients."""

        def open_wizard(provider: ProviderInfo | None) -> None:
            if provider is not None and provider.one_grant_per_business:
                # One sign-in per business: the funds first, then the sign-ins in one job.
                self.app.push_screen(BusinessReauthScreen(provider.name, provider.display_name))
            elif provider is not None:
                self.app.push_screen(BulkReauthScreen(provider))

        self.app.push_screen(ChooseSoftwareScreen(), open_wizard)

    def action_reimport(self) -> None:
        """Re-read the marked (or all shown) clients' details from the software, as a job."""
        if not self.marked and not self.clients:
            self.notify("No clients shown to re-import.", severity="warning")
            return
        self.start_reimport(sorted(self.marked) if self.marked else None)

    @work(exclusive=True, group="start-job", exit_on_error=False)
    async def start_reimport(self, client_ids: list[int] | None) -> None:
        """``jobs.start {kind: reimport}`` (every client shown if None), then its progress."""
        if client_ids is None:
            client_ids = sorted(await self.table.ids_shown())  # the rows not loaded yet too
        started = await self.clientlink.daemon.call(
            JOBS_START, kind=JobKind.REIMPORT.value, client_ids=client_ids
        )
        self.app.push_screen(JobProgressScreen(started.job_id, kind=JobKind.REIMPORT))

    def action_export(self) -> None:
        """Write the clients shown to a CSV file."""
        self.app.push_screen(
            ExportClientsScreen(
                self._filter_params_for_export(), f"the {plural(self.total, 'client')} shown"
            )
        )

    def _filter_params_for_export(self) -> dict[str, Any]:
        params = self._filter_params()
        params.setdefault("active", True)
        return params

    def action_set_active(self, active: bool) -> None:
        """Deactivate (or reactivate) the marked or highlighted clients, after a confirm."""
        client_ids = self._marked_or_focused()
        if not client_ids:
            self.notify("No client selected: move to a row or mark some first.", severity="warning")
            return
        chosen = set(client_ids)
        names = _names_and_more(
            [client.name for client in self.clients.values() if client.id in chosen],
            len(client_ids),
        )
        one = len(client_ids) == 1
        count = plural(len(client_ids), "client")
        them, their = ("it", "its") if one else ("them", "their")
        if active:
            question = f"Reactivate {count} ({names})? clientlinkd watches {them} again."
        else:
            question = (
                f"Deactivate {count} ({names})? clientlinkd stops watching {them}; {their} "
                f"data is kept, and the Inactive status filter lists {them} for reactivation."
            )
        verb = "Reactivate" if active else "Deactivate"

        def change_if_confirmed(confirmed: bool | None) -> None:
            if confirmed:
                self.set_active(client_ids, active)

        self.app.push_screen(ConfirmScreen(question, yes_label=verb), change_if_confirmed)

    @work(exclusive=True, group="set-active", exit_on_error=False)
    async def set_active(self, client_ids: list[int], active: bool) -> None:
        """``clients.reactivate`` or ``clients.deactivate``, then the list again."""
        method = CLIENTS_REACTIVATE if active else CLIENTS_DEACTIVATE
        result = await self.clientlink.daemon.call(method, client_ids=client_ids)
        self.table.marked -= set(client_ids)
        done = len(result.changed)
        if active:
            self.notify(f"{plural(done, 'client')} reactivated: clientlinkd watches them again.")
        else:
            self.notify(
                f"{plural(done, 'client')} deactivated: the Inactive status filter lists them."
            )
        self.load_clients()
