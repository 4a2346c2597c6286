"""The command palette's context actions, titled "noun: verb".

Each screen lists what can be done on it (``palette_commands``); this provider offers
those, so the palette always matches the screen it was opened from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider


@dataclass(frozen=True)
class PaletteCommand:
    """One context action: ``title`` is "noun: verb", ``help`` says what it does."""

    title: str
    help: str
    run: Callable[[], Any]


class ContextCommands(Provider):
    """Offers the current screen's actions, then the app's, plus help."""

    def _commands(self) -> list[PaletteCommand]:
        commands: list[PaletteCommand] = []
        for source in (self.screen, self.app):
            provide = getattr(source, "palette_commands", None)
            if provide is not None:
                commands.extend(provide())
        commands.append(
            PaletteCommand(
                "Help: show keys", "What this screen does and every key (F1)", self.app.action_help
            )
        )
        return commands

    async def discover(self) -> Hits:
        for command in self._commands():
            yield DiscoveryHit(command.title, command.run, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self._commands():
            score = matcher.match(command.title)
            if score > 0:
                yield Hit(score, matcher.highlight(command.title), command.run, help=command.help)
