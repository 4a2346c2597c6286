"""A newcomer finds each RPC method's handler by its name, in the module of its namespace."""

from __future__ import annotations

import re
from pathlib import Path

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
