"""``banks.*``: the banks a client can connect, and a client's bank connections."""

from __future__ import annotations

import contextlib

from clientlink.common import protocol as p
from clientlink.common.protocol import ErrorCode
from clientlink.daemon.api import Api, handles
from clientlink.daemon.banks import BanksUnavailable
from clientlink.daemon.clients import ClientService
from clientlink.daemon.invitations import Invitations
from clientlink.daemon.rpc_errors import RpcFailure
from clientlink.daemon.rpc_server import CallContext
from clientlink.daemon.store import Store


class BanksApi(Api):
    def __init__(self, invitations: Invitations, clients: ClientService, store: Store) -> None:
        self._invitations = invitations
        self._clients = clients
        self._store = store

    @handles("banks.connections")
    async def connections(
        self, params: p.ClientIdParams, ctx: CallContext
    ) -> p.BankConnectionsResult:
        """The client's bank connections as last followed up; broken ones need a reconnect."""
        await self._clients.require(params.client_id)
        names: dict[str, str] = {}
        with contextlib.suppress(BanksUnavailable):
            names = {b["id"]: b["name"] for b in await self._invitations.banks.institutions()}
        rows = await self._store.bank_connections(params.client_id)
        return p.BankConnectionsResult(
            items=[
                row.to_protocol(names.get(row.institution_id, row.institution_id)) for row in rows
            ]
        )

    @handles("banks.list")
    async def list(self, params: p.Empty, ctx: CallContext) -> p.BanksListResult:
        """The banks a client can be asked to connect."""
        try:
            banks = await self._invitations.banks.institutions()
        except BanksUnavailable as exc:
            raise RpcFailure(ErrorCode.PROVIDER_UNAVAILABLE, str(exc)) from exc
        return p.BanksListResult(items=[p.Bank.model_validate(bank) for bank in banks])
