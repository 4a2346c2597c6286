"""Deterministic practice data: the organisations a practice's staff can connect.

Everything derives from a seed, so tenant ids, names and ABNs are the same on every run and
tests (or a person rehearsing) can refer to an organisation by name across restarts.
"""

from __future__ import annotations

import random
import re
import uuid
from dataclasses import asdict, dataclass

from clientlink.common.abn import ABN_WEIGHTS

DEFAULT_SEED = 20240701
DEFAULT_ORG_COUNT = 200


# A fixed namespace so tenant ids are uuid5(namespace, "<seed>:<index>") and stable.
_TENANT_NAMESPACE = uuid.UUID("6d1f3c1e-5a0b-4c4e-9a43-0c1f2b3a4d5e")

SURNAMES = (
    "Nguyen",
    "Harper",
    "Whitlam",
    "Marsh",
    "Smith",
    "Jones",
    "Williams",
    "Brown",
    "Wilson",
    "Taylor",
    "Anderson",
    "Thompson",
    "Martin",
    "White",
    "Walker",
    "Kelly",
    "Ryan",
    "O'Brien",
    "Campbell",
    "Murphy",
    "Tran",
    "Le",
    "Pham",
    "Chen",
    "Wang",
    "Li",
    "Zhang",
    "Singh",
    "Patel",
    "Kaur",
    "Sharma",
    "Papadopoulos",
    "Rossi",
    "Russo",
    "Costa",
    "Kowalski",
    "Novak",
    "MacDonald",
    "Fraser",
    "Henderson",
    "Gallagher",
    "Doyle",
    "Fitzgerald",
    "Sullivan",
    "Baker",
    "Cooper",
    "Bennett",
    "Hughes",
    "Morrison",
    "Stewart",
    "Reid",
    "Ellis",
    "Palmer",
    "Lawson",
    "Dawson",
    "Hadley",
    "Kennedy",
    "Barton",
    "Deakin",
    "Lyons",
    "Menzies",
    "Chifley",
    "Curtin",
    "Holt",
    "Gorton",
    "McMahon",
    "Hawke",
    "Keating",
    "Howard",
    "Rudd",
    "Gillard",
    "Abbott",
    "Turnbull",
    "Morrow",
    "Ashby",
    "Blackwood",
    "Carmody",
    "Dunstan",
    "Ellery",
    "Fenwick",
    "Garrick",
    "Hollis",
    "Ingram",
    "Jarvis",
    "Kilpatrick",
    "Lindqvist",
    "Mancini",
    "Nakamura",
    "Okafor",
    "Petrakis",
    "Quinlan",
    "Rahman",
    "Sato",
    "Tanaka",
    "Underwood",
    "Vella",
    "Wakefield",
    "Yilmaz",
    "Zhou",
)

FIRST_NAMES = (
    "Alex",
    "Ben",
    "Chloe",
    "Daniel",
    "Emily",
    "Fiona",
    "Grace",
    "Hamish",
    "Isla",
    "Jack",
    "Kate",
    "Liam",
    "Mia",
    "Noah",
    "Olivia",
    "Priya",
    "Quinn",
    "Ruby",
    "Sam",
    "Tom",
    "Uma",
    "Vikram",
    "Will",
    "Xavier",
    "Yasmin",
    "Zoe",
    "Harriet",
    "Lachlan",
    "Matilda",
    "Angus",
    "Bronwyn",
    "Callum",
    "Darcy",
    "Eleni",
    "Hoang",
    "Mei",
    "Raj",
    "Siobhan",
)

PLACES = (
    "Coastal",
    "Harbour",
    "Southern Cross",
    "Bayside",
    "Outback",
    "Riverina",
    "Hunter Valley",
    "Gippsland",
    "Barossa",
    "Mornington",
    "Sunshine Coast",
    "Blue Mountains",
    "Illawarra",
    "Northern Beaches",
    "Derwent",
    "Swan River",
    "Fremantle",
    "Kimberley",
    "Daintree",
    "Eyre",
    "Murray",
    "Goulburn",
    "Yarra",
    "Wattle",
    "Banksia",
    "Ironbark",
    "Red Gum",
    "Grevillea",
    "Kookaburra",
    "Emu Plains",
    "Macquarie",
    "Flinders",
    "Torrens",
    "Darling",
)

TRADES = (
    "Joinery",
    "Plumbing",
    "Electrical",
    "Landscaping",
    "Bakery",
    "Cafe",
    "Physiotherapy",
    "Dental",
    "Veterinary Clinic",
    "Constructions",
    "Roofing",
    "Tiling",
    "Painting",
    "Logistics",
    "Transport",
    "Engineering",
    "Consulting",
    "Architecture",
    "Property Group",
    "Hospitality",
    "Wines",
    "Brewing Co",
    "Motors",
    "Marine",
    "Pharmacy",
    "Optometry",
    "Florist",
    "Print & Design",
    "IT Solutions",
    "Accounting",
    "Cabinetry",
    "Concreting",
    "Earthmoving",
    "Pastoral Co",
    "Orchards",
    "Fisheries",
    "Fitness",
    "Childcare",
)

SMSF_SUFFIXES = ("Superannuation Fund", "Super Fund", "Retirement Fund", "Pension Fund")
TRUST_SUFFIXES = ("Family Trust", "Investment Trust", "Unit Trust", "Discretionary Trust")

# Xero's OrganisationType values (provider-facts §8; the official SDK rejects others).
SMSF = "SELF_MANAGED_SUPERANNUATION_FUND"
ORGANISATION_TYPES = ("COMPANY", "TRUST", SMSF, "SOLE_TRADER")
# Roughly the mix of a suburban practice that does a lot of SMSF work.
_TYPE_WEIGHTS = (35, 20, 30, 15)

_SHORT_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


@dataclass(frozen=True)
class SeedOrg:
    """One organisation of the practice as the emulated provider knows it."""

    tenant_id: str
    name: str
    legal_name: str
    abn: str
    organisation_type: str
    short_code: str
    email: str
    phone: str

    @property
    def realm_id(self) -> str:
        """QuickBooks Online's company id (realmId) for this business: 16 to 19 digits.

        Derived from the tenant id, so the practice's businesses are the same companies in
        both providers and keep their realm ids across restarts.
        """
        number = uuid.UUID(self.tenant_id).int
        digits = 16 + number % 4
        lowest = 10 ** (digits - 1)
        return str(lowest + (number // 4) % (9 * lowest))

    def to_dict(self) -> dict[str, str]:
        """Plain dict for JSON (the admin API's `type` is the organisation type)."""
        data = asdict(self)
        data["type"] = self.organisation_type
        data["realm_id"] = self.realm_id
        return data


def make_abn(rng: random.Random) -> str:
    """Return a random ABN that passes the checksum.

    The first two digits (weights 10 and 1 after the minus-one rule) can take any weighted
    value 0..89, which covers every remainder mod 89, so a prefix always exists.
    """
    tail = [rng.randrange(10) for _ in range(9)]
    tail_sum = sum(w * v for w, v in zip(ABN_WEIGHTS[2:], tail, strict=True))
    for prefix in range(10, 100):
        first, second = divmod(prefix, 10)
        if (10 * (first - 1) + second + tail_sum) % 89 == 0:
            return f"{prefix}" + "".join(map(str, tail))
    raise AssertionError("unreachable: every remainder mod 89 has a prefix")


def format_abn(abn: str) -> str:
    """Format 11 ABN digits the way the ABR shows them: `12 345 678 901`."""
    return f"{abn[:2]} {abn[2:5]} {abn[5:8]} {abn[8:]}"


def _initials(rng: random.Random) -> str:
    first, second = rng.sample(FIRST_NAMES, 2)
    return f"{first[0]} & {second[0]}"


def _name_for(kind: str, rng: random.Random) -> tuple[str, str]:
    """Return (trading name, legal name) for an organisation of `kind`."""
    surname = rng.choice(SURNAMES)
    if kind == SMSF:
        suffix = rng.choice(SMSF_SUFFIXES)
        style = rng.randrange(3)
        if style == 0:
            name = f"{surname} Family {suffix}"
        elif style == 1:
            name = f"The {surname} {suffix}"
        else:
            name = f"{_initials(rng)} {surname} {suffix}"
        # The ABR lists an SMSF under its trustee.
        legal = name if name.startswith("The ") else f"The Trustee for {name}"
        return name, legal
    if kind == "TRUST":
        name = f"{surname} {rng.choice(TRUST_SUFFIXES)}"
        return name, f"The Trustee for {name}"
    if kind == "COMPANY":
        base = rng.choice(
            (
                f"{rng.choice(PLACES)} {rng.choice(TRADES)}",
                f"{surname} {rng.choice(TRADES)}",
                f"{surname} & {rng.choice(SURNAMES)} {rng.choice(TRADES)}",
            )
        )
        name = f"{base} Pty Ltd"
        return name, name
    person = f"{rng.choice(FIRST_NAMES)} {surname}"
    return f"{person} {rng.choice(TRADES)}", person


def _email_for(name: str, index: int, rng: random.Random) -> str:
    plain = name.lower().removeprefix("the ").removesuffix(" pty ltd")
    slug = re.sub(r"[^a-z0-9]+", "", plain)[:24] or "client"
    mailbox = rng.choice(("accounts", "admin", "office", "trustee", "hello", "finance"))
    # Suffixing the index keeps addresses unique even when two slugs collide.
    return f"{mailbox}@{slug}{index}.example"


def _mobile(rng: random.Random) -> str:
    # Stay in the 0491 57x block that ACMA uses for its fictitious mobile numbers, so a
    # misrouted rehearsal SMS is unlikely to reach a real person. E.164 so SMS gateways take it.
    return f"+6149157{rng.randrange(10_000):04d}"


def generate_orgs(count: int = DEFAULT_ORG_COUNT, seed: int = DEFAULT_SEED) -> list[SeedOrg]:
    """Generate `count` organisations with unique names, ABNs and short codes, deterministically."""
    rng = random.Random(seed)
    names: set[str] = set()
    abns: set[str] = set()
    short_codes: set[str] = set()
    orgs: list[SeedOrg] = []
    while len(orgs) < count:
        kind = rng.choices(ORGANISATION_TYPES, weights=_TYPE_WEIGHTS)[0]
        name, legal = _name_for(kind, rng)
        if name in names:
            continue
        abn = make_abn(rng)
        short_code = "!" + "".join(rng.choice(_SHORT_CODE_ALPHABET) for _ in range(5))
        if abn in abns or short_code in short_codes:
            continue
        index = len(orgs)
        names.add(name)
        abns.add(abn)
        short_codes.add(short_code)
        orgs.append(
            SeedOrg(
                tenant_id=str(uuid.uuid5(_TENANT_NAMESPACE, f"{seed}:{index}")),
                name=name,
                legal_name=legal,
                abn=abn,
                organisation_type=kind,
                short_code=short_code,
                email=_email_for(name, index, rng),
                phone=_mobile(rng),
            )
        )
    return orgs
