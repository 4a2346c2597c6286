"""A QR code drawn with unicode half blocks, dark modules on a light background."""

from __future__ import annotations

import segno
from rich.text import Text
from textual.widgets import Static

# Two QR rows per terminal row: (top is dark, bottom is dark) -> character drawn in black.
_HALF_BLOCKS = {
    (True, True): "█",
    (True, False): "▀",
    (False, True): "▄",
    (False, False): " ",
}


def qr_text(data: str, border: int = 2) -> Text:
    """``data`` as a QR code that phones can scan from a terminal, black on white."""
    matrix = [
        [bool(module) for module in row]
        for row in segno.make(data, error="l").matrix_iter(border=border)
    ]
    if len(matrix) % 2:
        matrix.append([False] * len(matrix[0]))
    lines = [
        "".join(_HALF_BLOCKS[top, bottom] for top, bottom in zip(upper, lower, strict=True))
        for upper, lower in zip(matrix[::2], matrix[1::2], strict=True)
    ]
    return Text("\n".join(lines), style="black on white", no_wrap=True)


class QrView(Static):
    """A QR code of some text; it needs about half as many rows as it has columns."""

    DEFAULT_CSS = """
    QrView {
        width: auto;
        height: auto;
    }
    """

    def __init__(self, data: str = "", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.show(data)

    def show(self, data: str) -> None:
        """Draw ``data`` (nothing when empty)."""
        self.update(qr_text(data) if data else "")
