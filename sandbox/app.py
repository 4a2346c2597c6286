"""Assemble the sandbox's ASGI app."""

from __future__ import annotations

from starlette.applications import Starlette

from clientlink.sandbox import (
    basiq_api,
    classsuper_api,
    classsuper_identity,
    quickbooks_api,
    quickbooks_identity,
    twilio_api,
    xero_api,
    xero_identity,
)
from clientlink.sandbox.admin import admin_routes
from clientlink.sandbox.state import SandboxState


def build_app(state: SandboxState) -> Starlette:
    """Return the Starlette app serving `state`: Xero under /xero, QuickBooks Online under
    /quickbooks, the SMS gateway under /twilio, the bank feeds under /basiq, Class Super under
    /class, the admin API under /_sandbox."""
    routes = [
        *xero_identity.identity_routes(),
        *xero_api.api_routes(),
        *quickbooks_identity.identity_routes(),
        *quickbooks_api.api_routes(),
        *twilio_api.api_routes(),
        *basiq_api.api_routes(),
        *classsuper_identity.identity_routes(),
        *classsuper_api.api_routes(),
        *admin_routes(),
    ]
    app = Starlette(routes=routes)
    app.state.sandbox = state
    return app
