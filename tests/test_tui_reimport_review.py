"""The re-import review at 80x24: every field's old and new value before anything is applied,
and after applying some, what is left (real daemon, real sandbox over HTTP, Pilot)."""

from __future__ import annotations

from clientlink.common import protocol as p
from clientlink.sandbox.seed import format_abn
from clientlink.tui.app import ClientlinkApp
from clientlink.tui.screens.job_progress import JobProgressScreen
from clientlink.tui.screens.reimport_review import ReimportReviewScreen, change_prompt
from clientlink.tui.widgets.checklist import Checklist
from tests.helpers import finished, sandbox_get, sandbox_post, wait_until
from tests.test_client_import import screen_text

LONG_LEGAL_NAME = "Southern Cross Electrical and Refrigeration Services Holdings Pty Ltd"


def flat(text: str) -> str:
    """The screen's words with runs of spaces and line ends as one space."""
    return " ".join(text.split())


async def test_the_review_shows_every_field_and_after_applying_one_says_what_is_left(
    practice,
) -> None:
    rpc = await practice.connect()
    listed = await rpc.call(
        p.CLIENTS_LIST, filter={"status": "connected", "provider": "xero"}, limit=2
    )
    changed, renamed = listed.items
    base = practice.sandbox.base_url
    orgs = await sandbox_get(base, "/_sandbox/orgs")
    new_abn = next(org["abn"] for org in orgs if org["abn"] != changed.abn)
    new_type = "TRUST" if changed.entity_type != "TRUST" else "COMPANY"
    # One business edits every detail in Xero; another only its name.
    await sandbox_post(
        base,
        f"/_sandbox/orgs/{changed.tenant_id}",
        {
            "name": "Harbour Lights Group",
            "legal_name": LONG_LEGAL_NAME,
            "abn": format_abn(new_abn),
            "type": new_type,
        },
    )
    await sandbox_post(base, f"/_sandbox/orgs/{renamed.tenant_id}", {"name": "Renamed Co"})
    started = await rpc.call(p.JOBS_START, kind="reimport", client_ids=[changed.id, renamed.id])
    await finished(rpc, started.job_id)

    app = ClientlinkApp(practice.socket_path, open_browser=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(lambda: getattr(app.screen, "clients", None), what="the client list")
        app.push_screen(JobProgressScreen(started.job_id, kind=p.JobKind.REIMPORT))
        progress = app.screen
        await wait_until(
            lambda: (
                "2 clients differ from the software: nothing changed yet" in flat(screen_text(app))
            ),
            what="the job's summary",
        )
        await pilot.press("v")
        await wait_until(lambda: isinstance(app.screen, ReimportReviewScreen), what="the review")
        review = app.screen
        checklist = review.query_one(Checklist)
        await wait_until(lambda: checklist.option_count == 2, what="the differences")
        checklist.highlighted = [item.client_id for item in review.items].index(changed.id)
        await pilot.pause()
        screen = screen_text(app)
        lines = screen.splitlines()
        assert len(lines) == 24 and all(len(line) <= 80 for line in lines)
        words = flat(screen)
        assert "2 clients differ from the software: nothing changed yet. 2 ticked" in words
        # Every field, its stored value and the software's, nothing cut short.
        assert f"Name: {changed.name} → Harbour Lights Group" in words
        assert f"Legal name: {changed.legal_name} → {LONG_LEGAL_NAME}" in words
        assert f"ABN: {format_abn(changed.abn)} → {format_abn(new_abn)}" in words
        assert f"Entity type: {changed.entity_type or '(empty)'} → {new_type}" in words
        # Xero's Organisation gives no email, so none is compared (BGL, Class and MYOB do).
        assert "Email:" not in words
        # The checklist's line names the fields that differ.
        assert f"{changed.name} Name, Legal name, ABN, Entity type" in words
        # The long legal name does not fit beside the old one: the new value starts its own
        # line, whole.
        assert any(line.strip().endswith(f"→ {LONG_LEGAL_NAME}") for line in lines)
        # Nothing applied yet.
        assert (await rpc.call(p.CLIENTS_GET, client_id=changed.id)).abn == changed.abn

        checklist.highlighted = [item.client_id for item in review.items].index(renamed.id)
        await pilot.press("space")  # keep this one as it is, for now
        await pilot.press("enter")
        await wait_until(lambda: app.screen is progress, what="back on the job")
        await wait_until(
            lambda: (
                "1 client still differs from the software (1 client updated)"
                in flat(screen_text(app))
            ),
            what="what is left, in the job's summary",
        )
        assert "nothing changed yet" not in flat(screen_text(app))
        applied = await rpc.call(p.CLIENTS_GET, client_id=changed.id)
        assert (applied.name, applied.abn, applied.entity_type) == (
            "Harbour Lights Group",
            new_abn,
            new_type,
        )

        # The review again: only what is left, and it says what was applied.
        await pilot.press("v")
        await wait_until(lambda: isinstance(app.screen, ReimportReviewScreen), what="the review")
        review = app.screen
        await wait_until(lambda: review.query_one(Checklist).option_count == 1, what="what is left")
        await pilot.pause()
        words = flat(screen_text(app))
        assert "1 client still differs from the software (1 client updated). 1 ticked" in words
        assert f"Name: {renamed.name} → Renamed Co" in words
        assert "Harbour Lights Group" not in words
        await pilot.press("enter")
        await wait_until(lambda: app.screen is progress, what="back on the job")
        await wait_until(
            lambda: "Every difference is applied: 2 clients updated" in flat(screen_text(app)),
            what="the job's summary once all are applied",
        )

    # Applying again changes nothing twice: every item is marked applied.
    again = await rpc.call(p.CLIENTS_APPLY_REIMPORT, job_id=started.job_id)
    assert again.changed == []
    job = await rpc.call(p.JOBS_GET, job_id=started.job_id, items=True)
    assert all(item.applied_at for item in job.items or [] if item.changes)


def test_a_change_prompt_names_each_field_and_puts_a_long_new_value_on_its_own_line() -> None:
    item = p.JobItem(
        id=1,
        client_id=7,
        name="Marsh Super Fund",
        state=p.ItemState.DONE,
        attempts=1,
        changes={
            "email": [None, "trustees@marsh-super.example"],
            "legal_name": ["Marsh Super Fund", LONG_LEGAL_NAME],
        },
    )
    lines = change_prompt(item, width=60).plain.splitlines()
    assert lines == [
        "Marsh Super Fund",
        "  Email: (empty) → trustees@marsh-super.example",
        "  Legal name: Marsh Super Fund",
        f"    → {LONG_LEGAL_NAME}",
    ]
