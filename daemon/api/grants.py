"""``grants.*``: stored authorisations, and revoking a sign-in no client uses."""

from __future__ import annotations

import json

from clientlink.common import protocol as p
from clientlink.common.protocol import ErrorCode
from clientlink.common.wording import agree, plural
from clientlink.daemon.adapters import ConfiguredProviders
from clientlink.daemon.api import Api, handles
from clientlink.daemon.clients import FAILURE_ERROR_CODES
from clientlink.daemon.clock import Clock
from clientlink.daemon.grants import Grants, classify_failure
from clientlink.daemon.providers import ProviderError
from clientlink.daemon.rpc_errors import RpcFailure
from clientlink.daemon.rpc_server import CallContext
from clientlink.daemon.store import GrantRow, Store
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
        """Revoke a sign-in no client rests on (an unused one, or one whose clients were
        all re-authorised elsewhere, as after a takeover) at the provider, then stop watching
        it. A grant that clients rest on, deactivated ones too, is refused."""
        grant = await self._store.get_grant(params.grant_id)
        if grant is None:
            raise RpcFailure(ErrorCode.NOT_FOUND, f"there is no grant with id {params.grant_id}")
        if grant.state == "revoked":
            return p.GrantRevokeResult(
                grant_id=grant.id, state=grant.state, message="It was already revoked."
            )
        users = await self._store.clients_resting_on(grant.id)
        if users:
            raise RpcFailure(
                ErrorCode.CONFLICT,
                f"Grant {grant.id} is not a sign-in no client uses: "
                f"{plural(len(users), 'client')} {agree(len(users), 'rests', 'rest')} "
                f"on it ({', '.join(c.name for c in users[:5])}). Nothing was changed; "
                "re-authorise those clients (or take them over) first",
            )
        await self._refuse_shared_user(grant)
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
        reason = f"revoked by {ctx.peer.actor}: no client rested on it"
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

    async def _refuse_shared_user(self, grant: GrantRow) -> None:
        """Where revoking one sign-in ends all of its provider user's connections (Xero),
        refuse while another grant of the same provider user has clients resting on it."""
        adapter = self._providers.require(grant.provider)
        if adapter.definition.kind != "xero" or not grant.provider_user:
            return
        subject = json.loads(grant.provider_user).get("sub")
        for other in await self._store.list_grants():
            if other.id == grant.id or other.provider != grant.provider or not other.clients:
                continue
            row = await self._store.get_grant(other.id)
            if row is None or row.state != "active" or not row.provider_user:
                continue
            if json.loads(row.provider_user).get("sub") == subject:
                raise RpcFailure(
                    ErrorCode.CONFLICT,
                    f"Grant {grant.id} was given by the same Xero user as grant {row.id}, "
                    f"which {plural(other.clients, 'client')} "
                    f"{agree(other.clients, 'rests', 'rest')} on; Xero would end those too. "
                    "Nothing was changed: remove clientlink from that user in Xero's connected "
                    "apps only once no client needs it",
                )
