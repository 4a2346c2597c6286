"""A banner that says the daemon is unreachable and what to do about it."""

from __future__ import annotations

from textual.widgets import Static


class OfflineBanner(Static):
    """Shows the app's ``offline_message``; hidden while the daemon is connected."""

    DEFAULT_CSS = """
    OfflineBanner {
        display: none;
        height: auto;
        padding: 0 1;
        background: $error;
        color: $text;
        text-style: bold;
    }
    OfflineBanner.-offline {
        display: block;
    }
    """

    def __init__(self) -> None:
        super().__init__("", markup=False, id="offline-banner")

    def on_mount(self) -> None:
        self.watch(self.app, "offline_message", self._show_offline_message)

    def _show_offline_message(self, message: str) -> None:
        self.update(message)
        self.set_class(bool(message), "-offline")
