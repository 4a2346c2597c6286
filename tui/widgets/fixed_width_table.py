"""A DataTable that does not measure cells whose width it is told."""

from __future__ import annotations

from collections.abc import Iterable

from textual.widgets.data_table import CellKey, RowKey

from clientlink.tui.widgets.literal_table import LiteralTable


class FixedWidthTable(LiteralTable):
    """A DataTable that skips measuring cells when the measurement cannot change anything.

    (A :class:`LiteralTable`: text cells are shown as written, never read as markup.)

    DataTable measures every cell of every new row, and every updated cell, so that it can
    size columns that have no width of their own. It does this even for columns given a
    ``width``, where the result is never used. When a cell gets narrower (a mark removed),
    it measures the whole column again. With fixed-width columns and one-line rows
    without labels, none of that measuring changes what is drawn. Here it is skipped, so
    adding or updating rows costs the same whatever the table already holds.
    """

    def _measures(self, row_keys: Iterable[RowKey]) -> bool:
        if any(column.auto_width for column in self.columns.values()):
            return True
        # Auto-height rows are rendered here to find their height; labels size a column.
        return any(
            (row := self.rows.get(row_key)) is not None and (row.auto_height or row.label)
            for row_key in row_keys
        )

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        new_rows = list(new_rows)
        # With no rows to measure, it still sets the scrollable size.
        super()._update_dimensions(new_rows if self._measures(new_rows) else ())

    def _update_column_widths(self, updated_cells: set[CellKey]) -> None:
        if self._measures(cell.row_key for cell in updated_cells):
            super()._update_column_widths(updated_cells)
        else:
            self._require_update_dimensions = True
