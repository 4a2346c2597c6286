"""A newcomer finds each RPC method's handler by its name, in the module of its namespace."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clientlink.common.protocol import METHODS

API = Path(__file__).resolve().parents[1] / "daemon" / "api"


def test_each_method_is_handled_once_in_its_namespaces_module() -> None:
    marked: dict[str, list[str]] = {}
    for module in sorted(API.glob("[!_]*.py")):  # the package docstring shows an example
        for method in re.findall(r'@handles\("([a-z_.]+)"\)', module.read_text(encoding="utf-8")):
            marked.setdefault(method, []).append(module.stem)
    assert set(marked) == set(METHODS)
    for method, modules in marked.items():
        assert modules == [method.split(".")[0]], method


async def test_a_started_daemon_has_every_service(daemon) -> None:
    services = daemon.daemon.services
    missing = [name for name, value in vars(services).items() if value is None]
    assert missing == []
    assert set(daemon.daemon.rpc.methods) == set(METHODS)


def test_callers_name_methods_by_their_constants_not_strings() -> None:
    """Outside call_raw (names as data), every daemon call names a protocol constant."""
    import ast

    root = Path(__file__).resolve().parent.parent
    offenders = []
    for folder in ("tui", "cli", "bench", "tests", "common", "daemon"):
        for path in sorted((root / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "call"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                ):
                    offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == []


async def test_a_method_named_by_a_string_is_refused_with_what_to_use(rpc) -> None:
    name = "clients.list"
    with pytest.raises(TypeError, match="call_raw"):
        await rpc.call(name)  # type: ignore[arg-type]
