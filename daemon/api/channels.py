"""``channels.*``: the secrets of the email, SMS and bank-feed services."""

from __future__ import annotations

from clientlink.common import protocol as p
from clientlink.common.config import Config
from clientlink.daemon.api import Api, handles
from clientlink.daemon.banks import BankFeeds
from clientlink.daemon.channels import EmailChannel, SmsChannel
from clientlink.daemon.clock import Clock
from clientlink.daemon.invitations import Invitations
from clientlink.daemon.rpc_server import CallContext
from clientlink.daemon.store import Store
from clientlink.daemon.vault import Vault


class ChannelsApi(Api):
    def __init__(
        self, invitations: Invitations, store: Store, vault: Vault, config: Config, clock: Clock
    ) -> None:
        self._invitations = invitations
        self._store = store
        self._vault = vault
        self._config = config
        self._clock = clock

    @handles("channels.set_secret")
    async def set_secret(self, params: p.ChannelSecretParams, ctx: CallContext) -> p.OkResult:
        """Seal the SMTP password, SMS token or bank-feed API key; never returned."""
        sealed = self._vault.encrypt(params.secret.encode(), f"channel-secret:{params.channel}")
        await self._store.put_secret(f"channel:{params.channel}", sealed, self._clock.now())
        secret = params.secret
        invitations = self._invitations
        if params.channel == "email":
            await invitations.email.close()
            invitations.email = EmailChannel(self._config.email, secret)
        elif params.channel == "sms":
            invitations.sms = SmsChannel(self._config.sms, secret)
        else:
            await invitations.banks.close()
            invitations.banks = BankFeeds(self._config.banks, secret)
        await self._store.add_audit(
            actor=ctx.peer.actor,
            action="channel.secret_set",
            client_id=None,
            detail={"channel": params.channel},
            now=self._clock.now(),
        )
        return p.OkResult()
