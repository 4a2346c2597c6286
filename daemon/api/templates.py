"""``templates.*``: the invitation templates, built-in and the practice's own."""

from __future__ import annotations

from clientlink.common import protocol as p
from clientlink.common.config import Config
from clientlink.common.protocol import ErrorCode
from clientlink.daemon.api import Api, handles
from clientlink.daemon.banks import BanksUnavailable
from clientlink.daemon.clients import ClientService
from clientlink.daemon.clock import Clock
from clientlink.daemon.invitations import Invitations
from clientlink.daemon.rpc_errors import RpcFailure
from clientlink.daemon.rpc_server import CallContext
from clientlink.daemon.store import Store
from clientlink.daemon.templates import (
    PLACEHOLDERS,
    TemplateBook,
    check_template,
    render_text,
    sms_segments,
)


class TemplatesApi(Api):
    def __init__(
        self,
        templates: TemplateBook,
        clients: ClientService,
        invitations: Invitations,
        store: Store,
        config: Config,
        clock: Clock,
    ) -> None:
        self._templates = templates
        self._clients = clients
        self._invitations = invitations
        self._store = store
        self._config = config
        self._clock = clock

    @handles("templates.list")
    async def list(self, params: p.Empty, ctx: CallContext) -> p.TemplatesListResult:
        """The built-in invitations first, then the practice's own, with the placeholders."""
        return p.TemplatesListResult(
            items=[
                p.InvitationTemplate.model_validate(vars(t)) for t in await self._templates.all()
            ],
            placeholders=PLACEHOLDERS,
        )

    @handles("templates.create")
    async def create(
        self, params: p.TemplateCreateParams, ctx: CallContext
    ) -> p.InvitationTemplate:
        """Save a new template; unknown placeholders or a missing {link} are refused."""
        subject = params.subject if params.channel == p.Channel.EMAIL else params.subject or None
        check_template(params.channel.value, subject, params.body)
        template_id = await self._store.save_template(
            None,
            name=params.name.strip(),
            channel=params.channel.value,
            subject=subject,
            body=params.body,
            now=self._clock.now(),
        )
        await self._store.add_audit(
            actor=ctx.peer.actor,
            action="template.created",
            client_id=None,
            detail={"template_id": template_id, "name": params.name},
            now=self._clock.now(),
        )
        return p.InvitationTemplate.model_validate(
            vars(await self._templates.get(str(template_id)))
        )

    @handles("templates.update")
    async def update(
        self, params: p.TemplateUpdateParams, ctx: CallContext
    ) -> p.InvitationTemplate:
        """Change a template of the practice's own (the built-in ones stay as they are)."""
        current = await self._templates.get(params.template_id)
        if current.builtin:
            raise RpcFailure(
                ErrorCode.CONFLICT,
                "the built-in templates cannot be changed: create your own from them",
            )
        subject = params.subject if params.subject is not None else current.subject
        body = params.body if params.body is not None else current.body
        check_template(current.channel, subject, body)
        await self._store.save_template(
            int(current.id),
            name=(params.name or current.name).strip(),
            channel=current.channel,
            subject=subject,
            body=body,
            now=self._clock.now(),
        )
        return p.InvitationTemplate.model_validate(vars(await self._templates.get(current.id)))

    @handles("templates.delete")
    async def delete(self, params: p.TemplateIdParams, ctx: CallContext) -> p.OkResult:
        """Delete a template of the practice's own."""
        current = await self._templates.get(params.template_id)
        if current.builtin:
            raise RpcFailure(ErrorCode.CONFLICT, "the built-in templates cannot be deleted")
        await self._store.delete_template(int(current.id))
        return p.OkResult()

    @handles("templates.preview")
    async def preview(
        self, params: p.TemplatePreviewParams, ctx: CallContext
    ) -> p.TemplatePreviewResult:
        """Render a saved or unsaved template for one client (example link), with the SMS
        segment count."""
        client = await self._clients.require(params.client_id)
        if params.template_id is not None:
            template = await self._templates.get(params.template_id)
            channel, subject, body = template.channel, template.subject, template.body
        else:
            if params.channel is None or params.body is None:
                raise RpcFailure(
                    ErrorCode.INVALID_PARAMS, "give a template_id, or a channel and a body"
                )
            channel, subject, body = params.channel.value, params.subject, params.body
        check_template(channel, subject, body)
        bank_names: list[str] = []
        if params.bank_ids:
            try:
                bank_names = await self._invitations.banks.bank_names(params.bank_ids)
            except BanksUnavailable as exc:
                raise RpcFailure(ErrorCode.INVALID_PARAMS, str(exc)) from exc
        values, link_length, _ = await self._invitations.example_values(client.name, bank_names)
        rendered_body = render_text(body, values)
        encoding = segments = fewest = most = longest = None
        if channel == "sms":
            encoding, segments = sms_segments(rendered_body)
            fewest = most = segments
            longest, worst = client.name, (segments, len(rendered_body))
            for name in await self._store.active_client_names():
                values["client_name"] = name
                text = render_text(body, values)
                _, count = sms_segments(text)
                fewest, most = min(fewest, count), max(most, count)
                if (count, len(text)) > worst:
                    longest, worst = name, (count, len(text))
            values["client_name"] = client.name
        return p.TemplatePreviewResult(
            channel=p.Channel(channel),
            subject=render_text(subject, values, one_line=True) if subject else None,
            body=rendered_body,
            sms_encoding=encoding,
            sms_segments=segments,
            sms_segments_min=fewest,
            sms_segments_max=most,
            longest_name=longest,
            link_length=link_length if channel == "sms" else None,
        )
