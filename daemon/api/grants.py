"""``grants.*``: stored authorisations, and revoking a sign-in no client uses."""

from __future__ import annotations

from clientlink.common import protocol as p
from clientlink.common.protocol import ErrorCode
from clientlink.daemon.adapters import ConfiguredProviders
from clientlink.daemon.api import Api, handles
from clientlink.daemon.clients import FAILURE_ERROR_CODES
from clientlink.daemon.clock import Clock
from clientlink.daemon.grants import Grants, classify_failure
from clientlink.daemon.providers import ProviderError
from clientlink.daemon.rpc_errors import RpcFailure
from clientlink.daemon.rpc_server import CallContext
from clientlink.daemon.store import Store
from clientlink.daemon.watcher import Watcher


class GrantsApi(Api):
    def __init__(
        self,
        store: Store,
        grants: Grants,
        providers: ConfiguredProviders,
        watcher: Watcher,
        clock: Clock,
    ) -> None:
        self._store = store
        self._grants = grants
        self._providers = providers
        self._watcher = watcher
        self._clock = clock

    @handles("grants.list")
    async def list(self, params: p.GrantsListParams, ctx: CallContext) -> p.GrantsListResult:
        """Stored authorisations (never their tokens); ``unused`` marks a sign-in no client
        was ever bound to, such as one where the person ticked another business."""
        rows = await self._store.list_grants(params.unused_only)
        return p.GrantsListResult(items=[row.to_protocol() for row in rows])

    @handles("grants.revoke")
    async def revoke(self, params: p.GrantIdParams, ctx: CallContext) -> p.GrantRevokeResult:
        """Revoke an unused sign-in at the provider, then stop watching it. A grant that
        clients use is refused: re-authorise or deactivate those clients instead."""
        grant = await self._store.get_grant(params.grant_id)
        if grant is None:
            raise RpcFailure(ErrorCode.NOT_FOUND, f"there is no grant with id {params.grant_id}")
        if grant.state == "revoked":
            return p.GrantRevokeResult(
                grant_id=grant.id, state=grant.state, message="It was already revoked."
            )
        users = await self._store.clients_of_grant(grant.id)
        if users or grant.bound_at is not None:
            raise RpcFailure(
                ErrorCode.CONFLICT,
                f"Grant {grant.id} is not an unused sign-in: clients were bound to it "
                f"({', '.join(c.name for c in users[:5]) or 'now deactivated'}). Nothing "
                "was changed; re-authorise or deactivate those clients instead",
            )
        adapter = self._providers.require(grant.provider)
        _, tokens = await self._grants.tokens(grant.id)
        if tokens.refresh_token:
            try:
                await adapter.revoke(tokens.refresh_token)
            except ProviderError as exc:
                failure = classify_failure(exc)
                assert failure is not None
                raise RpcFailure(
                    FAILURE_ERROR_CODES[failure.kind],
                    f"{failure.reason}; nothing was changed, try again",
                ) from exc
        reason = f"revoked by {ctx.peer.actor} as an unused sign-in"
        await self._store.mark_grant_revoked(grant.id, reason)
        await self._watcher.watch(grant.id)
        await self._store.add_audit(
            actor=ctx.peer.actor,
            action="grant.revoked",
            client_id=None,
            detail={"grant_id": grant.id, "provider": grant.provider},
            now=self._clock.now(),
        )
        message = adapter.revocation_note() or f"Revoked at {adapter.definition.display_name}."
        if adapter.definition.kind == "xero":
            message += (
                " Xero also ends every other connection the same Xero user gave clientlink: "
                "clients connected through that user's other sign-ins will show needs_reauth "
                "at their next check."
            )
        return p.GrantRevokeResult(grant_id=grant.id, state="revoked", message=message)
