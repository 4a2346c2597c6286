"""``providers.*``: the configured accounting software and their app secrets."""

from __future__ import annotations

from clientlink.common import protocol as p
from clientlink.daemon.adapters import ConfiguredProviders
from clientlink.daemon.api import Api, handles
from clientlink.daemon.clock import Clock
from clientlink.daemon.rpc_server import CallContext
from clientlink.daemon.store import Store
from clientlink.daemon.vault import Vault


class ProvidersApi(Api):
    def __init__(
        self, providers: ConfiguredProviders, store: Store, vault: Vault, clock: Clock
    ) -> None:
        self._providers = providers
        self._store = store
        self._vault = vault
        self._clock = clock

    @handles("providers.list")
    async def list(self, params: p.Empty, ctx: CallContext) -> p.ProvidersListResult:
        """The configured accounting software and whether each is ready to sign in to."""
        return p.ProvidersListResult(items=self._providers.infos())

    @handles("providers.set_secret")
    async def set_secret(self, params: p.ProviderSecretParams, ctx: CallContext) -> p.OkResult:
        """Seal an app's client secret in the vault; it is never returned by any call."""
        if params.provider not in self._providers.definitions:
            self._providers.require(params.provider)  # raises the clear unknown-provider error
        sealed = self._vault.encrypt(
            params.client_secret.encode(), f"provider-secret:{params.provider}"
        )
        await self._store.put_secret(f"provider:{params.provider}", sealed, self._clock.now())
        await self._providers.build()
        await self._store.add_audit(
            actor=ctx.peer.actor,
            action="provider.secret_set",
            client_id=None,
            detail={"provider": params.provider},
            now=self._clock.now(),
        )
        return p.OkResult()
