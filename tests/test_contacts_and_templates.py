"""Contact details and invitation templates: validated on the way in, safe on the way out."""

from __future__ import annotations

import pytest

from clientlink.common import protocol as p
from clientlink.common.client import RpcError
from clientlink.common.protocol import ErrorCode


async def test_contact_details_are_validated_and_stored_normalised(practice):
    rpc = await practice.connect()
    client_id = practice.connected_ids[0]
    client = await rpc.call(
        p.CLIENTS_UPDATE, client_id=client_id, email=" Jo.Smith@Example.COM ", phone="0491 570 156"
    )
    assert client.email == "Jo.Smith@example.com"
    assert client.phone == "+61491570156"
    audit = await rpc.call(p.AUDIT_LIST, client_id=client_id)
    assert audit.items[0].action == "client.contact_updated"


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("email", "jo@", "not a valid email address"),
        ("email", "jo smith@example.com", "not a valid email address"),
        ("phone", "12", "not a valid phone number"),
        ("phone", "call me", "not a phone number"),
    ],
)
async def test_invalid_contact_details_are_refused_and_nothing_is_saved(
    practice, field, value, words
):
    rpc = await practice.connect()
    client_id = practice.connected_ids[0]
    await rpc.call(p.CLIENTS_UPDATE, client_id=client_id, email="a@example.com")
    before = await rpc.call(p.CLIENTS_GET, client_id=client_id)
    with pytest.raises(RpcError) as caught:
        await rpc.call(
            p.CLIENTS_UPDATE, **{"client_id": client_id, "phone": "0491570156", field: value}
        )
    assert caught.value.code == ErrorCode.INVALID_PARAMS
    assert words in caught.value.message
    assert await rpc.call(p.CLIENTS_GET, client_id=client_id) == before


async def test_builtin_templates_and_placeholders_are_listed(rpc):
    listing = await rpc.call(p.TEMPLATES_LIST)
    ids = [t.id for t in listing.items]
    assert ids[:2] == ["default-email", "default-sms"]
    assert set(listing.placeholders) == {
        "client_name",
        "practice_name",
        "bank_names",
        "link",
        "link_expires",
    }


async def test_a_custom_template_is_saved_previewed_edited_and_deleted(practice):
    rpc = await practice.connect()
    created = await rpc.call(
        p.TEMPLATES_CREATE,
        name="New bank",
        channel="email",
        subject="{practice_name}: one more bank, {client_name}",
        body="Hi {client_name}, please add {bank_names}: {link} (until {link_expires})",
    )
    client = await rpc.call(p.CLIENTS_GET, client_id=practice.connected_ids[0])
    preview = await rpc.call(p.TEMPLATES_PREVIEW, template_id=created.id, client_id=client.id)
    assert client.name in preview.body and client.name in preview.subject
    assert "Harbourside Accounting" in preview.subject
    updated = await rpc.call(p.TEMPLATES_UPDATE, template_id=created.id, body="Short: {link}")
    assert updated.body == "Short: {link}"
    await rpc.call(p.TEMPLATES_DELETE, template_id=created.id)
    assert created.id not in [t.id for t in (await rpc.call(p.TEMPLATES_LIST)).items]


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ({"channel": "sms", "body": "Hello {client_name}"}, "no {link}"),
        ({"channel": "sms", "body": "{link} {client_name.__class__}"}, "not a placeholder"),
        ({"channel": "sms", "body": "{link} {0}"}, "not a placeholder"),
        ({"channel": "sms", "body": "{link} {bank_names!r}"}, "not a placeholder"),
        ({"channel": "sms", "body": "{link} {"}, "unmatched brace"),
        ({"channel": "email", "body": "{link}"}, "needs a subject"),
        (
            {"channel": "email", "subject": "Hi\r\nBcc: all@example.com", "body": "{link}"},
            "one line",
        ),
    ],
)
async def test_unworkable_or_unsafe_templates_are_refused_on_save(rpc, template, words):
    with pytest.raises(RpcError) as caught:
        await rpc.call(p.TEMPLATES_CREATE, name="Bad", **template)
    assert caught.value.code == ErrorCode.INVALID_PARAMS
    assert words in caught.value.message
    assert len((await rpc.call(p.TEMPLATES_LIST)).items) == 2


async def test_builtin_templates_cannot_be_changed_or_deleted(rpc):
    for method, extra in ((p.TEMPLATES_UPDATE, {"body": "{link}"}), (p.TEMPLATES_DELETE, {})):
        with pytest.raises(RpcError) as caught:
            await rpc.call(method, template_id="default-sms", **extra)
        assert caught.value.code == ErrorCode.CONFLICT


async def test_sms_preview_counts_segments_and_names_cannot_inject_headers(practice):
    rpc = await practice.connect()
    client_id = practice.connected_ids[0]
    await practice.daemon.store.update_client_details(
        client_id, practice.clock.now(), name="Evil\r\nBcc: everyone@example.com"
    )
    email = await rpc.call(
        p.TEMPLATES_PREVIEW,
        client_id=client_id,
        channel="email",
        subject="For {client_name}",
        body="{link}",
    )
    assert "\n" not in email.subject and "\r" not in email.subject
    sms = await rpc.call(
        p.TEMPLATES_PREVIEW, client_id=client_id, channel="sms", body="{link} " + "x" * 200
    )
    assert (sms.sms_encoding, sms.sms_segments) == ("GSM-7", 2)
    unicode = await rpc.call(
        p.TEMPLATES_PREVIEW, client_id=client_id, channel="sms", body="{link} ✓"
    )
    assert unicode.sms_encoding == "UCS-2"
