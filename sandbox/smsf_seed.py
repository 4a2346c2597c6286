"""Deterministic SMSF practice data: the funds and entities a firm keeps in SMSF software.

`sandbox/seed.py` generates a practice's *businesses* (what Xero, QuickBooks and MYOB hold).
SMSF administration software (BGL Simple Fund 360, Class Super) holds something else: the
firm's self-managed super funds and the entities around them, grouped by family: "The Nguyen
Family Super Fund" with its "Nguyen Family Trust", its corporate trustee "Nguyen Holdings Pty
Ltd" and the members themselves. Every entity has an ABN that passes the ATO checksum (made by
seed.py's generator), a BGL-style fund code ("THENGUYE0123"), an email and an entity type.

Two entry points:
- `firm_entities()` gives one firm's entities (what one BGL authorisation covers);
- `business_entities(n)` gives N businesses (firms, or Class businesses), each with its own
  entities; the first business is always the same as `firm_entities()` for the same seed, and
  names, ABNs, fund ids and fund codes are unique across the whole world generated.

Facts assumed (not published by the providers, chosen to look like the real thing):
- a fund id is 32 lowercase hex digits (SF360 shows fund ids as long hex strings);
- a fund code is the first eight letters of the fund name, upper case, plus four digits;
  `code` repeats the fund code and `sfCode` is the fund code for SMSFs and "" otherwise
  (SF360's list carries both; their difference is not documented);
- a firm (business) code is upper case letters and digits, at most 10 characters.
"""

from __future__ import annotations

import random
import re
import uuid
from dataclasses import asdict, dataclass

from clientlink.sandbox.seed import (
    FIRST_NAMES,
    PLACES,
    SMSF_SUFFIXES,
    SURNAMES,
    TRADES,
    TRUST_SUFFIXES,
    email_for,
    make_abn,
)

DEFAULT_SMSF_SEED = 20240930
DEFAULT_ENTITY_COUNT = 120

# BGL's entityType values (provider-facts §7).
SMSF = "SMSF"
TRUST = "BillableTrust"
COMPANY = "BillableCompany"
INDIVIDUAL = "BillableIndividual"
ENTITY_TYPES = (SMSF, TRUST, COMPANY, INDIVIDUAL)

_FUND_NAMESPACE = uuid.UUID("2f6b8a41-7c3d-4e59-8b1a-93d0c4e5f617")

_FIRM_STYLES = ("Advisory", "Partners", "SMSF Services", "Accountants", "Super Specialists")
_TRUSTEE_COMPANY_WORDS = ("Holdings", "Super", "Nominees", "Investments", "Superannuation")


@dataclass(frozen=True)
class SmsfFirm:
    """One firm (a BGL SF360 account, or a Class business): a code and a name."""

    code: str
    name: str


@dataclass(frozen=True)
class SmsfEntity:
    """One fund or entity as the SMSF software lists it."""

    fund_id: str
    fund_code: str
    fund_name: str
    entity_type: str
    abn: str
    email: str
    firm: str
    firm_name: str

    @property
    def sf_code(self) -> str:
        """SF360's `sfCode`: the fund code for an SMSF, empty for other entities."""
        return self.fund_code if self.entity_type == SMSF else ""

    def to_dict(self) -> dict[str, str]:
        """Plain dict for JSON (the sandbox admin API's shape)."""
        data = asdict(self)
        data["sf_code"] = self.sf_code
        return data


@dataclass(frozen=True)
class SmsfBusiness:
    """A firm and the entities it holds."""

    firm: SmsfFirm
    entities: tuple[SmsfEntity, ...]


class _World:
    """What must stay unique across every business generated from one seed."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.names: set[str] = set()
        self.abns: set[str] = set()
        self.fund_codes: set[str] = set()
        self.firm_codes: set[str] = set()
        self.count = 0

    def abn(self) -> str:
        while True:
            abn = make_abn(self.rng)
            if abn not in self.abns:
                self.abns.add(abn)
                return abn

    def fund_code(self, name: str) -> str:
        letters = re.sub(r"[^A-Z]", "", name.upper())[:8].ljust(8, "X")
        while True:
            code = f"{letters}{self.rng.randrange(10_000):04d}"
            if code not in self.fund_codes:
                self.fund_codes.add(code)
                return code

    def firm(self) -> SmsfFirm:
        while True:
            surname = self.rng.choice(SURNAMES)
            name = f"{surname} {self.rng.choice(_FIRM_STYLES)}"
            letters = re.sub(r"[^A-Z]", "", surname.upper())[:6]
            code = f"{letters}{self.rng.randrange(100):02d}"
            if code not in self.firm_codes and name not in self.names:
                self.firm_codes.add(code)
                self.names.add(name)
                return SmsfFirm(code=code, name=name)

    def entity(self, firm: SmsfFirm, name: str, entity_type: str) -> SmsfEntity:
        index = self.count
        self.count += 1
        self.names.add(name)
        return SmsfEntity(
            fund_id=uuid.uuid5(_FUND_NAMESPACE, f"{self.seed}:{index}").hex,
            fund_code=self.fund_code(name),
            fund_name=name,
            entity_type=entity_type,
            abn=self.abn(),
            email=email_for(name, index, self.rng),
            firm=firm.code,
            firm_name=firm.name,
        )


def _fund_name(surname: str, rng: random.Random) -> str:
    suffix = rng.choice(SMSF_SUFFIXES)
    style = rng.randrange(4)
    if style == 0:
        return f"The {surname} Family {suffix}"
    if style == 1:
        return f"{surname} {suffix}"
    if style == 2:
        first, second = rng.sample(FIRST_NAMES, 2)
        return f"{first[0]} & {second[0]} {surname} {suffix}"
    return f"{surname} {rng.choice(PLACES)} {suffix}"


def _family(world: _World, firm: SmsfFirm, room: int) -> list[SmsfEntity]:
    """A family's fund and, space allowing, its trust, trustee company and members."""
    rng = world.rng
    surname = rng.choice(SURNAMES)
    candidates: list[tuple[str, str]] = [(_fund_name(surname, rng), SMSF)]
    if rng.random() < 0.45:
        candidates.append((f"{surname} {rng.choice(TRUST_SUFFIXES)}", TRUST))
    if rng.random() < 0.4:
        word = rng.choice((*_TRUSTEE_COMPANY_WORDS, rng.choice(TRADES)))
        candidates.append((f"{surname} {word} Pty Ltd", COMPANY))
    for first in rng.sample(FIRST_NAMES, rng.choice((0, 0, 1, 2))):
        candidates.append((f"{first} {surname}", INDIVIDUAL))
    family: list[SmsfEntity] = []
    for name, entity_type in candidates:
        if len(family) == room:
            break
        if name in world.names:
            continue
        family.append(world.entity(firm, name, entity_type))
    return family


def _business(world: _World, count: int) -> SmsfBusiness:
    firm = world.firm()
    entities: list[SmsfEntity] = []
    while len(entities) < count:
        entities.extend(_family(world, firm, count - len(entities)))
    return SmsfBusiness(firm=firm, entities=tuple(entities))


def business_entities(
    businesses: int, per_business: int = DEFAULT_ENTITY_COUNT, seed: int = DEFAULT_SMSF_SEED
) -> list[SmsfBusiness]:
    """Generate `businesses` firms with `per_business` entities each, deterministically.

    Business k is the same whatever the number asked for after it, so tests can name an
    entity of the first business across runs.
    """
    if businesses < 0 or per_business < 0:
        raise ValueError("the number of businesses and of entities must not be negative")
    world = _World(seed)
    return [_business(world, per_business) for _ in range(businesses)]


def firm_entities(count: int = DEFAULT_ENTITY_COUNT, seed: int = DEFAULT_SMSF_SEED) -> SmsfBusiness:
    """One firm and its `count` entities: what one BGL authorisation covers."""
    return business_entities(1, count, seed)[0]
