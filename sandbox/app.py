"""Assemble the sandbox's ASGI app."""

from __future__ import annotations

from starlette.applications import Starlette

from clientlink.sandbox.admin import admin_routes
from clientlink.sandbox.state import SandboxState
from clientlink.sandbox.xero_api import api_routes
from clientlink.sandbox.xero_identity import identity_routes


def build_app(state: SandboxState) -> Starlette:
    """Return the Starlette app serving `state`: Xero routes under /xero, admin under /_sandbox."""
    app = Starlette(routes=[*identity_routes(), *api_routes(), *admin_routes()])
    app.state.sandbox = state
    return app
