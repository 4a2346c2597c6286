"""A DataTable whose text cells are shown as written, never read as markup."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable


def _literal(cell: Any) -> Any:
    return Text(cell, end="") if isinstance(cell, str) else cell


class LiteralTable(DataTable):
    """A DataTable for text from outside: a client named ``[red]x[/]`` shows those letters.

    DataTable reads a ``str`` cell as markup (a stray ``[/]`` even crashes the screen);
    here every ``str`` cell becomes plain :class:`rich.text.Text`.
    """

    def add_row(self, *cells: Any, **kwargs: Any) -> Any:
        return super().add_row(*map(_literal, cells), **kwargs)

    def update_cell(self, row_key: Any, column_key: Any, value: Any, **kwargs: Any) -> None:
        super().update_cell(row_key, column_key, _literal(value), **kwargs)

    def update_cell_at(self, coordinate: Any, value: Any, **kwargs: Any) -> None:
        super().update_cell_at(coordinate, _literal(value), **kwargs)
