"""The SMSF seed: a firm's funds and entities, realistic, valid and the same on every run."""

from __future__ import annotations

import re

from clientlink.sandbox.seed import abn_is_valid
from clientlink.sandbox.smsf_seed import (
    ENTITY_TYPES,
    SMSF,
    business_entities,
    firm_entities,
)


def test_a_firm_holds_funds_trusts_companies_and_individuals_with_valid_unique_abns() -> None:
    firm = firm_entities()
    entities = firm.entities
    assert len(entities) == 120
    assert {e.entity_type for e in entities} == set(ENTITY_TYPES)
    assert all(abn_is_valid(e.abn) for e in entities)
    for key in ("abn", "fund_id", "fund_code", "fund_name"):
        assert len({getattr(e, key) for e in entities}) == len(entities), key
    assert all(e.firm == firm.firm.code and e.firm_name == firm.firm.name for e in entities)
    assert all(e.email.endswith(".example") for e in entities)
    assert all(re.fullmatch(r"[0-9a-f]{32}", e.fund_id) for e in entities)


def test_fund_codes_look_like_sf360s_and_names_like_australian_smsfs() -> None:
    entities = firm_entities().entities
    for entity in entities:
        letters = re.sub(r"[^A-Z]", "", entity.fund_name.upper())[:8]
        assert re.fullmatch(r"[A-Z]{8}\d{4}", entity.fund_code)
        assert entity.fund_code.startswith(letters)
    funds = [e for e in entities if e.entity_type == SMSF]
    assert len(funds) >= len(entities) // 3
    assert all(
        re.search(r"(Superannuation|Super|Retirement|Pension) Fund$", f.fund_name) for f in funds
    )
    assert all(f.sf_code == f.fund_code for f in funds)
    companies = [e for e in entities if e.entity_type == "BillableCompany"]
    assert all(c.fund_name.endswith(" Pty Ltd") and c.sf_code == "" for c in companies)


def test_seed_is_deterministic_and_businesses_are_distinct() -> None:
    assert firm_entities(30) == firm_entities(30)
    assert firm_entities(30, seed=1) != firm_entities(30, seed=2)
    five = business_entities(5, 40)
    assert five[:2] == business_entities(2, 40)
    assert five[0] == firm_entities(40)
    every = [e for business in five for e in business.entities]
    assert len({b.firm.code for b in five}) == 5
    for key in ("abn", "fund_id", "fund_code", "fund_name"):
        assert len({getattr(e, key) for e in every}) == len(every), key
