"""The configured accounting software: one adapter per provider named in config.toml.

An adapter exists once its provider has a client id; its app secret is opened from the
vault. :meth:`ConfiguredProviders.require` gives the adapter or the sentence that says what
is missing. The ``adapters`` dict is shared (grants, clients and the watcher read it) and
rebuilt in place when a secret changes.
"""

from __future__ import annotations

from clientlink.common import protocol as p
from clientlink.common.config import Config
from clientlink.common.paths import Paths
from clientlink.common.protocol import ErrorCode
from clientlink.daemon.clock import Clock
from clientlink.daemon.providers import (
    ADAPTERS,
    ProviderAdapter,
    ProviderDefinition,
    build_definition,
)
from clientlink.daemon.rpc_errors import RpcFailure
from clientlink.daemon.store import Store
from clientlink.daemon.usage import Usage
from clientlink.daemon.vault import Vault


class ConfiguredProviders:
    """The providers' definitions and their adapters."""

    def __init__(
        self,
        config: Config,
        paths: Paths,
        store: Store,
        vault: Vault,
        clock: Clock,
        usage: Usage,
    ) -> None:
        self._config = config
        self._paths = paths
        self._store = store
        self._vault = vault
        self._clock = clock
        self._usage = usage
        self.definitions: dict[str, ProviderDefinition] = {
            name: build_definition(provider) for name, provider in config.providers.items()
        }
        self.adapters: dict[str, ProviderAdapter] = {}

    async def build(self) -> None:
        """(Re)build every adapter from config and the sealed app secrets, in place."""
        for name, definition in self.definitions.items():
            old = self.adapters.pop(name, None)
            if old is not None:
                await old.close()
            client_id = self._config.providers[name].client_id
            if not client_id:
                continue
            secret = await self._secret(name)
            self.adapters[name] = ADAPTERS[definition.kind](
                name,
                definition,
                client_id,
                secret,
                self._clock,
                timeout_seconds=self._config.network.timeout_seconds,
            )
            self.adapters[name].egress = self._usage.meter(name)

    async def close(self) -> None:
        for adapter in self.adapters.values():
            await adapter.close()

    async def _secret(self, name: str) -> str | None:
        sealed = await self._store.get_secret(f"provider:{name}")
        if sealed is None:
            return None
        return self._vault.decrypt(sealed, f"provider-secret:{name}").decode()

    def require(self, provider: str) -> ProviderAdapter:
        """The provider's adapter, ready to sign in to, or a clear error."""
        if provider not in self.definitions:
            known = ", ".join(sorted(self.definitions)) or "none are configured"
            raise RpcFailure(
                ErrorCode.PROVIDER_UNKNOWN,
                f"no accounting software named {provider!r} (configured: {known})",
            )
        adapter = self.adapters.get(provider)
        if adapter is None or (adapter.definition.requires_secret and not adapter.client_secret):
            raise RpcFailure(
                ErrorCode.PROVIDER_NOT_CONFIGURED,
                self.problem(provider) or f"{provider} is not set up",
            )
        return adapter

    def problem(self, name: str) -> str | None:
        """What a configured provider still lacks before anyone can sign in to it."""
        definition = self.definitions[name]
        adapter = self.adapters.get(name)
        if adapter is None:
            return (
                f"{definition.display_name} has no client id: register an app with "
                f"{definition.display_name} and set client_id under [providers.{name}] in "
                f"{self._paths.config_file}"
            )
        if definition.requires_secret and not adapter.client_secret:
            return (
                f"{definition.display_name} needs the app's client secret: run "
                f"`clientlink provider set-secret {name}`"
            )
        return None

    def infos(self) -> list[p.ProviderInfo]:
        """Each configured provider and whether it is ready to sign in to."""
        items = []
        for name, definition in sorted(self.definitions.items()):
            adapter = self.adapters.get(name)
            problem = self.problem(name)
            items.append(
                p.ProviderInfo(
                    name=name,
                    kind=definition.kind,
                    display_name=definition.display_name,
                    configured=problem is None,
                    has_secret=bool(adapter and adapter.client_secret),
                    problem=problem,
                    one_grant_per_business=definition.one_grant_per_business,
                    sign_in_covers=definition.sign_in_covers,
                )
            )
        return items

    def businesses(self, name: str) -> list[str]:
        """The provider businesses config.toml names for ``name`` (Class business codes)."""
        provider = self._config.providers.get(name)
        return list(provider.businesses) if provider is not None else []

    def xero_names(self) -> list[str]:
        return [name for name, d in self.definitions.items() if d.kind == "xero"]

    async def usage(self, name: str) -> dict[str, object]:
        """The provider's connections and this month's egress against its tier."""
        return await self._usage.report(name, self._config.providers[name].tier)
