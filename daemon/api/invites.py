"""``invites.*``: invite clients to connect their banks, by email or SMS."""

from __future__ import annotations

from clientlink.common import protocol as p
from clientlink.common.protocol import ErrorCode
from clientlink.daemon.api import Api, handles
from clientlink.daemon.clients import ClientService
from clientlink.daemon.invitations import Invitations, reach_problem
from clientlink.daemon.jobs import JobEngine
from clientlink.daemon.rpc_errors import RpcFailure
from clientlink.daemon.rpc_server import CallContext
from clientlink.daemon.store import Store


class InvitesApi(Api):
    def __init__(
        self, invitations: Invitations, clients: ClientService, jobs: JobEngine, store: Store
    ) -> None:
        self._invitations = invitations
        self._clients = clients
        self._jobs = jobs
        self._store = store

    @handles("invites.send")
    async def send(self, params: p.InviteParams, ctx: CallContext) -> p.JobStartResult:
        """Invite one client by email or SMS (as a job of one: sent at most once)."""
        client = await self._clients.require(params.client_id)
        problem = reach_problem(client, params.channel.value)
        if problem:
            raise RpcFailure(ErrorCode.INVALID_PARAMS, f"{client.name}: {problem}")
        job_params = await self._invitations.check_job_params(
            params.channel, params.template_id, params.bank_ids
        )
        job_id = await self._jobs.submit(p.JobKind.INVITE, [client.id], job_params, ctx.peer.actor)
        return p.JobStartResult(job_id=job_id)

    @handles("invites.preview")
    async def preview(
        self, params: p.InvitesPreviewParams, ctx: CallContext
    ) -> p.InvitesPreviewResult:
        """What a bulk invitation would send: nothing is sent, no link is made."""
        return await self._invitations.preview(
            params.client_ids, params.template_id, params.bank_ids, params.sample_client_id
        )

    @handles("invites.list")
    async def list(self, params: p.InvitesListParams, ctx: CallContext) -> p.InvitesListResult:
        """Invitations newest first (one client's timeline when client_id is given)."""
        if params.client_id is not None:
            await self._clients.require(params.client_id)
        rows = await self._store.list_invitations(params.client_id, None, params.limit)
        return p.InvitesListResult(items=[row.to_protocol() for row in rows])

    @handles("invites.resend")
    async def resend(self, params: p.InvitationIdParams, ctx: CallContext) -> p.JobStartResult:
        """Send an invitation again with a fresh link (only the newest link works)."""
        invitation = await self._store.get_invitation(params.invitation_id)
        if invitation is None:
            raise RpcFailure(ErrorCode.NOT_FOUND, f"there is no invitation {params.invitation_id}")
        job_params = await self._invitations.check_job_params(
            p.Channel(invitation.channel), invitation.template_id, invitation.bank_ids
        )
        job_id = await self._jobs.submit(
            p.JobKind.INVITE, [invitation.client_id], job_params, ctx.peer.actor
        )
        return p.JobStartResult(job_id=job_id)

    @handles("invites.follow_up")
    async def follow_up(self, params: p.Empty, ctx: CallContext) -> p.FollowUpResult:
        """Follow up open invitations now (the daemon also does it on its own)."""
        return p.FollowUpResult(**await self._invitations.follow_up())
