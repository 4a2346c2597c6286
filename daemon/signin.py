"""Finishing a sign-in: the code traded for tokens, a grant stored, the client re-authorised.

:class:`AuthSessions` (``auth.py``) owns a session until its redirect arrives (at the
loopback listener or pasted into ``auth.complete``); it then calls :meth:`SignIn.finish`,
which exchanges the code, records the grant and its tenants, re-authorises the session's
client when it has one, and answers with the tenants the grant reaches.
:meth:`SignIn.announce` tells subscribers how each session ended.
"""

from __future__ import annotations

from typing import Any

from clientlink.common.protocol import AuthCompleted, AuthFailed, AuthSessionState, ErrorCode
from clientlink.common.timeutil import from_iso
from clientlink.daemon.adapters import ConfiguredProviders
from clientlink.daemon.auth import AuthSession
from clientlink.daemon.clients import FAILURE_ERROR_CODES, ClientService
from clientlink.daemon.clock import Clock
from clientlink.daemon.events import EventBus
from clientlink.daemon.grants import Grants, classify_failure
from clientlink.daemon.providers import ProviderError
from clientlink.daemon.rpc_errors import RpcFailure
from clientlink.daemon.store import ClientRow, Store
from clientlink.daemon.watcher import Watcher


class SignIn:
    """What a finished sign-in does."""

    def __init__(
        self,
        providers: ConfiguredProviders,
        grants: Grants,
        clients: ClientService,
        watcher: Watcher,
        store: Store,
        events: EventBus,
        clock: Clock,
    ) -> None:
        self._providers = providers
        self._grants = grants
        self._clients = clients
        self._watcher = watcher
        self._store = store
        self._events = events
        self._clock = clock

    async def finish(
        self, session: AuthSession, code: str, params: dict[str, str]
    ) -> dict[str, Any]:
        """Trade the code, store the grant, re-authorise the session's client; the
        ``auth.complete`` result."""
        adapter = self._providers.require(session.provider)
        try:
            tokens = await adapter.exchange_code(
                code=code, redirect_uri=session.redirect_uri, code_verifier=session.code_verifier
            )
            auth_event_id, tenants = await adapter.list_tenants(tokens, params)
        except ProviderError as exc:
            failure = classify_failure(exc)
            assert failure is not None
            raise RpcFailure(FAILURE_ERROR_CODES[failure.kind], failure.reason) from exc
        business = adapter.grant_business(tokens, params)
        # Who signed in at the provider (the id_token's user, or UserInfo's), with the grant.
        user = await adapter.who_signed_in(tokens)
        provider_user = user.as_json() if user is not None else None
        grant_id = await self._grants.create(
            session.provider,
            tokens,
            tenants,
            auth_event_id,
            session.actor,
            business=business,
            provider_user=provider_user,
        )
        if session.business is not None and business != session.business:
            # The provider granted another business than the sign-in asked for. The grant
            # stays stored (an unused sign-in, listed and revocable); nothing is bound to it.
            await self._watcher.watch(grant_id)
            raise RpcFailure(
                ErrorCode.AUTH_PROVIDER_REFUSED,
                f"{adapter.definition.display_name} authorised business {business or 'none'}, "
                f"not {session.business} that this sign-in was for: sign in again",
                {"grant_id": grant_id},
            )
        await self._store.add_audit(
            actor=session.actor,
            action="grant.created",
            client_id=session.client_id,
            detail={
                "grant_id": grant_id,
                "provider": session.provider,
                "tenants": len(tenants),
                "provider_user": provider_user,
            },
            now=self._clock.now(),
        )
        if session.client_id is not None:
            client = await self._clients.require(session.client_id)
            try:
                await self._clients.reauthorise(client, grant_id, tenants, session.actor)
            except RpcFailure as failure:
                # The grant stays (revoking it could end the user's other connections):
                # an unused sign-in, listed by grants.list and watched like any other.
                await self._watcher.watch(grant_id)
                raise await self._lost_race(session, client, grant_id, failure) from None
            await self._watcher.watch(grant_id)
            if client.grant_id is not None:
                await self._watcher.watch(client.grant_id)
        listed = []
        # Each tenant's client: by its id, or by its ABN where the provider's id changed.
        matches = await self._clients.match_tenants(session.provider, tenants)
        for tenant in tenants:
            match = matches.get(tenant.tenant_id)
            listed.append(
                {
                    "tenant_id": tenant.tenant_id,
                    "name": tenant.tenant_name,
                    "tenant_type": tenant.tenant_type,
                    "business": tenant.business,
                    "client_id": match.client.id if match and match.client else None,
                    "abn": tenant.abn,
                    "match": match.note if match else None,
                }
            )
        return {
            "grant_id": grant_id,
            "tenants": listed,
            "client_id": session.client_id,
            "provider_user": provider_user,
        }

    async def _lost_race(
        self,
        session: AuthSession,
        client: ClientRow,
        grant_id: int,
        failure: RpcFailure,
    ) -> RpcFailure:
        """A sign-in that did not cover its client: say so plainly when another sign-in
        for the same client finished first (its consent took this one's connections)."""
        if failure.code != ErrorCode.AUTH_CLIENT_NOT_SELECTED:
            return failure
        current = await self._store.get_grant(client.grant_id) if client.grant_id else None
        created = from_iso(current.created_at) if current is not None else None
        if current is None or current.id == grant_id or created is None:
            return failure
        if created < session.created_at.replace(microsecond=0):
            return failure
        return RpcFailure(
            ErrorCode.AUTH_CLIENT_NOT_SELECTED,
            f"Another sign-in for {client.name} finished first and already re-authorised "
            "it; this one changed nothing and there is nothing more to do",
            {"grant_id": grant_id, "client_grant_id": current.id},
        )

    def announce(self, session: AuthSession) -> None:
        """Publish how a session ended: auth.completed, or auth.failed with why."""
        if session.status == AuthSessionState.COMPLETED and session.result:
            self._events.publish(
                AuthCompleted(
                    session_id=session.id,
                    provider=session.provider,
                    client_id=session.client_id,
                    grant_id=session.result["grant_id"],
                    tenants=session.result["tenants"],
                )
            )
        elif session.status in (
            AuthSessionState.FAILED,
            AuthSessionState.EXPIRED,
            AuthSessionState.CANCELLED,
        ):
            error = session.error or {
                "code": int(ErrorCode.AUTH_SESSION_FINISHED),
                "message": "The sign-in was cancelled",
            }
            self._events.publish(
                AuthFailed(
                    session_id=session.id,
                    provider=session.provider,
                    client_id=session.client_id,
                    code=error["code"],
                    message=error["message"],
                )
            )
