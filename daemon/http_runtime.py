"""What the daemon sets once about the HTTP stack it runs on (httpx, httpcore, anyio)."""

from __future__ import annotations

import importlib.util
import sys


def skip_absent_sniffio() -> None:
    """httpcore asks which async library runs with ``import sniffio`` on every request;
    where sniffio is not installed that import fails each time, after a search of every
    folder on the path (a few per cent of a bulk job's time). Recording it as absent once
    makes the same import fail at once, as Python documents for a ``None`` in
    ``sys.modules``; httpcore then assumes asyncio, as it did. Installed, it is used."""
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]
