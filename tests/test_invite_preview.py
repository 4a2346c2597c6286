"""The bulk invitation's preview: who gets what, who is skipped and why, and SMS segments
counted as the sandbox's gateway counts them (real daemon, real sandbox over HTTP)."""

from __future__ import annotations

from typing import Any

from clientlink.common import protocol as p
from tests.helpers import finished, sandbox_get


async def outbox(practice: Any, channel: str) -> list[dict[str, Any]]:
    return await sandbox_get(practice.sandbox.base_url, f"/_sandbox/outbox?channel={channel}")


async def test_the_preview_names_the_skipped_renders_one_client_and_sends_nothing(practice):
    rpc = await practice.connect()
    first, second, third, fourth = practice.connected_ids[:4]
    await rpc.call(p.CLIENTS_UPDATE, client_id=second, email="")
    await rpc.call(p.CLIENTS_UPDATE, client_id=third, phone="(02) 9876 5432")
    await rpc.call(p.CLIENTS_DEACTIVATE, client_ids=[fourth])
    banks = (await rpc.call(p.BANKS_LIST)).items[1:3]
    chosen = await rpc.call(p.CLIENTS_GET, client_id=third)

    email = await rpc.call(
        p.INVITES_PREVIEW,
        client_ids=[first, second, third, fourth],
        template_id="default-email",
        bank_ids=[bank.id for bank in banks],
        sample_client_id=third,
    )
    assert email.sending == [first, third]
    assert email.reachable == {"email": 2, "sms": 2}
    assert [(skip.client_id, skip.reason) for skip in email.skipped] == [
        (second, "no email address"),
        (fourth, "deactivated"),
    ]
    assert email.sample is not None and email.sample.client_id == third
    assert email.sample.address == chosen.email
    assert email.sample.subject == "Harbourside Accounting (demo): please connect your bank feeds"
    assert email.sample.body.startswith(f"Dear {chosen.name},")
    assert f"{banks[0].name} and {banks[1].name}" in email.sample.body

    sms = await rpc.call(
        p.INVITES_PREVIEW,
        client_ids=[first, second, third],
        template_id="default-sms",
        sample_client_id=third,  # skipped for SMS: the first one sent is shown instead
    )
    assert sms.sending == [first, second]
    assert [(skip.client_id, skip.reason) for skip in sms.skipped] == [
        (third, "+61298765432 is not a mobile number")
    ]
    assert sms.sample is not None and sms.sample.client_id == first
    assert sms.sample.subject is None and len(sms.sms_segments) == 2

    assert await outbox(practice, "email") == [] and await outbox(practice, "sms") == []
    assert (await rpc.call(p.INVITES_LIST)).items == []


async def test_sms_segments_agree_with_what_the_gateway_counts(practice):
    rpc = await practice.connect()
    ids = practice.connected_ids[:5]
    # One real send first: from then on the counts use the bank-feed links' real length.
    before = await rpc.call(p.INVITES_PREVIEW, client_ids=ids[:1], template_id="default-sms")
    assert not before.link_length_measured
    await finished(rpc, (await rpc.call(p.INVITES_SEND, client_id=ids[0], channel="sms")).job_id)
    (first_sms,) = await outbox(practice, "sms")

    names = ["Li", "A much longer trading name for the family trust", "Café € Co", "Ōtaki ✓ Ltd"]
    for client_id, name in zip(ids[1:], names, strict=True):
        await practice.daemon.store.update_client_details(
            client_id, practice.clock.now(), name=name
        )
    template = await rpc.call(
        p.TEMPLATES_CREATE,
        name="Close to one segment",
        channel="sms",
        body="{client_name}, {practice_name} asks you to connect {bank_names} with this "
        "link, valid until {link_expires}: {link}",
    )
    bank_ids = [bank.id for bank in (await rpc.call(p.BANKS_LIST)).items[1:3]]
    preview = await rpc.call(
        p.INVITES_PREVIEW, client_ids=ids[1:], template_id=template.id, bank_ids=bank_ids
    )
    assert preview.link_length_measured
    assert preview.sending == ids[1:]
    assert preview.sms_encoding == "GSM-7 or UCS-2"
    predicted = dict(zip(preview.sending, preview.sms_segments, strict=True))
    assert min(predicted.values()) < max(predicted.values())  # names decide it

    started = await rpc.call(
        p.JOBS_START,
        kind="invite",
        client_ids=preview.sending,
        channel="sms",
        template_id=template.id,
        bank_ids=bank_ids,
    )
    assert (await finished(rpc, started.job_id)).done == 4
    phones = {(await rpc.call(p.CLIENTS_GET, client_id=cid)).phone: cid for cid in ids[1:]}
    sent = [sms for sms in await outbox(practice, "sms") if sms["sid"] != first_sms["sid"]]
    reported = {phones[sms["to"]]: int(sms["num_segments"]) for sms in sent}
    assert reported == predicted


async def test_the_editor_gives_the_range_with_the_longest_name(practice):
    rpc = await practice.connect()
    short, long = practice.connected_ids[:2]
    await practice.daemon.store.update_client_details(
        long, practice.clock.now(), name="The Extraordinarily Long-Named Superannuation Fund"
    )
    body = "Hi {client_name}: connect {bank_names} here {link} by {link_expires}. " + "x" * 30
    preview = await rpc.call(p.TEMPLATES_PREVIEW, client_id=short, channel="sms", body=body)
    assert preview.sms_segments_max is not None and preview.sms_segments_min is not None
    assert preview.sms_segments_min <= preview.sms_segments <= preview.sms_segments_max
    assert preview.longest_name == "The Extraordinarily Long-Named Superannuation Fund"
    assert preview.sms_segments_max == 2 and preview.link_length == 80
