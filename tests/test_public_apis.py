"""clientlink uses its libraries through their public API only."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "daemon", "sandbox", "tui")


def _private_imports(library: str) -> list[str]:
    found = []
    sources = sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))
    for source in sources:
        tree = ast.parse(source.read_text(encoding="utf-8"), str(source))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] == library and any(part.startswith("_") for part in parts[1:]):
                    found.append(f"{source.relative_to(ROOT)}:{node.lineno}: {name}")
    return found


def test_nothing_imports_authlibs_private_modules() -> None:
    assert _private_imports("authlib") == []


def test_the_provider_adapters_catch_the_errors_of_the_library_authlib_uses() -> None:
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    from clientlink.daemon import providers

    assert issubclass(AsyncOAuth2Client, providers.httpx.AsyncClient)
    assert issubclass(providers.httpx.ConnectTimeout, providers.httpx.TimeoutException)
