"""The sandbox's seed data: realistic, valid and stable across runs."""

from __future__ import annotations

import re

from clientlink.common.abn import abn_is_valid
from clientlink.sandbox.seed import generate_orgs


def test_default_seed_has_200_orgs_with_valid_unique_abns_and_unique_names() -> None:
    orgs = generate_orgs()
    assert len(orgs) >= 200
    assert all(abn_is_valid(org.abn) for org in orgs)
    assert len({org.abn for org in orgs}) == len(orgs)
    assert len({org.name for org in orgs}) == len(orgs)
    assert len({org.tenant_id for org in orgs}) == len(orgs)
    assert len({org.short_code for org in orgs}) == len(orgs)


def test_seed_is_deterministic_and_count_is_a_parameter() -> None:
    assert generate_orgs(50) == generate_orgs(200)[:50]
    assert generate_orgs(10, seed=1) != generate_orgs(10, seed=2)
    assert len(generate_orgs(600)) == 600


def test_seed_covers_every_organisation_type_with_australian_style_names() -> None:
    orgs = generate_orgs()
    assert {org.organisation_type for org in orgs} == {
        "COMPANY",
        "TRUST",
        "SELF_MANAGED_SUPERANNUATION_FUND",
        "SOLE_TRADER",
    }
    funds = [org for org in orgs if org.organisation_type == "SELF_MANAGED_SUPERANNUATION_FUND"]
    assert all(re.search(r"(Superannuation|Super|Retirement|Pension) Fund$", o.name) for o in funds)
    companies = [org for org in orgs if org.organisation_type == "COMPANY"]
    assert all(org.name.endswith("Pty Ltd") for org in companies)


def test_seed_contacts_use_example_domains_and_au_mobiles() -> None:
    for org in generate_orgs():
        assert org.email.endswith(".example")
        assert re.fullmatch(r"\+614\d{8}", org.phone)


def test_abn_checksum_accepts_known_good_and_rejects_altered_numbers() -> None:
    # 51 824 753 556 is the ATO's own published example ABN.
    assert abn_is_valid("51 824 753 556")
    assert not abn_is_valid("51 824 753 557")
    assert not abn_is_valid("5182475355")
    assert not abn_is_valid("5182475355a")
