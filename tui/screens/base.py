"""What every clientlink screen shares: the app's daemon connection and error reporting."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, TypeVar, cast

from textual.binding import Binding
from textual.screen import ModalScreen, Screen
from textual.worker import Worker

from clientlink.tui.commands import PaletteCommand

if TYPE_CHECKING:
    from clientlink.tui.app import ClientlinkApp

ResultT = TypeVar("ResultT")


class _DaemonAccess:
    """The app's daemon connection, typed, and the one place worker failures go."""

    HELP: ClassVar[str] = ""
    """What the screen is for, shown by F1 above the list of keys."""

    @property
    def clientlink(self) -> ClientlinkApp:
        """The app, typed: it holds the daemon connection (``daemon``)."""
        return cast("ClientlinkApp", self.app)  # type: ignore[attr-defined]

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Worker state messages do not bubble; hand failures to the app's one handler.
        self.clientlink.report_worker_failure(event.worker)

    def palette_commands(self) -> list[PaletteCommand]:
        """The context actions the command palette offers on this screen."""
        return []


class DaemonScreen(_DaemonAccess, Screen[ResultT]):
    """A screen whose workers talk to clientlinkd through the app's connection."""


class DaemonModalScreen(_DaemonAccess, ModalScreen[ResultT]):
    """A dialog over another screen, talking to clientlinkd like a screen does."""

    # A modal screen hides the app's bindings; F1 must still explain the dialog.
    BINDINGS = [Binding("f1", "app.help", "Help", id="dialog.help")]


class DaemonWidget(_DaemonAccess):
    """Mixed into a widget whose workers talk to clientlinkd, reporting failures as screens do."""
