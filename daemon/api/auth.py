"""``auth.*``: sign-in sessions (the finishing work is in ``daemon/signin.py``)."""

from __future__ import annotations

from clientlink.common import protocol as p
from clientlink.common.protocol import ErrorCode
from clientlink.common.timeutil import to_iso
from clientlink.daemon.adapters import ConfiguredProviders
from clientlink.daemon.api import Api, handles
from clientlink.daemon.auth import AuthSessions
from clientlink.daemon.clients import ClientService
from clientlink.daemon.holds import ClientHolds
from clientlink.daemon.rpc_errors import RpcFailure
from clientlink.daemon.rpc_server import CallContext
from clientlink.daemon.usage import would_exceed


class AuthApi(Api):
    def __init__(
        self,
        auth: AuthSessions,
        providers: ConfiguredProviders,
        clients: ClientService,
        holds: ClientHolds,
    ) -> None:
        self._holds = holds
        self._auth = auth
        self._providers = providers
        self._clients = clients

    @handles("auth.begin")
    async def begin(self, params: p.AuthBeginParams, ctx: CallContext) -> p.AuthBeginResult:
        """Open a sign-in: returns the address to open and where the redirect will land."""
        adapter = self._providers.require(params.provider)
        business = params.business
        if params.client_id is not None:
            client = await self._clients.require(params.client_id)
            if client.provider != params.provider:
                raise RpcFailure(
                    ErrorCode.INVALID_PARAMS,
                    f"{client.name} is connected through {client.provider}, not {params.provider}",
                )
            if business is not None and client.business and business != client.business:
                raise RpcFailure(
                    ErrorCode.INVALID_PARAMS,
                    f"{client.name} is in business {client.business}, not {business}",
                )
            if adapter.definition.one_grant_per_business:
                # Where a sign-in covers every business (BGL's firm), the client's is a label.
                business = business or client.business
        display = adapter.definition.display_name
        # Where one sign-in covers one business, a sign-in that names none lets the person
        # choose on the provider's own page (how a practice discovers its business codes).
        if business is not None and not adapter.definition.one_grant_per_business:
            raise RpcFailure(
                ErrorCode.INVALID_PARAMS,
                f"{display} signs in once for every business: leave out business",
            )
        async with self._holds.lock:
            if params.client_id is not None:
                # One outcome when two reach for one client: the second is told who has it.
                hold = await self._holds.for_sign_in(client, ctx.peer.actor)
                if hold is not None:
                    raise RpcFailure(
                        ErrorCode.CONFLICT,
                        f"{hold.doing(client.name)}. Nothing was started: wait for them to "
                        "finish, or ask them to cancel",
                        hold.detail(),
                    )
            session = await self._auth.begin(
                params.provider,
                params.client_id,
                ctx.peer.actor,
                lambda redirect_uri, state, verifier: adapter.authorization_url(
                    redirect_uri=redirect_uri,
                    state=state,
                    code_verifier=verifier,
                    business=business,
                ),
                business=business,
            )
        warning = None
        if adapter.definition.kind == "xero":
            usage = await self._providers.usage(params.provider)
            warning = would_exceed(usage, params.new_connections)
        known = self._providers.businesses(params.provider)
        if business is not None and known and business not in known:
            # Allowed (the practice may have a new business); said, since a typo would
            # otherwise end in the provider's refusal page.
            warning = (
                f"{business} is not among the {display} businesses in config.toml "
                f"([providers.{params.provider}] businesses: {', '.join(known)}); "
                "signing in to it anyway"
            )
        return p.AuthBeginResult(
            session_id=session.id,
            authorize_url=session.authorize_url,
            short_url=self._auth.short_url(session),
            redirect_uri=session.redirect_uri,
            expires_at=to_iso(session.expires_at) or "",
            callback_port=self._auth.callback_port,
            warning=warning,
        )

    @handles("auth.complete")
    async def complete(
        self, params: p.AuthCompleteParams, ctx: CallContext
    ) -> p.AuthCompleteResult:
        """Finish a sign-in with the address the browser ended on (pasted by the person)."""
        result = await self._auth.complete(params.session_id, params.redirect_url)
        return p.AuthCompleteResult.model_validate(result)

    @handles("auth.status")
    async def status(self, params: p.AuthSessionParams, ctx: CallContext) -> p.AuthStatusResult:
        """Where a sign-in stands: pending, completed (with its result), failed, expired."""
        return p.AuthStatusResult.model_validate(self._auth.get(params.session_id).public())

    @handles("auth.cancel")
    async def cancel(self, params: p.AuthSessionParams, ctx: CallContext) -> p.AuthStatusResult:
        """Abandon a pending sign-in; its redirect will no longer be accepted."""
        session = await self._auth.cancel(params.session_id)
        return p.AuthStatusResult.model_validate(session.public())
